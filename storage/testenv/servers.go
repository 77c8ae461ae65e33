package testenv

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// Server is a ClickHouse or Redis server of one test alone, so that the
// test can stop, pause and restart it without touching the servers other
// tests share. It listens on 127.0.0.1 on a port that stays the same
// across restarts, and is stopped (by its pid) when the test ends.
type Server struct {
	Addr string

	tb   testing.TB
	dir  string
	name string
	args []string
	cmd  *exec.Cmd
	done chan struct{}
}

// StartClickHouse starts a private ClickHouse server configured like
// .ci/services.sh does it. It skips (fails under CI) without the binary.
func StartClickHouse(tb testing.TB) *Server {
	tb.Helper()
	const usersXML = "/etc/clickhouse-server/users.xml"
	_, err := exec.LookPath("clickhouse-server")
	users, uerr := os.ReadFile(usersXML)
	if err != nil || uerr != nil {
		missing(tb, "clickhouse-server (and "+usersXML+")")
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
	port, httpPort := FreePort(tb), FreePort(tb)
	config := ClickHouseConfig(dir, port, httpPort, "")
	if err := os.WriteFile(filepath.Join(dir, "config.xml"), []byte(config), 0o644); err != nil {
		tb.Fatal(err)
	}
	s := &Server{
		Addr: fmt.Sprintf("127.0.0.1:%d", port), tb: tb, dir: dir, name: "clickhouse-server",
		args: []string{"--config-file=" + filepath.Join(dir, "config.xml")},
	}
	s.Start()
	tb.Cleanup(s.Stop)
	return s
}

// ClickHouseConfig is the config.xml of a private ClickHouse server in
// dir (with dir/users.xml), listening on 127.0.0.1 on port (native) and
// httpPort; extra, if not empty, is more of the configuration's elements,
// each on lines of its own.
func ClickHouseConfig(dir string, port, httpPort int, extra string) string {
	return fmt.Sprintf(`<?xml version="1.0"?>
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
%[4]s</yandex>
`, dir, port, httpPort, extra)
}

// StartRedis starts a private Redis server without persistence.
func StartRedis(tb testing.TB) *Server {
	tb.Helper()
	if _, err := exec.LookPath("redis-server"); err != nil {
		missing(tb, "redis-server")
	}
	dir := tb.TempDir()
	port := FreePort(tb)
	s := &Server{
		Addr: fmt.Sprintf("127.0.0.1:%d", port), tb: tb, dir: dir, name: "redis-server",
		args: []string{"--bind", "127.0.0.1", "--port", fmt.Sprint(port), "--dir", dir, "--save", "", "--appendonly", "no"},
	}
	s.Start()
	tb.Cleanup(s.Stop)
	return s
}

func missing(tb testing.TB, what string) {
	tb.Helper()
	if InCI() {
		tb.Fatalf("%s is required under CI", what)
	}
	tb.Skipf("%s not installed; `make test` installs it", what)
}

// FreePort returns a TCP port on 127.0.0.1 that nobody listens on.
func FreePort(tb testing.TB) int {
	tb.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// Start runs the server (again) and waits until it accepts connections.
func (s *Server) Start() {
	s.tb.Helper()
	if s.cmd != nil {
		return
	}
	out, err := os.OpenFile(filepath.Join(s.dir, s.name+".log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		s.tb.Fatal(err)
	}
	cmd := exec.Command(s.name, s.args...)
	cmd.Dir = s.dir
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		out.Close()
		s.tb.Fatalf("starting %s: %v", s.name, err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); out.Close(); close(done) }()
	s.cmd, s.done = cmd, done
	deadline := time.Now().Add(60 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", s.Addr, time.Second)
		if err == nil {
			c.Close()
			return
		}
		select {
		case <-done:
			log, _ := os.ReadFile(filepath.Join(s.dir, s.name+".log"))
			s.cmd = nil
			s.tb.Fatalf("%s exited at start: %s", s.name, log)
		default:
		}
		if time.Now().After(deadline) {
			s.Stop()
			s.tb.Fatalf("%s did not listen on %s within 60s", s.name, s.Addr)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Stop ends the server by its pid: SIGTERM, then SIGKILL after 30s. A
// paused server is resumed first so that it can exit.
func (s *Server) Stop() {
	if s.cmd == nil {
		return
	}
	cmd, done := s.cmd, s.done
	s.cmd = nil
	Terminate(cmd.Process, done)
}

// Terminate stops a process the test started: SIGCONT (it may be
// paused), SIGTERM, and SIGKILL if it is still running 30 s later. done
// is closed when the process has been waited for. It reports whether the
// process had to be killed.
func Terminate(p *os.Process, done <-chan struct{}) (killed bool) {
	_ = p.Signal(syscall.SIGCONT)
	_ = p.Signal(syscall.SIGTERM)
	select {
	case <-done:
		return false
	case <-time.After(30 * time.Second):
		_ = p.Kill()
		<-done
		return true
	}
}

// Kill ends the server abruptly (SIGKILL), as a crash would.
func (s *Server) Kill() {
	if s.cmd == nil {
		return
	}
	cmd, done := s.cmd, s.done
	s.cmd = nil
	_ = cmd.Process.Kill()
	<-done
}

// Pause stops the process without closing its sockets (SIGSTOP): it
// accepts connections and answers nothing, like a hung server.
func (s *Server) Pause() { s.signal(syscall.SIGSTOP) }

// Resume continues a paused server.
func (s *Server) Resume() { s.signal(syscall.SIGCONT) }

func (s *Server) signal(sig syscall.Signal) {
	s.tb.Helper()
	if s.cmd == nil {
		s.tb.Fatalf("%s is not running", s.name)
	}
	if err := s.cmd.Process.Signal(sig); err != nil {
		s.tb.Fatalf("signalling %s: %v", s.name, err)
	}
}
