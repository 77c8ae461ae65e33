package e2e

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/wechat-relay/wechat-relay/configs"
	"github.com/wechat-relay/wechat-relay/console"
	"github.com/wechat-relay/wechat-relay/relay"
	"github.com/wechat-relay/wechat-relay/storage/testenv"
)

// Losing the assignment store widens nothing: with the assignments gone
// from Redis, a conversation is still its owner's, as the archive says
// (here the agent it was transferred to, not the one its hash picks).
// The owner's team supervisor still reads it, another team's does not,
// and the client's next message goes to the owner.
func TestE2EAssignmentsLostAreRebuiltFromTheArchive(t *testing.T) {
	t.Parallel()
	ch, rd := testenv.ClickHouseAddr(t), testenv.RedisAddr(t)
	db, prefix := testenv.UniqueName("e2e"), testenv.UniqueName("wr")+":"
	cfg := e2eConfig(t, ch, rd, db, prefix, t.TempDir())
	const bobTok, leadATok, leadBTok = "bob-e2e-token-0123456789", "leada-e2e-token-0123456789", "leadb-e2e-token-0123456789"
	cfg.Console.Teams = []console.Team{{ID: "ta"}, {ID: "tb"}}
	cfg.Console.Employees[0].Teams = []string{"ta"}
	cfg.Console.Employees = append(cfg.Console.Employees,
		configs.EmployeeConfig{ID: "bob", Role: console.RoleAgent, Accounts: []string{"acme"}, Teams: []string{"tb"}, Token: bobTok},
		configs.EmployeeConfig{ID: "leada", Role: console.RoleSupervisor, Teams: []string{"ta"}, Token: leadATok},
		configs.EmployeeConfig{ID: "leadb", Role: console.RoleSupervisor, Teams: []string{"tb"}, Token: leadBTok})
	r := startRelay(t, cfg)
	sup := r.dial(t, supTok)

	now := time.Now()
	if status, _ := r.post(t, safeCallback(t, "acme", textXML("oLost", "70001", "你好", now), now)); status != 200 {
		t.Fatal("first callback refused")
	}
	f, ok := readFrame(t, sup, 10*time.Second)
	if !ok || f.Message == nil {
		t.Fatalf("first frame: %+v", f)
	}
	hashed := f.Message.Employee // the agent the conversation's hash picks
	owner, ownerLead, otherLead := "bob", leadBTok, leadATok
	if hashed == "bob" {
		owner, ownerLead, otherLead = "alice", leadATok, leadBTok
	}
	const conv = "acme:oLost"
	if code, body := r.api(t, "POST", "/api/conversations/"+conv+"/transfer", supTok, map[string]any{"to": owner, "key": "t1"}); code != http.StatusAccepted {
		t.Fatalf("transfer: %d %v", code, body)
	}
	for {
		f, ok := readFrame(t, sup, 10*time.Second)
		if !ok {
			t.Fatal("the transfer was not archived")
		}
		if f.Message != nil && f.Message.Kind == string(relay.KindTransfer) {
			break
		}
	}

	// Redis loses the assignments (flushed, or restarted empty).
	rdb := redis.NewClient(&redis.Options{Addr: rd})
	defer rdb.Close()
	if err := rdb.Del(context.Background(), prefix+"assign").Err(); err != nil {
		t.Fatal(err)
	}

	if code, _ := r.api(t, "GET", "/api/conversations/"+conv+"/messages", otherLead, nil); code != http.StatusForbidden {
		t.Errorf("another team's supervisor, with the assignments lost: %d, want 403", code)
	}
	if code, _ := r.api(t, "GET", "/api/conversations/"+conv+"/messages", ownerLead, nil); code != http.StatusOK {
		t.Errorf("the owner's team supervisor, with the assignments lost: %d, want 200", code)
	}
	later := now.Add(time.Second)
	if status, _ := r.post(t, safeCallback(t, "acme", textXML("oLost", "70002", "还在吗", later), later)); status != 200 {
		t.Fatal("second callback refused")
	}
	for {
		f, ok := readFrame(t, sup, 10*time.Second)
		if !ok {
			t.Fatal("the second message did not arrive")
		}
		if f.Message != nil && f.Message.WxMsgID == "70002" {
			if f.Message.Employee != owner {
				t.Fatalf("the next message went to %q, want %s, its owner before the assignments were lost (%s is the hash's pick)", f.Message.Employee, owner, hashed)
			}
			break
		}
	}
}
