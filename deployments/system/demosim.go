package system

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"

	"github.com/wechat-relay/wechat-relay/configs"
	"github.com/wechat-relay/wechat-relay/gateway/wxsim"
)

// demoSim is the WeChat simulator that the demo mode runs in-process, so
// that `make run` shows the whole product with nothing else installed: the
// relay calls it as WeChat, and its phone page plays the clients.
type demoSim struct {
	sim  *wxsim.Sim
	ln   net.Listener
	base string
	log  *slog.Logger
}

// startDemoSim binds the simulator's listener (WR_SIM_LISTEN, default
// 127.0.0.1:8090) so its URL is known before the relay is built.
func startDemoSim(log *slog.Logger) (*demoSim, error) {
	addr := os.Getenv("WR_SIM_LISTEN")
	if addr == "" {
		addr = "127.0.0.1:8090"
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listening for the demo simulator on %s (set WR_SIM_LISTEN to move it): %w", addr, err)
	}
	log = log.With("component", "wxsim")
	return &demoSim{sim: wxsim.New(wxsim.Config{Logger: log}), ln: ln, base: "http://" + ln.Addr().String(), log: log}, nil
}

// serve runs the simulator until ctx is done.
func (d *demoSim) serve(ctx context.Context) error {
	defer d.sim.Close(context.Background())
	if err := wxsim.NewServer(d.sim).Serve(ctx, d.ln); err != nil && !errors.Is(err, context.Canceled) {
		return fmt.Errorf("demo simulator: %w", err)
	}
	return nil
}

// seed creates the demo Official Account, the employees' QR codes and
// two clients who write in, once the relay is listening at relayBase.
func (d *demoSim) seed(ctx context.Context, relayBase string, cfg *configs.Config) error {
	acct := cfg.WeChat.Accounts[0]
	if _, err := d.sim.AddAccount(wxsim.Account{
		AppID: acct.AppID, AppSecret: acct.AppSecret, Token: acct.Token, EncodingAESKey: acct.EncodingAESKey,
		Mode: wxsim.Mode(acct.Mode), CallbackURL: relayBase + "/wechat/" + acct.ID, Name: "稳盈财富 Demo Wealth",
	}); err != nil {
		return fmt.Errorf("demo account: %w", err)
	}
	tickets := map[string]string{}
	for _, e := range cfg.Console.Employees {
		if len(e.Accounts) == 0 {
			continue
		}
		var req wxsim.QRRequest
		req.ActionName = "QR_LIMIT_STR_SCENE"
		req.ActionInfo.Scene.SceneStr = "emp:" + e.ID
		qr, err := d.sim.CreateQR(acct.AppID, req)
		if err != nil {
			return fmt.Errorf("QR code of %s: %w", e.ID, err)
		}
		tickets[e.ID] = qr.Ticket
	}
	// One client scans Alice's code, the other follows from a search:
	// the relay binds the first to Alice and assigns the second itself.
	c1, err := d.sim.NewClient(acct.AppID)
	if err != nil {
		return err
	}
	if _, err := c1.ScanQR(ctx, tickets["alice"]); err != nil {
		return fmt.Errorf("demo client scanning alice's code: %w", err)
	}
	if _, err := c1.SendText(ctx, "你好，我想了解一下基金定投，每月最低投多少？"); err != nil {
		return err
	}
	c2, err := d.sim.NewClient(acct.AppID)
	if err != nil {
		return err
	}
	if _, err := c2.Subscribe(ctx); err != nil {
		return err
	}
	if _, err := c2.SendText(ctx, "Hello, when does my insurance policy renew?"); err != nil {
		return err
	}
	d.log.Info("demo data ready", "clients", 2)
	return nil
}
