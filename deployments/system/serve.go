package system

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/wechat-relay/wechat-relay/configs"
	"github.com/wechat-relay/wechat-relay/gateway"
)

// Serve runs the relay until ctx is done, or until a worker stops on its
// own or the HTTP server fails (that error is returned), then stops in
// order (Shutdown): no new requests, consoles closed, the pipeline
// drained into the archive, storage closed. With demo, the WeChat
// simulator runs in-process and plays WeChat and two clients. version
// is logged and written into export manifests.
func Serve(ctx context.Context, cfg *configs.Config, demo bool, stdout, stderr io.Writer, version string) error {
	log := newLogger(cfg, stderr)
	var sim *demoSim
	if demo {
		var err error
		if sim, err = startDemoSim(log); err != nil {
			return err
		}
		cfg.WeChat.APIBaseURL = sim.base
	}
	// silenceper's API host and HTTP client are process-wide: set once.
	gcfg := cfg.GatewayConfig()
	gateway.ConfigureAPI(gcfg.APIBaseURL, gcfg.APITimeout)
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("listening on %s: %w", cfg.Listen, err)
	}
	r, err := Start(ctx, cfg, ln, log, version)
	if err != nil {
		return err
	}
	defer r.Close()
	if demo {
		printDemo(stdout, r.URL(), sim.base, cfg)
	}
	seedCtx, stopSeed := context.WithCancel(ctx)
	seeded := make(chan struct{})
	if sim == nil {
		close(seeded)
	} else {
		// The simulator plays WeChat, which outlives the relay: it stops
		// after the relay's work has drained (the outbox may still call
		// it), and its own shutdown is no reason to fail the relay's.
		simCtx, stopSim := context.WithCancel(context.Background())
		simDone := make(chan struct{})
		go func() {
			defer close(simDone)
			if err := sim.serve(simCtx); err != nil {
				log.Warn("demo simulator", "err", err)
			}
		}()
		defer func() { stopSim(); <-simDone }()
		go func() {
			defer close(seeded)
			if err := sim.seed(seedCtx, r.URL(), cfg); err != nil && seedCtx.Err() == nil {
				log.Warn("demo data", "err", err)
			}
		}()
	}
	err = r.Wait(ctx)
	stopSeed()
	<-seeded
	if serr := r.Shutdown(); err == nil {
		err = serr
	}
	return err
}

// Start builds the relay from cfg and runs it on ln: every worker
// started (workers.go), the HTTP server serving. Serve and the
// end-to-end tests start a relay this way, and stop it with Shutdown
// then Close. On error ln is closed and whatever was opened is closed
// again.
func Start(ctx context.Context, cfg *configs.Config, ln net.Listener, log *slog.Logger, version string) (*Relay, error) {
	s, err := build(ctx, cfg, log, version)
	if err != nil {
		ln.Close()
		return nil, err
	}
	s.srv = &http.Server{
		Handler:           s.handler,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       120 * time.Second,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	s.url = "http://" + ln.Addr().String()
	log.Info("wechat-relay listening", "addr", ln.Addr().String(), "version", version)
	// The workers outlive the HTTP server: they stop after it, so
	// callbacks accepted during shutdown are drained. One that stops on
	// its own stops the process (workers.go).
	s.work = s.startWorkers()
	s.served = make(chan error, 1)
	go func() {
		err := s.srv.Serve(ln)
		if errors.Is(err, http.ErrServerClosed) {
			err = nil
		} else {
			err = fmt.Errorf("http server: %w", err)
		}
		s.served <- err
	}()
	return s, nil
}

// URL is the relay's base URL, http:// and the address it listens on.
func (s *Relay) URL() string { return s.url }

// Wait returns nil once ctx is done, or the error of the first worker
// that stopped on its own, or of the HTTP server if it failed: either
// way the process must stop (Shutdown), so that it is restarted.
func (s *Relay) Wait(ctx context.Context) error {
	select {
	case <-ctx.Done():
		return nil
	case err := <-s.work.Failed():
		return err
	case err := <-s.served:
		return err
	}
}

// Shutdown stops a started relay in order: /readyz fails from now on
// (lame duck, so the balancer sends the next callbacks elsewhere), the
// HTTP server stops accepting and ends its requests, the consoles are
// closed, then the workers drain what was accepted and stop. Storage
// stays open until Close.
func (s *Relay) Shutdown() error {
	s.stopping.Store(true)
	s.log.Info("shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), s.cfg.ShutdownTimeout)
	defer cancel()
	err := s.srv.Shutdown(sctx)
	if herr := s.console.Shutdown(sctx); herr != nil {
		s.log.Warn("closing console connections", "err", herr)
	}
	if werr := s.work.Stop(); werr != nil && err == nil {
		err = werr
	}
	s.log.Info("stopped", "spool_pending", s.spool.Len())
	return err
}

func newLogger(cfg *configs.Config, w io.Writer) *slog.Logger {
	var level slog.Level
	level.UnmarshalText([]byte(cfg.Log.Level))
	opts := &slog.HandlerOptions{Level: level}
	if cfg.Log.Format == "text" {
		return slog.New(slog.NewTextHandler(w, opts))
	}
	return slog.New(slog.NewJSONHandler(w, opts))
}

func printDemo(w io.Writer, base, simBase string, cfg *configs.Config) {
	fmt.Fprintf(w, "\nwechat-relay is running with its embedded demo defaults (not for production).\n\n")
	fmt.Fprintf(w, "  console               %s/\n", base)
	fmt.Fprintf(w, "  phone (WeChat sim)    %s/phone/   play a client: write to the account, scan an employee's QR code\n", simBase)
	fmt.Fprintf(w, "  WeChat callback URL   %s/wechat/demo   (Token %q, EncodingAESKey %q, safe mode)\n", base, configs.DemoToken, configs.DemoAESKey)
	fmt.Fprintf(w, "  console API           %s/api/me\n", base)
	fmt.Fprintf(w, "  employees             sign in to the console with an id and password; API clients use the token\n")
	for _, e := range cfg.Console.Employees {
		fmt.Fprintf(w, "    %-6s %-10s password %-20s token %s\n", e.ID, e.Role, configs.DemoPasswords[e.ID], e.Token)
	}
	fmt.Fprintf(w, "  health                %s/healthz  %s/readyz  %s/metrics\n\n", base, base, base)
}
