package console

import (
	"net/http"
	"strings"
	"testing"

	"github.com/wechat-relay/wechat-relay/relay"
)

func TestChangeOwnPassword(t *testing.T) {
	e := newConsoleEnv(t, Config{LoginAttempts: 3})
	b := e.signedIn(t, "alice", alicePassword)
	other := e.signedIn(t, "alice", alicePassword) // her phone, say
	change := func(current, next string) (int, string) {
		t.Helper()
		code, out := b.post("/api/me/password", map[string]string{"current": current, "new": next})
		msg, _ := out["error"].(string)
		return code, msg
	}
	for _, c := range []struct {
		current, next string
		code          int
		msg           string
	}{
		{alicePassword, "short", http.StatusBadRequest, "at least 10"},
		{alicePassword, alicePassword, http.StatusBadRequest, "differ"},
		{"wrong-password-1", "alice-new-password", http.StatusForbidden, "current password is wrong"},
	} {
		if code, msg := change(c.current, c.next); code != c.code || !strings.Contains(msg, c.msg) {
			t.Errorf("change(%q, %q) = %d %q, want %d with %q", c.current, c.next, code, msg, c.code, c.msg)
		}
	}
	oldCSRF := b.csrf
	code, out := b.post("/api/me/password", map[string]string{"current": alicePassword, "new": "alice-new-password"})
	if code != http.StatusOK || out["csrf"] == nil || out["csrf"] == oldCSRF {
		t.Fatalf("change: %d %v", code, out)
	}
	// This browser goes on in a new session; every other one has ended.
	b.csrf = out["csrf"].(string)
	if code, me := b.get("/api/me"); code != http.StatusOK || me["csrf"] != b.csrf {
		t.Fatalf("the changing browser after the change: %d %v", code, me)
	}
	if code, _ := other.get("/api/me"); code != http.StatusUnauthorized {
		t.Fatalf("a session begun with the old password: %d, want 401", code)
	}
	if status, _, _ := e.browser(t).login("alice", alicePassword); status != http.StatusUnauthorized {
		t.Fatalf("the old password still signs in: %d", status)
	}
	e.signedIn(t, "alice", "alice-new-password")
	var rec *AuditRecord
	for _, r := range e.audit.all() {
		if r.Action == relay.AuditPasswordChange {
			rec = &r
		}
	}
	if rec == nil || rec.Employee != "alice" || rec.Target != "employee:alice" || strings.Contains(rec.Detail, "alice-new-password") {
		t.Fatalf("audit record of the change: %+v", rec)
	}
	// Her token and her other fields are untouched.
	if code, me := e.do(t, "GET", "/api/me", aliceTok, "", nil); code != http.StatusOK || me["name"] != "Alice Wang" {
		t.Fatalf("token after the change: %d %v", code, me)
	}

	// Guessing the current password counts toward the sign-in lockout.
	b2 := e.signedIn(t, "bob", bobPassword)
	for range 3 {
		code, _ = b2.post("/api/me/password", map[string]string{"current": "guess-guess-guess", "new": "bob-new-password"})
	}
	if code != http.StatusTooManyRequests {
		t.Fatalf("third wrong current password: %d, want 429", code)
	}
	if status, _, _ := e.browser(t).login("bob", bobPassword); status != http.StatusTooManyRequests {
		t.Fatalf("sign-in after guessing through the password change: %d, want 429 (locked)", status)
	}
	// Without a password of one's own there is nothing to change.
	if code, out := e.do(t, "POST", "/api/me/password", "tokenonly-token-0123456789", "application/json",
		[]byte(`{"current":"x","new":"0123456789ab"}`)); code != http.StatusConflict || !strings.Contains(out["error"].(string), "ask an admin") {
		t.Fatalf("token-only employee: %d %v", code, out)
	}
}
