package verify_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/wechat-relay/wechat-relay/relay"
	"github.com/wechat-relay/wechat-relay/relay/verify"
)

// The pipeline seals what it archives so that verify.Archive finds it
// intact: every batch, a batch left unsealed by a crash (once its writer
// starts again), a batch whose acknowledgement was lost, and delivery
// events.

func TestPipelineSealsEveryBatch(t *testing.T) {
	h := sealHarness(t, nil, "relay-a")
	h.start(t)
	ctx := context.Background()
	for i := range 30 {
		if err := h.p.Accept(ctx, text(fmt.Sprint("c", i%4), fmt.Sprint(100+i), fmt.Sprint("m", i))); err != nil {
			t.Fatal(err)
		}
	}
	h.waitEvents(t, 30)
	h.stop()
	a := h.archive
	seals := a.seals(t, "relay-a")
	if len(seals) == 0 {
		t.Fatal("no seals")
	}
	sealed := 0
	for i, s := range seals {
		if s.Number != uint64(i+1) || s.Writer != "relay-a" || s.Stream != relay.StreamMessages || s.Recovered {
			t.Fatalf("seal %d: %+v", i, s)
		}
		sealed += s.Count
	}
	if sealed != 30 {
		t.Fatalf("seals cover %d rows, want 30", sealed)
	}
	for _, m := range a.messages(t) {
		if m.Hash != relay.MessageHash(m) || m.BatchID == "" {
			t.Fatalf("row %s: hash %q batch %q", m.ID, m.Hash, m.BatchID)
		}
	}
	rep := verifyMem(t, a, verify.Options{ChunkRows: 7, SealPage: 2})
	wantOK(t, rep)
	if rep.Messages != 30 || rep.Seals != len(seals) || len(rep.Chains) != 1 || rep.Chains[0].Last != uint64(len(seals)) {
		t.Fatalf("report: %+v", rep)
	}
}

// A crash between the insert of a batch and the insert of its seal: the
// next start finds the batch's rows and seals them before anything else
// (on ClickHouse, which would keep a second copy of a row inserted again).
func TestPipelineHealsBatchLeftUnsealedByCrash(t *testing.T) {
	h := sealHarness(t, clickhouseArchive(t), "relay-b")
	h.archive.sealDown.Store(true)
	h.start(t)
	ctx := context.Background()
	for i := range 3 {
		if err := h.p.Accept(ctx, text("c1", fmt.Sprint(i+1), "x")); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for h.archive.count(t, text("c1", "1", "").ID) == 0 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	time.Sleep(20 * time.Millisecond)
	h.stop() // "crash": the seal was never stored, the spool still holds the batch
	if n := len(h.archive.seals(t, "relay-b")); n != 0 {
		t.Fatalf("%d seals stored while sealing was down", n)
	}
	if n := len(h.bus.published()); n != 0 {
		t.Fatalf("%d messages delivered before their batch was sealed", n)
	}
	if rep := verifyMem(t, h.archive, verify.Options{}); rep.OK || rep.Counts[relay.ProblemInserted] == 0 {
		t.Fatalf("unsealed rows not reported: %+v", rep)
	}
	archived := len(h.archive.messages(t))

	h.archive.sealDown.Store(false)
	h = h.restart(t) // restart as the same writer
	h.start(t)
	deadline = time.Now().Add(5 * time.Second)
	for h.spool.Len() > 0 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	h.waitEvents(t, 3)
	h.stop()
	if seals := h.archive.seals(t, "relay-b"); len(seals) == 0 || !seals[0].Recovered || seals[0].Number != 1 {
		t.Fatalf("seals after restart: %+v", seals)
	}
	if len(h.archive.messages(t)) < archived {
		t.Fatal("rows lost")
	}
	for i := range 3 {
		if n := h.archive.count(t, text("c1", fmt.Sprint(i+1), "").ID); n != 1 {
			t.Fatalf("message %d archived %d times", i+1, n)
		}
	}
	wantOK(t, verifyMem(t, h.archive, verify.Options{}))
}

// An insert whose acknowledgement is lost is inserted again in the same
// batch: the copies are identical and verify collapses them (on
// ClickHouse, which keeps the copies).
func TestPipelineSealsBatchWhoseAckWasLost(t *testing.T) {
	h := sealHarness(t, clickhouseArchive(t), "relay-c")
	h.archive.lostAck.Store(true)
	h.start(t)
	if err := h.p.Accept(context.Background(), text("c1", "1", "x")); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for h.archive.count(t, text("c1", "1", "").ID) < 2 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	h.archive.lostAck.Store(false)
	h.waitEvents(t, 1)
	h.stop()
	if seals := h.archive.seals(t, "relay-c"); len(seals) != 1 || seals[0].Count != 1 {
		t.Fatalf("seals: %+v", seals)
	}
	wantOK(t, verifyMem(t, h.archive, verify.Options{}))
}

// On ClickHouse, which would keep a second copy of an event appended
// again.
func TestSealedEvents(t *testing.T) {
	h := sealHarness(t, clickhouseArchive(t), "relay-d")
	log := h.p.SealedEvents(h.archive)
	ctx := context.Background()
	for i := range 3 {
		if err := log.AppendEvents(ctx, []relay.DeliveryEvent{testEvent(i), testEvent(i)}); err != nil {
			t.Fatal(err)
		}
	}
	// Stored without its acknowledgement: the caller appends it again,
	// and it is sealed once, not archived twice.
	h.archive.lostAck.Store(true)
	if err := log.AppendEvents(ctx, []relay.DeliveryEvent{testEvent(3)}); err == nil {
		t.Fatal("lost acknowledgement not reported")
	}
	h.archive.lostAck.Store(false)
	if err := log.AppendEvents(ctx, []relay.DeliveryEvent{testEvent(3)}); err != nil {
		t.Fatal(err)
	}
	// The seal fails: the retry stores it and adds nothing.
	h.archive.sealDown.Store(true)
	if err := log.AppendEvents(ctx, []relay.DeliveryEvent{testEvent(4)}); err == nil {
		t.Fatal("failed seal not reported")
	}
	h.archive.sealDown.Store(false)
	if err := log.AppendEvents(ctx, []relay.DeliveryEvent{testEvent(4)}); err != nil {
		t.Fatal(err)
	}
	if evs := h.archive.events(t); len(evs) != 5 {
		t.Fatalf("%d event rows stored, want 5: %+v", len(evs), evs)
	}
	var numbers []uint64
	seals := h.archive.seals(t, "relay-d")
	for _, s := range seals {
		if s.Stream != relay.StreamEvents || s.Count != 1 {
			t.Fatalf("seal %+v", s)
		}
		numbers = append(numbers, s.Number)
	}
	if fmt.Sprint(numbers) != "[1 2 3 4 5]" || !seals[3].Recovered || seals[4].Recovered {
		t.Fatalf("seals %v, recovered %v %v", numbers, seals[3].Recovered, seals[4].Recovered)
	}
	wantOK(t, verifyMem(t, h.archive, verify.Options{}))
}
