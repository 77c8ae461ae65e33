package console

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"golang.org/x/crypto/bcrypt"

	"github.com/wechat-relay/wechat-relay/storage/testenv/ctcompare"
)

// Every /api/ answer — signed in or not, success or error — tells the
// browser not to sniff its type, not to frame it, and not to keep it.
func TestAPIAnswersCarrySecurityHeaders(t *testing.T) {
	e := newConsoleEnv(t, Config{})
	b := e.signedIn(t, "alice", alicePassword)
	anon := e.browser(t)
	for _, tc := range []struct {
		name string
		b    *browser
		path string
	}{
		{"signed in", b, "/api/me"},
		{"signed out (401)", anon, "/api/me"},
		{"not found", b, "/api/no-such-route"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, hdr := tc.b.request("GET", tc.path, nil, nil)
			for name, want := range map[string]string{
				"X-Content-Type-Options": "nosniff", "X-Frame-Options": "DENY", "Cache-Control": "no-store",
			} {
				if got := hdr.Get(name); got != want {
					t.Errorf("%s %s: %s = %q, want %q", tc.name, tc.path, name, got, want)
				}
			}
		})
	}
}

// A session cookie planted before sign-in (session fixation: an
// attacker who can set a cookie on the victim's browser) is not adopted:
// signing in issues a new session, and the planted value opens nothing.
func TestSignInIgnoresAPlantedSessionCookie(t *testing.T) {
	e := newConsoleEnv(t, Config{})
	b := e.browser(t)
	u, _ := url.Parse(e.srv.URL)
	const planted = "attacker-chosen-session-value"
	b.c.Jar.SetCookies(u, []*http.Cookie{{Name: SessionCookie, Value: planted, Path: "/"}})
	if status, out, _ := b.login("alice", alicePassword); status != http.StatusOK {
		t.Fatalf("sign-in: %d %v", status, out)
	}
	if c := b.sessionCookie(); c == nil || c.Value == planted {
		t.Fatalf("session cookie after sign-in = %v: the planted value was kept", c)
	}
	attacker := e.browser(t)
	attacker.c.Jar.SetCookies(u, []*http.Cookie{{Name: SessionCookie, Value: planted, Path: "/"}})
	if status, _ := attacker.get("/api/me"); status != http.StatusUnauthorized {
		t.Fatalf("the planted cookie after the victim signed in: /api/me answered %d, want 401", status)
	}
}

// An API token is shown once and kept nowhere but as its SHA-256: the
// directory's archived record and the audit log hold no trace of it, so
// someone who reads the archive cannot sign in with it.
func TestIssuedTokenIsStoredOnlyAsItsHash(t *testing.T) {
	e := adminEnv(t)
	code, body := e.adminDo(t, "POST", "/api/admin/employees/alice/token", rootTok, map[string]any{"version": 1})
	tok, _ := body["token"].(string)
	if code != http.StatusOK || tok == "" {
		t.Fatalf("new token: %d %v", code, body)
	}
	sum := sha256.Sum256([]byte(tok))
	e.dirStore.mu.Lock()
	recs := slices.Clone(e.dirStore.recs)
	e.dirStore.mu.Unlock()
	var hashed bool
	for _, r := range recs {
		if strings.Contains(r.Data, tok) {
			t.Fatalf("the token itself is in directory record %s %s v%d", r.Kind, r.ID, r.Version)
		}
		hashed = hashed || strings.Contains(r.Data, hex.EncodeToString(sum[:]))
	}
	if !hashed {
		t.Fatal("no directory record holds the token's hash: the test looks in the wrong place")
	}
	if code, out := e.adminDo(t, "GET", "/api/admin/history?kind=employee&id=alice", rootTok, nil); code != http.StatusOK || strings.Contains(fmt.Sprint(out), tok) {
		t.Fatalf("the entry's history shows the token (%d)", code)
	}
}

// Tokens and CSRF tokens are compared in constant time, so that timing
// reveals neither a token nor how much of a guess was right. No test can
// time it reliably; the source is checked instead.
func TestSecretsComparedInConstantTime(t *testing.T) {
	ctcompare.Check(t, "auth.go", "byToken", "checkCSRF")
}

// A sign-in costs one bcrypt comparison whatever the id — an employee's,
// unknown, without a password, too long, not an id at all — and against
// a hash of the same cost as the employees', so that how long the answer
// takes does not tell which ids exist. Counted through the comparison's
// seam, not timed.
func TestSignInCostsOneComparisonWhateverTheID(t *testing.T) {
	e := newConsoleEnv(t, Config{})
	type call struct{ cost int }
	var calls []call
	e.server.comparePassword = func(hash, pw []byte) error {
		cost, err := bcrypt.Cost(hash)
		if err != nil {
			t.Errorf("compared with %q, not a bcrypt hash", hash)
		}
		calls = append(calls, call{cost})
		return bcrypt.CompareHashAndPassword(hash, pw)
	}
	wantCost, err := bcrypt.Cost([]byte(testHash(alicePassword)))
	if err != nil {
		t.Fatal(err)
	}
	h := e.server.Handler() // served on this goroutine: the seam is read here
	for _, tc := range []struct {
		name, id, pw string
		want         int
	}{
		{"employee, right password", "alice", alicePassword, http.StatusOK},
		{"employee, wrong password", "alice", "wrong", http.StatusUnauthorized},
		{"unknown id", "nobody", "wrong", http.StatusUnauthorized},
		{"employee without a password", "tokenonly", "anything", http.StatusUnauthorized},
		{"id too long", strings.Repeat("x", 100), "pw", http.StatusUnauthorized},
		{"not an id", "*", "pw", http.StatusUnauthorized},
	} {
		calls = nil
		body, _ := json.Marshal(map[string]string{"id": tc.id, "password": tc.pw})
		req := httptest.NewRequest("POST", "http://console.test/api/login", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != tc.want {
			t.Errorf("%s: %d %s, want %d", tc.name, rec.Code, rec.Body, tc.want)
		}
		if len(calls) != 1 || calls[0].cost != wantCost {
			t.Errorf("%s: bcrypt comparisons %+v, want one at cost %d", tc.name, calls, wantCost)
		}
	}
}

// clock is a settable Deps.Now.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// A session ends 7 days after sign-in however busy it was: the next
// request is refused and the stored session deleted, and a socket opened
// with it closes at its next check.
func TestSessionEndsSevenDaysAfterSignIn(t *testing.T) {
	clk := &clock{now: time.Now()}
	e := newConsoleEnv(t, Config{SocketRecheck: 50 * time.Millisecond}, func(d *Deps) { d.Now = clk.Now })
	b := e.signedIn(t, "alice", alicePassword)
	for range 7 { // in use every day: the idle timeout never ends it
		clk.advance(24*time.Hour - time.Minute)
		if status, _ := b.get("/api/me"); status != http.StatusOK {
			t.Fatalf("/api/me %s after sign-in: %d, want 200", 7*(24*time.Hour-time.Minute), status)
		}
	}
	ws, resp, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(e.srv.URL, "http")+"/api/ws",
		http.Header{"Cookie": {b.sessionCookie().String()}})
	if err != nil {
		t.Fatalf("dial with the session: %v (%v)", err, resp)
	}
	defer ws.Close()

	clk.advance(7*time.Minute + time.Second) // 7 days and a second after sign-in
	if r := closedWith(t, ws, 5*time.Second); r != reasonSignedOut {
		t.Fatalf("the session's socket past 7 days: closed with %q, want %q", r, reasonSignedOut)
	}
	if status, _ := b.get("/api/me"); status != http.StatusUnauthorized {
		t.Fatalf("/api/me 7 days and a second after sign-in: %d, want 401", status)
	}
	if n := e.sessions.count(); n != 0 {
		t.Fatalf("%d sessions stored after the only one expired, want 0", n)
	}
}
