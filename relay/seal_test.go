package relay

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"
)

// field writes one field of the canonical encoding the way the
// documentation in seal.go says, independently of the encoder there.
func field(b *bytes.Buffer, s string) {
	var n [8]byte
	binary.BigEndian.PutUint64(n[:], uint64(len(s)))
	b.Write(n[:])
	b.WriteString(s)
}

func sha(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// vectorMessage is the message of the documented test vector.
func vectorMessage() Message {
	return Message{
		ID: "in:acme:24000000000000001", Account: "acme", Client: "o_client", Conv: "acme:o_client", Seq: 7,
		Direction: Inbound, Kind: KindText, WxMsgID: "24000000000000001",
		Text: "你好", Attrs: map[string]string{"b": "2", "a": "1"},
		Raw:       []byte("<xml>你好</xml>"),
		CreatedAt: time.Unix(1700000000, 999_000_000), AcceptedAt: time.UnixMilli(1700000001234).Add(567 * time.Microsecond),
		Employee: "alice",
	}
}

// Test vectors: the hashes a verifier outside this code must reproduce
// (docs/tamper-evidence.md spells out the bytes).
const (
	vectorMessageHash = "6c0902329bb1567d9b643074b6a764b761b0ac2312a58618a243d475c0f927e9"
	vectorEventHash   = "515b1a20c4ca918696b92a78ad60b98c406371102f791391612ca10ddd5245ed"
	vectorSealHash    = "55fcdb0269cc7dd1691962f6ee38716509227b83284cfe22a6c867d123fb1704"
)

func TestMessageHashFollowsTheDocumentedEncoding(t *testing.T) {
	m := vectorMessage()
	var b bytes.Buffer
	for _, f := range []string{
		"wechat-relay/message/v1", "in:acme:24000000000000001", "acme", "o_client", "acme:o_client", "7",
		"in", "text", "24000000000000001", "", "", "你好", "",
		"2", "a", "1", "b", "2",
		"<xml>你好</xml>", "1700000000", "1700000001234", "alice", "1",
	} {
		field(&b, f)
	}
	want := sha(b.Bytes())
	if got := MessageHash(m); got != want {
		t.Fatalf("MessageHash = %s, the documented encoding gives %s", got, want)
	}
	if want != vectorMessageHash {
		t.Errorf("test vector changed: %s, documented %s", want, vectorMessageHash)
	}
}

func TestEventHashFollowsTheDocumentedEncoding(t *testing.T) {
	ev := DeliveryEvent{
		ID: "out:acme:o_client:k1/failed", MessageID: "out:acme:o_client:k1", Account: "acme", Conv: "acme:o_client",
		State: DeliveryFailed, ErrCode: -1, ErrMsg: "system busy", At: time.UnixMilli(1700000002000),
	}
	var b bytes.Buffer
	for _, f := range []string{
		"wechat-relay/event/v1", "out:acme:o_client:k1/failed", "out:acme:o_client:k1", "acme", "acme:o_client",
		"failed", "-1", "system busy", "1700000002000",
	} {
		field(&b, f)
	}
	want := sha(b.Bytes())
	if got := EventHash(ev); got != want {
		t.Fatalf("EventHash = %s, the documented encoding gives %s", got, want)
	}
	if want != vectorEventHash {
		t.Errorf("test vector changed: %s, documented %s", want, vectorEventHash)
	}
}

func TestSealHashFollowsTheDocumentedEncoding(t *testing.T) {
	m := vectorMessage()
	h := MessageHash(m)
	s := newSeal("relay-1", StreamMessages, 1, "", []Leaf{{ID: m.ID, Conv: m.Conv, Hash: h}},
		m.AcceptedAt, m.AcceptedAt, time.UnixMilli(1700000003000), false)
	if s.ID != "relay-1/messages/00000000000000000001" {
		t.Fatalf("seal id %q", s.ID)
	}
	var b bytes.Buffer
	for _, f := range []string{
		"wechat-relay/seal/v1", s.ID, "relay-1", "messages", "1", "", MerkleRoot([]string{h}), "1",
		"1700000001234", "1700000001234", "1700000003000", "0",
		m.ID, "acme:o_client", h,
	} {
		field(&b, f)
	}
	want := sha(b.Bytes())
	if s.Hash != want || s.ComputeHash() != want {
		t.Fatalf("seal hash = %s, the documented encoding gives %s", s.Hash, want)
	}
	if want != vectorSealHash {
		t.Errorf("test vector changed: %s, documented %s", want, vectorSealHash)
	}
}

// Every archived field is covered: changing any one changes the hash.
func TestMessageHashCoversEveryField(t *testing.T) {
	base := MessageHash(vectorMessage())
	for name, change := range map[string]func(*Message){
		"ID":         func(m *Message) { m.ID += "x" },
		"Account":    func(m *Message) { m.Account += "x" },
		"Client":     func(m *Message) { m.Client += "x" },
		"Conv":       func(m *Message) { m.Conv += "x" },
		"Seq":        func(m *Message) { m.Seq++ },
		"Direction":  func(m *Message) { m.Direction = Outbound },
		"Kind":       func(m *Message) { m.Kind = KindImage },
		"WxMsgID":    func(m *Message) { m.WxMsgID += "1" },
		"Event":      func(m *Message) { m.Event = "x" },
		"EventKey":   func(m *Message) { m.EventKey = "x" },
		"Text":       func(m *Message) { m.Text += "!" },
		"MediaID":    func(m *Message) { m.MediaID = "x" },
		"AttrValue":  func(m *Message) { m.Attrs["a"] = "9" },
		"AttrKey":    func(m *Message) { m.Attrs["c"] = "" },
		"Raw":        func(m *Message) { m.Raw = append(m.Raw, ' ') },
		"CreatedAt":  func(m *Message) { m.CreatedAt = m.CreatedAt.Add(time.Second) },
		"AcceptedAt": func(m *Message) { m.AcceptedAt = m.AcceptedAt.Add(time.Millisecond) },
		"Employee":   func(m *Message) { m.Employee = "bob" },
	} {
		m := vectorMessage()
		change(&m)
		if MessageHash(m) == base {
			t.Errorf("changing %s leaves the hash unchanged", name)
		}
	}
	m := vectorMessage()
	if messageHash(m, false) == base {
		t.Error("the interaction column is not covered")
	}
}

// The hash is of what the archive keeps: what it drops (sub-second
// CreatedAt, sub-millisecond AcceptedAt, the zone, nil against empty,
// the order of attrs) does not count.
func TestMessageHashIsOfTheArchivedForm(t *testing.T) {
	m := vectorMessage()
	base := MessageHash(m)
	stored := m
	stored.CreatedAt = time.Unix(1700000000, 0).In(time.FixedZone("CST", 8*3600))
	stored.AcceptedAt = time.UnixMilli(1700000001234).UTC()
	stored.Attrs = map[string]string{"a": "1", "b": "2"}
	if MessageHash(stored) != base {
		t.Error("the hash depends on what the archive does not keep")
	}
	empty, nilled := vectorMessage(), vectorMessage()
	empty.Raw, empty.Attrs = []byte{}, map[string]string{}
	nilled.Raw, nilled.Attrs = nil, nil
	if MessageHash(empty) != MessageHash(nilled) {
		t.Error("nil and empty Raw/Attrs hash differently")
	}
	zero, epoch := vectorMessage(), vectorMessage()
	zero.CreatedAt, zero.AcceptedAt = time.Time{}, time.Time{}
	epoch.CreatedAt, epoch.AcceptedAt = time.Unix(0, 0), time.Unix(-5, 0)
	if MessageHash(zero) != MessageHash(epoch) {
		t.Error("the zero time and the epoch (as a DateTime keeps them) hash differently")
	}
}

// Length prefixes: moving bytes from one field to the next changes the
// hash.
func TestMessageHashFieldsCannotBeShifted(t *testing.T) {
	a, b := vectorMessage(), vectorMessage()
	a.Event, a.EventKey = "ab", "c"
	b.Event, b.EventKey = "a", "bc"
	if MessageHash(a) == MessageHash(b) {
		t.Fatal("fields shifted across a boundary hash the same")
	}
	a, b = vectorMessage(), vectorMessage()
	a.Attrs = map[string]string{"k": "v1"}
	b.Attrs = map[string]string{"k": "v", "1": ""}
	if MessageHash(a) == MessageHash(b) {
		t.Fatal("attrs shifted hash the same")
	}
}

func TestMerkleRoot(t *testing.T) {
	leaf := func(i int) string { return sha([]byte{byte(i)}) }
	node := func(l, r string) string {
		a, _ := hex.DecodeString(l)
		b, _ := hex.DecodeString(r)
		return sha(append(append([]byte{1}, a...), b...))
	}
	lh := func(i int) string {
		d, _ := hex.DecodeString(leaf(i))
		return sha(append([]byte{0}, d...))
	}
	for _, c := range []struct {
		n    int
		want string
	}{
		{0, sha(nil)},
		{1, lh(0)},
		{2, node(lh(0), lh(1))},
		{3, node(node(lh(0), lh(1)), lh(2))}, // the odd leaf is carried up
		{4, node(node(lh(0), lh(1)), node(lh(2), lh(3)))},              // balanced
		{5, node(node(node(lh(0), lh(1)), node(lh(2), lh(3))), lh(4))}, // RFC 6962: split at 4
	} {
		var hs []string
		for i := range c.n {
			hs = append(hs, leaf(i))
		}
		if got := MerkleRoot(hs); got != c.want {
			t.Errorf("MerkleRoot of %d leaves = %s, want %s", c.n, got, c.want)
		}
	}
	// RFC 6962's unbalanced split: 7 leaves = MTH(first 4) with MTH(last 3).
	var hs []string
	for i := range 7 {
		hs = append(hs, leaf(i))
	}
	want := node(MerkleRoot(hs[:4]), MerkleRoot(hs[4:]))
	if got := MerkleRoot(hs); got != want {
		t.Errorf("MerkleRoot of 7 leaves = %s, want the RFC 6962 split %s", got, want)
	}
	// No duplicated last leaf: [a b c] and [a b c c] differ.
	if MerkleRoot(hs[:3]) == MerkleRoot(append(hs[:3:3], hs[2])) {
		t.Error("an odd leaf is paired with a copy of itself")
	}
	// A leaf's hash and a node's hash never collide (0x00 against 0x01).
	if MerkleRoot([]string{node(lh(0), lh(1))}) == MerkleRoot(hs[:2]) {
		t.Error("a leaf equal to an inner node gives the same root")
	}
}

func TestSealChain(t *testing.T) {
	at := time.UnixMilli(1700000000000)
	leaves := func(n int) []Leaf {
		var out []Leaf
		for i := range n {
			out = append(out, Leaf{ID: fmt.Sprint("id", n-i), Conv: "a:c", Hash: sha([]byte{byte(i)})})
		}
		return out
	}
	s1 := newSeal("w", StreamMessages, 1, "", leaves(3), at, at, at, false)
	s2 := newSeal("w", StreamMessages, 2, s1.Hash, leaves(2), at, at, at, false)
	if s1.Count != 3 || s1.Leaves[0].ID != "id1" || s1.Leaves[2].ID != "id3" {
		t.Fatalf("leaves not sorted by id: %+v", s1.Leaves)
	}
	if s2.Prev != s1.Hash || s2.Hash == s1.Hash {
		t.Fatal("seals do not chain")
	}
	// The hash covers prev and every leaf.
	other := s2
	other.Prev = strings.Repeat("0", 64)
	if other.ComputeHash() == s2.Hash {
		t.Error("prev is not covered by the seal's hash")
	}
	other = s2
	other.Leaves = leaves(2)
	other.Leaves[0].Conv = "a:x"
	if other.ComputeHash() == s2.Hash {
		t.Error("a leaf's conversation is not covered by the seal's hash")
	}
	w, st, n, ok := ParseBatchID(s2.ID)
	if !ok || w != "w" || st != StreamMessages || n != 2 {
		t.Fatalf("ParseBatchID(%q) = %q %q %d %v", s2.ID, w, st, n, ok)
	}
	for _, bad := range []string{"", "w/messages/1", "w/00000000000000000001", "/messages/00000000000000000001", "w/messages/0000000000000000000x"} {
		if _, _, _, ok := ParseBatchID(bad); ok {
			t.Errorf("ParseBatchID(%q) accepted", bad)
		}
	}
	for id, want := range map[string]bool{"relay-1": true, "a.b_c-9": true, "": false, "-x": false, "a/b": false, strings.Repeat("a", 65): false} {
		if ValidWriter(id) != want {
			t.Errorf("ValidWriter(%q) = %v", id, !want)
		}
	}
}

// sealHarness is a pipeline harness with a fixed writer id, so that a
// second one plays the same instance restarted.
func sealHarness(t *testing.T, h *harness, writer string) *harness {
	t.Helper()
	if h == nil {
		h = &harness{spool: newMemSpool(), archive: &memArchive{}, dedupe: &memDedupe{}, seq: &memSeq{}, assign: &memAssign{}}
		h.bus = newMemBus(h.archive)
	}
	p, err := NewPipeline(Config{Writer: writer, Linger: time.Millisecond, RetryMin: time.Millisecond, RetryMax: 5 * time.Millisecond, DrainTimeout: 50 * time.Millisecond}, Deps{
		Spool: h.spool, Archive: h.archive, Bus: h.bus, Dedupe: h.dedupe, Sequencer: h.seq,
		Router: NewRouter(h.assign, map[string][]string{"acct": {"alice", "bob"}}),
	})
	if err != nil {
		t.Fatal(err)
	}
	h.p = p
	return h
}

func testEvent(i int) DeliveryEvent {
	return DeliveryEvent{
		ID: fmt.Sprintf("out:acct:c1:k%d/sent", i), MessageID: fmt.Sprintf("out:acct:c1:k%d", i), Account: "acct", Conv: "acct:c1",
		State: DeliverySent, At: time.UnixMilli(1700000000000 + int64(i)),
	}
}

// The latest seal of each chain is logged for an outside witness: when
// it changes, and at shutdown.
func TestPipelineLogsLatestSeal(t *testing.T) {
	var buf syncBuf
	h := &harness{spool: newMemSpool(), archive: &memArchive{}, dedupe: &memDedupe{}, seq: &memSeq{}, assign: &memAssign{}}
	h.bus = newMemBus(h.archive)
	p, err := NewPipeline(Config{Writer: "relay-log", Linger: time.Millisecond, RetryMin: time.Millisecond, SealLogInterval: time.Millisecond}, Deps{
		Spool: h.spool, Archive: h.archive, Bus: h.bus, Dedupe: h.dedupe, Sequencer: h.seq,
		Router: NewRouter(h.assign, map[string][]string{"acct": {"alice"}}),
		Logger: slog.New(slog.NewJSONHandler(&buf, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	h.p = p
	h.start(t)
	if err := p.Accept(context.Background(), text("c1", "1", "x")); err != nil {
		t.Fatal(err)
	}
	h.waitEvents(t, 1)
	if err := p.SealedEvents(memEventLog{h.archive}).AppendEvents(context.Background(), []DeliveryEvent{testEvent(1)}); err != nil {
		t.Fatal(err)
	}
	h.stop()
	logged := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
		var rec struct{ Msg, Writer, Stream, Hash, Seal string }
		if err := json.Unmarshal([]byte(line), &rec); err == nil && rec.Msg == "archive seal" {
			if rec.Writer != "relay-log" {
				t.Fatalf("seal logged without its writer: %s", line)
			}
			logged[rec.Stream] = rec.Hash
		}
	}
	for _, s := range h.archive.seals {
		if logged[s.Stream] != s.Hash {
			t.Errorf("latest %s seal %s not logged; logged %v", s.Stream, s.Hash, logged)
		}
	}
}

type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuf) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuf) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}
