package chaos

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/wechat-relay/wechat-relay/storage/testenv"
)

// The relay processes, their configuration, the spool disks and the
// balancer in front of them.

// Identities the relays are configured with. The account's credentials
// come from the simulator; the employees' API tokens are fixed.
const (
	accountID = "acme"
	supID     = "sup"
	quietID   = "quiet" // the benchmark's idle employees (console fan-out)
)

var agentIDs = []string{"agent1", "agent2", "agent3"}

// token is an employee's API token (WR_CONSOLE_TOKEN_<ID>).
func token(emp string) string { return "chaos-" + emp + "-token-0123456789" }

// buildRelay builds the wechat-relay binary once for the run, or takes
// the one WR_CHAOS_BIN names.
func buildRelay(t *testing.T, dir string) string {
	t.Helper()
	if bin := os.Getenv("WR_CHAOS_BIN"); bin != "" {
		abs, err := filepath.Abs(bin)
		if err != nil {
			t.Fatal(err)
		}
		return abs
	}
	bin := filepath.Join(dir, "wechat-relay")
	start := time.Now()
	cmd := exec.Command("go", "build", "-o", bin, "github.com/wechat-relay/wechat-relay")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build of the relay: %v\n%s", err, out)
	}
	t.Logf("built %s in %s", bin, time.Since(start).Round(100*time.Millisecond))
	return bin
}

// relayConfig is the configuration file both relays share but for the
// listen address and the data directory.
type relayConfig struct {
	listen, dataDir      string
	chAddr, db           string
	redisAddr, prefix    string
	simURL, appID        string
	outboxSettle         time.Duration
	secret, tok, aesKey  string
	consolePing, dirPoll time.Duration
	sendQueue            int  // console.send_queue; 0: the default
	sendsPerInteraction  int  // outbox.sends_per_interaction; 0: the default (WeChat's 5)
	quietAgent           bool // an agent "quiet" who is given no conversations
}

func (c relayConfig) yaml() string {
	var b strings.Builder
	sends := ""
	if c.sendsPerInteraction > 0 {
		sends = fmt.Sprintf("  sends_per_interaction: %d\n", c.sendsPerInteraction)
	}
	fmt.Fprintf(&b, `listen: %s
data_dir: %s
log:
  level: info
  format: text
storage:
  clickhouse:
    addr: %s
    database: %s
  redis:
    addr: %s
    prefix: %q
wechat:
  api_base_url: %s
  api_timeout: 5s
  accounts:
    - id: %s
      app_id: %s
      mode: safe
pipeline:
  linger: 10ms
  retry_min: 50ms
  retry_max: 1s
  drain_timeout: 2s
outbox:
  send_timeout: 3s
  retry_min: 200ms
  retry_max: 2s
  scan_interval: 2s
  settle_after: %s
%sbot:
  disabled: true
console:
  ping_interval: %s
  directory_refresh: %s
  employees:
    - id: %s
      name: Supervisor
      role: supervisor
      all_teams: true
`, c.listen, c.dataDir, c.chAddr, c.db, c.redisAddr, c.prefix, c.simURL, accountID, c.appID,
		c.outboxSettle, sends, c.consolePing, c.dirPoll, supID)
	for _, a := range agentIDs {
		fmt.Fprintf(&b, "    - id: %s\n      name: Agent %s\n      role: agent\n      accounts: [%s]\n", a, a, accountID)
	}
	if c.quietAgent {
		fmt.Fprintf(&b, "    - id: %s\n      name: Quiet agent\n      role: agent\n", quietID)
	}
	if c.sendQueue > 0 {
		fmt.Fprintf(&b, "  send_queue: %d\n", c.sendQueue)
	}
	b.WriteString("shutdown_timeout: 10s\n")
	return b.String()
}

// env is the process environment of a relay: the secrets, which never go
// in the file.
func (c relayConfig) env() []string {
	env := []string{}
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "WR_") {
			continue // nothing of the test's own environment leaks in
		}
		env = append(env, kv)
	}
	up := strings.ToUpper(accountID)
	env = append(env,
		"WR_ACCOUNT_"+up+"_APP_SECRET="+c.secret,
		"WR_ACCOUNT_"+up+"_TOKEN="+c.tok,
		"WR_ACCOUNT_"+up+"_ENCODING_AES_KEY="+c.aesKey,
		"WR_CONSOLE_TOKEN_"+strings.ToUpper(supID)+"="+token(supID))
	for _, a := range agentIDs {
		env = append(env, "WR_CONSOLE_TOKEN_"+strings.ToUpper(a)+"="+token(a))
	}
	if c.quietAgent {
		env = append(env, "WR_CONSOLE_TOKEN_"+strings.ToUpper(quietID)+"="+token(quietID))
	}
	return env
}

// relayProc is one `wechat-relay serve` process, restarted with the same
// configuration and spool after a kill. Like systemd with Restart=always,
// it is started again a second after it exits on its own.
type relayProc struct {
	name, bin, config, addr, dataDir, logPath string
	env                                       []string
	logf                                      func(format string, args ...any)
	command                                   string // "serve" when empty

	mu       sync.Mutex
	cmd      *exec.Cmd
	done     chan struct{}
	want     bool // keep it running: restart after an exit of its own
	starts   int
	exits    []string // exits of its own (not our kills), with their status
	restartQ bool
}

func (r *relayProc) url() string { return "http://" + r.addr }

// start runs the relay (if it is not running) and keeps it running.
func (r *relayProc) start() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.want = true
	return r.spawnLocked()
}

func (r *relayProc) spawnLocked() error {
	if r.cmd != nil {
		return nil
	}
	out, err := os.OpenFile(r.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "=== chaos: starting %s at %s\n", r.name, time.Now().Format("15:04:05.000"))
	command := cmp.Or(r.command, "serve")
	cmd := exec.Command(r.bin, command, "-config", r.config)
	cmd.Env = r.env
	cmd.Stdout, cmd.Stderr = out, out
	// If the test process dies, the relay dies with it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		out.Close()
		return fmt.Errorf("starting %s: %w", r.name, err)
	}
	done := make(chan struct{})
	r.cmd, r.done = cmd, done
	r.starts++
	go func() {
		err := cmd.Wait()
		fmt.Fprintf(out, "=== chaos: %s exited at %s: %v\n", r.name, time.Now().Format("15:04:05.000"), err)
		out.Close()
		r.mu.Lock()
		own := r.cmd == cmd // not a kill or stop of ours
		if own {
			r.cmd = nil
			r.exits = append(r.exits, fmt.Sprintf("%s: %v", time.Now().Format("15:04:05.000"), err))
		}
		restart := own && r.want && !r.restartQ
		if restart {
			r.restartQ = true
		}
		r.mu.Unlock()
		close(done)
		if own {
			r.logf("%s exited on its own: %v", r.name, err)
		}
		if restart {
			go r.restartLater()
		}
	}()
	return nil
}

// restartLater starts the relay again a second after it exited on its
// own, and keeps trying while it cannot start.
func (r *relayProc) restartLater() {
	time.Sleep(time.Second)
	r.mu.Lock()
	defer r.mu.Unlock()
	r.restartQ = false
	if !r.want || r.cmd != nil {
		return
	}
	if err := r.spawnLocked(); err != nil {
		r.logf("restarting %s: %v", r.name, err)
	}
}

// kill9 ends the relay with SIGKILL, as a crash would, and keeps it down.
func (r *relayProc) kill9() {
	r.mu.Lock()
	cmd, done := r.cmd, r.done
	r.cmd, r.want = nil, false
	r.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Kill()
	<-done
}

// pause stops the relay with SIGSTOP: its sockets stay open and it
// answers nothing, like a process frozen by a VM pause or a long stall.
func (r *relayProc) pause() error { return r.signal(syscall.SIGSTOP) }

// resume continues a paused relay.
func (r *relayProc) resume() error { return r.signal(syscall.SIGCONT) }

// signal sends sig to the relay; one that exited on its own and is about
// to be started again is waited for (5 s at most).
func (r *relayProc) signal(sig syscall.Signal) error {
	deadline := time.Now().Add(5 * time.Second)
	for {
		r.mu.Lock()
		cmd, want := r.cmd, r.want
		r.mu.Unlock()
		if cmd != nil {
			return cmd.Process.Signal(sig)
		}
		if !want || time.Now().After(deadline) {
			return fmt.Errorf("%s is not running", r.name)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// stop ends the relay with SIGTERM (SIGKILL after 30 s) and reports how
// it exited.
func (r *relayProc) stop() string {
	r.mu.Lock()
	cmd, done := r.cmd, r.done
	r.cmd, r.want = nil, false
	r.mu.Unlock()
	if cmd == nil {
		return "not running"
	}
	if testenv.Terminate(cmd.Process, done) {
		return "killed: still running 30 s after SIGTERM"
	}
	return cmd.ProcessState.String()
}

func (r *relayProc) running() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.cmd != nil
}

// get fetches path from the relay with a short timeout.
func (r *relayProc) get(path string) (int, string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", r.url()+path, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

// ready reports whether /readyz answers 200.
func (r *relayProc) ready() bool {
	code, _, err := r.get("/readyz")
	return err == nil && code == http.StatusOK
}

// spoolPending reads wechat_relay_spool_pending from /metrics.
func (r *relayProc) spoolPending() (float64, error) {
	code, body, err := r.get("/metrics")
	if err != nil {
		return 0, err
	}
	if code != http.StatusOK {
		return 0, fmt.Errorf("/metrics answered %d", code)
	}
	sc := bufio.NewScanner(strings.NewReader(body))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "wechat_relay_spool_pending "); ok {
			return strconv.ParseFloat(strings.TrimSpace(v), 64)
		}
	}
	return 0, errors.New("no wechat_relay_spool_pending in /metrics")
}

// tail returns the last n lines of the relay's log; notable: only the
// lines above level INFO, the suite's own and what a crash prints.
func (r *relayProc) tail(n int, notable bool) string {
	b, err := os.ReadFile(r.logPath)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if notable {
		lines = slices.DeleteFunc(lines, func(l string) bool { return strings.Contains(l, " level=INFO ") })
	}
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// logLines counts the log lines at level ERROR and the panics.
func (r *relayProc) logLines() (errs, panics int) {
	b, err := os.ReadFile(r.logPath)
	if err != nil {
		return 0, 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		switch {
		case strings.Contains(l, "level=ERROR"):
			errs++
		case strings.HasPrefix(l, "panic:"), strings.HasPrefix(l, "fatal error:"):
			panics++
		}
	}
	return errs, panics
}

// spoolDisk is a relay's data directory on a small tmpfs of its own, so
// that the suite can fill it; not available without root (mount).
type spoolDisk struct {
	dir    string
	filler string
	ok     bool
}

// mountSpoolDisk mounts a tmpfs of size MiB on dir. Without the rights to
// (not root, or in a container that forbids it) it reports false and the
// directory stays on the ordinary disk.
func mountSpoolDisk(t *testing.T, dir string, mib int) *spoolDisk {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	d := &spoolDisk{dir: dir, filler: filepath.Join(dir, "chaos-filler")}
	if os.Geteuid() != 0 {
		t.Logf("not root: %s stays on the ordinary disk and the full-disk fault is skipped", dir)
		return d
	}
	out, err := exec.Command("mount", "-t", "tmpfs", "-o", fmt.Sprintf("size=%dm,mode=0755", mib), "tmpfs", dir).CombinedOutput()
	if err != nil {
		t.Logf("cannot mount a tmpfs on %s (%v: %s): the full-disk fault is skipped", dir, err, bytes.TrimSpace(out))
		return d
	}
	d.ok = true
	// Registered before the relays' own cleanups, so it runs after them.
	t.Cleanup(func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			exec.Command("umount", "-l", dir).Run()
			t.Logf("umount %s: %v %s (lazily unmounted)", dir, err, out)
		}
	})
	return d
}

// fill writes a file until the disk is full.
func (d *spoolDisk) fill() (int64, error) {
	f, err := os.OpenFile(d.filler, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	buf := make([]byte, 1<<20)
	var n int64
	for {
		w, err := f.Write(buf)
		n += int64(w)
		if err != nil {
			if errors.Is(err, syscall.ENOSPC) {
				return n, nil
			}
			return n, err
		}
	}
}

// free removes the filler.
func (d *spoolDisk) free() error { return os.Remove(d.filler) }

// balancer is a load balancer in front of the relays, as a TCP-level one
// behaves: each request goes to a relay picked at random; a relay that
// refuses the connection is skipped for the other; a relay that dies
// with the request in flight drops the caller's connection (WeChat then
// tries again, and the retry may land on the other relay). If neither
// relay takes the connection the answer is 502.
type balancer struct {
	backends []string
	tr       *http.Transport
	srv      *http.Server
	url      string

	requests, refused, dropped, noRelay atomic.Int64

	// byOpenID, when set, sends each client's callbacks (the openid in
	// the query) to one relay, the others only when it refuses the
	// connection; otherwise a relay is picked at random for each.
	byOpenID bool

	// msgID, when set, names the WeChat message a callback carries, so
	// that where each try went can be told afterwards.
	msgID  func(r *http.Request, body []byte) string
	names  []string
	mu     sync.Mutex
	routes map[string][]string // MsgId → each try: when, which relay, what answer
}

// route records one try of a callback.
func (b *balancer) route(id string, start time.Time, backend int, what string) {
	if id == "" {
		return
	}
	name := "none"
	if backend >= 0 {
		name = b.names[backend]
	}
	line := fmt.Sprintf("%s→%s %s (%s)", start.Format("15:04:05.000"), name, what, time.Since(start).Round(time.Millisecond))
	b.mu.Lock()
	b.routes[id] = append(b.routes[id], line)
	b.mu.Unlock()
}

// retriedElsewhere counts the callbacks whose tries reached both relays.
func (b *balancer) retriedElsewhere() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	n := 0
	for _, tries := range b.routes {
		seen := map[string]bool{}
		for _, t := range tries {
			for _, name := range b.names {
				if strings.Contains(t, "→"+name+" ") {
					seen[name] = true
				}
			}
		}
		if len(seen) > 1 {
			n++
		}
	}
	return n
}

// tries describes where the tries of a callback went.
func (b *balancer) tries(id string) string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return strings.Join(b.routes[id], ", ")
}

func startBalancer(t *testing.T, backends, names []string) *balancer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b := &balancer{backends: backends, names: names, url: "http://" + ln.Addr().String(), routes: map[string][]string{}}
	b.tr = &http.Transport{
		DialContext:         (&net.Dialer{Timeout: 2 * time.Second}).DialContext,
		MaxIdleConns:        512,
		MaxIdleConnsPerHost: 256,
		IdleConnTimeout:     30 * time.Second,
	}
	b.srv = &http.Server{Handler: b, ReadHeaderTimeout: 10 * time.Second}
	go b.srv.Serve(ln)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		b.srv.Shutdown(ctx)
		b.srv.Close()
		b.tr.CloseIdleConnections()
	})
	return b
}

func (b *balancer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b.requests.Add(1)
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return
	}
	start := time.Now()
	id := ""
	if b.msgID != nil {
		id = b.msgID(r, body)
	}
	order := rand.Perm(len(b.backends))
	if b.byOpenID {
		h := fnv.New32a()
		h.Write([]byte(r.URL.Query().Get("openid")))
		first := int(h.Sum32() % uint32(len(b.backends)))
		for k := range order {
			order[k] = (first + k) % len(b.backends)
		}
	}
	for _, i := range order {
		out, err := http.NewRequestWithContext(r.Context(), r.Method, "http://"+b.backends[i]+r.URL.RequestURI(), bytes.NewReader(body))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		out.Header = r.Header.Clone()
		resp, err := b.tr.RoundTrip(out)
		if err != nil {
			if r.Context().Err() != nil {
				b.route(id, start, i, "no answer before WeChat gave up")
				return // the caller gave up (WeChat's 5 s)
			}
			var op *net.OpError
			if errors.As(err, &op) && op.Op == "dial" {
				b.refused.Add(1)
				continue
			}
			// The relay died with the request in flight.
			b.dropped.Add(1)
			b.route(id, start, i, "connection lost: "+err.Error())
			panic(http.ErrAbortHandler)
		}
		answer, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		resp.Body.Close()
		if err != nil {
			b.route(id, start, i, "connection lost in the answer: "+err.Error())
			if r.Context().Err() == nil {
				b.dropped.Add(1)
				panic(http.ErrAbortHandler)
			}
			return
		}
		for k, v := range resp.Header {
			w.Header()[k] = v
		}
		w.WriteHeader(resp.StatusCode)
		w.Write(answer)
		b.route(id, start, i, fmt.Sprintf("%d %.60q", resp.StatusCode, answer))
		return
	}
	b.route(id, start, -1, "502: no relay takes the connection")
	b.noRelay.Add(1)
	http.Error(w, "no relay takes the connection", http.StatusBadGateway)
}
