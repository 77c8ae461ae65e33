package verify_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/wechat-relay/wechat-relay/relay"
	"github.com/wechat-relay/wechat-relay/relay/verify"
	"github.com/wechat-relay/wechat-relay/storage/testenv"
)

// sealedArchive returns archive (a new embedded one for nil) holding
// what a writer leaves: n messages in conversations c0..c2, archived and
// sealed by a relay.Pipeline in batches of 3, and two sealed delivery
// events.
func sealedArchive(t *testing.T, archive *testArchive, n int) *testArchive {
	t.Helper()
	h, err := newHarness(t, archive, relay.Config{Writer: "relay-v", BatchSize: 3}, nil)
	if err != nil {
		t.Fatal(err)
	}
	var msgs []relay.Message
	for i := range n {
		m := text(fmt.Sprint("c", i%3), fmt.Sprint(1000+i), fmt.Sprint("m", i))
		m.AcceptedAt = time.UnixMilli(1700000000000 + int64(i))
		msgs = append(msgs, m)
	}
	// All spooled before the writer starts: it takes them 3 at a time.
	h.archiveSpooled(t, msgs...)
	if want, got := (n+2)/3, len(h.archive.chain(t, "relay-v", relay.StreamMessages)); got != want {
		t.Fatalf("%d seals for %d messages, want %d", got, n, want)
	}
	ctx := context.Background()
	log := h.p.SealedEvents(h.archive)
	for i := range 2 {
		if err := log.AppendEvents(ctx, []relay.DeliveryEvent{testEvent(i)}); err != nil {
			t.Fatal(err)
		}
	}
	return h.archive
}

// heal starts writer again over a, as a new process, and stops it once
// its start has sealed what the last one left unsealed (seal number n
// of its messages chain).
func heal(t *testing.T, a *testArchive, writer string, n uint64) {
	t.Helper()
	h := sealHarness(t, a, writer)
	h.start(t)
	testenv.Until(t, "the unsealed batch to be healed", func() bool {
		s, ok, _ := a.LatestSeal(context.Background(), writer, relay.StreamMessages)
		return ok && s.Number >= n
	})
	h.stop()
}

// unsealedBatch appends a row under the next batch id of relay-v's
// messages chain, as a writer does before it stores the batch's seal,
// and returns it.
func unsealedBatch(t *testing.T, a *testArchive, body string) (relay.Message, uint64) {
	t.Helper()
	last, _, _ := a.LatestSeal(context.Background(), "relay-v", relay.StreamMessages)
	m := text("c5", "5555", body)
	m.Seq = 1
	m.AcceptedAt = time.UnixMilli(1700000001000)
	m.BatchID = relay.BatchID("relay-v", relay.StreamMessages, last.Number+1)
	m.Hash = relay.MessageHash(m)
	a.insert(t, m)
	return m, last.Number + 1
}

func verifyMem(t *testing.T, a verify.Source, opt verify.Options) *verify.Report {
	t.Helper()
	rep, err := verify.Archive(context.Background(), a, opt)
	if err != nil {
		t.Fatalf("verify.Archive: %v", err)
	}
	return rep
}

func wantOK(t *testing.T, rep *verify.Report) {
	t.Helper()
	if !rep.OK {
		t.Fatalf("verify found problems: %+v", rep.Problems)
	}
}

// only returns the problems of kind k.
func only(rep *verify.Report, k relay.ProblemKind) []verify.Problem {
	var out []verify.Problem
	for _, p := range rep.Problems {
		if p.Kind == k {
			out = append(out, p)
		}
	}
	return out
}

func wantProblem(t *testing.T, rep *verify.Report, k relay.ProblemKind, id string, conv relay.ConversationID) {
	t.Helper()
	if rep.OK {
		t.Fatalf("verify says OK, want %s %s", k, id)
	}
	for _, p := range only(rep, k) {
		if p.ID == id && p.Conv == conv {
			return
		}
	}
	t.Fatalf("want %s of %s (%s); got %+v", k, id, conv, rep.Problems)
}

func total(rep *verify.Report) int {
	n := 0
	for _, c := range rep.Counts {
		n += c
	}
	return n
}

func TestVerifyCleanArchive(t *testing.T) {
	a := sealedArchive(t, clickhouseArchive(t), 10) // copies of one id: ClickHouse keeps them
	rep := verifyMem(t, a, verify.Options{ChunkRows: 4, SealPage: 3})
	wantOK(t, rep)
	if rep.Messages != 10 || rep.Events != 2 || rep.Seals != 6 || len(rep.Chains) != 2 {
		t.Fatalf("report %+v", rep)
	}
	// Copies a replay leaves, of rows and of seals, change nothing.
	a.insert(t, a.messages(t)[4])
	a.insertSeal(t, a.chain(t, "relay-v", relay.StreamMessages)[1])
	wantOK(t, verifyMem(t, a, verify.Options{SealPage: 2}))
}

func TestVerifyAlteredRow(t *testing.T) {
	a := sealedArchive(t, nil, 10)
	m := a.messages(t)[4]
	m.Text = "tampered" // the hash column kept
	a.replace(t, m)
	rep := verifyMem(t, a, verify.Options{})
	wantProblem(t, rep, relay.ProblemAltered, m.ID, m.Conv)
	if total(rep) != 1 || len(rep.Conversations) != 1 || rep.Conversations[0].Altered != 1 {
		t.Fatalf("report %+v", rep)
	}
	// Re-hashed too: the seal still catches it.
	m.Hash = relay.MessageHash(m)
	a.replace(t, m)
	wantProblem(t, verifyMem(t, a, verify.Options{}), relay.ProblemAltered, m.ID, m.Conv)
}

func TestVerifyAlteredCopy(t *testing.T) {
	a := sealedArchive(t, clickhouseArchive(t), 10) // copies of one id: ClickHouse keeps them
	forged := a.messages(t)[2]
	forged.Text = "tampered"
	forged.AcceptedAt = forged.AcceptedAt.Add(time.Hour) // a higher version, for ReplacingMergeTree
	forged.Hash = relay.MessageHash(forged)
	a.insert(t, forged)
	rep := verifyMem(t, a, verify.Options{})
	wantProblem(t, rep, relay.ProblemAltered, forged.ID, forged.Conv)
	if total(rep) != 1 {
		t.Fatalf("problems %+v", rep.Problems)
	}
}

func TestVerifyHashColumnAltered(t *testing.T) {
	a := sealedArchive(t, nil, 4)
	m := a.messages(t)[1]
	m.Hash = strings.Repeat("0", 64)
	a.replace(t, m)
	wantProblem(t, verifyMem(t, a, verify.Options{}), relay.ProblemAltered, m.ID, m.Conv)
}

func TestVerifyDeletedRow(t *testing.T) {
	a := sealedArchive(t, nil, 10)
	gone := a.messages(t)[7]
	ev := a.events(t)[1]
	a.erase(t, gone.ID, ev.ID)
	rep := verifyMem(t, a, verify.Options{})
	wantProblem(t, rep, relay.ProblemMissing, gone.ID, gone.Conv)
	wantProblem(t, rep, relay.ProblemMissing, ev.ID, ev.Conv)
	if total(rep) != 2 {
		t.Fatalf("problems %+v", rep.Problems)
	}
}

func TestVerifyInsertedRow(t *testing.T) {
	a := sealedArchive(t, nil, 10)
	unsealed := text("c9", "9999", "forged")
	unsealed.Seq = 1
	forgedInBatch := text("c1", "8888", "forged too")
	forgedInBatch.Seq = 99
	forgedInBatch.BatchID = a.messages(t)[0].BatchID
	forgedInBatch.Hash = relay.MessageHash(forgedInBatch)
	futureBatch := text("c2", "7777", "forged three")
	futureBatch.Seq = 98
	futureBatch.BatchID = relay.BatchID("relay-v", relay.StreamMessages, 999)
	a.insert(t, unsealed, forgedInBatch, futureBatch)
	rep := verifyMem(t, a, verify.Options{})
	wantProblem(t, rep, relay.ProblemInserted, unsealed.ID, unsealed.Conv)
	wantProblem(t, rep, relay.ProblemInserted, forgedInBatch.ID, forgedInBatch.Conv)
	wantProblem(t, rep, relay.ProblemInserted, futureBatch.ID, futureBatch.Conv)
	if total(rep) != 3 {
		t.Fatalf("problems %+v", rep.Problems)
	}
}

func TestVerifyAlteredSeal(t *testing.T) {
	a := sealedArchive(t, nil, 10)
	// Content changed, hash kept.
	s := a.chain(t, "relay-v", relay.StreamMessages)[1]
	s.Leaves[0].Hash = strings.Repeat("1", 64)
	a.replaceSeal(t, s)
	rep := verifyMem(t, a, verify.Options{})
	wantProblem(t, rep, relay.ProblemSealAltered, s.ID, "")
	// Re-hashed so it is consistent in itself: the next seal's link breaks.
	a = sealedArchive(t, nil, 10)
	seals := a.chain(t, "relay-v", relay.StreamMessages)
	s = seals[1]
	s.Leaves = s.Leaves[:2]
	s.Count = 2
	s.Root = relay.MerkleRoot(leafHashes(s))
	s.Hash = s.ComputeHash()
	a.replaceSeal(t, s)
	rep = verifyMem(t, a, verify.Options{})
	wantProblem(t, rep, relay.ProblemChainBroken, seals[2].ID, "")
	if len(only(rep, relay.ProblemInserted)) != 1 {
		t.Fatalf("the row dropped from the seal is not reported inserted: %+v", rep.Problems)
	}
}

func TestVerifyDeletedSeal(t *testing.T) {
	a := sealedArchive(t, nil, 10)
	gone := a.chain(t, "relay-v", relay.StreamMessages)[1]
	a.erase(t, gone.ID)
	rep := verifyMem(t, a, verify.Options{})
	wantProblem(t, rep, relay.ProblemSealMissing, gone.ID, "")
	if n := len(only(rep, relay.ProblemInserted)); n != gone.Count {
		t.Fatalf("%d rows reported inserted, want the %d of the deleted seal", n, gone.Count)
	}
	// The first seal gone.
	a = sealedArchive(t, nil, 10)
	a.erase(t, a.chain(t, "relay-v", relay.StreamMessages)[0].ID)
	wantProblem(t, verifyMem(t, a, verify.Options{}), relay.ProblemSealMissing, relay.BatchID("relay-v", relay.StreamMessages, 1), "")
}

func TestVerifyConflictingSeals(t *testing.T) {
	a := sealedArchive(t, clickhouseArchive(t), 10) // two seals under one id: ClickHouse keeps them
	forged := a.chain(t, "relay-v", relay.StreamMessages)[2]
	forged.Leaves = slices.Clone(forged.Leaves[:1])
	forged.Count = 1
	forged.Root = relay.MerkleRoot(leafHashes(forged))
	forged.Hash = forged.ComputeHash()
	a.insertSeal(t, forged)
	rep := verifyMem(t, a, verify.Options{SealPage: 1})
	wantProblem(t, rep, relay.ProblemSealAltered, forged.ID, "")
}

func TestVerifyWitness(t *testing.T) {
	a := sealedArchive(t, nil, 10)
	last := a.chain(t, "relay-v", relay.StreamMessages)[3] // the last seal of the messages chain
	if last.Stream != relay.StreamMessages || last.Number != 4 {
		t.Fatalf("seal %+v", last)
	}
	rep := verifyMem(t, a, verify.Options{Witnesses: []string{last.Hash}})
	wantOK(t, rep)
	if len(rep.Witnesses) != 1 || !rep.Witnesses[0].Found || rep.Witnesses[0].Seal != last.ID {
		t.Fatalf("witnesses %+v", rep.Witnesses)
	}
	// Cut the chain back (the last seal and its rows deleted): nothing
	// but the witness can tell.
	cut := []string{last.ID}
	for _, m := range a.messages(t) {
		if m.BatchID == last.ID {
			cut = append(cut, m.ID)
		}
	}
	a.erase(t, cut...)
	if rep := verifyMem(t, a, verify.Options{}); !rep.OK {
		t.Fatalf("a truncated chain is visible without a witness? %+v", rep.Problems)
	}
	wantProblem(t, verifyMem(t, a, verify.Options{Witnesses: []string{last.Hash}}), relay.ProblemWitnessMissing, last.Hash, "")
}

// lateSource writes a seal between the scan for unsealed rows and the
// reading of the seals, as a live writer would.
type lateSource struct {
	verify.Source
	late func()
}

func (s lateSource) ScanUnsealed(ctx context.Context, fn func(relay.StoredRow) error) error {
	err := s.Source.ScanUnsealed(ctx, fn)
	s.late()
	return err
}

func TestVerifyWhileWriting(t *testing.T) {
	a := sealedArchive(t, nil, 6)
	ctx := context.Background()
	// A batch whose rows are in and whose seal is not yet; its writer
	// stores the seal (healing it, at its start) during the run.
	_, n := unsealedBatch(t, a, "late")
	rep, err := verify.Archive(ctx, lateSource{a, func() { heal(t, a, "relay-v", n) }}, verify.Options{})
	if err != nil {
		t.Fatal(err)
	}
	wantOK(t, rep)
	if rep.Messages != 7 {
		t.Fatalf("verified %d messages, want 7", rep.Messages)
	}
}

// A batch left unsealed by a crash is reported until its writer heals it.
func TestVerifyReportsUnhealedBatch(t *testing.T) {
	a := sealedArchive(t, nil, 6)
	m, n := unsealedBatch(t, a, "crash")
	rep := verifyMem(t, a, verify.Options{})
	wantProblem(t, rep, relay.ProblemInserted, m.ID, m.Conv)
	if p := only(rep, relay.ProblemInserted)[0]; !strings.Contains(p.Detail, "next batch of writer relay-v") {
		t.Fatalf("detail %q", p.Detail)
	}
	heal(t, a, "relay-v", n) // as a new process
	wantOK(t, verifyMem(t, a, verify.Options{}))
}
