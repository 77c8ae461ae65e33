package archive

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
)

// insertPrefix starts the query id of every insert of a sealed batch:
// the batch id follows, then a random suffix per attempt. SettleInserts
// finds a batch's attempts by it.
const insertPrefix = "wr-insert/"

// insertContext tags the insert of rows of batchID with a query id that
// SettleInserts can find. Rows without a batch id (tools, tests) are
// inserted untagged.
func insertContext(ctx context.Context, batchID string) context.Context {
	if batchID == "" {
		return ctx
	}
	var b [8]byte
	_, _ = rand.Read(b[:])
	return clickhouse.Context(ctx, clickhouse.WithQueryID(insertQueryPrefix(batchID)+hex.EncodeToString(b[:])))
}

func insertQueryPrefix(batchID string) string { return insertPrefix + batchID + "/" }

// SettleInserts returns once no insert of rows of batchID is running in
// ClickHouse, stopping any that is (KILL QUERY … SYNC). An insert whose
// answer was lost (the server killed, hung, or the caller's context
// ended) may still be running and commit later; after SettleInserts,
// what Existing and BatchRows read of the batch is final, so a retry
// does not insert a row a second time.
//
// ClickHouse registers a query when it reads the query's first packet,
// so an attempt whose bytes still wait unread in a socket (a server
// that was frozen until a moment ago) is out of reach; the server reads
// them before it answers this call's handshake on a new connection.
func (a *Archive) SettleInserts(ctx context.Context, batchID string) error {
	if batchID == "" {
		return nil
	}
	err := a.conn.Exec(ctx, `KILL QUERY WHERE startsWith(query_id, ?) SYNC`, insertQueryPrefix(batchID))
	var ex *clickhouse.Exception
	if errors.As(err, &ex) && ex.Code == errUnkillable {
		// The insert is past the point where it can be stopped: it
		// finishes on its own; wait for that.
		err = a.waitInsertsGone(ctx, batchID)
	}
	if err != nil {
		return fmt.Errorf("archive: stopping unfinished inserts of batch %s: %w", batchID, err)
	}
	return nil
}

// errUnkillable is ClickHouse's "can't kill query: it consists of
// unkillable stages".
const errUnkillable = 380

// waitInsertsGone returns once no insert of batchID is running.
func (a *Archive) waitInsertsGone(ctx context.Context, batchID string) error {
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for {
		var n uint64
		if err := a.conn.QueryRow(ctx, `SELECT count() FROM system.processes WHERE startsWith(query_id, ?)`,
			insertQueryPrefix(batchID)).Scan(&n); err != nil {
			return fmt.Errorf("waiting for an insert that cannot be stopped: %w", err)
		}
		if n == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for an insert that cannot be stopped: %w", ctx.Err())
		case <-t.C:
		}
	}
}

// batchOf is the batch id shared by all rows of an insert, or "" when
// they do not share one.
func batchOf[T any](rows []T, id func(*T) string) string {
	if len(rows) == 0 {
		return ""
	}
	b := id(&rows[0])
	for i := range rows {
		if id(&rows[i]) != b {
			return ""
		}
	}
	return b
}
