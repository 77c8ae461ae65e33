package e2e

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"golang.org/x/crypto/bcrypt"

	"github.com/wechat-relay/wechat-relay/configs"
	"github.com/wechat-relay/wechat-relay/console"
	"github.com/wechat-relay/wechat-relay/storage/testenv"
)

// session is a browser's sign-in: its cookie and CSRF token.
type session struct {
	cookie *http.Cookie
	csrf   string
}

// signInSession signs id in on r with a password, as the web page does.
func signInSession(t *testing.T, r *testRelay, id, password string) session {
	t.Helper()
	body, _ := json.Marshal(map[string]string{"id": id, "password": password})
	resp, err := http.Post(r.sys.URL()+"/api/login", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct{ CSRF string }
	json.NewDecoder(resp.Body).Decode(&out)
	for _, c := range resp.Cookies() {
		if c.Name == console.SessionCookie && resp.StatusCode == http.StatusOK {
			return session{cookie: c, csrf: out.CSRF}
		}
	}
	t.Fatalf("signing %s in on %s: %d", id, r.sys.URL(), resp.StatusCode)
	return session{}
}

// do sends a request of the session's browser to r.
func (s session) do(t *testing.T, r *testRelay, method, path string, body any) int {
	t.Helper()
	data, _ := json.Marshal(body)
	req, _ := http.NewRequest(method, r.sys.URL()+path, bytes.NewReader(data))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(console.CSRFHeader, s.csrf)
	req.AddCookie(s.cookie)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func (s session) dial(t *testing.T, r *testRelay) *socket {
	t.Helper()
	return r.dialWith(t, http.Header{"Cookie": {s.cookie.String()}})
}

// closedWithin waits for the server to close s and returns the reason it
// gave; it fails t if s is still open after within.
func closedWithin(t *testing.T, what string, s *socket, within time.Duration) string {
	t.Helper()
	deadline := time.After(within)
	for {
		select {
		case _, open := <-s.frames:
			if !open {
				var ce *websocket.CloseError
				if errors.As(s.err, &ce) {
					return ce.Text
				}
				return s.err.Error()
			}
		case <-deadline:
			t.Fatalf("%s: still open after %s", what, within)
		}
	}
}

// A credential change closes the sockets it ends on every instance, at
// once — not at the sockets' next periodic check, which is an hour away
// here: an employee's own password change (the sessions begun before
// it), an admin's password reset, and disabling an employee (every
// socket, token ones too). Sockets of others stay open and live.
func TestE2ESocketsCloseOnCredentialChangesOnBothInstances(t *testing.T) {
	ch := testenv.ClickHouseAddr(t)
	rd := testenv.RedisAddr(t)
	db := testenv.UniqueName("e2e")
	prefix := testenv.UniqueName("wr") + ":"
	const carolTok = "carol-e2e-token-000001"
	passwords := map[string]string{"alice": "alice-password-1", "bob": "bob-password-22", "carol": "carol-password-333"}
	hashes := map[string]string{} // one for both instances, as they share one configuration
	for id, pw := range passwords {
		hash, err := bcrypt.GenerateFromPassword([]byte(pw), bcrypt.MinCost)
		if err != nil {
			t.Fatal(err)
		}
		hashes[id] = string(hash)
	}
	newCfg := func() *configs.Config {
		cfg := e2eConfig(t, ch, rd, db, prefix, t.TempDir())
		cfg.Console.Employees = append(cfg.Console.Employees,
			configs.EmployeeConfig{ID: "bob", Role: console.RoleAgent},
			configs.EmployeeConfig{ID: "carol", Role: console.RoleAgent, Token: carolTok},
			configs.EmployeeConfig{ID: "adm", Role: console.RoleAdmin, Token: admTok})
		for i := range cfg.Console.Employees {
			e := &cfg.Console.Employees[i]
			e.PasswordHash = hashes[e.ID]
		}
		cfg.Console.DirectoryRefresh = 100 * time.Millisecond
		cfg.Console.SocketRecheck = time.Hour // the change itself must close them
		return cfg
	}
	a := startRelay(t, newCfg())
	b := startRelay(t, newCfg())
	const within = 15 * time.Second
	// The supervisor watches on both instances throughout.
	supA, supB := a.dial(t, supTok), b.dial(t, supTok)

	// alice changes her own password on A: the sockets of her session on
	// A and on B close.
	alice := signInSession(t, a, "alice", passwords["alice"])
	aliceA, aliceB := alice.dial(t, a), alice.dial(t, b)
	if code := alice.do(t, a, "POST", "/api/me/password", map[string]string{"current": passwords["alice"], "new": "alice-password-NEW"}); code != http.StatusOK {
		t.Fatalf("alice changing her password on A: %d", code)
	}
	for what, s := range map[string]*socket{"alice's socket on A": aliceA, "alice's socket on B": aliceB} {
		if r := closedWithin(t, what+" after her password change", s, within); r != "signed_out" {
			t.Errorf("%s after her password change: closed with %q, want signed_out", what, r)
		}
	}

	// An admin on B resets bob's password: the sockets of his session on
	// A and on B close, and the session is refused on both.
	bob := signInSession(t, a, "bob", passwords["bob"])
	bobA, bobB := bob.dial(t, a), bob.dial(t, b)
	if code, out := b.api(t, "POST", "/api/admin/employees/bob/password", admTok, map[string]any{"password": "bob-password-NEW", "version": 0}); code != http.StatusOK {
		t.Fatalf("resetting bob's password on B: %d %v", code, out)
	}
	for what, s := range map[string]*socket{"bob's socket on A": bobA, "bob's socket on B": bobB} {
		if r := closedWithin(t, what+" after the reset", s, within); r != "signed_out" {
			t.Errorf("%s after the reset: closed with %q, want signed_out", what, r)
		}
	}
	for name, r := range map[string]*testRelay{"A": a, "B": b} {
		if code := bob.do(t, r, "GET", "/api/me", nil); code != http.StatusUnauthorized {
			t.Errorf("bob's old session on %s after the reset: %d, want 401", name, code)
		}
	}

	// An admin on A disables carol: her session's and her token's sockets
	// on both instances close.
	carol := signInSession(t, b, "carol", passwords["carol"])
	carolSockets := map[string]*socket{
		"carol's session socket on A": carol.dial(t, a), "carol's session socket on B": carol.dial(t, b),
		"carol's token socket on A": a.dial(t, carolTok), "carol's token socket on B": b.dial(t, carolTok),
	}
	if code, out := a.api(t, "PUT", "/api/admin/employees/carol", admTok, map[string]any{
		"name": "", "role": "agent", "accounts": []string{}, "disabled": true, "version": 0,
	}); code != http.StatusOK {
		t.Fatalf("disabling carol on A: %d %v", code, out)
	}
	for what, s := range carolSockets {
		if r := closedWithin(t, what+" after she was disabled", s, within); r != "directory_changed" && r != "signed_out" {
			t.Errorf("%s after she was disabled: closed with %q", what, r)
		}
	}

	// The supervisor's sockets were not touched: a new message reaches both.
	now := time.Now()
	if status, body := a.post(t, safeCallback(t, "acme", textXML("oRevoke1", "60001", "still watching", now), now)); status != 200 || body != "success" {
		t.Fatalf("callback answered %d %q", status, body)
	}
	for what, s := range map[string]*socket{"the supervisor's socket on A": supA, "the supervisor's socket on B": supB} {
		waitFrame(t, s, what+": the new message", func(f console.Frame) bool {
			return f.Type == console.FrameMessage && f.Message != nil && f.Message.Text == "still watching"
		})
	}
}
