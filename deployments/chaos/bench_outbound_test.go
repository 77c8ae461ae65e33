package chaos

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/wechat-relay/wechat-relay/gateway/wxsim"
)

// apiLog times the simulator's custom/send calls of the benchmark's
// replies and keeps the order each client received them in.
type apiLog struct {
	mu    sync.Mutex
	calls map[string]apiCall  // reply text → its call that WeChat accepted
	order map[string][]string // openid → reply texts, in the order delivered
}

type apiCall struct{ start, end time.Time }

func (l *apiLog) wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != pathCustomSend {
			h.ServeHTTP(w, r)
			return
		}
		start := time.Now()
		body, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(body))
		rec := &recorder{ResponseWriter: w}
		h.ServeHTTP(rec, r)
		end := time.Now()
		var ans struct {
			ErrCode *int `json:"errcode"`
		}
		var req struct {
			ToUser string `json:"touser"`
			Text   struct {
				Content string `json:"content"`
			} `json:"text"`
		}
		if json.Unmarshal(rec.buf.Bytes(), &ans) != nil || ans.ErrCode == nil || *ans.ErrCode != 0 ||
			json.Unmarshal(body, &req) != nil || !strings.HasPrefix(req.Text.Content, "breply ") {
			return
		}
		l.mu.Lock()
		defer l.mu.Unlock()
		if l.calls == nil {
			l.calls, l.order = map[string]apiCall{}, map[string][]string{}
		}
		l.calls[req.Text.Content] = apiCall{start, end}
		l.order[req.ToUser] = append(l.order[req.ToUser], req.Text.Content)
	})
}

// outReply is one reply of the outbound phase.
type outReply struct {
	conv, text string
	n          int       // its place in its conversation
	posted     time.Time // just before the POST
	accepted   time.Duration
	id         string
	err        string
}

// outboundPhase: employees' replies through the console API, in many
// conversations at once (each conversation's in turn, as one person
// types them), archived, sent to the simulator's custom/send and their
// outcome archived (the "sent" status frame on the supervisor's socket
// follows the outcome's row). The relay's overhead is the time from the
// POST to that frame less the time the simulator took to answer.
func (b *bench) outboundPhase(relay *relayProc, recv *receiver) {
	t := b.t
	// Conversations: each client writes first (WeChat's 48-hour window).
	n := b.p.convs
	recv.reset("seed")
	seed := b.load(relay, wxsim.LoadConfig{Rate: 1000, Duration: time.Duration(max(1000, 2*n)) * time.Millisecond,
		Clients: n, MaxInFlight: 64}, "seed")
	b.waitDelivered("outbound's clients", recv, seed.Accepted, 2*time.Minute)
	convs := recv.conversations()

	var mu sync.Mutex
	final := map[string]time.Time{} // message id → its outcome's status frame
	states := map[string]int{}
	recv.statuses(func(id, state string, at time.Time) {
		if state == "pending" || state == "sending" {
			return
		}
		mu.Lock()
		if _, ok := final[id]; !ok {
			final[id] = at
			states[state]++
		}
		mu.Unlock()
	})
	defer recv.statuses(nil)

	ins := b.startInserts("outbound", relay)
	hc := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: len(convs) + 8}}
	var wg sync.WaitGroup
	var rmu sync.Mutex
	var replies []*outReply
	start := time.Now()
	stop := start.Add(b.p.dur)
	ci := 0
	for conv, emp := range convs {
		ci++
		if emp == "" {
			t.Logf("outbound: %s has no assignee in its frames; skipped", conv)
			continue
		}
		wg.Add(1)
		go func(ci int) {
			defer wg.Done()
			for i := 0; i < b.p.replies && time.Now().Before(stop); i++ {
				rp := &outReply{conv: conv, n: i, text: fmt.Sprintf("breply %d %d", ci, i)}
				postReply(hc, relay.url(), emp, rp)
				rmu.Lock()
				replies = append(replies, rp)
				rmu.Unlock()
				if rp.id == "" {
					return // the conversation stops at a refusal, keeping its order
				}
			}
		}(ci)
	}
	wg.Wait()
	posting := time.Since(start)
	ids := map[string]*outReply{}
	var refused []string
	for _, rp := range replies {
		if rp.id != "" {
			ids[rp.id] = rp
		} else if len(refused) < 5 {
			refused = append(refused, rp.err)
		}
	}
	deadline := time.Now().Add(5 * time.Minute)
	for {
		mu.Lock()
		done := len(final)
		mu.Unlock()
		if done >= len(ids) || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	ins.stop()

	mu.Lock()
	var overhead, postLat []time.Duration
	var last time.Time
	b.simLog.mu.Lock()
	for id, rp := range ids {
		postLat = append(postLat, rp.accepted)
		at, ok := final[id]
		if !ok {
			continue
		}
		last = maxTime(last, at)
		if call, ok := b.simLog.calls[rp.text]; ok {
			overhead = append(overhead, at.Sub(rp.posted)-call.end.Sub(call.start))
		}
	}
	outOfOrder := 0
	for _, texts := range b.simLog.order {
		prev := -1
		for _, text := range texts {
			f := strings.Fields(text)
			k, _ := strconv.Atoi(f[len(f)-1])
			if k <= prev {
				outOfOrder++
				break
			}
			prev = k
		}
	}
	orderConvs := len(b.simLog.order)
	b.simLog.mu.Unlock()
	outcomes, stateList := len(final), fmt.Sprint(states)
	mu.Unlock()
	slices.Sort(overhead)
	slices.Sort(postLat)
	archivedSent, err := b.arch.eventsOf("sent")
	if err != nil {
		t.Errorf("counting the archived outcomes: %v", err)
	}
	rate := float64(outcomes) / last.Sub(start).Seconds()
	if len(refused) > 0 {
		t.Logf("outbound: %d replies refused, e.g. %q", len(replies)-len(ids), refused)
	}
	if outcomes < len(ids) {
		b.missing = append(b.missing, fmt.Sprintf("outbound: %d of %d accepted replies have an outcome on the socket", outcomes, len(ids)))
	}
	if outOfOrder > 0 {
		t.Errorf("outbound: %d conversations received replies out of order", outOfOrder)
	}
	b.rep.row(fmt.Sprintf("outbound: up to %d replies in each of %d conversations, posted over %s, archived, sent, outcome archived", b.p.replies, len(convs), posting.Round(time.Second)),
		fmt.Sprintf("%.0f/s (%d accepted of %d posted; outcomes %s, %d `sent` rows archived; order kept in %d of %d conversations)",
			rate, len(ids), len(replies), stateList, archivedSent, orderConvs-outOfOrder, orderConvs),
		fmt.Sprintf("%.2f× the target (3,000/s)", rate/3000))
	b.rep.row("outbound, under that load: POST → outcome frame, less the simulator's custom/send time",
		fmt.Sprintf("p50 %s, p99 %s (POST answered: p50 %s, p99 %s)", pct(overhead, 0.5), pct(overhead, 0.99), pct(postLat, 0.5), pct(postLat, 0.99)), "")

	// The overhead alone: one reply at a time, each after the outcome of
	// the one before, so that nothing queues.
	var conv, emp string
	for c, e := range convs {
		if e != "" {
			conv, emp = c, e
			break
		}
	}
	var alone []time.Duration
	for i := range 50 {
		rp := &outReply{conv: conv, n: i, text: fmt.Sprintf("breply alone %d", i)}
		postReply(hc, relay.url(), emp, rp)
		if rp.id == "" {
			t.Logf("outbound: a reply alone was refused: %s", rp.err)
			break
		}
		var at time.Time
		for wait := time.Now().Add(30 * time.Second); time.Now().Before(wait); time.Sleep(2 * time.Millisecond) {
			mu.Lock()
			at = final[rp.id]
			mu.Unlock()
			if !at.IsZero() {
				break
			}
		}
		b.simLog.mu.Lock()
		call, ok := b.simLog.calls[rp.text]
		b.simLog.mu.Unlock()
		if !at.IsZero() && ok {
			alone = append(alone, at.Sub(rp.posted)-call.end.Sub(call.start))
		}
	}
	slices.Sort(alone)
	b.rep.row("outbound, one reply at a time: the relay's overhead (POST → outcome frame, less the simulator's custom/send time)",
		fmt.Sprintf("p50 %s, p99 %s (%d replies)", pct(alone, 0.5), pct(alone, 0.99), len(alone)),
		fmt.Sprintf("p99 %.1f× the target (30 ms)", pct(alone, 0.99).Seconds()/0.030))
}

func maxTime(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// postReply posts rp as emp's reply, with its text as the idempotency
// key, trying again on a 503 "still being accepted" or a lost connection.
func postReply(hc *http.Client, base, emp string, rp *outReply) {
	body, _ := json.Marshal(map[string]string{"key": strings.ReplaceAll(rp.text, " ", "-"), "kind": "text", "text": rp.text})
	rp.posted = time.Now()
	for try := 0; try < 20; try++ {
		req, _ := http.NewRequestWithContext(context.Background(), "POST",
			base+"/api/conversations/"+url.PathEscape(rp.conv)+"/messages", bytes.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+token(emp))
		req.Header.Set("Content-Type", "application/json")
		resp, err := hc.Do(req)
		if err != nil {
			rp.err = err.Error()
			time.Sleep(100 * time.Millisecond)
			continue
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		var out struct {
			ID string `json:"message_id"`
		}
		json.Unmarshal(b, &out)
		if resp.StatusCode == http.StatusAccepted || resp.StatusCode == http.StatusOK {
			rp.id, rp.err, rp.accepted = out.ID, "", time.Since(rp.posted)
			return
		}
		rp.err = fmt.Sprintf("%d %s", resp.StatusCode, bytes.TrimSpace(b))
		if resp.StatusCode < 500 {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
}
