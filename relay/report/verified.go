package report

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/wechat-relay/wechat-relay/relay"
)

// The compliance report's figures of now that a row in the archive alone
// must not decide: which lexicon hits await review, and which legal holds
// are in force. A review takes a hit out of the queue and a release lifts
// a hold, so a review or release forged in the archive would change the
// figures; they are read from the services that count only the records
// that verify (relay.ReviewLog, relay.LegalHolds), as GET /api/alerts and
// GET /api/holds read them, never counted by the archive.

// queuePage is how many hits a page of the review queue reads; also the
// most that ReviewLog.Alerts answers, and so the most hits one
// millisecond may hold.
const queuePage = 10000

// openHits returns the hits of f's account and employees that await
// review now (no review that verifies, or one flagged: relay.FilterAlerts
// "open"), of any time: every hit is read, newest first, page hits a
// page. Hits sharing a page's oldest millisecond are read apart, all of
// them, so that a page cut among them loses none.
func openHits(ctx context.Context, rl *relay.ReviewLog, f Filter, page int) ([]relay.LexiconHit, error) {
	q := relay.AlertQuery{Account: f.Account, Employees: f.Employees, Limit: page}
	seen := map[string]bool{}
	var open []relay.LexiconHit
	add := func(hits []relay.LexiconHit) {
		for _, h := range hits {
			if !seen[h.ID] {
				seen[h.ID] = true
				open = append(open, relay.FilterAlerts([]relay.LexiconHit{h}, "open", 0)...)
			}
		}
	}
	for {
		hits, err := rl.Alerts(ctx, q)
		if err != nil {
			return nil, fmt.Errorf("reading the review queue: %w", err)
		}
		if len(hits) < page {
			add(hits)
			return open, nil
		}
		last := hits[len(hits)-1].At.Truncate(time.Millisecond)
		add(hits)
		same := q
		same.From, same.To, same.Limit = last, last.Add(time.Millisecond), queuePage
		tied, err := rl.Alerts(ctx, same)
		if err != nil {
			return nil, fmt.Errorf("reading the review queue: %w", err)
		}
		if len(tied) >= queuePage {
			return nil, fmt.Errorf("reading the review queue: %d hits or more at %s, more than one read holds", queuePage, last.Format(time.RFC3339Nano))
		}
		add(tied)
		q.To = last
	}
}

// queueCells are the figures of hits awaiting review at now: how many,
// since when the oldest waits, its age and the median age (nearest
// rank), in milliseconds.
func queueCells(hits []relay.LexiconHit, now time.Time) []any {
	if len(hits) == 0 {
		return []any{int64(0), "", int64(0), int64(0)}
	}
	ages := make([]int64, len(hits))
	oldest := hits[0].At
	for i, h := range hits {
		ages[i] = max(now.Sub(h.At).Milliseconds(), 0)
		if h.At.Before(oldest) {
			oldest = h.At
		}
	}
	slices.Sort(ages)
	median := ages[(len(ages)+1)/2-1] // the ceil(n/2)-th smallest
	return []any{int64(len(hits)), timeCell(oldest), ages[len(ages)-1], median}
}

var queueColumns = []Column{{"awaiting", "count"}, {"oldest_since", "time"}, {"oldest_ms", "ms"}, {"median_ms", "ms"}}

// reviewQueue is the review queue now: overall, by rule and by team.
func (b builder) reviewQueue(ctx context.Context, rl *relay.ReviewLog) ([]Table, error) {
	overall := Table{ID: "review_queue", Columns: queueColumns}
	byRule := Table{ID: "review_queue_by_rule", Columns: append([]Column{{"rule", "text"}}, queueColumns...)}
	byTeam := Table{ID: "review_queue_by_team", Columns: append([]Column{{"team", "team"}}, queueColumns...)}
	var open []relay.LexiconHit
	if !empty(b.f) {
		var err error
		if open, err = openHits(ctx, rl, b.f, queuePage); err != nil {
			return nil, err
		}
	}
	overall.Rows = append(overall.Rows, queueCells(open, b.now))
	rules := map[string][]relay.LexiconHit{}
	for _, h := range open {
		rules[h.Rule] = append(rules[h.Rule], h)
	}
	for _, r := range slices.Sorted(maps.Keys(rules)) {
		byRule.Rows = append(byRule.Rows, append([]any{r}, queueCells(rules[r], b.now)...))
	}
	for _, team := range b.teams {
		members := b.teamFilter(team.ID).Employees
		var hits []relay.LexiconHit
		for _, h := range open {
			if slices.Contains(members, h.Employee) {
				hits = append(hits, h)
			}
		}
		byTeam.Rows = append(byTeam.Rows, append([]any{team.ID}, queueCells(hits, b.now)...))
	}
	return []Table{overall, byRule, byTeam}, nil
}

// legalHolds is the legal holds in force now (relay.LegalHolds.InForce:
// a release that does not verify lifts nothing), of f's account: how
// many, how many of them flagged (a version refused), and the list,
// oldest first. Holds are of accounts, clients and conversations, not of
// employees: the team and employee filters do not narrow them.
func (b builder) legalHolds(ctx context.Context, lh *relay.LegalHolds) ([]Table, error) {
	summary := Table{ID: "holds_in_force", Columns: []Column{{"holds", "count"}, {"flagged", "count"}}}
	list := Table{ID: "legal_holds", Columns: []Column{{"id", "text"}, {"account", "account"}, {"client", "text"}, {"conv", "conv"},
		{"placed_at", "time"}, {"placed_by", "employee"}, {"reason", "text"}, {"flag", "text"}}}
	holds, err := lh.InForce(ctx)
	if err != nil {
		return nil, fmt.Errorf("reading the legal holds: %w", err)
	}
	var n, flagged int64
	for _, h := range holds {
		if b.f.Account != "" && h.Account != b.f.Account {
			continue
		}
		n++
		if h.Refused != "" {
			flagged++
		}
		list.Rows = append(list.Rows, []any{h.ID, h.Account, h.Client, string(h.Conv), timeCell(h.At), h.PlacedBy, h.Reason, h.Refused})
	}
	summary.Rows = append(summary.Rows, []any{n, flagged})
	return []Table{summary, list}, nil
}
