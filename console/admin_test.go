package console

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"golang.org/x/crypto/bcrypt"

	"github.com/wechat-relay/wechat-relay/relay"
)

const rootTok = "root-token-0123456789ab"

// adminEnv is a console with an admin (root) and a team desk-a that
// alice and the team supervisor lead are in.
func adminEnv(t *testing.T, with ...func(*Deps)) *consoleEnv {
	t.Helper()
	cfg := Config{
		Teams: []Team{{ID: "desk-a", Name: "Desk A"}, {ID: "desk-b", Name: "Desk B"}},
		Employees: []Employee{
			{ID: "root", Name: "Root", Role: RoleAdmin, Token: rootTok},
			{ID: "lead", Name: "Lead", Role: RoleSupervisor, Teams: []string{"desk-a"}, Token: "lead-token-0123456789ab"},
		},
	}
	e := newConsoleEnv(t, cfg, with...)
	// alice joins desk-a through the admin API, as an admin would.
	code, body := e.adminDo(t, "PUT", "/api/admin/employees/alice", rootTok, map[string]any{
		"name": "Alice Wang", "role": "agent", "accounts": []string{"acct"}, "teams": []string{"desk-a"}, "version": 0,
	})
	if code != http.StatusOK {
		t.Fatalf("putting alice in desk-a: %d %v", code, body)
	}
	return e
}

func (e *consoleEnv) adminDo(t *testing.T, method, path, token string, body any) (int, map[string]any) {
	t.Helper()
	var data []byte
	if body != nil {
		data, _ = json.Marshal(body)
	}
	return e.do(t, method, path, token, "application/json", data)
}

func TestAdminOnlyForAdmins(t *testing.T) {
	e := adminEnv(t)
	for _, tok := range []string{aliceTok, supTok} {
		if code, body := e.adminDo(t, "GET", "/api/admin/directory", tok, nil); code != http.StatusForbidden {
			t.Errorf("GET directory as non-admin: %d %v, want 403", code, body)
		}
		if code, _ := e.adminDo(t, "POST", "/api/admin/teams", tok, map[string]any{"id": "x", "name": "X"}); code != http.StatusForbidden {
			t.Errorf("POST team as non-admin: %d, want 403", code)
		}
	}
	if _, ok := e.dir.Snapshot().Team("x"); ok {
		t.Fatal("a non-admin made a team")
	}
	code, body := e.adminDo(t, "GET", "/api/admin/directory", rootTok, nil)
	if code != http.StatusOK || body["writable"] != true {
		t.Fatalf("GET directory: %d %v", code, body)
	}
	raw, _ := json.Marshal(body)
	for _, secret := range []string{"$2a$", aliceTok, "password_hash", "token_hash"} {
		if strings.Contains(string(raw), secret) {
			t.Errorf("directory answer contains %q: credentials must not leave the relay", secret)
		}
	}
	emps := body["employees"].([]any)
	alice := emps[0].(map[string]any)
	if alice["id"] != "alice" || alice["seeded"] != true || alice["has_password"] != true || alice["has_token"] != true || alice["version"] != 1.0 || alice["updated_by"] != "root" {
		t.Errorf("alice in the directory: %v", alice)
	}
}

func TestAdminCreateEmployeeSignsIn(t *testing.T) {
	e := adminEnv(t)
	code, body := e.adminDo(t, "POST", "/api/admin/employees", rootTok, map[string]any{
		"id": "carol", "name": "陈卡萝", "role": "agent", "accounts": []string{"acct"}, "teams": []string{"desk-b"}, "password": "carol-password-1",
	})
	if code != http.StatusCreated || body["id"] != "carol" || body["version"] != 1.0 || body["has_password"] != true {
		t.Fatalf("create carol: %d %v", code, body)
	}
	// The change is audited, without the password.
	var rec *AuditRecord
	for _, r := range e.audit.all() {
		if r.Action == relay.AuditAdminAction && r.Target == "employee:carol" {
			rec = &r
		}
	}
	if rec == nil || rec.Employee != "root" || !strings.Contains(rec.Detail, "role=agent") || strings.Contains(rec.Detail, "carol-password-1") {
		t.Fatalf("audit record of the creation: %+v", rec)
	}
	// Carol signs in with her new password at once, and new clients of
	// acct may be assigned to her.
	b := e.signedIn(t, "carol", "carol-password-1")
	if code, me := b.get("/api/me"); code != http.StatusOK || me["name"] != "陈卡萝" {
		t.Fatalf("carol's /api/me: %d %v", code, me)
	}
	if got := e.dir.Snapshot().AutoAssign("acct"); !strings.Contains(strings.Join(got, ","), "carol") {
		t.Errorf("agents of acct: %v, want carol among them", got)
	}

	// Disabled: her session stops working with her next request.
	code, body = e.adminDo(t, "PUT", "/api/admin/employees/carol", rootTok, map[string]any{
		"name": "陈卡萝", "role": "agent", "accounts": []string{"acct"}, "teams": []string{"desk-b"}, "disabled": true, "version": 1,
	})
	if code != http.StatusOK || body["disabled"] != true || body["version"] != 2.0 || body["has_password"] != true {
		t.Fatalf("disable carol: %d %v", code, body)
	}
	if code, _ := b.get("/api/me"); code != http.StatusUnauthorized {
		t.Fatalf("disabled carol's session: %d, want 401", code)
	}
	if status, _, _ := e.browser(t).login("carol", "carol-password-1"); status != http.StatusUnauthorized {
		t.Fatalf("disabled carol signs in: %d, want 401", status)
	}
	if got := e.dir.Snapshot().AutoAssign("acct"); strings.Contains(strings.Join(got, ","), "carol") {
		t.Errorf("agents of acct: %v: a disabled agent gets no new clients", got)
	}
}

func TestAdminTokenAndPassword(t *testing.T) {
	e := adminEnv(t)
	// A new token replaces the configured one.
	code, body := e.adminDo(t, "POST", "/api/admin/employees/alice/token", rootTok, map[string]any{"version": 1})
	tok, _ := body["token"].(string)
	if code != http.StatusOK || len(tok) < 32 {
		t.Fatalf("new token: %d %v", code, body)
	}
	if code, me := e.adminDo(t, "GET", "/api/me", tok, nil); code != http.StatusOK || me["id"] != "alice" {
		t.Fatalf("the new token: %d %v", code, me)
	}
	if code, _ := e.adminDo(t, "GET", "/api/me", aliceTok, nil); code != http.StatusUnauthorized {
		t.Fatalf("the replaced token: %d, want 401", code)
	}
	// The password from the configuration stays until one is set.
	before := e.signedIn(t, "alice", alicePassword)
	if code, body := e.adminDo(t, "POST", "/api/admin/employees/alice/password", rootTok, map[string]any{"password": "short", "version": 2}); code != http.StatusBadRequest || !strings.Contains(body["error"].(string), "at least 10") {
		t.Fatalf("short password: %d %v", code, body)
	}
	if code, body := e.adminDo(t, "POST", "/api/admin/employees/alice/password", rootTok, map[string]any{"password": "alice-new-password", "version": 2}); code != http.StatusOK {
		t.Fatalf("set password: %d %v", code, body)
	}
	if status, _, _ := e.browser(t).login("alice", alicePassword); status != http.StatusUnauthorized {
		t.Fatalf("the old password: %d, want 401", status)
	}
	// A session begun with the old password ends with it (an admin resets
	// a password after a suspected compromise).
	if code, _ := before.get("/api/me"); code != http.StatusUnauthorized {
		t.Fatalf("a session begun before an admin set a new password: %d, want 401", code)
	}
	e.signedIn(t, "alice", "alice-new-password")
	// Neither credential was lost by the other's change, nor by an edit.
	if code, body := e.adminDo(t, "PUT", "/api/admin/employees/alice", rootTok, map[string]any{
		"name": "Alice W.", "role": "agent", "accounts": []string{"acct"}, "teams": []string{"desk-a"}, "version": 3,
	}); code != http.StatusOK {
		t.Fatalf("rename alice: %d %v", code, body)
	}
	if code, _ := e.adminDo(t, "GET", "/api/me", tok, nil); code != http.StatusOK {
		t.Fatalf("token after a rename: %d", code)
	}
	e.signedIn(t, "alice", "alice-new-password")
	// The history shows every version, credentials masked.
	code, body = e.adminDo(t, "GET", "/api/admin/history?kind=employee&id=alice", rootTok, nil)
	vs, _ := body["versions"].([]any)
	if code != http.StatusOK || len(vs) != 4 {
		t.Fatalf("history: %d %v", code, body)
	}
	raw, _ := json.Marshal(body)
	if strings.Contains(string(raw), "$2a$") {
		t.Fatal("the history shows a password hash")
	}
	if last := vs[3].(map[string]any); last["version"] != 4.0 || last["entry"].(map[string]any)["name"] != "Alice W." {
		t.Fatalf("newest version: %v", last)
	}
}

func TestAdminRefusals(t *testing.T) {
	e := adminEnv(t)
	before := e.dirStore.count()
	adminRecords := func() int {
		n := 0
		for _, r := range e.audit.all() {
			if r.Action == relay.AuditAdminAction {
				n++
			}
		}
		return n
	}
	audited := adminRecords()
	put := func(body map[string]any) (int, string) {
		code, out := e.adminDo(t, "PUT", "/api/admin/employees/alice", rootTok, body)
		msg, _ := out["error"].(string)
		return code, msg
	}
	alice := func(mod func(map[string]any)) map[string]any {
		b := map[string]any{"name": "Alice Wang", "role": "agent", "accounts": []string{"acct"}, "teams": []string{"desk-a"}, "version": 1}
		mod(b)
		return b
	}
	cases := []struct {
		name string
		body map[string]any
		code int
		msg  string
	}{
		{"stale version", alice(func(b map[string]any) { b["version"] = 0 }), http.StatusConflict, "reload"},
		{"unknown role", alice(func(b map[string]any) { b["role"] = "boss" }), http.StatusBadRequest, "not one of"},
		{"unknown team", alice(func(b map[string]any) { b["teams"] = []string{"nope"} }), http.StatusBadRequest, `no team "nope"`},
		{"unknown account", alice(func(b map[string]any) { b["accounts"] = []string{"nope"} }), http.StatusBadRequest, `no account "nope"`},
		{"unknown field", alice(func(b map[string]any) { b["superuser"] = true }), http.StatusBadRequest, "unknown field"},
		{"id changed", alice(func(b map[string]any) { b["id"] = "bob" }), http.StatusBadRequest, "cannot change"},
		{"long name", alice(func(b map[string]any) { b["name"] = strings.Repeat("名", 101) }), http.StatusBadRequest, "at most 100"},
	}
	for _, c := range cases {
		if code, msg := put(c.body); code != c.code || !strings.Contains(msg, c.msg) {
			t.Errorf("%s: %d %q, want %d with %q", c.name, code, msg, c.code, c.msg)
		}
	}
	for _, c := range []struct {
		body map[string]any
		msg  string
	}{
		{map[string]any{"id": "bad id!", "name": "x", "role": "agent"}, "letters, digits"},
		{map[string]any{"id": "alice", "name": "x", "role": "agent"}, "exists already"},
	} {
		if code, out := e.adminDo(t, "POST", "/api/admin/employees", rootTok, c.body); code != http.StatusBadRequest || !strings.Contains(out["error"].(string), c.msg) {
			t.Errorf("create %v: %d %v, want 400 with %q", c.body, code, out, c.msg)
		}
	}
	// The last admin cannot demote or disable themselves.
	code, out := e.adminDo(t, "PUT", "/api/admin/employees/root", rootTok, map[string]any{"name": "Root", "role": "agent", "version": 0})
	if code != http.StatusBadRequest || !strings.Contains(out["error"].(string), "last enabled admin") {
		t.Errorf("demoting the last admin: %d %v", code, out)
	}
	// A team with members cannot be deleted.
	code, out = e.adminDo(t, "DELETE", "/api/admin/teams/desk-a?version=0", rootTok, nil)
	if code != http.StatusBadRequest || !strings.Contains(out["error"].(string), "move them first") {
		t.Errorf("deleting a team with members: %d %v", code, out)
	}
	if got := e.dirStore.count(); got != before {
		t.Fatalf("refused changes archived %d records", got-before)
	}
	if got := adminRecords(); got != audited {
		t.Fatalf("refused changes left %d audit records: only changes made are audited", got-audited)
	}
	if a, _ := e.dir.Snapshot().Employee("alice"); a.Role != RoleAgent || a.Version != 1 {
		t.Fatalf("alice after refusals: %+v", a)
	}

	// No audit record, no change.
	e.audit.fail(errors.New("archive down"))
	code, msg := put(alice(func(b map[string]any) { b["role"] = "supervisor" }))
	e.audit.fail(nil)
	if code != http.StatusServiceUnavailable || !strings.Contains(msg, "nothing was changed") {
		t.Fatalf("change without an audit record: %d %q", code, msg)
	}
	// The archive refusing the change leaves the directory as it was.
	e.dirStore.mu.Lock()
	e.dirStore.err = errors.New("clickhouse down")
	e.dirStore.mu.Unlock()
	code, _ = put(alice(func(b map[string]any) { b["role"] = "supervisor" }))
	e.dirStore.mu.Lock()
	e.dirStore.err = nil
	e.dirStore.mu.Unlock()
	if code != http.StatusServiceUnavailable {
		t.Fatalf("change with the archive down: %d, want 503", code)
	}
	if a, _ := e.dir.Snapshot().Employee("alice"); a.Role != RoleAgent || e.dirStore.count() != before {
		t.Fatalf("alice after failed changes: %+v (%d records)", a, e.dirStore.count()-before)
	}
}

func TestAdminTeamsAndAccounts(t *testing.T) {
	e := adminEnv(t)
	code, body := e.adminDo(t, "POST", "/api/admin/teams", rootTok, map[string]any{"id": "desk-c", "name": "理财三组"})
	if code != http.StatusCreated || body["version"] != 1.0 {
		t.Fatalf("create team: %d %v", code, body)
	}
	if code, body := e.adminDo(t, "PUT", "/api/admin/teams/desk-c", rootTok, map[string]any{"name": "Desk C", "version": 1}); code != http.StatusOK || body["name"] != "Desk C" {
		t.Fatalf("rename team: %d %v", code, body)
	}
	if code, _ := e.adminDo(t, "DELETE", "/api/admin/teams/desk-c?version=1", rootTok, nil); code != http.StatusConflict {
		t.Fatalf("delete with a stale version: %d, want 409", code)
	}
	if code, body := e.adminDo(t, "DELETE", "/api/admin/teams/desk-c?version=2", rootTok, nil); code != http.StatusNoContent {
		t.Fatalf("delete team: %d %v", code, body)
	}
	code, body = e.adminDo(t, "GET", "/api/teams", aliceTok, nil)
	raw, _ := json.Marshal(body)
	if code != http.StatusOK || strings.Contains(string(raw), "desk-c") || !strings.Contains(string(raw), `"members":["alice","lead"]`) {
		t.Fatalf("teams after the deletion: %d %s", code, raw)
	}
	code, body = e.adminDo(t, "PUT", "/api/admin/accounts/acct", rootTok, map[string]any{"name": "财富管理", "version": 0})
	if code != http.StatusOK || body["name"] != "财富管理" || len(body["agents"].([]any)) != 2 {
		t.Fatalf("rename account: %d %v", code, body)
	}
	if code, body := e.adminDo(t, "PUT", "/api/admin/accounts/nope", rootTok, map[string]any{"name": "x"}); code != http.StatusNotFound || !strings.Contains(body["error"].(string), "configuration") {
		t.Fatalf("unknown account: %d %v", code, body)
	}
}

func TestTeamSupervisorSeesOnlyTheTeam(t *testing.T) {
	e := adminEnv(t)
	const leadTok = "lead-token-0123456789ab"
	e.history.add(relay.Message{ID: "m-a", Conv: "acct:c-alice", Account: "acct", Client: "c-alice", Direction: relay.Inbound, Kind: relay.KindText, Text: "a", Seq: 1, Employee: "alice", AcceptedAt: time.Now()})
	e.history.add(relay.Message{ID: "m-b", Conv: "acct:c-bob", Account: "acct", Client: "c-bob", Direction: relay.Inbound, Kind: relay.KindText, Text: "b", Seq: 1, Employee: "bob", AcceptedAt: time.Now()})
	e.history.add(relay.Message{ID: "m-n", Conv: "acct:c-none", Account: "acct", Client: "c-none", Direction: relay.Inbound, Kind: relay.KindText, Text: "n", Seq: 1, AcceptedAt: time.Now()})

	convs := func(tok, query string) (int, []string) {
		code, body := e.adminDo(t, "GET", "/api/conversations?status=all"+query, tok, nil)
		var out []string
		list, _ := body["conversations"].([]any)
		for _, c := range list {
			out = append(out, c.(map[string]any)["conv"].(string))
		}
		return code, out
	}
	if code, got := convs(leadTok, ""); code != http.StatusOK || strings.Join(got, ",") != "acct:c-alice" {
		t.Fatalf("team supervisor's inbox: %d %v, want only alice's", code, got)
	}
	if code, got := convs(supTok, ""); code != http.StatusOK || len(got) != 3 {
		t.Fatalf("inbox of the supervisor granted all teams: %d %v, want all three (nobody's too)", code, got)
	}
	if code, got := convs(supTok, "&team=desk-a"); code != http.StatusOK || strings.Join(got, ",") != "acct:c-alice" {
		t.Fatalf("team filter: %d %v", code, got)
	}
	if code, _ := convs(supTok, "&team=nope"); code != http.StatusBadRequest {
		t.Fatalf("unknown team filter: %d, want 400", code)
	}
	if code, _ := e.adminDo(t, "GET", "/api/conversations/acct:c-bob/messages", leadTok, nil); code != http.StatusForbidden {
		t.Fatalf("team supervisor opening another team's conversation: %d, want 403", code)
	}
	if code, _ := e.adminDo(t, "GET", "/api/conversations/acct:c-none/messages", leadTok, nil); code != http.StatusForbidden {
		t.Fatalf("team supervisor opening a conversation nobody holds: %d, want 403", code)
	}
	if code, _ := e.adminDo(t, "GET", "/api/conversations/acct:c-alice/messages", leadTok, nil); code != http.StatusOK {
		t.Fatalf("team supervisor opening the team's conversation: %d", code)
	}
	if code, _ := e.adminDo(t, "POST", "/api/conversations/acct:c-bob/resolve", leadTok, map[string]any{"key": "k1"}); code != http.StatusForbidden {
		t.Fatalf("team supervisor resolving another team's conversation: %d, want 403", code)
	}

	// Live: only the team's messages reach the team supervisor's socket.
	ws := e.dial(t, leadTok)
	frames := readFrames(ws, FrameMessage)
	e.publish(relay.Message{ID: "m-b2", Conv: "acct:c-bob", Account: "acct", Direction: relay.Inbound, Kind: relay.KindText, Text: "b2", Seq: 2, Employee: "bob"})
	e.publish(relay.Message{ID: "m-a2", Conv: "acct:c-alice", Account: "acct", Direction: relay.Inbound, Kind: relay.KindText, Text: "a2", Seq: 2, Employee: "alice"})
	select {
	case f := <-frames:
		if f.Message == nil || f.Message.ID != "m-a2" {
			t.Fatalf("first frame to the team supervisor: %+v, want m-a2 only", f)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the team's message did not reach the team supervisor")
	}

	// Moving lead to desk-b closes the socket: it reconnects with the new
	// rights.
	if code, body := e.adminDo(t, "PUT", "/api/admin/employees/lead", rootTok, map[string]any{"name": "Lead", "role": "supervisor", "teams": []string{"desk-b"}, "version": 0}); code != http.StatusOK {
		t.Fatalf("moving lead: %d %v", code, body)
	}
	deadline := time.After(5 * time.Second)
	for {
		select {
		case _, ok := <-frames:
			if ok {
				continue
			}
		case <-deadline:
			t.Fatal("the socket of a supervisor whose teams changed stayed open")
		}
		break
	}
	if code, got := convs(leadTok, ""); code != http.StatusOK || len(got) != 0 {
		t.Fatalf("lead's inbox after the move: %d %v, want none (desk-b has no conversations)", code, got)
	}
}

// readFrames reads ws until it closes, handing over the frames of type
// typ.
func readFrames(ws *websocket.Conn, typ string) <-chan Frame {
	ch := make(chan Frame, 16)
	go func() {
		defer close(ch)
		for {
			var f Frame
			if err := ws.ReadJSON(&f); err != nil {
				return
			}
			if f.Type == typ {
				ch <- f
			}
		}
	}()
	return ch
}

func TestTeamSupervisorAlerts(t *testing.T) {
	const leadTok = "lead-token-0123456789ab"
	st := &fakeCompliance{hits: []relay.LexiconHit{
		{ID: "hit-a", Account: "acct", Conv: "acct:c-alice", Employee: "alice", Rule: "r", Excerpt: "alice's client"},
		{ID: "hit-b", Account: "acct", Conv: "acct:c-bob", Employee: "bob", Rule: "r", Excerpt: "bob's client"},
	}}
	e := adminEnv(t, func(d *Deps) { d.Compliance = ComplianceDeps{Audit: st, Alerts: st, Holds: legalHolds(t, st)} })
	srv := e.srv
	alerts := func(tok string) []string {
		req, _ := http.NewRequest("GET", srv.URL+"/api/alerts", nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var body struct{ Alerts []relay.LexiconHit }
		json.NewDecoder(resp.Body).Decode(&body)
		var ids []string
		for _, h := range body.Alerts {
			ids = append(ids, h.ID)
		}
		return ids
	}
	if got := alerts(leadTok); strings.Join(got, ",") != "hit-a" {
		t.Errorf("team supervisor's alerts: %v, want only hit-a", got)
	}
	if got := alerts(supTok); len(got) != 2 {
		t.Errorf("supervisor's alerts: %v, want both", got)
	}

	lead := readFrames(e.dial(t, leadTok), FrameAlert)
	e.server.Alert(st.hits[1])
	e.server.Alert(st.hits[0])
	select {
	case f := <-lead:
		if f.Alert == nil || f.Alert.ID != "hit-a" {
			t.Fatalf("first alert frame to the team supervisor: %+v, want hit-a (hit-b is another team's)", f.Alert)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the team's alert did not reach the team supervisor")
	}
}

// Until the directory has been read from the archive nobody gets in: the
// configuration alone might let in someone an admin disabled.
func TestDirectoryNotLoadedRefusesSignIn(t *testing.T) {
	store := &fakeDirectoryStore{err: errors.New("clickhouse unreachable")}
	cfg := Config{PasswordCost: bcrypt.MinCost, Employees: []Employee{
		{ID: "alice", Role: RoleAgent, Token: aliceTok, PasswordHash: testHash(alicePassword)},
	}}
	dir := relay.NewDirectory(store, cfg.Seed(nil), nil, nil)
	if err := dir.Load(context.Background()); err == nil {
		t.Fatal("Load succeeded over a failing store")
	}
	cs := NewServer(cfg, Deps{Bus: &fakeBus{}, History: &fakeHistory{}, Assignments: &fakeAssign{m: map[relay.ConversationID]string{}},
		Sessions: newFakeSessions(), Directory: dir})
	srv := httptest.NewServer(cs.Handler())
	t.Cleanup(srv.Close)
	e := &consoleEnv{srv: srv}
	if code, body := e.do(t, "GET", "/api/me", aliceTok, "", nil); code != http.StatusServiceUnavailable || !strings.Contains(body["error"].(string), "try again") {
		t.Fatalf("token while the directory is not loaded: %d %v, want 503", code, body)
	}
	if status, body, _ := e.browser(t).login("alice", alicePassword); status != http.StatusServiceUnavailable || !strings.Contains(body["error"].(string), "not loaded") {
		t.Fatalf("sign-in while the directory is not loaded: %d %v, want 503", status, body)
	}
	// The archive answers again: the next load lets her in.
	store.mu.Lock()
	store.err = nil
	store.mu.Unlock()
	if err := dir.Load(context.Background()); err != nil {
		t.Fatal(err)
	}
	if code, _ := e.do(t, "GET", "/api/me", aliceTok, "", nil); code != http.StatusOK {
		t.Fatalf("token once the directory is loaded: %d", code)
	}
	if status, _, _ := e.browser(t).login("alice", alicePassword); status != http.StatusOK {
		t.Fatalf("sign-in once the directory is loaded: %d", status)
	}
}

// A team supervisor's inbox asks the archive for the team's
// conversations, so other teams' newer ones do not crowd them out of the
// page.
func TestTeamSupervisorInboxNotCrowdedOut(t *testing.T) {
	e := adminEnv(t)
	const leadTok = "lead-token-0123456789ab"
	old := time.Now().Add(-time.Hour)
	e.history.add(relay.Message{ID: "m-a", Conv: "acct:c-alice", Account: "acct", Client: "c-alice", Direction: relay.Inbound, Kind: relay.KindText, Text: "a", Seq: 1, Employee: "alice", AcceptedAt: old})
	for i := range inboxLimit + 5 {
		conv := relay.ConversationID(fmt.Sprintf("acct:c-bob-%d", i))
		e.assign.Set(context.Background(), conv, "bob")
		e.history.add(relay.Message{ID: fmt.Sprintf("m-b-%d", i), Conv: conv, Account: "acct", Client: string(conv[5:]), Direction: relay.Inbound,
			Kind: relay.KindText, Text: "b", Seq: 1, Employee: "bob", AcceptedAt: time.Now()})
	}
	for _, query := range []string{"", "&team=desk-a"} {
		code, body := e.adminDo(t, "GET", "/api/conversations?status=all"+query, leadTok, nil)
		list, _ := body["conversations"].([]any)
		if code != http.StatusOK || len(list) != 1 || list[0].(map[string]any)["conv"] != "acct:c-alice" {
			t.Fatalf("team supervisor's inbox%s behind %d newer conversations of another team: %d, %d listed", query, inboxLimit+5, code, len(list))
		}
	}
}

func TestAdminHandover(t *testing.T) {
	e := adminEnv(t)
	const leadTok = "lead-token-0123456789ab"
	for i, conv := range []relay.ConversationID{"acct:c-alice", "acct:c-alice2"} {
		e.assign.Set(context.Background(), conv, "alice")
		e.history.add(relay.Message{ID: fmt.Sprintf("m-h%d", i), Conv: conv, Account: "acct", Client: string(conv[5:]), Direction: relay.Inbound,
			Kind: relay.KindText, Text: "hi", Seq: 1, Employee: "alice", AcceptedAt: time.Now()})
	}
	e.history.add(relay.Message{ID: "m-hb", Conv: "acct:c-bob", Account: "acct", Client: "c-bob", Direction: relay.Inbound,
		Kind: relay.KindText, Text: "hi", Seq: 1, Employee: "bob", AcceptedAt: time.Now()})

	for _, c := range []struct {
		tok, path string
		body      map[string]any
		code      int
	}{
		{leadTok, "/api/admin/employees/alice/handover", map[string]any{"to": "bob"}, http.StatusForbidden},
		{rootTok, "/api/admin/employees/nobody/handover", map[string]any{"to": "bob"}, http.StatusNotFound},
		{rootTok, "/api/admin/employees/alice/handover", map[string]any{"to": "lead"}, http.StatusBadRequest},
		{rootTok, "/api/admin/employees/alice/handover", map[string]any{"to": "alice"}, http.StatusBadRequest},
		{rootTok, "/api/admin/employees/alice/handover", map[string]any{}, http.StatusBadRequest},
	} {
		if code, out := e.adminDo(t, "POST", c.path, c.tok, c.body); code != c.code {
			t.Errorf("%s %v: %d %v, want %d", c.path, c.body, code, out, c.code)
		}
	}
	if owner, _ := e.assign.Get(context.Background(), "acct:c-alice"); owner != "alice" {
		t.Fatalf("a refused handover moved a conversation to %q", owner)
	}

	code, out := e.adminDo(t, "POST", "/api/admin/employees/alice/handover", rootTok, map[string]any{"to": "bob", "note": "Alice 离职"})
	moved, _ := out["moved"].([]any)
	if code != http.StatusOK || len(moved) != 2 {
		t.Fatalf("handover: %d %v", code, out)
	}
	for _, conv := range []relay.ConversationID{"acct:c-alice", "acct:c-alice2"} {
		if owner, _ := e.assign.Get(context.Background(), conv); owner != "bob" {
			t.Errorf("%s held by %q after the handover, want bob", conv, owner)
		}
		msgs, _ := e.history.Since(context.Background(), conv, 0, 100)
		if len(msgs) == 0 {
			t.Fatalf("%s: no messages", conv)
		}
		last := msgs[len(msgs)-1]
		if last.Kind != relay.KindTransfer || last.Attrs[relay.AttrFrom] != "alice" || last.Attrs[relay.AttrTo] != "bob" ||
			last.Attrs[relay.AttrBy] != "root" || last.Text != "Alice 离职" {
			t.Errorf("%s: last archived message %+v, want root's transfer from alice to bob with the note", conv, last)
		}
	}
	var admin, transfers int
	for _, r := range e.audit.all() {
		switch {
		case r.Action == relay.AuditAdminAction && r.Target == "employee:alice" && strings.Contains(r.Detail, "handover of 2 conversations to bob"):
			admin++
		case r.Action == AuditTransfer && r.Employee == "root" && r.Target == "bob":
			transfers++
		}
	}
	if admin != 1 || transfers != 2 {
		t.Fatalf("audit: %d handover and %d transfer records, want 1 and 2", admin, transfers)
	}
	// Done already: a second handover finds nothing left.
	if code, out := e.adminDo(t, "POST", "/api/admin/employees/alice/handover", rootTok, map[string]any{"to": "bob"}); code != http.StatusOK || len(out["moved"].([]any)) != 0 {
		t.Fatalf("second handover: %d %v", code, out)
	}
}
