package archive

import (
	"context"
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

// The reports' figures (relay/report), aggregated by ClickHouse. Every
// query reads the messages of its range through the day partitions and
// counts an id once (uniqExact, LIMIT 1 BY), whatever copies a replay
// left before parts merged. Days and hours are integer arithmetic on
// accepted_ms shifted by the filter's offset, exactly as in the embedded
// archive, so both agree to the millisecond.

// msMessageIn and msMessageOut are the SQL of a message in and out.
const (
	sqlMessageIn  = `(direction = 'in' AND kind != 'event')`
	sqlMessageOut = `(direction = 'out')`
)

// dayExpr and hourExpr are the SQL of the day number and the hour of the
// day of the epoch milliseconds in col, in f's zone. The offset is a
// whole number of minutes (report.Request validates it), written as a
// literal.
func dayExpr(col string, f report.Filter) string {
	return `intDiv(toInt64(` + col + `) + ` + offsetMS(f) + `, 86400000)`
}

func hourExpr(col string, f report.Filter) string {
	return `(intDiv(toInt64(` + col + `) + ` + offsetMS(f) + `, 3600000) % 24)`
}

func offsetMS(f report.Filter) string { return strconv.FormatInt(f.Offset.Milliseconds(), 10) }

// reportRange is the SQL of "accepted in f's range" with its arguments:
// the day partitions first, then the milliseconds.
func reportRange(f report.Filter) (string, []any) {
	return `day >= toDate(?) AND day <= toDate(?) AND accepted_ms >= ? AND accepted_ms < ?`,
		[]any{dateLiteral(storedTime(f.From)), dateLiteral(storedTime(f.To)), epochMillis(f.From), epochMillis(f.To)}
}

// reportUpTo is the SQL of "accepted before f's end", for figures that
// need a conversation's history before the range.
func reportUpTo(f report.Filter) (string, []any) {
	return `day <= toDate(?) AND accepted_ms < ?`, []any{dateLiteral(storedTime(f.To)), epochMillis(f.To)}
}

// accountCond and employeeCond narrow to f's account and employees (col:
// the employee column or alias).
func accountCond(f report.Filter) (string, []any) {
	if f.Account == "" {
		return "", nil
	}
	return ` AND account = ?`, []any{f.Account}
}

func employeeCond(col string, f report.Filter) (string, []any) {
	if f.Employees == nil {
		return "", nil
	}
	return ` AND ` + col + ` IN ?`, []any{stringSet(f.Employees)}
}

// none reports whether f selects no employee at all: nothing to ask.
func none(f report.Filter) bool { return f.Employees != nil && len(f.Employees) == 0 }

// where joins conditions and their arguments.
func where(conds ...any) (string, []any) {
	var (
		q    string
		args []any
	)
	for i := 0; i < len(conds); i += 2 {
		q += conds[i].(string)
		args = append(args, conds[i+1].([]any)...)
	}
	return q, args
}

// ReportVolume counts messages in and out of f's range, grouped by g.
func (a *Archive) ReportVolume(ctx context.Context, f report.Filter, g report.Group) ([]report.VolumeRow, error) {
	if none(f) {
		return nil, nil
	}
	var key string
	switch g {
	case report.GroupDay:
		key = `toString(` + dayExpr("accepted_ms", f) + `)`
	case report.GroupHour:
		key = `toString(` + hourExpr("accepted_ms", f) + `)`
	case report.GroupAccount:
		key = `account`
	case report.GroupEmployee:
		key = `employee`
	case report.GroupAll:
		key = `''`
	default:
		return nil, fmt.Errorf("archive: volume: unknown grouping %q", g)
	}
	rng, rargs := reportRange(f)
	acc, aargs := accountCond(f)
	emp, eargs := employeeCond("employee", f)
	cond, args := where(rng, rargs, acc, aargs, emp, eargs)
	rows, err := a.conn.Query(ctx, `SELECT `+key+` AS k,
		uniqExactIf(id, `+sqlMessageIn+`) AS n_in, uniqExactIf(id, `+sqlMessageOut+`) AS n_out
		FROM messages WHERE `+cond+` AND direction IN ('in', 'out')
		GROUP BY k HAVING n_in + n_out > 0`, args...)
	if err != nil {
		return nil, fmt.Errorf("archive: volume by %s: %w", g, err)
	}
	defer rows.Close()
	var out []report.VolumeRow
	for rows.Next() {
		var (
			r      report.VolumeRow
			in, ou uint64
		)
		if err := rows.Scan(&r.Key, &in, &ou); err != nil {
			return nil, fmt.Errorf("archive: volume by %s: %w", g, err)
		}
		r.In, r.Out = int64(in), int64(ou)
		if r.Key, err = report.GroupKey(g, r.Key); err != nil {
			return nil, fmt.Errorf("archive: volume by %s: %w", g, err)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("archive: volume by %s: %w", g, err)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out, nil
}

// dayCounts runs q, which selects a day number and counts, into a map of
// day key to counts.
func (a *Archive) dayCounts(ctx context.Context, q string, args []any, n int) (map[string][]int64, error) {
	rows, err := a.conn.Query(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[string][]int64{}
	for rows.Next() {
		var day int64
		counts := make([]uint64, n)
		dest := []any{&day}
		for i := range counts {
			dest = append(dest, &counts[i])
		}
		if err := rows.Scan(dest...); err != nil {
			return nil, err
		}
		c := make([]int64, n)
		for i, v := range counts {
			c[i] = int64(v)
		}
		out[report.DayKey(day)] = c
	}
	return out, rows.Err()
}

// ReportClients counts, per day, the clients whose interaction that day was
// their first ever (new) or not (returning).
func (a *Archive) ReportClients(ctx context.Context, f report.Filter) ([]report.ClientsRow, error) {
	if none(f) {
		return nil, nil
	}
	rng, rargs := reportRange(f)
	upto, uargs := reportUpTo(f)
	acc, aargs := accountCond(f)
	emp, eargs := employeeCond("employee", f)
	left, largs := where(rng, rargs, acc, aargs, emp, eargs)
	right, rgargs := where(upto, uargs, acc, aargs)
	first := dayExpr("first_ms", f)
	counts, err := a.dayCounts(ctx, `SELECT d, countIf(`+first+` = d), countIf(`+first+` < d)
		FROM (
			SELECT DISTINCT conv, `+dayExpr("accepted_ms", f)+` AS d FROM messages
			WHERE `+left+` AND direction = 'in' AND interaction = 1
		) ANY LEFT JOIN (
			SELECT conv, min(accepted_ms) AS first_ms FROM messages
			WHERE `+right+` AND direction = 'in' AND interaction = 1
			GROUP BY conv
		) USING conv
		GROUP BY d`, append(largs, rgargs...), 2)
	if err != nil {
		return nil, fmt.Errorf("archive: counting clients: %w", err)
	}
	var out []report.ClientsRow
	for _, d := range slices.Sorted(maps.Keys(counts)) {
		out = append(out, report.ClientsRow{Day: d, New: counts[d][0], Returning: counts[d][1]})
	}
	return out, nil
}

// sortedBySeq is the SQL of the array of col over a conversation's rows,
// in sequence order.
func sortedBySeq(col string) string {
	return `arraySort((v, s) -> s, groupArray(` + col + `), groupArray(seq))`
}

// ReportConversations counts, per day, the conversations opened (first message
// ever), resolved and reopened (a reopen, or an interaction right after a
// resolve).
func (a *Archive) ReportConversations(ctx context.Context, f report.Filter) ([]report.ConversationsRow, error) {
	if none(f) {
		return nil, nil
	}
	fail := func(what string, err error) ([]report.ConversationsRow, error) {
		return nil, fmt.Errorf("archive: counting conversations %s: %w", what, err)
	}
	rng, rargs := reportRange(f)
	upto, uargs := reportUpTo(f)
	acc, aargs := accountCond(f)

	hist, hargs := where(upto, uargs, acc, aargs)
	emp, eargs := employeeCond("emp", f)
	opened, err := a.dayCounts(ctx, `SELECT `+dayExpr("first_ms", f)+` AS d, count() FROM (
			SELECT conv, min(accepted_ms) AS first_ms, argMin(employee, accepted_ms) AS emp FROM messages
			WHERE `+hist+` GROUP BY conv
		) WHERE first_ms >= ?`+emp+` GROUP BY d`, append(append(hargs, epochMillis(f.From)), eargs...), 1)
	if err != nil {
		return fail("opened", err)
	}

	emp, eargs = employeeCond("employee", f)
	cond, args := where(rng, rargs, acc, aargs, emp, eargs)
	resolved, err := a.dayCounts(ctx, `SELECT `+dayExpr("accepted_ms", f)+` AS d, uniqExact(id) FROM messages
		WHERE `+cond+` AND direction = 'internal' AND kind = 'resolve' GROUP BY d`, args, 1)
	if err != nil {
		return fail("resolved", err)
	}

	reopenedByStaff, err := a.dayCounts(ctx, `SELECT `+dayExpr("accepted_ms", f)+` AS d, uniqExact(id) FROM messages
		WHERE `+cond+` AND direction = 'internal' AND kind = 'reopen' GROUP BY d`, args, 1)
	if err != nil {
		return fail("reopened", err)
	}
	// A client reopens a conversation by interacting right after a
	// resolve, in sequence order: an 'i' right after an 's' among the
	// conversation's resolves ('s'), reopens ('o') and interactions
	// ('i'). A replayed copy sits beside its original, so it follows an
	// 'i' or is an 's' or an 'o'.
	emp, eargs = employeeCond("e", f)
	args = append(append(hargs, epochMillis(f.From), epochMillis(f.To)), eargs...)
	reopened, err := a.dayCounts(ctx, `SELECT `+dayExpr("m", f)+` AS d, count() FROM (
			SELECT ks, ms, es, arrayEnumerate(ks) AS ix FROM (
				SELECT conv, `+sortedBySeq("k")+` AS ks, `+sortedBySeq("accepted_ms")+` AS ms, `+sortedBySeq("employee")+` AS es
				FROM (
					SELECT conv, seq, accepted_ms, employee,
						multiIf(direction = 'internal' AND kind = 'resolve', 's', direction = 'internal' AND kind = 'reopen', 'o', 'i') AS k
					FROM messages
					WHERE `+hist+` AND ((direction = 'internal' AND kind IN ('resolve', 'reopen')) OR (direction = 'in' AND interaction = 1))
				) GROUP BY conv
			)
		) ARRAY JOIN ix AS i, ms AS m, es AS e
		WHERE m >= ? AND m < ? AND ks[i] = 'i' AND i > 1 AND ks[i - 1] = 's'`+emp+`
		GROUP BY d`, args, 1)
	if err != nil {
		return fail("reopened", err)
	}
	for d, c := range reopenedByStaff {
		if reopened[d] == nil {
			reopened[d] = []int64{0}
		}
		reopened[d][0] += c[0]
	}

	return report.ConversationsRows(opened, resolved, reopened), nil
}

// ReportResponses computes the response times of the replies of f's
// range. Each conversation's messages in and out, in sequence order, are
// one array; a message out at position i whose previous message out is
// at position prev (0: none) replies to the wait that starts at prev+1
// when there is a message in between (i > prev+1); the first message out
// (j = 1) is the first response. A replayed copy changes nothing: a
// copy of a message in sits in its wait, a copy of a message out right
// after it, with no wait of its own. (Arrays rather than a second
// GROUP BY: ClickHouse 18.16 has no window functions, and the arrays
// spare a pass over every row.)
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
		return nil, fmt.Errorf("archive: response times: unknown grouping %q", g)
	}
	upto, uargs := reportUpTo(f)
	acc, aargs := accountCond(f)
	hist, hargs := where(upto, uargs, acc, aargs)
	emp, eargs := employeeCond("emp", f)
	args := append(append(hargs, epochMillis(f.From), epochMillis(f.To)), eargs...)
	nth := func(arr, n string, p int) string {
		return `arrayElement(` + arr + `, toUInt64(greatest(intDiv(` + n + ` * ` + strconv.Itoa(p) + ` + 99, 100), 1)))`
	}
	rows, err := a.conn.Query(ctx, `SELECT `+key+` AS k,
			count() AS n, `+nth("arraySort(groupArray(w))", "count()", 50)+`, `+nth("arraySort(groupArray(w))", "count()", 90)+`,
			countIf(first) AS fn, `+nth("arraySort(groupArrayIf(w, first))", "countIf(first)", 50)+`, `+nth("arraySort(groupArrayIf(w, first))", "countIf(first)", 90)+`
		FROM (
			SELECT if(j = 1, 0, outs[j - 1]) AS prev, ms[i] AS reply, es[i] AS emp, j = 1 AS first,
				greatest(toInt64(reply) - toInt64(ms[prev + 1]), 0) AS w
			FROM (
				SELECT arrayFilter((x, o) -> o = 1, arrayEnumerate(os), os) AS outs, ms, es FROM (
					SELECT conv, `+sortedBySeq("accepted_ms")+` AS ms, `+sortedBySeq("o")+` AS os, `+sortedBySeq("employee")+` AS es
					FROM (
						SELECT conv, seq, accepted_ms, employee, toUInt8(direction = 'out') AS o FROM messages
						WHERE `+hist+` AND (`+sqlMessageIn+` OR `+sqlMessageOut+`)
					) GROUP BY conv
				)
			) ARRAY JOIN outs AS i, arrayEnumerate(outs) AS j
			WHERE i > prev + 1 AND reply >= ? AND reply < ?`+emp+`
		)
		GROUP BY k ORDER BY k`, args...)
	if err != nil {
		return nil, fmt.Errorf("archive: response times by %s: %w", g, err)
	}
	defer rows.Close()
	var out []report.ResponseRow
	for rows.Next() {
		var (
			r                  report.ResponseRow
			n, fn              uint64
			med, p90, fm, fp90 int64
		)
		if err := rows.Scan(&r.Key, &n, &med, &p90, &fn, &fm, &fp90); err != nil {
			return nil, fmt.Errorf("archive: response times by %s: %w", g, err)
		}
		r.Replies, r.MedianMS, r.P90MS, r.FirstReplies, r.FirstMS, r.FirstP90MS = int64(n), med, p90, int64(fn), fm, fp90
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("archive: response times by %s: %w", g, err)
	}
	return out, nil
}

// ReportWaiting lists the conversations whose latest message in or out (or
// resolve) is a message in, with the first message in since.
func (a *Archive) ReportWaiting(ctx context.Context, f report.Filter) ([]report.WaitingRow, error) {
	if none(f) {
		return nil, nil
	}
	acc, aargs := accountCond(f)
	emp, eargs := employeeCond("emp", f)
	args := append(append(append([]any{}, aargs...), eargs...), aargs...)
	rows, err := a.conn.Query(ctx, `SELECT conv, any(emp), min(accepted_ms) AS since FROM messages
		ALL INNER JOIN (
			SELECT conv, argMax(employee, seq) AS emp,
				maxIf(seq, `+sqlMessageOut+` OR (direction = 'internal' AND kind = 'resolve')) AS lb,
				maxIf(seq, `+sqlMessageIn+`) AS li
			FROM messages WHERE 1 = 1`+acc+`
			GROUP BY conv HAVING li > lb`+emp+`
		) USING conv
		WHERE `+sqlMessageIn+` AND seq > lb`+acc+`
		GROUP BY conv ORDER BY since, conv`, args...)
	if err != nil {
		return nil, fmt.Errorf("archive: conversations waiting for a reply: %w", err)
	}
	defer rows.Close()
	var out []report.WaitingRow
	for rows.Next() {
		var (
			r     report.WaitingRow
			conv  string
			since uint64
		)
		if err := rows.Scan(&conv, &r.Employee, &since); err != nil {
			return nil, fmt.Errorf("archive: conversations waiting for a reply: %w", err)
		}
		r.Conv, r.Since = relay.ConversationID(conv), msTime(since)
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("archive: conversations waiting for a reply: %w", err)
	}
	return out, nil
}

func msTime(ms uint64) time.Time {
	if ms == 0 {
		return time.Time{}
	}
	return time.UnixMilli(int64(ms)).UTC()
}

// ReportClosing lists the conversations whose window closes within the next
// within, unanswered since the client's latest interaction.
func (a *Archive) ReportClosing(ctx context.Context, f report.Filter, now time.Time, within time.Duration) ([]report.ClosingRow, error) {
	if none(f) {
		return nil, nil
	}
	after := now.Add(-report.Window)
	upTo := now.Add(within - report.Window)
	acc, aargs := accountCond(f)
	emp, eargs := employeeCond("emp", f)
	args := append([]any{dateLiteral(storedTime(after)), epochMillis(after)}, aargs...)
	args = append(append(args, aargs...), epochMillis(after), epochMillis(upTo))
	args = append(args, eargs...)
	rows, err := a.conn.Query(ctx, `SELECT conv, argMax(employee, seq) AS emp,
			maxIf(accepted_ms, direction = 'in' AND interaction = 1) AS li_ms,
			maxIf(seq, direction = 'in' AND interaction = 1) AS li,
			maxIf(seq, `+sqlMessageOut+`) AS lo
		FROM messages
		WHERE conv IN (SELECT conv FROM messages WHERE day >= toDate(?) AND accepted_ms > ? AND direction = 'in'`+acc+`)`+acc+`
		GROUP BY conv HAVING li > lo AND li_ms > ? AND li_ms <= ?`+emp+`
		ORDER BY li_ms, conv`, args...)
	if err != nil {
		return nil, fmt.Errorf("archive: windows closing: %w", err)
	}
	defer rows.Close()
	var out []report.ClosingRow
	for rows.Next() {
		var (
			r      report.ClosingRow
			conv   string
			liMS   uint64
			li, lo uint64
		)
		if err := rows.Scan(&conv, &r.Employee, &liMS, &li, &lo); err != nil {
			return nil, fmt.Errorf("archive: windows closing: %w", err)
		}
		r.Conv, r.LastInteraction = relay.ConversationID(conv), msTime(liMS)
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("archive: windows closing: %w", err)
	}
	return out, nil
}

// ReportDelivery counts the outbound messages of f's range by day and the state
// and errcode of their latest event (latestEventsOrder, as LatestEvents).
func (a *Archive) ReportDelivery(ctx context.Context, f report.Filter) ([]report.DeliveryRow, error) {
	if none(f) {
		return nil, nil
	}
	rng, rargs := reportRange(f)
	acc, aargs := accountCond(f)
	emp, eargs := employeeCond("employee", f)
	cond, args := where(rng, rargs, acc, aargs, emp, eargs)
	args = append(args, dateLiteral(daysBefore(storedTime(f.From), eventSkew)))
	args = append(args, aargs...)
	rows, err := a.conn.Query(ctx, `SELECT `+dayExpr("am", f)+` AS d, st, ec, count()
		FROM (
			SELECT id AS mid, any(accepted_ms) AS am FROM messages
			WHERE `+cond+` AND `+sqlMessageOut+` GROUP BY mid
		) ANY LEFT JOIN (
			SELECT message_id AS mid, type AS st, errcode AS ec FROM events
			WHERE day >= toDate(?)`+acc+`
			`+latestEventsOrder+` LIMIT 1 BY message_id
		) USING mid
		GROUP BY d, st, ec`, args...)
	if err != nil {
		return nil, fmt.Errorf("archive: counting deliveries: %w", err)
	}
	defer rows.Close()
	var out []report.DeliveryRow
	for rows.Next() {
		var (
			r   report.DeliveryRow
			day int64
			st  string
			ec  int32
			n   uint64
		)
		if err := rows.Scan(&day, &st, &ec, &n); err != nil {
			return nil, fmt.Errorf("archive: counting deliveries: %w", err)
		}
		r.Day, r.State, r.ErrCode, r.Count = report.DayKey(day), relay.DeliveryState(st), int(ec), int64(n)
		if r.State == "" {
			r.State = relay.DeliveryPending
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("archive: counting deliveries: %w", err)
	}
	report.SortDeliveryRows(out)
	return out, nil
}

// ReportHits counts the lexicon hits of f's range by day and rule.
func (a *Archive) ReportHits(ctx context.Context, f report.Filter) ([]report.DayCount, error) {
	rows, err := a.dayKeyCounts(ctx, "lexicon_hits", "rule", f, nil)
	if err != nil {
		return nil, fmt.Errorf("archive: counting lexicon hits: %w", err)
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
		return nil, fmt.Errorf("archive: counting audit records: %w", err)
	}
	return rows, nil
}

// dayKeyCounts counts the distinct ids of table (a compliance table:
// at_ms, day, employee) in f's range by day and col, in order; with keys,
// only the rows whose col is one of them.
func (a *Archive) dayKeyCounts(ctx context.Context, table, col string, f report.Filter, keys []string) ([]report.DayCount, error) {
	if none(f) {
		return nil, nil
	}
	rng := `day >= toDate(?) AND day <= toDate(?) AND at_ms >= ? AND at_ms < ?`
	args := []any{dateLiteral(storedTime(f.From)), dateLiteral(storedTime(f.To)), epochMillis(f.From), epochMillis(f.To)}
	if table == "lexicon_hits" {
		acc, aargs := accountCond(f)
		rng += acc
		args = append(args, aargs...)
	}
	emp, eargs := employeeCond("employee", f)
	rng += emp
	args = append(args, eargs...)
	if keys != nil {
		rng += ` AND ` + col + ` IN ?`
		args = append(args, stringSet(keys))
	}
	rows, err := a.conn.Query(ctx, `SELECT `+dayExpr("at_ms", f)+` AS d, `+col+` AS k, uniqExact(id) FROM `+table+`
		WHERE `+rng+` GROUP BY d, k ORDER BY d, k`, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []report.DayCount
	for rows.Next() {
		var (
			r   report.DayCount
			day int64
			n   uint64
		)
		if err := rows.Scan(&day, &r.Key, &n); err != nil {
			return nil, err
		}
		r.Day, r.Count = report.DayKey(day), int64(n)
		out = append(out, r)
	}
	return out, rows.Err()
}
