package bus

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/wechat-relay/wechat-relay/storage/testenv"
)

// redisServer is a private redis-server, owned by one test, that the test
// may stop, freeze and restart on the same port. The shared test Redis is
// never touched this way.
type redisServer struct {
	t    *testing.T
	bin  string
	dir  string
	port int
	Addr string
	cmd  *exec.Cmd
}

// startRedisServer starts a redis-server without persistence on a free
// port of 127.0.0.1. It skips the test if the binary is missing, unless
// under CI. The server is killed when the test ends.
func startRedisServer(t *testing.T) *redisServer {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		if testenv.InCI() {
			t.Fatalf("redis-server is required under CI: %v", err)
		}
		t.Skipf("redis-server not installed: %v", err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	s := &redisServer{t: t, bin: bin, dir: t.TempDir(), port: port, Addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port))}
	s.Start()
	t.Cleanup(s.Kill)
	return s
}

// Start runs the server and waits until it accepts connections.
func (s *redisServer) Start() {
	s.t.Helper()
	if s.cmd != nil {
		s.t.Fatal("redis-server already running")
	}
	logFile := filepath.Join(s.dir, "redis.log")
	cmd := exec.Command(s.bin,
		"--bind", "127.0.0.1", "--port", strconv.Itoa(s.port),
		"--save", "", "--appendonly", "no",
		"--dir", s.dir, "--logfile", logFile)
	if err := cmd.Start(); err != nil {
		s.t.Fatalf("starting redis-server: %v", err)
	}
	s.cmd = cmd
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", s.Addr, 200*time.Millisecond)
		if err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(logFile)
			s.Kill()
			s.t.Fatalf("redis-server on %s did not come up: %v\n%s", s.Addr, err, log)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Kill kills the server (SIGKILL, through its own exec.Cmd) and reaps it.
func (s *redisServer) Kill() {
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Kill()
	_ = s.cmd.Wait()
	s.cmd = nil
}

// Freeze stops the server with SIGSTOP: connections stay open and new
// ones are accepted by the kernel, but nothing answers — a hung Redis.
// It returns the function that thaws it.
func (s *redisServer) Freeze() (thaw func()) {
	s.t.Helper()
	if err := s.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		s.t.Fatalf("freezing redis-server: %v", err)
	}
	cmd := s.cmd
	return func() {
		if err := cmd.Process.Signal(syscall.SIGCONT); err != nil && s.cmd == cmd {
			s.t.Errorf("thawing redis-server: %v", err)
		}
	}
}

func (s *redisServer) String() string { return fmt.Sprintf("redis-server %s", s.Addr) }
