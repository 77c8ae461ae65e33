package archive

import (
	"context"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/wechat-relay/wechat-relay/relay"
	"github.com/wechat-relay/wechat-relay/relay/verify"
)

// Tamper evidence (relay/seal.go): the seals table, and the reads that
// recovery and `wechat-relay verify` make of it and of the rows' batch
// ids. Every read here returns physical rows — the copies a replay left,
// before merges, included — since verification must see what is stored,
// not a collapsed view of it.

var _ verify.Source = (*Archive)(nil)

// sealColumns is the column list of every INSERT into and SELECT from
// seals. key_id and signature (migration 0006) sign the seal's hash
// (relay/seal_sign.go); empty for an unsigned seal.
const sealColumns = `id, writer, stream, number, prev, root, leaf_count, first_ms, last_ms, at, at_ms, recovered, ` +
	`leaf_ids, leaf_convs, leaf_hashes, hash, day, key_id, signature`

// InsertSeal stores s in one batch. Idempotent: storing the same seal
// again adds an identical copy, which merges away (the table is keyed by
// writer, stream and number) and which verify takes for one seal.
func (a *Archive) InsertSeal(ctx context.Context, s relay.Seal) error {
	if s.ID == "" || s.Writer == "" || s.Stream == "" || s.Hash == "" {
		return errors.New("archive: insert seal: id, writer, stream and hash are required")
	}
	if s.Count < 0 || s.Count != len(s.Leaves) {
		return fmt.Errorf("archive: insert seal %s: count %d for %d leaves", s.ID, s.Count, len(s.Leaves))
	}
	ids := make([]string, len(s.Leaves))
	convs := make([]string, len(s.Leaves))
	hashes := make([]string, len(s.Leaves))
	for i, l := range s.Leaves {
		ids[i], convs[i], hashes[i] = l.ID, string(l.Conv), l.Hash
	}
	batch, err := a.conn.PrepareBatch(ctx, `INSERT INTO seals (`+sealColumns+`)`)
	if err != nil {
		return fmt.Errorf("archive: insert seal %s: preparing batch: %w", s.ID, err)
	}
	defer abortUnsent(batch)
	at := a.clampTime(s.At, s.ID, "seal at")
	if err := batch.Append(
		s.ID, s.Writer, s.Stream, s.Number, s.Prev, s.Root, uint64(s.Count),
		epochMillis(s.First), epochMillis(s.Last), at, epochMillis(s.At), boolUInt8(s.Recovered),
		ids, convs, hashes, s.Hash, dayOf(at), s.KeyID, s.Signature,
	); err != nil {
		return fmt.Errorf("archive: insert seal %s: %w", s.ID, err)
	}
	if err := batch.Send(); err != nil {
		return fmt.Errorf("archive: insert seal %s: %w", s.ID, err)
	}
	return nil
}

// LatestSeal returns the stored seal of writer's stream with the highest
// number. The sort key (writer, stream, number) finds it without a scan.
func (a *Archive) LatestSeal(ctx context.Context, writer, stream string) (relay.Seal, bool, error) {
	seals, err := a.querySeals(ctx, `SELECT `+sealColumns+` FROM seals
		WHERE writer = ? AND stream = ? ORDER BY number DESC, at_ms DESC, hash LIMIT 1`, writer, stream)
	if err != nil {
		return relay.Seal{}, false, fmt.Errorf("archive: latest seal of %s/%s: %w", writer, stream, err)
	}
	if len(seals) == 0 {
		return relay.Seal{}, false, nil
	}
	return seals[0], true, nil
}

// BatchRows returns every stored row of batch id: of messages for a
// batch of the messages stream, of events for one of the events stream,
// of both otherwise. batch_id is in no sort key: this reads the batch_id
// column of the table whole, which a writer does once per chain when it
// starts (and after a failed write).
func (a *Archive) BatchRows(ctx context.Context, id string) ([]relay.StoredRow, error) {
	var out []relay.StoredRow
	collect := func(r relay.StoredRow) error {
		out = append(out, r)
		return nil
	}
	var err error
	switch _, stream, _, _ := relay.ParseBatchID(id); stream {
	case relay.StreamMessages:
		err = a.scanMessages(ctx, `batch_id = ?`, []any{id}, collect)
	case relay.StreamEvents:
		err = a.scanEvents(ctx, `batch_id = ?`, []any{id}, collect)
	default:
		err = a.scanRows(ctx, `batch_id = ?`, []any{id}, collect)
	}
	if err != nil {
		return nil, fmt.Errorf("archive: rows of batch %s: %w", id, err)
	}
	return out, nil
}

// Seals returns the stored seals after `after` in (writer, stream,
// number) order, copies included, one chain at a time and at most limit
// numbers of it per call (a limit <= 0 reads the rest of the chain).
//
// Each call reads a range of the sort key — one chain, numbers after
// `after` up to limit more — so that a page reads its own granules
// only: a query with ORDER BY ... LIMIT would read (and on 18.16 sort)
// every seal after the cursor, for every page. A range that a gap (seals
// deleted) leaves empty is skipped by asking for the next number; a
// chain that ends is followed by the next one.
func (a *Archive) Seals(ctx context.Context, after *relay.SealKey, limit int) ([]relay.Seal, error) {
	var key relay.SealKey
	if after != nil {
		key = *after
	} else {
		next, ok, err := a.nextChain(ctx, nil)
		if err != nil || !ok {
			return nil, err
		}
		key = next
	}
	for {
		q := `SELECT ` + sealColumns + ` FROM seals WHERE writer = ? AND stream = ? AND number > ?`
		args := []any{key.Writer, key.Stream, key.Number}
		if limit > 0 && key.Number <= math.MaxUint64-uint64(limit) {
			q += ` AND number <= ?`
			args = append(args, key.Number+uint64(limit))
		}
		seals, err := a.querySeals(ctx, q+` ORDER BY number, hash`, args...)
		if err != nil {
			return nil, fmt.Errorf("archive: reading seals of %s/%s after %d: %w", key.Writer, key.Stream, key.Number, err)
		}
		if len(seals) > 0 {
			return seals, nil
		}
		// Nothing in the range: a gap, or the end of the chain.
		var (
			n    uint64
			next uint64
		)
		if err := a.conn.QueryRow(ctx, `SELECT count(), min(number) FROM seals WHERE writer = ? AND stream = ? AND number > ?`,
			key.Writer, key.Stream, key.Number).Scan(&n, &next); err != nil {
			return nil, fmt.Errorf("archive: reading seals of %s/%s after %d: %w", key.Writer, key.Stream, key.Number, err)
		}
		if n > 0 {
			key.Number = next - 1
			continue
		}
		chain, ok, err := a.nextChain(ctx, &key)
		if err != nil || !ok {
			return nil, err
		}
		key = chain
	}
}

// nextChain returns the position before the first seal of the chain
// after after's (the first chain for nil): its writer and stream, number
// 0. ok is false when there is none.
func (a *Archive) nextChain(ctx context.Context, after *relay.SealKey) (relay.SealKey, bool, error) {
	q := `SELECT writer, stream FROM seals`
	var args []any
	if after != nil {
		q += ` WHERE writer > ? OR (writer = ? AND stream > ?)`
		args = append(args, after.Writer, after.Writer, after.Stream)
	}
	rows, err := a.conn.Query(ctx, q+` GROUP BY writer, stream ORDER BY writer, stream LIMIT 1`, args...)
	if err != nil {
		return relay.SealKey{}, false, fmt.Errorf("archive: listing seal chains: %w", err)
	}
	defer rows.Close()
	if !rows.Next() {
		return relay.SealKey{}, false, rows.Err()
	}
	var k relay.SealKey
	if err := rows.Scan(&k.Writer, &k.Stream); err != nil {
		return relay.SealKey{}, false, fmt.Errorf("archive: listing seal chains: %w", err)
	}
	return k, true, nil
}

// ScanBatches calls fn for every stored row whose batch id is between
// from and to: messages first, then events. Rows stream from the server;
// nothing is held beyond the current block.
func (a *Archive) ScanBatches(ctx context.Context, from, to string, fn func(relay.StoredRow) error) error {
	if err := a.scanRows(ctx, `batch_id >= ? AND batch_id <= ?`, []any{from, to}, fn); err != nil {
		return fmt.Errorf("archive: rows of batches %s to %s: %w", from, to, err)
	}
	return nil
}

// ScanUnsealed calls fn for every stored row whose batch id is no
// stored seal's id (rows archived before 0003 have an empty one).
func (a *Archive) ScanUnsealed(ctx context.Context, fn func(relay.StoredRow) error) error {
	if err := a.scanRows(ctx, `batch_id NOT IN (SELECT id FROM seals)`, nil, fn); err != nil {
		return fmt.Errorf("archive: unsealed rows: %w", err)
	}
	return nil
}

// scanRows calls fn for each row of messages, then of events, matching
// where.
func (a *Archive) scanRows(ctx context.Context, where string, args []any, fn func(relay.StoredRow) error) error {
	if err := a.scanMessages(ctx, where, args, fn); err != nil {
		return err
	}
	return a.scanEvents(ctx, where, args, fn)
}

// scanMessages calls fn for each row of messages matching where.
func (a *Archive) scanMessages(ctx context.Context, where string, args []any, fn func(relay.StoredRow) error) error {
	rows, err := a.conn.Query(ctx, `SELECT `+messageColumns+`, interaction FROM messages WHERE `+where, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var interaction uint8
		m, err := scanMessageWith(rows, &interaction)
		if err != nil {
			return err
		}
		if err := fn(relay.StoredRow{Message: &m, Interaction: interaction != 0}); err != nil {
			return err
		}
	}
	return rows.Err()
}

// scanEvents calls fn for each row of events matching where.
func (a *Archive) scanEvents(ctx context.Context, where string, args []any, fn func(relay.StoredRow) error) error {
	rows, err := a.conn.Query(ctx, `SELECT `+eventColumns+` FROM events WHERE `+where, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		e, err := scanEvent(rows)
		if err != nil {
			return err
		}
		if err := fn(relay.StoredRow{Event: &e}); err != nil {
			return err
		}
	}
	return rows.Err()
}

func (a *Archive) querySeals(ctx context.Context, q string, args ...any) ([]relay.Seal, error) {
	rows, err := a.conn.Query(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []relay.Seal
	for rows.Next() {
		s, err := scanSeal(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	return out, nil
}

func scanSeal(rows driver.Rows) (relay.Seal, error) {
	var (
		s                     relay.Seal
		count                 uint64
		firstMS, lastMS, atMS uint64
		at, day               time.Time
		recovered             uint8
		ids, convs, hashes    []string
	)
	if err := rows.Scan(&s.ID, &s.Writer, &s.Stream, &s.Number, &s.Prev, &s.Root, &count,
		&firstMS, &lastMS, &at, &atMS, &recovered, &ids, &convs, &hashes, &s.Hash, &day, &s.KeyID, &s.Signature); err != nil {
		return relay.Seal{}, err
	}
	s.Count = int(min(count, math.MaxInt32))
	s.First, s.Last, s.At = fromMillis(firstMS), fromMillis(lastMS), fromMillis(atMS)
	s.Recovered = recovered != 0
	// The three arrays are one list; a row whose arrays disagree (no
	// writer stores one) is read as far as all three go, which verify
	// then finds does not match the seal's count or hash.
	n := min(len(ids), len(convs), len(hashes))
	s.Leaves = make([]relay.Leaf, n)
	for i := range n {
		s.Leaves[i] = relay.Leaf{ID: ids[i], Conv: relay.ConversationID(convs[i]), Hash: hashes[i]}
	}
	return s, nil
}

// fromMillis reads an epoch-milliseconds column: 0 is the zero time.
func fromMillis(ms uint64) time.Time {
	if ms == 0 || ms > math.MaxInt64 {
		return time.Time{}
	}
	return time.UnixMilli(int64(ms)).UTC()
}
