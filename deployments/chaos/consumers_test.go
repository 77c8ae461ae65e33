package chaos

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/gorilla/websocket"
)

// The people's side: console consumers on the WebSocket, employees
// replying, and the probe that checks every delivery against the archive.

// archiveProbe checks, right after something was delivered (a frame on a
// console socket, a message accepted by WeChat's custom/send), that its
// row is in the archive. A delivery whose row is missing when looked up
// afterwards was delivered before it was archived. While ClickHouse does
// not answer, lookups wait and are counted as late.
type archiveProbe struct {
	conn driver.Conn
	in   chan probeReq

	mu         sync.Mutex
	closed     bool
	seen       map[string]bool
	checked    int
	late       int
	violations []string
	errors     int
	done       chan struct{}
}

type probeReq struct {
	id, who string
	at      time.Time
}

func newArchiveProbe(chAddr, db string) (*archiveProbe, error) {
	conn, err := clickhouse.Open(&clickhouse.Options{
		Addr: []string{chAddr}, Auth: clickhouse.Auth{Database: db},
		DialTimeout: 2 * time.Second, ReadTimeout: 5 * time.Second,
	})
	if err != nil {
		return nil, err
	}
	return &archiveProbe{conn: conn, in: make(chan probeReq, 100000), seen: map[string]bool{}, done: make(chan struct{})}, nil
}

// check queues a lookup of id, delivered now by who; each id is looked
// up once, at its first delivery.
func (p *archiveProbe) check(id, who string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.seen[id] || p.closed {
		return
	}
	p.seen[id] = true
	p.in <- probeReq{id: id, who: who, at: time.Now()}
}

// run looks the queued ids up in batches until in is closed.
func (p *archiveProbe) run() {
	defer close(p.done)
	var batch []probeReq
	closed := false
	for !closed || len(batch) > 0 {
		if !closed {
			timer := time.NewTimer(50 * time.Millisecond)
		collect:
			for len(batch) < 2000 {
				select {
				case r, ok := <-p.in:
					if !ok {
						closed = true
						break collect
					}
					batch = append(batch, r)
				case <-timer.C:
					break collect
				}
			}
			timer.Stop()
		}
		if len(batch) == 0 {
			continue
		}
		found, err := p.lookup(batch)
		if err != nil {
			p.mu.Lock()
			p.errors++
			p.mu.Unlock()
			time.Sleep(300 * time.Millisecond)
			continue // the same batch again, later
		}
		p.mu.Lock()
		for _, r := range batch {
			p.checked++
			if time.Since(r.at) > 2*time.Second {
				p.late++
			}
			if !found[r.id] {
				p.violations = append(p.violations, fmt.Sprintf("%s delivered %s at %s, not in the archive when looked up %s later",
					r.who, r.id, r.at.Format("15:04:05.000"), time.Since(r.at).Round(time.Millisecond)))
			}
		}
		p.mu.Unlock()
		batch = batch[:0]
	}
}

func (p *archiveProbe) lookup(batch []probeReq) (map[string]bool, error) {
	ids := make([]any, len(batch))
	for i, r := range batch {
		ids[i] = r.id
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	rows, err := p.conn.Query(ctx, "SELECT DISTINCT id FROM messages WHERE id IN ?", clickhouse.GroupSet{Value: ids})
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	found := map[string]bool{}
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, err
		}
		found[id] = true
	}
	return found, rows.Err()
}

// finish waits until every queued lookup is done.
func (p *archiveProbe) finish() {
	p.mu.Lock()
	p.closed = true
	close(p.in)
	p.mu.Unlock()
	<-p.done
	p.conn.Close()
}

// frame is a console WebSocket frame (console.Frame, as the wire has it).
type frame struct {
	Type    string `json:"type"`
	Conv    string `json:"conv,omitempty"`
	Seq     uint64 `json:"seq,omitempty"`
	Error   string `json:"error,omitempty"`
	Message *struct {
		ID        string `json:"id"`
		Direction string `json:"direction"`
		Kind      string `json:"kind"`
		Text      string `json:"text"`
		Employee  string `json:"employee"`
	} `json:"message,omitempty"`
}

// convState is what a consumer holds of one conversation: the message id
// at each sequence number, and the highest sequence below which it holds
// everything.
type convState struct {
	ids   []string
	water uint64
}

// consumer is an employee's console: a WebSocket to one relay or the
// other, closed now and then (and by every kill of its relay), reopened
// on either relay with a resume of every conversation it holds. Within
// one connection, a conversation's frames must come in sequence order,
// each once; across connections a resume may deliver again.
type consumer struct {
	name, emp string
	relays    []*relayProc
	probe     *archiveProbe
	onMessage func(c *consumer, f *frame) // the harness's hook (replies)
	lifetime  func() time.Duration        // how long a connection is kept

	kick chan struct{}

	mu    sync.Mutex
	convs map[string]*convState
	stats consumerStats
}

type consumerStats struct {
	conns, dialFailures, frames, messages, redelivered int
	gaps, gapReconnects                                int
	outOfOrder, seqConflicts, errorFrames              int
	details                                            []string
	errors                                             map[string]int // error frames by text
}

func newConsumer(name, emp string, relays []*relayProc, probe *archiveProbe) *consumer {
	return &consumer{name: name, emp: emp, relays: relays, probe: probe,
		kick: make(chan struct{}, 1), convs: map[string]*convState{}}
}

func (c *consumer) detail(format string, args ...any) {
	if len(c.stats.details) < 20 {
		c.stats.details = append(c.stats.details, fmt.Sprintf(time.Now().Format("15:04:05.000 ")+format, args...))
	}
}

// run connects, reads, disconnects and reconnects until ctx ends.
func (c *consumer) run(ctx context.Context) {
	dialer := websocket.Dialer{HandshakeTimeout: 5 * time.Second}
	hdr := http.Header{"Authorization": {"Bearer " + token(c.emp)}}
	last := -1
	for ctx.Err() == nil {
		// Prefer the relay not used last time.
		order := rand.Perm(len(c.relays))
		if last >= 0 && order[0] == last {
			order[0], order[1] = order[1], order[0]
		}
		var ws *websocket.Conn
		for _, i := range order {
			dctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			conn, _, err := dialer.DialContext(dctx, "ws://"+c.relays[i].addr+"/api/ws", hdr)
			cancel()
			if err == nil {
				ws, last = conn, i
				break
			}
			c.mu.Lock()
			c.stats.dialFailures++
			c.mu.Unlock()
		}
		if ws == nil {
			sleepCtx(ctx, 200*time.Millisecond)
			continue
		}
		c.serve(ctx, ws)
		sleepCtx(ctx, time.Duration(100+rand.IntN(400))*time.Millisecond)
	}
}

func sleepCtx(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}

// serve runs one connection: resume, then read until the connection's
// time is up, a gap asks for a reconnect, ctx ends or the relay goes.
func (c *consumer) serve(ctx context.Context, ws *websocket.Conn) {
	defer ws.Close()
	c.mu.Lock()
	c.stats.conns++
	var resumes []frame
	for conv, st := range c.convs {
		resumes = append(resumes, frame{Type: "resume", Conv: conv, Seq: st.water})
	}
	c.mu.Unlock()
	select {
	case <-c.kick: // a gap seen on the previous connection is healed by these resumes
	default:
	}
	ws.SetWriteDeadline(time.Now().Add(5 * time.Second))
	for _, f := range resumes {
		if err := ws.WriteJSON(f); err != nil {
			return
		}
	}
	// The resumes are answered one by one (caught_up, or an error
	// naming the conversation); live frames arrive meanwhile. A live frame
	// of a conversation not yet resumed can leave a hole the resume will
	// not fill on this connection (the server only sends what is above
	// the highest sequence it sent), so a hole seen while resumes are
	// pending is healed by reconnecting once they are all answered.
	var pending atomic.Int64
	pending.Store(int64(len(resumes)))
	resumed := make(chan struct{})
	if len(resumes) == 0 {
		close(resumed)
	}
	readErr := make(chan error, 1)
	go func() {
		connLast := map[string]uint64{}
		for {
			_, data, err := ws.ReadMessage()
			if err != nil {
				readErr <- err
				return
			}
			var f frame
			if err := json.Unmarshal(data, &f); err != nil {
				readErr <- err
				return
			}
			c.handle(&f, connLast)
			if f.Type == "caught_up" || f.Type == "error" && f.Conv != "" {
				if pending.Add(-1) == 0 {
					close(resumed)
				}
			}
			// A resume answered with an error ("archive unavailable;
			// history will follow on resume") is tried again, as the web
			// console does: by resuming everything on a new connection.
			// Without it a conversation of which this consumer has
			// received nothing yet stays empty for good (the first
			// million-message run: 52 messages never delivered).
			if f.Type == "error" && f.Conv != "" && !strings.Contains(f.Error, "forbidden") {
				select {
				case c.kick <- struct{}{}:
				default:
				}
			}
		}
	}()
	start := time.Now()
	timer := time.NewTimer(c.lifetime())
	defer timer.Stop()
	patience := time.NewTimer(15 * time.Second)
	defer patience.Stop()
	holed := false
	reconnect := func() {
		c.mu.Lock()
		c.stats.gapReconnects++
		c.mu.Unlock()
		sleepCtx(ctx, time.Second-time.Since(start)) // at most one reconnect a second
	}
wait:
	for {
		select {
		case <-ctx.Done():
			break wait
		case <-timer.C:
			break wait
		case <-c.kick:
			if pending.Load() > 0 {
				holed = true
				continue
			}
			reconnect()
			break wait
		case <-resumed:
			resumed = nil
			if holed {
				reconnect()
				break wait
			}
		case <-patience.C:
			if holed {
				reconnect()
				break wait
			}
		case <-readErr:
			return
		}
	}
	ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), time.Now().Add(time.Second))
	ws.Close()
	<-readErr
}

func (c *consumer) handle(f *frame, connLast map[string]uint64) {
	c.mu.Lock()
	c.stats.frames++
	switch f.Type {
	case "message":
	case "error":
		c.stats.errorFrames++
		if c.stats.errors == nil {
			c.stats.errors = map[string]int{}
		}
		c.stats.errors[f.Error]++
		c.mu.Unlock()
		return
	default:
		c.mu.Unlock()
		return
	}
	if f.Message == nil || f.Seq == 0 || f.Conv == "" {
		c.stats.outOfOrder++
		c.detail("malformed message frame %+v", f)
		c.mu.Unlock()
		return
	}
	c.stats.messages++
	id, seq := f.Message.ID, f.Seq
	if last := connLast[f.Conv]; seq <= last {
		c.stats.outOfOrder++
		c.detail("%s seq %d (%s) after seq %d on the same connection", f.Conv, seq, id, last)
	} else {
		connLast[f.Conv] = seq
	}
	st := c.convs[f.Conv]
	if st == nil {
		st = &convState{}
		c.convs[f.Conv] = st
	}
	for uint64(len(st.ids)) < seq {
		st.ids = append(st.ids, "")
	}
	first := false
	switch prev := st.ids[seq-1]; {
	case prev == "":
		st.ids[seq-1] = id
		first = true
	case prev != id:
		c.stats.seqConflicts++
		c.detail("%s seq %d delivered as %s, earlier as %s", f.Conv, seq, id, prev)
	default:
		c.stats.redelivered++
	}
	for st.water < uint64(len(st.ids)) && st.ids[st.water] != "" {
		st.water++
	}
	// Everything below seq should be here by now: frames of a
	// conversation come in order, so what is missing will not come on
	// this connection. Reconnect and resume.
	gap := st.water < seq-1
	if gap {
		c.stats.gaps++
	}
	c.mu.Unlock()
	if gap {
		select {
		case c.kick <- struct{}{}:
		default:
		}
	}
	if first {
		c.probe.check(id, c.name)
		if c.onMessage != nil {
			c.onMessage(c, f)
		}
	}
}

// know adds conversations the consumer resumes on every connection even
// before it has received anything of them, as a console resumes what its
// inbox lists.
func (c *consumer) know(convs []string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, conv := range convs {
		if c.convs[conv] == nil {
			c.convs[conv] = &convState{}
		}
	}
}

// holds reports whether the consumer holds id at conv/seq.
func (c *consumer) holds(conv string, seq uint64, id string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	st := c.convs[conv]
	return st != nil && seq >= 1 && seq <= uint64(len(st.ids)) && st.ids[seq-1] == id
}

// heldAt describes what the consumer holds of conv: the id at seq, its
// contiguous watermark and the highest sequence it has.
func (c *consumer) heldAt(conv string, seq uint64) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	st := c.convs[conv]
	if st == nil {
		return "nothing of the conversation"
	}
	at := "nothing"
	if seq >= 1 && seq <= uint64(len(st.ids)) && st.ids[seq-1] != "" {
		at = st.ids[seq-1]
	}
	return fmt.Sprintf("holds %s there, everything up to seq %d, highest seq %d", at, st.water, len(st.ids))
}

func (c *consumer) snapshot() consumerStats {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.stats
	s.details = append([]string(nil), s.details...)
	s.errors = map[string]int{}
	for k, v := range c.stats.errors {
		s.errors[k] = v
	}
	return s
}

// replyTask is an employee's answer to one client message.
type replyTask struct {
	conv, emp, key string
}

// replyResult is what became of a reply.
type replyResult struct {
	task      replyTask
	messageID string
	status    int // the final answer's HTTP status; 0: none
	errcode   float64
	tries     int
	err       string
}

func (r replyResult) accepted() bool {
	return r.messageID != "" && (r.status == http.StatusAccepted || r.status == http.StatusOK)
}

// repliers send employees' replies through the balancer, each with its
// idempotency key, trying again (with the same key, on either relay) on
// a connection error or a 5xx, for up to a minute.
type repliers struct {
	url   string
	http  *http.Client
	tasks chan replyTask

	qmu     sync.Mutex // queued, closed and sends on tasks
	closed  bool
	queued  map[string]bool
	mu      sync.Mutex // results
	results []replyResult
	wg      sync.WaitGroup
	pending atomic.Int64
}

func newRepliers(balancerURL string, workers int) *repliers {
	r := &repliers{url: balancerURL, tasks: make(chan replyTask, 100000), queued: map[string]bool{},
		http: &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 64}}}
	for i := 0; i < workers; i++ {
		r.wg.Add(1)
		go func() {
			defer r.wg.Done()
			for t := range r.tasks {
				res := r.send(t)
				r.mu.Lock()
				r.results = append(r.results, res)
				r.mu.Unlock()
				r.pending.Add(-1)
			}
		}()
	}
	return r
}

// add queues a reply once per key.
func (r *repliers) add(t replyTask) {
	r.qmu.Lock()
	defer r.qmu.Unlock()
	if r.queued[t.key] || r.closed {
		return
	}
	r.queued[t.key] = true
	r.pending.Add(1)
	r.tasks <- t
}

func (r *repliers) close() {
	r.qmu.Lock()
	r.closed = true
	close(r.tasks)
	r.qmu.Unlock()
	r.wg.Wait()
}

func (r *repliers) send(t replyTask) replyResult {
	res := replyResult{task: t}
	body, _ := json.Marshal(map[string]string{"key": t.key, "kind": "text", "text": replyText(t.key)})
	deadline := time.Now().Add(time.Minute)
	backoff := 200 * time.Millisecond
	for {
		res.tries++
		req, _ := http.NewRequest("POST", r.url+"/api/conversations/"+url.PathEscape(t.conv)+"/messages", bytes.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+token(t.emp))
		req.Header.Set("Content-Type", "application/json")
		resp, err := r.http.Do(req)
		if err == nil {
			var out map[string]any
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			json.Unmarshal(b, &out)
			res.status, res.err = resp.StatusCode, ""
			if resp.StatusCode < 500 {
				if id, ok := out["message_id"].(string); ok {
					res.messageID = id
				}
				if ec, ok := out["errcode"].(float64); ok {
					res.errcode = ec
				}
				if resp.StatusCode >= 400 {
					res.err = strings.TrimSpace(string(b))
				}
				return res
			}
			res.err = fmt.Sprintf("%d %s", resp.StatusCode, strings.TrimSpace(string(b)))
		} else {
			res.status, res.err = 0, err.Error()
		}
		if time.Now().After(deadline) {
			return res
		}
		time.Sleep(backoff)
		backoff = min(2*backoff, 2*time.Second)
	}
}

func (r *repliers) all() []replyResult {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := append([]replyResult(nil), r.results...)
	sort.Slice(out, func(i, j int) bool { return out[i].task.key < out[j].task.key })
	return out
}
