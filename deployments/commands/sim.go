package commands

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"time"

	"github.com/wechat-relay/wechat-relay/configs"
	"github.com/wechat-relay/wechat-relay/gateway/wxsim"
)

// simCommand runs the WeChat simulator on its own: the API the relay
// calls, simulated clients that send callbacks to the relay, the phone
// page, and a load mode.
func simCommand(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("sim", flag.ContinueOnError)
	fs.SetOutput(stderr)
	listen := fs.String("listen", "127.0.0.1:8090", "address of the simulator's API, admin API and phone page")
	relayURL := fs.String("relay", "http://127.0.0.1:8080/wechat/demo", "callback URL of the relay for the account")
	appID := fs.String("appid", configs.DemoAppID, "AppID of the simulated Official Account")
	secret := fs.String("secret", configs.DemoAppSecret, "AppSecret")
	token := fs.String("token", configs.DemoToken, "callback Token")
	aesKey := fs.String("aes-key", configs.DemoAESKey, "EncodingAESKey")
	mode := fs.String("mode", "safe", "encryption mode: plain, compatible or safe")
	load := fs.Bool("load", false, "send a load to the relay instead of serving, and print a report")
	clients := fs.Int("clients", 10, "load: simulated clients")
	rate := fs.Float64("rate", 100, "load: messages per second")
	duration := fs.Duration("duration", 10*time.Second, "load: how long to send")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	log := slog.New(slog.NewTextHandler(stderr, nil))
	sim := wxsim.New(wxsim.Config{Logger: log})
	defer sim.Close(context.Background())
	if _, err := sim.AddAccount(wxsim.Account{
		AppID: *appID, AppSecret: *secret, Token: *token, EncodingAESKey: *aesKey,
		Mode: wxsim.Mode(*mode), CallbackURL: *relayURL,
	}); err != nil {
		fmt.Fprintf(stderr, "wechat-relay sim: %v\n", err)
		return 1
	}
	if *load {
		rep, err := sim.Load(ctx, wxsim.LoadConfig{AppID: *appID, Clients: *clients, Rate: *rate, Duration: *duration})
		if err != nil {
			fmt.Fprintf(stderr, "wechat-relay sim: load: %v\n", err)
			return 1
		}
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		enc.Encode(rep)
		if rep.Accepted < rep.Sent {
			return 1
		}
		return 0
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		fmt.Fprintf(stderr, "wechat-relay sim: %v\n", err)
		return 1
	}
	base := "http://" + ln.Addr().String()
	fmt.Fprintf(stdout, "WeChat simulator on %s\n  phone page   %s/phone/\n  API base URL %s (set wechat.api_base_url of the relay to it)\n  admin API    %s/sim/api/state\n  callbacks to %s (%s mode)\n",
		base, base, base, base, *relayURL, *mode)
	if err := wxsim.NewServer(sim).Serve(ctx, ln); err != nil && !errors.Is(err, context.Canceled) {
		fmt.Fprintf(stderr, "wechat-relay sim: %v\n", err)
		return 1
	}
	return 0
}
