package chaos

import (
	"context"
	"encoding/xml"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/silenceper/wechat/v2/util"

	"github.com/wechat-relay/wechat-relay/gateway/wxsim"
	"github.com/wechat-relay/wechat-relay/storage/testenv"
)

// params are the run's knobs, from WR_CHAOS_* variables (docs/chaos.md).
type params struct {
	n          int           // client messages in all (WR_CHAOS_N)
	clients    int           // simulated clients (WR_CHAOS_CLIENTS)
	duration   time.Duration // sending phase; 0: as fast as the clients go (WR_CHAOS_DURATION)
	faultFor   time.Duration // how long each fault lasts (WR_CHAOS_FAULT)
	gap        time.Duration // calm between two faults (WR_CHAOS_GAP)
	replyEvery int           // employees answer one client message in this many (WR_CHAOS_REPLY_EVERY)
	faults     []string      // only the faults whose names contain one of these (WR_CHAOS_FAULTS)
	report     string        // also write the report to this file (WR_CHAOS_REPORT)
	connLife   time.Duration // mean lifetime of a console connection (WR_CHAOS_CONN)
}

// shortN is the largest run the CI defaults are meant for.
const shortN = 20000

func loadParams(t *testing.T) params {
	t.Helper()
	p := params{n: 2000, replyEvery: 10}
	num := func(name string, v *int) {
		if s := os.Getenv(name); s != "" {
			n, err := strconv.Atoi(strings.ReplaceAll(s, "_", ""))
			if err != nil || n <= 0 {
				t.Fatalf("%s=%q: want a positive number", name, s)
			}
			*v = n
		}
	}
	dur := func(name string, v *time.Duration) {
		if s := os.Getenv(name); s != "" {
			d, err := time.ParseDuration(s)
			if err != nil || d < 0 {
				t.Fatalf("%s=%q: want a duration such as 90s", name, s)
			}
			*v = d
		}
	}
	num("WR_CHAOS_N", &p.n)
	long := p.n > shortN
	p.clients, p.duration, p.faultFor, p.gap, p.connLife = 40, 60*time.Second, 3*time.Second, 2*time.Second, 5*time.Second
	if long {
		// About 1,000 messages a second, so that the faults are spread
		// over the whole run. 200 clients: the supervisors' consumers
		// resume every conversation on each connection, and with 600 or
		// more they are closed as slow consumers over and over
		// (docs/chaos.md, "The long run"); WR_CHAOS_CLIENTS=4000 is the
		// person's pace the million-message run needs.
		p.clients, p.duration, p.faultFor, p.gap, p.connLife = 200, time.Duration(p.n)*time.Millisecond, 5*time.Second, 10*time.Second, 20*time.Second
	}
	num("WR_CHAOS_CLIENTS", &p.clients)
	p.clients = min(p.clients, p.n)
	dur("WR_CHAOS_DURATION", &p.duration)
	dur("WR_CHAOS_FAULT", &p.faultFor)
	dur("WR_CHAOS_GAP", &p.gap)
	dur("WR_CHAOS_CONN", &p.connLife)
	num("WR_CHAOS_REPLY_EVERY", &p.replyEvery)
	if s := os.Getenv("WR_CHAOS_FAULTS"); s != "" {
		p.faults = strings.Split(s, ",")
	}
	p.report = os.Getenv("WR_CHAOS_REPORT")
	return p
}

// harness is everything one run owns.
type harness struct {
	t  *testing.T
	p  params
	tl *timeline

	ch, rd     *testenv.Server
	db, logDB  string
	sim        *wxsim.Sim
	appID      string
	sends      *sendLog
	relays     []*relayProc
	disks      []*spoolDisk
	lb         *balancer
	probe      *archiveProbe
	consumers  []*consumer
	replies    *repliers
	noReplies  atomic.Bool
	calm       atomic.Bool // consumers keep their connections (the final catch-up)
	bin        string
	configs    []string
	relayEnv   []string
	replyCount atomic.Int64
	stuck      []string // relays that were neither ready nor gone after the faults
	reportText string
}

// TestChaos is the chaos suite. It runs only when asked (WR_CHAOS=1, as
// `make chaos` and .ci/test.sh do), on its own: see docs/chaos.md.
func TestChaos(t *testing.T) {
	if testing.Short() {
		t.Skip("the chaos suite is long")
	}
	if os.Getenv("WR_CHAOS") == "" {
		t.Skip("the chaos suite runs on its own: WR_CHAOS=1 go test -v ./deployments/chaos/ (make chaos; .ci/test.sh runs it)")
	}
	p := loadParams(t)
	h := &harness{t: t, p: p, tl: &timeline{start: time.Now(), logf: t.Logf}}
	t.Logf("chaos: %d messages from %d clients, sending phase %s, faults of %s every %s",
		p.n, p.clients, orUnpaced(p.duration), p.faultFor, p.faultFor+p.gap)
	h.setUp()
	h.run()
}

func orUnpaced(d time.Duration) string {
	if d == 0 {
		return "unpaced"
	}
	return d.String()
}

// setUp builds the relay and starts ClickHouse, Redis, the simulator, both
// relays and the balancer.
func (h *harness) setUp() {
	t := h.t
	dir := t.TempDir()
	h.bin = buildRelay(t, dir)
	h.ch = testenv.StartClickHouse(t)
	h.rd = testenv.StartRedis(t)
	h.db = testenv.UniqueName("chaos")
	h.logDB = h.db + "_inserts"
	prefix := testenv.UniqueName("wr") + ":"
	h.tl.note("ClickHouse %s, Redis %s, database %s", h.ch.Addr, h.rd.Addr, h.db)

	h.sim = wxsim.New(wxsim.Config{HTTPClient: &http.Client{Transport: &http.Transport{
		MaxIdleConns: 512, MaxIdleConnsPerHost: 512, IdleConnTimeout: 30 * time.Second}}})
	h.sends = newSendLog(nil)
	simSrv := httptest.NewServer(h.sends.wrap(wxsim.NewServer(h.sim)))
	h.sim.SetPublicURL(simSrv.URL)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		h.sim.Close(ctx)
		simSrv.Close()
	})
	acct, err := h.sim.AddAccount(wxsim.Account{Mode: wxsim.ModeSafe})
	if err != nil {
		t.Fatal(err)
	}
	h.appID = acct.AppID

	var addrs []string
	for i, name := range []string{"relay-A", "relay-B"} {
		rdir := filepath.Join(dir, fmt.Sprintf("relay%c", 'A'+i))
		disk := mountSpoolDisk(t, filepath.Join(rdir, "data"), 256)
		h.disks = append(h.disks, disk)
		addr := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
		cfg := relayConfig{listen: addr, dataDir: disk.dir, chAddr: h.ch.Addr, db: h.db, redisAddr: h.rd.Addr, prefix: prefix,
			simURL: simSrv.URL, appID: acct.AppID, secret: acct.AppSecret, tok: acct.Token, aesKey: acct.EncodingAESKey,
			outboxSettle: 20 * time.Second, consolePing: 5 * time.Second, dirPoll: 2 * time.Second}
		path := filepath.Join(rdir, "relay.yaml")
		if err := os.WriteFile(path, []byte(cfg.yaml()), 0o644); err != nil {
			t.Fatal(err)
		}
		h.configs = append(h.configs, path)
		h.relayEnv = cfg.env()
		r := &relayProc{name: name, bin: h.bin, config: path, addr: addr, dataDir: disk.dir,
			logPath: filepath.Join(rdir, "relay.log"), env: cfg.env(), logf: h.tl.note}
		h.relays = append(h.relays, r)
		addrs = append(addrs, addr)
	}
	t.Cleanup(func() {
		for _, r := range h.relays {
			r.stop()
		}
		if t.Failed() {
			for _, r := range h.relays {
				t.Logf("---- %s's log, its last warnings and errors:\n%s", r.name, r.tail(60, true))
			}
			h.keepLogs()
		}
	})
	if out, err := h.relayCmd("check-config", "-config", h.configs[0]).CombinedOutput(); err != nil {
		t.Fatalf("check-config: %v\n%s", err, out)
	}

	// A first, so that its migrations have made the tables before the
	// insert log is attached and B starts.
	h.startAndWait(h.relays[0], time.Minute)
	h.attachInsertLog()
	h.startAndWait(h.relays[1], time.Minute)

	h.lb = startBalancer(t, addrs, []string{h.relays[0].name, h.relays[1].name})
	h.lb.msgID = callbackMsgID(acct.AppID, acct.EncodingAESKey)
	if err := h.sim.SetCallbackURL(acct.AppID, h.lb.url+"/wechat/"+accountID); err != nil {
		t.Fatal(err)
	}
	h.probe, err = newArchiveProbe(h.ch.Addr, h.db)
	if err != nil {
		t.Fatal(err)
	}
	go h.probe.run()
	h.sends.probe = h.probe
}

// callbackMsgID reads the MsgId (or, for an event, the client and the
// event) out of a callback, decrypting it as the relay does.
func callbackMsgID(appID, aesKey string) func(*http.Request, []byte) string {
	return func(r *http.Request, body []byte) string {
		if !strings.HasPrefix(r.URL.Path, "/wechat/") {
			return ""
		}
		var env struct {
			Encrypt string `xml:"Encrypt"`
		}
		if xml.Unmarshal(body, &env) != nil || env.Encrypt == "" {
			return ""
		}
		_, plain, err := util.DecryptMsg(appID, env.Encrypt, aesKey)
		if err != nil {
			return ""
		}
		var m struct {
			MsgID string `xml:"MsgId"`
			From  string `xml:"FromUserName"`
			Event string `xml:"Event"`
		}
		if xml.Unmarshal(plain, &m) != nil {
			return ""
		}
		if m.MsgID != "" {
			return m.MsgID
		}
		return m.From + "/" + m.Event
	}
}

func (h *harness) relayCmd(args ...string) *exec.Cmd {
	cmd := exec.Command(h.bin, args...)
	cmd.Env = h.relayEnv
	return cmd
}

func (h *harness) startAndWait(r *relayProc, within time.Duration) {
	h.t.Helper()
	if err := r.start(); err != nil {
		h.t.Fatal(err)
	}
	deadline := time.Now().Add(within)
	for !r.ready() {
		if time.Now().After(deadline) {
			h.t.Fatalf("%s not ready within %s:\n%s", r.name, within, r.tail(40, false))
		}
		time.Sleep(100 * time.Millisecond)
	}
	h.tl.note("%s ready on %s", r.name, r.addr)
}

// attachInsertLog records every row ever inserted into the archive's
// messages table, in a database of the suite's own: a materialized view
// sees each insert as it happens, so a row inserted twice shows twice
// here even after ReplacingMergeTree has merged the copies away.
func (h *harness) attachInsertLog() {
	h.t.Helper()
	conn, err := clickhouse.Open(&clickhouse.Options{Addr: []string{h.ch.Addr}})
	if err != nil {
		h.t.Fatal(err)
	}
	defer conn.Close()
	ctx := context.Background()
	for _, q := range []string{
		"CREATE DATABASE IF NOT EXISTS " + h.logDB,
		"CREATE MATERIALIZED VIEW " + h.logDB + ".messages ENGINE = MergeTree() ORDER BY (conv, id) AS SELECT id, conv, seq, direction, accepted_ms FROM " + h.db + ".messages",
	} {
		if err := conn.Exec(ctx, q); err != nil {
			h.t.Fatalf("%s: %v", q, err)
		}
	}
}

// run is the whole schedule: traffic under faults, the drain, the check.
func (h *harness) run() {
	t, p := h.t, h.p
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	// Consumers: two supervisors' consoles see everything; each agent's
	// console sees the conversations assigned to them.
	cctx, stopConsumers := context.WithCancel(ctx)
	var cwg sync.WaitGroup
	h.replies = newRepliers(h.lb.url, 256) // employees answer concurrently
	names := []string{"sup-1", "sup-2"}
	emps := []string{supID, supID}
	for _, a := range agentIDs {
		names, emps = append(names, a), append(emps, a)
	}
	for i := range names {
		c := newConsumer(names[i], emps[i], h.relays, h.probe)
		c.lifetime = h.connLifetime
		if i == 0 {
			c.onMessage = h.maybeReply
		}
		h.consumers = append(h.consumers, c)
		cwg.Add(1)
		go func() { defer cwg.Done(); c.run(cctx) }()
	}

	clients, err := newClients(h.sim, h.appID, p.clients, p.n)
	if err != nil {
		t.Fatal(err)
	}
	var convs []string
	for _, c := range clients.clients {
		convs = append(convs, c.conv)
	}
	for _, c := range h.consumers[:2] {
		c.know(convs) // the supervisors resume every conversation
	}
	clients.subscribe(ctx)
	h.tl.note("%d clients follow the account", len(clients.clients))

	interval := time.Duration(0)
	if p.duration > 0 {
		interval = time.Duration(int64(p.duration) * int64(p.clients) / int64(p.n))
	}
	sendersDone := make(chan struct{})
	sendStart := time.Now()
	var sendTime time.Duration
	go func() {
		defer close(sendersDone)
		clients.send(ctx, interval)
		sendTime = time.Since(sendStart)
	}()
	progressDone := make(chan struct{})
	go func() {
		tick := time.NewTicker(10 * time.Second)
		defer tick.Stop()
		for {
			select {
			case <-progressDone:
				return
			case <-tick.C:
				h.tl.note("progress: %d of %d sent, %d acknowledged, %d replies queued",
					clients.sentN.Load(), p.n, clients.ackedN.Load(), h.replyCount.Load())
			}
		}
	}()
	ran := h.runFaults(sendersDone)
	<-sendersDone
	close(progressDone)
	h.tl.note("clients done: %d sent, %d acknowledged in %s; %d faults run in %s", clients.sentN.Load(), clients.ackedN.Load(),
		sendTime.Round(time.Second), ran, time.Since(sendStart).Round(time.Second))

	// The drain: everything back up, every spool empty, every reply
	// settled, every console caught up.
	drainStart := time.Now()
	h.restoreAll()
	h.stuck = h.unstick(30 * time.Second)
	h.waitDrained(3 * time.Minute)
	h.noReplies.Store(true)
	waitUntil(2*time.Minute, func() bool { return h.replies.pending.Load() == 0 })
	h.replies.close()
	h.waitDrained(2 * time.Minute)
	settled := h.waitSettled(2 * time.Minute)
	h.calm.Store(true)
	caughtUp := h.waitCaughtUp(2 * time.Minute)
	stopConsumers()
	cwg.Wait()
	h.tl.note("drained in %s (sends settled: %v, consoles caught up: %v)", time.Since(drainStart).Round(time.Second), settled, caughtUp)

	var exits []string
	for _, r := range h.relays {
		exits = append(exits, fmt.Sprintf("%s: %s", r.name, r.stop()))
	}
	h.probeCanary()
	h.probe.finish()

	rep := h.check(clients)
	rep.sendTime, rep.faultsRun, rep.stopExits = sendTime, ran, exits
	text := rep.String(h)
	h.reportText = text
	fmt.Println(text)
	if p.report != "" {
		if err := os.WriteFile(p.report, []byte(text+"\n"), 0o644); err != nil {
			t.Errorf("writing the report: %v", err)
		}
	}
	for _, f := range rep.failures() {
		t.Errorf("%s: %d", f.name, f.n)
	}
}

// connLifetime is how long a console connection is kept before the
// consumer drops it: random around the mean, or for good once calm.
func (h *harness) connLifetime() time.Duration {
	if h.calm.Load() {
		return time.Hour
	}
	m := h.p.connLife
	return m/2 + time.Duration(randInt64(int64(m)))
}

// maybeReply has the conversation's employee answer one client message in
// replyEvery.
func (h *harness) maybeReply(c *consumer, f *frame) {
	m := f.Message
	if h.noReplies.Load() || m.Direction != "in" || m.Kind != "text" || m.Employee == "" {
		return
	}
	ci, mi, ok := parseClientText(m.Text)
	if !ok || mi%h.p.replyEvery != h.p.replyEvery-1 {
		return
	}
	h.replyCount.Add(1)
	h.replies.add(replyTask{conv: f.Conv, emp: m.Employee, key: replyKey(ci, mi)})
}

// restoreAll undoes whatever fault may be left and starts what is down.
func (h *harness) restoreAll() {
	h.sim.ClearFaults()
	for _, d := range h.disks {
		if d.ok {
			os.Remove(d.filler)
		}
	}
	h.rd.Start()
	h.ch.Start()
	for _, r := range h.relays {
		if err := r.start(); err != nil {
			h.t.Errorf("starting %s for the drain: %v", r.name, err)
		}
	}
}

// unstick waits until both relays are ready. One that is still not ready
// after within, though running, is stuck: nothing restarts it (its
// /healthz answers, it does not exit); the suite then restarts it, as an
// operator would, so that its spool can drain and be checked.
func (h *harness) unstick(within time.Duration) []string {
	var stuck []string
	waitUntil(within, func() bool { return h.relays[0].ready() && h.relays[1].ready() })
	for _, r := range h.relays {
		if r.ready() {
			continue
		}
		_, why, _ := r.get("/readyz")
		code, health, _ := r.get("/healthz")
		msg := fmt.Sprintf("%s not ready %s after the last fault (/readyz: %s; /healthz: %d %s)",
			r.name, within, strings.TrimSpace(why), code, strings.TrimSpace(health))
		stuck = append(stuck, msg)
		h.tl.note("STUCK: %s; restarting it", msg)
		r.stop()
		if err := r.start(); err != nil {
			h.t.Errorf("restarting %s: %v", r.name, err)
		}
	}
	if len(stuck) > 0 {
		waitUntil(within, func() bool { return h.relays[0].ready() && h.relays[1].ready() })
	}
	return stuck
}

// waitDrained waits until both relays are ready and their spools stay
// empty.
func (h *harness) waitDrained(within time.Duration) {
	h.t.Helper()
	deadline := time.Now().Add(within)
	empty := 0
	for empty < 3 {
		if time.Now().After(deadline) {
			var state []string
			for _, r := range h.relays {
				n, err := r.spoolPending()
				state = append(state, fmt.Sprintf("%s ready=%v spool=%v err=%v", r.name, r.ready(), n, err))
			}
			h.t.Errorf("the relays did not drain within %s: %s", within, strings.Join(state, "; "))
			return
		}
		ok := true
		for _, r := range h.relays {
			n, err := r.spoolPending()
			if err != nil || n != 0 || !r.ready() {
				ok = false
			}
		}
		if ok {
			empty++
		} else {
			empty = 0
		}
		time.Sleep(500 * time.Millisecond)
	}
}

func waitUntil(within time.Duration, ok func() bool) bool {
	deadline := time.Now().Add(within)
	for !ok() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(200 * time.Millisecond)
	}
	return true
}

// keepLogs copies the relays' logs and the report out of the test's
// temporary directory (which is removed), for a failed run to be read.
func (h *harness) keepLogs() {
	dir, err := os.MkdirTemp("", "wechat-relay-chaos-")
	if err != nil {
		h.t.Logf("keeping the logs: %v", err)
		return
	}
	for _, r := range h.relays {
		if b, err := os.ReadFile(r.logPath); err == nil {
			os.WriteFile(filepath.Join(dir, r.name+".log"), b, 0o644)
		}
	}
	if h.reportText != "" {
		os.WriteFile(filepath.Join(dir, "report.txt"), []byte(h.reportText+"\n"), 0o644)
	}
	os.WriteFile(filepath.Join(dir, "timeline.txt"), []byte(h.tl.String()+"\n"), 0o644)
	h.t.Logf("the relays' logs, the report and the timeline are kept in %s", dir)
}

// probeCanary proves the archive probe can tell: an id that is archived
// is found, one that is not is not.
func (h *harness) probeCanary() {
	h.t.Helper()
	var archived string
	h.probe.mu.Lock()
	for id := range h.probe.seen {
		if strings.HasPrefix(id, "in:") {
			archived = id
			break
		}
	}
	h.probe.mu.Unlock()
	if archived == "" {
		h.t.Errorf("the archive probe looked nothing up")
		return
	}
	found, err := h.probe.lookup([]probeReq{{id: archived}, {id: "in:" + accountID + ":chaos-canary-never-sent"}})
	if err != nil || !found[archived] || len(found) != 1 {
		h.t.Fatalf("the archive probe cannot tell archived from not archived: %v, %v", found, err)
	}
}
