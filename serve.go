package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/redis/go-redis/v9"
	"github.com/silenceper/wechat/v2/cache"
	"golang.org/x/sync/errgroup"

	"github.com/wechat-relay/wechat-relay/configs"
	"github.com/wechat-relay/wechat-relay/console"
	"github.com/wechat-relay/wechat-relay/gateway"
	"github.com/wechat-relay/wechat-relay/relay"
	"github.com/wechat-relay/wechat-relay/relay/export"
	"github.com/wechat-relay/wechat-relay/storage/archive"
	"github.com/wechat-relay/wechat-relay/storage/bus"
	"github.com/wechat-relay/wechat-relay/storage/embedded"
	"github.com/wechat-relay/wechat-relay/storage/spool"
	"github.com/wechat-relay/wechat-relay/storage/state"
)

// store is the archive as the process uses it.
type store interface {
	relay.Archive
	relay.MediaStore
	relay.EventLog
	relay.Interactions
	relay.ConversationIndex
	relay.MediaReader
	relay.AuditStore
	relay.AlertStore
	relay.RetentionStore
	relay.DirectoryStore
	export.Source
	Ping(ctx context.Context) error
	Close() error
}

// consoleState is where the console keeps sessions, the sign-in
// throttle and read marks.
type consoleState interface {
	console.SessionStore
	console.LoginThrottle
	console.ReadMarks
}

// system is one relay process, built from the configuration.
type system struct {
	cfg      *configs.Config
	log      *slog.Logger
	reg      *prometheus.Registry
	archive  store
	spool    *spool.Spool
	rdb      *redis.Client // nil in single-instance mode
	pipeline *relay.Pipeline
	outbox   *relay.Outbox
	bot      *relay.Bot
	bus      relay.Bus
	media    *relay.MediaWorker
	hub      *console.Server
	dir      *relay.Directory
	lexicon  *relay.LexiconWatcher // nil without lexicon rules
	handler  http.Handler
	// stopping is set when shutdown begins: /readyz fails from then on.
	stopping atomic.Bool
}

// build opens storage and wires the parts. On error, whatever was opened
// is closed again.
func build(ctx context.Context, cfg *configs.Config, log *slog.Logger) (_ *system, err error) {
	// s is closed through its own variable: a failed return sets the
	// result to nil.
	s := &system{cfg: cfg, log: log, reg: prometheus.NewRegistry()}
	defer func() {
		if err != nil {
			s.close()
		}
	}()
	s.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	if a := cfg.Storage.ClickHouse; a.Addr != "" {
		acfg := archive.Config{Addr: a.Addr, Database: a.Database, Username: a.Username, Password: a.Password,
			NoMigrate: !cfg.Migrate()}
		alog := log.With("component", "archive")
		octx, cancel := context.WithTimeout(ctx, 10*time.Second)
		ch, err := archive.Open(octx, acfg, alog)
		cancel()
		if err != nil && unreachable(err) {
			// Callbacks must still be accepted into the spool while
			// ClickHouse is down, also after a restart: start, and let
			// the archive prepare itself when the server answers.
			log.Warn("ClickHouse unreachable at start: accepting callbacks into the spool, archiving when it answers",
				"addr", a.Addr, "err", err)
			ch, err = archive.OpenLazy(acfg, alog)
		}
		if err != nil {
			return nil, fmt.Errorf("opening the ClickHouse archive at %s: %w", a.Addr, err)
		}
		s.archive = ch
	} else {
		log.Warn("no ClickHouse configured: using the embedded archive, for trials only", "path", cfg.ArchivePath())
		emb, err := embedded.Open(ctx, cfg.ArchivePath(), log.With("component", "archive"))
		if err != nil {
			return nil, fmt.Errorf("opening the embedded archive: %w", err)
		}
		s.archive = emb
	}

	s.spool, err = spool.Open(spool.Options{Dir: cfg.SpoolDir(), Logger: log.With("component", "spool")})
	if err != nil {
		return nil, fmt.Errorf("opening the spool: %w", err)
	}
	if n := s.spool.Len(); n > 0 {
		log.Info("spool replayed: messages waiting to be archived", "pending", n)
	}

	var (
		dedupe   relay.Dedupe
		seq      relay.Sequencer
		order    relay.AcceptOrder // nil with one instance: its spool keeps the order
		assign   relay.Assignments
		b        relay.Bus
		tokCache cache.Cache
		sessions consoleState
	)
	if r := cfg.Storage.Redis; r.Addr != "" || r.Sentinel.MasterName != "" {
		// One address, or the master the sentinels name (redis.go).
		s.rdb = redisClient(cfg)
		dedupe = state.NewRedisDedupe(s.rdb, r.Prefix)
		seq = state.NewRedisSequencer(s.rdb, r.Prefix)
		order = state.NewRedisOrder(s.rdb, r.Prefix)
		assign = state.NewRedisAssignments(s.rdb, r.Prefix)
		tokCache = state.NewRedisTokenCache(s.rdb, r.Prefix, state.TokenCacheOptions{Logger: log.With("component", "token-cache")})
		b = bus.NewRedisBus(s.rdb, r.Prefix, bus.Options{Logger: log.With("component", "bus")})
		sessions = state.NewRedisSessions(s.rdb, r.Prefix)
	} else {
		log.Warn("no Redis configured: dedupe, sequences, assignments and the bus are in memory; run a single instance only")
		dedupe = state.NewMemoryDedupe()
		seq = state.NewMemorySequencer()
		assign = state.NewMemoryAssignments()
		tokCache = state.NewMemoryTokenCache()
		b = bus.NewMemoryBus(bus.Options{Logger: log.With("component", "bus")})
		sessions = state.NewMemorySessions()
	}

	gcfg := cfg.GatewayConfig()
	api, err := gateway.NewAPI(gcfg, tokCache, log.With("component", "wechat-api"))
	if err != nil {
		return nil, fmt.Errorf("setting up the WeChat API client: %w", err)
	}
	s.media = relay.NewMediaWorker(cfg.Media, s.archive, api, log.With("component", "media"))
	// The archive is sealed under a writer id kept in the spool directory
	// (writer_id.go) unless the configuration names one.
	pcfg := cfg.Pipeline
	if pcfg.Writer == "" {
		if pcfg.Writer, err = configs.WriterID(cfg.SpoolDir()); err != nil {
			return nil, err
		}
	}
	// The directory (employees, teams) is the configuration's, changed by
	// what admins archived since.
	s.dir = relay.NewDirectory(s.archive, cfg.DirectorySeed(), log.With("component", "directory"), nil)
	s.dir.Instrument(s.reg)
	lctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	err = s.dir.Load(lctx)
	cancel()
	if err != nil {
		log.Warn("directory not read from the archive: starting from the configuration's, reloading until the archive answers", "err", err)
	}
	s.pipeline, err = relay.NewPipeline(pcfg, relay.Deps{
		Spool: s.spool, Archive: s.archive, Bus: b, Dedupe: dedupe, Sequencer: seq, Order: order,
		Router: relay.NewDirectoryRouter(assign, s.dir), Media: s.media,
		Logger: log.With("component", "pipeline"), Metrics: relay.NewMetrics(s.reg),
	})
	if err != nil {
		return nil, err
	}
	sender, err := gateway.NewSender(api, s.reg, log.With("component", "wechat-send"))
	if err != nil {
		return nil, fmt.Errorf("setting up the WeChat sender: %w", err)
	}
	lex, err := cfg.CompileLexicon()
	if err != nil {
		return nil, err
	}
	if lex != nil {
		lex.TeamsOf(s.dir.TeamsOf)
	}
	auditLog, err := relay.NewAuditLog(s.archive, pcfg.Writer, log.With("component", "audit"), nil)
	if err != nil {
		return nil, err
	}
	// The audit records are signed with the key the pipeline loaded for
	// its seals (pipeline.seal_key_file), if any.
	auditLog.SignWith(s.pipeline.Signer())
	if lex != nil {
		// The hub is built below; a send is blocked only once it runs.
		lex.OnBlocked(relay.BlockedSendRecorder(auditLog, s.archive, func(h relay.LexiconHit) { s.hub.Alert(h) }, log.With("component", "lexicon")))
	}
	s.outbox, err = relay.NewOutbox(cfg.Outbox, relay.OutboxDeps{
		Lexicon:  lex,
		Pipeline: s.pipeline, Archive: s.archive, Events: s.pipeline.SealedEvents(s.archive), Interactions: s.archive, Media: s.archive,
		Sender: sender, Bus: b, Dedupe: dedupe, Logger: log.With("component", "outbox"),
	})
	if err != nil {
		return nil, err
	}
	s.bot, err = relay.NewBot(cfg.Bot, s.outbox, log.With("component", "bot"))
	if err != nil {
		return nil, err
	}
	// No reply before the notice that the conversation is recorded.
	s.outbox.NoticeFirst(s.bot.EnsureNotice)
	s.bus = b
	staff, err := relay.NewStaff(s.pipeline, assign, nil)
	if err != nil {
		return nil, err
	}
	qr, err := gateway.NewQRCodes(api, log.With("component", "wechat-qrcode"))
	if err != nil {
		return nil, err
	}
	s.hub = console.NewServer(cfg.ConsoleConfig(), console.Deps{
		Bus: b, History: s.archive, Search: s.archive, Export: s.archive, Assignments: assign, Outbox: s.outbox,
		Sessions: sessions, Throttle: sessions, ReadMarks: sessions,
		Inbox: s.archive, Deliveries: s.archive, Media: s.archive, Staff: staff, QRCodes: qr, Directory: s.dir,
		Logger: log.With("component", "console"), Registerer: s.reg,
		Audit:      console.ArchiveAudit{Log: auditLog, Slog: console.SlogAudit{Log: log.With("component", "console")}},
		Compliance: console.ComplianceDeps{Audit: s.archive, Alerts: s.archive, Retention: s.archive},
		Version:    relayVersion(),
	})
	if lex != nil {
		s.lexicon = &relay.LexiconWatcher{Lexicon: lex, Bus: b, Store: s.archive, Scan: s.archive, Alert: s.hub.Alert, Log: log.With("component", "lexicon")}
	}

	callbacks := gateway.NewCallbackHandler(gcfg, s.pipeline, gateway.CallbackOptions{
		Logger: log.With("component", "callback"), Registerer: s.reg,
	})
	mux := http.NewServeMux()
	mux.Handle("/wechat/", callbacks)
	mux.Handle("/api/", s.hub.Handler())
	mux.Handle("/", console.WebHandler())
	mux.Handle("GET /metrics", promhttp.HandlerFor(s.reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok\n") })
	mux.HandleFunc("GET /readyz", s.ready)
	s.handler = mux
	return s, nil
}

// unreachable reports whether err means the server could not be reached
// at all, as opposed to refusing (bad credentials, a schema it rejects).
func unreachable(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) || errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, context.DeadlineExceeded)
}

// ready answers 200 only when this instance can do its work: it is not
// shutting down, its spool accepts callbacks, the archive writer runs,
// the archive answers (without it nothing is delivered), and its bus
// subscriptions are up (without them its consoles and lexicon alerts go
// quiet). Otherwise 503, with one line per problem, so that a load
// balancer sends WeChat to another instance.
func (s *system) ready(w http.ResponseWriter, r *http.Request) {
	var problems []string
	check := func(what string, err error) {
		if err != nil {
			problems = append(problems, what+": "+err.Error())
		}
	}
	if s.stopping.Load() {
		problems = append(problems, "shutting down")
	}
	check("spool", s.spool.Err())
	check("archive writer", s.pipeline.Running())
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	check("archive unavailable", s.archive.Ping(ctx))
	check("console", s.hub.Subscribed())
	check("bot", s.bot.Subscribed())
	if s.lexicon != nil {
		check("lexicon watcher", s.lexicon.Subscribed())
	}
	if len(problems) > 0 {
		http.Error(w, strings.Join(problems, "\n"), http.StatusServiceUnavailable)
		return
	}
	io.WriteString(w, "ready\n")
}

func (s *system) close() {
	if s.spool != nil {
		if err := s.spool.Close(); err != nil {
			s.log.Error("closing the spool", "err", err)
		}
	}
	if s.archive != nil {
		if err := s.archive.Close(); err != nil {
			s.log.Error("closing the archive", "err", err)
		}
	}
	if s.rdb != nil {
		s.rdb.Close()
	}
}

// serve runs the relay until ctx is done, then stops in order: no new
// requests, consoles closed, the pipeline drained into the archive,
// storage closed.
func serve(ctx context.Context, cfg *configs.Config, demo bool, stdout, stderr io.Writer) error {
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
	s, err := build(ctx, cfg, log)
	if err != nil {
		ln.Close()
		return err
	}
	defer s.close()
	srv := &http.Server{
		Handler:           s.handler,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       120 * time.Second,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	base := "http://" + ln.Addr().String()
	log.Info("wechat-relay listening", "addr", ln.Addr().String(), "version", relayVersion())
	if demo {
		printDemo(stdout, base, sim.base, cfg)
	}

	// The workers outlive the HTTP server: they stop after it, so
	// callbacks accepted during shutdown are drained. One that stops on
	// its own stops the process (workers.go).
	work := s.startWorkers()
	stopped := false
	defer func() {
		if !stopped {
			work.Stop()
		}
	}()
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		select {
		case <-gctx.Done():
			return nil
		case err := <-work.Failed():
			return err
		}
	})
	if sim != nil {
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
		g.Go(func() error {
			if err := sim.seed(gctx, base, cfg); err != nil && gctx.Err() == nil {
				log.Warn("demo data", "err", err)
			}
			return nil
		})
	}
	g.Go(func() error {
		if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("http server: %w", err)
		}
		return nil
	})
	g.Go(func() error {
		<-gctx.Done()
		// Lame duck: /readyz fails from now on, so the balancer sends
		// the next callbacks elsewhere while these drain.
		s.stopping.Store(true)
		log.Info("shutting down")
		sctx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
		defer cancel()
		err := srv.Shutdown(sctx)
		if herr := s.hub.Shutdown(sctx); herr != nil {
			log.Warn("closing console connections", "err", herr)
		}
		return err
	})
	err = g.Wait()
	stopped = true
	if werr := work.Stop(); werr != nil && err == nil {
		err = werr
	}
	log.Info("stopped", "spool_pending", s.spool.Len())
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
