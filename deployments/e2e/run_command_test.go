package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/wechat-relay/wechat-relay/configs"
	"github.com/wechat-relay/wechat-relay/storage/testenv"
)

// TestRunCommand runs what `make run` runs — the binary's `serve` with no
// configuration — as a process, the way a newcomer does: it waits for
// readiness, drives one message each way through the in-process
// simulator over HTTP only, and stops it with SIGTERM: exit code 0, no
// process left behind.
func TestRunCommand(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "wechat-relay")
	build := exec.Command("go", "build", "-o", bin, "github.com/wechat-relay/wechat-relay")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	relayAddr := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	simAddr := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	cmd := exec.Command(bin, "serve")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "WR_LISTEN="+relayAddr, "WR_SIM_LISTEN="+simAddr, "WR_DATA_DIR="+filepath.Join(dir, "data"), "WR_CONFIG=")
	var stdout, stderr testenv.SyncBuffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	stopped := false
	defer func() {
		if !stopped {
			cmd.Process.Kill()
			<-exited
		}
		if t.Failed() {
			t.Logf("stdout:\n%s\nstderr:\n%s", stdout.String(), stderr.String())
		}
	}()

	// The demo employees' API tokens, as the embedded defaults give them.
	demoEmployeeTokens := map[string]string{}
	for _, e := range configs.Demo().Console.Employees {
		demoEmployeeTokens[e.ID] = e.Token
	}
	relay, sim := "http://"+relayAddr, "http://"+simAddr
	testenv.Until(t, "readiness", func() bool {
		resp, err := http.Get(relay + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})
	// The child's output reaches the buffer through a copying goroutine:
	// wait for it rather than assume it is there.
	testenv.Until(t, "the start-up text to point at the phone page", func() bool {
		return strings.Contains(stdout.String(), sim+"/phone/")
	})

	// A new client follows the account and writes, through the simulator.
	var client struct {
		OpenID string `json:"openid"`
	}
	call(t, "POST", sim+"/sim/api/accounts/"+configs.DemoAppID+"/clients", "", nil, &client)
	call(t, "POST", sim+"/sim/api/clients/"+client.OpenID+"/subscribe", "", nil, nil)
	call(t, "POST", sim+"/sim/api/clients/"+client.OpenID+"/messages", "", map[string]string{"msgtype": "text", "content": "run command test"}, nil)

	conv := "demo:" + client.OpenID
	sup := demoEmployeeTokens["sup"]
	var assignee string
	testenv.Until(t, "the message in the archive", func() bool {
		var h struct {
			Messages []struct {
				Text, Employee string
			} `json:"messages"`
		}
		call(t, "GET", relay+"/api/conversations/"+conv+"/messages", sup, nil, &h)
		for _, m := range h.Messages {
			if m.Text == "run command test" {
				assignee = m.Employee
				return true
			}
		}
		return false
	})
	// Its employee answers; the answer reaches the client's phone.
	var sent map[string]any
	call(t, "POST", relay+"/api/conversations/"+conv+"/messages", demoEmployeeTokens[assignee],
		map[string]string{"key": "run-1", "kind": "text", "text": "answer from " + assignee}, &sent)
	testenv.Until(t, "the answer on the phone", func() bool {
		var log []struct {
			Direction, Content string
		}
		call(t, "GET", sim+"/sim/api/clients/"+client.OpenID+"/log", "", nil, &log)
		for _, e := range log {
			if e.Direction == "out" && e.Content == "answer from "+assignee {
				return true
			}
		}
		return false
	})

	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		stopped = true
		if err != nil {
			t.Fatalf("exit after SIGTERM: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("still running 30 s after SIGTERM")
	}
	if !strings.Contains(stderr.String(), "stopped") {
		t.Errorf("no orderly stop in the log")
	}
}

func call(t *testing.T, method, url, token string, body, out any) {
	t.Helper()
	var r io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		r = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, url, r)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if resp.StatusCode >= 300 {
		t.Fatalf("%s %s: %d %s", method, url, resp.StatusCode, data)
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			t.Fatalf("%s %s: decoding %s: %v", method, url, data, err)
		}
	}
}
