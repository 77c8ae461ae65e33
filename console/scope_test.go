package console

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/wechat-relay/wechat-relay/relay"
)

// A supervisor in no team and without the all-teams grant sees nothing
// but their own: no inbox, no conversation, no search or export hit, no
// alert, no live frame. Scope is granted, never assumed from an empty
// team list.
func TestSupervisorWithoutTeamsOrGrantSeesNothing(t *testing.T) {
	const lonelyTok = "lonely-token-0123456789ab"
	arch := memoryArchive(t)
	now := time.Now().UTC()
	var msgs []relay.Message
	for i, owner := range []string{"alice", "bob", ""} {
		client := "c-" + owner
		if owner == "" {
			client = "c-nobody"
		}
		msgs = append(msgs, relay.Message{ID: "m-" + client, Conv: relay.Conversation("acct", client), Account: "acct", Client: client,
			Seq: 1, Direction: relay.Inbound, Kind: relay.KindText, Text: "退款 " + client, AcceptedAt: now.Add(time.Duration(i) * time.Second), Employee: owner})
	}
	if err := arch.Insert(context.Background(), msgs); err != nil {
		t.Fatal(err)
	}
	st := &fakeCompliance{hits: []relay.LexiconHit{
		{ID: "hit-a", Account: "acct", Conv: "acct:c-alice", Employee: "alice", Rule: "r"},
		{ID: "hit-n", Account: "acct", Conv: "acct:c-nobody", Employee: "", Rule: "r"},
	}}
	e := newConsoleEnv(t, Config{Employees: []Employee{{ID: "lonely", Name: "Lonely", Role: RoleSupervisor, Token: lonelyTok}}},
		func(d *Deps) {
			d.Search, d.Export = arch, arch
			d.Compliance = ComplianceDeps{Audit: st, Alerts: st}
		})
	for _, m := range msgs {
		e.history.add(m)
	}

	ws := e.dial(t, lonelyTok)

	code, body := e.adminDo(t, "GET", "/api/conversations?status=all", lonelyTok, nil)
	if list, _ := body["conversations"].([]any); code != http.StatusOK || len(list) != 0 {
		t.Errorf("inbox: %d %v, want none", code, body)
	}
	for _, conv := range []string{"acct:c-alice", "acct:c-bob", "acct:c-nobody"} {
		if code, _ := e.adminDo(t, "GET", "/api/conversations/"+conv+"/messages", lonelyTok, nil); code != http.StatusForbidden {
			t.Errorf("opening %s: %d, want 403", conv, code)
		}
	}
	code, body = e.adminDo(t, "GET", "/api/search?text="+"%E9%80%80%E6%AC%BE", lonelyTok, nil)
	if list, _ := body["messages"].([]any); code != http.StatusOK || len(list) != 0 {
		t.Errorf("search: %d %v, want no message", code, body)
	}
	code, body = e.adminDo(t, "GET", "/api/alerts", lonelyTok, nil)
	if list, _ := body["alerts"].([]any); code != http.StatusOK || len(list) != 0 {
		t.Errorf("alerts: %d %v, want none", code, body)
	}
	code, body = e.adminDo(t, "POST", "/api/exports", lonelyTok, map[string]string{"conv": "acct:c-alice"})
	if code != http.StatusAccepted {
		t.Fatalf("export: %d %v", code, body)
	}
	job, _ := body["id"].(string)
	deadline := time.Now().Add(10 * time.Second)
	for body["state"] == "running" && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
		_, body = e.adminDo(t, "GET", "/api/exports/"+job, lonelyTok, nil)
	}
	raw, _ := json.Marshal(body["counts"])
	if body["state"] != "done" || !strings.Contains(string(raw), `"messages":0`) {
		t.Errorf("export of alice's conversation: %v, want done with no message", body)
	}

	// Live: neither messages nor alerts reach the socket.
	e.publish(msg("acct:c-alice", 2, "alice"))
	e.publish(msg("acct:c-bob", 2, "bob"))
	e.publish(msg("acct:c-nobody", 2, ""))
	e.server.Alert(st.hits[0])
	e.server.Alert(st.hits[1])
	expectNothing(t, ws)
}

// The all-teams grant is given and taken through the Admin API like any
// directory change: audited, and in effect on the next request.
func TestAllTeamsGrantThroughTheAdminAPI(t *testing.T) {
	e := adminEnv(t)
	code, body := e.adminDo(t, "POST", "/api/admin/employees", rootTok, map[string]any{"id": "sue", "name": "Sue", "role": "supervisor"})
	if code != http.StatusCreated || body["all_teams"] != false {
		t.Fatalf("creating sue: %d %v", code, body)
	}
	// Her token, as an admin would issue it; then she sees nothing.
	code, body = e.adminDo(t, "POST", "/api/admin/employees/sue/token", rootTok, map[string]any{"version": 1})
	tok, _ := body["token"].(string)
	if code != http.StatusOK || tok == "" {
		t.Fatalf("sue's token: %d %v", code, body)
	}
	if code, _ := e.adminDo(t, "GET", "/api/conversations/acct:c-bob/messages", tok, nil); code != http.StatusForbidden {
		t.Fatalf("sue without the grant opening bob's conversation: %d, want 403", code)
	}
	code, body = e.adminDo(t, "PUT", "/api/admin/employees/sue", rootTok, map[string]any{"name": "Sue", "role": "supervisor", "all_teams": true, "version": 2})
	if code != http.StatusOK || body["all_teams"] != true {
		t.Fatalf("granting all teams: %d %v", code, body)
	}
	if code, _ := e.adminDo(t, "GET", "/api/conversations/acct:c-bob/messages", tok, nil); code != http.StatusOK {
		t.Fatalf("sue with the grant opening bob's conversation: %d, want 200", code)
	}
	var audited bool
	for _, r := range e.audit.all() {
		audited = audited || (r.Target == "employee:sue" && strings.Contains(r.Detail, "all_teams false→true"))
	}
	if !audited {
		t.Errorf("no audit record names the grant: %+v", e.audit.all())
	}
	// A password change keeps the grant.
	if code, body := e.adminDo(t, "POST", "/api/admin/employees/sue/password", rootTok, map[string]any{"password": "a-long-password-1", "version": 3}); code != http.StatusOK || body["all_teams"] != true {
		t.Fatalf("setting sue's password: %d %v, want the grant kept", code, body)
	}
	// Taking the grant back closes her socket: it reconnects with the
	// narrower rights.
	frames := readFrames(e.dial(t, tok), FrameMessage)
	if code, body := e.adminDo(t, "PUT", "/api/admin/employees/sue", rootTok, map[string]any{"name": "Sue", "role": "supervisor", "version": 4}); code != http.StatusOK || body["all_teams"] != false {
		t.Fatalf("taking the grant back: %d %v", code, body)
	}
	deadline := time.After(5 * time.Second)
	for open := true; open; {
		select {
		case _, open = <-frames:
		case <-deadline:
			t.Fatal("the socket of a supervisor whose all-teams grant was taken back stayed open")
		}
	}
	if code, _ := e.adminDo(t, "GET", "/api/conversations/acct:c-bob/messages", tok, nil); code != http.StatusForbidden {
		t.Fatalf("sue after the grant was taken back: %d, want 403", code)
	}
	// The grant is a supervisor's only.
	code, body = e.adminDo(t, "PUT", "/api/admin/employees/alice", rootTok, map[string]any{"name": "Alice Wang", "role": "agent", "accounts": []string{"acct"}, "all_teams": true, "version": 1})
	if code != http.StatusBadRequest || !strings.Contains(body["error"].(string), "all_teams") {
		t.Fatalf("granting an agent all teams: %d %v, want 400", code, body)
	}
}
