package chaos

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/wechat-relay/wechat-relay/gateway/wxsim"
)

// WeChat's side: the simulator, its clients writing in, and the record of
// every customer-service message it delivered.

const pathCustomSend = "/cgi-bin/message/custom/send"

// clientText is the text of client ci's message mi: it names both, so
// that the archive can be matched against what was sent.
func clientText(ci, mi int) string {
	return fmt.Sprintf("c%04d-m%07d 您好，这是第%d条", ci, mi, mi)
}

// parseClientText undoes clientText.
func parseClientText(s string) (ci, mi int, ok bool) {
	var rest string
	n, err := fmt.Sscanf(s, "c%d-m%d %s", &ci, &mi, &rest)
	return ci, mi, err == nil && n == 3
}

// replyKey is the idempotency key of the reply to client ci's message mi;
// the reply's text carries it.
func replyKey(ci, mi int) string { return fmt.Sprintf("r-c%04d-m%07d", ci, mi) }

func replyText(key string) string { return "reply " + key + " 已收到，稍后回复您" }

// keyOfReply takes the key back out of a reply's text.
func keyOfReply(text string) (string, bool) {
	rest, ok := strings.CutPrefix(text, "reply ")
	if !ok {
		return "", false
	}
	key, _, _ := strings.Cut(rest, " ")
	return key, key != ""
}

// sendLog records what WeChat's custom/send API did: every call, and
// every message it delivered to a client (answered errcode 0), by text.
// A message delivered is checked against the archive at once: it must
// already be there.
type sendLog struct {
	probe *archiveProbe

	calls, delivered, refused, unanswered atomic.Int64

	mu    sync.Mutex
	count map[string]int // reply text → deliveries
	conv  map[string]string
}

func newSendLog(p *archiveProbe) *sendLog {
	return &sendLog{probe: p, count: map[string]int{}, conv: map[string]string{}}
}

// wrap puts the log in front of the simulator's handler.
func (l *sendLog) wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != pathCustomSend {
			h.ServeHTTP(w, r)
			return
		}
		l.calls.Add(1)
		body, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(body))
		rec := &recorder{ResponseWriter: w}
		h.ServeHTTP(rec, r)
		var ans struct {
			ErrCode *int `json:"errcode"`
		}
		if !rec.wrote || json.Unmarshal(rec.buf.Bytes(), &ans) != nil || ans.ErrCode == nil {
			l.unanswered.Add(1) // hung, or answered garbage: not delivered
			return
		}
		if *ans.ErrCode != 0 {
			l.refused.Add(1)
			return
		}
		var req struct {
			ToUser  string `json:"touser"`
			MsgType string `json:"msgtype"`
			Text    struct {
				Content string `json:"content"`
			} `json:"text"`
		}
		json.Unmarshal(body, &req)
		l.delivered.Add(1)
		conv := accountID + ":" + req.ToUser
		l.mu.Lock()
		l.count[req.Text.Content]++
		l.conv[req.Text.Content] = conv
		l.mu.Unlock()
		if key, ok := keyOfReply(req.Text.Content); ok {
			l.probe.check("out:"+conv+":"+key, "wechat")
		}
	})
}

// deliveries returns how often each text was delivered.
func (l *sendLog) deliveries() map[string]int {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make(map[string]int, len(l.count))
	for k, v := range l.count {
		out[k] = v
	}
	return out
}

// recorder passes an answer through and keeps a copy.
type recorder struct {
	http.ResponseWriter
	buf    bytes.Buffer
	wrote  bool
	status int
}

func (r *recorder) WriteHeader(code int) {
	r.status, r.wrote = code, true
	r.ResponseWriter.WriteHeader(code)
}

func (r *recorder) Write(b []byte) (int, error) {
	r.wrote = true
	r.buf.Write(b)
	return r.ResponseWriter.Write(b)
}

// sent is what became of one client message, as WeChat saw it.
type sent struct {
	msgID    string
	status   wxsim.CallbackStatus
	attempts int
	err      string
}

func (s sent) acked() bool {
	return s.err == "" && (s.status == wxsim.CallbackSuccess || s.status == wxsim.CallbackReply)
}

// simClient is one WeChat user writing to the account.
type simClient struct {
	idx  int
	c    *wxsim.Client
	conv string
	n    int // messages to send
	sub  sent
	msgs []sent // by message index
}

// clientsRun drives every client: each sends its messages one after the
// other, the next only once WeChat is done with the previous (answered,
// or three tries unanswered), paced so that the whole run spans the
// sending phase.
type clientsRun struct {
	clients []*simClient
	sentN   atomic.Int64
	ackedN  atomic.Int64
}

func newClients(sim *wxsim.Sim, appID string, clients, total int) (*clientsRun, error) {
	run := &clientsRun{}
	for i := 0; i < clients; i++ {
		c, err := sim.NewClient(appID)
		if err != nil {
			return nil, err
		}
		n := total / clients
		if i < total%clients {
			n++
		}
		run.clients = append(run.clients, &simClient{idx: i, c: c, conv: accountID + ":" + c.OpenID, n: n, msgs: make([]sent, n)})
	}
	return run, nil
}

func toSent(res wxsim.CallbackResult, err error) sent {
	s := sent{msgID: res.MsgID, status: res.Status, attempts: res.Attempts}
	if err != nil {
		s.err = err.Error()
	}
	return s
}

// subscribe has every client follow the account first.
func (run *clientsRun) subscribe(ctx context.Context) {
	var wg sync.WaitGroup
	for _, c := range run.clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.sub = toSent(c.c.Subscribe(ctx))
		}()
	}
	wg.Wait()
}

// send runs every client until it has sent its messages. interval is
// the pause each client keeps between two messages' start (0: none);
// a client behind its schedule catches up without pausing.
func (run *clientsRun) send(ctx context.Context, interval time.Duration) {
	var wg sync.WaitGroup
	for _, c := range run.clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Spread the clients' starts over one interval.
			start := time.Now().Add(time.Duration(float64(interval) * float64(c.idx) / float64(len(run.clients))))
			for i := 0; i < c.n; i++ {
				if interval > 0 {
					if d := time.Until(start.Add(time.Duration(i) * interval)); d > 0 {
						select {
						case <-time.After(d):
						case <-ctx.Done():
							return
						}
					}
				}
				if ctx.Err() != nil {
					return
				}
				s := toSent(c.c.SendText(ctx, clientText(c.idx, i)))
				c.msgs[i] = s
				run.sentN.Add(1)
				if s.acked() {
					run.ackedN.Add(1)
				}
			}
		}()
	}
	wg.Wait()
}
