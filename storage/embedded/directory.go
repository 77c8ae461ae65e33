package embedded

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math"

	"github.com/wechat-relay/wechat-relay/relay"
)

// The directory table of migration 0005: every version of the entries of
// relay.Directory, with its hash, chain link and signature since 0008. Keyed by the whole record; triggers refuse UPDATE and
// DELETE.

var _ relay.DirectoryStore = (*Archive)(nil)

const directoryColumns = `kind, id, version, at_ms, "by", deleted, data, prev_hash, hash, key_id, signature`

// AppendDirectory stores r. Storing an identical record again is
// ignored.
func (a *Archive) AppendDirectory(ctx context.Context, r relay.DirectoryRecord) error {
	if r.Kind == "" || r.ID == "" || r.Version == 0 {
		return errors.New("embedded: append directory record: kind, id and a version above 0 are required")
	}
	if r.Version > math.MaxInt64 {
		return fmt.Errorf("embedded: append directory %s %s: version beyond what SQLite's INTEGER holds", r.Kind, r.ID)
	}
	err := a.write(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO directory (`+directoryColumns+`)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`,
			r.Kind, r.ID, int64(r.Version), millis(r.At), r.By, boolInt(r.Deleted), r.Data, r.PrevHash, r.Hash, r.KeyID, r.Signature)
		return err
	})
	if err != nil {
		return fmt.Errorf("embedded: append directory %s %s v%d: %w", r.Kind, r.ID, r.Version, err)
	}
	return nil
}

// DirectoryRecords returns every stored record, by kind, id and version.
func (a *Archive) DirectoryRecords(ctx context.Context) ([]relay.DirectoryRecord, error) {
	rows, err := a.db.QueryContext(ctx, `SELECT `+directoryColumns+` FROM directory
		ORDER BY kind, id, version, at_ms, "by", data, hash, key_id, signature`)
	if err != nil {
		return nil, fmt.Errorf("embedded: reading the directory: %w", err)
	}
	defer rows.Close()
	var out []relay.DirectoryRecord
	for rows.Next() {
		var (
			r           relay.DirectoryRecord
			version, ms int64
			deleted     int64
		)
		if err := rows.Scan(&r.Kind, &r.ID, &version, &ms, &r.By, &deleted, &r.Data, &r.PrevHash, &r.Hash, &r.KeyID, &r.Signature); err != nil {
			return nil, fmt.Errorf("embedded: reading the directory: %w", err)
		}
		r.Version, r.At, r.Deleted = uint64(version), fromMillis(ms), deleted != 0
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("embedded: reading the directory: %w", err)
	}
	return out, nil
}
