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
