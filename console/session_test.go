package console

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// browser is a client with a cookie jar, as a browser page uses the API.
type browser struct {
	t    *testing.T
	e    *consoleEnv
	c    *http.Client
	csrf string
}

func (e *consoleEnv) browser(t *testing.T) *browser {
	t.Helper()
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	return &browser{t: t, e: e, c: &http.Client{Jar: jar}}
}

// request sends one request. body is JSON-encoded unless it is []byte.
// It returns the status, the decoded JSON body and the headers.
func (b *browser) request(method, path string, body any, hdr map[string]string) (int, map[string]any, http.Header) {
	b.t.Helper()
	var rd *bytes.Reader
	switch v := body.(type) {
	case nil:
		rd = bytes.NewReader(nil)
	case []byte:
		rd = bytes.NewReader(v)
	default:
		data, _ := json.Marshal(v)
		rd = bytes.NewReader(data)
	}
	req, _ := http.NewRequest(method, b.e.srv.URL+path, rd)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := b.c.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	json.NewDecoder(resp.Body).Decode(&out)
	return resp.StatusCode, out, resp.Header
}

// post sends with the session's CSRF token.
func (b *browser) post(path string, body any) (int, map[string]any) {
	b.t.Helper()
	status, out, _ := b.request("POST", path, body, map[string]string{CSRFHeader: b.csrf})
	return status, out
}

func (b *browser) get(path string) (int, map[string]any) {
	b.t.Helper()
	status, out, _ := b.request("GET", path, nil, nil)
	return status, out
}

func (b *browser) login(id, password string) (int, map[string]any, http.Header) {
	b.t.Helper()
	status, out, hdr := b.request("POST", "/api/login", map[string]string{"id": id, "password": password}, nil)
	if status == http.StatusOK {
		b.csrf, _ = out["csrf"].(string)
	}
	return status, out, hdr
}

// signedIn returns a browser signed in as id.
func (e *consoleEnv) signedIn(t *testing.T, id, password string) *browser {
	t.Helper()
	b := e.browser(t)
	if status, out, _ := b.login(id, password); status != http.StatusOK {
		t.Fatalf("sign-in as %s: %d %v", id, status, out)
	}
	return b
}

func (b *browser) sessionCookie() *http.Cookie {
	u, _ := url.Parse(b.e.srv.URL)
	for _, c := range b.c.Jar.Cookies(u) {
		if c.Name == SessionCookie {
			return c
		}
	}
	return nil
}

func TestLogin(t *testing.T) {
	e := newConsoleEnv(t, Config{})
	b := e.browser(t)
	status, out, hdr := b.login("alice", alicePassword)
	if status != http.StatusOK || out["id"] != "alice" || out["name"] != "Alice Wang" || out["role"] != "agent" || b.csrf == "" {
		t.Fatalf("good sign-in: %d %v", status, out)
	}
	sc := hdr.Get("Set-Cookie")
	for _, want := range []string{SessionCookie + "=", "Path=/", "HttpOnly", "SameSite=Strict"} {
		if !strings.Contains(sc, want) {
			t.Errorf("Set-Cookie %q lacks %q", sc, want)
		}
	}
	if strings.Contains(sc, "Secure") {
		t.Errorf("Set-Cookie %q is Secure over plain HTTP", sc)
	}
	// The store knows the session by a hash, not by the cookie's value.
	if c := b.sessionCookie(); c == nil || e.sessions.sessions[c.Value] != nil {
		t.Fatal("session stored under the cookie's own value")
	}
	status, me := b.get("/api/me")
	if status != http.StatusOK || me["id"] != "alice" || me["csrf"] != b.csrf {
		t.Fatalf("/api/me with the session: %d %v", status, me)
	}
	// Bearer clients get no csrf: they need none.
	if _, me := e.do(t, "GET", "/api/me", aliceTok, "", nil); me["csrf"] != nil {
		t.Fatalf("/api/me with a token carries a csrf: %v", me)
	}

	// Wrong password and unknown id: the same answer.
	for _, tc := range []struct{ id, pw string }{{"alice", "wrong"}, {"nobody", "wrong"}, {"tokenonly", "anything"}, {strings.Repeat("x", 100), "pw"}} {
		status, out, _ := e.browser(t).login(tc.id, tc.pw)
		if status != http.StatusUnauthorized || out["error"] != "wrong employee id or password" {
			t.Errorf("sign-in as %.10s with a wrong password: %d %v", tc.id, status, out)
		}
	}
	// Malformed requests.
	for name, tc := range map[string]struct {
		body []byte
		ct   string
		want int
	}{
		"form post":     {[]byte("id=alice&password=x"), "application/x-www-form-urlencoded", http.StatusUnsupportedMediaType},
		"missing field": {[]byte(`{"id":"alice"}`), "application/json", http.StatusBadRequest},
		"unknown field": {[]byte(`{"id":"alice","password":"x","admin":true}`), "application/json", http.StatusBadRequest},
		"huge":          {[]byte(`{"id":"alice","password":"` + strings.Repeat("x", 10000) + `"}`), "application/json", http.StatusBadRequest},
	} {
		status, out, _ := e.browser(t).request("POST", "/api/login", tc.body, map[string]string{"Content-Type": tc.ct})
		if status != tc.want || out["error"] == "" {
			t.Errorf("%s: %d %v, want %d", name, status, out, tc.want)
		}
	}
	// Signed out: 401.
	if status, _ := e.browser(t).get("/api/me"); status != http.StatusUnauthorized {
		t.Fatalf("/api/me signed out: %d", status)
	}
}

func TestLoginSecureCookieBehindTLSProxy(t *testing.T) {
	e := newConsoleEnv(t, Config{})
	_, _, hdr := e.browser(t).request("POST", "/api/login", map[string]string{"id": "bob", "password": bobPassword},
		map[string]string{"X-Forwarded-Proto": "https"})
	if sc := hdr.Get("Set-Cookie"); !strings.Contains(sc, "Secure") {
		t.Fatalf("Set-Cookie %q behind a TLS proxy is not Secure", sc)
	}
}

func TestLoginLockout(t *testing.T) {
	e := newConsoleEnv(t, Config{LoginAttempts: 3, LoginLockout: 1500 * time.Millisecond})
	b := e.browser(t)
	for i := 1; i < 3; i++ {
		if status, out, _ := b.login("alice", "wrong"); status != http.StatusUnauthorized {
			t.Fatalf("failure %d: %d %v", i, status, out)
		}
	}
	status, out, hdr := b.login("alice", "wrong")
	secs, _ := out["retry_after_seconds"].(float64)
	if status != http.StatusTooManyRequests || secs < 1 || secs > 2 || hdr.Get("Retry-After") == "" || out["error"] == "" {
		t.Fatalf("the failure that locks: %d %v %v", status, out, hdr)
	}
	// Locked: even the right password is refused.
	if status, out, _ := b.login("alice", alicePassword); status != http.StatusTooManyRequests || out["retry_after_seconds"] == nil {
		t.Fatalf("right password while locked: %d %v", status, out)
	}
	// Others are not locked.
	if status, _, _ := e.browser(t).login("bob", bobPassword); status != http.StatusOK {
		t.Fatalf("bob while alice is locked: %d", status)
	}
	time.Sleep(1600 * time.Millisecond)
	if status, out, _ := b.login("alice", alicePassword); status != http.StatusOK {
		t.Fatalf("after the lockout: %d %v", status, out)
	}
}

func TestLogoutInvalidatesSession(t *testing.T) {
	e := newConsoleEnv(t, Config{})
	b := e.signedIn(t, "alice", alicePassword)
	cookie := b.sessionCookie()
	if status, _ := b.post("/api/logout", nil); status != http.StatusNoContent {
		t.Fatalf("logout: %d", status)
	}
	if b.sessionCookie() != nil {
		t.Fatal("session cookie kept after logout")
	}
	if e.sessions.count() != 0 {
		t.Fatal("session still in the store")
	}
	// The old cookie, replayed by hand, is worthless.
	req, _ := http.NewRequest("GET", e.srv.URL+"/api/me", nil)
	req.AddCookie(cookie)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("old session cookie after logout: %d", resp.StatusCode)
	}
	// Logout without the CSRF token is refused (and ends nothing).
	b2 := e.signedIn(t, "bob", bobPassword)
	if status, out, _ := b2.request("POST", "/api/logout", nil, nil); status != http.StatusForbidden {
		t.Fatalf("logout without CSRF: %d %v", status, out)
	}
	if status, _ := b2.get("/api/me"); status != http.StatusOK {
		t.Fatalf("session ended by a logout without CSRF: %d", status)
	}
	// Signed out already: fine.
	if status, _ := e.browser(t).post("/api/logout", nil); status != http.StatusNoContent {
		t.Fatalf("logout signed out: %d", status)
	}
}

func TestCSRF(t *testing.T) {
	e := newConsoleEnv(t, Config{})
	b := e.signedIn(t, "alice", alicePassword)
	const path = "/api/conversations/acct:c-alice/messages"
	body := map[string]string{"key": "k1", "kind": "text", "text": "hi"}
	for name, hdr := range map[string]map[string]string{
		"without a token":        nil,
		"with a wrong one":       {CSRFHeader: "not-the-token"},
		"with another session's": {CSRFHeader: e.signedIn(t, "bob", bobPassword).csrf},
	} {
		status, out, _ := b.request("POST", path, body, hdr)
		if status != http.StatusForbidden || !strings.Contains(out["error"].(string), "CSRF") {
			t.Errorf("cookie POST %s: %d %v", name, status, out)
		}
	}
	if n := len(e.outbox.reqs); n != 0 {
		t.Fatalf("%d sends went through without a valid CSRF token", n)
	}
	if status, out := b.post(path, body); status != http.StatusAccepted {
		t.Fatalf("cookie POST with the token: %d %v", status, out)
	}
	// Bearer requests need none.
	if status, out := e.do(t, "POST", path, aliceTok, "application/json", []byte(`{"key":"k2","kind":"text","text":"x"}`)); status != http.StatusAccepted {
		t.Fatalf("bearer POST: %d %v", status, out)
	}
	// The wr_token cookie reads, but cannot write.
	tb := e.browser(t)
	u, _ := url.Parse(e.srv.URL)
	tb.c.Jar.SetCookies(u, []*http.Cookie{{Name: TokenCookie, Value: aliceTok}})
	if status, _ := tb.get("/api/me"); status != http.StatusOK {
		t.Fatalf("wr_token GET: %d", status)
	}
	if status, out, _ := tb.request("POST", path, body, nil); status != http.StatusForbidden {
		t.Fatalf("wr_token POST: %d %v", status, out)
	}
	// GETs of a session need no token.
	if status, _ := b.get("/api/conversations/acct:c-alice/messages"); status != http.StatusOK {
		t.Fatalf("session GET: %d", status)
	}
}

func TestSessionStoreDown(t *testing.T) {
	e := newConsoleEnv(t, Config{})
	b := e.signedIn(t, "alice", alicePassword)
	e.sessions.mu.Lock()
	e.sessions.down = true
	e.sessions.mu.Unlock()
	if status, out := b.get("/api/me"); status != http.StatusServiceUnavailable {
		t.Fatalf("session store down: %d %v", status, out)
	}
	if status, out, _ := e.browser(t).login("bob", bobPassword); status != http.StatusServiceUnavailable {
		t.Fatalf("sign-in with the store down: %d %v", status, out)
	}
	// Tokens do not need the store.
	if status, _ := e.do(t, "GET", "/api/me", aliceTok, "", nil); status != http.StatusOK {
		t.Fatalf("bearer with the store down: %d", status)
	}
}

func TestSocketWithSessionCookie(t *testing.T) {
	e := newConsoleEnv(t, Config{})
	wsURL := "ws" + strings.TrimPrefix(e.srv.URL, "http") + "/api/ws"
	b := e.signedIn(t, "alice", alicePassword)
	cookie := b.sessionCookie()
	h := http.Header{"Cookie": {cookie.String()}, "Origin": {e.srv.URL}}
	ws, resp, err := websocket.DefaultDialer.Dial(wsURL, h)
	if err != nil {
		t.Fatalf("dial with the session cookie: %v (%v)", err, resp)
	}
	defer ws.Close()
	time.Sleep(20 * time.Millisecond)
	e.publish(msg("acct:c-alice", 1, "alice"))
	e.publish(msg("acct:c-bob", 1, "bob"))
	if f := read(t, ws); f.Conv != "acct:c-alice" {
		t.Fatalf("got %+v", f)
	}
	// Someone else's conversation stays closed over the socket too (and
	// bob's message above never came: the next frame is the refusal).
	ws.WriteJSON(Frame{Type: FrameResume, Conv: "acct:c-bob"})
	if f := read(t, ws); f.Type != FrameError || !strings.Contains(f.Error, "forbidden") {
		t.Fatalf("resume of bob's conversation: %+v", f)
	}
	// A cross-site page cannot use the cookie.
	_, resp, err = websocket.DefaultDialer.Dial(wsURL, http.Header{"Cookie": {cookie.String()}, "Origin": {"https://evil.example"}})
	if err == nil || resp == nil || resp.StatusCode != http.StatusForbidden {
		t.Fatalf("cross-site upgrade with the cookie: %v %v", err, resp)
	}
	// After logout the cookie opens nothing.
	b.post("/api/logout", nil)
	_, resp, err = websocket.DefaultDialer.Dial(wsURL, h)
	if err == nil || resp == nil || resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("upgrade after logout: %v %v", err, resp)
	}
}

func TestAuditFailureRefusesView(t *testing.T) {
	e := newConsoleEnv(t, Config{})
	e.history.add(msg("acct:c-alice", 1, "alice"))
	if status, _ := e.do(t, "GET", "/api/conversations/acct:c-alice/messages", supTok, "", nil); status != http.StatusOK {
		t.Fatalf("supervisor: %d", status)
	}
	recs := e.audit.all()
	if len(recs) != 1 || recs[0].Employee != "sup" || recs[0].Action != AuditOpenConversation || recs[0].Conv != "acct:c-alice" || recs[0].From == "" || recs[0].At.IsZero() {
		t.Fatalf("audit records %+v", recs)
	}
	// Agents' own reads are not supervisor views.
	e.do(t, "GET", "/api/conversations/acct:c-alice/messages", aliceTok, "", nil)
	if n := len(e.audit.all()); n != 1 {
		t.Fatalf("%d audit records after an agent's read, want 1", n)
	}
	e.audit.fail(errors.New("audit store down"))
	if status, out := e.do(t, "GET", "/api/conversations/acct:c-alice/messages", supTok, "", nil); status != http.StatusServiceUnavailable || out["messages"] != nil {
		t.Fatalf("supervisor with the audit down: %d %v", status, out)
	}
	// The socket's resume is audited the same way.
	e.audit.fail(nil)
	ws := e.dial(t, supTok)
	ws.WriteJSON(Frame{Type: FrameResume, Conv: "acct:c-alice"})
	for f := read(t, ws); f.Type != FrameCaughtUp; f = read(t, ws) {
	}
	recs = e.audit.all()
	if last := recs[len(recs)-1]; last.Action != AuditResumeConversation || last.Conv != "acct:c-alice" {
		t.Fatalf("resume audited as %+v", last)
	}
}

// Random employee ids do not get round the lockout: failures from one
// client address lock that address (and only it); a proxy's
// X-Forwarded-For names the client only when the proxy is trusted.
func TestLoginLockoutPerAddress(t *testing.T) {
	e := newConsoleEnv(t, Config{LoginAttempts: 100, LoginAddrAttempts: 4, LoginLockout: time.Minute, TrustedProxies: []string{"127.0.0.0/8"}})
	from := func(addr string) map[string]string { return map[string]string{"X-Forwarded-For": addr} }
	b := e.browser(t)
	login := func(id, password, addr string) (int, map[string]any) {
		status, out, _ := b.request("POST", "/api/login", map[string]string{"id": id, "password": password}, from(addr))
		return status, out
	}
	for i := range 3 {
		if status, out := login(fmt.Sprintf("nobody-%d", i), "guess", "203.0.113.7"); status != http.StatusUnauthorized {
			t.Fatalf("failure %d: %d %v", i+1, status, out)
		}
	}
	if status, out := login("nobody-3", "guess", "203.0.113.7"); status != http.StatusTooManyRequests || !strings.Contains(fmt.Sprint(out["error"]), "address") {
		t.Fatalf("the failure that locks the address: %d %v", status, out)
	}
	if status, out := login("alice", alicePassword, "203.0.113.7"); status != http.StatusTooManyRequests {
		t.Fatalf("the right password from the locked address: %d %v", status, out)
	}
	if status, out := login("alice", alicePassword, "198.51.100.9"); status != http.StatusOK {
		t.Fatalf("another address: %d %v", status, out)
	}
	// Forged hops left of the client's address change nothing.
	if status, out := login("alice", alicePassword, "198.51.100.9, 203.0.113.7"); status != http.StatusTooManyRequests {
		t.Fatalf("the locked address behind a forged hop: %d %v", status, out)
	}

	// Without a trusted proxy, X-Forwarded-For is not believed: the peer
	// is the client.
	e2 := newConsoleEnv(t, Config{LoginAttempts: 100, LoginAddrAttempts: 2, LoginLockout: time.Minute})
	b2 := e2.browser(t)
	for i := range 2 {
		b2.request("POST", "/api/login", map[string]string{"id": "alice", "password": "wrong"}, from(fmt.Sprintf("192.0.2.%d", i)))
	}
	if status, out, _ := b2.request("POST", "/api/login", map[string]string{"id": "bob", "password": bobPassword}, from("192.0.2.99")); status != http.StatusTooManyRequests {
		t.Fatalf("an untrusted X-Forwarded-For escaped the peer's lock: %d %v", status, out)
	}
}

// Failures from anywhere are bounded too: past LoginGlobalAttempts, every
// password sign-in waits LoginGlobalLockout.
func TestLoginLockoutGlobal(t *testing.T) {
	e := newConsoleEnv(t, Config{LoginAttempts: 100, LoginAddrAttempts: 100, LoginGlobalAttempts: 3, LoginGlobalLockout: time.Minute, TrustedProxies: []string{"127.0.0.1"}})
	b := e.browser(t)
	for i := range 3 {
		b.request("POST", "/api/login", map[string]string{"id": fmt.Sprint("spray-", i), "password": "guess"},
			map[string]string{"X-Forwarded-For": fmt.Sprintf("203.0.113.%d", i)})
	}
	status, out, _ := b.request("POST", "/api/login", map[string]string{"id": "alice", "password": alicePassword},
		map[string]string{"X-Forwarded-For": "198.51.100.1"})
	if status != http.StatusTooManyRequests || !strings.Contains(fmt.Sprint(out["error"]), "password sign-ins") {
		t.Fatalf("sign-in after a spray from many addresses: %d %v", status, out)
	}
}

func TestClientAddr(t *testing.T) {
	ps, err := parseProxies([]string{"10.0.0.0/8", "192.0.2.1"})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ peer, xff, want string }{
		{"203.0.113.5:1234", "1.2.3.4", "203.0.113.5"},            // untrusted peer: XFF ignored
		{"10.1.2.3:80", "1.2.3.4", "1.2.3.4"},                     // trusted proxy
		{"10.1.2.3:80", "6.6.6.6, 1.2.3.4, 192.0.2.1", "1.2.3.4"}, // through two proxies; the forged hop ignored
		{"10.1.2.3:80", "", "10.1.2.3"},                           // a trusted peer that names nobody
		{"10.1.2.3:80", "not-an-ip, 1.2.3.4", "1.2.3.4"},          // garbage left of the client
		{"[::ffff:10.1.2.3]:80", "2001:db8::1", "2001:db8::1"},    // IPv6, mapped peer
	} {
		r := httptest.NewRequest("GET", "/", nil)
		r.RemoteAddr = c.peer
		if c.xff != "" {
			r.Header.Set("X-Forwarded-For", c.xff)
		}
		if got := ps.clientAddr(r); got != c.want {
			t.Errorf("peer %s, X-Forwarded-For %q: client %s, want %s", c.peer, c.xff, got, c.want)
		}
	}
	if _, err := parseProxies([]string{"10.0.0.0/33"}); err == nil {
		t.Error("a bad CIDR range accepted")
	}
}

// closedWith waits for ws to be closed by the server and returns the
// reason it gave; "" if it stays open for wait.
func closedWith(t *testing.T, ws *websocket.Conn, wait time.Duration) string {
	t.Helper()
	ws.SetReadDeadline(time.Now().Add(wait))
	for {
		_, _, err := ws.ReadMessage()
		var ce *websocket.CloseError
		switch {
		case errors.As(err, &ce):
			return ce.Text
		case err != nil:
			return ""
		}
	}
}

// A socket does not outlive its credential, on any instance: a sign-out
// on one instance closes the session's sockets there at once and on the
// other within Config.SocketRecheck; so does a session that expires; a
// rotated token closes the sockets opened with it. Other sockets stay.
func TestSocketsCloseWhenTheirCredentialEnds(t *testing.T) {
	shared := newFakeSessions() // the Redis both instances use
	cfg := Config{SocketRecheck: 50 * time.Millisecond}
	sharing := func(d *Deps) { d.Sessions, d.Throttle, d.ReadMarks = shared, shared, shared }
	a, b := newConsoleEnv(t, cfg, sharing), newConsoleEnv(t, cfg, sharing)
	dialCookie := func(e *consoleEnv, c *http.Cookie) *websocket.Conn {
		t.Helper()
		ws, resp, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(e.srv.URL, "http")+"/api/ws", http.Header{"Cookie": {c.String()}})
		if err != nil {
			t.Fatalf("dial: %v (%v)", err, resp)
		}
		t.Cleanup(func() { ws.Close() })
		return ws
	}

	alice := a.signedIn(t, "alice", alicePassword)
	onA, onB := dialCookie(a, alice.sessionCookie()), dialCookie(b, alice.sessionCookie())
	bobByToken := b.dial(t, bobTok)
	if status, _ := alice.post("/api/logout", nil); status != http.StatusNoContent {
		t.Fatalf("logout: %d", status)
	}
	if r := closedWith(t, onA, 5*time.Second); r != reasonSignedOut {
		t.Fatalf("alice's socket on the instance she signed out on: closed with %q, want %q", r, reasonSignedOut)
	}
	if r := closedWith(t, onB, 5*time.Second); r != reasonSignedOut {
		t.Fatalf("alice's socket on the other instance: closed with %q, want %q", r, reasonSignedOut)
	}
	// bob's socket stays: it still receives his conversation.
	b.publish(msg("acct:c-bob", 1, "bob"))
	bobByToken.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, _, err := bobByToken.ReadMessage(); err != nil {
		t.Fatalf("bob's socket after alice's sign-out: %v", err)
	}

	// A session that expires (the store forgets it) ends its sockets.
	sup := b.signedIn(t, "sup", supPassword)
	supWS := dialCookie(a, sup.sessionCookie())
	shared.mu.Lock()
	clear(shared.sessions)
	shared.mu.Unlock()
	if r := closedWith(t, supWS, 5*time.Second); r != reasonSignedOut {
		t.Fatalf("a socket of an expired session: closed with %q, want %q", r, reasonSignedOut)
	}

	// A rotated token ends the sockets opened with it, at once.
	emp, _ := b.dir.Snapshot().Employee("bob")
	sum := sha256.Sum256([]byte("bob-new-token-0123456789ab"))
	emp.TokenHash = hex.EncodeToString(sum[:])
	if _, err := b.dir.UpdateEmployee(context.Background(), "root", emp, emp.Version, nil); err != nil {
		t.Fatal(err)
	}
	if r := closedWith(t, bobByToken, 5*time.Second); r != reasonSignedOut {
		t.Fatalf("a socket of a rotated token: closed with %q, want %q", r, reasonSignedOut)
	}
}

// Failed sign-ins are recorded in the audit log once per id (unknown ids
// are one) and client address and window, and again when they lock —
// not once each, so that guessing cannot flood the audit log.
func TestFailedSignInsAreAuditedInAggregate(t *testing.T) {
	e := newConsoleEnv(t, Config{LoginAttempts: 4, LoginAddrAttempts: 100})
	b := e.browser(t)
	for range 4 { // the fourth locks alice
		b.login("alice", "wrong")
	}
	for i := range 5 {
		b.login(fmt.Sprint("nobody-", i), "guess")
	}
	var alice, unknown []AuditRecord
	for _, rec := range e.audit.all() {
		if rec.Action != AuditSignInFailed {
			continue
		}
		switch rec.Employee {
		case "alice":
			alice = append(alice, rec)
		case "(unknown)":
			unknown = append(unknown, rec)
		}
	}
	if len(alice) != 2 || !strings.Contains(alice[1].Detail, "locked") {
		t.Fatalf("alice's failed sign-ins recorded %d times (%+v), want twice: the first, and the one that locked", len(alice), alice)
	}
	if len(unknown) != 1 {
		t.Fatalf("5 unknown ids recorded %d times, want once", len(unknown))
	}
}

// An id shaped like another count's key ("*", "addr:…") gets no count of
// its own: five guesses as "*" must not lock every sign-in.
func TestLoginIDsCannotLockOtherCounts(t *testing.T) {
	e := newConsoleEnv(t, Config{LoginAttempts: 2, LoginAddrAttempts: 100, TrustedProxies: []string{"127.0.0.1"}})
	b := e.browser(t)
	for _, id := range []string{"*", "*", "*", "addr:198.51.100.1", "addr:198.51.100.1", "addr:198.51.100.1"} {
		b.request("POST", "/api/login", map[string]string{"id": id, "password": "guess"}, map[string]string{"X-Forwarded-For": "203.0.113.9"})
	}
	status, out, _ := b.request("POST", "/api/login", map[string]string{"id": "alice", "password": alicePassword},
		map[string]string{"X-Forwarded-For": "198.51.100.1"})
	if status != http.StatusOK {
		t.Fatalf("alice from 198.51.100.1 after guesses as \"*\" and \"addr:198.51.100.1\": %d %v", status, out)
	}
}
