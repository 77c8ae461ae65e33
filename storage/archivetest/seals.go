package archivetest

import (
	"crypto/ed25519"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/wechat-relay/wechat-relay/relay"
	"github.com/wechat-relay/wechat-relay/relay/verify"
)

// The cases of relay.SealStore and verify.Source: the columns and
// the table tamper evidence needs (relay/seal.go).

// stamp gives msgs the batch id and hash a sealing writer gives them,
// and returns their leaves.
func stamp(msgs []relay.Message, batch string) []relay.Leaf {
	leaves := make([]relay.Leaf, len(msgs))
	for i := range msgs {
		msgs[i].BatchID = batch
		msgs[i].Hash = relay.MessageHash(msgs[i])
		leaves[i] = relay.Leaf{ID: msgs[i].ID, Conv: msgs[i].Conv, Hash: msgs[i].Hash}
	}
	return leaves
}

// stampEvents does the same for delivery events.
func stampEvents(evs []relay.DeliveryEvent, batch string) []relay.Leaf {
	leaves := make([]relay.Leaf, len(evs))
	for i := range evs {
		evs[i].BatchID = batch
		evs[i].Hash = relay.EventHash(evs[i])
		leaves[i] = relay.Leaf{ID: evs[i].ID, Conv: evs[i].Conv, Hash: evs[i].Hash}
	}
	return leaves
}

// seal makes seal n of writer's stream over leaves, as a writer does.
func seal(writer, stream string, n uint64, prev string, leaves []relay.Leaf, at time.Time) relay.Seal {
	leaves = slices.Clone(leaves)
	slices.SortFunc(leaves, func(a, b relay.Leaf) int { return strings.Compare(a.ID, b.ID) })
	hashes := make([]string, len(leaves))
	for i, l := range leaves {
		hashes[i] = l.Hash
	}
	s := relay.Seal{
		ID: relay.BatchID(writer, stream, n), Writer: writer, Stream: stream, Number: n, Prev: prev,
		Root: relay.MerkleRoot(hashes), Count: len(leaves),
		First: at.Add(-time.Minute), Last: at.Add(-time.Second), At: at, Leaves: leaves,
	}
	s.Hash = s.ComputeHash()
	return s
}

func insertSeal(t *testing.T, s Store, seals ...relay.Seal) {
	t.Helper()
	for _, x := range seals {
		if err := s.InsertSeal(testCtx(t), x); err != nil {
			t.Fatalf("InsertSeal(%s): %v", x.ID, err)
		}
	}
}

// sealDiff lists the fields in which got differs from want as stored:
// times to the millisecond, in UTC.
func sealDiff(got, want relay.Seal) []string {
	var d []string
	field := func(name string, g, w any) {
		if g != w {
			d = append(d, fmt.Sprintf("%s = %#v, want %#v", name, g, w))
		}
	}
	field("ID", got.ID, want.ID)
	field("Writer", got.Writer, want.Writer)
	field("Stream", got.Stream, want.Stream)
	field("Number", got.Number, want.Number)
	field("Prev", got.Prev, want.Prev)
	field("Root", got.Root, want.Root)
	field("Count", got.Count, want.Count)
	field("Recovered", got.Recovered, want.Recovered)
	field("Hash", got.Hash, want.Hash)
	field("KeyID", got.KeyID, want.KeyID)
	field("Signature", got.Signature, want.Signature)
	for _, tf := range []struct {
		name string
		g, w time.Time
	}{{"First", got.First, want.First}, {"Last", got.Last, want.Last}, {"At", got.At, want.At}} {
		w := tf.w
		if !w.IsZero() {
			w = w.Truncate(time.Millisecond)
		}
		if !tf.g.Equal(w) || (!tf.g.IsZero() && tf.g.Location() != time.UTC) {
			d = append(d, fmt.Sprintf("%s = %v, want %v in UTC", tf.name, tf.g, w))
		}
	}
	if !slices.Equal(got.Leaves, want.Leaves) {
		d = append(d, fmt.Sprintf("Leaves = %v, want %v", got.Leaves, want.Leaves))
	}
	if got.ComputeHash() != want.Hash {
		d = append(d, "the seal read back does not hash to its hash")
	}
	return d
}

func sameSeal(t *testing.T, what string, got, want relay.Seal) {
	t.Helper()
	if d := sealDiff(got, want); len(d) > 0 {
		t.Errorf("%s: seal %s differs:\n\t%s", what, want.ID, strings.Join(d, "\n\t"))
	}
}

// allSeals reads every stored seal, collapsing identical copies.
func allSeals(t *testing.T, s Store, after *relay.SealKey, limit int) []relay.Seal {
	t.Helper()
	var out []relay.Seal
	for {
		page, err := s.Seals(testCtx(t), after, limit)
		if err != nil {
			t.Fatalf("Seals: %v", err)
		}
		for _, x := range page {
			if n := len(out); n > 0 && out[n-1].ID == x.ID && out[n-1].Hash == x.Hash {
				continue // a copy of a seal stored again
			}
			out = append(out, x)
		}
		if len(page) == 0 {
			return out
		}
		last := page[len(page)-1]
		after = &relay.SealKey{Writer: last.Writer, Stream: last.Stream, Number: last.Number}
	}
}

// The seal comes back as it went in, with sub-millisecond parts dropped,
// its signature (key id and signature, relay/seal_sign.go) included, and
// still verifying; an unsigned seal comes back unsigned; storing a seal
// again is harmless.
func testSealRoundTrip(t *testing.T, s Store) {
	at := base.Add(123_456 * time.Nanosecond)
	leaves := []relay.Leaf{
		{ID: "in:acc:3", Conv: conv("o_张三"), Hash: strings.Repeat("ab", 32)},
		{ID: "in:acc:1", Conv: conv("o_1"), Hash: strings.Repeat("01", 32)},
		{ID: "ev:acc:2", Conv: conv("o_2"), Hash: strings.Repeat("ff", 32)},
	}
	x := seal("relay-1", relay.StreamMessages, 1, "", leaves, at)
	x.Recovered = true
	x.Hash = x.ComputeHash()
	signer := relay.NewSealSigner(ed25519.NewKeyFromSeed(make([]byte, ed25519.SeedSize)))
	x = signer.Sign(x)
	if x.KeyID == "" || x.Signature == "" {
		t.Fatalf("Sign left the seal unsigned: %+v", x)
	}
	insertSeal(t, s, x, x)
	got, ok, err := s.LatestSeal(testCtx(t), "relay-1", relay.StreamMessages)
	if err != nil || !ok {
		t.Fatalf("LatestSeal = %v, %v", ok, err)
	}
	sameSeal(t, "LatestSeal", got, x)
	all := allSeals(t, s, nil, 0)
	if len(all) != 1 {
		t.Fatalf("Seals returned %d different seals, want 1: %+v", len(all), all)
	}
	sameSeal(t, "Seals", all[0], x)
	keys := map[string]ed25519.PublicKey{signer.KeyID(): signer.PublicKey()}
	if st := relay.CheckSealSignature(got, keys); st != relay.SignatureValid {
		t.Errorf("the signature read back does not verify: status %v", st)
	}

	unsigned := seal("relay-2", relay.StreamEvents, 1, "", leaves[:1], at)
	insertSeal(t, s, unsigned)
	got, ok, err = s.LatestSeal(testCtx(t), "relay-2", relay.StreamEvents)
	if err != nil || !ok {
		t.Fatalf("LatestSeal = %v, %v", ok, err)
	}
	sameSeal(t, "LatestSeal of an unsigned seal", got, unsigned)
	if got.KeyID != "" || got.Signature != "" {
		t.Errorf("an unsigned seal read back signed: key %q signature %q", got.KeyID, got.Signature)
	}

	for _, bad := range []relay.Seal{{}, {ID: "x", Writer: "w", Stream: "s", Hash: "h", Count: 2}} {
		if err := s.InsertSeal(testCtx(t), bad); err == nil {
			t.Errorf("InsertSeal(%+v) accepted a seal without id, or with a count that is not its leaves'", bad)
		}
	}
}

func testLatestSeal(t *testing.T, s Store) {
	if _, ok, err := s.LatestSeal(testCtx(t), "relay-1", relay.StreamMessages); err != nil || ok {
		t.Fatalf("LatestSeal of an empty archive = %v, %v; want none", ok, err)
	}
	var chain []relay.Seal
	prev := ""
	for n := range uint64(12) {
		x := seal("relay-1", relay.StreamMessages, n+1, prev, nil, base.Add(time.Duration(n)*time.Second))
		chain = append(chain, x)
		prev = x.Hash
	}
	// Stored out of order, next to other chains.
	order := []int{11, 0, 5, 1, 2, 3, 4, 6, 7, 8, 9, 10}
	for _, i := range order {
		insertSeal(t, s, chain[i])
	}
	insertSeal(t, s,
		seal("relay-1", relay.StreamEvents, 40, "", nil, base),
		seal("relay-2", relay.StreamMessages, 50, "", nil, base),
		seal("relay-0", relay.StreamMessages, 60, "", nil, base))
	got, ok, err := s.LatestSeal(testCtx(t), "relay-1", relay.StreamMessages)
	if err != nil || !ok {
		t.Fatalf("LatestSeal = %v, %v", ok, err)
	}
	sameSeal(t, "LatestSeal", got, chain[11])
	if got, _, _ := s.LatestSeal(testCtx(t), "relay-1", relay.StreamEvents); got.Number != 40 {
		t.Errorf("LatestSeal of the events stream = %d, want 40", got.Number)
	}
}

func testSealsPaging(t *testing.T, s Store) {
	var want []relay.Seal
	for _, w := range []string{"a", "b", "b.2"} {
		for _, st := range []string{relay.StreamEvents, relay.StreamMessages} {
			for n := range uint64(4) {
				want = append(want, seal(w, st, n+1, "", nil, base))
			}
		}
	}
	// Numbers that sort differently as text and as numbers.
	want = append(want, seal("c", relay.StreamMessages, 9, "", nil, base), seal("c", relay.StreamMessages, 10, "", nil, base))
	shuffled := slices.Clone(want)
	slices.Reverse(shuffled)
	insertSeal(t, s, shuffled...)
	for _, limit := range []int{0, 1, 3, 7, 100} {
		got := allSeals(t, s, nil, limit)
		if len(got) != len(want) {
			t.Fatalf("limit %d: %d seals, want %d", limit, len(got), len(want))
		}
		for i := range want {
			if got[i].ID != want[i].ID {
				t.Fatalf("limit %d: seal %d is %s, want %s", limit, i, got[i].ID, want[i].ID)
			}
		}
	}
	after := &relay.SealKey{Writer: "b", Stream: relay.StreamMessages, Number: 2}
	got := allSeals(t, s, after, 0)
	if len(got) == 0 || got[0].ID != relay.BatchID("b", relay.StreamMessages, 3) {
		t.Fatalf("Seals after %+v start at %v", after, got)
	}
}

// sealedBatch returns messages of every shape the archive keeps, stamped
// for batch.
func sealedBatch(batch string) []relay.Message {
	c := conv("o_哈希")
	msgs := []relay.Message{
		message(c, 1),
		{
			ID: "in:acc:hash-2", Account: "acc", Client: "o_哈希", Conv: c, Seq: 2, Direction: relay.Inbound,
			Kind: relay.KindImage, WxMsgID: "2", MediaID: "M_1",
			Attrs:     map[string]string{"pic_url": "http://x/?a=1&b=<2>", "备注": "客户", "empty": ""},
			Raw:       []byte{'<', 0xff, 0xfe, 0x00, 0xc3, 0x28, '>'},
			CreatedAt: base.Add(-time.Hour + 999*time.Millisecond), AcceptedAt: base.Add(123_456 * time.Nanosecond),
			Employee: "emp_张三",
		},
		{
			ID: "ev:acc:hash-3", Account: "acc", Client: "o_哈希", Conv: c, Seq: 3, Direction: relay.Inbound,
			Kind: relay.KindEvent, Event: "unsubscribe", AcceptedAt: base.Add(time.Second),
		},
		outMessage(c, 4, 2*time.Second),
		{ID: "in:acc:hash-minimal", Conv: c, Seq: 5}, // every field empty, times zero
	}
	stamp(msgs, batch)
	return msgs
}

// What a writer hashes is what a reader of the archive hashes again:
// every kind of content survives the round trip exactly.
func testHashesSurvive(t *testing.T, s Store) {
	batch := relay.BatchID("relay-1", relay.StreamMessages, 1)
	msgs := sealedBatch(batch)
	insert(t, s, msgs...)
	evs := []relay.DeliveryEvent{
		deliveryEvent(msgs[3], relay.DeliverySending, base.Add(3*time.Second+456_789*time.Nanosecond)),
		{ID: msgs[3].ID + "/failed", MessageID: msgs[3].ID, Account: "acc", Conv: msgs[3].Conv, State: relay.DeliveryFailed,
			ErrCode: -1, ErrMsg: "系统繁忙 «busy»", At: base.Add(4 * time.Second)},
	}
	ebatch := relay.BatchID("relay-1", relay.StreamEvents, 1)
	stampEvents(evs, ebatch)
	appendEvents(t, s, evs...)

	want := map[string]string{}
	for _, m := range msgs {
		want[m.ID] = m.Hash
	}
	rows, err := s.BatchRows(testCtx(t), batch)
	if err != nil {
		t.Fatalf("BatchRows: %v", err)
	}
	seen := map[string]bool{}
	for _, r := range rows {
		if r.Message == nil {
			t.Fatalf("BatchRows(%s) returned an event row %s", batch, r.ID())
		}
		if r.StoredHash() != want[r.ID()] || r.ComputeHash() != want[r.ID()] || r.BatchID() != batch {
			t.Errorf("message %s: stored hash %s, recomputed %s, batch %q; written %s",
				r.ID(), r.StoredHash(), r.ComputeHash(), r.BatchID(), want[r.ID()])
		}
		seen[r.ID()] = true
	}
	if len(seen) != len(msgs) {
		t.Errorf("BatchRows found %d of %d messages", len(seen), len(msgs))
	}
	rows, err = s.BatchRows(testCtx(t), ebatch)
	if err != nil {
		t.Fatalf("BatchRows: %v", err)
	}
	if len(rows) != len(evs) {
		t.Fatalf("BatchRows(%s) returned %d rows, want %d", ebatch, len(rows), len(evs))
	}
	for _, r := range rows {
		if r.Event == nil || r.StoredHash() != r.ComputeHash() || r.BatchID() != ebatch {
			t.Errorf("event %s: stored hash %s, recomputed %s, batch %q", r.ID(), r.StoredHash(), r.ComputeHash(), r.BatchID())
		}
	}
	// The ordinary reads carry the sealing columns too.
	sameMessages(t, "Since", since(t, s, msgs[0].Conv, 0, 0), msgs)
	if got := latestEvents(t, s, msgs[3].ID)[msgs[3].ID]; got.Hash != evs[1].Hash || got.BatchID != ebatch {
		t.Errorf("LatestEvents: hash %q batch %q, want %q %q", got.Hash, got.BatchID, evs[1].Hash, ebatch)
	}
}

// collect runs a scan and returns the ids it saw, sorted, copies once.
func collect(t *testing.T, what string, scan func(func(relay.StoredRow) error) error) []string {
	t.Helper()
	var ids []string
	if err := scan(func(r relay.StoredRow) error {
		ids = append(ids, r.Table()+":"+r.ID())
		return nil
	}); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	slices.Sort(ids)
	return slices.Compact(ids)
}

func testBatchScans(t *testing.T, s Store) {
	c := conv("o_scan")
	b1 := relay.BatchID("w", relay.StreamMessages, 1)
	b2 := relay.BatchID("w", relay.StreamMessages, 2)
	b3 := relay.BatchID("w", relay.StreamMessages, 3)
	m1, m2, m3, m0 := messages(c, 1, 2), messages(c, 3), messages(c, 4), messages(c, 5)
	insertSeal(t, s, seal("w", relay.StreamMessages, 1, "", stamp(m1, b1), base))
	stamp(m2, b2) // no seal
	stamp(m3, b3)
	insertSeal(t, s, seal("w", relay.StreamMessages, 3, "", stamp(m3, b3), base))
	insert(t, s, slices.Concat(m1, m2, m3, m0)...) // m0: no batch id at all
	evs := []relay.DeliveryEvent{deliveryEvent(outMessage(c, 6, 0), relay.DeliverySent, base)}
	stampEvents(evs, b1)
	ev := evs[0]
	appendEvents(t, s, ev)

	ctx := testCtx(t)
	id := func(m relay.Message) string { return "messages:" + m.ID }
	evID := "events:" + ev.ID
	for _, c := range []struct {
		what string
		scan func(func(relay.StoredRow) error) error
		want []string
	}{
		{"ScanBatches(b1, b1)", func(fn func(relay.StoredRow) error) error { return s.ScanBatches(ctx, b1, b1, fn) },
			[]string{evID, id(m1[0]), id(m1[1])}},
		{"ScanBatches(b2, b3)", func(fn func(relay.StoredRow) error) error { return s.ScanBatches(ctx, b2, b3, fn) },
			[]string{id(m2[0]), id(m3[0])}},
		{"ScanBatches(b1, b3)", func(fn func(relay.StoredRow) error) error { return s.ScanBatches(ctx, b1, b3, fn) },
			[]string{evID, id(m1[0]), id(m1[1]), id(m2[0]), id(m3[0])}},
		{"ScanUnsealed", func(fn func(relay.StoredRow) error) error { return s.ScanUnsealed(ctx, fn) },
			[]string{id(m2[0]), id(m0[0])}},
	} {
		got := collect(t, c.what, c.scan)
		want := slices.Sorted(slices.Values(c.want))
		if !slices.Equal(got, want) {
			t.Errorf("%s = %v, want %v", c.what, got, want)
		}
	}
	// Scans stop at the callback's error.
	stop := fmt.Errorf("stop")
	if err := s.ScanBatches(ctx, b1, b3, func(relay.StoredRow) error { return stop }); err == nil {
		t.Error("ScanBatches ignored the callback's error")
	}
}

// A writer's batches, replayed copies included, verify; a row inserted
// behind the writer's back does not.
func testVerifySealed(t *testing.T, s Store) {
	var (
		prev  string
		total int
	)
	for n := range uint64(4) {
		batch := relay.BatchID("relay-1", relay.StreamMessages, n+1)
		msgs := messages(conv(fmt.Sprint("o_v", n%2)), 3*n+1, 3*n+2, 3*n+3)
		leaves := stamp(msgs, batch)
		insert(t, s, msgs...)
		x := seal("relay-1", relay.StreamMessages, n+1, prev, leaves, base.Add(time.Duration(n)*time.Second))
		insertSeal(t, s, x)
		if n == 1 {
			insert(t, s, msgs...) // a replay
			insertSeal(t, s, x)   // a retried seal
		}
		prev = x.Hash
		total += len(msgs)
	}
	ev := deliveryEvent(outMessage(conv("o_v0"), 99, 0), relay.DeliverySent, base)
	evs := []relay.DeliveryEvent{ev}
	insertSeal(t, s, seal("relay-1", relay.StreamEvents, 1, "", stampEvents(evs, relay.BatchID("relay-1", relay.StreamEvents, 1)), base))
	appendEvents(t, s, evs...)

	rep, err := verify.Archive(testCtx(t), s, verify.Options{ChunkRows: 4, SealPage: 2})
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	if !rep.OK || rep.Messages != total || rep.Events != 1 || rep.Seals != 5 {
		t.Fatalf("Verify of a sealed archive: ok %v, %d messages (want %d), %d events, %d seals; problems %+v",
			rep.OK, rep.Messages, total, rep.Events, rep.Seals, rep.Problems)
	}

	forged := message(conv("o_v0"), 1000)
	forged.BatchID = relay.BatchID("relay-1", relay.StreamMessages, 2)
	forged.Hash = relay.MessageHash(forged)
	insert(t, s, forged)
	rep, err = verify.Archive(testCtx(t), s, verify.Options{})
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	if rep.OK || rep.Counts[relay.ProblemInserted] != 1 || len(rep.Problems) != 1 || rep.Problems[0].ID != forged.ID {
		t.Fatalf("Verify after a forged insert: %+v", rep)
	}
}
