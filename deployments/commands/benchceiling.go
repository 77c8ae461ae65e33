package commands

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/wechat-relay/wechat-relay/configs"
	"github.com/wechat-relay/wechat-relay/gateway"
	"github.com/wechat-relay/wechat-relay/relay"
)

// dropAcceptor answers every message accepted and keeps none.
type dropAcceptor struct{}

func (dropAcceptor) Accept(context.Context, relay.Message) error { return nil }

// CeilingHandler is the WeChat callback handler of cfg's accounts with
// every accepted message dropped: what bench-ceiling serves, and the
// baseline of the Go benchmark of the callback path (deployments/e2e
// BenchmarkCallback).
func CeilingHandler(cfg *configs.Config, log *slog.Logger) http.Handler {
	return gateway.NewCallbackHandler(cfg.GatewayConfig(), dropAcceptor{}, gateway.CallbackOptions{Logger: log})
}

// benchCeilingCommand serves the WeChat callback path alone — signature
// and replay checks, decryption, parsing, the `success` answer — with
// nothing stored: the ceiling `make bench-e2e` compares the relay with
// (docs/performance.md). It is not a relay: every message is dropped.
func benchCeilingCommand(e cmdEnv) int {
	cfg, _, code := configFlags(e, "bench-ceiling")
	if code != 0 {
		return code
	}
	log := slog.New(slog.NewTextHandler(e.stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	mux := http.NewServeMux()
	mux.Handle("/wechat/", CeilingHandler(cfg, log))
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		fmt.Fprintf(e.stderr, "wechat-relay: bench-ceiling: %v\n", err)
		return 1
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	fmt.Fprintf(e.stdout, "bench-ceiling: WeChat callbacks on http://%s/wechat/<account>, every message dropped\n", ln.Addr())
	go func() {
		<-e.ctx.Done()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
	}()
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		fmt.Fprintf(e.stderr, "wechat-relay: bench-ceiling: %v\n", err)
		return 1
	}
	return 0
}
