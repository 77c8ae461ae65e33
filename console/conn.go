package console

import (
	"context"
	"encoding/json"
	"sync"
	"time"

	"github.com/gorilla/websocket"
	"github.com/wechat-relay/wechat-relay/relay"
)

// Why a connection was closed, as logged and counted.
const (
	reasonShutdown     = "shutdown"
	reasonSlowConsumer = "slow_consumer"
	reasonReadError    = "read_error"
	reasonWriteError   = "write_error"
	reasonClientClosed = "client_closed"
	// reasonDirectoryChanged closes the sockets of employees whose role,
	// teams, all-teams grant or standing an admin changed; they reconnect with their new
	// rights, or find themselves signed out.
	reasonDirectoryChanged = "directory_changed"
	// reasonSignedOut closes a socket whose credential no longer signs
	// anyone in: signed out, session expired, password or token changed.
	reasonSignedOut = "signed_out"
)

// historyPage is how many archived messages one read fetches.
const historyPage = 200

// outItem is one unit of work for a connection's writer.
type outItem struct {
	event  *relay.Event
	resume *Frame
	frame  *Frame
}

// conn is one console WebSocket. Only the writer goroutine writes to ws
// and touches last; only the reader goroutine reads.
type conn struct {
	hub   *Hub
	ws    *websocket.Conn
	emp   *relay.Employee
	from  string // remote address, for the audit trail
	ua    string // user agent, for the audit trail
	queue *sendQueue
	last  map[relay.ConversationID]uint64 // highest seq sent, per conversation

	// ctx is the connection's: archive reads and audit writes made for
	// it end when it closes (also at shutdown), not on their own clocks.
	ctx    context.Context
	cancel context.CancelFunc

	closeOnce sync.Once
	reason    string
	done      chan struct{}

	// signedIn says whether the credential the socket was opened with
	// still signs its employee in (nil: not checked); recheck asks for a
	// check now.
	signedIn func(context.Context) (bool, error)
	recheck  chan struct{}
}

func newConn(h *Hub, ws *websocket.Conn, emp *relay.Employee, from, ua string) *conn {
	ctx, cancel := context.WithCancel(h.ctx)
	return &conn{
		hub: h, ws: ws, emp: emp, from: from, ua: ua,
		queue: newSendQueue(h.cfg.SendQueue),
		last:  map[relay.ConversationID]uint64{},
		done:  make(chan struct{}),
		ctx:   ctx, cancel: cancel,
		recheck: make(chan struct{}, 1),
	}
}

// run starts the reader and the writer and returns at once. The hub
// counted both goroutines when it added the connection.
func (c *conn) run() {
	go func() { defer c.hub.wg.Done(); c.readLoop() }()
	go func() { defer c.hub.wg.Done(); c.writeLoop() }()
	go func() { defer c.hub.wg.Done(); c.watchCredential() }()
}

// watchCredential closes the socket once its credential no longer signs
// its employee in — checked every Config.SocketRecheck, and at once when
// asked (a directory change, a sign-out on this instance): a socket must
// not outlive the REST API's 401, on any instance. A check that cannot
// be made (the session store down) keeps the socket until the next.
func (c *conn) watchCredential() {
	if c.signedIn == nil {
		return
	}
	t := time.NewTicker(c.hub.cfg.SocketRecheck)
	defer t.Stop()
	for {
		select {
		case <-c.done:
			return
		case <-t.C:
		case <-c.recheck:
		}
		ok, err := c.signedIn(c.ctx)
		switch {
		case err != nil:
			c.hub.log.Warn("checking a socket's credential; checking again later", "employee", c.emp.ID, "err", err)
		case !ok:
			c.close(reasonSignedOut)
			return
		}
	}
}

// askRecheck asks watchCredential for a check now, without blocking.
func (c *conn) askRecheck() {
	select {
	case c.recheck <- struct{}{}:
	default:
	}
}

// enqueue hands an item to the writer without ever blocking: a full
// queue means the browser is too slow, and it is disconnected.
func (c *conn) enqueue(it outItem) {
	select {
	case <-c.done:
		return
	default:
	}
	if !c.queue.push(it) {
		c.close(reasonSlowConsumer)
	}
}

func (c *conn) close(reason string) {
	c.closeOnce.Do(func() {
		c.reason = reason
		close(c.done)
		c.cancel()
		c.hub.remove(c, reason)
		c.hub.log.Info("console connection closed", "employee", c.emp.ID, "reason", reason)
	})
}

func (c *conn) readLoop() {
	defer c.close(reasonReadError)
	c.ws.SetReadLimit(c.hub.cfg.MaxFrameBytes)
	deadline := func() { c.ws.SetReadDeadline(time.Now().Add(2 * c.hub.cfg.PingInterval)) }
	deadline()
	c.ws.SetPongHandler(func(string) error { deadline(); return nil })
	for {
		_, data, err := c.ws.ReadMessage()
		if err != nil {
			if websocket.IsCloseError(err, websocket.CloseNormalClosure, websocket.CloseGoingAway) {
				c.close(reasonClientClosed)
			}
			return
		}
		deadline()
		var f Frame
		if err := json.Unmarshal(data, &f); err != nil {
			c.enqueue(outItem{frame: &Frame{Type: FrameError, Error: "malformed frame: " + err.Error()}})
			continue
		}
		switch f.Type {
		case FrameResume:
			if f.Conv == "" {
				c.enqueue(outItem{frame: &Frame{Type: FrameError, Error: "resume needs conv"}})
				continue
			}
			c.enqueue(outItem{resume: &f})
		default:
			c.enqueue(outItem{frame: &Frame{Type: FrameError, Error: "unknown frame type " + quote(f.Type)}})
		}
	}
}

func (c *conn) writeLoop() {
	ping := time.NewTicker(c.hub.cfg.PingInterval)
	defer func() {
		ping.Stop()
		msg := websocket.FormatCloseMessage(websocket.CloseGoingAway, c.reason)
		if c.reason == reasonSlowConsumer {
			msg = websocket.FormatCloseMessage(websocket.ClosePolicyViolation, c.reason)
		}
		c.ws.WriteControl(websocket.CloseMessage, msg, deadlineSoon())
		c.ws.Close()
	}()
	for {
		var err error
		select {
		case <-c.done:
			return
		case <-ping.C:
			err = c.ws.WriteControl(websocket.PingMessage, nil, time.Now().Add(c.hub.cfg.WriteTimeout))
		case <-c.queue.ready:
			err = c.writeQueued()
		}
		if err != nil {
			c.hub.log.Debug("console write failed", "employee", c.emp.ID, "err", err)
			c.close(reasonWriteError)
			return
		}
	}
}

// writeQueued writes what waits in the queue, in order, until it is
// empty or the connection closes — at most a turn's worth at a time, so
// that the writer's loop gets to its pings under a steady stream.
func (c *conn) writeQueued() error {
	const turn = 64
	for i := 0; ; i++ {
		select {
		case <-c.done:
			return nil
		default:
		}
		if i == turn {
			c.queue.again()
			return nil
		}
		it, ok := c.queue.pop()
		if !ok {
			return nil
		}
		var err error
		switch {
		case it.event != nil:
			err = c.sendEvent(it.event)
		case it.resume != nil:
			err = c.resume(it.resume)
		case it.frame != nil:
			err = c.write(it.frame)
		}
		if err != nil {
			return err
		}
	}
}

// sendEvent writes a live message, first filling any gap the
// connection can see from the archive, and skipping what it already has.
func (c *conn) sendEvent(e *relay.Event) error {
	if e.Status != nil {
		st := toWireStatus(*e.Status)
		return c.write(&Frame{Type: FrameStatus, Conv: string(e.Conv), Status: &st})
	}
	m := e.Message
	last := c.last[m.Conv]
	if m.Seq <= last {
		return nil
	}
	if last > 0 && m.Seq > last+1 {
		if err := c.sendHistory(m.Conv, last, m.Seq-1); err != nil {
			return err
		}
	}
	return c.sendMessage(*m)
}

// resume sends what the archive holds of a conversation after a
// sequence, when the employee may read it.
func (c *conn) resume(f *Frame) error {
	conv := relay.ConversationID(f.Conv)
	ctx, cancel := context.WithTimeout(c.ctx, 30*time.Second)
	ok, err := c.hub.mayRead(ctx, c.emp, conv)
	cancel()
	if err != nil {
		return c.write(&Frame{Type: FrameError, Conv: f.Conv, Error: "cannot check access right now; retry"})
	}
	if !ok {
		return c.write(&Frame{Type: FrameError, Conv: f.Conv, Error: "forbidden: this conversation is not assigned to you"})
	}
	if c.emp.Role.SeesAll() {
		actx, cancel := context.WithTimeout(c.ctx, 10*time.Second)
		err := c.hub.audit.Record(actx, AuditRecord{
			At: c.hub.now(), Employee: c.emp.ID, Role: c.emp.Role, Action: AuditResumeConversation, Conv: conv,
			From: c.from, UserAgent: c.ua,
		})
		cancel()
		if err != nil {
			c.hub.log.Error("writing the audit trail; resume refused", "employee", c.emp.ID, "conv", conv, "err", err)
			return c.write(&Frame{Type: FrameError, Conv: f.Conv, Error: "the audit trail cannot be written right now; retry"})
		}
	}
	if c.last[conv] < f.Seq {
		c.last[conv] = f.Seq
	}
	if err := c.sendHistory(conv, f.Seq, 0); err != nil {
		return err
	}
	return c.write(&Frame{Type: FrameCaughtUp, Conv: f.Conv, Seq: c.last[conv]})
}

// sendHistory writes the archived messages of conv after `after`, up to
// and including `upto` (0: all).
func (c *conn) sendHistory(conv relay.ConversationID, after, upto uint64) error {
	for {
		ctx, cancel := context.WithTimeout(c.ctx, 30*time.Second)
		page, err := c.hub.history.Since(ctx, conv, after, historyPage)
		cancel()
		if err != nil {
			return c.write(&Frame{Type: FrameError, Conv: string(conv), Error: "archive unavailable; history will follow on resume"})
		}
		for _, m := range page {
			if upto > 0 && m.Seq > upto {
				return nil
			}
			if m.Seq > c.last[conv] {
				if err := c.sendMessage(m); err != nil {
					return err
				}
			}
			after = m.Seq
		}
		if len(page) < historyPage {
			return nil
		}
	}
}

func (c *conn) sendMessage(m relay.Message) error {
	w := toWire(m)
	if err := c.write(&Frame{Type: FrameMessage, Conv: string(m.Conv), Seq: m.Seq, Message: &w}); err != nil {
		return err
	}
	c.last[m.Conv] = m.Seq
	return nil
}

func (c *conn) write(f *Frame) error {
	c.ws.SetWriteDeadline(time.Now().Add(c.hub.cfg.WriteTimeout))
	if err := c.ws.WriteJSON(f); err != nil {
		return err
	}
	c.hub.frames.WithLabelValues(f.Type).Inc()
	return nil
}

func quote(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

func deadlineSoon() time.Time { return time.Now().Add(time.Second) }
