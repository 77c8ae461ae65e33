package relay

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

type memEvents struct {
	mu      sync.Mutex
	archive *memArchive
	events  []DeliveryEvent
}

var stateOrder = map[DeliveryState]int{DeliverySending: 1, DeliveryUnknown: 2, DeliveryFailed: 3, DeliveryRefused: 3, DeliverySent: 4}

func (e *memEvents) AppendEvents(_ context.Context, evs []DeliveryEvent) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, ev := range evs {
		if !slices.ContainsFunc(e.events, func(x DeliveryEvent) bool { return x.ID == ev.ID }) {
			e.events = append(e.events, ev)
		}
	}
	return nil
}

func (e *memEvents) LatestEvents(_ context.Context, ids []string) (map[string]DeliveryEvent, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := map[string]DeliveryEvent{}
	for _, ev := range e.events {
		if !slices.Contains(ids, ev.MessageID) {
			continue
		}
		cur, ok := out[ev.MessageID]
		if !ok || ev.At.After(cur.At) || (ev.At.Equal(cur.At) && stateOrder[ev.State] > stateOrder[cur.State]) {
			out[ev.MessageID] = ev
		}
	}
	return out, nil
}

func (e *memEvents) MessageEvents(_ context.Context, ids []string) ([]DeliveryEvent, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []DeliveryEvent
	for _, ev := range e.events {
		if slices.Contains(ids, ev.MessageID) {
			out = append(out, ev)
		}
	}
	return out, nil
}

func (e *memEvents) Unsettled(ctx context.Context, since time.Time, limit int) ([]Message, error) {
	e.archive.mu.Lock()
	rows := slices.Clone(e.archive.rows)
	e.archive.mu.Unlock()
	var out []Message
	for _, m := range rows {
		if m.Direction != Outbound || !m.AcceptedAt.After(since) {
			continue
		}
		latest, _ := e.LatestEvents(ctx, []string{m.ID})
		if ev, ok := latest[m.ID]; !ok || ev.State == DeliverySending {
			out = append(out, m)
		}
	}
	return out, nil
}

func (e *memEvents) states(id string) []DeliveryState {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []DeliveryState
	for _, ev := range e.events {
		if ev.MessageID == id {
			out = append(out, ev.State)
		}
	}
	return out
}

// memInteractions derives the window from the archive rows.
type memInteractions struct {
	archive *memArchive
	events  *memEvents
}

func (mi *memInteractions) LastInteraction(ctx context.Context, conv ConversationID) (time.Time, int, error) {
	mi.archive.mu.Lock()
	rows := slices.Clone(mi.archive.rows)
	mi.archive.mu.Unlock()
	var last time.Time
	for _, m := range rows {
		if m.Conv == conv && m.IsInteraction() && m.AcceptedAt.After(last) {
			last = m.AcceptedAt
		}
	}
	sends := 0
	for _, m := range rows {
		if m.Conv == conv && m.Direction == Outbound && m.AcceptedAt.After(last) {
			ev, _ := mi.events.LatestEvents(ctx, []string{m.ID})
			if e, ok := ev[m.ID]; !ok || e.State != DeliveryFailed {
				sends++
			}
		}
	}
	return last, sends, nil
}

// fakeSender answers each SendCustom with the next scripted error (nil
// when the script is exhausted), and records whether the message was
// archived when it was sent.
type fakeSender struct {
	mu         sync.Mutex
	archive    *memArchive
	script     []error
	sent       []Message
	unarchived []string
	uploads    int
	typing     int
}

func (s *fakeSender) SendCustom(_ context.Context, m Message) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.archive.has(m.ID) {
		s.unarchived = append(s.unarchived, m.ID)
	}
	s.sent = append(s.sent, m)
	if len(s.script) > 0 {
		err := s.script[0]
		s.script = s.script[1:]
		return err
	}
	return nil
}

func (s *fakeSender) Typing(context.Context, string, string, bool) error {
	s.mu.Lock()
	s.typing++
	s.mu.Unlock()
	return nil
}

func (s *fakeSender) UploadMedia(context.Context, string, Kind, string, []byte) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.uploads++
	return fmt.Sprintf("media-%d", s.uploads), nil
}

func (s *fakeSender) SendTemplate(context.Context, string, string, Template) (string, error) {
	return "1", nil
}

func (s *fakeSender) calls() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.sent)
}

type outboxHarness struct {
	*harness
	events *memEvents
	sender *fakeSender
	media  *fakeMediaStore
	ob     *Outbox
	dl     *Delivery
}

func newOutboxHarness(t *testing.T, script ...error) *outboxHarness {
	t.Helper()
	h := newHarness(t)
	oh := &outboxHarness{harness: h, events: &memEvents{archive: h.archive}, sender: &fakeSender{archive: h.archive, script: script}, media: &fakeMediaStore{}}
	cfg := OutboxConfig{RetryMin: time.Millisecond, RetryMax: 2 * time.Millisecond, SettleAfter: time.Minute, ScanInterval: 20 * time.Millisecond}
	queue := NewOutboundQueue(cfg)
	h.p.d.Outbound = queue // as the wiring passes it in Deps
	dl, err := NewDelivery(cfg, DeliveryDeps{Queue: queue, Writer: "relay-test", Events: oh.events, Sender: oh.sender, Bus: h.bus, Dedupe: h.dedupe})
	if err != nil {
		t.Fatal(err)
	}
	ob, err := NewOutbox(cfg, OutboxDeps{
		Pipeline: h.p, Queue: queue, Events: oh.events, Interactions: &memInteractions{h.archive, oh.events},
		Media: oh.media, Sender: oh.sender, Dedupe: h.dedupe,
	})
	if err != nil {
		t.Fatal(err)
	}
	oh.ob, oh.dl = ob, dl
	h.start(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { dl.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return oh
}

// notices is the NoticeStore the wiring gives the bot: the archive.
func (oh *outboxHarness) notices() NoticeStore {
	return noticeLookup{memArchive: oh.archive, events: oh.events}
}

// clientWrites archives an inbound message, opening the window.
func (oh *outboxHarness) clientWrites(t *testing.T, client, msgID string) {
	t.Helper()
	if err := oh.p.Accept(context.Background(), text(client, msgID, "hi")); err != nil {
		t.Fatal(err)
	}
	oh.waitArchived(t, text(client, msgID, "").ID)
}

func (oh *outboxHarness) waitArchived(t *testing.T, id string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !oh.archive.has(id) {
		if time.Now().After(deadline) {
			t.Fatalf("%s never archived", id)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func (oh *outboxHarness) waitState(t *testing.T, id string, want DeliveryState) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		st := oh.events.states(id)
		if len(st) > 0 && st[len(st)-1] == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: states %v, want final %s", id, st, want)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func textReq(client, key, body string) SendRequest {
	return SendRequest{Key: key, Conv: Conversation("acct", client), Employee: "alice", Kind: KindText, Text: body}
}

func TestOutboxSendsArchivedMessageOnce(t *testing.T) {
	oh := newOutboxHarness(t)
	oh.clientWrites(t, "c1", "1")
	res, err := oh.ob.Send(context.Background(), textReq("c1", "k1", "您好，已收到"))
	if err != nil {
		t.Fatal(err)
	}
	if res.State != DeliveryPending || res.MessageID == "" {
		t.Fatalf("result %+v", res)
	}
	oh.waitState(t, res.MessageID, DeliverySent)
	if got := oh.events.states(res.MessageID); !slices.Equal(got, []DeliveryState{DeliverySending, DeliverySent}) {
		t.Fatalf("events %v", got)
	}
	if len(oh.sender.unarchived) > 0 {
		t.Fatalf("sent before archived: %v", oh.sender.unarchived)
	}
	// The same key again: the first result, nothing sent.
	again, err := oh.ob.Send(context.Background(), textReq("c1", "k1", "您好，已收到"))
	if err != nil {
		t.Fatal(err)
	}
	if !again.Duplicate || again.State != DeliverySent || again.MessageID != res.MessageID {
		t.Fatalf("replayed key: %+v", again)
	}
	time.Sleep(50 * time.Millisecond)
	if n := oh.sender.calls(); n != 1 {
		t.Fatalf("sent %d times", n)
	}
	// The archived message is in the conversation, after the client's,
	// with who wrote it.
	msgs, _ := oh.archive.Since(context.Background(), Conversation("acct", "c1"), 0, 10)
	if len(msgs) != 2 || msgs[1].ID != res.MessageID || msgs[1].Seq != 2 || msgs[1].Attrs["sent_by"] != "alice" || msgs[1].Direction != Outbound {
		t.Fatalf("archive: %+v", msgs)
	}
	// Statuses were published for the consoles.
	var statuses []DeliveryState
	for _, e := range oh.bus.published() {
		if e.Type == EventStatus {
			statuses = append(statuses, e.Status.State)
		}
	}
	if !slices.Equal(statuses, []DeliveryState{DeliverySending, DeliverySent}) {
		t.Fatalf("published statuses %v", statuses)
	}
}

func TestOutboxPolicy(t *testing.T) {
	oh := newOutboxHarness(t)
	ctx := context.Background()

	_, err := oh.ob.Send(ctx, textReq("silent", "k0", "hello?"))
	var pe *PolicyError
	if !errors.As(err, &pe) || pe.Code != ErrCodeOutOfWindow {
		t.Fatalf("send to a client who never wrote: %v", err)
	}

	old := text("old", "9", "long ago")
	old.Seq, old.AcceptedAt = 1, time.Now().Add(-49*time.Hour)
	oh.archive.Insert(ctx, []Message{old})
	if _, err := oh.ob.Send(ctx, textReq("old", "k1", "late")); !errors.As(err, &pe) || pe.Code != ErrCodeOutOfWindow {
		t.Fatalf("send 49h after the last message: %v", err)
	}

	oh.clientWrites(t, "c2", "20")
	w, _ := oh.ob.Window(ctx, Conversation("acct", "c2"))
	if !w.Open || w.SendsLeft != 5 || w.ClosesAt.IsZero() {
		t.Fatalf("window after the client wrote: %+v", w)
	}
	for i := range 5 {
		res, err := oh.ob.Send(ctx, textReq("c2", fmt.Sprint("q", i), "reply"))
		if err != nil {
			t.Fatalf("send %d: %v", i, err)
		}
		oh.waitArchived(t, res.MessageID)
	}
	if _, err := oh.ob.Send(ctx, textReq("c2", "q5", "one too many")); !errors.As(err, &pe) || pe.Code != ErrCodeSendQuota {
		t.Fatalf("sixth send: %v", err)
	}
	if w, _ := oh.ob.Window(ctx, Conversation("acct", "c2")); w.Open || w.SendsLeft != 0 || w.Reason == "" {
		t.Fatalf("window after five sends: %+v", w)
	}
	// The client writes again: the quota starts over.
	oh.clientWrites(t, "c2", "21")
	if _, err := oh.ob.Send(ctx, textReq("c2", "q6", "again")); err != nil {
		t.Fatalf("send after the client wrote again: %v", err)
	}
	// A refused key was not used up.
	if _, err := oh.ob.Send(ctx, textReq("c2", "q5", "now it fits")); err != nil {
		t.Fatalf("refused key reused: %v", err)
	}
}

func TestOutboxWeChatErrors(t *testing.T) {
	tests := []struct {
		name   string
		script []error
		state  DeliveryState
		calls  int
		code   int
	}{
		{"out of window at WeChat", []error{&SendError{Code: ErrCodeOutOfWindow, Msg: "response out of time limit"}}, DeliveryFailed, 1, ErrCodeOutOfWindow},
		{"quota at WeChat", []error{&SendError{Code: ErrCodeSendQuota}}, DeliveryFailed, 1, ErrCodeSendQuota},
		{"not a follower", []error{&SendError{Code: ErrCodeInvalidOpenID}}, DeliveryFailed, 1, ErrCodeInvalidOpenID},
		{"busy, then sent", []error{&SendError{Code: ErrCodeSystemBusy}, &SendError{Code: ErrCodeSystemBusy}}, DeliverySent, 3, 0},
		{"connection refused, then sent", []error{errors.New("dial tcp: connection refused")}, DeliverySent, 2, 0},
		{"timeout after sending", []error{fmt.Errorf("reading answer: %w", ErrOutcomeUnknown)}, DeliveryUnknown, 1, 0},
		{"busy every time", []error{&SendError{Code: -1}, &SendError{Code: -1}, &SendError{Code: -1}, &SendError{Code: -1}, &SendError{Code: -1}}, DeliveryFailed, 5, -1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			oh := newOutboxHarness(t, tt.script...)
			oh.clientWrites(t, "c1", "1")
			res, err := oh.ob.Send(context.Background(), textReq("c1", "k", "x"))
			if err != nil {
				t.Fatal(err)
			}
			oh.waitState(t, res.MessageID, tt.state)
			time.Sleep(30 * time.Millisecond)
			if n := oh.sender.calls(); n != tt.calls {
				t.Fatalf("WeChat called %d times, want %d", n, tt.calls)
			}
			latest, _ := oh.events.LatestEvents(context.Background(), []string{res.MessageID})
			if latest[res.MessageID].ErrCode != tt.code {
				t.Fatalf("errcode %d, want %d", latest[res.MessageID].ErrCode, tt.code)
			}
		})
	}
}

// A crash between archiving and sending: the scan sends what was never
// tried, and marks unknown what was being sent — never sends it again.
func TestOutboxRecoversAfterCrash(t *testing.T) {
	oh := newOutboxHarness(t)
	ctx := context.Background()
	past := time.Now().Add(-10 * time.Minute)
	never := Message{ID: "out:acct:c1:never", Account: "acct", Client: "c1", Conv: "acct:c1", Seq: 1, Direction: Outbound, Kind: KindText, Text: "a", AcceptedAt: past}
	cut := Message{ID: "out:acct:c1:cut", Account: "acct", Client: "c1", Conv: "acct:c1", Seq: 2, Direction: Outbound, Kind: KindText, Text: "b", AcceptedAt: past}
	oh.archive.Insert(ctx, []Message{never, cut})
	oh.events.AppendEvents(ctx, []DeliveryEvent{{ID: cut.ID + "/sending", MessageID: cut.ID, Conv: cut.Conv, State: DeliverySending, At: past}})

	oh.waitState(t, never.ID, DeliverySent)
	oh.waitState(t, cut.ID, DeliveryUnknown)
	time.Sleep(60 * time.Millisecond) // a few more scans
	oh.sender.mu.Lock()
	defer oh.sender.mu.Unlock()
	if len(oh.sender.sent) != 1 || oh.sender.sent[0].ID != never.ID {
		t.Fatalf("sent %+v; want only the never-tried message, once", oh.sender.sent)
	}
}

func TestOutboxUploadsAndArchivesMedia(t *testing.T) {
	oh := newOutboxHarness(t)
	oh.clientWrites(t, "c1", "1")
	png := []byte("\x89PNG fake image bytes")
	res, err := oh.ob.Send(context.Background(), SendRequest{Key: "img1", Conv: "acct:c1", Employee: "alice", Kind: KindImage,
		Upload: &Upload{FileName: "chart.png", ContentType: "image/png", Data: png}})
	if err != nil {
		t.Fatal(err)
	}
	oh.waitState(t, res.MessageID, DeliverySent)
	stored := oh.media.all()
	if len(stored) != 1 || stored[0].SHA256 != ContentHash(png) || stored[0].MessageID != res.MessageID {
		t.Fatalf("media archived: %+v", stored)
	}
	if m := oh.sender.sent[0]; m.MediaID != "media-1" || m.Kind != KindImage {
		t.Fatalf("sent %+v", m)
	}
}

func TestOutboxRefusesBadRequests(t *testing.T) {
	oh := newOutboxHarness(t)
	oh.clientWrites(t, "c1", "1")
	long := make([]byte, maxTextBytes+1)
	for i := range long {
		long[i] = 'a'
	}
	for name, req := range map[string]SendRequest{
		"no key":        {Conv: "acct:c1", Kind: KindText, Text: "x"},
		"bad key":       {Key: "a b", Conv: "acct:c1", Kind: KindText, Text: "x"},
		"bad conv":      {Key: "k", Conv: "nocolon", Kind: KindText, Text: "x"},
		"empty text":    {Key: "k", Conv: "acct:c1", Kind: KindText},
		"long text":     {Key: "k", Conv: "acct:c1", Kind: KindText, Text: string(long)},
		"image no file": {Key: "k", Conv: "acct:c1", Kind: KindImage},
		"file kind":     {Key: "k", Conv: "acct:c1", Kind: KindFile, Upload: &Upload{Data: []byte("x")}},
		"link no url":   {Key: "k", Conv: "acct:c1", Kind: KindLink, Attrs: map[string]string{"title": "t"}},
	} {
		if _, err := oh.ob.Send(context.Background(), req); !errors.Is(err, ErrBadRequest) {
			t.Errorf("%s: %v, want ErrBadRequest", name, err)
		}
	}
	if n := oh.sender.calls(); n != 0 {
		t.Fatalf("sent %d", n)
	}
}

func TestOutboxTypingIsRateLimited(t *testing.T) {
	oh := newOutboxHarness(t)
	for range 5 {
		oh.ob.Typing(context.Background(), "acct:c1")
	}
	if oh.sender.typing != 1 {
		t.Fatalf("typing forwarded %d times in a burst, want 1", oh.sender.typing)
	}
}

// barrierEvents lets the first LatestEvents of two outboxes return only
// once both have asked, so both see the same "sending"; it counts the
// "unknown" events appended.
type barrierEvents struct {
	*memEvents
	arrived  sync.WaitGroup
	once     sync.Map
	unknowns atomic.Int32
}

func (e *barrierEvents) LatestEvents(ctx context.Context, ids []string) (map[string]DeliveryEvent, error) {
	latest, err := e.memEvents.LatestEvents(ctx, ids)
	if _, seen := e.once.LoadOrStore(ctx.Value(outboxName{}), true); !seen {
		e.arrived.Done()
		e.arrived.Wait()
	}
	return latest, err
}

func (e *barrierEvents) AppendEvents(ctx context.Context, evs []DeliveryEvent) error {
	for _, ev := range evs {
		if ev.State == DeliveryUnknown {
			e.unknowns.Add(1)
		}
	}
	return e.memEvents.AppendEvents(ctx, evs)
}

type outboxName struct{}

// Two instances scan at the same moment and both find a send cut short:
// one of them marks it unknown (two would archive two different events
// under one id, which verify reports).
func TestOutboxScansSettleOnceAcrossInstances(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	past := time.Now().Add(-10 * time.Minute)
	cut := Message{ID: "out:acct:c1:cut", Account: "acct", Client: "c1", Conv: "acct:c1", Seq: 1, Direction: Outbound, Kind: KindText, Text: "b", AcceptedAt: past}
	h.archive.Insert(ctx, []Message{cut})
	ev := &barrierEvents{memEvents: &memEvents{archive: h.archive}}
	ev.arrived.Add(2)
	ev.memEvents.AppendEvents(ctx, []DeliveryEvent{{ID: cut.ID + "/sending", MessageID: cut.ID, Conv: cut.Conv, State: DeliverySending, At: past}})
	obs := twoDeliveries(t, h, ev, OutboxConfig{SettleAfter: time.Minute})
	var wg sync.WaitGroup
	for i, ob := range obs {
		wg.Go(func() { ob.scan(context.WithValue(ctx, outboxName{}, i)) })
	}
	wg.Wait()
	if n := ev.unknowns.Load(); n != 1 {
		t.Fatalf("%d unknown events archived for one send cut short, want 1", n)
	}
}

// A send's own attempt that outlasts SettleAfter settles it "unknown"
// while another instance's scan does too: one row under the event's id,
// not two different ones.
func TestOutboxSettlesAnEventOnceAcrossInstances(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	m := Message{ID: "out:acct:c1:slow", Account: "acct", Client: "c1", Conv: "acct:c1", Seq: 1, Direction: Outbound, Kind: KindText, Text: "b", AcceptedAt: time.Now()}
	h.archive.Insert(ctx, []Message{m})
	ev := &barrierEvents{memEvents: &memEvents{archive: h.archive}}
	obs := twoDeliveries(t, h, ev, OutboxConfig{})
	var wg sync.WaitGroup
	for _, ob := range obs {
		wg.Go(func() { ob.settle(ctx, m, DeliveryUnknown, 0, "timed out") })
	}
	wg.Wait()
	if n := ev.unknowns.Load(); n != 1 {
		t.Fatalf("%d unknown events archived by two instances for one send, want 1", n)
	}
}

// twoDeliveries returns the deliveries of two instances (each its own
// writer) sharing h's archive, bus and dedupe store and the events ev;
// they do not run.
func twoDeliveries(t *testing.T, h *harness, ev *barrierEvents, cfg OutboxConfig) []*Delivery {
	return twoDeliveriesWith(t, h, ev, h.dedupe, cfg)
}

func twoDeliveriesWith(t *testing.T, h *harness, ev *barrierEvents, dedupe Dedupe, cfg OutboxConfig) []*Delivery {
	t.Helper()
	var dls []*Delivery
	for i := range 2 {
		dl, err := NewDelivery(cfg, DeliveryDeps{
			Queue: NewOutboundQueue(cfg), Writer: fmt.Sprintf("w%d", i), Events: ev,
			Sender: &fakeSender{archive: h.archive}, Bus: h.bus, Dedupe: dedupe,
		})
		if err != nil {
			t.Fatal(err)
		}
		dls = append(dls, dl)
	}
	return dls
}

// downDedupe is Redis down: every claim fails.
type downDedupe struct{ Dedupe }

func (downDedupe) Claim(context.Context, string, string, time.Duration) (ClaimState, error) {
	return 0, errors.New("redis: connection refused")
}

// Two instances deliver one archived reply at the same moment (one's
// own queue, the other's scan) while Redis is down, so the dispatch claim
// cannot keep them apart, and both find no event yet: WeChat is called
// at most once, and each instance's "sending" stays in the archive (one
// id for both would keep one row, and verify would report the other
// missing). The chaos runs counted such replies delivered twice.
func TestOutboxTwoInstancesNeverBothSend(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	m := Message{ID: "out:acct:c1:both", Account: "acct", Client: "c1", Conv: "acct:c1", Seq: 1, Direction: Outbound, Kind: KindText, Text: "b", AcceptedAt: time.Now()}
	h.archive.Insert(ctx, []Message{m})
	ev := &barrierEvents{memEvents: &memEvents{archive: h.archive}}
	ev.arrived.Add(2)
	obs := twoDeliveriesWith(t, h, ev, downDedupe{h.dedupe}, OutboxConfig{RetryMin: time.Millisecond})
	var wg sync.WaitGroup
	for i, ob := range obs {
		wg.Go(func() { ob.deliver(context.WithValue(ctx, outboxName{}, i), m) })
	}
	wg.Wait()
	sends := 0
	for _, ob := range obs {
		sends += ob.d.Sender.(*fakeSender).calls()
	}
	if sends > 1 {
		t.Fatalf("one reply sent %d times by two instances", sends)
	}
	got := ev.states(m.ID)
	if n := len(slices.DeleteFunc(slices.Clone(got), func(s DeliveryState) bool { return s != DeliverySending })); n != 2 {
		t.Fatalf("events %v: want both instances' sending archived", got)
	}
	if sends == 0 {
		t.Logf("neither sent (each saw the other's sending): the scan settles it unknown")
	}
}
