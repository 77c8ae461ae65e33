package chaos

import (
	"encoding/json"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/gorilla/websocket"
)

// receiver is a supervisor's console socket that notes when each bench
// message of the current phase (its tag) arrives, which employee each
// conversation is assigned to, and the outbound messages' status
// frames. Like the console, it reconnects when the socket drops and
// resumes every conversation it knows.
type receiver struct {
	addr string
	done chan struct{}

	mu       sync.Mutex
	tag      string
	seen     map[string]bool
	lat      []time.Duration
	last     time.Time
	convEmp  map[string]string // conversation → the employee of its last message
	convSeq  map[string]uint64 // conversation → highest sequence number seen
	tagConvs map[string]bool   // the conversations of the tag's messages
	onStatus func(id, state string, at time.Time)
	drops    int

	wmu sync.Mutex // ws, and writes to it
	ws  *websocket.Conn
}

type received struct {
	n    int
	lat  []time.Duration // sorted
	last time.Time
}

func (r received) pct(p float64) time.Duration {
	return pct(r.lat, p)
}

// pct is the p-th quantile of sorted durations (1: the largest).
func pct(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	return sorted[min(len(sorted)-1, int(p*float64(len(sorted))))].Round(100 * time.Microsecond)
}

// receive opens a supervisor's socket on r and keeps it open until the
// test ends.
func (b *bench) receive(r *relayProc) *receiver {
	recv := &receiver{addr: r.addr, done: make(chan struct{}), seen: map[string]bool{},
		convEmp: map[string]string{}, convSeq: map[string]uint64{}, tagConvs: map[string]bool{}}
	ws, err := recv.dial()
	if err != nil {
		b.t.Fatal(err)
	}
	b.t.Cleanup(func() { close(recv.done) })
	go recv.run(ws)
	return recv
}

func (r *receiver) dial() (*websocket.Conn, error) {
	hdr := http.Header{"Authorization": {"Bearer " + token(supID)}}
	ws, _, err := websocket.DefaultDialer.Dial("ws://"+r.addr+"/api/ws", hdr)
	return ws, err
}

// run reads frames; when the socket drops it dials again and resumes
// every conversation from the last sequence number it saw.
func (r *receiver) run(ws *websocket.Conn) {
	for {
		r.wmu.Lock()
		r.ws = ws
		r.wmu.Unlock()
		stop := make(chan struct{})
		go func(ws *websocket.Conn) {
			select {
			case <-r.done:
				ws.Close()
			case <-stop:
			}
		}(ws)
		r.read(ws)
		close(stop)
		select {
		case <-r.done:
			return
		default:
		}
		r.mu.Lock()
		r.drops++
		r.mu.Unlock()
		for {
			var err error
			if ws, err = r.dial(); err == nil {
				break
			}
			select {
			case <-r.done:
				return
			case <-time.After(200 * time.Millisecond):
			}
		}
		r.resumeAll(ws)
	}
}

// resumeAll asks for every known conversation's messages after the last
// one seen, on ws (nil: the current socket), as the console does after
// a reconnect.
func (r *receiver) resumeAll(ws *websocket.Conn) {
	r.mu.Lock()
	resume := make(map[string]uint64, len(r.convSeq))
	for c, s := range r.convSeq {
		resume[c] = s
	}
	r.mu.Unlock()
	r.wmu.Lock()
	defer r.wmu.Unlock()
	if ws == nil {
		ws = r.ws
	}
	for c, s := range resume {
		ws.WriteJSON(frame{Type: "resume", Conv: c, Seq: s})
	}
}

func (r *receiver) read(ws *websocket.Conn) {
	for {
		_, data, err := ws.ReadMessage()
		if err != nil {
			return
		}
		now := time.Now()
		var f benchFrame
		if json.Unmarshal(data, &f) != nil {
			continue
		}
		switch {
		case f.Type == "status" && f.Status != nil:
			r.mu.Lock()
			on := r.onStatus
			r.mu.Unlock()
			if on != nil {
				on(f.Status.MessageID, f.Status.State, now)
			}
		case f.Type == "message" && f.Message != nil:
			r.mu.Lock()
			if f.Seq > r.convSeq[f.Conv] {
				r.convSeq[f.Conv] = f.Seq
			}
			if f.Message.Direction == "in" && f.Message.Employee != "" {
				r.convEmp[f.Conv] = f.Message.Employee
			}
			if tag, sent, ok := parseBenchText(f.Message.Text); ok && tag == r.tag && !r.seen[f.Message.ID] {
				r.seen[f.Message.ID] = true
				r.tagConvs[f.Conv] = true
				r.lat = append(r.lat, now.Sub(sent))
				r.last = now
			}
			r.mu.Unlock()
		}
	}
}

// benchFrame is the part of a console frame the benchmark reads.
type benchFrame struct {
	frame
	Status *struct {
		MessageID string `json:"message_id"`
		State     string `json:"state"`
	} `json:"status,omitempty"`
}

// reset starts counting the messages of another phase.
func (r *receiver) reset(tag string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.tag, r.seen, r.lat, r.tagConvs = tag, map[string]bool{}, nil, map[string]bool{}
}

// conversations returns the conversations the tag's messages came in,
// each with the employee it is assigned to.
func (r *receiver) conversations() map[string]string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make(map[string]string, len(r.tagConvs))
	for c := range r.tagConvs {
		out[c] = r.convEmp[c]
	}
	return out
}

// statuses calls on for every status frame from now on (nil: stop).
func (r *receiver) statuses(on func(id, state string, at time.Time)) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.onStatus = on
}

// waitFor waits until n messages of the tag arrived, or within passed,
// and returns what arrived.
func (r *receiver) waitFor(n int, within time.Duration) received {
	deadline := time.Now().Add(within)
	for {
		r.mu.Lock()
		got := len(r.lat)
		r.mu.Unlock()
		if got >= n || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	lat := slices.Clone(r.lat)
	slices.Sort(lat)
	return received{n: len(lat), lat: lat, last: r.last}
}
