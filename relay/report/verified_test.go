package report

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"sort"
	"testing"
	"time"

	"github.com/wechat-relay/wechat-relay/relay"
)

// pagedAlerts is an AlertStore over hits, answering Alerts as the
// archives do: To excluded, newest first, at most Limit.
type pagedAlerts struct {
	relay.AlertStore // other methods unused
	hits             []relay.LexiconHit
	queries          int
}

func (p *pagedAlerts) Alerts(_ context.Context, q relay.AlertQuery) ([]relay.LexiconHit, error) {
	p.queries++
	var out []relay.LexiconHit
	for _, h := range p.hits {
		if (q.To.IsZero() || h.At.Before(q.To)) && (q.Account == "" || h.Account == q.Account) &&
			(len(q.Employees) == 0 || slices.Contains(q.Employees, h.Employee)) {
			out = append(out, h)
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].At.After(out[j].At) })
	return out[:min(len(out), q.Limit)], nil
}

// The queue is read a page at a time to the oldest hit, hits sharing a
// page's last millisecond neither lost nor counted twice.
func TestOpenHitsReadsEveryPage(t *testing.T) {
	base := time.Date(2026, 11, 2, 0, 0, 0, 0, time.UTC)
	st := &pagedAlerts{}
	for i := range 7 {
		at := base.Add(time.Duration(i/3) * time.Minute) // three hits a minute
		st.hits = append(st.hits, relay.LexiconHit{ID: fmt.Sprint("h", i), Account: "acct", Employee: "a1", Rule: "r", At: at})
	}
	// One reviewed: with no key to check with, reviews are taken as they are.
	st.hits[0].Reviews = []relay.AlertReview{{ID: "rev", HitID: "h0", Decision: relay.DecisionReviewed, At: base}}
	rl, err := relay.NewReviewLog(st, relay.RecordTrust{Log: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	open, err := openHits(context.Background(), rl, Filter{Account: "acct"}, 2)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, h := range open {
		ids = append(ids, h.ID)
	}
	slices.Sort(ids)
	if fmt.Sprint(ids) != "[h1 h2 h3 h4 h5 h6]" {
		t.Errorf("open hits %v, want h1…h6 once each", ids)
	}
	if st.queries < 4 {
		t.Errorf("%d queries: the pages were not all read", st.queries)
	}
	now := base.Add(time.Hour)
	if got := fmt.Sprint(queueCells(open, now)); got != "[6 2026-11-02T00:00:00Z 3600000 3540000]" {
		t.Errorf("queue cells %s", got)
	}
	if got := fmt.Sprint(queueCells(nil, now)); got != "[0  0 0]" {
		t.Errorf("empty queue cells %s", got)
	}
}
