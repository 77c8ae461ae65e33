package console

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/wechat-relay/wechat-relay/relay"
)

// History is the part of the archive the console reads.
type History interface {
	Since(ctx context.Context, conv relay.ConversationID, after uint64, limit int) ([]relay.Message, error)
}

// Assignments tells who serves a conversation.
type Assignments interface {
	Get(ctx context.Context, conv relay.ConversationID) (string, error)
}

// Outbox sends employees' messages (relay.Outbox).
type Outbox interface {
	Send(ctx context.Context, req relay.SendRequest) (relay.SendResult, error)
	Window(ctx context.Context, conv relay.ConversationID) (relay.WindowState, error)
	Typing(ctx context.Context, conv relay.ConversationID) (bool, error)
}

// Deps are the parts of the relay the console uses. Bus, History and
// Assignments are required; every other part may be nil, which turns off
// what needs it (named in its comment).
type Deps struct {
	Bus         relay.Bus
	History     History
	Assignments Assignments
	// Outbox sends; nil: the console is read-only (no send, window,
	// typing, and no window in the inbox).
	Outbox Outbox
	// Sessions keeps browser sessions; nil: no POST /api/login, API
	// tokens only.
	Sessions SessionStore
	// Throttle locks an employee id after repeated failed sign-ins; nil:
	// no lockout.
	Throttle LoginThrottle
	// ReadMarks keeps how far each employee has read; nil: no
	// POST .../read, and every inbound message counts as unread.
	ReadMarks ReadMarks
	// Inbox lists conversations; nil: no GET /api/conversations.
	Inbox Inbox
	// Deliveries gives the delivery status of outbound messages in
	// GET .../messages; nil: messages carry no status.
	Deliveries Deliveries
	// Media reads archived media; nil: no GET /api/media/.
	Media relay.MediaReader
	// Staff carries out notes, transfers, resolve and reopen; nil: none.
	Staff Staff
	// QRCodes makes employees' QR codes; nil: no GET /api/me/qrcode.
	QRCodes QRCodes
	// Audit records supervisors' views; nil: SlogAudit on Logger.
	Audit Audit
	// Directory is who may sign in, in which role and team; admins
	// change it (GET/POST /api/admin/...). nil: the configuration's
	// employees and teams, unchangeable.
	Directory *relay.Directory
	// IdentityProviders are mounted under /api/sso/<name>/ (the seam for
	// single sign-on).
	IdentityProviders []IdentityProvider
	Logger            *slog.Logger
	Registerer        prometheus.Registerer
	// Now is the clock (time.Now).
	Now func() time.Time
	// Version is the relay's, written into export manifests.
	Version string
	// Compliance serves the audit log, alerts and legal holds under
	// /api/ (compliance.go); its nil stores leave their routes out.
	Compliance ComplianceDeps
}

// Hub routes bus events to the WebSocket connections allowed to see them.
type Hub struct {
	cfg     Config
	bus     relay.Bus
	history History
	assign  Assignments
	outbox  Outbox
	log     *slog.Logger

	sessions   *sessions // nil without Deps.Sessions
	throttle   LoginThrottle
	marks      ReadMarks
	inbox      Inbox
	deliveries Deliveries
	media      relay.MediaReader
	staff      Staff
	qr         QRCodes
	audit      Audit
	idps       []IdentityProvider
	now        func() time.Time
	dir        *relay.Directory
	auth       *authenticator
	sub        *relay.Subscriber
	compliance ComplianceDeps
	version    string
	// ctx is the parent of everything the hub runs on its own
	// (connections, export jobs): Shutdown cancels it.
	ctx    context.Context
	cancel context.CancelFunc

	mu     sync.Mutex
	conns  map[*conn]struct{}
	closed bool
	wg     sync.WaitGroup // connection goroutines

	connections prometheus.Gauge
	frames      *prometheus.CounterVec
	disconnects *prometheus.CounterVec
}

// NewHub returns a hub; Run starts its bus subscription.
func NewHub(cfg Config, d Deps) *Hub {
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
	h := &Hub{
		cfg: cfg, bus: d.Bus, history: d.History, assign: d.Assignments, outbox: d.Outbox, log: log,
		throttle: d.Throttle, marks: d.ReadMarks, inbox: d.Inbox, deliveries: d.Deliveries, media: d.Media,
		staff: d.Staff, qr: d.QRCodes, audit: d.Audit, idps: d.IdentityProviders, now: d.Now,
		compliance: d.Compliance, version: d.Version,
		conns: map[*conn]struct{}{},
		connections: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "wechat_relay_websocket_connections", Help: "Open console WebSocket connections.",
		}),
		frames: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "wechat_relay_websocket_frames_total", Help: "Frames sent to consoles, by type.",
		}, []string{"type"}),
		disconnects: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "wechat_relay_websocket_disconnects_total", Help: "Console connections closed, by reason.",
		}, []string{"reason"}),
	}
	if d.Sessions != nil {
		h.sessions = &sessions{store: d.Sessions, idle: cfg.SessionIdle, maxAge: cfg.SessionMaxAge, now: d.Now}
	}
	h.dir = d.Directory
	if h.dir == nil {
		h.dir = relay.NewDirectory(nil, cfg.Seed(employeeAccounts(cfg.Employees)), log, d.Now)
	}
	h.auth = newAuthenticator(h.dir, h.sessions)
	h.dir.OnChange(h.directoryChanged)
	h.sub = &relay.Subscriber{Name: "console", Bus: d.Bus, Log: log}
	h.ctx, h.cancel = context.WithCancel(context.Background())
	if d.Registerer != nil {
		d.Registerer.MustRegister(h.connections, h.frames, h.disconnects)
	}
	return h
}

// employeeAccounts lists the accounts the employees serve, for a hub
// given no directory.
func employeeAccounts(emps []Employee) []relay.AccountInfo {
	var out []relay.AccountInfo
	seen := map[string]bool{}
	for _, e := range emps {
		for _, a := range e.Accounts {
			if !seen[a] {
				seen[a] = true
				out = append(out, relay.AccountInfo{ID: a})
			}
		}
	}
	return out
}

// Run subscribes to the bus and dispatches events until ctx is done. A
// failed subscription is retried: meanwhile consoles still catch up from
// the archive.
func (h *Hub) Run(ctx context.Context) error { return h.sub.Run(ctx, h.dispatch) }

// Subscribed returns nil while the hub's bus subscription is up: without
// it, this instance's consoles get no live messages (a readiness check).
func (h *Hub) Subscribed() error { return h.sub.Check() }

func (h *Hub) dispatch(e relay.Event) {
	switch {
	case e.Type == relay.EventMessage && e.Message != nil:
	case e.Type == relay.EventStatus && e.Status != nil:
	default:
		return
	}
	// A transfer also reaches the employee it was taken from, who sees
	// it leave, and their team's supervisors; everything after it goes to
	// the new assignee only.
	from := ""
	if m := e.Message; m != nil && m.Direction == relay.Internal && m.Kind == relay.KindTransfer {
		from = m.Attrs[relay.AttrFrom]
	}
	h.mu.Lock()
	targets := make([]*conn, 0, len(h.conns))
	for c := range h.conns {
		if h.sees(c.emp, e.Employee) || (from != "" && h.sees(c.emp, from)) {
			targets = append(targets, c)
		}
	}
	h.mu.Unlock()
	for _, c := range targets {
		c.enqueue(outItem{event: &e})
	}
}

// mayRead reports whether emp may read conv: agents the conversations
// assigned to them; compliance, admins and supervisors in no team all;
// supervisors in teams their members' and those nobody holds.
func (h *Hub) mayRead(ctx context.Context, emp *relay.Employee, conv relay.ConversationID) (bool, error) {
	if emp.Role.SeesAll() && !teamScoped(emp) {
		return true, nil
	}
	owner, err := h.assign.Get(ctx, conv)
	if err != nil {
		return false, err
	}
	return h.sees(emp, owner), nil
}

// mayManage reports whether emp may transfer, resolve or reopen conv:
// supervisors and admins what they may read, and the employee it is
// assigned to.
func (h *Hub) mayManage(ctx context.Context, emp *relay.Employee, conv relay.ConversationID) (bool, error) {
	if emp.Role.Manages() {
		return h.mayRead(ctx, emp, conv)
	}
	return h.mayWrite(ctx, emp, conv)
}

// teamScoped reports whether emp is a supervisor limited to teams.
func teamScoped(emp *relay.Employee) bool { return emp.Role == RoleSupervisor && len(emp.Teams) > 0 }

// sees reports whether emp may read what owner holds ("" for nobody).
func (h *Hub) sees(emp *relay.Employee, owner string) bool {
	return h.dir.Snapshot().Sees(*emp, owner)
}

// mayWrite reports whether emp may write to conv: only the employee it
// is assigned to. Supervisors watch read-only.
func (h *Hub) mayWrite(ctx context.Context, emp *relay.Employee, conv relay.ConversationID) (bool, error) {
	owner, err := h.assign.Get(ctx, conv)
	if err != nil {
		return false, err
	}
	return owner == emp.ID, nil
}

func (h *Hub) add(c *conn) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return false
	}
	h.conns[c] = struct{}{}
	// Counted here, under the lock that Shutdown takes before waiting, so
	// no goroutine starts after Shutdown began to wait.
	h.wg.Add(2)
	h.connections.Inc()
	return true
}

func (h *Hub) remove(c *conn, reason string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if _, ok := h.conns[c]; ok {
		delete(h.conns, c)
		h.connections.Dec()
		h.disconnects.WithLabelValues(reason).Inc()
	}
}

// Shutdown closes every connection with a "going away" close frame and
// waits for their goroutines, or for ctx. It is idempotent; the server's
// own Shutdown does not close hijacked WebSocket connections.
func (h *Hub) Shutdown(ctx context.Context) error {
	h.mu.Lock()
	h.closed = true
	conns := make([]*conn, 0, len(h.conns))
	for c := range h.conns {
		conns = append(conns, c)
	}
	h.mu.Unlock()
	for _, c := range conns {
		c.close(reasonShutdown)
	}
	// Running exports stop too (their partial files are removed).
	h.cancel()
	done := make(chan struct{})
	go func() { h.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
