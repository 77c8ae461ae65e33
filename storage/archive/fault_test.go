package archive

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/wechat-relay/wechat-relay/relay"
	"github.com/wechat-relay/wechat-relay/storage/testenv"
)

// privateClickHouse is a ClickHouse server of this test alone, configured
// like .ci/services.sh does it, so that it can be paused, stopped and
// restarted without touching the server other tests share.
type privateClickHouse struct {
	tb   testing.TB
	bin  string
	dir  string
	addr string
	cmd  *exec.Cmd
	done chan struct{}
}

func startPrivateClickHouse(tb testing.TB) *privateClickHouse {
	tb.Helper()
	bin, err := exec.LookPath("clickhouse-server")
	usersXML := "/etc/clickhouse-server/users.xml"
	if _, serr := os.Stat(usersXML); err != nil || serr != nil {
		if testenv.InCI() {
			tb.Fatalf("clickhouse-server or %s missing under CI", usersXML)
		}
		tb.Skip("clickhouse-server not installed; the fault test needs its own server")
	}
	users, err := os.ReadFile(usersXML)
	if err != nil {
		tb.Fatalf("reading %s: %v", usersXML, err)
	}
	dir := tb.TempDir()
	for _, d := range []string{"data", "tmp", "user_files", "format_schemas", "log"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			tb.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "users.xml"), users, 0o644); err != nil {
		tb.Fatal(err)
	}
	port, httpPort := freePort(tb), freePort(tb)
	config := fmt.Sprintf(`<?xml version="1.0"?>
<yandex>
    <logger>
        <level>warning</level>
        <log>%[1]s/log/server.log</log>
        <errorlog>%[1]s/log/error.log</errorlog>
    </logger>
    <listen_host>127.0.0.1</listen_host>
    <tcp_port>%[2]d</tcp_port>
    <http_port>%[3]d</http_port>
    <path>%[1]s/data/</path>
    <tmp_path>%[1]s/tmp/</tmp_path>
    <user_files_path>%[1]s/user_files/</user_files_path>
    <format_schema_path>%[1]s/format_schemas/</format_schema_path>
    <users_config>%[1]s/users.xml</users_config>
    <default_profile>default</default_profile>
    <default_database>default</default_database>
    <mark_cache_size>268435456</mark_cache_size>
</yandex>
`, dir, port, httpPort)
	if err := os.WriteFile(filepath.Join(dir, "config.xml"), []byte(config), 0o644); err != nil {
		tb.Fatal(err)
	}
	p := &privateClickHouse{tb: tb, bin: bin, dir: dir, addr: fmt.Sprintf("127.0.0.1:%d", port)}
	p.start()
	tb.Cleanup(p.stop)
	return p
}

func freePort(tb testing.TB) int {
	tb.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// start runs the server and waits until it accepts connections.
func (p *privateClickHouse) start() {
	p.tb.Helper()
	out, err := os.OpenFile(filepath.Join(p.dir, "log", "stdout.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		p.tb.Fatal(err)
	}
	cmd := exec.Command(p.bin, "--config-file="+filepath.Join(p.dir, "config.xml"))
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		out.Close()
		p.tb.Fatalf("starting clickhouse-server: %v", err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); out.Close(); close(done) }()
	p.cmd, p.done = cmd, done
	deadline := time.Now().Add(60 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", p.addr, time.Second)
		if err == nil {
			c.Close()
			return
		}
		select {
		case <-done:
			log, _ := os.ReadFile(filepath.Join(p.dir, "log", "error.log"))
			p.tb.Fatalf("clickhouse-server exited at start: %s", log)
		default:
		}
		if time.Now().After(deadline) {
			p.stop()
			p.tb.Fatalf("clickhouse-server did not listen on %s within 60s", p.addr)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// stop ends the server this test started, by its pid: SIGTERM, then
// SIGKILL after 30s. A paused server is resumed first so it can exit.
func (p *privateClickHouse) stop() {
	if p.cmd == nil {
		return
	}
	cmd, done := p.cmd, p.done
	p.cmd = nil
	_ = cmd.Process.Signal(syscall.SIGCONT)
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		_ = cmd.Process.Kill()
		<-done
	}
}

func (p *privateClickHouse) signal(sig syscall.Signal) {
	p.tb.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		p.tb.Fatalf("signalling clickhouse-server: %v", err)
	}
}

// timed runs f and fails the test if it takes longer than limit.
func timed(tb testing.TB, what string, limit time.Duration, f func() error) error {
	tb.Helper()
	start := time.Now()
	err := f()
	if d := time.Since(start); d > limit {
		tb.Errorf("%s took %v, want at most %v (err: %v)", what, d, limit, err)
	} else {
		tb.Logf("%s: %v after %v", what, err, d.Round(time.Millisecond))
	}
	return err
}

// TestServerDownAndBack pauses, stops and restarts a private ClickHouse:
// every call fails promptly while it is unavailable, none hangs, and the
// same Archive works again once the server is back.
func TestServerDownAndBack(t *testing.T) {
	if testing.Short() {
		t.Skip("starts and restarts its own ClickHouse server")
	}
	t.Parallel()
	ch := startPrivateClickHouse(t)
	ctx := testCtx(t)
	a, err := Open(ctx, Config{Addr: ch.addr, DialTimeout: time.Second, ReadTimeout: 2 * time.Second}, testLogger(t))
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	defer a.Close()
	conv := relay.Conversation("acc", "o_fault")
	now := time.Now()
	batch := func(from, to uint64) []relay.Message {
		var out []relay.Message
		for s := from; s <= to; s++ {
			out = append(out, testMessage(conv, s, now))
		}
		return out
	}
	if err := a.Insert(ctx, batch(1, 3)); err != nil {
		t.Fatalf("Insert: %v", err)
	}

	// A hung server (accepts TCP, answers nothing): the context's
	// deadline, or else ReadTimeout, ends the wait.
	ch.signal(syscall.SIGSTOP)
	short, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
	if err := timed(t, "Insert while paused (500ms deadline)", 3*time.Second, func() error {
		return a.Insert(short, batch(4, 6))
	}); err == nil {
		t.Error("Insert succeeded against a paused server")
	}
	cancel()
	if err := timed(t, "MaxSeq while paused (no deadline, ReadTimeout 2s)", 8*time.Second, func() error {
		_, err := a.MaxSeq(context.Background(), conv)
		return err
	}); err == nil {
		t.Error("MaxSeq succeeded against a paused server")
	}
	ch.signal(syscall.SIGCONT)
	// The Insert cut short may or may not have been committed by the
	// resumed server: the pipeline inserts it again, and it must count once.
	if err := a.Insert(ctx, batch(4, 6)); err != nil {
		t.Fatalf("Insert after resume: %v", err)
	}

	// A stopped server: connection refused, at once.
	ch.stop()
	if err := timed(t, "Insert while stopped", 3*time.Second, func() error {
		return a.Insert(ctx, batch(7, 9))
	}); err == nil {
		t.Error("Insert succeeded against a stopped server")
	}
	if err := timed(t, "Ping while stopped", 3*time.Second, func() error { return a.Ping(ctx) }); err == nil {
		t.Error("Ping succeeded against a stopped server")
	}
	if err := timed(t, "Open while stopped", 3*time.Second, func() error {
		b, err := Open(ctx, Config{Addr: ch.addr, DialTimeout: time.Second}, testLogger(t))
		if err == nil {
			b.Close()
		}
		return err
	}); err == nil {
		t.Error("Open succeeded against a stopped server")
	}

	// Back: the first call on the same Archive works (the pool dials anew).
	ch.start()
	if err := a.Insert(ctx, batch(7, 9)); err != nil {
		t.Fatalf("first Insert after restart: %v", err)
	}
	got, err := a.Since(ctx, conv, 0, 0)
	if err != nil {
		t.Fatalf("Since after restart: %v", err)
	}
	sameMessages(t, "after restart", got, batch(1, 9))
	if seq, err := a.MaxSeq(ctx, conv); err != nil || seq != 9 {
		t.Errorf("MaxSeq after restart = %d, %v; want 9", seq, err)
	}
}

// An address nobody listens on fails Open at once; an address that
// swallows packets fails it within DialTimeout.
func TestOpenUnreachable(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	closed := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	for _, tc := range []struct{ addr, what string }{
		{closed, "closed port"},
		{"10.255.255.1:9000", "unroutable address"},
	} {
		_ = timed(t, "Open on a "+tc.what, 3*time.Second, func() error {
			a, err := Open(ctx, Config{Addr: tc.addr, DialTimeout: 500 * time.Millisecond}, testLogger(t))
			if err == nil {
				a.Close()
				t.Errorf("Open(%s) succeeded", tc.addr)
			}
			return err
		})
	}
}
