package archive

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/wechat-relay/wechat-relay/relay"
)

// The client_profiles and client_tags tables of migration 0010: every
// version of every client's profile and of every account's tag
// vocabulary (relay.ProfileStore). Plain MergeTree: a retried insert
// leaves identical copies, which the readers collapse (DISTINCT).

var _ relay.ProfileStore = (*Archive)(nil)

const (
	profileColumns = `account, openid, conv, version, at_ms, by, name, remark, tags, note, prev_hash, hash, key_id, signature`
	tagSetColumns  = `account, version, at_ms, by, tags, prev_hash, hash, key_id, signature`
)

// AppendProfile stores one version of a client's profile.
func (a *Archive) AppendProfile(ctx context.Context, p relay.ClientProfile) error {
	if p.Account == "" || p.OpenID == "" || p.Version == 0 {
		return errors.New("archive: append profile: account, openid and a version above 0 are required")
	}
	batch, err := a.conn.PrepareBatch(ctx, `INSERT INTO client_profiles (`+profileColumns+`)`)
	if err != nil {
		return fmt.Errorf("archive: append profile of %s v%d: preparing batch: %w", p.Conv(), p.Version, err)
	}
	defer abortUnsent(batch)
	tags := p.Tags
	if tags == nil {
		tags = []string{}
	}
	if err := batch.Append(p.Account, p.OpenID, string(p.Conv()), p.Version, epochMillis(p.At), p.By,
		p.Name, p.Remark, tags, p.Note, p.PrevHash, p.Hash, p.KeyID, p.Signature); err != nil {
		return fmt.Errorf("archive: append profile of %s v%d: %w", p.Conv(), p.Version, err)
	}
	if err := batch.Send(); err != nil {
		return fmt.Errorf("archive: append profile of %s v%d: %w", p.Conv(), p.Version, err)
	}
	return nil
}

// ProfileRecords returns every stored version of the profiles q
// selects, identical copies once, oldest first.
func (a *Archive) ProfileRecords(ctx context.Context, q relay.ProfileQuery) ([]relay.ClientProfile, error) {
	var (
		where []string
		args  []any
	)
	if q.Account != "" {
		where = append(where, `account = ?`)
		args = append(args, q.Account)
	}
	if q.Convs != nil {
		convs := make([]string, len(q.Convs))
		for i, c := range q.Convs {
			convs[i] = string(c)
		}
		// "\x00" keeps the set non-empty (18.16 has no empty IN ()); no
		// conversation is named so.
		where = append(where, `conv IN ?`)
		args = append(args, stringSet(append(convs, "\x00")))
	}
	query := `SELECT DISTINCT ` + profileColumns + ` FROM client_profiles`
	if len(where) > 0 {
		query += ` WHERE ` + strings.Join(where, ` AND `)
	}
	query += ` ORDER BY at_ms, account, openid, version, hash, key_id, signature`
	rows, err := a.conn.Query(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("archive: reading client profiles: %w", err)
	}
	defer rows.Close()
	var out []relay.ClientProfile
	for rows.Next() {
		var (
			p    relay.ClientProfile
			conv string
			ms   uint64
		)
		if err := rows.Scan(&p.Account, &p.OpenID, &conv, &p.Version, &ms, &p.By, &p.Name, &p.Remark, &p.Tags, &p.Note,
			&p.PrevHash, &p.Hash, &p.KeyID, &p.Signature); err != nil {
			return nil, fmt.Errorf("archive: reading client profiles: %w", err)
		}
		p.At = fromMillis(ms)
		out = append(out, p)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("archive: reading client profiles: %w", err)
	}
	return out, nil
}

// AppendTagSet stores one version of an account's tag vocabulary.
func (a *Archive) AppendTagSet(ctx context.Context, t relay.TagSet) error {
	if t.Account == "" || t.Version == 0 {
		return errors.New("archive: append tags: account and a version above 0 are required")
	}
	batch, err := a.conn.PrepareBatch(ctx, `INSERT INTO client_tags (`+tagSetColumns+`)`)
	if err != nil {
		return fmt.Errorf("archive: append tags of %s v%d: preparing batch: %w", t.Account, t.Version, err)
	}
	defer abortUnsent(batch)
	tags := t.Tags
	if tags == nil {
		tags = []string{}
	}
	if err := batch.Append(t.Account, t.Version, epochMillis(t.At), t.By, tags, t.PrevHash, t.Hash, t.KeyID, t.Signature); err != nil {
		return fmt.Errorf("archive: append tags of %s v%d: %w", t.Account, t.Version, err)
	}
	if err := batch.Send(); err != nil {
		return fmt.Errorf("archive: append tags of %s v%d: %w", t.Account, t.Version, err)
	}
	return nil
}

// TagSetRecords returns every stored version of account's vocabulary
// ("" every account's), identical copies once, oldest first.
func (a *Archive) TagSetRecords(ctx context.Context, account string) ([]relay.TagSet, error) {
	query := `SELECT DISTINCT ` + tagSetColumns + ` FROM client_tags`
	var args []any
	if account != "" {
		query += ` WHERE account = ?`
		args = append(args, account)
	}
	query += ` ORDER BY at_ms, account, version, hash, key_id, signature`
	rows, err := a.conn.Query(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("archive: reading tag vocabularies: %w", err)
	}
	defer rows.Close()
	var out []relay.TagSet
	for rows.Next() {
		var (
			t  relay.TagSet
			ms uint64
		)
		if err := rows.Scan(&t.Account, &t.Version, &ms, &t.By, &t.Tags, &t.PrevHash, &t.Hash, &t.KeyID, &t.Signature); err != nil {
			return nil, fmt.Errorf("archive: reading tag vocabularies: %w", err)
		}
		t.At = fromMillis(ms)
		out = append(out, t)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("archive: reading tag vocabularies: %w", err)
	}
	return out, nil
}
