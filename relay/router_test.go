package relay

import (
	"context"
	"slices"
	"testing"
)

func TestRouter(t *testing.T) {
	ctx := context.Background()
	emps := map[string][]string{"acct": {"alice", "bob", "carol"}}
	tests := []struct {
		name     string
		msg      Message
		before   string // existing assignment
		want     string
		wantSame bool // want whatever auto-assignment picks, stable
	}{
		{name: "subscribe via employee QR", msg: Message{Account: "acct", Conv: "acct:u1", Kind: KindEvent, Event: "subscribe", EventKey: "qrscene_emp:bob"}, want: "bob"},
		{name: "SCAN rebinds", msg: Message{Account: "acct", Conv: "acct:u1", Kind: KindEvent, Event: "SCAN", EventKey: "emp:carol"}, before: "alice", want: "carol"},
		{name: "existing kept", msg: Message{Account: "acct", Conv: "acct:u1", Kind: KindText}, before: "alice", want: "alice"},
		{name: "unknown employee in scene ignored", msg: Message{Account: "acct", Conv: "acct:u1", Kind: KindEvent, Event: "SCAN", EventKey: "emp:mallory"}, before: "alice", want: "alice"},
		{name: "other account's employee ignored", msg: Message{Account: "other", Conv: "other:u1", Kind: KindEvent, Event: "subscribe", EventKey: "qrscene_emp:bob"}, want: ""},
		{name: "first contact auto-assigned", msg: Message{Account: "acct", Conv: "acct:u7", Kind: KindText}, wantSame: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := &memAssign{}
			if tt.before != "" {
				a.Set(ctx, tt.msg.Conv, tt.before)
			}
			got, err := NewRouter(a, emps).Route(ctx, tt.msg)
			if err != nil {
				t.Fatal(err)
			}
			if tt.wantSame {
				again, _ := NewRouter(&memAssign{}, emps).Route(ctx, tt.msg)
				if got == "" || got != again {
					t.Fatalf("auto-assignment %q then %q: want one stable employee", got, again)
				}
				return
			}
			if got != tt.want {
				t.Fatalf("routed to %q, want %q", got, tt.want)
			}
			if stored, _ := a.Get(ctx, tt.msg.Conv); stored != got {
				t.Fatalf("stored %q, returned %q", stored, got)
			}
		})
	}
}

// A conversation held by an employee who was disabled, or removed from
// the directory, goes to an enabled agent with the client's next message.
func TestDirectoryRouterReassignsFromDisabled(t *testing.T) {
	ctx := context.Background()
	store := &memDirectory{}
	d := NewDirectory(store, testSeed(), nil, nil)
	if err := d.Load(ctx); err != nil {
		t.Fatal(err)
	}
	a := &memAssign{}
	r := NewDirectoryRouter(a, d)
	conv := ConversationID("acct:u1")
	a.Set(ctx, conv, "alice")
	if got, _ := r.Route(ctx, Message{Account: "acct", Conv: conv, Kind: KindText}); got != "alice" {
		t.Fatalf("routed to %q while alice serves", got)
	}
	alice, _ := d.Snapshot().Employee("alice")
	alice.Disabled = true
	if _, err := d.UpdateEmployee(ctx, "root", alice, 0, nil); err != nil {
		t.Fatal(err)
	}
	got, err := r.Route(ctx, Message{Account: "acct", Conv: conv, Kind: KindText})
	if err != nil || got != "bob" {
		t.Fatalf("routed to %q (%v) after alice was disabled, want bob, the account's other agent", got, err)
	}
	if stored, _ := a.Get(ctx, conv); stored != "bob" {
		t.Fatalf("assignment %q, want bob", stored)
	}
	// Her QR code binds nobody any more.
	if got, _ := r.Route(ctx, Message{Account: "acct", Conv: "acct:u2", Kind: KindEvent, Event: "SCAN", EventKey: "emp:alice"}); got == "alice" {
		t.Fatal("a disabled agent's QR code still binds clients")
	}
	// Held by someone the directory never had: reassigned too.
	a.Set(ctx, "acct:u3", "ghost")
	if got, _ := r.Route(ctx, Message{Account: "acct", Conv: "acct:u3", Kind: KindText}); got != "bob" {
		t.Fatalf("routed to %q from an unknown holder, want bob", got)
	}
	// Held by an agent made supervisor: reassigned (only agents serve).
	a.Set(ctx, "acct:u4", "bob")
	bob, _ := d.Snapshot().Employee("bob")
	bob.Role = RoleSupervisor
	if _, err := d.UpdateEmployee(ctx, "root", bob, 0, nil); err != nil {
		t.Fatal(err)
	}
	if got, _ := r.Route(ctx, Message{Account: "acct", Conv: "acct:u4", Kind: KindText}); got != "" {
		t.Fatalf("routed to %q with no agent left for acct, want nobody", got)
	}
}

// bulkAssign reads many assignments at once and counts its reads.
type bulkAssign struct {
	memAssign
	gets, bulks int
}

func (a *bulkAssign) Get(ctx context.Context, conv ConversationID) (string, error) {
	a.gets++
	return a.memAssign.Get(ctx, conv)
}

func (a *bulkAssign) GetMany(ctx context.Context, convs []ConversationID) (map[ConversationID]string, error) {
	a.bulks++
	out := map[ConversationID]string{}
	for _, c := range convs {
		if v, _ := a.memAssign.Get(ctx, c); v != "" {
			out[c] = v
		}
	}
	return out, nil
}

// A batch routed at once gives every message the employee Route gives it
// one by one, in order — a QR scan and a transfer in the middle of the
// batch included — with one bulk read and no single ones.
func TestRouteBatchMatchesRoute(t *testing.T) {
	ctx := context.Background()
	batch := func() []Message {
		scan := Message{ID: "s", Account: "acct", Conv: "acct:c2", Kind: KindEvent, Event: "SCAN", EventKey: ScenePrefix + "bob"}
		transfer := Message{ID: "t", Account: "acct", Conv: "acct:c1", Direction: Internal, Kind: KindTransfer, Attrs: map[string]string{AttrTo: "carol"}}
		return []Message{
			text("c1", "1", "a"), text("c2", "2", "b"), text("c3", "3", "c"), scan, text("c2", "4", "d"),
			transfer, text("c1", "5", "e"), text("c3", "6", "f"),
		}
	}
	roster := map[string][]string{"acct": {"alice", "bob", "carol"}}
	one := &memAssign{}
	one.Set(ctx, "acct:c3", "alice")
	var want []string
	r1 := NewRouter(one, roster)
	for _, m := range batch() {
		emp, err := r1.Route(ctx, m)
		if err != nil {
			t.Fatal(err)
		}
		want = append(want, emp)
	}
	bulk := &bulkAssign{}
	bulk.Set(ctx, "acct:c3", "alice")
	got, err := NewRouter(bulk, roster).RouteBatch(ctx, batch())
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, want) {
		t.Fatalf("RouteBatch = %v, Route one by one = %v", got, want)
	}
	if bulk.bulks != 1 || bulk.gets != 0 {
		t.Fatalf("%d bulk reads and %d single reads, want 1 and 0", bulk.bulks, bulk.gets)
	}
	for conv, emp := range map[ConversationID]string{"acct:c1": "carol", "acct:c2": "bob", "acct:c3": "alice"} {
		if a, _ := bulk.memAssign.Get(ctx, conv); a != emp {
			t.Errorf("%s assigned to %q, want %q", conv, a, emp)
		}
	}
}
