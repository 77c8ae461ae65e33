package archive

import (
	"context"
	"errors"
	"fmt"

	"github.com/wechat-relay/wechat-relay/relay"
)

// The directory table of migration 0005: every version of the entries of
// relay.Directory, with its hash, chain link and signature since 0008.
// Plain MergeTree: a retried insert leaves identical copies, which
// DirectoryRecords collapses.

var _ relay.DirectoryStore = (*Archive)(nil)

const directoryColumns = `kind, id, version, at_ms, by, deleted, data, prev_hash, hash, key_id, signature`

// AppendDirectory stores r in one batch. Storing an identical record
// again leaves a copy that DirectoryRecords does not return twice.
func (a *Archive) AppendDirectory(ctx context.Context, r relay.DirectoryRecord) error {
	if r.Kind == "" || r.ID == "" || r.Version == 0 {
		return errors.New("archive: append directory record: kind, id and a version above 0 are required")
	}
	batch, err := a.conn.PrepareBatch(ctx, `INSERT INTO directory (`+directoryColumns+`)`)
	if err != nil {
		return fmt.Errorf("archive: append directory %s %s v%d: preparing batch: %w", r.Kind, r.ID, r.Version, err)
	}
	defer abortUnsent(batch)
	var deleted uint8
	if r.Deleted {
		deleted = 1
	}
	if err := batch.Append(r.Kind, r.ID, r.Version, epochMillis(r.At), r.By, deleted, r.Data, r.PrevHash, r.Hash, r.KeyID, r.Signature); err != nil {
		return fmt.Errorf("archive: append directory %s %s v%d: %w", r.Kind, r.ID, r.Version, err)
	}
	if err := batch.Send(); err != nil {
		return fmt.Errorf("archive: append directory %s %s v%d: %w", r.Kind, r.ID, r.Version, err)
	}
	return nil
}

// DirectoryRecords returns every stored record, identical copies
// collapsed, by kind, id and version.
func (a *Archive) DirectoryRecords(ctx context.Context) ([]relay.DirectoryRecord, error) {
	rows, err := a.conn.Query(ctx, `SELECT DISTINCT `+directoryColumns+` FROM directory
		ORDER BY kind, id, version, at_ms, by, data, hash, key_id, signature`)
	if err != nil {
		return nil, fmt.Errorf("archive: reading the directory: %w", err)
	}
	defer rows.Close()
	var out []relay.DirectoryRecord
	for rows.Next() {
		var (
			r       relay.DirectoryRecord
			ms      uint64
			deleted uint8
		)
		if err := rows.Scan(&r.Kind, &r.ID, &r.Version, &ms, &r.By, &deleted, &r.Data, &r.PrevHash, &r.Hash, &r.KeyID, &r.Signature); err != nil {
			return nil, fmt.Errorf("archive: reading the directory: %w", err)
		}
		r.At, r.Deleted = fromMillis(ms), deleted != 0
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("archive: reading the directory: %w", err)
	}
	return out, nil
}
