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
	if len(a.seals) == 0 {
		t.Fatal("no seals")
	}
	sealed := 0
	for i, s := range a.seals {
		if s.Number != uint64(i+1) || s.Writer != "relay-a" || s.Stream != relay.StreamMessages || s.Recovered {
			t.Fatalf("seal %d: %+v", i, s)
		}
		sealed += s.Count
	}
	if sealed != 30 {
		t.Fatalf("seals cover %d rows, want 30", sealed)
	}
	for _, m := range a.rows {
		if m.Hash != relay.MessageHash(m) || m.BatchID == "" {
			t.Fatalf("row %s: hash %q batch %q", m.ID, m.Hash, m.BatchID)
		}
	}
	rep := verifyMem(t, a, verify.Options{ChunkRows: 7, SealPage: 2})
	wantOK(t, rep)
	if rep.Messages != 30 || rep.Seals != len(a.seals) || len(rep.Chains) != 1 || rep.Chains[0].Last != uint64(len(a.seals)) {
		t.Fatalf("report: %+v", rep)
	}
}

// A crash between the insert of a batch and the insert of its seal: the
// next start finds the batch's rows and seals them before anything else.
func TestPipelineHealsBatchLeftUnsealedByCrash(t *testing.T) {
	h := sealHarness(t, nil, "relay-b")
	h.archive.sealDown = true
	h.start(t)
	ctx := context.Background()
	for i := range 3 {
		if err := h.p.Accept(ctx, text("c1", fmt.Sprint(i+1), "x")); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for !h.archive.has(text("c1", "1", "").ID) && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	time.Sleep(20 * time.Millisecond)
	h.stop() // "crash": the seal was never stored, the spool still holds the batch
	if len(h.archive.seals) != 0 {
		t.Fatalf("%d seals stored while sealing was down", len(h.archive.seals))
	}
	if n := len(h.bus.published()); n != 0 {
		t.Fatalf("%d messages delivered before their batch was sealed", n)
	}
	if rep := verifyMem(t, h.archive, verify.Options{}); rep.OK || rep.Counts[relay.ProblemInserted] == 0 {
		t.Fatalf("unsealed rows not reported: %+v", rep)
	}
	archived := len(h.archive.rows)

	h.archive.sealDown = false
	h = h.restart(t) // restart as the same writer
	h.start(t)
	deadline = time.Now().Add(5 * time.Second)
	for h.spool.Len() > 0 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	h.waitEvents(t, 3)
	h.stop()
	if len(h.archive.seals) == 0 || !h.archive.seals[0].Recovered || h.archive.seals[0].Number != 1 {
		t.Fatalf("seals after restart: %+v", h.archive.seals)
	}
	if len(h.archive.rows) < archived {
		t.Fatal("rows lost")
	}
	for i := range 3 {
		if n := h.archive.count(text("c1", fmt.Sprint(i+1), "").ID); n != 1 {
			t.Fatalf("message %d archived %d times", i+1, n)
		}
	}
	wantOK(t, verifyMem(t, h.archive, verify.Options{}))
}

// An insert whose acknowledgement is lost is inserted again in the same
// batch: the copies are identical and verify collapses them.
func TestPipelineSealsBatchWhoseAckWasLost(t *testing.T) {
	h := sealHarness(t, nil, "relay-c")
	h.archive.lostAck = true
	h.start(t)
	if err := h.p.Accept(context.Background(), text("c1", "1", "x")); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for h.archive.count(text("c1", "1", "").ID) < 2 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	h.archive.mu.Lock()
	h.archive.lostAck = false
	h.archive.mu.Unlock()
	h.waitEvents(t, 1)
	h.stop()
	if len(h.archive.seals) != 1 || h.archive.seals[0].Count != 1 {
		t.Fatalf("seals: %+v", h.archive.seals)
	}
	wantOK(t, verifyMem(t, h.archive, verify.Options{}))
}

func TestSealedEvents(t *testing.T) {
	h := sealHarness(t, nil, "relay-d")
	log := h.p.SealedEvents(memEventLog{h.archive})
	ctx := context.Background()
	for i := range 3 {
		if err := log.AppendEvents(ctx, []relay.DeliveryEvent{testEvent(i), testEvent(i)}); err != nil {
			t.Fatal(err)
		}
	}
	// Stored without its acknowledgement: the caller appends it again,
	// and it is sealed once, not archived twice.
	h.archive.lostAck = true
	if err := log.AppendEvents(ctx, []relay.DeliveryEvent{testEvent(3)}); err == nil {
		t.Fatal("lost acknowledgement not reported")
	}
	h.archive.lostAck = false
	if err := log.AppendEvents(ctx, []relay.DeliveryEvent{testEvent(3)}); err != nil {
		t.Fatal(err)
	}
	// The seal fails: the retry stores it and adds nothing.
	h.archive.sealDown = true
	if err := log.AppendEvents(ctx, []relay.DeliveryEvent{testEvent(4)}); err == nil {
		t.Fatal("failed seal not reported")
	}
	h.archive.sealDown = false
	if err := log.AppendEvents(ctx, []relay.DeliveryEvent{testEvent(4)}); err != nil {
		t.Fatal(err)
	}
	if len(h.archive.evRows) != 5 {
		t.Fatalf("%d event rows stored, want 5: %+v", len(h.archive.evRows), h.archive.evRows)
	}
	var numbers []uint64
	for _, s := range h.archive.seals {
		if s.Stream != relay.StreamEvents || s.Count != 1 {
			t.Fatalf("seal %+v", s)
		}
		numbers = append(numbers, s.Number)
	}
	if fmt.Sprint(numbers) != "[1 2 3 4 5]" || !h.archive.seals[3].Recovered || h.archive.seals[4].Recovered {
		t.Fatalf("seals %v, recovered %v %v", numbers, h.archive.seals[3].Recovered, h.archive.seals[4].Recovered)
	}
	wantOK(t, verifyMem(t, h.archive, verify.Options{}))
}
