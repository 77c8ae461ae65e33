package relay

import (
	"context"
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
