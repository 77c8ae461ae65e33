package relay

import (
	"context"
	"hash/fnv"
	"testing"
)

// With the assignment store empty (Redis flushed, a restart in memory
// mode), routing and access ask the archive: the conversation stays
// with the agent it was last transferred to, or its newest message was
// filed under, not the one its hash picks; a conversation the archive
// knows no owner of stays nobody's; a new one is assigned as ever.
func TestRecoveredAssignments(t *testing.T) {
	ctx := context.Background()
	emps := map[string][]string{"acct": {"alice", "bob"}}
	hashPick := func(conv ConversationID) string {
		h := fnv.New32a()
		h.Write([]byte(conv))
		return emps["acct"][h.Sum32()%2]
	}
	other := func(emp string) string {
		if emp == "alice" {
			return "bob"
		}
		return "alice"
	}
	const conv, silent, fresh = ConversationID("acct:c1"), ConversationID("acct:c2"), ConversationID("acct:c3")
	owner := other(hashPick(conv))
	arch := &memArchive{rows: []Message{
		{ID: "1", Conv: conv, Seq: 1, Direction: Inbound, Kind: KindText, Employee: hashPick(conv)},
		{ID: "2", Conv: conv, Seq: 2, Direction: Internal, Kind: KindTransfer, Employee: owner,
			Attrs: map[string]string{AttrFrom: hashPick(conv), AttrTo: owner}},
		{ID: "3", Conv: conv, Seq: 3, Direction: Outbound, Kind: KindText}, // the bot's, filed under nobody
		{ID: "4", Conv: silent, Seq: 1, Direction: Inbound, Kind: KindText},
	}}
	store := &bulkAssign{}
	a := NewRecoveredAssignments(store, arch, nil)
	if got, err := a.Get(ctx, conv); err != nil || got != owner {
		t.Fatalf("Get(%s) = %q, %v; want %s, its owner in the archive", conv, got, err, owner)
	}
	if got, _ := store.memAssign.Get(ctx, conv); got != owner {
		t.Errorf("the store after the rebuild: %q, want %s put back", got, owner)
	}
	if got, err := a.Get(ctx, silent); err != nil || got != "" {
		t.Errorf("Get(%s) = %q, %v; want nobody (the archive names none)", silent, got, err)
	}

	// The router, over a store emptied again, keeps the client with the
	// owner; a batch reads the store at once and rebuilds what is missing.
	store2 := &bulkAssign{}
	r := NewRouter(NewRecoveredAssignments(store2, arch, nil), emps)
	got, err := r.RouteBatch(ctx, []Message{
		{ID: "5", Account: "acct", Conv: conv, Direction: Inbound, Kind: KindText},
		{ID: "6", Account: "acct", Conv: fresh, Direction: Inbound, Kind: KindText},
	})
	if err != nil || got[0] != owner || got[1] != hashPick(fresh) {
		t.Fatalf("routed to %v, %v; want %s (the archive's owner, not the hash's %s) and %s (a new conversation, by hash)",
			got, err, owner, hashPick(conv), hashPick(fresh))
	}

	// An archive that cannot be read is an error, never "nobody".
	arch.mu.Lock()
	arch.down = true
	arch.mu.Unlock()
	if _, err := NewRecoveredAssignments(&memAssign{}, arch, nil).Get(ctx, conv); err == nil {
		t.Fatal("Get with the store empty and the archive down: no error")
	}
}
