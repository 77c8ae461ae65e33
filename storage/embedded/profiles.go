package embedded

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/wechat-relay/wechat-relay/relay"
)

// The client_profiles and client_tags tables of migration 0010
// (relay.ProfileStore). The whole record is the primary key: an
// identical copy is ignored.

var _ relay.ProfileStore = (*Archive)(nil)

const (
	profileColumns = `account, openid, conv, version, at_ms, "by", name, remark, tags, note, prev_hash, hash, key_id, signature`
	tagSetColumns  = `account, version, at_ms, "by", tags, prev_hash, hash, key_id, signature`
)

// tagsJSON is tags as the tags column keeps them: a JSON array.
func tagsJSON(tags []string) string {
	if tags == nil {
		tags = []string{}
	}
	b, _ := json.Marshal(tags)
	return string(b)
}

// AppendProfile stores one version of a client's profile.
func (a *Archive) AppendProfile(ctx context.Context, p relay.ClientProfile) error {
	if p.Account == "" || p.OpenID == "" || p.Version == 0 {
		return errors.New("embedded: append profile: account, openid and a version above 0 are required")
	}
	err := a.write(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO client_profiles (`+profileColumns+`)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`,
			p.Account, p.OpenID, string(p.Conv()), int64(p.Version), millis(p.At), p.By, p.Name, p.Remark, tagsJSON(p.Tags), p.Note,
			p.PrevHash, p.Hash, p.KeyID, p.Signature)
		return err
	})
	if err != nil {
		return fmt.Errorf("embedded: append profile of %s v%d: %w", p.Conv(), p.Version, err)
	}
	return nil
}

// ProfileRecords returns every stored version of the profiles q
// selects, oldest first.
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
		js, _ := json.Marshal(convs)
		where = append(where, `conv IN (SELECT value FROM json_each(?))`)
		args = append(args, string(js))
	}
	query := `SELECT ` + profileColumns + ` FROM client_profiles`
	if len(where) > 0 {
		query += ` WHERE ` + strings.Join(where, ` AND `)
	}
	query += ` ORDER BY at_ms, account, openid, version, hash, key_id, signature`
	rows, err := a.db.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("embedded: reading client profiles: %w", err)
	}
	defer rows.Close()
	var out []relay.ClientProfile
	for rows.Next() {
		var (
			p       relay.ClientProfile
			conv    string
			tags    string
			ms, ver int64
		)
		if err := rows.Scan(&p.Account, &p.OpenID, &conv, &ver, &ms, &p.By, &p.Name, &p.Remark, &tags, &p.Note,
			&p.PrevHash, &p.Hash, &p.KeyID, &p.Signature); err != nil {
			return nil, fmt.Errorf("embedded: reading client profiles: %w", err)
		}
		if err := json.Unmarshal([]byte(tags), &p.Tags); err != nil {
			return nil, fmt.Errorf("embedded: reading client profiles: the tags of %s v%d: %w", conv, ver, err)
		}
		p.At, p.Version = fromMillis(ms), uint64(ver)
		out = append(out, p)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("embedded: reading client profiles: %w", err)
	}
	return out, nil
}

// AppendTagSet stores one version of an account's tag vocabulary.
func (a *Archive) AppendTagSet(ctx context.Context, t relay.TagSet) error {
	if t.Account == "" || t.Version == 0 {
		return errors.New("embedded: append tags: account and a version above 0 are required")
	}
	err := a.write(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO client_tags (`+tagSetColumns+`)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`,
			t.Account, int64(t.Version), millis(t.At), t.By, tagsJSON(t.Tags), t.PrevHash, t.Hash, t.KeyID, t.Signature)
		return err
	})
	if err != nil {
		return fmt.Errorf("embedded: append tags of %s v%d: %w", t.Account, t.Version, err)
	}
	return nil
}

// TagSetRecords returns every stored version of account's vocabulary
// ("" every account's), oldest first.
func (a *Archive) TagSetRecords(ctx context.Context, account string) ([]relay.TagSet, error) {
	query := `SELECT ` + tagSetColumns + ` FROM client_tags`
	var args []any
	if account != "" {
		query += ` WHERE account = ?`
		args = append(args, account)
	}
	query += ` ORDER BY at_ms, account, version, hash, key_id, signature`
	rows, err := a.db.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("embedded: reading tag vocabularies: %w", err)
	}
	defer rows.Close()
	var out []relay.TagSet
	for rows.Next() {
		var (
			t       relay.TagSet
			tags    string
			ms, ver int64
		)
		if err := rows.Scan(&t.Account, &ver, &ms, &t.By, &tags, &t.PrevHash, &t.Hash, &t.KeyID, &t.Signature); err != nil {
			return nil, fmt.Errorf("embedded: reading tag vocabularies: %w", err)
		}
		if err := json.Unmarshal([]byte(tags), &t.Tags); err != nil {
			return nil, fmt.Errorf("embedded: reading tag vocabularies: the tags of %s v%d: %w", t.Account, ver, err)
		}
		t.At, t.Version = fromMillis(ms), uint64(ver)
		out = append(out, t)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("embedded: reading tag vocabularies: %w", err)
	}
	return out, nil
}
