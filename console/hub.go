package console

import (
	"context"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/gorilla/websocket"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/wechat-relay/wechat-relay/relay"
)

// Hub is the live side of the console: the WebSocket connections, the
// bus events it hands to those allowed to see them, lexicon alerts, and
// the connections' shutdown. The Server authenticates an upgrade and
// hands it over (serveSocket); everything else of /api/ is the Server's.
type Hub struct {
	*access
	cfg     Config
	history History // a resume and a gap read the archive
	audit   Audit   // supervisors' resumes are audited
	now     func() time.Time
	log     *slog.Logger
	sub     *relay.Subscriber
	up      websocket.Upgrader
	// ctx is the parent of every connection's context: Shutdown cancels
	// what they wait for (archive reads, audit writes).
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

// hubDeps are what the Hub needs of the Server's dependencies.
type hubDeps struct {
	bus        relay.Bus
	history    History
	access     *access
	audit      Audit
	log        *slog.Logger
	now        func() time.Time
	registerer prometheus.Registerer
}

// newHub returns a hub whose connections live within parent; Run starts
// its bus subscription.
func newHub(parent context.Context, cfg Config, d hubDeps) *Hub {
	h := &Hub{
		access: d.access, cfg: cfg, history: d.history, audit: d.audit, now: d.now, log: d.log,
		sub:   &relay.Subscriber{Name: "console", Bus: d.bus, Log: d.log},
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
	// Memory per socket (issue 13, target 5: thousands of idle ones): the
	// read buffer is the one the HTTP server already allocated (size 0),
	// and a write buffer is taken from a pool only while a frame is
	// written — an idle socket holds none (docs/performance.md).
	h.up = websocket.Upgrader{WriteBufferSize: 4096, WriteBufferPool: &sync.Pool{}, CheckOrigin: h.checkOrigin}
	h.ctx, h.cancel = context.WithCancel(parent)
	d.access.dir.OnChange(h.directoryChanged)
	if d.registerer != nil {
		d.registerer.MustRegister(h.connections, h.frames, h.disconnects)
	}
	return h
}

// Run subscribes to the bus and dispatches events until ctx is done. A
// failed subscription is retried: meanwhile consoles still catch up from
// the archive.
func (h *Hub) Run(ctx context.Context) error {
	for e := range h.sub.Events(ctx) {
		h.dispatch(e)
	}
	return nil
}

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

func (h *Hub) add(c *conn) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return false
	}
	h.conns[c] = struct{}{}
	// Counted here, under the lock that Shutdown takes before waiting, so
	// no goroutine starts after Shutdown began to wait.
	h.wg.Add(3)
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
	h.cancel()
	return waitGroup(ctx, &h.wg)
}

// Alert pushes a lexicon hit to the supervisors (team supervisors: of
// the employee's teams), compliance officers and admins connected to
// this instance, as an "alert" frame. Every instance
// sees every archived message (the bus) and alerts its own connections,
// so each person gets the alert once.
func (h *Hub) Alert(hit relay.LexiconHit) {
	h.mu.Lock()
	targets := make([]*conn, 0, len(h.conns))
	for c := range h.conns {
		if c.emp.Role.SeesAll() && h.sees(c.emp, hit.Employee) {
			targets = append(targets, c)
		}
	}
	h.mu.Unlock()
	for _, c := range targets {
		hit := hit
		c.enqueue(outItem{frame: &Frame{Type: FrameAlert, Conv: string(hit.Conv), Alert: &hit}})
	}
}

// directoryChanged closes the connections of employees whose entry
// changed in a way that changes what they may see.
func (h *Hub) directoryChanged(old, cur *relay.DirectorySnapshot) {
	h.mu.Lock()
	var stale []*conn
	for c := range h.conns {
		was, _ := old.Employee(c.emp.ID)
		now, ok := cur.Employee(c.emp.ID)
		if !ok || now.Disabled || now.Role != was.Role || now.AllTeams != was.AllTeams || !slices.Equal(now.Teams, was.Teams) {
			stale = append(stale, c)
		}
	}
	h.mu.Unlock()
	for _, c := range stale {
		c.close(reasonDirectoryChanged)
	}
	// A token rotated, a password reset: every other socket checks that
	// its credential still holds.
	h.recheck(func(*conn) bool { return true })
}

// recheck asks the sockets that match to check their credential now.
func (h *Hub) recheck(match func(*conn) bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for c := range h.conns {
		if match(c) {
			c.askRecheck()
		}
	}
}
