package archive

import (
	"context"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"

	"github.com/wechat-relay/wechat-relay/relay"
	"github.com/wechat-relay/wechat-relay/storage/testenv"
)

// running counts the queries of batchID's inserts ClickHouse is running.
func running(t *testing.T, a *Archive, batchID string) uint64 {
	t.Helper()
	return count(t, a, `SELECT count() FROM system.processes WHERE startsWith(query_id, ?)`, insertQueryPrefix(batchID))
}

// SettleInserts stops a batch's insert that is still running, and only
// that batch's, and returns once it is over: nothing of it lands later.
func TestSettleInsertsStopsTheBatchsRunningInsert(t *testing.T) {
	a := openTest(t)
	ctx := testCtx(t)
	if err := a.conn.Exec(ctx, `CREATE TABLE slow (n UInt64) ENGINE = MergeTree() ORDER BY n`); err != nil {
		t.Fatal(err)
	}
	// An insert that takes 20 s unless stopped, tagged as Insert tags
	// the rows of a batch; batch 1's and batch 10's, whose ids share a
	// prefix.
	slowInsert := func(batch string) chan error {
		done := make(chan error, 1)
		go func() {
			// One row a block: ClickHouse refuses a sleep over 3 s a block.
			slow := clickhouse.Context(context.WithoutCancel(ctx), clickhouse.WithSettings(clickhouse.Settings{"max_block_size": 1}))
			done <- a.conn.Exec(insertContext(slow, batch),
				`INSERT INTO slow SELECT number FROM numbers(200) WHERE sleepEachRow(0.1) = 0`)
		}()
		testenv.Until(t, "the insert of "+batch+" running", func() bool { return running(t, a, batch) == 1 })
		return done
	}
	one, ten := slowInsert("w/messages/1"), slowInsert("w/messages/10")

	if err := a.SettleInserts(ctx, "w/messages/1"); err != nil {
		t.Fatal(err)
	}
	if n := running(t, a, "w/messages/1"); n != 0 {
		t.Fatalf("%d inserts of batch 1 still running after SettleInserts", n)
	}
	select {
	case err := <-one:
		if err == nil {
			t.Fatal("the stopped insert reported success")
		}
	case <-time.After(time.Minute):
		t.Fatal("the stopped insert never returned")
	}
	if n := running(t, a, "w/messages/10"); n != 1 {
		t.Fatalf("batch 10's insert: %d running, want 1: settling batch 1 must not touch it", n)
	}
	if err := a.SettleInserts(ctx, "w/messages/10"); err != nil {
		t.Fatal(err)
	}
	<-ten
	if n := count(t, a, `SELECT count() FROM slow`); n != 0 {
		t.Fatalf("%d rows of stopped inserts landed", n)
	}
	// Nothing running: nothing to do.
	if err := a.SettleInserts(ctx, "w/messages/2"); err != nil {
		t.Fatal(err)
	}
}

// Insert and AppendEvents tag their query with the rows' batch id, which
// is what SettleInserts looks for.
func TestInsertsAreTaggedWithTheirBatch(t *testing.T) {
	a := openTest(t)
	ctx := clickhouse.Context(testCtx(t), clickhouse.WithSettings(clickhouse.Settings{"log_queries": 1}))
	m := testMessage("acc:o_client", 1, time.Now())
	m.BatchID = relay.BatchID(testenv.UniqueName("w"), relay.StreamMessages, 7)
	if err := a.Insert(ctx, []relay.Message{m}); err != nil {
		t.Fatal(err)
	}
	ev := relay.DeliveryEvent{ID: "out:acc:o_client:k/sent", MessageID: "out:acc:o_client:k", Account: "acc", Conv: "acc:o_client",
		State: relay.DeliverySent, At: time.Now(), BatchID: relay.BatchID(testenv.UniqueName("w"), relay.StreamEvents, 3)}
	if err := a.AppendEvents(ctx, []relay.DeliveryEvent{ev}); err != nil {
		t.Fatal(err)
	}
	// A query's log entry is queued as it finishes, which may be just
	// after its answer: flush until both are there.
	finished := func(batch string) uint64 {
		return count(t, a, `SELECT count() FROM system.query_log WHERE type = 2 AND startsWith(query_id, ?)`, insertQueryPrefix(batch))
	}
	testenv.Until(t, "both inserts in the query log", func() bool {
		if err := a.conn.Exec(ctx, `SYSTEM FLUSH LOGS`); err != nil {
			t.Fatal(err)
		}
		return finished(m.BatchID) > 0 && finished(ev.BatchID) > 0
	})
	for _, batch := range []string{m.BatchID, ev.BatchID} {
		if n := finished(batch); n != 1 {
			t.Errorf("batch %s: %d finished inserts tagged with it in the query log, want 1", batch, n)
		}
	}
}
