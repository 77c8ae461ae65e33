package relay

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wechat-relay/wechat-relay/storage/testenv"
)

// The compliance notice is decided from the archive: whatever a
// conversation began with, whatever the bus lost, and for clients who
// wrote before the relay sent notices, the notice leaves once, before
// the first reply.

// botBus is the bus as the bot sees it: the harness's memBus, minus the
// inbound messages drop loses. It records what it handed to the bot, so
// a test can wait until the bot has reacted to everything published.
type botBus struct {
	src  *memBus
	drop func(Message) bool

	mu      sync.Mutex
	handed  map[string]bool // message ids (and markers) given to the bot, or dropped
	markers int
}

func (b *botBus) Publish(ctx context.Context, e Event) error { return b.src.Publish(ctx, e) }

func (b *botBus) Subscribe(ctx context.Context) (<-chan Event, error) {
	in, err := b.src.Subscribe(ctx)
	if err != nil {
		return nil, err
	}
	out := make(chan Event) // unbuffered: handed over means received
	go func() {
		defer close(out)
		for {
			var e Event
			select {
			case <-ctx.Done():
				return
			case e = <-in:
			}
			id := string(e.Conv)
			if e.Message != nil {
				id = e.Message.ID
				if b.drop != nil && b.drop(*e.Message) {
					b.hand(id)
					continue
				}
			}
			select {
			case out <- e:
			case <-ctx.Done():
				return
			}
			b.hand(id)
		}
	}()
	return out, nil
}

func (b *botBus) hand(id string) {
	b.mu.Lock()
	if b.handed == nil {
		b.handed = map[string]bool{}
	}
	b.handed[id] = true
	b.mu.Unlock()
}

func (b *botBus) wasHanded(id string) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.handed[id]
}

type noticeHarness struct {
	*outboxHarness
	bot   *Bot
	bbus  *botBus
	clock *fakeClock
}

// alwaysOpen: no out-of-hours replies in the way.
var alwaysOpen = BotConfig{Open: "00:00", Close: "00:00"}

// newNoticeHarness runs a pipeline, an outbox sending to a fake WeChat
// (answering with script), and a bot reacting to the bus, losing the
// inbound messages drop says.
func newNoticeHarness(t *testing.T, drop func(Message) bool, script ...error) *noticeHarness {
	t.Helper()
	oh := newOutboxHarness(t, script...)
	bot, err := NewBot(alwaysOpen, oh.ob, oh.notices(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if bot.notices == nil {
		t.Fatal("the bot did not take the outbox's archive for the notice")
	}
	nh := &noticeHarness{outboxHarness: oh, bot: bot, bbus: &botBus{src: oh.bus, drop: drop}, clock: &fakeClock{t: time.Now()}}
	bot.now = nh.clock.Now
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { bot.Run(ctx, nh.bbus); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return nh
}

// accept archives m and waits until it is.
func (nh *noticeHarness) accept(t *testing.T, m Message) Message {
	t.Helper()
	if err := nh.p.Accept(context.Background(), m); err != nil {
		t.Fatal(err)
	}
	nh.waitArchived(t, m.ID)
	return m
}

// settle waits until the bot has reacted to the message id and to
// everything published before it.
func (nh *noticeHarness) settle(t *testing.T, id string) {
	t.Helper()
	testenv.Until(t, "the bot to receive "+id, func() bool { return nh.bbus.wasHanded(id) })
	nh.bbus.mu.Lock()
	nh.bbus.markers++
	marker := fmt.Sprintf("marker:%d", nh.bbus.markers)
	nh.bbus.mu.Unlock()
	if err := nh.bus.Publish(context.Background(), Event{Type: EventStatus, Conv: ConversationID(marker)}); err != nil {
		t.Fatal(err)
	}
	// The bot takes the marker only once it is done with what came before.
	testenv.Until(t, "the bot to receive "+marker, func() bool { return nh.bbus.wasHanded(marker) })
}

// sentTo returns the ids of the messages WeChat was asked to deliver to
// client, in order.
func (nh *noticeHarness) sentTo(client string) []string {
	nh.sender.mu.Lock()
	defer nh.sender.mu.Unlock()
	var ids []string
	for _, m := range nh.sender.sent {
		if m.Client == client {
			ids = append(ids, m.ID)
		}
	}
	return ids
}

// archivedSeq returns the sequence of the archived message id, 0 if none.
func (nh *noticeHarness) archivedSeq(id string) uint64 {
	nh.archive.mu.Lock()
	defer nh.archive.mu.Unlock()
	for _, r := range nh.archive.rows {
		if r.ID == id {
			return r.Seq
		}
	}
	return 0
}

func noticeID(client string, attempt int) string {
	return OutboundID(Conversation("acct", client), noticeKey(attempt))
}

// inboundEvent is an event of client, as the gateway archives it.
func inboundEvent(client, event, key string, at int64) Message {
	return Message{
		ID: InboundID("acct", client, "", at, event, key), Account: "acct", Client: client,
		Conv: Conversation("acct", client), Direction: Inbound, Kind: KindEvent, Event: event, EventKey: key,
		CreatedAt: time.Unix(at, 0),
	}
}

// checkOneNotice fails t unless exactly one notice of client was archived
// and sent, and it was the first message WeChat delivered to client.
func (nh *noticeHarness) checkOneNotice(t *testing.T, client string) {
	t.Helper()
	id := noticeID(client, 1)
	nh.waitState(t, id, DeliverySent)
	if n := nh.archive.count(id); n != 1 {
		t.Errorf("notice archived %d times, want once", n)
	}
	for attempt := 2; attempt <= noticeAttempts; attempt++ {
		if nh.archive.has(noticeID(client, attempt)) {
			t.Errorf("notice attempt %d archived", attempt)
		}
	}
	sent := nh.sentTo(client)
	if len(sent) == 0 || sent[0] != id || slices.Index(sent[1:], id) >= 0 {
		t.Errorf("WeChat delivered %v to %s, want the notice %s first and once", sent, client, id)
	}
}

// A conversation that begins with something the client did not write —
// a location report, a menu link opened, a template job's report, a note
// of staff — gets its notice with the client's first message, once.
func TestNoticeWhenConversationBeginsWithoutInteraction(t *testing.T) {
	for _, c := range []struct {
		name  string
		first func(nh *noticeHarness, client string) string
	}{
		{"location report", func(nh *noticeHarness, client string) string {
			m := inboundEvent(client, "LOCATION", "", 1700000000)
			m.Attrs = map[string]string{"latitude": "31.2304", "longitude": "121.4737", "precision": "65"}
			return nh.accept(t, m).ID
		}},
		{"menu VIEW", func(nh *noticeHarness, client string) string {
			return nh.accept(t, inboundEvent(client, "VIEW", "https://example.com/funds", 1700000001)).ID
		}},
		{"template job", func(nh *noticeHarness, client string) string {
			m := inboundEvent(client, "TEMPLATESENDJOBFINISH", "", 1700000002)
			m.Attrs = map[string]string{"status": "success"}
			return nh.accept(t, m).ID
		}},
		{"staff note", func(nh *noticeHarness, client string) string {
			staff, err := NewStaff(nh.p, nh.assign, nil)
			if err != nil {
				t.Fatal(err)
			}
			id, err := staff.Act(context.Background(), StaffAction{Kind: KindNote, Conv: Conversation("acct", client), By: "alice", Key: "n1", Text: "VIP, call first"})
			if err != nil {
				t.Fatal(err)
			}
			nh.waitArchived(t, id)
			return id
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			nh := newNoticeHarness(t, nil)
			first := c.first(nh, "c1")
			if seq := nh.archivedSeq(first); seq != 1 {
				t.Fatalf("first message archived as seq %d", seq)
			}
			nh.settle(t, first)
			if sent := nh.sentTo("c1"); len(sent) != 0 {
				t.Fatalf("sent %v before the client wrote", sent)
			}
			nh.accept(t, text("c1", "101", "你好"))
			nh.accept(t, text("c1", "102", "在吗？"))
			last := text("c1", "103", "基金赎回")
			nh.accept(t, last)
			nh.settle(t, last.ID)
			nh.checkOneNotice(t, "c1")
		})
	}
}

// The bus loses the event of the client's first message: the next one
// brings the notice.
func TestNoticeWhenBusLosesFirstMessage(t *testing.T) {
	first := text("c1", "201", "你好")
	nh := newNoticeHarness(t, func(m Message) bool { return m.ID == first.ID })
	nh.accept(t, first)
	nh.settle(t, first.ID)
	if nh.archive.has(noticeID("c1", 1)) {
		t.Fatal("notice sent for a message the bot never saw")
	}
	second := nh.accept(t, text("c1", "202", "在吗？"))
	if seq := nh.archivedSeq(second.ID); seq != 2 {
		t.Fatalf("second message archived as seq %d", seq)
	}
	nh.settle(t, second.ID)
	nh.checkOneNotice(t, "c1")
}

// A client who wrote before the relay sent notices (the archive has
// their messages, no notice) gets it before the first reply, whether
// the reply or the client's next message comes first.
func TestNoticeForExistingFollower(t *testing.T) {
	history := func(nh *noticeHarness, client string) {
		// Archived before this bot existed: nobody reacts to them.
		for i := range 3 {
			nh.accept(t, text(client, fmt.Sprint(300+i), "旧消息"))
		}
	}
	t.Run("first reply", func(t *testing.T) {
		nh := newNoticeHarness(t, func(Message) bool { return true })
		history(nh, "c1")
		history(nh, "c2")
		nh.settle(t, text("c2", "302", "").ID)
		conv := Conversation("acct", "c1")
		// The outbox's call before a reply (the lead wires it into Send).
		reply := func(key, body string) SendResult {
			t.Helper()
			if err := nh.bot.EnsureNotice(context.Background(), conv); err != nil {
				t.Fatalf("EnsureNotice: %v", err)
			}
			res, err := nh.ob.Send(context.Background(), textReq("c1", key, body))
			if err != nil {
				t.Fatal(err)
			}
			return res
		}
		r1 := reply("r1", "您好，我是您的顾问")
		r2 := reply("r2", "请问有什么可以帮您？")
		nh.waitState(t, r2.MessageID, DeliverySent)
		nh.checkOneNotice(t, "c1")
		notice := noticeID("c1", 1)
		if n, s1 := nh.archivedSeq(notice), nh.archivedSeq(r1.MessageID); n != 4 || s1 != 5 {
			t.Errorf("notice archived as seq %d, first reply %d; want 4 and 5", n, s1)
		}
		if sent := nh.sentTo("c1"); !slices.Equal(sent, []string{notice, r1.MessageID, r2.MessageID}) {
			t.Errorf("WeChat delivered %v, want the notice, then the replies", sent)
		}
		if nh.archive.has(noticeID("c2", 1)) {
			t.Error("notice sent to a client nobody replied to")
		}
	})
	t.Run("client writes again", func(t *testing.T) {
		nh := newNoticeHarness(t, func(m Message) bool { return m.Seq <= 3 })
		history(nh, "c1")
		m := nh.accept(t, text("c1", "310", "还在吗"))
		nh.settle(t, m.ID)
		nh.checkOneNotice(t, "c1")
	})
}

// countingStore counts the lookups a bot makes.
type countingStore struct {
	NoticeStore
	lookups atomic.Int32
}

func (c *countingStore) ArchivedIDs(ctx context.Context, conv ConversationID, ids []string) (map[string]uint64, error) {
	c.lookups.Add(1)
	return c.NoticeStore.ArchivedIDs(ctx, conv, ids)
}

func (c *countingStore) LatestEvents(ctx context.Context, ids []string) (map[string]DeliveryEvent, error) {
	c.lookups.Add(1)
	return c.NoticeStore.LatestEvents(ctx, ids)
}

// restartedBot is a new bot over the same archive, sending nowhere: any
// request it makes is recorded.
func restartedBot(t *testing.T, nh *noticeHarness) (*Bot, *recordingSender, *countingStore) {
	t.Helper()
	rs := &recordingSender{}
	store := &countingStore{NoticeStore: nh.notices()}
	bot, err := NewBot(alwaysOpen, rs, store, nil)
	if err != nil {
		t.Fatal(err)
	}
	return bot, rs, store
}

// A notice in the archive is never sent again: not by the bot that sent
// it, not by a new one after a restart, whatever the client or the
// employees do next; and once it is known sent, asking costs nothing.
func TestNoticeNeverSentTwice(t *testing.T) {
	nh := newNoticeHarness(t, nil)
	sub := inboundEvent("c1", "subscribe", "", 1700000100)
	nh.accept(t, sub)
	nh.settle(t, sub.ID)
	nh.checkOneNotice(t, "c1")
	conv := Conversation("acct", "c1")
	for i := range 3 {
		m := nh.accept(t, text("c1", fmt.Sprint(400+i), "再问一下"))
		nh.settle(t, m.ID)
		nh.clock.Add(time.Hour)
		if err := nh.bot.EnsureNotice(context.Background(), conv); err != nil {
			t.Fatal(err)
		}
	}
	nh.checkOneNotice(t, "c1")

	bot, rs, store := restartedBot(t, nh)
	later := text("c1", "410", "又来了")
	later.Seq, later.Employee, later.AcceptedAt = 9, "alice", time.Now()
	bot.React(context.Background(), later)
	if err := bot.EnsureNotice(context.Background(), conv); err != nil {
		t.Fatal(err)
	}
	for _, r := range rs.reqs {
		if strings.HasPrefix(r.Key, NoticeKey) {
			t.Errorf("restarted bot sent the notice again: %+v", r)
		}
	}
	if n := store.lookups.Load(); n != 2 {
		t.Errorf("restarted bot made %d lookups, want 2 (the notice's id, then its delivery)", n)
	}
	for range 5 {
		bot.React(context.Background(), later)
		if err := bot.EnsureNotice(context.Background(), conv); err != nil {
			t.Fatal(err)
		}
	}
	if n := store.lookups.Load(); n != 2 {
		t.Errorf("%d lookups after the notice was known sent, want none", n-2)
	}
}

// A notice archived before this change (keyed "bot-notice" on the first
// message) counts, delivered or still on its way; one archived but not
// yet sent is looked up again later, not sent twice.
func TestNoticeArchivedEarlierCounts(t *testing.T) {
	nh := newNoticeHarness(t, func(Message) bool { return true })
	nh.accept(t, text("c1", "501", "你好"))
	// What the old bot did on sequence 1, straight through the outbox.
	res, err := nh.ob.Send(context.Background(), SendRequest{Key: "bot-notice", Conv: Conversation("acct", "c1"), Kind: KindText, Text: "old notice"})
	if err != nil {
		t.Fatal(err)
	}
	nh.waitState(t, res.MessageID, DeliverySent)
	// And one archived, never tried (its sender crashed).
	nh.accept(t, text("c2", "502", "你好"))
	// Inserted straight into the archive: the pipeline would hand it to
	// the outbox.
	pending := Message{ID: noticeID("c2", 1), Account: "acct", Client: "c2", Conv: Conversation("acct", "c2"), Seq: 2,
		Direction: Outbound, Kind: KindText, Text: "old notice", AcceptedAt: time.Now()}
	if err := nh.archive.Insert(context.Background(), []Message{pending}); err != nil {
		t.Fatal(err)
	}

	bot, rs, _ := restartedBot(t, nh)
	clock := &fakeClock{t: time.Now()}
	bot.now = clock.Now
	for range 3 {
		for _, c := range []string{"c1", "c2"} {
			if err := bot.EnsureNotice(context.Background(), Conversation("acct", c)); err != nil {
				t.Fatal(err)
			}
		}
		clock.Add(noticeRecheck + time.Second)
	}
	if len(rs.reqs) != 0 {
		t.Errorf("sent %+v, want nothing", rs.reqs)
	}
}

// A notice WeChat refused is sent again with the client's next
// message, under the next key; after every attempt failed, the bot stops.
func TestNoticeSentAgainWhenRefused(t *testing.T) {
	refused := &SendError{Code: ErrCodeUnauthorized, Msg: "api unauthorized"}
	nh := newNoticeHarness(t, nil, refused, refused, refused)
	for i := 1; i <= noticeAttempts+1; i++ {
		m := nh.accept(t, text("c1", fmt.Sprint(600+i), "你好"))
		nh.settle(t, m.ID)
		if i <= noticeAttempts {
			nh.waitState(t, noticeID("c1", i), DeliveryFailed)
		}
		nh.clock.Add(noticeRecheck + time.Second)
	}
	var want []string
	for i := 1; i <= noticeAttempts; i++ {
		want = append(want, noticeID("c1", i))
		if n := nh.archive.count(noticeID("c1", i)); n != 1 {
			t.Errorf("attempt %d archived %d times", i, n)
		}
	}
	if sent := nh.sentTo("c1"); !slices.Equal(sent, want) {
		t.Errorf("WeChat was asked to deliver %v, want %v", sent, want)
	}

	// A refusal followed by a delivery: the second attempt settles it.
	nh2 := newNoticeHarness(t, nil, refused)
	m := nh2.accept(t, text("c2", "650", "你好"))
	nh2.settle(t, m.ID)
	nh2.waitState(t, noticeID("c2", 1), DeliveryFailed)
	nh2.clock.Add(noticeRecheck + time.Second)
	m = nh2.accept(t, text("c2", "651", "在吗"))
	nh2.settle(t, m.ID)
	nh2.waitState(t, noticeID("c2", 2), DeliverySent)
	nh2.clock.Add(time.Hour)
	m = nh2.accept(t, text("c2", "652", "谢谢"))
	nh2.settle(t, m.ID)
	if sent := nh2.sentTo("c2"); !slices.Equal(sent, []string{noticeID("c2", 1), noticeID("c2", 2)}) {
		t.Errorf("WeChat was asked to deliver %v", sent)
	}
}

// Many callers at once — the bus and employees' replies, in this
// instance and another — send one notice.
func TestNoticeConcurrentCallers(t *testing.T) {
	nh := newNoticeHarness(t, nil)
	other, err := NewBot(alwaysOpen, nh.ob, nh.notices(), nil) // another instance's bot
	if err != nil {
		t.Fatal(err)
	}
	m := nh.accept(t, text("c1", "701", "你好"))
	conv := Conversation("acct", "c1")
	var wg sync.WaitGroup
	errs := make(chan error, 40)
	for i := range 40 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			b := nh.bot
			if i%2 == 1 {
				b = other
			}
			errs <- b.EnsureNotice(context.Background(), conv)
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	nh.settle(t, m.ID)
	nh.checkOneNotice(t, "c1")
}

// wiredSender is the outbox with EnsureNotice called at the start of
// Send, as the lead wires it: the notice's own send must not wait for
// itself, and every reply follows the notice.
// wiredSender is the outbox wired as serve wires it (NoticeFirst).
type wiredSender struct {
	ob  *Outbox
	bot *Bot
}

func (w *wiredSender) Send(ctx context.Context, req SendRequest) (SendResult, error) {
	return w.ob.Send(ctx, req)
}

func TestNoticeThroughWiredOutbox(t *testing.T) {
	nh := newNoticeHarness(t, func(Message) bool { return true })
	ws := &wiredSender{ob: nh.ob}
	bot, err := NewBot(alwaysOpen, ws, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	bot.notices = nh.notices()
	ws.bot = bot
	nh.ob.NoticeFirst(bot.EnsureNotice)

	// The bot's own welcome, and an employee's reply.
	sub := nh.accept(t, inboundEvent("c1", "subscribe", "", 1700000200))
	sub.Seq, sub.Employee = 1, "alice"
	done := make(chan struct{})
	go func() {
		defer close(done)
		bot.React(context.Background(), sub)
		if _, err := ws.Send(context.Background(), textReq("c1", "r1", "欢迎")); err != nil {
			t.Error(err)
		}
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("deadlock: the notice's send waited for itself")
	}
	reply := OutboundID(Conversation("acct", "c1"), "r1")
	nh.waitState(t, reply, DeliverySent)
	nh.checkOneNotice(t, "c1")
	welcome := OutboundID(Conversation("acct", "c1"), "bot-welcome-"+keySafe(sub.ID))
	if sent := nh.sentTo("c1"); !slices.Equal(sent, []string{noticeID("c1", 1), welcome, reply}) {
		t.Errorf("WeChat delivered %v", sent)
	}

	// A reply to a client nobody has noticed yet: the notice goes first.
	nh.accept(t, text("c2", "801", "你好"))
	if _, err := ws.Send(context.Background(), textReq("c2", "r2", "您好")); err != nil {
		t.Fatal(err)
	}
	r2 := OutboundID(Conversation("acct", "c2"), "r2")
	nh.waitState(t, r2, DeliverySent)
	if sent := nh.sentTo("c2"); !slices.Equal(sent, []string{noticeID("c2", 1), r2}) {
		t.Errorf("WeChat delivered %v", sent)
	}
}

// When the notice cannot be sent, EnsureNotice says why, and the bot
// sends nothing else before it.
func TestNoticeErrors(t *testing.T) {
	nh := newNoticeHarness(t, func(Message) bool { return true })
	conv := Conversation("acct", "c1")

	// No interaction ever: WeChat's window is closed.
	err := nh.bot.EnsureNotice(context.Background(), conv)
	var pe *PolicyError
	if !errors.As(err, &pe) || pe.Code != ErrCodeOutOfWindow {
		t.Fatalf("EnsureNotice with the window closed: %v, want a policy error", err)
	}

	// The archive is down: nothing is sent, the welcome neither.
	sub := nh.accept(t, inboundEvent("c1", "subscribe", "", 1700000300))
	sub.Seq, sub.Employee = 1, "alice"
	nh.archive.setDown(true)
	if err := nh.bot.EnsureNotice(context.Background(), conv); !errors.Is(err, errDown) {
		t.Fatalf("EnsureNotice with the archive down: %v", err)
	}
	nh.bot.React(context.Background(), sub)
	nh.archive.setDown(false)
	if nh.spool.Len() != 0 {
		t.Fatalf("%d messages spooled while the notice could not be looked up", nh.spool.Len())
	}
	// Once the archive is back, the next interaction sends both.
	nh.bot.React(context.Background(), sub)
	nh.checkOneNotice(t, "c1")
	welcome := OutboundID(conv, "bot-welcome-"+keySafe(sub.ID))
	nh.waitState(t, welcome, DeliverySent)
}

// A disabled bot sends no notice, and EnsureNotice says nothing is due.
func TestNoticeDisabledBot(t *testing.T) {
	rs := &recordingSender{}
	b, err := NewBot(BotConfig{Disabled: true}, rs, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.EnsureNotice(context.Background(), "acct:c"); err != nil {
		t.Fatal(err)
	}
	b.React(context.Background(), Message{ID: "x", Conv: "acct:c", Seq: 1, Direction: Inbound, Kind: KindText})
	if len(rs.reqs) != 0 {
		t.Fatalf("disabled bot sent %+v", rs.reqs)
	}
}
