package archive

import (
	"context"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"

	"github.com/wechat-relay/wechat-relay/relay"
)

// normalize returns m as the archive gives it back: times in UTC, CreatedAt
// to the second, AcceptedAt to the millisecond, empty Attrs and Raw as nil.
func normalize(m relay.Message) relay.Message {
	if !m.CreatedAt.IsZero() {
		m.CreatedAt = m.CreatedAt.Truncate(time.Second).UTC()
	}
	if !m.AcceptedAt.IsZero() {
		m.AcceptedAt = m.AcceptedAt.Truncate(time.Millisecond).UTC()
	}
	if len(m.Attrs) == 0 {
		m.Attrs = nil
	}
	if len(m.Raw) == 0 {
		m.Raw = nil
	}
	return m
}

func sameMessages(t *testing.T, what string, got, want []relay.Message) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: got %d messages, want %d:\n got %s\nwant %s", what, len(got), len(want), ids(got), ids(want))
	}
	for i := range want {
		w := normalize(want[i])
		if !reflect.DeepEqual(got[i], w) {
			t.Errorf("%s: message %d differs:\n got %#v\nwant %#v", what, i, got[i], w)
		}
	}
}

func ids(msgs []relay.Message) []string {
	out := make([]string, len(msgs))
	for i, m := range msgs {
		out[i] = fmt.Sprintf("%s#%d", m.ID, m.Seq)
	}
	return out
}

func TestInsertSinceRoundTrip(t *testing.T) {
	t.Parallel()
	a := openTest(t)
	ctx := testCtx(t)
	conv := relay.Conversation("acc", "o_中文_client")
	base := time.Date(2026, 3, 14, 9, 26, 53, 589793238, time.FixedZone("CST", 8*3600))

	msgs := []relay.Message{
		{
			ID:      relay.InboundID("acc", "o_中文_client", "24089373712345678", 0, "", ""),
			Account: "acc", Client: "o_中文_client", Conv: conv, Seq: 1,
			Direction: relay.Inbound, Kind: relay.KindText, WxMsgID: "24089373712345678",
			Text: "你好，世界 🌏 — 请问我的账户？",
			// Exact bytes: a control byte, invalid UTF-8, a NUL, a quote.
			Raw:       []byte("<xml><Content><![CDATA[你好\x02\xff\xfe\x00'\\]]></Content></xml>"),
			CreatedAt: base.Add(-2 * time.Second), AcceptedAt: base, Employee: "张三",
		},
		{
			ID: "in:acc:24089373712345679", Account: "acc", Client: "o_中文_client", Conv: conv, Seq: 2,
			Direction: relay.Inbound, Kind: relay.KindImage, WxMsgID: "24089373712345679",
			MediaID: "media_abc-123",
			Attrs: map[string]string{
				"pic_url": "http://mmbiz.qpic.cn/x?a=1&b=2",
				"标签":      "中文值",
				"odd":     "a\"b'c\\d\x02\n",
			},
			Raw:       []byte{0x02, 0x00, 0x80},
			CreatedAt: base.Add(time.Second), AcceptedAt: base.Add(1500 * time.Millisecond), Employee: "emp1",
		},
		{
			ID: relay.InboundID("acc", "o_中文_client", "", 1773451613, "subscribe", "qrscene_emp1"), Account: "acc",
			Client: "o_中文_client", Conv: conv, Seq: 3, Direction: relay.Inbound, Kind: relay.KindEvent,
			Event: "subscribe", EventKey: "qrscene_emp1",
			CreatedAt: time.Unix(1773451613, 0), AcceptedAt: base.Add(2*time.Second + 7*time.Millisecond),
		},
		{
			ID: "out:acc:7f3a", Account: "acc", Client: "o_中文_client", Conv: conv, Seq: 4,
			Direction: relay.Outbound, Kind: relay.KindText, Text: "您好，我是您的客户经理。",
			// No CreatedAt (outbound): the zero time comes back as zero.
			AcceptedAt: base.Add(3*time.Second + 999*time.Millisecond + 999*time.Microsecond), Employee: "emp1",
		},
	}
	if err := a.Insert(ctx, msgs); err != nil {
		t.Fatalf("Insert: %v", err)
	}
	got, err := a.Since(ctx, conv, 0, 100)
	if err != nil {
		t.Fatalf("Since: %v", err)
	}
	sameMessages(t, "Since(0)", got, msgs)
	if want := msgs[3].AcceptedAt.Truncate(time.Millisecond); !got[3].AcceptedAt.Equal(want) || want.Nanosecond()%1e6 != 0 || want.Nanosecond() == 0 {
		t.Errorf("AcceptedAt = %v, want %v to the millisecond", got[3].AcceptedAt, want)
	}

	// Another conversation is not mixed in.
	other, err := a.Since(ctx, relay.Conversation("acc", "someone_else"), 0, 100)
	if err != nil || len(other) != 0 {
		t.Errorf("Since(other conv) = %v, %v; want nothing", ids(other), err)
	}
}

func TestInsertRejectsUnkeyedMessages(t *testing.T) {
	t.Parallel()
	a := openTest(t)
	ctx := testCtx(t)
	conv := relay.Conversation("acc", "o1")
	now := time.Now()
	good := testMessage(conv, 1, now)
	noID := testMessage(conv, 2, now)
	noID.ID = ""
	noSeq := testMessage(conv, 3, now)
	noSeq.Seq = 0
	for _, bad := range [][]relay.Message{{good, noID}, {good, noSeq}} {
		if err := a.Insert(ctx, bad); err == nil {
			t.Errorf("Insert(%v) succeeded", ids(bad))
		}
	}
	if n := count(t, a, `SELECT count() FROM messages`); n != 0 {
		t.Errorf("a refused batch left %d rows", n)
	}
	if err := a.Insert(ctx, nil); err != nil {
		t.Errorf("Insert(nil) = %v", err)
	}
}

func TestInsertIsIdempotentByID(t *testing.T) {
	t.Parallel()
	a := openTest(t)
	ctx := testCtx(t)
	conv := relay.Conversation("acc", "o_dup")
	now := time.Now()
	var first, second []relay.Message
	for seq := uint64(1); seq <= 10; seq++ {
		first = append(first, testMessage(conv, seq, now))
	}
	for seq := uint64(6); seq <= 15; seq++ { // overlaps 6..10
		second = append(second, testMessage(conv, seq, now))
	}
	// The same batch twice (a replay after a crash), then an overlapping one.
	for _, batch := range [][]relay.Message{first, first, second} {
		if err := a.Insert(ctx, batch); err != nil {
			t.Fatalf("Insert: %v", err)
		}
	}
	want := append(append([]relay.Message{}, first...), second[5:]...)

	got, err := a.Since(ctx, conv, 0, 0)
	if err != nil {
		t.Fatalf("Since: %v", err)
	}
	sameMessages(t, "Since after replays", got, want)

	existing, err := a.Existing(ctx, want)
	if err != nil {
		t.Fatalf("Existing: %v", err)
	}
	if len(existing) != 15 {
		t.Errorf("Existing found %d ids, want 15", len(existing))
	}
	if seq, err := a.MaxSeq(ctx, conv); err != nil || seq != 15 {
		t.Errorf("MaxSeq = %d, %v; want 15", seq, err)
	}
	if n := count(t, a, `SELECT uniqExact(id) FROM messages`); n != 15 {
		t.Errorf("distinct ids = %d, want 15", n)
	}
	if n := count(t, a, `SELECT count() FROM messages FINAL`); n != 15 {
		t.Errorf("count() FINAL = %d, want 15", n)
	}
	// The engine itself collapses the copies when it merges (the relay
	// never runs OPTIMIZE; the test does, to prove the table keys by id).
	if err := a.conn.Exec(ctx, `OPTIMIZE TABLE messages FINAL`); err != nil {
		t.Fatalf("OPTIMIZE: %v", err)
	}
	if n := count(t, a, `SELECT count() FROM messages`); n != 15 {
		t.Errorf("count() after merge = %d, want 15", n)
	}
}

// A replay that lands in another monthly partition is never merged with
// the first copy; the readers still show one message.
func TestReplayAcrossPartitionsStillOneMessage(t *testing.T) {
	t.Parallel()
	a := openTest(t)
	ctx := testCtx(t)
	conv := relay.Conversation("acc", "o_month")
	m := testMessage(conv, 1, time.Date(2026, 1, 31, 23, 59, 59, 900e6, time.UTC))
	replay := m
	replay.AcceptedAt = time.Date(2026, 2, 1, 0, 0, 0, 100e6, time.UTC)
	for _, batch := range [][]relay.Message{{m}, {replay}} {
		if err := a.Insert(ctx, batch); err != nil {
			t.Fatalf("Insert: %v", err)
		}
	}
	if err := a.conn.Exec(ctx, `OPTIMIZE TABLE messages FINAL`); err != nil {
		t.Fatalf("OPTIMIZE: %v", err)
	}
	if n := count(t, a, `SELECT count() FROM messages`); n != 2 {
		t.Fatalf("expected the two copies to stay in their partitions, found %d rows", n)
	}
	got, err := a.Since(ctx, conv, 0, 10)
	if err != nil {
		t.Fatalf("Since: %v", err)
	}
	// The later-accepted copy, as ReplacingMergeTree(accepted_ms) would keep.
	sameMessages(t, "Since", got, []relay.Message{replay})
	// Asked about with either copy's AcceptedAt.
	for _, asked := range []relay.Message{m, replay} {
		existing, err := a.Existing(ctx, []relay.Message{asked})
		if err != nil || len(existing) != 1 || existing[m.ID] != 1 {
			t.Errorf("Existing(accepted %s) = %v, %v; want {%s: 1}", asked.AcceptedAt, existing, err, m.ID)
		}
	}
}

func TestExisting(t *testing.T) {
	t.Parallel()
	a := openTest(t)
	ctx := testCtx(t)

	t.Run("empty archive, empty input", func(t *testing.T) {
		for _, in := range [][]relay.Message{nil, {}} {
			got, err := a.Existing(ctx, in)
			if err != nil || len(got) != 0 {
				t.Errorf("Existing(%v) = %v, %v", in, got, err)
			}
		}
		got, err := a.Existing(ctx, []relay.Message{{ID: "nope"}})
		if err != nil || len(got) != 0 {
			t.Errorf("Existing(missing) = %v, %v", got, err)
		}
	})

	// More ids than fit one IN list, some of them archived, and ids that
	// need quoting in the query text.
	conv := relay.Conversation("acc", "o_exist")
	now := time.Now()
	var msgs []relay.Message
	for seq := uint64(1); seq <= 1200; seq++ {
		m := testMessage(conv, seq, now)
		if seq%3 == 0 {
			m.ID = fmt.Sprintf("out:acc:'quoted\\%d'", seq)
		}
		msgs = append(msgs, m)
	}
	if err := a.Insert(ctx, msgs); err != nil {
		t.Fatalf("Insert: %v", err)
	}
	var ask []relay.Message
	want := map[string]uint64{}
	for i := 0; i < 2500; i++ {
		if i < len(msgs) && i%2 == 0 {
			ask = append(ask, msgs[i])
			want[msgs[i].ID] = msgs[i].Seq
		} else {
			ask = append(ask, testMessage(conv, uint64(5000+i), now))
			ask[len(ask)-1].ID = fmt.Sprintf("missing:%d", i)
		}
	}
	got, err := a.Existing(ctx, ask)
	if err != nil {
		t.Fatalf("Existing: %v", err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Existing: got %d ids, want %d", len(got), len(want))
		for id, seq := range want {
			if got[id] != seq {
				t.Errorf("  %s: got %d, want %d", id, got[id], seq)
			}
		}
	}
}

// Existing looks only where a copy can be: the message's account and
// conversation, a day either side of its AcceptedAt. Asked about under
// another conversation, or with an AcceptedAt days away, an archived
// message is not found — the price of not scanning every id archived,
// which the pipeline never pays, since a replay keeps its AcceptedAt.
func TestExistingLooksOnlyNearTheMessage(t *testing.T) {
	t.Parallel()
	a := openTest(t)
	ctx := testCtx(t)
	conv := relay.Conversation("acc", "o_near")
	at := time.Date(2026, 3, 14, 23, 59, 59, 0, time.UTC)
	m := testMessage(conv, 1, at)
	if err := a.Insert(ctx, []relay.Message{m}); err != nil {
		t.Fatalf("Insert: %v", err)
	}
	for _, c := range []struct {
		name  string
		asked func(relay.Message) relay.Message
		found bool
	}{
		{"as archived", func(m relay.Message) relay.Message { return m }, true},
		{"23h59m later, the next day", func(m relay.Message) relay.Message {
			m.AcceptedAt = m.AcceptedAt.Add(23*time.Hour + 59*time.Minute)
			return m
		}, true},
		{"a day earlier", func(m relay.Message) relay.Message { m.AcceptedAt = m.AcceptedAt.Add(-24 * time.Hour); return m }, true},
		{"three days later", func(m relay.Message) relay.Message { m.AcceptedAt = m.AcceptedAt.Add(72 * time.Hour); return m }, false},
		{"three days earlier", func(m relay.Message) relay.Message { m.AcceptedAt = m.AcceptedAt.Add(-72 * time.Hour); return m }, false},
		{"another conversation", func(m relay.Message) relay.Message { m.Conv = relay.Conversation("acc", "o_other"); return m }, false},
		{"another account", func(m relay.Message) relay.Message { m.Account = "acc2"; return m }, false},
	} {
		got, err := a.Existing(ctx, []relay.Message{c.asked(m)})
		if err != nil {
			t.Fatalf("Existing(%s): %v", c.name, err)
		}
		if _, found := got[m.ID]; found != c.found {
			t.Errorf("Existing(%s) = %v, want found %v", c.name, got, c.found)
		}
	}
}

func TestMaxSeqAndPaging(t *testing.T) {
	t.Parallel()
	a := openTest(t)
	ctx := testCtx(t)
	conv := relay.Conversation("acc", "o_page")

	if seq, err := a.MaxSeq(ctx, conv); err != nil || seq != 0 {
		t.Fatalf("MaxSeq(empty) = %d, %v; want 0", seq, err)
	}
	if got, err := a.Since(ctx, conv, 0, 10); err != nil || len(got) != 0 {
		t.Fatalf("Since(empty) = %v, %v", ids(got), err)
	}

	now := time.Now()
	var msgs []relay.Message
	// Inserted out of order, in several batches: Since orders by seq.
	for _, seqs := range [][]uint64{{5, 1, 3}, {2, 4}, {9, 6, 8, 7, 10}} {
		var batch []relay.Message
		for _, s := range seqs {
			batch = append(batch, testMessage(conv, s, now.Add(time.Duration(s)*time.Millisecond)))
		}
		if err := a.Insert(ctx, batch); err != nil {
			t.Fatalf("Insert: %v", err)
		}
	}
	for s := uint64(1); s <= 10; s++ {
		msgs = append(msgs, testMessage(conv, s, now.Add(time.Duration(s)*time.Millisecond)))
	}
	// A neighbour conversation must not change anything.
	if err := a.Insert(ctx, []relay.Message{testMessage(relay.Conversation("acc", "o_other"), 99, now)}); err != nil {
		t.Fatalf("Insert: %v", err)
	}

	if seq, err := a.MaxSeq(ctx, conv); err != nil || seq != 10 {
		t.Errorf("MaxSeq = %d, %v; want 10", seq, err)
	}
	for _, tc := range []struct {
		after uint64
		limit int
		want  []relay.Message
	}{
		{0, 0, msgs},
		{0, 3, msgs[:3]},
		{3, 3, msgs[3:6]},
		{6, 100, msgs[6:]},
		{9, 1, msgs[9:]},
		{10, 5, nil},
		{1000, 5, nil},
	} {
		got, err := a.Since(ctx, conv, tc.after, tc.limit)
		if err != nil {
			t.Fatalf("Since(%d, %d): %v", tc.after, tc.limit, err)
		}
		sameMessages(t, fmt.Sprintf("Since(%d, %d)", tc.after, tc.limit), got, tc.want)
	}

	// Paging through with a small limit visits every message once.
	var paged []relay.Message
	for after := uint64(0); ; {
		page, err := a.Since(ctx, conv, after, 4)
		if err != nil {
			t.Fatalf("Since: %v", err)
		}
		if len(page) == 0 {
			break
		}
		paged = append(paged, page...)
		after = page[len(page)-1].Seq
	}
	sameMessages(t, "paged", paged, msgs)
}

// Every call gives up promptly on a context that is done, and the
// archive keeps working afterwards.
func TestDoneContextReturnsPromptly(t *testing.T) {
	t.Parallel()
	a := openTest(t)
	conv := relay.Conversation("acc", "o_ctx")
	msg := testMessage(conv, 1, time.Now())

	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	expired, cancel2 := context.WithDeadline(context.Background(), time.Now().Add(-time.Second))
	defer cancel2()

	calls := map[string]func(context.Context) error{
		"Insert":   func(ctx context.Context) error { return a.Insert(ctx, []relay.Message{msg}) },
		"Existing": func(ctx context.Context) error { _, err := a.Existing(ctx, []relay.Message{msg}); return err },
		"Since":    func(ctx context.Context) error { _, err := a.Since(ctx, conv, 0, 10); return err },
		"MaxSeq":   func(ctx context.Context) error { _, err := a.MaxSeq(ctx, conv); return err },
		"PutMedia": func(ctx context.Context) error {
			return a.PutMedia(ctx, relay.Media{MessageID: msg.ID, Data: []byte("x")})
		},
		"MissingMedia": func(ctx context.Context) error { _, err := a.MissingMedia(ctx, time.Time{}, 10); return err },
		"Ping":         a.Ping,
	}
	for name, call := range calls {
		for ctxName, ctx := range map[string]context.Context{"cancelled": cancelled, "expired": expired} {
			start := time.Now()
			err := call(ctx)
			if err == nil {
				t.Errorf("%s with a %s context succeeded", name, ctxName)
			}
			if d := time.Since(start); d > 2*time.Second {
				t.Errorf("%s with a %s context took %v", name, ctxName, d)
			}
		}
	}
	// A deadline that expires while the call is under way.
	for i := 0; i < 20; i++ {
		ctx, cancel := context.WithTimeout(context.Background(), time.Duration(i)*100*time.Microsecond)
		start := time.Now()
		_, _ = a.Since(ctx, conv, 0, 10)
		cancel()
		if d := time.Since(start); d > 2*time.Second {
			t.Errorf("Since with a short deadline took %v", d)
		}
	}

	ctx := testCtx(t)
	if err := a.Insert(ctx, []relay.Message{msg}); err != nil {
		t.Fatalf("Insert after cancelled calls: %v", err)
	}
	got, err := a.Since(ctx, conv, 0, 10)
	if err != nil {
		t.Fatalf("Since after cancelled calls: %v", err)
	}
	sameMessages(t, "Since", got, []relay.Message{msg})
}

// The ways of passing a list of ids as one bound parameter, on this
// server. Existing relies on the GroupSet form; the []string forms are
// logged, because what they do depends on the server version (18.16
// rejects an array on the right of IN).
func TestBoundIDListForms(t *testing.T) {
	t.Parallel()
	a := openTest(t)
	ctx := testCtx(t)
	conv := relay.Conversation("acc", "o_forms")
	m1, m2 := testMessage(conv, 1, time.Now()), testMessage(conv, 2, time.Now())
	m2.ID = `it's a \ tricky id`
	if err := a.Insert(ctx, []relay.Message{m1, m2}); err != nil {
		t.Fatalf("Insert: %v", err)
	}
	list := []string{m1.ID, m2.ID, "absent"}
	if n := count(t, a, `SELECT count() FROM messages WHERE id IN ?`, clickhouse.GroupSet{Value: []any{m1.ID, m2.ID, "absent"}}); n != 2 {
		t.Errorf("IN GroupSet matched %d rows, want 2", n)
	}
	if n := count(t, a, `SELECT count() FROM messages WHERE id IN ?`, clickhouse.GroupSet{Value: []any{m2.ID}}); n != 1 {
		t.Errorf("IN GroupSet of one matched %d rows, want 1", n)
	}
	if n := count(t, a, `SELECT count() FROM messages WHERE has(?, id)`, list); n != 2 {
		t.Errorf("has([]string) matched %d rows, want 2", n)
	}
	var n uint64
	err := a.conn.QueryRow(ctx, `SELECT count() FROM messages WHERE id IN ?`, list).Scan(&n)
	t.Logf("id IN ? with a []string: %d rows, err %v", n, err)
}
