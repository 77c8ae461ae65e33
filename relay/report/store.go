package report

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strconv"
	"time"

	"github.com/wechat-relay/wechat-relay/relay"
)

// Store computes the figures in the archive. Both archives in storage
// implement it; storage/archivetest's RunReports pins it down.
type Store interface {
	// ReportVolume counts messages in and out accepted in f's range, grouped
	// by g.
	ReportVolume(ctx context.Context, f Filter, g Group) ([]VolumeRow, error)
	// ReportClients counts, per day of f's range, the clients new and
	// returning that day.
	ReportClients(ctx context.Context, f Filter) ([]ClientsRow, error)
	// ReportConversations counts, per day of f's range, the conversations
	// opened, resolved and reopened. Employees are those of the messages
	// that opened, resolved or reopened.
	ReportConversations(ctx context.Context, f Filter) ([]ConversationsRow, error)
	// ReportResponses computes response times of the replies sent in f's range
	// by f's employees, grouped by g (GroupEmployee or GroupAll).
	ReportResponses(ctx context.Context, f Filter, g Group) ([]ResponseRow, error)
	// ReportWaiting lists the conversations of f's account and employees (the
	// employee of their latest message) waiting for a reply, the longest
	// waiting first. f's range is not used.
	ReportWaiting(ctx context.Context, f Filter) ([]WaitingRow, error)
	// ReportClosing lists the conversations of f's account and employees whose
	// client's 48-hour window closes after now and at or before now +
	// within, with no message out since the client's latest interaction;
	// the soonest closing first. f's range is not used.
	ReportClosing(ctx context.Context, f Filter, now time.Time, within time.Duration) ([]ClosingRow, error)
	// ReportDelivery counts the outbound messages accepted in f's range by day,
	// state and errcode.
	ReportDelivery(ctx context.Context, f Filter) ([]DeliveryRow, error)
	// ReportHits counts the lexicon hits of f's range (their At) by day
	// and rule (Key). Employees are the hits' employees.
	ReportHits(ctx context.Context, f Filter) ([]DayCount, error)
	// ReportActions counts the audit records of f's range (their At)
	// whose action is one of actions, by day and action (Key). Employees
	// are who acted.
	ReportActions(ctx context.Context, f Filter, actions []string) ([]DayCount, error)
}

// Window is how long after a client's latest interaction the account may
// still write to them (WeChat's customer-service window).
const Window = 48 * time.Hour

// Filter selects what a figure counts.
type Filter struct {
	// From and To bound the range: AcceptedAt in [From, To).
	From, To time.Time
	// Offset is the time zone's offset from UTC that days and hours are
	// counted in.
	Offset time.Duration
	// Account, when set, keeps that account's conversations only.
	Account string
	// Employees, when not nil, keeps the messages of these employees
	// only (see each figure for which employee a message is of). An
	// empty, non-nil list keeps nothing.
	Employees []string
}

// Group is what a figure is broken down by.
type Group string

// The groupings.
const (
	GroupDay      Group = "day"      // Key: YYYY-MM-DD
	GroupHour     Group = "hour"     // Key: 00 … 23, the hour of the day
	GroupAccount  Group = "account"  // Key: the account id
	GroupEmployee Group = "employee" // Key: the employee id
	GroupAll      Group = "all"      // one row, Key ""
)

// VolumeRow counts messages.
type VolumeRow struct {
	Key     string
	In, Out int64
}

// ClientsRow counts clients active on a day.
type ClientsRow struct {
	Day            string // YYYY-MM-DD
	New, Returning int64
}

// ConversationsRow counts what happened to conversations on a day.
type ConversationsRow struct {
	Day                        string
	Opened, Resolved, Reopened int64
}

// ResponseRow sums up response times, in milliseconds.
type ResponseRow struct {
	Key                 string
	Replies             int64
	MedianMS, P90MS     int64
	FirstReplies        int64
	FirstMS, FirstP90MS int64
}

// WaitingRow is a conversation waiting for a reply.
type WaitingRow struct {
	Conv     relay.ConversationID
	Employee string
	Since    time.Time // AcceptedAt of the first unanswered message in
}

// ClosingRow is a conversation whose window closes soon.
type ClosingRow struct {
	Conv            relay.ConversationID
	Employee        string
	LastInteraction time.Time
}

// DeliveryRow counts outbound messages of a day in one state.
type DeliveryRow struct {
	Day     string
	State   relay.DeliveryState // relay.DeliveryPending when no event
	ErrCode int
	Count   int64
}

// SortDeliveryRows puts rows in the order ReportDelivery answers them:
// by day, state and errcode (both archives sort after mapping a missing
// state to pending, which SQL's ORDER BY cannot see).
func SortDeliveryRows(rows []DeliveryRow) {
	sort.SliceStable(rows, func(i, j int) bool {
		a, b := rows[i], rows[j]
		if a.Day != b.Day {
			return a.Day < b.Day
		}
		if a.State != b.State {
			return a.State < b.State
		}
		return a.ErrCode < b.ErrCode
	})
}

// DayCount counts what a day holds of one kind (a rule's hits, an
// action's audit records), in day then Key order.
type DayCount struct {
	Day, Key string
	Count    int64
}

// DayKey is the key of the day number n (days since 1970-01-01 in the
// filter's zone).
func DayKey(n int64) string {
	return time.Unix(n*86400, 0).UTC().Format(time.DateOnly)
}

// HourKey is the key of the hour of the day h.
func HourKey(h int64) string {
	if h < 10 {
		return "0" + strconv.FormatInt(h, 10)
	}
	return strconv.FormatInt(h, 10)
}

// GroupKey turns what an archive's query wrote for a row's group as a
// string (a day number or an hour for GroupDay and GroupHour) into the
// row's key.
func GroupKey(g Group, s string) (string, error) {
	if g != GroupDay && g != GroupHour {
		return s, nil
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return "", fmt.Errorf("reading %s %q: %w", g, s, err)
	}
	if g == GroupDay {
		return DayKey(n), nil
	}
	return HourKey(n), nil
}

// ConversationsRows puts what an archive counted for ReportConversations,
// by day key (the count at [0]), into rows in day order.
func ConversationsRows(opened, resolved, reopened map[string][]int64) []ConversationsRow {
	all := map[string]*ConversationsRow{}
	row := func(d string) *ConversationsRow {
		if all[d] == nil {
			all[d] = &ConversationsRow{Day: d}
		}
		return all[d]
	}
	for d, c := range opened {
		row(d).Opened = c[0]
	}
	for d, c := range resolved {
		row(d).Resolved = c[0]
	}
	for d, c := range reopened {
		row(d).Reopened = c[0]
	}
	var out []ConversationsRow
	for _, d := range slices.Sorted(maps.Keys(all)) {
		out = append(out, *all[d])
	}
	return out
}
