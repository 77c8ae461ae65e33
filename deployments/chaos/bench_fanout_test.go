package chaos

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/gorilla/websocket"

	"github.com/wechat-relay/wechat-relay/gateway/wxsim"
)

// fanoutPhase: WR_BENCH_SOCKETS console sockets on one instance of its
// own (the default console.send_queue), a tenth of them a supervisor's,
// the rest an agent's who is given no conversations (an idle employee).
// What the process holds for each socket is read from its /metrics (the
// Go runtime's heap and stack in use, the goroutines) before and after
// they connect; then messages come in at 20/s and every supervisor's
// socket receives each one.
func (b *bench) fanoutPhase() {
	t := b.t
	n := b.p.sockets
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err == nil && uint64(n)+1000 > lim.Cur {
		// Both ends of each socket need a descriptor: the relay's and ours.
		t.Logf("fan-out: %d sockets asked for; the open-files limit is %d, so %d", n, lim.Cur, int(lim.Cur)-1000)
		n = int(lim.Cur) - 1000
	}
	cfg := b.config
	cfg.sendQueue, cfg.quietAgent = 0, true
	fan := b.procWith("fanout", "serve", cfg)
	b.waitReady(fan)
	defer fan.stop()
	time.Sleep(2 * time.Second)
	before := fan.memory()

	sups := max(1, n/10)
	socks := make([]*fanSocket, n)
	var dialed, failed atomic.Int64
	var wg sync.WaitGroup
	next := make(chan int)
	dialer := &websocket.Dialer{HandshakeTimeout: 30 * time.Second, ReadBufferSize: 1024, WriteBufferSize: 1024}
	start := time.Now()
	for range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				emp := quietID
				if i < sups {
					emp = supID
				}
				s := &fanSocket{sup: i < sups, arrived: map[string]time.Time{}}
				var err error
				for try := 0; try < 5; try++ {
					s.ws, _, err = dialer.Dial("ws://"+fan.addr+"/api/ws", http.Header{"Authorization": {"Bearer " + token(emp)}})
					if err == nil {
						break
					}
					time.Sleep(200 * time.Millisecond)
				}
				if err != nil {
					failed.Add(1)
					continue
				}
				dialed.Add(1)
				socks[i] = s
				go s.read()
			}
		}()
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
	connectTook := time.Since(start)
	defer func() {
		for _, s := range socks {
			if s != nil {
				s.ws.Close()
			}
		}
	}()
	var open float64
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		if open, _ = fan.metric("wechat_relay_websocket_connections"); open >= float64(dialed.Load()) {
			break
		}
	}
	t.Logf("fan-out: %d sockets connected in %s (%d failed), %.0f open on the relay", dialed.Load(), connectTook.Round(time.Millisecond), failed.Load(), open)
	time.Sleep(3 * time.Second)
	after := fan.memory()
	k := float64(dialed.Load())
	heap, stack := (after.heap-before.heap)/k, (after.stack-before.stack)/k
	b.rep.row(fmt.Sprintf("console fan-out: %d sockets held by one instance (%d supervisors', the rest idle agents')", int(k), sups),
		fmt.Sprintf("%.1f KB each: heap %.1f KB + stacks %.1f KB, %.2f goroutines (process: heap in use %.0f → %.0f MB, resident %.0f → %.0f MB; %d refused)",
			(heap+stack)/1024, heap/1024, stack/1024, (after.goroutines-before.goroutines)/k,
			before.heap/(1<<20), after.heap/(1<<20), before.rss/(1<<20), after.rss/(1<<20), failed.Load()),
		fmt.Sprintf("%.1f× the target (16 KB)", (heap+stack)/1024/16))

	// The broadcast: messages at 20/s, each to every supervisor's socket.
	dur := min(b.p.dur, 10*time.Second)
	rep := b.load(fan, wxsim.LoadConfig{Rate: 20, Duration: dur, Clients: 8, MaxInFlight: 16}, "fan")
	want := rep.Accepted
	deadline := time.Now().Add(time.Minute)
	for _, s := range socks[:sups] {
		for s != nil && s.count() < want && time.Now().Before(deadline) {
			time.Sleep(50 * time.Millisecond)
		}
	}
	first := map[string]time.Time{}
	var frames int
	for _, s := range socks[:sups] {
		if s == nil {
			continue
		}
		s.mu.Lock()
		for id, at := range s.arrived {
			if f, ok := first[id]; !ok || at.Before(f) {
				first[id] = at
			}
		}
		s.mu.Unlock()
	}
	var spread, lat []time.Duration
	dropped := 0
	for _, s := range socks[:sups] {
		if s == nil {
			continue
		}
		s.mu.Lock()
		for id, at := range s.arrived {
			spread = append(spread, at.Sub(first[id]))
			lat = append(lat, at.Sub(s.sent[id]))
		}
		frames += len(s.arrived)
		if s.closed {
			dropped++
		}
		s.mu.Unlock()
	}
	slices.Sort(spread)
	slices.Sort(lat)
	if frames < want*sups {
		b.missing = append(b.missing, fmt.Sprintf("fan-out: %d of %d frames reached the supervisors' sockets (%d sockets closed)", frames, want*sups, dropped))
	}
	b.rep.row(fmt.Sprintf("console fan-out: %d messages at 20/s broadcast to %d supervisors' sockets, %d sockets open", want, sups, int(k)),
		fmt.Sprintf("first socket → each: p50 %s, p99 %s, max %s; POST → frame p50 %s, p99 %s (%d of %d frames, %d sockets dropped)",
			pct(spread, 0.5), pct(spread, 0.99), pct(spread, 1), pct(lat, 0.5), pct(lat, 0.99), frames, want*sups, dropped),
		fmt.Sprintf("POST → frame p99 %.1f× the target (100 ms)", pct(lat, 0.99).Seconds()/0.1))
}

// fanSocket is one console socket of the fan-out phase.
type fanSocket struct {
	ws  *websocket.Conn
	sup bool

	mu      sync.Mutex
	arrived map[string]time.Time // bench message id → when its frame arrived
	sent    map[string]time.Time // … → when it was posted
	closed  bool
}

func (s *fanSocket) read() {
	defer func() { s.mu.Lock(); s.closed = true; s.mu.Unlock() }()
	for {
		_, data, err := s.ws.ReadMessage()
		if err != nil || !s.sup {
			if err != nil {
				return
			}
			continue
		}
		now := time.Now()
		var f frame
		if json.Unmarshal(data, &f) != nil || f.Type != "message" || f.Message == nil {
			continue
		}
		if tag, sent, ok := parseBenchText(f.Message.Text); ok && tag == "fan" {
			s.mu.Lock()
			if _, dup := s.arrived[f.Message.ID]; !dup {
				if s.sent == nil {
					s.sent = map[string]time.Time{}
				}
				s.arrived[f.Message.ID], s.sent[f.Message.ID] = now, sent
			}
			s.mu.Unlock()
		}
	}
}

func (s *fanSocket) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.arrived)
}

// procMemory is what a relay process holds, from its /metrics.
type procMemory struct{ heap, stack, goroutines, rss float64 }

// memory reads the process's memory five times a second apart and keeps
// the least heap seen (the nearest to what is live: the rest is garbage
// the collector has not reached yet).
func (r *relayProc) memory() procMemory {
	var m procMemory
	for i := range 5 {
		if i > 0 {
			time.Sleep(time.Second)
		}
		heap, err1 := r.metric("go_memstats_heap_inuse_bytes")
		stack, err2 := r.metric("go_memstats_stack_inuse_bytes")
		g, err3 := r.metric("go_goroutines")
		rss, _ := r.metric("process_resident_memory_bytes")
		if err1 != nil || err2 != nil || err3 != nil {
			continue
		}
		if m.heap == 0 || heap < m.heap {
			m = procMemory{heap: heap, stack: stack, goroutines: g, rss: rss}
		}
	}
	return m
}
