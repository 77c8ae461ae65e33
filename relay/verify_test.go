package relay

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
)

// sealedArchive returns a memory archive holding what a writer leaves:
// n messages in conversations c0..c2, sealed in batches of 3, and two
// sealed delivery events.
func sealedArchive(t *testing.T, n int) (*memArchive, *Pipeline) {
	t.Helper()
	h := sealHarness(t, nil, "relay-v")
	ctx := context.Background()
	var batch []Message
	for i := range n {
		m := text(fmt.Sprint("c", i%3), fmt.Sprint(1000+i), fmt.Sprint("m", i))
		m.Seq = uint64(i/3 + 1)
		m.AcceptedAt = time.UnixMilli(1700000000000 + int64(i))
		batch = append(batch, m)
		if len(batch) == 3 || i == n-1 {
			if err := h.p.seals.archive(ctx, batch, h.p.inserted); err != nil {
				t.Fatal(err)
			}
			batch = nil
		}
	}
	log := h.p.SealedEvents(memEventLog{h.archive})
	for i := range 2 {
		if err := log.AppendEvents(ctx, []DeliveryEvent{testEvent(i)}); err != nil {
			t.Fatal(err)
		}
	}
	return h.archive, h.p
}

// only returns the problems of kind k.
func only(rep *VerifyReport, k ProblemKind) []Problem {
	var out []Problem
	for _, p := range rep.Problems {
		if p.Kind == k {
			out = append(out, p)
		}
	}
	return out
}

func wantProblem(t *testing.T, rep *VerifyReport, k ProblemKind, id string, conv ConversationID) {
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

func total(rep *VerifyReport) int {
	n := 0
	for _, c := range rep.Counts {
		n += c
	}
	return n
}

func TestVerifyCleanArchive(t *testing.T) {
	a, _ := sealedArchive(t, 10)
	rep := verifyMem(t, a, VerifyOptions{ChunkRows: 4, SealPage: 3})
	wantOK(t, rep)
	if rep.Messages != 10 || rep.Events != 2 || rep.Seals != 6 || len(rep.Chains) != 2 {
		t.Fatalf("report %+v", rep)
	}
	// Copies a replay leaves, of rows and of seals, change nothing.
	a.rows = append(a.rows, a.rows[4])
	a.seals = append(a.seals, a.seals[1])
	wantOK(t, verifyMem(t, a, VerifyOptions{SealPage: 2}))
}

func TestVerifyAlteredRow(t *testing.T) {
	a, _ := sealedArchive(t, 10)
	a.rows[4].Text = "tampered" // the hash column kept
	rep := verifyMem(t, a, VerifyOptions{})
	wantProblem(t, rep, ProblemAltered, a.rows[4].ID, a.rows[4].Conv)
	if total(rep) != 1 || len(rep.Conversations) != 1 || rep.Conversations[0].Altered != 1 {
		t.Fatalf("report %+v", rep)
	}
	// Re-hashed too: the seal still catches it.
	a.rows[4].Hash = MessageHash(a.rows[4])
	wantProblem(t, verifyMem(t, a, VerifyOptions{}), ProblemAltered, a.rows[4].ID, a.rows[4].Conv)
}

func TestVerifyAlteredCopy(t *testing.T) {
	a, _ := sealedArchive(t, 10)
	forged := a.rows[2]
	forged.Text = "tampered"
	forged.AcceptedAt = forged.AcceptedAt.Add(time.Hour) // a higher version, for ReplacingMergeTree
	forged.Hash = MessageHash(forged)
	a.rows = append(a.rows, forged)
	rep := verifyMem(t, a, VerifyOptions{})
	wantProblem(t, rep, ProblemAltered, forged.ID, forged.Conv)
	if total(rep) != 1 {
		t.Fatalf("problems %+v", rep.Problems)
	}
}

func TestVerifyHashColumnAltered(t *testing.T) {
	a, _ := sealedArchive(t, 4)
	a.rows[1].Hash = strings.Repeat("0", 64)
	wantProblem(t, verifyMem(t, a, VerifyOptions{}), ProblemAltered, a.rows[1].ID, a.rows[1].Conv)
}

func TestVerifyDeletedRow(t *testing.T) {
	a, _ := sealedArchive(t, 10)
	gone := a.rows[7]
	a.rows = slices.Delete(a.rows, 7, 8)
	ev := a.evRows[1]
	a.evRows = a.evRows[:1]
	rep := verifyMem(t, a, VerifyOptions{})
	wantProblem(t, rep, ProblemMissing, gone.ID, gone.Conv)
	wantProblem(t, rep, ProblemMissing, ev.ID, ev.Conv)
	if total(rep) != 2 {
		t.Fatalf("problems %+v", rep.Problems)
	}
}

func TestVerifyInsertedRow(t *testing.T) {
	a, _ := sealedArchive(t, 10)
	unsealed := text("c9", "9999", "forged")
	unsealed.Seq = 1
	forgedInBatch := text("c1", "8888", "forged too")
	forgedInBatch.Seq = 99
	forgedInBatch.BatchID = a.rows[0].BatchID
	forgedInBatch.Hash = MessageHash(forgedInBatch)
	futureBatch := text("c2", "7777", "forged three")
	futureBatch.BatchID = BatchID("relay-v", StreamMessages, 999)
	a.rows = append(a.rows, unsealed, forgedInBatch, futureBatch)
	rep := verifyMem(t, a, VerifyOptions{})
	wantProblem(t, rep, ProblemInserted, unsealed.ID, unsealed.Conv)
	wantProblem(t, rep, ProblemInserted, forgedInBatch.ID, forgedInBatch.Conv)
	wantProblem(t, rep, ProblemInserted, futureBatch.ID, futureBatch.Conv)
	if total(rep) != 3 {
		t.Fatalf("problems %+v", rep.Problems)
	}
}

func TestVerifyAlteredSeal(t *testing.T) {
	a, _ := sealedArchive(t, 10)
	// Content changed, hash kept.
	a.seals[1].Leaves[0].Hash = strings.Repeat("1", 64)
	rep := verifyMem(t, a, VerifyOptions{})
	wantProblem(t, rep, ProblemSealAltered, a.seals[1].ID, "")
	// Re-hashed so it is consistent in itself: the next seal's link breaks.
	a, _ = sealedArchive(t, 10)
	s := &a.seals[1]
	s.Leaves = s.Leaves[:2]
	s.Count = 2
	s.Root = MerkleRoot(s.leafHashes())
	s.Hash = s.ComputeHash()
	rep = verifyMem(t, a, VerifyOptions{})
	wantProblem(t, rep, ProblemChainBroken, a.seals[2].ID, "")
	if len(only(rep, ProblemInserted)) != 1 {
		t.Fatalf("the row dropped from the seal is not reported inserted: %+v", rep.Problems)
	}
}

func TestVerifyDeletedSeal(t *testing.T) {
	a, _ := sealedArchive(t, 10)
	gone := a.seals[1]
	a.seals = slices.Delete(a.seals, 1, 2)
	rep := verifyMem(t, a, VerifyOptions{})
	wantProblem(t, rep, ProblemSealMissing, gone.ID, "")
	if n := len(only(rep, ProblemInserted)); n != gone.Count {
		t.Fatalf("%d rows reported inserted, want the %d of the deleted seal", n, gone.Count)
	}
	// The first seal gone.
	a, _ = sealedArchive(t, 10)
	a.seals = a.seals[1:]
	wantProblem(t, verifyMem(t, a, VerifyOptions{}), ProblemSealMissing, BatchID("relay-v", StreamMessages, 1), "")
}

func TestVerifyConflictingSeals(t *testing.T) {
	a, _ := sealedArchive(t, 10)
	forged := a.seals[2]
	forged.Leaves = slices.Clone(forged.Leaves[:1])
	forged.Count = 1
	forged.Root = MerkleRoot(forged.leafHashes())
	forged.Hash = forged.ComputeHash()
	a.seals = append(a.seals, forged)
	rep := verifyMem(t, a, VerifyOptions{SealPage: 1})
	wantProblem(t, rep, ProblemSealAltered, forged.ID, "")
}

func TestVerifyWitness(t *testing.T) {
	a, _ := sealedArchive(t, 10)
	last := a.seals[3] // the last seal of the messages chain
	if last.Stream != StreamMessages || last.Number != 4 {
		t.Fatalf("seal %+v", last)
	}
	rep := verifyMem(t, a, VerifyOptions{Witnesses: []string{last.Hash}})
	wantOK(t, rep)
	if len(rep.Witnesses) != 1 || !rep.Witnesses[0].Found || rep.Witnesses[0].Seal != last.ID {
		t.Fatalf("witnesses %+v", rep.Witnesses)
	}
	// Cut the chain back (the last seal and its rows deleted): nothing
	// but the witness can tell.
	a.seals = slices.Delete(a.seals, 3, 4)
	a.rows = slices.DeleteFunc(a.rows, func(m Message) bool { return m.BatchID == last.ID })
	if rep := verifyMem(t, a, VerifyOptions{}); !rep.OK {
		t.Fatalf("a truncated chain is visible without a witness? %+v", rep.Problems)
	}
	wantProblem(t, verifyMem(t, a, VerifyOptions{Witnesses: []string{last.Hash}}), ProblemWitnessMissing, last.Hash, "")
}

// lateSource writes a seal between the scan for unsealed rows and the
// reading of the seals, as a live writer would.
type lateSource struct {
	*memArchive
	late func()
}

func (s lateSource) ScanUnsealed(ctx context.Context, fn func(StoredRow) error) error {
	err := s.memArchive.ScanUnsealed(ctx, fn)
	s.late()
	return err
}

func TestVerifyWhileWriting(t *testing.T) {
	a, p := sealedArchive(t, 6)
	ctx := context.Background()
	// A batch whose rows are in and whose seal is not yet.
	m := text("c5", "5555", "late")
	m.Seq = 1
	c := p.seals.msgs
	if err := c.heal(ctx); err != nil {
		t.Fatal(err)
	}
	m.BatchID = c.begin()
	m.Hash = MessageHash(m)
	a.rows = append(a.rows, m)
	c.stored([]Leaf{{ID: m.ID, Conv: m.Conv, Hash: m.Hash}}, m.AcceptedAt, m.AcceptedAt)
	rep, err := Verify(ctx, lateSource{a, func() {
		if err := c.writeSeal(ctx); err != nil {
			t.Fatal(err)
		}
	}}, VerifyOptions{})
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
	a, p := sealedArchive(t, 6)
	c := p.seals.msgs
	m := text("c5", "5555", "crash")
	m.Seq = 1
	m.BatchID = c.begin()
	m.Hash = MessageHash(m)
	a.rows = append(a.rows, m)
	rep := verifyMem(t, a, VerifyOptions{})
	wantProblem(t, rep, ProblemInserted, m.ID, m.Conv)
	if p := only(rep, ProblemInserted)[0]; !strings.Contains(p.Detail, "next batch of writer relay-v") {
		t.Fatalf("detail %q", p.Detail)
	}
	c.loaded = false // as a new process
	if err := c.heal(context.Background()); err != nil {
		t.Fatal(err)
	}
	wantOK(t, verifyMem(t, a, VerifyOptions{}))
}
