package embedded

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/wechat-relay/wechat-relay/relay"
	"github.com/wechat-relay/wechat-relay/relay/verify"
)

// Tamper evidence (relay/seal.go): the seals table, and the reads that
// recovery and `wechat-relay verify` make of it and of the rows' batch
// ids, through the batch_id indexes of migration 0003.

var _ verify.Source = (*Archive)(nil)

// sealColumns is the column list of every INSERT into and SELECT from
// seals. key_id and signature (migration 0006) sign the seal's hash
// (relay/seal_sign.go); empty for an unsigned seal.
const sealColumns = `id, writer, stream, number, prev, root, leaf_count, first_ms, last_ms, at_ms, recovered, leaves, hash, key_id, signature`

// InsertSeal stores s in one transaction, durable when it returns.
// Idempotent by id: a seal already stored is kept as it is.
func (a *Archive) InsertSeal(ctx context.Context, s relay.Seal) error {
	if s.ID == "" || s.Writer == "" || s.Stream == "" || s.Hash == "" {
		return errors.New("embedded: insert seal: id, writer, stream and hash are required")
	}
	if s.Count < 0 || s.Count != len(s.Leaves) {
		return fmt.Errorf("embedded: insert seal %s: count %d for %d leaves", s.ID, s.Count, len(s.Leaves))
	}
	if s.Number > math.MaxInt64 {
		return fmt.Errorf("embedded: insert seal %s: number beyond what SQLite's INTEGER holds", s.ID)
	}
	leaves := make([][3]string, len(s.Leaves))
	for i, l := range s.Leaves {
		leaves[i] = [3]string{l.ID, string(l.Conv), l.Hash}
	}
	js, err := json.Marshal(leaves)
	if err != nil {
		return fmt.Errorf("embedded: insert seal %s: %w", s.ID, err)
	}
	err = a.write(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO seals (`+sealColumns+`)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
			ON CONFLICT (id) DO NOTHING`,
			s.ID, s.Writer, s.Stream, int64(s.Number), s.Prev, s.Root, s.Count,
			millis(s.First), millis(s.Last), millis(s.At), boolInt(s.Recovered), string(js), s.Hash, s.KeyID, s.Signature)
		return err
	})
	if err != nil {
		return fmt.Errorf("embedded: insert seal %s: %w", s.ID, err)
	}
	return nil
}

// millis is t as the epoch milliseconds of the seals table: 0 for the
// zero time and anything before 1970, as the hash takes it.
func millis(t time.Time) int64 {
	if ms := t.UnixMilli(); !t.IsZero() && ms > 0 {
		return ms
	}
	return 0
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// LatestSeal returns the stored seal of writer's stream with the highest
// number.
func (a *Archive) LatestSeal(ctx context.Context, writer, stream string) (relay.Seal, bool, error) {
	seals, err := a.querySeals(ctx, `SELECT `+sealColumns+` FROM seals
		WHERE writer = ? AND stream = ? ORDER BY number DESC, id LIMIT 1`, writer, stream)
	if err != nil {
		return relay.Seal{}, false, fmt.Errorf("embedded: latest seal of %s/%s: %w", writer, stream, err)
	}
	if len(seals) == 0 {
		return relay.Seal{}, false, nil
	}
	return seals[0], true, nil
}

// SettleInserts has nothing to wait for: an insert here is a SQLite
// transaction of this process, committed or rolled back when it returns.
func (a *Archive) SettleInserts(context.Context, string) error { return nil }

// BatchRows returns every stored row, messages and events, of batch id.
func (a *Archive) BatchRows(ctx context.Context, id string) ([]relay.StoredRow, error) {
	var out []relay.StoredRow
	err := a.scanRows(ctx, `batch_id = ?`, []any{id}, func(r relay.StoredRow) error {
		out = append(out, r)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("embedded: rows of batch %s: %w", id, err)
	}
	return out, nil
}

// Seals returns up to limit stored seals after `after` in (writer,
// stream, number) order.
func (a *Archive) Seals(ctx context.Context, after *relay.SealKey, limit int) ([]relay.Seal, error) {
	q := `SELECT ` + sealColumns + ` FROM seals`
	var args []any
	if after != nil {
		if after.Number >= math.MaxInt64 {
			q += ` WHERE (writer, stream) > (?, ?)`
			args = append(args, after.Writer, after.Stream)
		} else {
			q += ` WHERE (writer, stream, number) > (?, ?, ?)`
			args = append(args, after.Writer, after.Stream, int64(after.Number))
		}
	}
	q += ` ORDER BY writer, stream, number, id LIMIT ?`
	args = append(args, sqlLimit(limit))
	seals, err := a.querySeals(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("embedded: reading seals: %w", err)
	}
	return seals, nil
}

// ScanBatches calls fn for every stored row whose batch id is between
// from and to: messages first, then events.
func (a *Archive) ScanBatches(ctx context.Context, from, to string, fn func(relay.StoredRow) error) error {
	if err := a.scanRows(ctx, `batch_id BETWEEN ? AND ?`, []any{from, to}, fn); err != nil {
		return fmt.Errorf("embedded: rows of batches %s to %s: %w", from, to, err)
	}
	return nil
}

// ScanUnsealed calls fn for every stored row whose batch id is no stored
// seal's id.
func (a *Archive) ScanUnsealed(ctx context.Context, fn func(relay.StoredRow) error) error {
	if err := a.scanRows(ctx, `batch_id NOT IN (SELECT id FROM seals)`, nil, fn); err != nil {
		return fmt.Errorf("embedded: unsealed rows: %w", err)
	}
	return nil
}

// scanRows calls fn for each row of messages, then of events, matching
// where. fn must not use the archive: an in-memory archive has one
// connection, held by the scan.
func (a *Archive) scanRows(ctx context.Context, where string, args []any, fn func(relay.StoredRow) error) error {
	rows, err := a.db.QueryContext(ctx, `SELECT `+messageColumns+`, COALESCE(interaction, legacy_interaction) FROM messages WHERE `+where, args...)
	if err != nil {
		return err
	}
	err = func() error {
		defer rows.Close()
		for rows.Next() {
			var (
				m           relay.Message
				interaction sql.NullInt64
			)
			if err := scanMessageInto(rows, &m, &interaction); err != nil {
				return err
			}
			if err := fn(relay.StoredRow{Message: &m, Interaction: interaction.Int64 != 0}); err != nil {
				return err
			}
		}
		return rows.Err()
	}()
	if err != nil {
		return err
	}
	rows, err = a.db.QueryContext(ctx, `SELECT `+eventColumns+` FROM events WHERE `+where, args...)
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
	rows, err := a.db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []relay.Seal
	for rows.Next() {
		var (
			s                     relay.Seal
			number, count         int64
			firstMS, lastMS, atMS int64
			recovered             int64
			leaves                string
		)
		if err := rows.Scan(&s.ID, &s.Writer, &s.Stream, &number, &s.Prev, &s.Root, &count,
			&firstMS, &lastMS, &atMS, &recovered, &leaves, &s.Hash, &s.KeyID, &s.Signature); err != nil {
			return nil, err
		}
		s.Number, s.Count = uint64(number), int(count)
		s.First, s.Last, s.At = fromMillis(firstMS), fromMillis(lastMS), fromMillis(atMS)
		s.Recovered = recovered != 0
		var list [][3]string
		if err := json.Unmarshal([]byte(leaves), &list); err != nil {
			// Not what any writer stores: read as no leaves, which verify
			// finds does not match the seal's count and hash.
			list = nil
		}
		s.Leaves = make([]relay.Leaf, len(list))
		for i, l := range list {
			s.Leaves[i] = relay.Leaf{ID: l[0], Conv: relay.ConversationID(l[1]), Hash: l[2]}
		}
		out = append(out, s)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	return out, nil
}

func fromMillis(ms int64) time.Time {
	if ms <= 0 {
		return time.Time{}
	}
	return time.UnixMilli(ms).UTC()
}
