package relay

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Retention and legal holds. The relay never deletes: a retention period
// per account only yields a report (RetentionReport) of the monthly
// partitions an operator MAY drop, by hand, with a user that has the
// right to. A legal hold marks a client, or one conversation, as never
// expiring; the report counts held messages and never offers a partition
// that holds any.

// Retention is how long an account's messages are kept: a number and a
// unit, y (years), m (months) or d (days), e.g. "7y", "18m", "90d".
type Retention struct {
	N    int
	Unit byte // 'y', 'm' or 'd'
}

// ParseRetention reads "7y", "18m", "90d".
func ParseRetention(s string) (Retention, error) {
	s = strings.TrimSpace(strings.ToLower(s))
	if len(s) < 2 {
		return Retention{}, fmt.Errorf("retention %q: use a number and y, m or d (7y, 18m, 90d)", s)
	}
	n, err := strconv.Atoi(s[:len(s)-1])
	u := s[len(s)-1]
	if err != nil || n <= 0 || (u != 'y' && u != 'm' && u != 'd') {
		return Retention{}, fmt.Errorf("retention %q: use a positive number and y, m or d (7y, 18m, 90d)", s)
	}
	return Retention{N: n, Unit: u}, nil
}

func (r Retention) String() string { return strconv.Itoa(r.N) + string(r.Unit) }

// Cutoff is the instant before which messages have outlived r at now.
func (r Retention) Cutoff(now time.Time) time.Time {
	now = now.UTC()
	switch r.Unit {
	case 'y':
		return now.AddDate(-r.N, 0, 0)
	case 'm':
		return now.AddDate(0, -r.N, 0)
	default:
		return now.AddDate(0, 0, -r.N)
	}
}

// Hold is one version of a legal hold on a client (Conv empty) or a
// conversation: version 1 places it, a later version with Released set
// releases it. Each version is signed and chained (hold_sign.go).
type Hold struct {
	ID      string         `json:"id"`
	Account string         `json:"account"`
	Client  string         `json:"client,omitempty"`
	Conv    ConversationID `json:"conv,omitempty"`
	Reason  string         `json:"reason"`
	// PlacedBy is who wrote this version: who placed the hold, or who
	// released it.
	PlacedBy string    `json:"placed_by"`
	At       time.Time `json:"at"`
	Released bool      `json:"released,omitempty"`
	RecordSeal
	// Refused, in what LegalHolds.InForce returns, says why a version of
	// the hold did not count (a forged release): the hold is in force
	// all the same.
	Refused string `json:"refused,omitempty"`
}

// MonthCount is what the archive holds of one account in one monthly
// partition (YYYYMM of the message's day, UTC).
type MonthCount struct {
	Account  string `json:"account"`
	Month    string `json:"month"` // YYYYMM
	Messages int    `json:"messages"`
	Held     int    `json:"held"` // of Messages, under a legal hold
}

// RetentionStore is the archive as the retention report and holds need
// it. Both archives in storage implement it.
type RetentionStore interface {
	// AppendHold stores one version of a hold; an identical copy is
	// stored once.
	AppendHold(ctx context.Context, h Hold) error
	// HoldRecords returns every stored version of every hold, oldest
	// first, identical copies once.
	HoldRecords(ctx context.Context) ([]Hold, error)
	// MonthCounts counts the messages of every account and month, and
	// how many of them one of held covers.
	MonthCounts(ctx context.Context, held []Hold) ([]MonthCount, error)
}

// RetentionRow is one line of the report.
type RetentionRow struct {
	MonthCount
	Retention string `json:"retention"` // "" when the account has none
	// Expired: the whole month is older than the account's cutoff.
	Expired bool `json:"expired"`
	// Droppable: expired and nothing in it is held — the operator may
	// drop this month's partition for this account.
	Droppable bool   `json:"droppable"`
	Note      string `json:"note,omitempty"`
}

// PartitionRow sums up one monthly partition over every account: the
// archive's tables are partitioned by month (ClickHouse: toYYYYMM(day)),
// not by account, so a whole partition may be dropped only when every
// account's part of it may.
type PartitionRow struct {
	Month     string `json:"month"` // YYYYMM
	Messages  int    `json:"messages"`
	Held      int    `json:"held"`
	Droppable bool   `json:"droppable"`
}

// RetentionReport is what an operator may drop.
type RetentionReport struct {
	At         time.Time      `json:"at"`
	Rows       []RetentionRow `json:"rows"`
	Partitions []PartitionRow `json:"partitions"`
	Holds      []Hold         `json:"holds"`
	// Note says what the report is and is not.
	Note string `json:"note"`
}

// BuildRetentionReport makes the report from the archive's counts:
// policies maps account (or "*" for every other account) to its
// retention.
// Only a release that verifies (LegalHolds.InForce) lifts a hold.
func BuildRetentionReport(ctx context.Context, lh *LegalHolds, policies map[string]Retention, now time.Time) (*RetentionReport, error) {
	holds, err := lh.InForce(ctx)
	if err != nil {
		return nil, fmt.Errorf("reading legal holds: %w", err)
	}
	counts, err := lh.store.MonthCounts(ctx, holds)
	if err != nil {
		return nil, fmt.Errorf("counting archived messages per month: %w", err)
	}
	rep := &RetentionReport{At: now.UTC(), Holds: holds,
		Note: "The relay never deletes. Rows marked droppable are monthly partitions an operator MAY drop " +
			"(messages, events and lexicon_hits of that account and month); months with messages under a legal hold are never droppable."}
	for _, c := range counts {
		row := RetentionRow{MonthCount: c}
		pol, ok := policies[c.Account]
		if !ok {
			pol, ok = policies["*"]
		}
		if !ok {
			row.Note = "no retention configured: kept for ever"
			rep.Rows = append(rep.Rows, row)
			continue
		}
		row.Retention = pol.String()
		start, err := time.Parse("200601", c.Month)
		if err != nil {
			return nil, fmt.Errorf("month %q from the archive: %w", c.Month, err)
		}
		end := start.AddDate(0, 1, 0) // the first instant after the month
		row.Expired = !end.After(pol.Cutoff(now))
		switch {
		case row.Expired && c.Held > 0:
			row.Note = fmt.Sprintf("expired, but %d messages are under a legal hold: do not drop", c.Held)
		case row.Expired:
			row.Droppable = true
		}
		rep.Rows = append(rep.Rows, row)
	}
	slices.SortFunc(rep.Rows, func(a, b RetentionRow) int {
		if c := strings.Compare(a.Account, b.Account); c != 0 {
			return c
		}
		return strings.Compare(a.Month, b.Month)
	})
	parts := map[string]*PartitionRow{}
	for _, r := range rep.Rows {
		p := parts[r.Month]
		if p == nil {
			p = &PartitionRow{Month: r.Month, Droppable: true}
			parts[r.Month] = p
		}
		p.Messages += r.Messages
		p.Held += r.Held
		p.Droppable = p.Droppable && r.Droppable
	}
	for _, p := range parts {
		rep.Partitions = append(rep.Partitions, *p)
	}
	slices.SortFunc(rep.Partitions, func(a, b PartitionRow) int { return strings.Compare(a.Month, b.Month) })
	return rep, nil
}

// ValidateHold checks h before it is placed.
func ValidateHold(h Hold) error {
	if h.Account == "" {
		return errors.New("account is required")
	}
	if h.Client == "" && h.Conv == "" {
		return errors.New("client or conv is required")
	}
	if h.Conv != "" {
		a, c := h.Conv.Split()
		if a != h.Account || c == "" {
			return fmt.Errorf("conv %q is not a conversation of account %q", h.Conv, h.Account)
		}
	}
	if strings.TrimSpace(h.Reason) == "" {
		return errors.New("reason is required")
	}
	return nil
}
