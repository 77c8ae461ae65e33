package embedded

import (
	"context"
	"database/sql"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strconv"
	"time"

	"github.com/wechat-relay/wechat-relay/relay"
	"github.com/wechat-relay/wechat-relay/relay/report"
)

var _ report.Store = (*Archive)(nil)

// The reports' figures (relay/report), computed by SQLite: the same
// definitions and the same integer arithmetic on accepted_ms as the
// ClickHouse archive, with window functions where ClickHouse uses arrays.
// Ids are unique here (the primary key), so a count of rows is a count of
// ids.

const (
	sqlMessageIn  = `(direction = 'in' AND kind != 'event')`
	sqlMessageOut = `(direction = 'out')`
)

func offsetMS(f report.Filter) string { return strconv.FormatInt(f.Offset.Milliseconds(), 10) }

// dayExpr and hourExpr are the SQL of the day number and hour of the day
// of the epoch milliseconds in col, in f's zone.
func dayExpr(col string, f report.Filter) string {
	return `((` + col + ` + ` + offsetMS(f) + `) / 86400000)`
}

func hourExpr(col string, f report.Filter) string {
	return `(((` + col + ` + ` + offsetMS(f) + `) / 3600000) % 24)`
}

// cond collects the conditions of a query and their arguments.
type cond struct {
	sql  string
	args []any
}

func (c *cond) add(sql string, args ...any) *cond {
	c.sql += ` AND ` + sql
	c.args = append(c.args, args...)
	return c
}

func (c *cond) inRange(col string, f report.Filter) *cond {
	return c.add(col+` >= ? AND `+col+` < ?`, f.From.UnixMilli(), f.To.UnixMilli())
}

func (c *cond) account(f report.Filter) *cond {
	if f.Account != "" {
		c.add(`account = ?`, f.Account)
	}
	return c
}

func (c *cond) employees(col string, f report.Filter) *cond {
	if f.Employees != nil {
		c.add(col+` IN `+placeholders(len(f.Employees)), anySlice(f.Employees)...)
	}
	return c
}

func anySlice(ss []string) []any {
	out := make([]any, len(ss))
	for i, s := range ss {
		out[i] = s
	}
	return out
}

func none(f report.Filter) bool { return f.Employees != nil && len(f.Employees) == 0 }

// ReportVolume counts messages in and out of f's range, grouped by g.
func (a *Archive) ReportVolume(ctx context.Context, f report.Filter, g report.Group) ([]report.VolumeRow, error) {
	if none(f) {
		return nil, nil
	}
	var key string
	switch g {
	case report.GroupDay:
		key = `CAST(` + dayExpr("accepted_ms", f) + ` AS TEXT)`
	case report.GroupHour:
		key = `CAST(` + hourExpr("accepted_ms", f) + ` AS TEXT)`
	case report.GroupAccount:
		key = `account`
	case report.GroupEmployee:
		key = `employee`
	case report.GroupAll:
		key = `''`
	default:
		return nil, fmt.Errorf("embedded archive: volume: unknown grouping %q", g)
	}
	c := (&cond{}).inRange("accepted_ms", f).account(f).employees("employee", f)
	rows, err := a.db.QueryContext(ctx, `SELECT `+key+` AS k,
		SUM(CASE WHEN `+sqlMessageIn+` THEN 1 ELSE 0 END) AS n_in, SUM(CASE WHEN `+sqlMessageOut+` THEN 1 ELSE 0 END) AS n_out
		FROM messages WHERE direction IN ('in', 'out')`+c.sql+`
		GROUP BY k HAVING n_in + n_out > 0`, c.args...)
	if err != nil {
		return nil, fmt.Errorf("embedded archive: volume by %s: %w", g, err)
	}
	defer rows.Close()
	var out []report.VolumeRow
	for rows.Next() {
		var r report.VolumeRow
		if err := rows.Scan(&r.Key, &r.In, &r.Out); err != nil {
			return nil, fmt.Errorf("embedded archive: volume by %s: %w", g, err)
		}
		if r.Key, err = report.GroupKey(g, r.Key); err != nil {
			return nil, fmt.Errorf("embedded archive: volume by %s: %w", g, err)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("embedded archive: volume by %s: %w", g, err)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out, nil
}

// dayCounts runs q, which selects a day number and n counts, into a map
// of day key to counts.
func (a *Archive) dayCounts(ctx context.Context, q string, args []any, n int) (map[string][]int64, error) {
	rows, err := a.db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[string][]int64{}
	for rows.Next() {
		var day int64
		counts := make([]int64, n)
		dest := []any{&day}
		for i := range counts {
			dest = append(dest, &counts[i])
		}
		if err := rows.Scan(dest...); err != nil {
			return nil, err
		}
		out[report.DayKey(day)] = counts
	}
	return out, rows.Err()
}

// ReportClients counts, per day, the clients new and returning that day.
func (a *Archive) ReportClients(ctx context.Context, f report.Filter) ([]report.ClientsRow, error) {
	if none(f) {
		return nil, nil
	}
	act := (&cond{}).inRange("accepted_ms", f).account(f).employees("employee", f)
	first := (&cond{}).add(`accepted_ms < ?`, f.To.UnixMilli()).account(f)
	fd := dayExpr("first.first_ms", f)
	counts, err := a.dayCounts(ctx, `WITH act AS (
			SELECT DISTINCT conv, `+dayExpr("accepted_ms", f)+` AS d FROM messages WHERE `+isInteraction+act.sql+`
		), first AS (
			SELECT conv, MIN(accepted_ms) AS first_ms FROM messages WHERE `+isInteraction+first.sql+` GROUP BY conv
		)
		SELECT act.d, SUM(CASE WHEN `+fd+` = act.d THEN 1 ELSE 0 END), SUM(CASE WHEN `+fd+` < act.d THEN 1 ELSE 0 END)
		FROM act JOIN first ON first.conv = act.conv GROUP BY act.d`, append(act.args, first.args...), 2)
	if err != nil {
		return nil, fmt.Errorf("embedded archive: counting clients: %w", err)
	}
	var out []report.ClientsRow
	for _, d := range slices.Sorted(maps.Keys(counts)) {
		out = append(out, report.ClientsRow{Day: d, New: counts[d][0], Returning: counts[d][1]})
	}
	return out, nil
}

// ReportConversations counts, per day, the conversations opened, resolved
// and reopened.
func (a *Archive) ReportConversations(ctx context.Context, f report.Filter) ([]report.ConversationsRow, error) {
	if none(f) {
		return nil, nil
	}
	fail := func(what string, err error) ([]report.ConversationsRow, error) {
		return nil, fmt.Errorf("embedded archive: counting conversations %s: %w", what, err)
	}
	hist := (&cond{}).add(`accepted_ms < ?`, f.To.UnixMilli()).account(f)
	// SQLite takes the bare column employee from the row of MIN().
	outer := (&cond{}).add(`first_ms >= ?`, f.From.UnixMilli()).employees("employee", f)
	opened, err := a.dayCounts(ctx, `SELECT `+dayExpr("first_ms", f)+` AS d, COUNT(*) FROM (
			SELECT conv, MIN(accepted_ms) AS first_ms, employee FROM messages WHERE 1 = 1`+hist.sql+` GROUP BY conv
		) WHERE 1 = 1`+outer.sql+` GROUP BY d`, append(append([]any{}, hist.args...), outer.args...), 1)
	if err != nil {
		return fail("opened", err)
	}

	c := (&cond{}).inRange("accepted_ms", f).account(f).employees("employee", f)
	resolved, err := a.dayCounts(ctx, `SELECT `+dayExpr("accepted_ms", f)+` AS d, COUNT(*) FROM messages
		WHERE direction = 'internal' AND kind = 'resolve'`+c.sql+` GROUP BY d`, c.args, 1)
	if err != nil {
		return fail("resolved", err)
	}

	// 's' resolve, 'o' reopen, 'i' the client's interaction; a reopen is
	// an 'o', or an 'i' right after an 's' in sequence order.
	outer = (&cond{}).inRange("accepted_ms", f).employees("employee", f)
	reopened, err := a.dayCounts(ctx, `SELECT `+dayExpr("accepted_ms", f)+` AS d, COUNT(*) FROM (
			SELECT accepted_ms, employee, k, LAG(k) OVER (PARTITION BY conv ORDER BY seq) AS pk FROM (
				SELECT conv, seq, accepted_ms, employee,
					CASE WHEN direction = 'internal' AND kind = 'resolve' THEN 's'
						WHEN direction = 'internal' AND kind = 'reopen' THEN 'o' ELSE 'i' END AS k
				FROM messages
				WHERE ((direction = 'internal' AND kind IN ('resolve', 'reopen')) OR `+isInteraction+`)`+hist.sql+`
			)
		) WHERE (k = 'o' OR (k = 'i' AND pk = 's'))`+outer.sql+` GROUP BY d`,
		append(append([]any{}, hist.args...), outer.args...), 1)
	if err != nil {
		return fail("reopened", err)
	}

	return report.ConversationsRows(opened, resolved, reopened), nil
}

// ReportResponses computes the response times of the replies of f's range:
// each conversation's messages in and out are cut into segments by its
// messages out (the number of messages out before a row), as in the
// ClickHouse archive.
func (a *Archive) ReportResponses(ctx context.Context, f report.Filter, g report.Group) ([]report.ResponseRow, error) {
	if none(f) {
		return nil, nil
	}
	var key string
	switch g {
	case report.GroupEmployee:
		key = `emp`
	case report.GroupAll:
		key = `''`
	default:
		return nil, fmt.Errorf("embedded archive: response times: unknown grouping %q", g)
	}
	hist := (&cond{}).add(`accepted_ms < ?`, f.To.UnixMilli()).account(f)
	replies := (&cond{}).inRange("reply", f).employees("emp", f)
	stats := func(from string) string {
		return `SELECT k, MAX(n) AS n,
			MAX(CASE WHEN rn = MAX((n * 50 + 99) / 100, 1) THEN w END) AS med,
			MAX(CASE WHEN rn = MAX((n * 90 + 99) / 100, 1) THEN w END) AS p90
			FROM (SELECT k, w, ROW_NUMBER() OVER (PARTITION BY k ORDER BY w) AS rn, COUNT(*) OVER (PARTITION BY k) AS n FROM ` + from + `)
			GROUP BY k`
	}
	rows, err := a.db.QueryContext(ctx, `WITH s AS (
			SELECT conv, accepted_ms AS ms, o, employee,
				COALESCE(SUM(o) OVER (PARTITION BY conv ORDER BY seq ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING), 0) AS seg
			FROM (SELECT conv, seq, accepted_ms, employee, CASE WHEN `+sqlMessageOut+` THEN 1 ELSE 0 END AS o
				FROM messages WHERE (`+sqlMessageIn+` OR `+sqlMessageOut+`)`+hist.sql+`)
		), g AS (
			SELECT conv, seg, MIN(CASE WHEN o = 0 THEN ms END) AS start, MIN(CASE WHEN o = 1 THEN ms END) AS reply,
				MAX(CASE WHEN o = 1 THEN employee END) AS emp
			FROM s GROUP BY conv, seg
		), w AS (
			SELECT `+key+` AS k, seg, MAX(reply - start, 0) AS w FROM g
			WHERE start IS NOT NULL AND reply IS NOT NULL`+replies.sql+`
		), a AS (`+stats("w")+`), b AS (`+stats("(SELECT * FROM w WHERE seg = 0)")+`)
		SELECT a.k, a.n, a.med, a.p90, COALESCE(b.n, 0), COALESCE(b.med, 0), COALESCE(b.p90, 0)
		FROM a LEFT JOIN b ON b.k = a.k ORDER BY a.k`, append(append([]any{}, hist.args...), replies.args...)...)
	if err != nil {
		return nil, fmt.Errorf("embedded archive: response times by %s: %w", g, err)
	}
	defer rows.Close()
	var out []report.ResponseRow
	for rows.Next() {
		var r report.ResponseRow
		if err := rows.Scan(&r.Key, &r.Replies, &r.MedianMS, &r.P90MS, &r.FirstReplies, &r.FirstMS, &r.FirstP90MS); err != nil {
			return nil, fmt.Errorf("embedded archive: response times by %s: %w", g, err)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("embedded archive: response times by %s: %w", g, err)
	}
	return out, nil
}

// ReportWaiting lists the conversations whose latest message in or out (or
// resolve) is a message in, with the first message in since.
func (a *Archive) ReportWaiting(ctx context.Context, f report.Filter) ([]report.WaitingRow, error) {
	if none(f) {
		return nil, nil
	}
	acc := (&cond{}).account(f)
	emp := (&cond{}).employees("e.emp", f)
	rows, err := a.db.QueryContext(ctx, `WITH c AS (
			SELECT conv, MAX(seq) AS last,
				MAX(CASE WHEN `+sqlMessageOut+` OR (direction = 'internal' AND kind = 'resolve') THEN seq ELSE 0 END) AS lb,
				MAX(CASE WHEN `+sqlMessageIn+` THEN seq ELSE 0 END) AS li
			FROM messages WHERE 1 = 1`+acc.sql+` GROUP BY conv HAVING li > lb
		), e AS (
			SELECT c.conv, m.employee AS emp, c.lb FROM c JOIN messages AS m ON m.conv = c.conv AND m.seq = c.last
		)
		SELECT e.conv, e.emp, MIN(m.accepted_ms) AS since
		FROM e JOIN messages AS m ON m.conv = e.conv AND m.seq > e.lb AND m.direction = 'in' AND m.kind != 'event'
		WHERE 1 = 1`+emp.sql+`
		GROUP BY e.conv, e.emp ORDER BY since, e.conv`, append(append([]any{}, acc.args...), emp.args...)...)
	if err != nil {
		return nil, fmt.Errorf("embedded archive: conversations waiting for a reply: %w", err)
	}
	defer rows.Close()
	var out []report.WaitingRow
	for rows.Next() {
		var (
			r     report.WaitingRow
			conv  string
			since sql.NullInt64
		)
		if err := rows.Scan(&conv, &r.Employee, &since); err != nil {
			return nil, fmt.Errorf("embedded archive: conversations waiting for a reply: %w", err)
		}
		r.Conv, r.Since = relay.ConversationID(conv), msTime(since)
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("embedded archive: conversations waiting for a reply: %w", err)
	}
	return out, nil
}

func msTime(ms sql.NullInt64) time.Time {
	if !ms.Valid || ms.Int64 == 0 {
		return time.Time{}
	}
	return time.UnixMilli(ms.Int64).UTC()
}

// ReportClosing lists the conversations whose window closes within the
// next within, unanswered since the client's latest interaction.
func (a *Archive) ReportClosing(ctx context.Context, f report.Filter, now time.Time, within time.Duration) ([]report.ClosingRow, error) {
	if none(f) {
		return nil, nil
	}
	after := now.Add(-report.Window).UnixMilli()
	upTo := now.Add(within - report.Window).UnixMilli()
	acc := (&cond{}).account(f)
	emp := (&cond{}).employees("m.employee", f)
	args := append([]any{after}, acc.args...)
	args = append(append(args, acc.args...), after, upTo)
	args = append(args, emp.args...)
	rows, err := a.db.QueryContext(ctx, `WITH c AS (
			SELECT conv, MAX(seq) AS last,
				MAX(CASE WHEN `+isInteraction+` THEN accepted_ms END) AS li_ms,
				MAX(CASE WHEN `+isInteraction+` THEN seq ELSE 0 END) AS li,
				MAX(CASE WHEN `+sqlMessageOut+` THEN seq ELSE 0 END) AS lo
			FROM messages
			WHERE conv IN (SELECT conv FROM messages WHERE accepted_ms > ? AND direction = 'in'`+acc.sql+`)`+acc.sql+`
			GROUP BY conv HAVING li > lo AND li_ms > ? AND li_ms <= ?
		)
		SELECT c.conv, m.employee, c.li_ms FROM c JOIN messages AS m ON m.conv = c.conv AND m.seq = c.last
		WHERE 1 = 1`+emp.sql+` ORDER BY c.li_ms, c.conv`, args...)
	if err != nil {
		return nil, fmt.Errorf("embedded archive: windows closing: %w", err)
	}
	defer rows.Close()
	var out []report.ClosingRow
	for rows.Next() {
		var (
			r    report.ClosingRow
			conv string
			li   sql.NullInt64
		)
		if err := rows.Scan(&conv, &r.Employee, &li); err != nil {
			return nil, fmt.Errorf("embedded archive: windows closing: %w", err)
		}
		r.Conv, r.LastInteraction = relay.ConversationID(conv), msTime(li)
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("embedded archive: windows closing: %w", err)
	}
	return out, nil
}

// ReportDelivery counts the outbound messages of f's range by day and the
// state and errcode of their latest event (in LatestEvents' order).
func (a *Archive) ReportDelivery(ctx context.Context, f report.Filter) ([]report.DeliveryRow, error) {
	if none(f) {
		return nil, nil
	}
	c := (&cond{}).inRange("m.accepted_ms", f)
	if f.Account != "" {
		c.add(`m.account = ?`, f.Account)
	}
	c.employees("m.employee", f)
	rows, err := a.db.QueryContext(ctx, `SELECT x.d, COALESCE(e.type, ''), COALESCE(e.errcode, 0), COUNT(*) FROM (
			SELECT `+dayExpr("m.accepted_ms", f)+` AS d,
				(SELECT e.id FROM events AS e WHERE e.message_id = m.id
					ORDER BY e.at_ms DESC, `+stateRank("e.type")+` DESC, e.id DESC LIMIT 1) AS eid
			FROM messages AS m WHERE m.direction = 'out'`+c.sql+`
		) AS x LEFT JOIN events AS e ON e.id = x.eid
		GROUP BY 1, 2, 3 ORDER BY 1, 2, 3`, c.args...)
	if err != nil {
		return nil, fmt.Errorf("embedded archive: counting deliveries: %w", err)
	}
	defer rows.Close()
	var out []report.DeliveryRow
	for rows.Next() {
		var (
			r   report.DeliveryRow
			day int64
			st  string
		)
		if err := rows.Scan(&day, &st, &r.ErrCode, &r.Count); err != nil {
			return nil, fmt.Errorf("embedded archive: counting deliveries: %w", err)
		}
		r.Day, r.State = report.DayKey(day), relay.DeliveryState(st)
		if r.State == "" {
			r.State = relay.DeliveryPending
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("embedded archive: counting deliveries: %w", err)
	}
	report.SortDeliveryRows(out)
	return out, nil
}

// ReportHits counts the lexicon hits of f's range by day and rule.
func (a *Archive) ReportHits(ctx context.Context, f report.Filter) ([]report.DayCount, error) {
	rows, err := a.dayKeyCounts(ctx, "lexicon_hits", "rule", f, nil)
	if err != nil {
		return nil, fmt.Errorf("embedded archive: counting lexicon hits: %w", err)
	}
	return rows, nil
}

// ReportActions counts the audit records of f's range with actions, by
// day and action.
func (a *Archive) ReportActions(ctx context.Context, f report.Filter, actions []string) ([]report.DayCount, error) {
	if len(actions) == 0 {
		return nil, nil
	}
	rows, err := a.dayKeyCounts(ctx, "audit", "action", f, actions)
	if err != nil {
		return nil, fmt.Errorf("embedded archive: counting audit records: %w", err)
	}
	return rows, nil
}

// dayKeyCounts counts the rows of table (a compliance table: id, at_ms,
// employee) in f's range by day and col, in order; with keys, only the
// rows whose col is one of them.
func (a *Archive) dayKeyCounts(ctx context.Context, table, col string, f report.Filter, keys []string) ([]report.DayCount, error) {
	if none(f) {
		return nil, nil
	}
	c := (&cond{}).inRange("at_ms", f)
	if table == "lexicon_hits" {
		c.account(f)
	}
	c.employees("employee", f)
	if keys != nil {
		c.add(col+` IN `+placeholders(len(keys)), anySlice(keys)...)
	}
	rows, err := a.db.QueryContext(ctx, `SELECT `+dayExpr("at_ms", f)+` AS d, `+col+` AS k, COUNT(DISTINCT id) FROM `+table+`
		WHERE 1 = 1`+c.sql+` GROUP BY d, k ORDER BY d, k`, c.args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []report.DayCount
	for rows.Next() {
		var (
			r   report.DayCount
			day int64
		)
		if err := rows.Scan(&day, &r.Key, &r.Count); err != nil {
			return nil, err
		}
		r.Day = report.DayKey(day)
		out = append(out, r)
	}
	return out, rows.Err()
}
