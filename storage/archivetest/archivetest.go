// Package archivetest is the conformance suite of the archive: the
// contract of relay.Archive, relay.MediaStore, relay.EventLog and
// relay.Interactions, written once and run against every backend
// (ClickHouse in storage/archive, SQLite in storage/embedded), so that the
// embedded archive a first run uses behaves like the production one.
//
// The suite talks to a backend only through those interfaces. It never
// counts rows: a backend may keep physical copies of a replayed message
// or event (ClickHouse does, until parts merge) as long as every read
// collapses them into one logical message or event per id.
//
// What the suite pins down beyond the interfaces' doc comments, so that
// both backends agree on it:
//
//   - CreatedAt is kept to the second and AcceptedAt to the millisecond
//     (truncated), and both come back in UTC. A zero time comes back zero.
//     Empty Attrs and Raw may come back nil. Raw is kept byte for byte.
//   - Insert of nothing is a no-op. A batch holding a message without ID
//     or Seq is refused whole.
//   - A limit <= 0 for Since and MissingMedia means no limit.
//   - "After" is strict: Since excludes Seq == after, MissingMedia
//     excludes a message accepted exactly at since.
//   - A media message is one whose Kind.HasMedia() and whose MediaID is
//     set. PutMedia refuses content whose SHA256 does not match it.
//   - Existing finds a message asked about with the AcceptedAt it was
//     archived with (whatever its Seq, which a retry lacks), and one
//     asked about with an AcceptedAt seconds later (a WeChat retry).
//     Whether it finds a message asked about under another conversation,
//     or days away from its AcceptedAt, is not specified.
//   - ArchivedIDs finds the ids archived in the conversation asked about,
//     whenever they were accepted (months or years apart), with their
//     sequence; not those of another conversation, not a prefix or a
//     different case of an id. It returns an empty map, not nil, when
//     none is found, and for no ids at all.
//   - AppendEvents of nothing is a no-op; a batch holding an event
//     without ID, MessageID, State or At, or with an ErrCode beyond 32
//     bits, is refused whole. At is kept to the millisecond and comes
//     back in UTC.
//   - The latest event of a message is the one with the latest At (to
//     the millisecond); of events in the same millisecond, the latest in
//     the state order sending < unknown < refused < failed < sent, with
//     any other state (pending, or one unknown to the backend) below
//     sending; of those, the greatest ID.
//   - Unsettled lists outbound messages whose latest event is not final
//     (no event, pending, sending), accepted strictly after since, oldest
//     first by AcceptedAt then ID; limit <= 0 means no limit.
//   - Hash and BatchID are stored and read back with messages and
//     events, and a row read back (BatchRows, ScanBatches, ScanUnsealed)
//     hashes to what its writer hashed, whatever its content (invalid
//     UTF-8 in Raw, attrs, zero times). Seals come back field for field,
//     times to the millisecond in UTC; storing one again is harmless,
//     and Seals may return identical copies. Seals pages in (writer,
//     stream, number) order, numbers compared as numbers.
//   - LastInteraction counts the outbound messages of the conversation
//     accepted strictly after the last interaction whose latest event is
//     not failed or refused (no event yet counts: about to be sent). With
//     no interaction, the time is zero and every such outbound message of
//     the conversation counts.
package archivetest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wechat-relay/wechat-relay/relay"
	"github.com/wechat-relay/wechat-relay/relay/verify"
)

// Store is what the suite tests: an archive that also keeps media,
// delivery events and the interactions they are counted against.
type Store interface {
	relay.Archive
	relay.MediaStore
	relay.EventLog
	relay.Interactions
	verify.Source
	// ArchivedIDs (relay.NoticeStore; LatestEvents is the EventLog's).
	relay.NoticeStore
}

// Run runs the conformance suite. open is called once per subtest, from
// parallel subtests, and must return a new, empty store; closing it and
// removing what it created is open's job, through t.Cleanup.
func Run(t *testing.T, open func(t *testing.T) Store) {
	t.Helper()
	for _, c := range []struct {
		name string
		run  func(t *testing.T, s Store)
	}{
		{"RoundTripEveryField", testRoundTrip},
		{"InsertNothing", testInsertNothing},
		{"InsertRefusesUnkeyedBatchWhole", testInsertRefusesUnkeyed},
		{"InsertIsIdempotentByID", testInsertIdempotent},
		{"Existing", testExisting},
		{"ExistingByAcceptedAt", testExistingByAcceptedAt},
		{"ArchivedIDs", testArchivedIDs},
		{"ArchivedIDsMany", testArchivedIDsMany},
		{"MaxSeq", testMaxSeq},
		{"SincePagesInSequenceOrder", testSincePaging},
		{"SinceIsolatesConversations", testSinceIsolation},
		{"ConcurrentInserts", testConcurrentInserts},
		{"PutMediaIdempotentAndContentAddressed", testPutMedia},
		{"PutMediaRefusesWrongHash", testPutMediaWrongHash},
		{"MissingMedia", testMissingMedia},
		{"AppendEventsRoundTrip", testEventsRoundTrip},
		{"AppendEventsRefusesBadBatchWhole", testEventsRefused},
		{"AppendEventsIsIdempotentByID", testEventsIdempotent},
		{"LatestEventsOrder", testLatestEventsOrder},
		{"LatestEventsMany", testLatestEventsMany},
		{"Unsettled", testUnsettled},
		{"LastInteraction", testLastInteraction},
		{"LastInteractionKinds", testLastInteractionKinds},
		{"CancelledContext", testCancelledContext},
		{"SealRoundTrip", testSealRoundTrip},
		{"LatestSeal", testLatestSeal},
		{"SealsPageInChainOrder", testSealsPaging},
		{"HashesSurviveTheArchive", testHashesSurvive},
		{"BatchRowsAndScans", testBatchScans},
		{"VerifySealedArchive", testVerifySealed},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			c.run(t, open(t))
		})
	}
}

// base is the time the suite's messages are accepted around: a fixed
// instant, given in China Standard Time so that a backend that keeps the
// wall clock instead of the instant is caught. It is a whole millisecond,
// so that "accepted exactly at since" is exact on every backend.
var (
	cst  = time.FixedZone("CST", 8*3600)
	base = time.Date(2026, 3, 14, 9, 26, 53, 589_000_000, cst)
)

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// conv returns a conversation of the test account with the given client.
func conv(client string) relay.ConversationID { return relay.Conversation("acc", client) }

// message returns a plausible inbound text message of c with seq,
// accepted at base + seq seconds (seq modulo a million; plus some
// sub-millisecond noise the archive is expected to drop).
func message(c relay.ConversationID, seq uint64) relay.Message {
	_, client := c.Split()
	accepted := base.Add(time.Duration(seq%1_000_000)*time.Second + 123_456*time.Nanosecond)
	return relay.Message{
		ID:         fmt.Sprintf("in:acc:%s:%d", client, seq),
		Account:    "acc",
		Client:     client,
		Conv:       c,
		Seq:        seq,
		Direction:  relay.Inbound,
		Kind:       relay.KindText,
		WxMsgID:    fmt.Sprint(24000000000000000 + seq),
		Text:       fmt.Sprintf("消息 %d", seq),
		Raw:        fmt.Appendf(nil, "<xml><Content><![CDATA[消息 %d]]></Content></xml>", seq),
		CreatedAt:  accepted.Add(-1500 * time.Millisecond),
		AcceptedAt: accepted,
		Employee:   "emp1",
	}
}

// messages returns message(c, seq) for each of seqs.
func messages(c relay.ConversationID, seqs ...uint64) []relay.Message {
	out := make([]relay.Message, len(seqs))
	for i, s := range seqs {
		out[i] = message(c, s)
	}
	return out
}

func seqRange(from, to uint64) []uint64 {
	var out []uint64
	for s := from; s <= to; s++ {
		out = append(out, s)
	}
	return out
}

func insert(t *testing.T, s relay.Archive, msgs ...relay.Message) {
	t.Helper()
	if err := s.Insert(testCtx(t), msgs); err != nil {
		t.Fatalf("Insert of %d messages (%s): %v", len(msgs), idList(msgs), err)
	}
}

func since(t *testing.T, s Store, c relay.ConversationID, after uint64, limit int) []relay.Message {
	t.Helper()
	got, err := s.Since(testCtx(t), c, after, limit)
	if err != nil {
		t.Fatalf("Since(%s, %d, %d): %v", c, after, limit, err)
	}
	return got
}

func maxSeq(t *testing.T, s Store, c relay.ConversationID) uint64 {
	t.Helper()
	n, err := s.MaxSeq(testCtx(t), c)
	if err != nil {
		t.Fatalf("MaxSeq(%s): %v", c, err)
	}
	return n
}

func existing(t *testing.T, s Store, msgs []relay.Message) map[string]uint64 {
	t.Helper()
	got, err := s.Existing(testCtx(t), msgs)
	if err != nil {
		t.Fatalf("Existing(%d messages): %v", len(msgs), err)
	}
	return got
}

func missingMedia(t *testing.T, s Store, after time.Time, limit int) []relay.Message {
	t.Helper()
	got, err := s.MissingMedia(testCtx(t), after, limit)
	if err != nil {
		t.Fatalf("MissingMedia(%s, %d): %v", after.Format(time.RFC3339Nano), limit, err)
	}
	return got
}

func putMedia(t *testing.T, s Store, m relay.Media) {
	t.Helper()
	if err := s.PutMedia(testCtx(t), m); err != nil {
		t.Fatalf("PutMedia(message %s, %d bytes): %v", m.MessageID, len(m.Data), err)
	}
}

// normalize returns m as an archive gives it back: times truncated to
// what is stored, in UTC.
func normalize(m relay.Message) relay.Message {
	if !m.CreatedAt.IsZero() {
		m.CreatedAt = m.CreatedAt.Truncate(time.Second).UTC()
	}
	if !m.AcceptedAt.IsZero() {
		m.AcceptedAt = m.AcceptedAt.Truncate(time.Millisecond).UTC()
	}
	return m
}

// diff lists the fields in which got differs from normalize(want).
// Empty and nil Attrs or Raw are the same.
func diff(got, want relay.Message) []string {
	want = normalize(want)
	var d []string
	field := func(name string, g, w any) {
		if g != w {
			d = append(d, fmt.Sprintf("%s = %#v, want %#v", name, g, w))
		}
	}
	field("ID", got.ID, want.ID)
	field("Account", got.Account, want.Account)
	field("Client", got.Client, want.Client)
	field("Conv", got.Conv, want.Conv)
	field("Seq", got.Seq, want.Seq)
	field("Direction", got.Direction, want.Direction)
	field("Kind", got.Kind, want.Kind)
	field("WxMsgID", got.WxMsgID, want.WxMsgID)
	field("Event", got.Event, want.Event)
	field("EventKey", got.EventKey, want.EventKey)
	field("Text", got.Text, want.Text)
	field("MediaID", got.MediaID, want.MediaID)
	field("Employee", got.Employee, want.Employee)
	field("Hash", got.Hash, want.Hash)
	field("BatchID", got.BatchID, want.BatchID)
	if !maps.Equal(got.Attrs, want.Attrs) {
		d = append(d, fmt.Sprintf("Attrs = %#v, want %#v", got.Attrs, want.Attrs))
	}
	if !bytes.Equal(got.Raw, want.Raw) {
		d = append(d, fmt.Sprintf("Raw = %q, want %q", got.Raw, want.Raw))
	}
	timeField := func(name string, g, w time.Time) {
		switch {
		case !g.Equal(w):
			d = append(d, fmt.Sprintf("%s = %s, want %s", name, g.Format(time.RFC3339Nano), w.Format(time.RFC3339Nano)))
		case !g.IsZero() && g.Location() != time.UTC:
			d = append(d, fmt.Sprintf("%s is in %s, want UTC", name, g.Location()))
		}
	}
	timeField("CreatedAt", got.CreatedAt, want.CreatedAt)
	timeField("AcceptedAt", got.AcceptedAt, want.AcceptedAt)
	return d
}

// sameMessages fails t unless got is want, in order, field by field.
func sameMessages(t *testing.T, what string, got, want []relay.Message) {
	t.Helper()
	if len(got) != len(want) || idList(got) != idList(want) {
		t.Fatalf("%s:\n got %d messages [%s]\nwant %d messages [%s]", what, len(got), idList(got), len(want), idList(want))
	}
	for i := range want {
		if d := diff(got[i], want[i]); len(d) > 0 {
			t.Errorf("%s: message %s differs:\n\t%s", what, want[i].ID, strings.Join(d, "\n\t"))
		}
	}
}

func idList(msgs []relay.Message) string {
	parts := make([]string, len(msgs))
	for i, m := range msgs {
		parts[i] = fmt.Sprintf("%s#%d", m.ID, m.Seq)
	}
	return strings.Join(parts, " ")
}

func testRoundTrip(t *testing.T, s Store) {
	c := conv("o6_bmjrPTlm6_2sgVt7hMZOPfL2M")
	created := time.Date(2026, 3, 14, 9, 26, 51, 987_654_321, cst)
	accepted := time.Date(2026, 3, 14, 9, 26, 53, 589_793_238, cst)
	msgs := []relay.Message{
		{
			ID:        relay.InboundID("acc", "o6_bmjrPTlm6_2sgVt7hMZOPfL2M", "24518736451234567", 0, "", ""),
			Account:   "acc",
			Client:    "o6_bmjrPTlm6_2sgVt7hMZOPfL2M",
			Conv:      c,
			Seq:       1,
			Direction: relay.Inbound,
			Kind:      relay.KindText,
			WxMsgID:   "24518736451234567",
			Text:      "您好，请问我的基金赎回到账了吗？🙏 «quotes» & <tags>",
			Attrs:     map[string]string{"lang": "zh_CN", "备注": "客户 VIP", "empty": ""},
			// What was received, exactly: a control byte the sanitised
			// Text drops, bytes that are not UTF-8, and a NUL.
			Raw: append([]byte("<xml><Content><![CDATA[您好\x02，请问"),
				0xff, 0xfe, 0xc3, 0x28, 0x00, 0xe4, 0xbd,
				']', ']', '>', '<', '/', 'C', 'o', 'n', 't', 'e', 'n', 't', '>', '<', '/', 'x', 'm', 'l', '>'),
			CreatedAt:  created,
			AcceptedAt: accepted,
			Employee:   "emp_张三",
		},
		{
			ID:        relay.InboundID("acc", "o6_bmjrPTlm6_2sgVt7hMZOPfL2M", "", created.Unix(), "subscribe", "qrscene_emp42"),
			Account:   "acc",
			Client:    "o6_bmjrPTlm6_2sgVt7hMZOPfL2M",
			Conv:      c,
			Seq:       2,
			Direction: relay.Inbound,
			Kind:      relay.KindEvent,
			Event:     "subscribe",
			EventKey:  "qrscene_emp42",
			Raw:       []byte("<xml><Event><![CDATA[subscribe]]></Event></xml>"),
			// Sub-second parts that must be dropped, and a time in UTC.
			CreatedAt:  time.Date(2026, 3, 14, 1, 27, 0, 999_999_999, time.UTC),
			AcceptedAt: time.Date(2026, 3, 14, 1, 27, 1, 999_999_999, time.UTC),
		},
		{
			ID:         "out:acc:7d1f0c5e",
			Account:    "acc",
			Client:     "o6_bmjrPTlm6_2sgVt7hMZOPfL2M",
			Conv:       c,
			Seq:        3,
			Direction:  relay.Outbound,
			Kind:       relay.KindImage,
			MediaID:    "MEDIA_ID_4x8fQ-_Zk",
			Attrs:      map[string]string{"file_name": "季度报告.png", "pic_url": "http://mmbiz.qpic.cn/x?a=1&b=2"},
			CreatedAt:  accepted.Add(time.Minute),
			AcceptedAt: accepted.Add(time.Minute + 7*time.Millisecond),
			Employee:   "emp_张三",
		},
		// Every field that may be empty, empty; times zero.
		{ID: "in:acc:minimal", Conv: c, Seq: 4},
	}
	insert(t, s, msgs...)
	sameMessages(t, "Since after 0", since(t, s, c, 0, 100), msgs)

	// The sequences are reported as archived.
	want := map[string]uint64{msgs[0].ID: 1, msgs[1].ID: 2, msgs[2].ID: 3, msgs[3].ID: 4}
	if got := existing(t, s, msgs); !maps.Equal(got, want) {
		t.Errorf("Existing = %v, want %v", got, want)
	}
	if got := maxSeq(t, s, c); got != 4 {
		t.Errorf("MaxSeq = %d, want 4", got)
	}
}

func testInsertNothing(t *testing.T, s Store) {
	ctx := testCtx(t)
	if err := s.Insert(ctx, nil); err != nil {
		t.Fatalf("Insert(nil): %v", err)
	}
	if err := s.Insert(ctx, []relay.Message{}); err != nil {
		t.Fatalf("Insert(empty): %v", err)
	}
	c := conv("o_nothing")
	if got := maxSeq(t, s, c); got != 0 {
		t.Fatalf("MaxSeq after inserting nothing = %d, want 0", got)
	}
	if got := since(t, s, c, 0, 0); len(got) != 0 {
		t.Fatalf("Since after inserting nothing = [%s], want none", idList(got))
	}
}

func testInsertRefusesUnkeyed(t *testing.T, s Store) {
	c := conv("o_unkeyed")
	good := message(c, 1)
	noID := message(c, 2)
	noID.ID = ""
	noSeq := message(c, 3)
	noSeq.Seq = 0
	for _, bad := range []relay.Message{noID, noSeq} {
		err := s.Insert(testCtx(t), []relay.Message{good, bad})
		if err == nil {
			t.Fatalf("Insert of a batch with ID %q, Seq %d succeeded, want an error", bad.ID, bad.Seq)
		}
	}
	if got := existing(t, s, []relay.Message{good, noSeq}); len(got) != 0 {
		t.Fatalf("after refused batches Existing = %v, want nothing: a refused batch must store nothing", got)
	}
	if got := since(t, s, c, 0, 0); len(got) != 0 {
		t.Fatalf("after refused batches Since = [%s], want none", idList(got))
	}
}

func testInsertIdempotent(t *testing.T, s Store) {
	c := conv("o_replay")
	first := messages(c, 1, 2, 3)
	insert(t, s, first...)
	// A replay of the same batch after a crash.
	insert(t, s, first...)
	// An overlapping batch: 2 and 3 again, 4 and 5 new.
	insert(t, s, messages(c, 2, 3, 4, 5)...)
	// A batch holding the same message twice.
	insert(t, s, messages(c, 6, 6)...)
	// Once more, in another order.
	insert(t, s, messages(c, 6, 5, 4, 3, 2, 1)...)

	want := messages(c, seqRange(1, 6)...)
	sameMessages(t, "Since after replays", since(t, s, c, 0, 0), want)
	sameMessages(t, "Since after 2, limit 2, after replays", since(t, s, c, 2, 2), messages(c, 3, 4))

	wantSeqs := map[string]uint64{}
	for _, m := range want {
		wantSeqs[m.ID] = m.Seq
	}
	if got := existing(t, s, want); !maps.Equal(got, wantSeqs) {
		t.Errorf("Existing after replays = %v, want %v", got, wantSeqs)
	}
	if got := maxSeq(t, s, c); got != 6 {
		t.Errorf("MaxSeq after replays = %d, want 6", got)
	}
}

func testExisting(t *testing.T, s Store) {
	a, b := conv("o_exist_a"), conv("o_exist_b")
	ma, mb := messages(a, 1, 2, 3), messages(b, 1, 2)
	insert(t, s, ma...)
	insert(t, s, mb...)

	// withID is m under another id: the same conversation and time, so
	// that only the id decides.
	withID := func(m relay.Message, id string) relay.Message {
		m.ID = id
		return m
	}
	// A retry that slipped past the dedupe: no sequence yet, accepted
	// again a few seconds after the archived copy.
	retry := ma[1]
	retry.Seq = 0
	retry.AcceptedAt = retry.AcceptedAt.Add(4 * time.Second)
	unnumbered := mb[0]
	unnumbered.Seq = 0

	for _, c := range []struct {
		name string
		msgs []relay.Message
		want map[string]uint64
	}{
		{"nil", nil, map[string]uint64{}},
		{"empty", []relay.Message{}, map[string]uint64{}},
		{"missing", []relay.Message{withID(ma[0], "in:acc:nope"), message(a, 4), withID(ma[0], "")}, map[string]uint64{}},
		{"all", []relay.Message{ma[0], ma[1], ma[2], mb[0], mb[1]},
			map[string]uint64{ma[0].ID: 1, ma[1].ID: 2, ma[2].ID: 3, mb[0].ID: 1, mb[1].ID: 2}},
		{"mixed", []relay.Message{withID(mb[0], "in:acc:nope"), mb[1], ma[2], message(b, 3)},
			map[string]uint64{mb[1].ID: 2, ma[2].ID: 3}},
		{"repeated", []relay.Message{ma[0], ma[0], withID(ma[0], "x"), withID(ma[0], "x")}, map[string]uint64{ma[0].ID: 1}},
		{"prefix is not a match", []relay.Message{
			withID(ma[0], "in:acc:o_exist_a:"), withID(ma[0], "in:acc:o_exist_a:1 "), withID(ma[0], "IN:ACC:O_EXIST_A:1"),
		}, map[string]uint64{}},
		{"without sequence: the archived one", []relay.Message{unnumbered}, map[string]uint64{mb[0].ID: 1}},
		{"a retry seconds later", []relay.Message{retry}, map[string]uint64{ma[1].ID: 2}},
	} {
		got := existing(t, s, c.msgs)
		if got == nil {
			t.Errorf("Existing(%s) returned a nil map, want an empty one", c.name)
		}
		if !maps.Equal(got, c.want) {
			t.Errorf("Existing(%s) = %v, want %v", c.name, got, c.want)
		}
	}

	// Many messages at once, as after a long outage: more than one round
	// of any chunking a backend does, with the archived ones scattered.
	var many []relay.Message
	want := map[string]uint64{}
	for i := range 2500 {
		many = append(many, message(a, uint64(1000+i)))
		switch i {
		case 7:
			many = append(many, ma[0])
			want[ma[0].ID] = 1
		case 1200:
			many = append(many, mb[1])
			want[mb[1].ID] = 2
		case 2499:
			many = append(many, ma[2])
			want[ma[2].ID] = 3
		}
	}
	if got := existing(t, s, many); !maps.Equal(got, want) {
		t.Errorf("Existing(%d messages) = %v, want %v", len(many), got, want)
	}
}

// testExistingByAcceptedAt: a message archived with AcceptedAt T is found
// when asked about with the same T, wherever T falls: on either side of
// midnight UTC, on a date that differs between China and UTC, at the
// ends of months and years, zero, before 1970 — alone, and in batches
// spanning them all.
func testExistingByAcceptedAt(t *testing.T, s Store) {
	times := []time.Time{
		{}, // zero
		time.Date(1969, 12, 31, 23, 59, 59, 0, time.UTC),
		time.Date(1970, 1, 1, 0, 0, 0, 500_000_000, time.UTC),
		time.Date(2001, 9, 9, 1, 46, 40, 0, time.UTC),
		time.Date(2025, 12, 31, 23, 59, 59, 999_000_000, time.UTC),
		time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(2026, 1, 31, 23, 59, 59, 999_999_999, time.UTC),
		time.Date(2026, 3, 14, 7, 30, 0, 0, cst),   // 13 March in UTC
		time.Date(2026, 3, 15, 0, 0, 0, 1, cst),    // 14 March in UTC
		time.Date(2026, 3, 14, 23, 59, 59, 0, cst), // 14 March both
		time.Date(2099, 12, 31, 23, 59, 59, 0, time.UTC),
	}
	convs := []relay.ConversationID{conv("o_when_a"), conv("o_when_b"), relay.Conversation("acc2", "o_when_a")}
	var all []relay.Message
	want := map[string]uint64{}
	for i, at := range times {
		c := convs[i%len(convs)]
		m := message(c, uint64(i+1))
		m.Account, _ = c.Split()
		m.ID = fmt.Sprintf("in:%s:%d", c, i+1)
		m.AcceptedAt = at
		m.CreatedAt = at
		all = append(all, m)
		want[m.ID] = m.Seq
	}
	// Archived one at a time and in one batch of copies: either way, one
	// message per id.
	for _, m := range all {
		insert(t, s, m)
	}
	insert(t, s, all...)

	for _, m := range all {
		if got := existing(t, s, []relay.Message{m}); !maps.Equal(got, map[string]uint64{m.ID: m.Seq}) {
			t.Errorf("Existing(message accepted at %s) = %v, want {%s: %d}", m.AcceptedAt.Format(time.RFC3339Nano), got, m.ID, m.Seq)
		}
	}
	if got := existing(t, s, all); !maps.Equal(got, want) {
		t.Errorf("Existing(all %d) = %v, want %v", len(all), got, want)
	}
	// Asked without sequence numbers (as a retry is), in reverse order.
	var unnumbered []relay.Message
	for _, m := range slices.Backward(all) {
		m.Seq = 0
		unnumbered = append(unnumbered, m)
	}
	if got := existing(t, s, unnumbered); !maps.Equal(got, want) {
		t.Errorf("Existing(all %d, unnumbered) = %v, want %v", len(all), got, want)
	}
}

func testMaxSeq(t *testing.T, s Store) {
	a, a1, b := conv("o_max"), conv("o_max1"), conv("o_maxi")
	if got := maxSeq(t, s, a); got != 0 {
		t.Fatalf("MaxSeq of an empty archive = %d, want 0", got)
	}
	insert(t, s, messages(a, 1, 2, 3)...)
	insert(t, s, messages(a1, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11)...)
	insert(t, s, messages(b, 1)...)
	for _, c := range []struct {
		conv relay.ConversationID
		want uint64
	}{
		{a, 3},
		{a1, 11},
		{b, 1},
		{conv("o_ma"), 0},
		{conv("o_never"), 0},
		{"", 0},
	} {
		if got := maxSeq(t, s, c.conv); got != c.want {
			t.Errorf("MaxSeq(%q) = %d, want %d", c.conv, got, c.want)
		}
	}
	// The highest number, not the latest insert nor the count: a batch
	// may come back late, and numbers may skip.
	insert(t, s, messages(a, 9)...)
	insert(t, s, messages(a, 5)...)
	if got := maxSeq(t, s, a); got != 9 {
		t.Errorf("MaxSeq after 1,2,3,9,5 = %d, want 9", got)
	}
	// Beyond 2^32 and 2^53, where a 32-bit or float column would fail.
	const big = 1<<53 + 1
	insert(t, s, messages(b, big)...)
	if got := maxSeq(t, s, b); got != big {
		t.Errorf("MaxSeq after %d = %d", uint64(big), got)
	}
	sameMessages(t, "Since after 1", since(t, s, b, 1, 0), messages(b, big))
}

func testSincePaging(t *testing.T, s Store) {
	c := conv("o_pages")
	all := messages(c, seqRange(1, 10)...)
	// Archived in several batches, out of order.
	shuffled := slices.Clone(all)
	rand.New(rand.NewPCG(1, 2)).Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
	insert(t, s, shuffled[:4]...)
	insert(t, s, shuffled[4:]...)

	sameMessages(t, "Since(0, 0)", since(t, s, c, 0, 0), all)
	sameMessages(t, "Since(0, -1)", since(t, s, c, 0, -1), all)
	sameMessages(t, "Since(0, 100)", since(t, s, c, 0, 100), all)

	// Paging by three, the way a console catches up.
	var got []relay.Message
	after, pages := uint64(0), 0
	for {
		page := since(t, s, c, after, 3)
		if len(page) == 0 {
			break
		}
		if len(page) > 3 {
			t.Fatalf("Since(%d, 3) returned %d messages", after, len(page))
		}
		got = append(got, page...)
		after = page[len(page)-1].Seq
		if pages++; pages > 10 {
			t.Fatalf("paging does not end: last page [%s]", idList(page))
		}
	}
	if pages != 4 {
		t.Errorf("paging by 3 through 10 messages took %d pages, want 4", pages)
	}
	sameMessages(t, "pages of 3", got, all)

	sameMessages(t, "Since(4, 2)", since(t, s, c, 4, 2), all[4:6])
	sameMessages(t, "Since(9, 5)", since(t, s, c, 9, 5), all[9:])
	sameMessages(t, "Since(10, 5)", since(t, s, c, 10, 5), nil)
	sameMessages(t, "Since(1000, 0)", since(t, s, c, 1000, 0), nil)
	sameMessages(t, "Since(0, 1)", since(t, s, c, 0, 1), all[:1])
}

func testSinceIsolation(t *testing.T, s Store) {
	// Conversations whose names are prefixes of each other, of the same
	// client on two accounts, and sharing sequence numbers.
	convs := []relay.ConversationID{
		relay.Conversation("acc", "o_iso"),
		relay.Conversation("acc", "o_iso1"),
		relay.Conversation("acc", "o_is"),
		relay.Conversation("acc2", "o_iso"),
	}
	want := map[relay.ConversationID][]relay.Message{}
	var batch []relay.Message
	for i, c := range convs {
		for seq := uint64(1); seq <= uint64(3+i); seq++ {
			m := message(c, seq)
			m.Account, _ = c.Split()
			m.ID = fmt.Sprintf("in:%s:%d", c, seq)
			want[c] = append(want[c], m)
			batch = append(batch, m)
		}
	}
	// One batch across all conversations, interleaved.
	sort.SliceStable(batch, func(i, j int) bool { return batch[i].Seq < batch[j].Seq })
	insert(t, s, batch...)
	for _, c := range convs {
		sameMessages(t, fmt.Sprintf("Since(%s, 0)", c), since(t, s, c, 0, 0), want[c])
		sameMessages(t, fmt.Sprintf("Since(%s, 1, 2)", c), since(t, s, c, 1, 2), want[c][1:3])
		if got, w := maxSeq(t, s, c), uint64(len(want[c])); got != w {
			t.Errorf("MaxSeq(%s) = %d, want %d", c, got, w)
		}
	}
	sameMessages(t, "Since of an unknown conversation", since(t, s, conv("o_i"), 0, 0), nil)
}

func testConcurrentInserts(t *testing.T, s Store) {
	const (
		writers  = 8
		batches  = 5
		perBatch = 4
	)
	ctx := testCtx(t)
	shared := messages(conv("o_shared"), 1, 2, 3)
	var wg sync.WaitGroup
	errs := make(chan error, writers*(batches+1))
	for w := range writers {
		wg.Go(func() {
			c := conv(fmt.Sprintf("o_writer%d", w))
			for b := range batches {
				first := uint64(b*perBatch + 1)
				if err := s.Insert(ctx, messages(c, seqRange(first, first+perBatch-1)...)); err != nil {
					errs <- fmt.Errorf("writer %d batch %d: %w", w, b, err)
					return
				}
			}
			// Every writer replays the same batch too.
			if err := s.Insert(ctx, shared); err != nil {
				errs <- fmt.Errorf("writer %d shared batch: %w", w, err)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if t.Failed() {
		return
	}
	for w := range writers {
		c := conv(fmt.Sprintf("o_writer%d", w))
		sameMessages(t, string(c), since(t, s, c, 0, 0), messages(c, seqRange(1, batches*perBatch)...))
	}
	sameMessages(t, "shared", since(t, s, conv("o_shared"), 0, 0), shared)
}

// mediaMessage returns an inbound message of kind with a media id,
// accepted at base + offset.
func mediaMessage(c relay.ConversationID, seq uint64, kind relay.Kind, mediaID string, offset time.Duration) relay.Message {
	m := message(c, seq)
	m.Kind = kind
	m.Text = ""
	m.MediaID = mediaID
	m.AcceptedAt = base.Add(offset)
	m.CreatedAt = m.AcceptedAt.Add(-time.Second)
	if mediaID != "" {
		m.Attrs = map[string]string{"media_id": mediaID}
	}
	return m
}

func media(m relay.Message, data []byte) relay.Media {
	sum := sha256.Sum256(data)
	return relay.Media{
		SHA256:      hex.EncodeToString(sum[:]),
		MessageID:   m.ID,
		MediaID:     m.MediaID,
		ContentType: "image/jpeg",
		FileName:    "图片.jpg",
		Data:        data,
		FetchedAt:   m.AcceptedAt.Add(2 * time.Second),
	}
}

// blob returns n bytes of every value, seeded.
func blob(n int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, seed))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

func testPutMedia(t *testing.T, s Store) {
	c := conv("o_media")
	m1 := mediaMessage(c, 1, relay.KindImage, "MEDIA_1", time.Second)
	m2 := mediaMessage(c, 2, relay.KindImage, "MEDIA_2", 2*time.Second)
	m3 := mediaMessage(c, 3, relay.KindVoice, "MEDIA_3", 3*time.Second)
	insert(t, s, m1, m2, m3)
	sameMessages(t, "MissingMedia before any PutMedia", missingMedia(t, s, base, 0), []relay.Message{m1, m2, m3})

	// One MiB, every byte value, NULs included.
	picture := blob(1<<20, 1)
	putMedia(t, s, media(m1, picture))
	putMedia(t, s, media(m1, picture)) // idempotent
	sameMessages(t, "MissingMedia after PutMedia of m1 twice", missingMedia(t, s, base, 0), []relay.Message{m2, m3})

	// The same bytes sent again, as another message with another media
	// id: stored once, linked to both.
	again := media(m2, picture)
	again.ContentType = "image/png"
	again.FileName = ""
	putMedia(t, s, again)
	putMedia(t, s, media(m1, picture))
	sameMessages(t, "MissingMedia after the same bytes for m2", missingMedia(t, s, base, 0), []relay.Message{m3})

	putMedia(t, s, media(m3, blob(5000, 3)))
	sameMessages(t, "MissingMedia after all PutMedia", missingMedia(t, s, base, 0), nil)

	// Archiving a message again does not make its media missing again.
	insert(t, s, m1, m2, m3)
	sameMessages(t, "MissingMedia after replay", missingMedia(t, s, base, 0), nil)
}

func testPutMediaWrongHash(t *testing.T, s Store) {
	c := conv("o_badhash")
	m := mediaMessage(c, 1, relay.KindFile, "MEDIA_F", time.Second)
	insert(t, s, m)
	bad := media(m, []byte("%PDF-1.7 ..."))
	bad.SHA256 = hex.EncodeToString(make([]byte, sha256.Size))
	if err := s.PutMedia(testCtx(t), bad); err == nil {
		t.Fatal("PutMedia with a SHA256 that is not the data's succeeded, want an error")
	}
	sameMessages(t, "MissingMedia after refused PutMedia", missingMedia(t, s, base, 0), []relay.Message{m})
}

func testMissingMedia(t *testing.T, s Store) {
	a, b := conv("o_mm_a"), conv("o_mm_b")
	var (
		a0 = mediaMessage(a, 1, relay.KindImage, "M_A0", -10*time.Second) // before since
		a1 = mediaMessage(a, 2, relay.KindImage, "M_A1", 1*time.Second)
		b1 = mediaMessage(b, 1, relay.KindVoice, "M_B1", 2*time.Second)
		a2 = mediaMessage(a, 3, relay.KindText, "", 3*time.Second) // no media
		a3 = mediaMessage(a, 4, relay.KindVideo, "M_A3", 4*time.Second)
		b2 = mediaMessage(b, 2, relay.KindFile, "M_B2", 5*time.Second) // stored below
		b3 = mediaMessage(b, 3, relay.KindShortVideo, "M_B3", 6*time.Second)
		a4 = mediaMessage(a, 5, relay.KindImage, "", 7*time.Second)      // media kind without a media id
		b4 = mediaMessage(b, 4, relay.KindLocation, "", 8*time.Second)   // no media
		b5 = mediaMessage(b, 5, relay.KindEvent, "", 9*time.Second)      // no media
		a5 = mediaMessage(a, 6, relay.KindVoice, "M_A5", 10*time.Second) // stored below
		b6 = mediaMessage(b, 6, relay.KindImage, "M_B6", 11*time.Second) // newest
	)
	a2.Text = "你好"
	b5.Event, b5.EventKey = "SCAN", "emp42"
	// Sequence order and acceptance order differ across conversations,
	// and batches arrive out of order.
	insert(t, s, b1, b2, b3, b4, b5, b6)
	insert(t, s, a0, a1, a2, a3, a4, a5)
	insert(t, s, a1, b1) // replayed: still listed once
	putMedia(t, s, media(b2, []byte("file contents")))
	putMedia(t, s, media(a5, []byte("voice contents")))

	from := base
	sameMessages(t, "MissingMedia(base, 0)", missingMedia(t, s, from, 0), []relay.Message{a1, b1, a3, b3, b6})
	sameMessages(t, "MissingMedia(base, -1)", missingMedia(t, s, from, -1), []relay.Message{a1, b1, a3, b3, b6})
	sameMessages(t, "MissingMedia(base, 2)", missingMedia(t, s, from, 2), []relay.Message{a1, b1})
	sameMessages(t, "MissingMedia(base, 1)", missingMedia(t, s, from, 1), []relay.Message{a1})
	sameMessages(t, "MissingMedia(base, 100)", missingMedia(t, s, from, 100), []relay.Message{a1, b1, a3, b3, b6})
	// The same instant in another zone.
	sameMessages(t, "MissingMedia(base in UTC, 0)", missingMedia(t, s, from.UTC(), 0), []relay.Message{a1, b1, a3, b3, b6})
	// After is strict: b1 was accepted at exactly base+2s.
	sameMessages(t, "MissingMedia(base+2s, 0)", missingMedia(t, s, base.Add(2*time.Second), 0), []relay.Message{a3, b3, b6})
	sameMessages(t, "MissingMedia(base+11s, 0)", missingMedia(t, s, base.Add(11*time.Second), 0), nil)
	sameMessages(t, "MissingMedia(zero time, 0)", missingMedia(t, s, time.Time{}, 0), []relay.Message{a0, a1, b1, a3, b3, b6})
	sameMessages(t, "MissingMedia(a day before, 3)", missingMedia(t, s, base.Add(-24*time.Hour), 3), []relay.Message{a0, a1, b1})

	putMedia(t, s, media(a1, []byte("image contents")))
	putMedia(t, s, media(b3, []byte("file contents"))) // same bytes as b2's
	sameMessages(t, "MissingMedia after two more", missingMedia(t, s, from, 0), []relay.Message{b1, a3, b6})
}

func testCancelledContext(t *testing.T, s Store) {
	c := conv("o_cancel")
	m := mediaMessage(c, 1, relay.KindImage, "M_C", time.Second)
	insert(t, s, m)

	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	calls := []struct {
		name string
		call func() error
	}{
		{"Insert", func() error { return s.Insert(ctx, messages(c, 2)) }},
		{"Existing", func() error { _, err := s.Existing(ctx, []relay.Message{m}); return err }},
		{"ArchivedIDs", func() error { _, err := s.ArchivedIDs(ctx, c, []string{m.ID}); return err }},
		{"Since", func() error { _, err := s.Since(ctx, c, 0, 10); return err }},
		{"MaxSeq", func() error { _, err := s.MaxSeq(ctx, c); return err }},
		{"PutMedia", func() error { return s.PutMedia(ctx, media(m, []byte("x"))) }},
		{"MissingMedia", func() error { _, err := s.MissingMedia(ctx, base, 10); return err }},
		{"AppendEvents", func() error {
			return s.AppendEvents(ctx, []relay.DeliveryEvent{deliveryEvent(m, relay.DeliverySent, base)})
		}},
		{"LatestEvents", func() error { _, err := s.LatestEvents(ctx, []string{m.ID}); return err }},
		{"Unsettled", func() error { _, err := s.Unsettled(ctx, base, 10); return err }},
		{"LastInteraction", func() error { _, _, err := s.LastInteraction(ctx, c); return err }},
	}
	for _, call := range calls {
		done := make(chan error, 1)
		go func() { done <- call.call() }()
		select {
		case err := <-done:
			if err == nil {
				t.Errorf("%s with a cancelled context succeeded, want an error", call.name)
			}
		case <-time.After(30 * time.Second):
			t.Fatalf("%s with a cancelled context has not returned after 30s", call.name)
		}
	}
	// The store still works afterwards. (Whether the cancelled Insert
	// stored anything is not specified: an error means "not known to be
	// stored", and the pipeline inserts again.)
	got := since(t, s, c, 0, 0)
	if len(got) == 0 {
		t.Fatal("Since after cancelled calls returned nothing")
	}
	sameMessages(t, "Since after cancelled calls", got[:1], []relay.Message{m})
}
