package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/wechat-relay/wechat-relay/storage/testenv"
)

// The compose deployment's own nginx.conf in front of two relays on the
// same ClickHouse and Redis: callbacks, the API and exports work through
// it whichever instance a request lands on, and an export is started,
// followed and downloaded on the one instance that holds it.
func TestE2EBehindTheShippedNginx(t *testing.T) {
	ch := testenv.ClickHouseAddr(t)
	rd := testenv.RedisAddr(t)
	nginx := needNginx(t)
	db, prefix := testenv.UniqueName("e2e"), testenv.UniqueName("wr")+":"
	a := startRelay(t, e2eConfig(t, ch, rd, db, prefix, t.TempDir()))
	b := startRelay(t, e2eConfig(t, ch, rd, db, prefix, t.TempDir()))
	lb := startNginx(t, nginx, strings.TrimPrefix(a.sys.URL(), "http://"), strings.TrimPrefix(b.sys.URL(), "http://"))

	// A client writes in through nginx.
	now := time.Now()
	cb := safeCallback(t, "acme", textXML("oBalanced", "80001", "请导出我的对话", now), now)
	resp, err := http.Post(lb+cb.path+"?"+cb.query, "text/xml", bytes.NewReader(cb.body))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(body) != "success" {
		t.Fatalf("callback through nginx: %d %q", resp.StatusCode, body)
	}
	testenv.Until(t, "the message archived", func() bool { return rowCount(t, ch, db, msgID("oBalanced", "80001")) == 1 })

	// The supervisor exports it through nginx, polling many times: every
	// request must reach the instance that runs the job.
	var job struct {
		ID       string `json:"id"`
		State    string `json:"state"`
		Download string `json:"download"`
	}
	if code := lbCall(t, "POST", lb+"/api/exports", map[string]string{"conv": "acme:oBalanced"}, &job); code != http.StatusAccepted || job.ID == "" {
		t.Fatalf("start export through nginx: %d %+v", code, job)
	}
	for i := 0; i < 20 || job.State != "done"; i++ {
		if code := lbCall(t, "GET", lb+"/api/exports/"+job.ID, nil, &job); code != http.StatusOK {
			t.Fatalf("poll %d of export %s through nginx: %d (the other instance answered?)", i, job.ID, code)
		}
		if job.State == "failed" {
			t.Fatalf("export failed: %+v", job)
		}
		if i > 600 {
			t.Fatalf("export still %s", job.State)
		}
		time.Sleep(10 * time.Millisecond)
	}
	req, _ := http.NewRequest("GET", lb+job.Download, nil)
	req.Header.Set("Authorization", "Bearer "+supTok)
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	zipped, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !bytes.HasPrefix(zipped, []byte("PK")) {
		t.Fatalf("download through nginx: %d, %d bytes", resp.StatusCode, len(zipped))
	}

	// Everything else is balanced over both instances.
	var me map[string]any
	for range 4 {
		if code := lbCall(t, "GET", lb+"/api/me", nil, &me); code != http.StatusOK || me["id"] != "sup" {
			t.Fatalf("GET /api/me through nginx: %d %v", code, me)
		}
	}
	if code := lbCall(t, "GET", lb+"/metrics", nil, nil); code != http.StatusNotFound {
		t.Errorf("/metrics through nginx: %d, want 404 (per instance, not public)", code)
	}
}

// lbCall sends a request as the supervisor and decodes the JSON answer
// into out (if not nil).
func lbCall(t *testing.T, method, u string, in, out any) int {
	t.Helper()
	var rd io.Reader
	if in != nil {
		data, _ := json.Marshal(in)
		rd = bytes.NewReader(data)
	}
	req, _ := http.NewRequest(method, u, rd)
	req.Header.Set("Authorization", "Bearer "+supTok)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if out != nil && resp.StatusCode < 300 {
		if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
			t.Fatalf("%s %s: %v", method, u, err)
		}
	}
	return resp.StatusCode
}

// needNginx returns nginx's path. Without it the test skips on a laptop
// and fails under CI (which installs it).
func needNginx(t *testing.T) string {
	t.Helper()
	path, err := exec.LookPath("nginx")
	if err == nil {
		return path
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("nginx is not installed (CI installs it: .ci/services.sh)")
	}
	t.Skip("nginx not installed")
	return ""
}

// startNginx runs deployments/compose/nginx.conf on a free loopback port,
// with relay1 and relay2 at the given addresses, until the test ends, and
// returns its base URL.
func startNginx(t *testing.T, nginx, relay1, relay2 string) string {
	t.Helper()
	dir := t.TempDir()
	conf, err := os.ReadFile("../compose/nginx.conf")
	if err != nil {
		t.Fatal(err)
	}
	port := testenv.FreePort(t)
	c := string(conf)
	for old, repl := range map[string]string{
		"relay1:8080 resolve":     relay1,
		"relay2:8080 resolve":     relay2,
		"listen 8080;":            fmt.Sprintf("listen 127.0.0.1:%d;", port),
		"pid /tmp/nginx.pid;":     "pid " + dir + "/nginx.pid;",
		"access_log /dev/stdout":  "access_log " + dir + "/access.log",
		"error_log /dev/stderr":   "error_log " + dir + "/error.log",
		"resolver 127.0.0.11":     "# resolver 127.0.0.11",
		"worker_processes auto;":  "worker_processes 1;",
		"worker_connections 4096": "worker_connections 256",
	} {
		if !strings.Contains(c, old) {
			t.Fatalf("nginx.conf no longer has %q", old)
		}
		c = strings.ReplaceAll(c, old, repl)
	}
	// nginx's workers run as an unprivileged user when it starts as root:
	// their temporary files go where that user may write.
	tmp, err := os.MkdirTemp("", "wr-nginx-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(tmp) })
	if err := os.Chmod(tmp, 0o777); err != nil {
		t.Fatal(err)
	}
	c = strings.Replace(c, "http {", "http {\n    client_body_temp_path "+tmp+"/body;\n    proxy_temp_path "+tmp+"/proxy;\n"+
		"    fastcgi_temp_path "+tmp+"/fastcgi;\n    uwsgi_temp_path "+tmp+"/uwsgi;\n    scgi_temp_path "+tmp+"/scgi;", 1)
	path := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(path, []byte(c), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(nginx, "-p", dir, "-c", path, "-e", dir+"/error.log", "-g", "daemon off;")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting nginx: %v", err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(os.Interrupt) // nginx's fast shutdown (SIGINT) is SIGTERM's twin
		cmd.Wait()
	})
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	deadline := time.Now().Add(10 * time.Second)
	for {
		conn, err := net.DialTimeout("tcp", strings.TrimPrefix(base, "http://"), time.Second)
		if err == nil {
			conn.Close()
			return base
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(dir + "/error.log")
			t.Fatalf("nginx did not listen: %v\n%s%s", err, out.String(), log)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
