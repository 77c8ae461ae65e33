package relay

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestStaffActionsAreArchivedNeverSent(t *testing.T) {
	oh := newOutboxHarness(t)
	ctx := context.Background()
	oh.clientWrites(t, "c1", "1")
	conv := Conversation("acct", "c1")
	owner, _ := oh.assign.Get(ctx, conv)
	if owner == "" {
		t.Fatal("conversation not assigned by routing")
	}
	other := "bob"
	if owner == "bob" {
		other = "alice"
	}
	staff, err := NewStaff(oh.p, oh.assign, nil)
	if err != nil {
		t.Fatal(err)
	}

	noteID, err := staff.Act(ctx, StaffAction{Kind: KindNote, Conv: conv, By: "sup", Key: "n1", Text: "客户要求回电"})
	if err != nil {
		t.Fatal(err)
	}
	// Routing happens when the batch is archived: let the note be filed
	// before the transfer changes the assignment.
	oh.waitArchived(t, noteID)
	trID, err := staff.Act(ctx, StaffAction{Kind: KindTransfer, Conv: conv, By: owner, Key: "t1", To: other, Text: "休假"})
	if err != nil {
		t.Fatal(err)
	}
	resID, err := staff.Act(ctx, StaffAction{Kind: KindResolve, Conv: conv, By: other, Key: "r1"})
	if err != nil {
		t.Fatal(err)
	}
	// Retries with the same keys are archived once.
	for _, a := range []StaffAction{
		{Kind: KindNote, Conv: conv, By: "sup", Key: "n1", Text: "客户要求回电"},
		{Kind: KindTransfer, Conv: conv, By: owner, Key: "t1", To: other},
	} {
		id, err := staff.Act(ctx, a)
		if err != nil {
			t.Fatal(err)
		}
		if id != StaffID(conv, a.Kind, a.Key) {
			t.Fatalf("retry id %s", id)
		}
	}
	oh.waitArchived(t, noteID)
	oh.waitArchived(t, trID)
	oh.waitArchived(t, resID)
	time.Sleep(50 * time.Millisecond) // anything wrongly queued for sending would go now

	if n := oh.sender.calls(); n != 0 {
		t.Fatalf("internal messages reached the sender %d times", n)
	}
	msgs, _ := oh.archive.Since(ctx, conv, 0, 100)
	if len(msgs) != 4 {
		t.Fatalf("archived %d messages, want the client's and three internal ones: %+v", len(msgs), msgs)
	}
	for _, id := range []string{noteID, trID, resID} {
		if n := oh.archive.count(id); n != 1 {
			t.Fatalf("%s archived %d times", id, n)
		}
	}
	byID := map[string]Message{}
	for _, m := range msgs {
		byID[m.ID] = m
	}
	note, tr, res := byID[noteID], byID[trID], byID[resID]
	if note.Direction != Internal || note.Kind != KindNote || note.Text != "客户要求回电" || note.Attrs[AttrBy] != "sup" || note.Employee != owner {
		t.Fatalf("note archived as %+v", note)
	}
	if tr.Direction != Internal || tr.Attrs[AttrFrom] != owner || tr.Attrs[AttrTo] != other || tr.Attrs[AttrBy] != owner || tr.Text != "休假" {
		t.Fatalf("transfer archived as %+v", tr)
	}
	// Routing files the transfer, and what follows, under the new assignee.
	if tr.Employee != other || res.Employee != other {
		t.Fatalf("transfer filed under %q, resolve under %q; want %q", tr.Employee, res.Employee, other)
	}
	if got, _ := oh.assign.Get(ctx, conv); got != other {
		t.Fatalf("assigned to %q after the transfer, want %q", got, other)
	}
	// Published for the consoles like every archived message.
	published := map[string]bool{}
	for _, e := range oh.bus.published() {
		if e.Message != nil {
			published[e.Message.ID] = true
		}
	}
	for _, id := range []string{noteID, trID, resID} {
		if !published[id] {
			t.Fatalf("%s not published", id)
		}
	}
	// Internal messages do not count against WeChat's per-interaction quota.
	w, err := oh.ob.Window(ctx, conv)
	if err != nil || !w.Open || w.SendsLeft != 5 {
		t.Fatalf("window after staff actions: %+v, %v", w, err)
	}
}

func TestStaffActionValidation(t *testing.T) {
	staff, err := NewStaff(acceptFunc(func(context.Context, Message) error { return nil }), &memAssign{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	conv := Conversation("acct", "c1")
	long := strings.Repeat("长", MaxNoteBytes)
	for name, a := range map[string]StaffAction{
		"bad key":         {Kind: KindNote, Conv: conv, By: "a", Key: "no spaces", Text: "x"},
		"no key":          {Kind: KindResolve, Conv: conv, By: "a"},
		"bad conv":        {Kind: KindResolve, Conv: "nocolon", By: "a", Key: "k"},
		"nobody":          {Kind: KindResolve, Conv: conv, Key: "k"},
		"empty note":      {Kind: KindNote, Conv: conv, By: "a", Key: "k"},
		"long note":       {Kind: KindNote, Conv: conv, By: "a", Key: "k", Text: long},
		"invalid utf8":    {Kind: KindNote, Conv: conv, By: "a", Key: "k", Text: "\xff"},
		"transfer nobody": {Kind: KindTransfer, Conv: conv, By: "a", Key: "k"},
		"unknown kind":    {Kind: KindText, Conv: conv, By: "a", Key: "k", Text: "x"},
	} {
		if _, err := staff.Act(context.Background(), a); !errors.Is(err, ErrBadAction) {
			t.Errorf("%s: %v, want ErrBadAction", name, err)
		}
	}
}

func TestStaffTransferAssignsBeforeArchiving(t *testing.T) {
	assign := &memAssign{}
	assign.Set(context.Background(), Conversation("acct", "c1"), "alice")
	var seen string
	fail := errors.New("spool full")
	staff, _ := NewStaff(acceptFunc(func(ctx context.Context, m Message) error {
		seen, _ = assign.Get(ctx, m.Conv)
		return fail
	}), assign, nil)
	_, err := staff.Act(context.Background(), StaffAction{Kind: KindTransfer, Conv: Conversation("acct", "c1"), By: "sup", Key: "k", To: "bob"})
	if !errors.Is(err, fail) {
		t.Fatalf("error %v", err)
	}
	if seen != "bob" {
		t.Fatalf("assignment when archiving was %q, want bob", seen)
	}
}

type acceptFunc func(context.Context, Message) error

func (f acceptFunc) Accept(ctx context.Context, m Message) error { return f(ctx, m) }
