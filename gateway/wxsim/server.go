package wxsim

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"
)

// Server is the simulator's HTTP face: the WeChat API under /cgi-bin/, the
// admin API under /sim/api/, media downloads under /sim/media/, the phone
// page under /phone/ ("/" redirects to it; see phone.go) and /healthz.
type Server struct {
	sim *Sim
	mux *http.ServeMux
	log *slog.Logger
}

var _ http.Handler = (*Server)(nil)

// NewServer returns the HTTP handler for sim.
func NewServer(sim *Sim) *Server {
	s := &Server{sim: sim, mux: http.NewServeMux(), log: sim.log}
	s.mux.Handle("/cgi-bin/", sim.APIHandler())
	s.mux.Handle("/sim/api/", sim.AdminHandler())
	s.mux.HandleFunc("GET /sim/media/{id}", sim.handleRawMedia)
	s.mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte("ok\n"))
	})
	s.registerPhone(s.mux)
	return s
}

// Mux is the server's router. Register additional pages here; the API,
// admin, media and phone page routes ("/", "/phone/") are already taken.
func (s *Server) Mux() *http.ServeMux { return s.mux }

// Sim returns the simulator the server serves.
func (s *Server) Sim() *Sim { return s.sim }

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.mux.ServeHTTP(w, r) }

// shutdownGrace bounds how long Serve waits for requests in flight.
const shutdownGrace = 5 * time.Second

// Serve answers HTTP on ln until ctx ends, then shuts down: requests in
// flight (hung ones included) are cancelled and waited for, up to a few
// seconds. When the simulator has no public URL yet, it becomes
// http://<ln address>.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	s.sim.mu.Lock()
	if s.sim.publicURL == "" {
		s.sim.publicURL = "http://" + ln.Addr().String()
	}
	s.sim.mu.Unlock()
	base, cancelBase := context.WithCancel(context.Background())
	defer cancelBase()
	srv := &http.Server{
		Handler:           s,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       2 * time.Minute,
		// No WriteTimeout: hung-response faults and slow downloads are the
		// point; every handler ends with its request's context.
		IdleTimeout: 2 * time.Minute,
		BaseContext: func(net.Listener) context.Context { return base },
		ErrorLog:    slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	s.log.Info("wxsim: serving", "addr", ln.Addr().String())
	select {
	case err := <-errc:
		return fmt.Errorf("wxsim: serve: %w", err)
	case <-ctx.Done():
	}
	cancelBase()
	shCtx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
	defer cancel()
	err := srv.Shutdown(shCtx)
	if serveErr := <-errc; !errors.Is(serveErr, http.ErrServerClosed) && err == nil {
		err = serveErr
	}
	if err != nil {
		return fmt.Errorf("wxsim: shutdown: %w", err)
	}
	return nil
}
