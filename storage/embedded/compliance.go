package embedded

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strings"

	"github.com/wechat-relay/wechat-relay/relay"
)

// The compliance tables of migration 0004: the audit log, lexicon hits
// and their reviews, legal holds. Triggers refuse UPDATE and DELETE.

var (
	_ relay.AuditStore     = (*Archive)(nil)
	_ relay.AlertStore     = (*Archive)(nil)
	_ relay.RetentionStore = (*Archive)(nil)
)

// auditColumns is the column list of every INSERT into and SELECT from
// audit. key_id and signature (migration 0007) sign the record's hash
// (SealSigner.SignAudit); empty for an unsigned record.
const auditColumns = `id, writer, number, prev, at_ms, employee, role, action, conv, target, detail, remote, user_agent, hash, key_id, signature`

// AppendAudit stores e. Storing the same id again is ignored.
func (a *Archive) AppendAudit(ctx context.Context, e relay.AuditEntry) error {
	if e.ID == "" || e.Writer == "" || e.Hash == "" {
		return errors.New("embedded: append audit: id, writer and hash are required")
	}
	if e.Number > math.MaxInt64 {
		return fmt.Errorf("embedded: append audit %s: number beyond what SQLite's INTEGER holds", e.ID)
	}
	err := a.write(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO audit (`+auditColumns+`)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING`,
			e.ID, e.Writer, int64(e.Number), e.Prev, millis(e.At), e.Employee, e.Role, e.Action, e.Conv,
			e.Target, e.Detail, e.Remote, e.UserAgent, e.Hash, e.KeyID, e.Signature)
		return err
	})
	if err != nil {
		return fmt.Errorf("embedded: append audit %s: %w", e.ID, err)
	}
	return nil
}

// LatestAudit returns writer's newest audit record.
func (a *Archive) LatestAudit(ctx context.Context, writer string) (relay.AuditEntry, bool, error) {
	out, err := a.queryAudit(ctx, `SELECT `+auditColumns+` FROM audit WHERE writer = ? ORDER BY number DESC LIMIT 1`, writer)
	if err != nil || len(out) == 0 {
		return relay.AuditEntry{}, false, err
	}
	return out[0], true, nil
}

// SearchAudit returns the records q selects, newest first.
func (a *Archive) SearchAudit(ctx context.Context, q relay.AuditQuery) ([]relay.AuditEntry, error) {
	where := []string{"1 = 1"}
	var args []any
	if q.Employee != "" {
		where, args = append(where, "employee = ?"), append(args, q.Employee)
	}
	if q.Action != "" {
		where, args = append(where, "action = ?"), append(args, q.Action)
	}
	if q.Conv != "" {
		where, args = append(where, "conv = ?"), append(args, q.Conv)
	}
	if !q.From.IsZero() {
		where, args = append(where, "at_ms >= ?"), append(args, millis(q.From))
	}
	if !q.To.IsZero() {
		where, args = append(where, "at_ms < ?"), append(args, millis(q.To))
	}
	limit := q.Limit
	if limit <= 0 || limit > 10000 {
		limit = 1000
	}
	args = append(args, limit)
	return a.queryAudit(ctx, `SELECT `+auditColumns+` FROM audit WHERE `+strings.Join(where, " AND ")+
		` ORDER BY at_ms DESC, writer, number LIMIT ?`, args...)
}

// ScanAudit calls fn for every audit record by writer and number.
func (a *Archive) ScanAudit(ctx context.Context, fn func(relay.AuditEntry) error) error {
	out, err := a.queryAudit(ctx, `SELECT `+auditColumns+` FROM audit ORDER BY writer, number, hash`)
	if err != nil {
		return err
	}
	for _, e := range out {
		if err := fn(e); err != nil {
			return err
		}
	}
	return nil
}

func (a *Archive) queryAudit(ctx context.Context, q string, args ...any) ([]relay.AuditEntry, error) {
	rows, err := a.db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("embedded: reading audit: %w", err)
	}
	defer rows.Close()
	var out []relay.AuditEntry
	for rows.Next() {
		var (
			e      relay.AuditEntry
			number int64
			ms     int64
		)
		if err := rows.Scan(&e.ID, &e.Writer, &number, &e.Prev, &ms, &e.Employee, &e.Role, &e.Action, &e.Conv,
			&e.Target, &e.Detail, &e.Remote, &e.UserAgent, &e.Hash, &e.KeyID, &e.Signature); err != nil {
			return nil, fmt.Errorf("embedded: reading audit: %w", err)
		}
		e.Number, e.At = uint64(number), fromMillis(ms)
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("embedded: reading audit: %w", err)
	}
	return out, nil
}

const hitColumns = `id, account, conv, message_id, direction, employee, rule, matched, excerpt, at_ms`

// AppendHits stores hits; ids stored already are ignored.
func (a *Archive) AppendHits(ctx context.Context, hits []relay.LexiconHit) error {
	if len(hits) == 0 {
		return nil
	}
	err := a.write(ctx, func(tx *sql.Tx) error {
		for _, h := range hits {
			if _, err := tx.ExecContext(ctx, `INSERT INTO lexicon_hits (`+hitColumns+`)
				VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING`,
				h.ID, h.Account, string(h.Conv), h.MessageID, string(h.Direction), h.Employee, h.Rule, h.Matched,
				h.Excerpt, millis(h.At)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("embedded: append lexicon hits: %w", err)
	}
	return nil
}

// AppendReview stores a review decision.
func (a *Archive) AppendReview(ctx context.Context, r relay.AlertReview) error {
	err := a.write(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO alert_reviews (`+reviewColumns+`)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING`,
			r.ID, r.HitID, r.Decision, r.Comment, r.Reviewer, millis(r.At), int64(r.Version), r.PrevHash, r.Hash, r.KeyID, r.Signature)
		return err
	})
	if err != nil {
		return fmt.Errorf("embedded: append review %s: %w", r.ID, err)
	}
	return nil
}

// Hit returns one hit with its latest review.
func (a *Archive) Hit(ctx context.Context, id string) (relay.LexiconHit, bool, error) {
	hits, err := a.queryHits(ctx, `SELECT `+hitColumns+` FROM lexicon_hits WHERE id = ?`, id)
	if err != nil || len(hits) == 0 {
		return relay.LexiconHit{}, false, err
	}
	return hits[0], true, nil
}

// Alerts returns the hits q selects with their latest decision, newest
// first.
func (a *Archive) Alerts(ctx context.Context, q relay.AlertQuery) ([]relay.LexiconHit, error) {
	where := []string{"1 = 1"}
	var args []any
	if q.Account != "" {
		where, args = append(where, "account = ?"), append(args, q.Account)
	}
	if !q.From.IsZero() {
		where, args = append(where, "at_ms >= ?"), append(args, millis(q.From))
	}
	if !q.To.IsZero() {
		where, args = append(where, "at_ms < ?"), append(args, millis(q.To))
	}
	if len(q.Employees) > 0 {
		where = append(where, "employee IN "+placeholders(len(q.Employees)))
		for _, e := range q.Employees {
			args = append(args, e)
		}
	}
	limit := q.Limit
	if limit <= 0 || limit > 10000 {
		limit = 500
	}
	hits, err := a.queryHits(ctx, `SELECT `+hitColumns+` FROM lexicon_hits WHERE `+strings.Join(where, " AND ")+
		` ORDER BY at_ms DESC, id`, args...)
	if err != nil {
		return nil, err
	}
	return relay.FilterAlerts(hits, q.Status, limit), nil
}

// queryHits reads hits and attaches each one's latest review.
func (a *Archive) queryHits(ctx context.Context, q string, args ...any) ([]relay.LexiconHit, error) {
	rows, err := a.db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("embedded: reading lexicon hits: %w", err)
	}
	var out []relay.LexiconHit
	for rows.Next() {
		var (
			h         relay.LexiconHit
			conv, dir string
			ms        int64
		)
		if err := rows.Scan(&h.ID, &h.Account, &conv, &h.MessageID, &dir, &h.Employee, &h.Rule, &h.Matched, &h.Excerpt, &ms); err != nil {
			rows.Close()
			return nil, fmt.Errorf("embedded: reading lexicon hits: %w", err)
		}
		h.Conv, h.Direction, h.At = relay.ConversationID(conv), relay.Direction(dir), fromMillis(ms)
		out = append(out, h)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("embedded: reading lexicon hits: %w", err)
	}
	for i := range out {
		revs, err := a.queryReviews(ctx, `WHERE hit_id = ?`, out[i].ID)
		if err != nil {
			return nil, err
		}
		out[i].Reviews = revs
		for j := range revs {
			out[i].Review = &revs[j] // the latest, as stored; relay.ReviewLog checks them
		}
	}
	return out, nil
}

// reviewColumns is the column list of alert_reviews since 0009.
const reviewColumns = `id, hit_id, decision, comment, reviewer, at_ms, version, prev_hash, hash, key_id, signature`

// AllReviews returns every stored review (relay.ReviewSource).
func (a *Archive) AllReviews(ctx context.Context) ([]relay.AlertReview, error) {
	return a.queryReviews(ctx, "")
}

// queryReviews reads the reviews where selects, oldest first.
func (a *Archive) queryReviews(ctx context.Context, where string, args ...any) ([]relay.AlertReview, error) {
	rows, err := a.db.QueryContext(ctx, `SELECT `+reviewColumns+` FROM alert_reviews `+where+` ORDER BY at_ms, id`, args...)
	if err != nil {
		return nil, fmt.Errorf("embedded: reading reviews: %w", err)
	}
	defer rows.Close()
	var out []relay.AlertReview
	for rows.Next() {
		var (
			r       relay.AlertReview
			ms, ver int64
		)
		if err := rows.Scan(&r.ID, &r.HitID, &r.Decision, &r.Comment, &r.Reviewer, &ms, &ver, &r.PrevHash, &r.Hash, &r.KeyID, &r.Signature); err != nil {
			return nil, fmt.Errorf("embedded: reading reviews: %w", err)
		}
		r.At, r.Version = fromMillis(ms), uint64(ver)
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("embedded: reading reviews: %w", err)
	}
	return out, nil
}

// holdColumns is the column list of holds since 0009.
const holdColumns = `id, account, client, conv, reason, placed_by, at_ms, version, released, prev_hash, hash, key_id, signature`

// AppendHold stores one version of a hold; an identical copy is ignored.
func (a *Archive) AppendHold(ctx context.Context, h relay.Hold) error {
	err := a.write(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO holds (`+holdColumns+`)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`,
			h.ID, h.Account, h.Client, string(h.Conv), h.Reason, h.PlacedBy, millis(h.At),
			int64(h.Version), h.Released, h.PrevHash, h.Hash, h.KeyID, h.Signature)
		return err
	})
	if err != nil {
		return fmt.Errorf("embedded: append hold %s: %w", h.ID, err)
	}
	return nil
}

// HoldRecords returns every stored version of every hold, oldest first.
func (a *Archive) HoldRecords(ctx context.Context) ([]relay.Hold, error) {
	rows, err := a.db.QueryContext(ctx, `SELECT `+holdColumns+` FROM holds ORDER BY at_ms, id, version`)
	if err != nil {
		return nil, fmt.Errorf("embedded: reading holds: %w", err)
	}
	defer rows.Close()
	var out []relay.Hold
	for rows.Next() {
		var (
			h       relay.Hold
			conv    string
			ms, ver int64
		)
		if err := rows.Scan(&h.ID, &h.Account, &h.Client, &conv, &h.Reason, &h.PlacedBy, &ms,
			&ver, &h.Released, &h.PrevHash, &h.Hash, &h.KeyID, &h.Signature); err != nil {
			return nil, fmt.Errorf("embedded: reading holds: %w", err)
		}
		h.Conv, h.At, h.Version = relay.ConversationID(conv), fromMillis(ms), uint64(ver)
		out = append(out, h)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("embedded: reading holds: %w", err)
	}
	return out, nil
}

// MonthCounts counts messages per account and month (UTC, of their
// acceptance), and those one of held covers.
func (a *Archive) MonthCounts(ctx context.Context, held []relay.Hold) ([]relay.MonthCount, error) {
	convs, clients := heldSets(held)
	rows, err := a.db.QueryContext(ctx, `SELECT account, strftime('%Y%m', COALESCE(accepted_ms, 0) / 1000, 'unixepoch') AS month,
			count(*),
			sum(CASE WHEN conv IN (SELECT value FROM json_each(?))
				OR account || ':' || client IN (SELECT value FROM json_each(?))
				THEN 1 ELSE 0 END)
		FROM messages GROUP BY account, month ORDER BY account, month`, convs, clients)
	if err != nil {
		return nil, fmt.Errorf("embedded: counting messages per month: %w", err)
	}
	defer rows.Close()
	var out []relay.MonthCount
	for rows.Next() {
		var c relay.MonthCount
		if err := rows.Scan(&c.Account, &c.Month, &c.Messages, &c.Held); err != nil {
			return nil, fmt.Errorf("embedded: counting messages per month: %w", err)
		}
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("embedded: counting messages per month: %w", err)
	}
	return out, nil
}

// heldSets is the conversations and the "account:client" pairs held
// covers, as JSON arrays for json_each.
func heldSets(held []relay.Hold) (convs, clients string) {
	c, k := []string{}, []string{}
	for _, h := range held {
		if h.Conv != "" {
			c = append(c, string(h.Conv))
		} else if h.Client != "" {
			k = append(k, h.Account+":"+h.Client)
		}
	}
	cj, _ := json.Marshal(c)
	kj, _ := json.Marshal(k)
	return string(cj), string(kj)
}
