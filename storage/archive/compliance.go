package archive

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/ClickHouse/clickhouse-go/v2"

	"github.com/wechat-relay/wechat-relay/relay"
)

// The compliance tables of migration 0004: the audit log, lexicon hits
// and their reviews, legal holds. Plain MergeTree: a retried insert
// leaves identical copies, which every reader here collapses.

var (
	_ relay.AuditStore     = (*Archive)(nil)
	_ relay.AlertStore     = (*Archive)(nil)
	_ relay.RetentionStore = (*Archive)(nil)
)

// auditColumns is the column list of every INSERT into audit. key_id and
// signature (migration 0007) sign the record's hash
// (SealSigner.SignAudit); empty for an unsigned record.
const auditColumns = `id, writer, number, prev, at, at_ms, employee, role, action, conv, target, detail, remote, user_agent, hash, day, key_id, signature`

// auditSelect is auditColumns without at and day, in AuditEntry's scan
// order.
const auditSelect = `id, writer, number, prev, at_ms, employee, role, action, conv, target, detail, remote, user_agent, hash, key_id, signature`

// AppendAudit stores e in one batch.
func (a *Archive) AppendAudit(ctx context.Context, e relay.AuditEntry) error {
	if e.ID == "" || e.Writer == "" || e.Hash == "" {
		return errors.New("archive: append audit: id, writer and hash are required")
	}
	batch, err := a.conn.PrepareBatch(ctx, `INSERT INTO audit (`+auditColumns+`)`)
	if err != nil {
		return fmt.Errorf("archive: append audit %s: preparing batch: %w", e.ID, err)
	}
	defer abortUnsent(batch)
	at := a.clampTime(e.At, e.ID, "audit at")
	if err := batch.Append(e.ID, e.Writer, e.Number, e.Prev, at, epochMillis(e.At), e.Employee, e.Role, e.Action,
		e.Conv, e.Target, e.Detail, e.Remote, e.UserAgent, e.Hash, dayOf(at), e.KeyID, e.Signature); err != nil {
		return fmt.Errorf("archive: append audit %s: %w", e.ID, err)
	}
	if err := batch.Send(); err != nil {
		return fmt.Errorf("archive: append audit %s: %w", e.ID, err)
	}
	return nil
}

// LatestAudit returns writer's newest audit record.
func (a *Archive) LatestAudit(ctx context.Context, writer string) (relay.AuditEntry, bool, error) {
	out, err := a.queryAudit(ctx, `SELECT `+auditSelect+` FROM audit WHERE writer = ? ORDER BY number DESC LIMIT 1`, writer)
	if err != nil || len(out) == 0 {
		return relay.AuditEntry{}, false, err
	}
	return out[0], true, nil
}

// SearchAudit returns the records q selects, newest first.
func (a *Archive) SearchAudit(ctx context.Context, q relay.AuditQuery) ([]relay.AuditEntry, error) {
	var (
		where []string
		args  []any
	)
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
		where, args = append(where, "at_ms >= ?"), append(args, epochMillis(q.From))
	}
	if !q.To.IsZero() {
		where, args = append(where, "at_ms < ?"), append(args, epochMillis(q.To))
	}
	limit := q.Limit
	if limit <= 0 || limit > 10000 {
		limit = 1000
	}
	sql := `SELECT ` + auditSelect + ` FROM audit`
	if len(where) > 0 {
		sql += ` WHERE ` + strings.Join(where, " AND ")
	}
	sql += ` ORDER BY at_ms DESC, writer, number LIMIT 1 BY writer, number LIMIT ` + strconv.Itoa(limit)
	return a.queryAudit(ctx, sql, args...)
}

// ScanAudit calls fn for every stored audit record, copies included, by
// writer and number.
func (a *Archive) ScanAudit(ctx context.Context, fn func(relay.AuditEntry) error) error {
	rows, err := a.conn.Query(ctx, `SELECT `+auditSelect+` FROM audit ORDER BY writer, number, hash, key_id, signature`)
	if err != nil {
		return fmt.Errorf("archive: scanning audit: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		e, err := scanAudit(rows.Scan)
		if err != nil {
			return fmt.Errorf("archive: scanning audit: %w", err)
		}
		if err := fn(e); err != nil {
			return err
		}
	}
	return rows.Err()
}

func (a *Archive) queryAudit(ctx context.Context, sql string, args ...any) ([]relay.AuditEntry, error) {
	rows, err := a.conn.Query(ctx, sql, args...)
	if err != nil {
		return nil, fmt.Errorf("archive: reading audit: %w", err)
	}
	defer rows.Close()
	var out []relay.AuditEntry
	for rows.Next() {
		e, err := scanAudit(rows.Scan)
		if err != nil {
			return nil, fmt.Errorf("archive: reading audit: %w", err)
		}
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("archive: reading audit: %w", err)
	}
	return out, nil
}

func scanAudit(scan func(...any) error) (relay.AuditEntry, error) {
	var (
		e  relay.AuditEntry
		ms uint64
	)
	err := scan(&e.ID, &e.Writer, &e.Number, &e.Prev, &ms, &e.Employee, &e.Role, &e.Action, &e.Conv,
		&e.Target, &e.Detail, &e.Remote, &e.UserAgent, &e.Hash, &e.KeyID, &e.Signature)
	e.At = fromMillis(ms)
	return e, err
}

const hitColumns = `id, account, conv, message_id, direction, employee, rule, matched, excerpt, at, at_ms, day`
const hitSelect = `id, account, conv, message_id, direction, employee, rule, matched, excerpt, at_ms`

// AppendHits stores hits in one batch.
func (a *Archive) AppendHits(ctx context.Context, hits []relay.LexiconHit) error {
	if len(hits) == 0 {
		return nil
	}
	batch, err := a.conn.PrepareBatch(ctx, `INSERT INTO lexicon_hits (`+hitColumns+`)`)
	if err != nil {
		return fmt.Errorf("archive: append lexicon hits: preparing batch: %w", err)
	}
	defer abortUnsent(batch)
	for _, h := range hits {
		at := a.clampTime(h.At, h.ID, "hit at")
		if err := batch.Append(h.ID, h.Account, string(h.Conv), h.MessageID, string(h.Direction), h.Employee,
			h.Rule, h.Matched, h.Excerpt, at, epochMillis(h.At), dayOf(at)); err != nil {
			return fmt.Errorf("archive: append lexicon hit %s: %w", h.ID, err)
		}
	}
	if err := batch.Send(); err != nil {
		return fmt.Errorf("archive: append lexicon hits: %w", err)
	}
	return nil
}

// AppendReview stores a review decision.
func (a *Archive) AppendReview(ctx context.Context, r relay.AlertReview) error {
	batch, err := a.conn.PrepareBatch(ctx, `INSERT INTO alert_reviews (`+reviewSelect+`, at, day)`)
	if err != nil {
		return fmt.Errorf("archive: append review: preparing batch: %w", err)
	}
	defer abortUnsent(batch)
	at := a.clampTime(r.At, r.ID, "review at")
	if err := batch.Append(r.ID, r.HitID, r.Decision, r.Comment, r.Reviewer, epochMillis(r.At),
		r.Version, r.PrevHash, r.Hash, r.KeyID, r.Signature, at, dayOf(at)); err != nil {
		return fmt.Errorf("archive: append review %s: %w", r.ID, err)
	}
	if err := batch.Send(); err != nil {
		return fmt.Errorf("archive: append review %s: %w", r.ID, err)
	}
	return nil
}

// Hit returns one hit with its latest review.
func (a *Archive) Hit(ctx context.Context, id string) (relay.LexiconHit, bool, error) {
	hits, err := a.queryHits(ctx, `SELECT `+hitSelect+` FROM lexicon_hits WHERE id = ? LIMIT 1`, id)
	if err != nil || len(hits) == 0 {
		return relay.LexiconHit{}, false, err
	}
	if err := a.attachReviews(ctx, hits); err != nil {
		return relay.LexiconHit{}, false, err
	}
	return hits[0], true, nil
}

// Alerts returns the hits q selects with their latest decision, newest
// first.
func (a *Archive) Alerts(ctx context.Context, q relay.AlertQuery) ([]relay.LexiconHit, error) {
	var (
		where []string
		args  []any
	)
	if q.Account != "" {
		where, args = append(where, "account = ?"), append(args, q.Account)
	}
	if !q.From.IsZero() {
		where, args = append(where, "at_ms >= ?"), append(args, epochMillis(q.From))
	}
	if !q.To.IsZero() {
		where, args = append(where, "at_ms < ?"), append(args, epochMillis(q.To))
	}
	if len(q.Employees) > 0 {
		where, args = append(where, "employee IN ?"), append(args, stringSet(q.Employees))
	}
	limit := q.Limit
	if limit <= 0 || limit > 10000 {
		limit = 500
	}
	sql := `SELECT ` + hitSelect + ` FROM lexicon_hits`
	if len(where) > 0 {
		sql += ` WHERE ` + strings.Join(where, " AND ")
	}
	// Fetch more than limit when filtering by status, which is known only
	// once the reviews are attached.
	fetch := limit
	if q.Status != "" {
		fetch = limit * 4
	}
	sql += ` ORDER BY at_ms DESC, id LIMIT 1 BY id LIMIT ` + strconv.Itoa(fetch)
	hits, err := a.queryHits(ctx, sql, args...)
	if err != nil {
		return nil, err
	}
	if err := a.attachReviews(ctx, hits); err != nil {
		return nil, err
	}
	return relay.FilterAlerts(hits, q.Status, limit), nil
}

func (a *Archive) queryHits(ctx context.Context, sql string, args ...any) ([]relay.LexiconHit, error) {
	rows, err := a.conn.Query(ctx, sql, args...)
	if err != nil {
		return nil, fmt.Errorf("archive: reading lexicon hits: %w", err)
	}
	defer rows.Close()
	var out []relay.LexiconHit
	for rows.Next() {
		var (
			h         relay.LexiconHit
			conv, dir string
			ms        uint64
		)
		if err := rows.Scan(&h.ID, &h.Account, &conv, &h.MessageID, &dir, &h.Employee, &h.Rule, &h.Matched, &h.Excerpt, &ms); err != nil {
			return nil, fmt.Errorf("archive: reading lexicon hits: %w", err)
		}
		h.Conv, h.Direction, h.At = relay.ConversationID(conv), relay.Direction(dir), fromMillis(ms)
		out = append(out, h)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("archive: reading lexicon hits: %w", err)
	}
	return out, nil
}

// reviewSelect is the columns of alert_reviews since 0009, in
// AlertReview's scan order.
const reviewSelect = `id, hit_id, decision, comment, reviewer, at_ms, version, prev_hash, hash, key_id, signature`

// attachReviews sets each hit's reviews, oldest first, and its latest
// (as stored: relay.ReviewLog checks them).
func (a *Archive) attachReviews(ctx context.Context, hits []relay.LexiconHit) error {
	if len(hits) == 0 {
		return nil
	}
	ids := make([]any, len(hits))
	for i, h := range hits {
		ids[i] = h.ID
	}
	revs, err := a.queryReviews(ctx, `WHERE hit_id IN ?`, clickhouse.GroupSet{Value: ids})
	if err != nil {
		return err
	}
	byHit := map[string][]relay.AlertReview{}
	for _, r := range revs {
		byHit[r.HitID] = append(byHit[r.HitID], r)
	}
	for i := range hits {
		hits[i].Reviews = byHit[hits[i].ID]
		hits[i].Review = nil
		for j := range hits[i].Reviews {
			hits[i].Review = &hits[i].Reviews[j]
		}
	}
	return nil
}

// AllReviews returns every stored review (relay.ReviewSource).
func (a *Archive) AllReviews(ctx context.Context) ([]relay.AlertReview, error) {
	return a.queryReviews(ctx, "")
}

// queryReviews reads the reviews where selects, oldest first, identical
// copies once.
func (a *Archive) queryReviews(ctx context.Context, where string, args ...any) ([]relay.AlertReview, error) {
	rows, err := a.conn.Query(ctx, `SELECT `+reviewSelect+` FROM alert_reviews `+where+`
		ORDER BY at_ms, id LIMIT 1 BY `+reviewSelect, args...)
	if err != nil {
		return nil, fmt.Errorf("archive: reading reviews: %w", err)
	}
	defer rows.Close()
	var out []relay.AlertReview
	for rows.Next() {
		var (
			r  relay.AlertReview
			ms uint64
		)
		if err := rows.Scan(&r.ID, &r.HitID, &r.Decision, &r.Comment, &r.Reviewer, &ms, &r.Version, &r.PrevHash, &r.Hash, &r.KeyID, &r.Signature); err != nil {
			return nil, fmt.Errorf("archive: reading reviews: %w", err)
		}
		r.At = fromMillis(ms)
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("archive: reading reviews: %w", err)
	}
	return out, nil
}

// holdSelect is the columns of holds since 0009, in Hold's scan order.
const holdSelect = `id, account, client, conv, reason, placed_by, at_ms, version, released, prev_hash, hash, key_id, signature`

// AppendHold stores one version of a hold.
func (a *Archive) AppendHold(ctx context.Context, h relay.Hold) error {
	batch, err := a.conn.PrepareBatch(ctx, `INSERT INTO holds (`+holdSelect+`, at, day)`)
	if err != nil {
		return fmt.Errorf("archive: append hold: preparing batch: %w", err)
	}
	defer abortUnsent(batch)
	at := a.clampTime(h.At, h.ID, "hold at")
	var released uint8
	if h.Released {
		released = 1
	}
	if err := batch.Append(h.ID, h.Account, h.Client, string(h.Conv), h.Reason, h.PlacedBy, epochMillis(h.At),
		h.Version, released, h.PrevHash, h.Hash, h.KeyID, h.Signature, at, dayOf(at)); err != nil {
		return fmt.Errorf("archive: append hold %s: %w", h.ID, err)
	}
	if err := batch.Send(); err != nil {
		return fmt.Errorf("archive: append hold %s: %w", h.ID, err)
	}
	return nil
}

// HoldRecords returns every stored version of every hold, oldest first;
// identical copies (a retried insert) once.
func (a *Archive) HoldRecords(ctx context.Context) ([]relay.Hold, error) {
	rows, err := a.conn.Query(ctx, `SELECT `+holdSelect+` FROM holds
		ORDER BY at_ms, id, version LIMIT 1 BY `+holdSelect)
	if err != nil {
		return nil, fmt.Errorf("archive: reading holds: %w", err)
	}
	defer rows.Close()
	var out []relay.Hold
	for rows.Next() {
		var (
			h        relay.Hold
			conv     string
			ms       uint64
			released uint8
		)
		if err := rows.Scan(&h.ID, &h.Account, &h.Client, &conv, &h.Reason, &h.PlacedBy, &ms,
			&h.Version, &released, &h.PrevHash, &h.Hash, &h.KeyID, &h.Signature); err != nil {
			return nil, fmt.Errorf("archive: reading holds: %w", err)
		}
		h.Conv, h.At, h.Released = relay.ConversationID(conv), fromMillis(ms), released != 0
		out = append(out, h)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("archive: reading holds: %w", err)
	}
	return out, nil
}

// MonthCounts counts distinct messages per account and monthly
// partition, and those one of held covers (by conversation, or by
// account and client).
func (a *Archive) MonthCounts(ctx context.Context, held []relay.Hold) ([]relay.MonthCount, error) {
	// "\x00" keeps each set non-empty (18.16 has no empty IN ()); no
	// conversation or client is named so.
	convs, clients := []any{"\x00"}, []any{"\x00"}
	for _, h := range held {
		if h.Conv != "" {
			convs = append(convs, string(h.Conv))
		} else if h.Client != "" {
			clients = append(clients, h.Account+":"+h.Client)
		}
	}
	rows, err := a.conn.Query(ctx, `SELECT account, toYYYYMM(day) AS month, uniqExact(id) AS n,
			uniqExactIf(id, conv IN ? OR concat(account, ':', client) IN ?) AS held
		FROM messages GROUP BY account, month ORDER BY account, month`,
		clickhouse.GroupSet{Value: convs}, clickhouse.GroupSet{Value: clients})
	if err != nil {
		return nil, fmt.Errorf("archive: counting messages per month: %w", err)
	}
	defer rows.Close()
	var out []relay.MonthCount
	for rows.Next() {
		var (
			c       relay.MonthCount
			month   uint32
			n, held uint64
		)
		if err := rows.Scan(&c.Account, &month, &n, &held); err != nil {
			return nil, fmt.Errorf("archive: counting messages per month: %w", err)
		}
		c.Month, c.Messages, c.Held = strconv.FormatUint(uint64(month), 10), int(n), int(held)
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("archive: counting messages per month: %w", err)
	}
	return out, nil
}
