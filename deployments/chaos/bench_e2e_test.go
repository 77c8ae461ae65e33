package chaos

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/wechat-relay/wechat-relay/gateway/wxsim"
	"github.com/wechat-relay/wechat-relay/storage/testenv"
)

// TestBenchE2E is `make bench-e2e`: the relay binary on real ClickHouse
// and Redis, driven through the simulator's load generator, against the
// ceiling of the same binary's callback path storing nothing
// (`wechat-relay bench-ceiling`), measured in one run. A supervisor's
// WebSocket receives every frame; a frame counts when it arrives, and
// its latency runs from just before its callback was posted (the time is
// stamped in the message's text). It prints the table docs/performance.md
// keeps. Figures are ratios within the run; the machine is shared.
//
// WR_BENCH_E2E=1 runs it; WR_BENCH_DURATION (default 20s) is each
// phase's sending time, WR_BENCH_RATE (2000) the fixed rate of the
// latency phase, WR_BENCH_REPORT a file the table is also written to.
func TestBenchE2E(t *testing.T) {
	if os.Getenv("WR_BENCH_E2E") != "1" {
		t.Skip("the end-to-end benchmark runs with WR_BENCH_E2E=1 (make bench-e2e)")
	}
	dur := envDuration(t, "WR_BENCH_DURATION", 20*time.Second)
	rate := 2000.0
	if v := os.Getenv("WR_BENCH_RATE"); v != "" {
		r, err := strconv.ParseFloat(v, 64)
		if err != nil || r <= 0 {
			t.Fatalf("WR_BENCH_RATE=%q: want a positive number", v)
		}
		rate = r
	}
	b := newBench(t)

	// 1. The ceiling: the callback path alone, as fast as it answers.
	ceil := b.proc("ceiling", "bench-ceiling")
	ceiling := b.load(ceil, wxsim.LoadConfig{Rate: 100000, Duration: dur, Clients: 64, MaxInFlight: 64}, nil)
	ceil.stop()

	// 2. The relay, as fast as it answers, with a supervisor receiving.
	relay := b.proc("relay", "serve")
	b.waitReady(relay)
	recv := b.receive(relay)
	start := time.Now()
	sat := b.load(relay, wxsim.LoadConfig{Rate: 100000, Duration: dur, Clients: 64, MaxInFlight: 64}, recv)
	spoolAtEnd, _ := relay.spoolPending()
	delivered := recv.waitFor(sat.Accepted, 2*time.Minute)
	deliveredPS := float64(delivered.n) / delivered.last.Sub(start).Seconds()

	// 3. The relay at a fixed rate: latency from POST to frame.
	recv.reset()
	fixed := b.load(relay, wxsim.LoadConfig{Rate: rate, Duration: dur, Clients: 64, MaxInFlight: 256}, recv)
	lat := recv.waitFor(fixed.Accepted, 2*time.Minute)
	relay.stop()

	var tb strings.Builder
	fmt.Fprintf(&tb, "end-to-end benchmark, %s, %d cores (%s/%s), each phase %s of sending\n\n",
		time.Now().UTC().Format("2006-01-02"), runtime.NumCPU(), runtime.GOOS, runtime.GOARCH, dur)
	fmt.Fprintf(&tb, "| | figure | ratio to the ceiling |\n| --- | --- | --- |\n")
	fmt.Fprintf(&tb, "| ceiling: callbacks answered, storing nothing | %.0f/s (p99 %s) | 1 |\n", ceiling.AcceptedPS, ceiling.P99.Round(time.Millisecond))
	fmt.Fprintf(&tb, "| relay: callbacks answered `success` | %.0f/s (p99 %s) | %.2f× |\n", sat.AcceptedPS, sat.P99.Round(time.Millisecond), sat.AcceptedPS/ceiling.AcceptedPS)
	fmt.Fprintf(&tb, "| relay: archived then delivered to a supervisor's socket | %.0f/s (%d of %d; spool %.0f when sending stopped) | **%.2f×** |\n",
		deliveredPS, delivered.n, sat.Accepted, spoolAtEnd, deliveredPS/ceiling.AcceptedPS)
	fmt.Fprintf(&tb, "| at %.0f/s for %s: WeChat answered | p50 %s, p99 %s (%d of %d accepted) | |\n", rate, dur,
		fixed.P50.Round(100*time.Microsecond), fixed.P99.Round(100*time.Microsecond), fixed.Accepted, fixed.Sent)
	fmt.Fprintf(&tb, "| at %.0f/s for %s: POST → frame on the socket | p50 %s, p99 %s, max %s (%d frames) | |\n", rate, dur,
		lat.pct(0.50), lat.pct(0.99), lat.pct(1), lat.n)
	t.Log("\n" + tb.String())
	if path := os.Getenv("WR_BENCH_REPORT"); path != "" {
		if err := os.WriteFile(path, []byte(tb.String()), 0o644); err != nil {
			t.Error(err)
		}
	}
	if delivered.n < sat.Accepted || lat.n < fixed.Accepted {
		t.Errorf("frames missing: %d of %d, then %d of %d accepted messages reached the socket", delivered.n, sat.Accepted, lat.n, fixed.Accepted)
	}
}

func envDuration(t *testing.T, name string, def time.Duration) time.Duration {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		t.Fatalf("%s=%q: want a positive duration", name, v)
	}
	return d
}

// bench is what the phases share: the binary, the servers, the
// simulator and one configuration.
type bench struct {
	t      *testing.T
	dir    string
	bin    string
	sim    *wxsim.Sim
	appID  string
	config relayConfig
}

func newBench(t *testing.T) *bench {
	b := &bench{t: t, dir: t.TempDir()}
	b.bin = buildRelay(t, b.dir)
	ch, rd := testenv.StartClickHouse(t), testenv.StartRedis(t)
	b.sim = wxsim.New(wxsim.Config{HTTPClient: &http.Client{Transport: &http.Transport{
		MaxIdleConns: 512, MaxIdleConnsPerHost: 512, IdleConnTimeout: 30 * time.Second}}})
	simSrv := httptest.NewServer(wxsim.NewServer(b.sim))
	b.sim.SetPublicURL(simSrv.URL)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		b.sim.Close(ctx)
		simSrv.Close()
	})
	acct, err := b.sim.AddAccount(wxsim.Account{Mode: wxsim.ModeSafe})
	if err != nil {
		t.Fatal(err)
	}
	b.appID = acct.AppID
	b.config = relayConfig{chAddr: ch.Addr, db: testenv.UniqueName("bench"), redisAddr: rd.Addr, prefix: testenv.UniqueName("wr") + ":",
		simURL: simSrv.URL, appID: acct.AppID, secret: acct.AppSecret, tok: acct.Token, aesKey: acct.EncodingAESKey,
		outboxSettle: 20 * time.Second, consolePing: 5 * time.Second, dirPoll: 2 * time.Second,
		// A supervisor watching every conversation receives each writer
		// batch (up to 500 messages) at once: the default queue of 256
		// frames disconnects it as a slow consumer at these rates.
		sendQueue: 8192}
	return b
}

// proc starts the binary's command with a configuration of its own.
func (b *bench) proc(name, command string) *relayProc {
	t := b.t
	cfg := b.config
	cfg.listen = fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	cfg.dataDir = filepath.Join(b.dir, name, "data")
	path := filepath.Join(b.dir, name+".yaml")
	if err := os.WriteFile(path, []byte(cfg.yaml()), 0o644); err != nil {
		t.Fatal(err)
	}
	r := &relayProc{name: name, bin: b.bin, config: path, addr: cfg.listen, dataDir: cfg.dataDir, command: command,
		logPath: filepath.Join(b.dir, name+".log"), env: cfg.env(), logf: t.Logf}
	if err := r.start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.stop() })
	testenv.Until(t, name+" listening", func() bool { _, _, err := r.get("/"); return err == nil })
	return r
}

func (b *bench) waitReady(r *relayProc) {
	testenv.Until(b.t, r.name+" ready", r.ready)
}

// load points the account's callbacks at r and runs one load phase; with
// recv, each message's text carries the time it was posted.
func (b *bench) load(r *relayProc, cfg wxsim.LoadConfig, recv *receiver) wxsim.LoadReport {
	t := b.t
	if err := b.sim.SetCallbackURL(b.appID, r.url()+"/wechat/"+accountID); err != nil {
		t.Fatal(err)
	}
	cfg.AppID = b.appID
	if recv != nil {
		cfg.Text = func(k int) string { return benchText(k, time.Now()) }
	}
	rep, err := b.sim.Load(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%s: %s", r.name, rep)
	if rep.Accepted == 0 {
		t.Fatalf("%s accepted nothing: %v", r.name, rep.Errors)
	}
	return rep
}

func benchText(k int, at time.Time) string {
	return fmt.Sprintf("bench %d %d", k, at.UnixNano())
}

func parseBenchText(s string) (time.Time, bool) {
	f := strings.Fields(s)
	if len(f) != 3 || f[0] != "bench" {
		return time.Time{}, false
	}
	ns, err := strconv.ParseInt(f[2], 10, 64)
	return time.Unix(0, ns), err == nil
}

// receiver is a supervisor's console socket that notes when each bench
// message arrives.
type receiver struct {
	mu   sync.Mutex
	seen map[string]bool
	lat  []time.Duration
	last time.Time
}

type received struct {
	n    int
	lat  []time.Duration // sorted
	last time.Time
}

func (r received) pct(p float64) time.Duration {
	if len(r.lat) == 0 {
		return 0
	}
	return r.lat[min(len(r.lat)-1, int(p*float64(len(r.lat))))].Round(100 * time.Microsecond)
}

func (b *bench) receive(r *relayProc) *receiver {
	t := b.t
	recv := &receiver{seen: map[string]bool{}}
	hdr := http.Header{"Authorization": {"Bearer " + token(supID)}}
	ws, _, err := websocket.DefaultDialer.Dial("ws://"+r.addr+"/api/ws", hdr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ws.Close() })
	go func() {
		for {
			_, data, err := ws.ReadMessage()
			if err != nil {
				return
			}
			now := time.Now()
			var f frame
			if json.Unmarshal(data, &f) != nil || f.Type != "message" || f.Message == nil {
				continue
			}
			sent, ok := parseBenchText(f.Message.Text)
			if !ok {
				continue
			}
			recv.mu.Lock()
			if !recv.seen[f.Message.ID] {
				recv.seen[f.Message.ID] = true
				recv.lat = append(recv.lat, now.Sub(sent))
				recv.last = now
			}
			recv.mu.Unlock()
		}
	}()
	return recv
}

func (r *receiver) reset() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.seen, r.lat = map[string]bool{}, nil
}

// waitFor waits until n messages arrived, or within passed, and returns
// what arrived.
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
