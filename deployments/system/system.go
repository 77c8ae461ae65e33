package system

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

	"github.com/wechat-relay/wechat-relay/configs"
	"github.com/wechat-relay/wechat-relay/console"
	"github.com/wechat-relay/wechat-relay/gateway"
	"github.com/wechat-relay/wechat-relay/relay"
	"github.com/wechat-relay/wechat-relay/relay/export"
	"github.com/wechat-relay/wechat-relay/relay/journal"
	"github.com/wechat-relay/wechat-relay/relay/report"
	"github.com/wechat-relay/wechat-relay/storage/archive"
	"github.com/wechat-relay/wechat-relay/storage/bus"
	"github.com/wechat-relay/wechat-relay/storage/embedded"
	"github.com/wechat-relay/wechat-relay/storage/spool"
	"github.com/wechat-relay/wechat-relay/storage/state"
)

// Store is the archive as the process uses it.
type Store interface {
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
	relay.NoticeStore
	relay.ProfileStore
	relay.JournalStore
	export.Source
	report.Store
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

// Relay is one relay process, built from the configuration: its storage,
// pipeline, outbox, bot, console hub, WeChat gateway and HTTP handler
// (build), then running (Start): its workers started, its HTTP server
// serving.
type Relay struct {
	cfg      *configs.Config
	log      *slog.Logger
	reg      *prometheus.Registry
	archive  Store
	spool    *spool.Spool
	rdb      *redis.Client // nil in single-instance mode
	pipeline *relay.Pipeline
	outbox   *relay.Outbox
	delivery *relay.Delivery
	bot      *relay.Bot
	bus      relay.Bus
	media    *relay.MediaWorker
	console  *console.Server
	dir      *relay.Directory
	lexicon  *relay.LexiconWatcher // nil without lexicon rules
	journal  *journal.Worker       // nil without a journal
	handler  http.Handler
	// stopping is set when shutdown begins: /readyz fails from then on.
	stopping atomic.Bool

	// Set by Start.
	srv    *http.Server
	url    string
	work   *workers
	served chan error // what the HTTP server's Serve returned
}

// build opens storage and wires the parts; version is what the console
// writes into export manifests. On error, whatever was opened
// is closed again.
func build(ctx context.Context, cfg *configs.Config, log *slog.Logger, version string) (_ *Relay, err error) {
	// s is closed through its own variable: a failed return sets the
	// result to nil.
	s := &Relay{cfg: cfg, log: log, reg: prometheus.NewRegistry()}
	defer func() {
		if err != nil {
			s.Close()
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

	// An assignment the store lost (Redis flushed, a restart in memory
	// mode) is rebuilt from the archive before anyone routes or checks
	// access with it: lost state never makes a conversation nobody's.
	assign = relay.NewRecoveredAssignments(assign, s.archive, log.With("component", "assignments"))

	gcfg := cfg.GatewayConfig()
	api, err := gateway.NewAPI(gcfg, tokCache, log.With("component", "wechat-api"))
	if err != nil {
		return nil, fmt.Errorf("setting up the WeChat API client: %w", err)
	}
	s.media = relay.NewMediaWorker(cfg.Media, s.archive, api, log.With("component", "media"))
	// The archive is sealed under a writer id kept in the spool directory
	// (configs/writer_id.go) unless the configuration names one.
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
	// Archived outbound messages go from the pipeline's writer to the
	// delivery's workers through this queue.
	outbound := relay.NewOutboundQueue(cfg.Outbox)
	s.pipeline, err = relay.NewPipeline(pcfg, relay.Deps{
		Spool: s.spool, Archive: s.archive, Bus: b, Dedupe: dedupe, Sequencer: seq, Order: order,
		Router: relay.NewDirectoryRouter(assign, s.dir), Media: s.media, Outbound: outbound,
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
	// The directory signs its changes with that key too, and loads only
	// records signed by a trusted key and backed by their admin audit
	// record; a refused one is alerted like a lexicon hit (the console is
	// built below, and raises alerts once it runs).
	trusted, err := relay.LoadTrustedKeys(pcfg.TrustedKeysFile)
	if err != nil {
		return nil, fmt.Errorf("pipeline.trusted_keys_file: %w", err)
	}
	err = s.dir.Trust(relay.DirectoryTrust{Signer: s.pipeline.Signer(), PublicKeys: trusted, Audit: s.archive, Alerts: s.archive,
		Alert: func(h relay.LexiconHit) {
			if s.console != nil {
				s.console.Alert(h)
			}
		}})
	if err != nil {
		return nil, err
	}
	// Legal holds and alert reviews are signed and checked alike: a
	// release or a review that does not verify does not count.
	recordTrust := relay.RecordTrust{Signer: s.pipeline.Signer(), PublicKeys: trusted, Audit: s.archive, Alerts: s.archive,
		Alert: func(h relay.LexiconHit) {
			if s.console != nil {
				s.console.Alert(h)
			}
		}, Log: log.With("component", "compliance")}
	holds, err := relay.NewLegalHolds(s.archive, recordTrust)
	if err != nil {
		return nil, err
	}
	reviews, err := relay.NewReviewLog(s.archive, recordTrust)
	if err != nil {
		return nil, err
	}
	// Client profiles are part of the record: signed and checked alike.
	profiles, err := relay.NewProfiles(s.archive, recordTrust)
	if err != nil {
		return nil, err
	}
	lctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	err = s.dir.Load(lctx)
	cancel()
	if err != nil {
		log.Warn("directory not read from the archive: starting from the configuration's, reloading until the archive answers", "err", err)
	}
	if lex != nil {
		// The console is built below; a send is blocked only once it runs.
		lex.OnBlocked(relay.BlockedSendRecorder(auditLog, s.archive, func(h relay.LexiconHit) { s.console.Alert(h) }, log.With("component", "lexicon")))
	}
	events := s.pipeline.SealedEvents(s.archive)
	s.delivery, err = relay.NewDelivery(cfg.Outbox, relay.DeliveryDeps{
		Queue: outbound, Writer: s.pipeline.Writer(), Events: events,
		Sender: sender, Bus: b, Dedupe: dedupe, Logger: log.With("component", "delivery"),
	})
	if err != nil {
		return nil, err
	}
	s.outbox, err = relay.NewOutbox(cfg.Outbox, relay.OutboxDeps{
		Lexicon:  lex,
		Pipeline: s.pipeline, Queue: outbound, Events: events, Interactions: s.archive, Media: s.archive,
		Sender: sender, Dedupe: dedupe, Logger: log.With("component", "outbox"),
	})
	if err != nil {
		return nil, err
	}
	s.bot, err = relay.NewBot(cfg.Bot, s.outbox, s.archive, log.With("component", "bot"))
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
	journalStatus, err := s.buildJournal(dedupe, pcfg.Writer) // journal.go
	if err != nil {
		return nil, err
	}
	s.console = console.NewServer(cfg.ConsoleConfig(), console.Deps{
		Bus: b, History: s.archive, Search: s.archive, Export: s.archive, Reports: s.archive, Assignments: assign, Outbox: s.outbox,
		Sessions: sessions, Throttle: sessions, ReadMarks: sessions,
		Inbox: s.archive, Deliveries: s.archive, Media: s.archive, Staff: staff, QRCodes: qr, Directory: s.dir,
		Logger: log.With("component", "console"), Registerer: s.reg,
		Audit:      console.ArchiveAudit{Log: auditLog, Slog: console.SlogAudit{Log: log.With("component", "console")}},
		Compliance: console.ComplianceDeps{Audit: s.archive, Alerts: reviews, Holds: holds},
		Profiles:   profiles,
		Version:    version,

		IdentityProviders: identityProviders(ctx, cfg, sessions, s.reg, log),
		Journal:           journalStatus,
	})
	if lex != nil {
		s.lexicon = &relay.LexiconWatcher{Lexicon: lex, Bus: b, Store: s.archive, Scan: s.archive, Alert: s.console.Alert, Log: log.With("component", "lexicon")}
	}

	callbacks := gateway.NewCallbackHandler(gcfg, s.pipeline, gateway.CallbackOptions{
		Logger: log.With("component", "callback"), Registerer: s.reg,
	})
	mux := http.NewServeMux()
	mux.Handle("/wechat/", callbacks)
	mux.Handle("/api/", s.console.Handler())
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
func (s *Relay) ready(w http.ResponseWriter, r *http.Request) {
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
	check("console", s.console.Subscribed())
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

// Close closes the storage: after Shutdown, or instead of it when the
// relay never started.
func (s *Relay) Close() {
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

// Handler is the relay's HTTP handler: WeChat callbacks under /wechat/,
// the console's API under /api/ and its web app, /metrics, /healthz and
// /readyz.
func (s *Relay) Handler() http.Handler { return s.handler }

// Archive is the archive the relay writes.
func (s *Relay) Archive() Store { return s.archive }

// Spool is the relay's spool, where accepted messages wait for the
// archive.
func (s *Relay) Spool() *spool.Spool { return s.spool }

// LexiconWatcher is the watcher of the lexicon rules, nil without rules.
func (s *Relay) LexiconWatcher() *relay.LexiconWatcher { return s.lexicon }
