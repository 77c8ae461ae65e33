package e2e

import (
	"context"
	"log/slog"
	"net"
	"net/http/httptest"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/wechat-relay/wechat-relay/configs"
	"github.com/wechat-relay/wechat-relay/deployments/commands"
	"github.com/wechat-relay/wechat-relay/deployments/system"
	"github.com/wechat-relay/wechat-relay/gateway"
	"github.com/wechat-relay/wechat-relay/gateway/wxsim"
	"github.com/wechat-relay/wechat-relay/storage/testenv"
)

// The simulator stands in for WeChat for the whole test binary: the
// relay's API base URL is process-wide (silenceper's design), so every
// relay built in these tests talks to this one simulator, each test
// through its own simulated account.
var testSim *wxsim.Sim

func TestMain(m *testing.M) {
	testSim = wxsim.New(wxsim.Config{})
	srv := httptest.NewServer(wxsim.NewServer(testSim))
	testSim.SetPublicURL(srv.URL)
	simURL = srv.URL
	// Process-wide, as serve does it once: every test relay calls this
	// simulator.
	gateway.ConfigureAPI(simURL, 10*time.Second)
	code := m.Run()
	testSim.Close(context.Background()) // releases requests hung by a fault
	srv.Close()
	os.Exit(code)
}

// simURL is the simulator every test relay calls as WeChat (TestMain).
var simURL string

// testRelay is one relay process, in-process, started the way serve
// starts it (system.Start: every worker, the HTTP server) on a port of
// its own, and stopped the way serve stops it.
type testRelay struct {
	sys  *system.Relay
	stop func()
}

func startRelay(t testing.TB, cfg *configs.Config) *testRelay {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return startRelayOn(t, cfg, ln)
}

// startRelayOn starts the relay on ln: for a configuration that names
// the relay's own address (a single sign-on callback).
func startRelayOn(t testing.TB, cfg *configs.Config, ln net.Listener) *testRelay {
	t.Helper()
	log := testenv.LoggerAt(t, slog.LevelWarn)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	sys, err := system.Start(ctx, cfg, ln, log, commands.Version())
	if err != nil {
		t.Fatalf("building the relay: %v", err)
	}
	var once sync.Once
	r := &testRelay{sys: sys}
	r.stop = func() {
		once.Do(func() {
			if err := sys.Shutdown(); err != nil {
				t.Errorf("stopping the relay: %v", err)
			}
			sys.Close()
		})
	}
	t.Cleanup(r.stop)
	return r
}
