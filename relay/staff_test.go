package relay

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
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
	// Retries (the same request with the same key) are archived once.
	for _, a := range []StaffAction{
		{Kind: KindNote, Conv: conv, By: "sup", Key: "n1", Text: "客户要求回电"},
		{Kind: KindTransfer, Conv: conv, By: owner, Key: "t1", To: other, Text: "休假"},
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
	staff, err := NewStaff(&memRecorder{}, &memAssign{}, nil)
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

// A transfer moves the conversation only with its record: Act itself
// assigns nothing (a transfer that fails to be accepted leaves the
// conversation where it was), and the archive writer hands the
// conversation over as it archives the transfer, filing it under the
// new assignee.
func TestStaffTransferMovesWithItsRecord(t *testing.T) {
	ctx := context.Background()
	conv := Conversation("acct", "c1")
	assign := &memAssign{}
	assign.Set(ctx, conv, "alice")
	fail := errors.New("spool full")
	rec := &memRecorder{accept: func(context.Context, Message) error { return fail }}
	staff, _ := NewStaff(rec, assign, nil)
	if _, err := staff.Act(ctx, StaffAction{Kind: KindTransfer, Conv: conv, By: "sup", Key: "k", To: "bob"}); !errors.Is(err, fail) {
		t.Fatalf("error %v", err)
	}
	if owner, _ := assign.Get(ctx, conv); owner != "alice" || rec.len() != 0 {
		t.Fatalf("after a transfer that was not accepted: assigned to %q, %d records; want alice, none", owner, rec.len())
	}

	h := newHarness(t)
	h.assign.Set(ctx, conv, "alice")
	staff, _ = NewStaff(h.p, h.assign, nil)
	id, err := staff.Act(ctx, StaffAction{Kind: KindTransfer, Conv: conv, By: "sup", Key: "k", To: "bob"})
	if err != nil {
		t.Fatal(err)
	}
	if owner, _ := h.assign.Get(ctx, conv); owner != "alice" {
		t.Fatalf("assigned to %q before the transfer was archived, want alice", owner)
	}
	h.start(t)
	waitStored(t, h.archive, id)
	if owner, _ := h.assign.Get(ctx, conv); owner != "bob" {
		t.Fatalf("assigned to %q after the transfer was archived, want bob", owner)
	}
	for _, e := range h.waitEvents(t, 1) {
		if e.Message.ID == id && (e.Employee != "bob" || e.Message.Attrs[AttrFrom] != "alice") {
			t.Fatalf("transfer filed under %q from %q, want bob from alice", e.Employee, e.Message.Attrs[AttrFrom])
		}
	}
}

// Two requests with one key at the same moment: the one whose record
// is durable under the id wins; the other is refused, and moves nothing.
func TestStaffTransferLosingItsKeyIsRefused(t *testing.T) {
	ctx := context.Background()
	conv := Conversation("acct", "c1")
	assign := &memAssign{}
	assign.Set(ctx, conv, "alice")
	rec := &memRecorder{}
	rec.accept = func(ctx context.Context, m Message) error {
		w := m // the other request got there first
		w.Attrs = map[string]string{AttrBy: "sup", AttrFrom: "alice", AttrTo: "carol"}
		rec.put(w)
		return nil
	}
	staff, _ := NewStaff(rec, assign, nil)
	if _, err := staff.Act(ctx, StaffAction{Kind: KindTransfer, Conv: conv, By: "sup", Key: "k", To: "bob"}); !errors.Is(err, ErrKeyReused) {
		t.Fatalf("%v, want ErrKeyReused", err)
	}
	if owner, _ := assign.Get(ctx, conv); owner != "alice" || rec.len() != 1 {
		t.Fatalf("assigned to %q, %d records; want alice (the writer moves it for the winner), 1", owner, rec.len())
	}
}

// memRecorder is a Recorder over a map. accept, when set, runs first; an
// error from it stores nothing. lookupErr fails Recorded.
type memRecorder struct {
	mu        sync.Mutex
	recs      map[string]Message
	accept    func(context.Context, Message) error
	lookupErr error
}

func (r *memRecorder) Accept(ctx context.Context, m Message) error {
	if r.accept != nil {
		if err := r.accept(ctx, m); err != nil {
			return err
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, dup := r.recs[m.ID]; !dup {
		r.putLocked(m)
	}
	return nil
}

func (r *memRecorder) Recorded(_ context.Context, m Message) (Message, bool, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.lookupErr != nil {
		return Message{}, false, r.lookupErr
	}
	got, ok := r.recs[m.ID]
	return got, ok, nil
}

func (r *memRecorder) put(m Message) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.putLocked(m)
}

func (r *memRecorder) putLocked(m Message) {
	if r.recs == nil {
		r.recs = map[string]Message{}
	}
	r.recs[m.ID] = m
}

func (r *memRecorder) len() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.recs)
}

// waitStored waits until id is archived.
func waitStored(t *testing.T, a *memArchive, id string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !a.has(id) {
		if time.Now().After(deadline) {
			t.Fatalf("%s never archived", id)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// archivedOfKind counts the archived rows of conv of kind k, copies
// included.
func archivedOfKind(a *memArchive, conv ConversationID, k Kind) int {
	a.mu.Lock()
	defer a.mu.Unlock()
	n := 0
	for _, r := range a.rows {
		if r.Conv == conv && r.Kind == k {
			n++
		}
	}
	return n
}

// A key stands for one request. Reusing it for a different transfer
// (another target, note or employee) is refused, before anything moves:
// the conversation stays where the recorded transfer put it, and the
// archive holds that one transfer. An exact retry is the same request:
// the same answer, no second record, no change. Checked while the first
// is still in the spool and once it is archived.
func TestStaffKeyReusedForAnotherTransferIsRefused(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	conv := Conversation("acct", "c1")
	h.assign.Set(ctx, conv, "alice")
	staff, err := NewStaff(h.p, h.assign, nil)
	if err != nil {
		t.Fatal(err)
	}
	first := StaffAction{Kind: KindTransfer, Conv: conv, By: "sup", Key: "K", To: "bob", Text: "休假"}
	id, err := staff.Act(ctx, first)
	if err != nil {
		t.Fatal(err)
	}
	// The conversation moves when the writer archives the transfer.
	check := func(when, owner string) {
		t.Helper()
		for name, a := range map[string]StaffAction{
			"another target":   {Kind: KindTransfer, Conv: conv, By: "sup", Key: "K", To: "carol", Text: "休假"},
			"another note":     {Kind: KindTransfer, Conv: conv, By: "sup", Key: "K", To: "bob", Text: "出差"},
			"another employee": {Kind: KindTransfer, Conv: conv, By: "alice", Key: "K", To: "bob", Text: "休假"},
		} {
			got, err := staff.Act(ctx, a)
			if !errors.Is(err, ErrKeyReused) || got != "" {
				t.Errorf("%s, %s: %q, %v; want ErrKeyReused", when, name, got, err)
			}
			if !strings.Contains(fmt.Sprint(err), `"K"`) {
				t.Errorf("%s, %s: the error %q does not name the key", when, name, err)
			}
			if got, _ := h.assign.Get(ctx, conv); got != owner {
				t.Fatalf("%s, %s: a refused transfer moved the conversation to %q", when, name, got)
			}
		}
		got, err := staff.Act(ctx, first)
		if err != nil || got != id {
			t.Fatalf("%s, exact retry: %q, %v; want %q", when, got, err, id)
		}
		if got, _ := h.assign.Get(ctx, conv); got != owner {
			t.Fatalf("%s, exact retry: assigned to %q, want %q", when, got, owner)
		}
	}
	check("spooled", "alice")
	h.start(t)
	waitStored(t, h.archive, id)
	check("archived", "bob")
	time.Sleep(20 * time.Millisecond) // anything wrongly spooled is archived by now
	h.stop()
	if n := archivedOfKind(h.archive, conv, KindTransfer); n != 1 || h.archive.count(id) != 1 || h.spool.Len() != 0 {
		t.Fatalf("%d transfers archived (%d as %s), %d left in the spool; want the first alone", n, h.archive.count(id), id, h.spool.Len())
	}
	msgs, _ := h.archive.Since(ctx, conv, 0, 10)
	if len(msgs) != 1 || msgs[0].Attrs[AttrTo] != "bob" || msgs[0].Attrs[AttrFrom] != "alice" || msgs[0].Text != "休假" || msgs[0].Employee != "bob" {
		t.Fatalf("archived %+v", msgs)
	}
}

// The same for notes: a key reused with another text is refused, and
// the archive keeps the first note.
func TestStaffKeyReusedForAnotherNoteIsRefused(t *testing.T) {
	h := newHarness(t)
	h.start(t)
	ctx := context.Background()
	conv := Conversation("acct", "c1")
	staff, err := NewStaff(h.p, h.assign, nil)
	if err != nil {
		t.Fatal(err)
	}
	note := StaffAction{Kind: KindNote, Conv: conv, By: "sup", Key: "n1", Text: "客户要求回电"}
	id, err := staff.Act(ctx, note)
	if err != nil {
		t.Fatal(err)
	}
	other := note
	other.Text = "客户不要回电"
	if got, err := staff.Act(ctx, other); !errors.Is(err, ErrKeyReused) || got != "" {
		t.Fatalf("note with a reused key: %q, %v; want ErrKeyReused", got, err)
	}
	waitStored(t, h.archive, id)
	if got, err := staff.Act(ctx, other); !errors.Is(err, ErrKeyReused) {
		t.Fatalf("note with a reused key, once archived: %q, %v; want ErrKeyReused", got, err)
	}
	if got, err := staff.Act(ctx, note); err != nil || got != id {
		t.Fatalf("exact retry: %q, %v", got, err)
	}
	time.Sleep(20 * time.Millisecond)
	h.stop()
	msgs, _ := h.archive.Since(ctx, conv, 0, 10)
	if len(msgs) != 1 || msgs[0].Text != note.Text || h.archive.count(id) != 1 {
		t.Fatalf("archived %+v", msgs)
	}
}

// While the archive is down, staff actions are still taken (spooled) and
// their retries answered from the spool; they are archived once when it
// is back, and only then does the transfer move the conversation. A key
// reused meanwhile is still refused, from the spool's copy.
func TestStaffActsWhileArchiveDown(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	conv := Conversation("acct", "c1")
	h.assign.Set(ctx, conv, "alice")
	h.archive.setDown(true)
	h.start(t)
	staff, err := NewStaff(h.p, h.assign, nil)
	if err != nil {
		t.Fatal(err)
	}
	note := StaffAction{Kind: KindNote, Conv: conv, By: "sup", Key: "n", Text: "请回电"}
	tr := StaffAction{Kind: KindTransfer, Conv: conv, By: "sup", Key: "t", To: "bob"}
	var ids []string
	for _, a := range []StaffAction{note, tr, note, tr} {
		id, err := staff.Act(ctx, a)
		if err != nil {
			t.Fatalf("%s with the archive down: %v", a.Kind, err)
		}
		ids = append(ids, id)
	}
	if ids[0] != ids[2] || ids[1] != ids[3] {
		t.Fatalf("retries answered %v", ids)
	}
	other := tr
	other.To = "carol"
	if _, err := staff.Act(ctx, other); !errors.Is(err, ErrKeyReused) {
		t.Fatalf("reused key with the archive down: %v", err)
	}
	if owner, _ := h.assign.Get(ctx, conv); owner != "alice" {
		t.Fatalf("assigned to %q before the transfer is archived, want alice", owner)
	}
	h.archive.setDown(false)
	waitStored(t, h.archive, ids[0])
	waitStored(t, h.archive, ids[1])
	if owner, _ := h.assign.Get(ctx, conv); owner != "bob" {
		t.Fatalf("assigned to %q once the transfer is archived, want bob", owner)
	}
	h.stop()
	if h.archive.count(ids[0]) != 1 || h.archive.count(ids[1]) != 1 || archivedOfKind(h.archive, conv, KindTransfer) != 1 {
		t.Fatalf("archived %d notes, %d transfers", h.archive.count(ids[0]), archivedOfKind(h.archive, conv, KindTransfer))
	}
}
