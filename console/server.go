package console

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/wechat-relay/wechat-relay/relay"
	"github.com/wechat-relay/wechat-relay/relay/report"
)

// Server is the console: it owns the console's dependencies and serves
// all of /api/ (Handler, routes.go): sign-in and sessions, the inbox,
// history, sends, staff actions, media, admin, compliance, search and
// export jobs. The live side, the WebSocket connections, is its Hub's;
// the Server authenticates an upgrade and hands it over.
type Server struct {
	// access decides who may read, write and manage a conversation; the
	// Hub shares it.
	*access
	cfg Config
	log *slog.Logger
	now func() time.Time

	history    History
	outbox     Outbox            // nil: read-only
	sessions   *sessions         // nil without Deps.Sessions
	throttle   LoginThrottle     // nil: no lockout
	proxies    proxies           // whose X-Forwarded-For names the client
	marks      ReadMarks         // nil: no read marks
	inbox      Inbox             // nil: no inbox
	deliveries Deliveries        // nil: no delivery statuses
	media      relay.MediaReader // nil: no media
	staff      Staff             // nil: no staff actions
	qr         QRCodes           // nil: no QR codes
	search     relay.Searcher    // nil: no search
	profiles   *relay.Profiles   // nil: no client profiles
	exports    *exportJobs       // nil without Deps.Export
	reports    *report.Service   // nil without Deps.Reports
	audit      Audit
	idps       []IdentityProvider
	compliance ComplianceDeps
	journal    JournalStatus // nil: no journal
	auth       *authenticator
	hub        *Hub

	// comparePassword is bcrypt.CompareHashAndPassword; a seam for the
	// test that every sign-in, known id or not, costs one comparison.
	comparePassword func(hash, password []byte) error

	// ctx is the root of the console's context tree: the hub's (and so
	// every connection's) and every export job's. Shutdown cancels it.
	ctx    context.Context
	cancel context.CancelFunc
}

// NewServer returns the console; Run starts its hub's bus subscription.
func NewServer(cfg Config, d Deps) *Server {
	log := d.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if d.Now == nil {
		d.Now = time.Now
	}
	if d.Audit == nil {
		d.Audit = SlogAudit{Log: log}
	}
	cfg = cfg.withDefaults()
	dir := d.Directory
	if dir == nil {
		dir = relay.NewDirectory(nil, cfg.Seed(employeeAccounts(cfg.Employees)), log, d.Now)
	}
	s := &Server{
		access: &access{dir: dir, assign: d.Assignments},
		cfg:    cfg, log: log, now: d.Now,
		history: d.History, outbox: d.Outbox, throttle: d.Throttle, marks: d.ReadMarks, inbox: d.Inbox,
		deliveries: d.Deliveries, media: d.Media, staff: d.Staff, qr: d.QRCodes, search: d.Search,
		audit: d.Audit, idps: d.IdentityProviders, compliance: d.Compliance, profiles: d.Profiles, journal: d.Journal,
		comparePassword: bcrypt.CompareHashAndPassword,
	}
	if d.Sessions != nil {
		s.sessions = &sessions{store: d.Sessions, idle: cfg.SessionIdle, maxAge: cfg.SessionMaxAge, now: d.Now}
	}
	var err error
	if s.proxies, err = parseProxies(cfg.TrustedProxies); err != nil {
		log.Error("no proxy trusted for client addresses", "err", err) // Validate refuses it before
	}
	s.auth = newAuthenticator(dir, s.sessions)
	s.ctx, s.cancel = context.WithCancel(context.Background())
	if d.Reports != nil {
		s.reports = &report.Service{Store: d.Reports, Now: d.Now, Holds: d.Compliance.Holds}
		// The review queue only from the log that checks reviews.
		if rl, ok := d.Compliance.Alerts.(*relay.ReviewLog); ok {
			s.reports.Reviews = rl
		}
	}
	if d.Export != nil {
		s.exports = newExportJobs(s, d.Export, d.Version)
	}
	s.hub = newHub(s.ctx, cfg, hubDeps{
		bus: d.Bus, history: d.History, access: s.access, audit: d.Audit, log: log, now: d.Now, registerer: d.Registerer,
	})
	return s
}

// Run subscribes the hub to the bus and dispatches events until ctx is
// done. A failed subscription is retried: meanwhile consoles still catch
// up from the archive.
func (s *Server) Run(ctx context.Context) error { return s.hub.Run(ctx) }

// Subscribed returns nil while the hub's bus subscription is up: without
// it, this instance's consoles get no live messages (a readiness check).
func (s *Server) Subscribed() error { return s.hub.Subscribed() }

// Alert pushes a lexicon hit to the supervisors, compliance officers and
// admins connected to this instance (Hub.Alert).
func (s *Server) Alert(hit relay.LexiconHit) { s.hub.Alert(hit) }

// Shutdown stops what the console runs on its own: export jobs are
// refused from now on and the running ones cancelled (their partial
// files removed), every connection is closed with a "going away" frame,
// and it waits for both, or for ctx. The HTTP server's own Shutdown does
// not close hijacked WebSocket connections. Idempotent.
func (s *Server) Shutdown(ctx context.Context) error {
	s.exports.close()
	err := s.hub.Shutdown(ctx)
	if xerr := s.exports.wait(ctx); err == nil {
		err = xerr
	}
	s.cancel()
	return err
}

// waitGroup waits for wg, or for ctx: shutdown is bounded by its context
// even when a goroutine does not end.
func waitGroup(ctx context.Context, wg *sync.WaitGroup) error {
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
