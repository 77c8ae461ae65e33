package report

import (
	"context"
	"maps"
	"slices"
	"sort"
	"time"

	"github.com/wechat-relay/wechat-relay/relay"
)

// builder turns the archive's figures into a report's tables.
type builder struct {
	s     Store
	f     Filter
	teams []relay.Team
	snap  *relay.DirectorySnapshot
	now   time.Time
}

// teamFilter is b's filter narrowed to the members of team.
func (b builder) teamFilter(team string) Filter {
	f := b.f
	f.Employees = intersect(b.f.Employees, b.snap.Members(team))
	return f
}

// empty reports whether f can count nothing (no employee left), so that
// the archive is not asked.
func empty(f Filter) bool { return f.Employees != nil && len(f.Employees) == 0 }

func (b builder) volume(ctx context.Context) ([]Table, error) {
	var tables []Table
	for _, g := range []struct {
		id string
		g  Group
	}{{"by_day", GroupDay}, {"by_hour", GroupHour}, {"by_account", GroupAccount}, {"by_employee", GroupEmployee}} {
		rows, err := b.volumeRows(ctx, b.f, g.g)
		if err != nil {
			return nil, err
		}
		t := Table{ID: g.id, Columns: []Column{{string(g.g), string(g.g)}, {"in", "count"}, {"out", "count"}}}
		if g.g == GroupDay {
			rows = fillDays(rows, b.f, func(day string) VolumeRow { return VolumeRow{Key: day} }, func(r VolumeRow) string { return r.Key })
		}
		for _, r := range rows {
			t.Rows = append(t.Rows, []any{r.Key, r.In, r.Out})
		}
		tables = append(tables, t)
	}
	byTeam := Table{ID: "by_team", Columns: []Column{{"team", "team"}, {"in", "count"}, {"out", "count"}}}
	for _, team := range b.teams {
		rows, err := b.volumeRows(ctx, b.teamFilter(team.ID), GroupAll)
		if err != nil {
			return nil, err
		}
		var r VolumeRow
		if len(rows) > 0 {
			r = rows[0]
		}
		byTeam.Rows = append(byTeam.Rows, []any{team.ID, r.In, r.Out})
	}
	tables = slices.Insert(tables, 3, byTeam)

	clients := Table{ID: "clients", Columns: []Column{{"day", "day"}, {"new", "count"}, {"returning", "count"}}}
	if !empty(b.f) {
		rows, err := b.s.ReportClients(ctx, b.f)
		if err != nil {
			return nil, err
		}
		for _, r := range fillDays(rows, b.f, func(day string) ClientsRow { return ClientsRow{Day: day} }, func(r ClientsRow) string { return r.Day }) {
			clients.Rows = append(clients.Rows, []any{r.Day, r.New, r.Returning})
		}
	}
	convs := Table{ID: "conversations", Columns: []Column{{"day", "day"}, {"opened", "count"}, {"resolved", "count"}, {"reopened", "count"}}}
	if !empty(b.f) {
		rows, err := b.s.ReportConversations(ctx, b.f)
		if err != nil {
			return nil, err
		}
		for _, r := range fillDays(rows, b.f, func(day string) ConversationsRow { return ConversationsRow{Day: day} }, func(r ConversationsRow) string { return r.Day }) {
			convs.Rows = append(convs.Rows, []any{r.Day, r.Opened, r.Resolved, r.Reopened})
		}
	}
	return append(tables, clients, convs), nil
}

func (b builder) volumeRows(ctx context.Context, f Filter, g Group) ([]VolumeRow, error) {
	if empty(f) {
		return nil, nil
	}
	return b.s.ReportVolume(ctx, f, g)
}

var responseColumns = []Column{
	{"replies", "count"}, {"median_ms", "ms"}, {"p90_ms", "ms"},
	{"first_replies", "count"}, {"first_median_ms", "ms"}, {"first_p90_ms", "ms"},
}

func responseCells(key string, r ResponseRow) []any {
	return []any{key, r.Replies, r.MedianMS, r.P90MS, r.FirstReplies, r.FirstMS, r.FirstP90MS}
}

func (b builder) responsiveness(ctx context.Context, within time.Duration) ([]Table, error) {
	byEmp := Table{ID: "by_employee", Columns: append([]Column{{"employee", "employee"}}, responseColumns...)}
	byTeam := Table{ID: "by_team", Columns: append([]Column{{"team", "team"}}, responseColumns...)}
	overall := Table{ID: "overall", Columns: append([]Column{{"scope", "text"}}, responseColumns...)}
	waiting := Table{ID: "waiting", Columns: []Column{{"conv", "conv"}, {"employee", "employee"}, {"since", "time"}, {"waiting_ms", "ms"}}}
	closing := Table{ID: "closing", Columns: []Column{{"conv", "conv"}, {"employee", "employee"}, {"last_interaction", "time"}, {"closes_at", "time"}, {"left_ms", "ms"}}}
	if !empty(b.f) {
		rows, err := b.s.ReportResponses(ctx, b.f, GroupEmployee)
		if err != nil {
			return nil, err
		}
		for _, r := range rows {
			byEmp.Rows = append(byEmp.Rows, responseCells(r.Key, r))
		}
		all, err := b.s.ReportResponses(ctx, b.f, GroupAll)
		if err != nil {
			return nil, err
		}
		var r ResponseRow
		if len(all) > 0 {
			r = all[0]
		}
		overall.Rows = append(overall.Rows, responseCells("all", r))
	}
	for _, team := range b.teams {
		f := b.teamFilter(team.ID)
		var r ResponseRow
		if !empty(f) {
			rows, err := b.s.ReportResponses(ctx, f, GroupAll)
			if err != nil {
				return nil, err
			}
			if len(rows) > 0 {
				r = rows[0]
			}
		}
		byTeam.Rows = append(byTeam.Rows, responseCells(team.ID, r))
	}
	if !empty(b.f) {
		wait, err := b.s.ReportWaiting(ctx, b.f)
		if err != nil {
			return nil, err
		}
		for _, w := range wait {
			waiting.Rows = append(waiting.Rows, []any{string(w.Conv), w.Employee, timeCell(w.Since), max(b.now.Sub(w.Since).Milliseconds(), 0)})
		}
		cl, err := b.s.ReportClosing(ctx, b.f, b.now, within)
		if err != nil {
			return nil, err
		}
		for _, c := range cl {
			closes := c.LastInteraction.Add(Window)
			closing.Rows = append(closing.Rows, []any{string(c.Conv), c.Employee, timeCell(c.LastInteraction), timeCell(closes), closes.Sub(b.now).Milliseconds()})
		}
	}
	return []Table{overall, byEmp, byTeam, waiting, closing}, nil
}

func (b builder) delivery(ctx context.Context) ([]Table, error) {
	states := []relay.DeliveryState{relay.DeliverySent, relay.DeliveryFailed, relay.DeliveryUnknown, relay.DeliveryRefused, relay.DeliveryPending}
	byDay := Table{ID: "by_day", Columns: []Column{{"day", "day"}}}
	for _, s := range states {
		byDay.Columns = append(byDay.Columns, Column{string(s), "count"})
	}
	failures := Table{ID: "failures", Columns: []Column{{"day", "day"}, {"state", "state"}, {"errcode", "errcode"}, {"messages", "count"}}}
	if empty(b.f) {
		return []Table{byDay, failures}, nil
	}
	rows, err := b.s.ReportDelivery(ctx, b.f)
	if err != nil {
		return nil, err
	}
	counts := map[string]map[relay.DeliveryState]int64{}
	for _, r := range rows {
		st := r.State
		if st == relay.DeliverySending {
			st = relay.DeliveryPending // not final yet, as pending
		}
		if counts[r.Day] == nil {
			counts[r.Day] = map[relay.DeliveryState]int64{}
		}
		counts[r.Day][st] += r.Count
		if st == relay.DeliveryFailed || st == relay.DeliveryRefused {
			failures.Rows = append(failures.Rows, []any{r.Day, string(st), int64(r.ErrCode), r.Count})
		}
	}
	sort.SliceStable(failures.Rows, func(i, j int) bool {
		a, b := failures.Rows[i], failures.Rows[j]
		if a[0] != b[0] {
			return a[0].(string) < b[0].(string)
		}
		if a[1] != b[1] {
			return a[1].(string) < b[1].(string)
		}
		return a[2].(int64) < b[2].(int64)
	})
	for _, day := range days(b.f) {
		row := []any{day}
		for _, s := range states {
			row = append(row, counts[day][s])
		}
		byDay.Rows = append(byDay.Rows, row)
	}
	return []Table{byDay, failures}, nil
}

// exportActions are the audit actions of an eDiscovery export: the
// command line's (relay.AuditExport) and the console's
// (console.AuditArchiveExport, named here as the console imports this
// package).
var exportActions = []string{relay.AuditExport, "archive_export"}

func (b builder) compliance(ctx context.Context) ([]Table, error) {
	byRule := Table{ID: "hits_by_rule", Columns: []Column{{"rule", "text"}, {"hits", "count"}}}
	byDay := Table{ID: "hits_by_day", Columns: []Column{{"day", "day"}, {"hits", "count"}}}
	byTeam := Table{ID: "hits_by_team", Columns: []Column{{"team", "team"}, {"hits", "count"}}}
	actions := Table{ID: "actions_by_day", Columns: []Column{{"day", "day"}, {"blocked_sends", "count"}, {"exports", "count"}}}
	hitCount := func(f Filter) ([]DayCount, error) {
		if empty(f) {
			return nil, nil
		}
		return b.s.ReportHits(ctx, f)
	}
	hits, err := hitCount(b.f)
	if err != nil {
		return nil, err
	}
	rules, perDay := map[string]int64{}, map[string]int64{}
	for _, h := range hits {
		rules[h.Key] += h.Count
		perDay[h.Day] += h.Count
	}
	names := slices.Sorted(maps.Keys(rules))
	sort.SliceStable(names, func(i, j int) bool { return rules[names[i]] > rules[names[j]] })
	for _, r := range names {
		byRule.Rows = append(byRule.Rows, []any{r, rules[r]})
	}
	for _, d := range days(b.f) {
		byDay.Rows = append(byDay.Rows, []any{d, perDay[d]})
	}
	for _, team := range b.teams {
		rows, err := hitCount(b.teamFilter(team.ID))
		if err != nil {
			return nil, err
		}
		var n int64
		for _, h := range rows {
			n += h.Count
		}
		byTeam.Rows = append(byTeam.Rows, []any{team.ID, n})
	}
	var acts []DayCount
	if !empty(b.f) {
		if acts, err = b.s.ReportActions(ctx, b.f, append([]string{relay.AuditSendBlocked}, exportActions...)); err != nil {
			return nil, err
		}
	}
	blocked, exports := map[string]int64{}, map[string]int64{}
	for _, a := range acts {
		if a.Key == relay.AuditSendBlocked {
			blocked[a.Day] += a.Count
		} else {
			exports[a.Day] += a.Count
		}
	}
	for _, d := range days(b.f) {
		actions.Rows = append(actions.Rows, []any{d, blocked[d], exports[d]})
	}
	return []Table{byDay, byRule, byTeam, actions}, nil
}

// days lists the days of f's range in its zone, as keys.
func days(f Filter) []string {
	first := f.From.Add(f.Offset).UTC().Truncate(24 * time.Hour)
	last := f.To.Add(f.Offset - time.Millisecond).UTC()
	var out []string
	for d := first; !d.After(last); d = d.AddDate(0, 0, 1) {
		out = append(out, d.Format(time.DateOnly))
	}
	return out
}

// fillDays returns rows with a zero row for each day of f's range that has
// none, in day order.
func fillDays[R any](rows []R, f Filter, zero func(day string) R, key func(R) string) []R {
	have := map[string]R{}
	for _, r := range rows {
		have[key(r)] = r
	}
	var out []R
	for _, d := range days(f) {
		r, ok := have[d]
		if !ok {
			r = zero(d)
		}
		out = append(out, r)
	}
	return out
}

func timeCell(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339)
}
