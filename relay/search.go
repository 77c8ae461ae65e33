package relay

import (
	"cmp"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Search limits. An offset makes the archive read and skip that many
// matches: past MaxSearchOffset, page with the cursor (SearchPage.Next),
// which costs the same on every page.
const (
	DefaultSearchLimit = 50
	MaxSearchLimit     = 1000
	MaxSearchOffset    = 10000
)

// ErrBadCursor is returned by a Searcher for a cursor it did not make.
var ErrBadCursor = errors.New("relay: bad search cursor")

// SearchQuery selects archived messages. Zero fields select everything;
// set fields combine (AND).
type SearchQuery struct {
	Account   string         `json:"account,omitempty"`
	Client    string         `json:"client,omitempty"` // client openid
	Employee  string         `json:"employee,omitempty"`
	Conv      ConversationID `json:"conv,omitempty"`
	Direction Direction      `json:"direction,omitempty"`
	Kind      Kind           `json:"kind,omitempty"`
	// Employees, when not empty, keeps only the messages whose Employee
	// is one of them (AND with Employee, like every other field).
	Employees []string `json:"employees,omitempty"`
	// From and To bound AcceptedAt: From <= AcceptedAt < To. Zero: unbounded.
	From time.Time `json:"from,omitzero"`
	To   time.Time `json:"to,omitzero"`
	// Text is a case-insensitive substring of the message text (Chinese
	// included). Case folding is Unicode's simple folding on both
	// backends (ClickHouse's positionCaseInsensitiveUTF8; Go's
	// strings.ToLower in the embedded archive).
	Text string `json:"text,omitempty"`

	// Limit is the page size: DefaultSearchLimit when <= 0, at most
	// MaxSearchLimit.
	Limit int `json:"limit,omitempty"`
	// Cursor continues after the last message of a previous page
	// (SearchPage.Next). Offset skips that many matches instead (at most
	// MaxSearchOffset); with a cursor it is ignored.
	Cursor string `json:"cursor,omitempty"`
	Offset int    `json:"offset,omitempty"`
	// WithTotal asks for SearchPage.Total (one more query).
	WithTotal bool `json:"-"`
}

// SearchPage is one page of results, newest first (AcceptedAt, then ID,
// descending), one message per ID whatever copies a replay left.
type SearchPage struct {
	Messages []Message
	// Next is the cursor of the following page; "" when this is the last.
	Next string
	// Total counts every match (distinct ids) when the query asked for
	// it, -1 otherwise.
	Total int
}

// Searcher searches the archive. Both archives in storage implement it.
type Searcher interface {
	Search(ctx context.Context, q SearchQuery) (SearchPage, error)
}

// Validate reports a query that no backend can run.
func (q SearchQuery) Validate() error {
	if !q.From.IsZero() && !q.To.IsZero() && !q.From.Before(q.To) {
		return fmt.Errorf("relay: search: from (%s) must be before to (%s)", q.From.Format(time.RFC3339), q.To.Format(time.RFC3339))
	}
	if q.Limit > MaxSearchLimit {
		return fmt.Errorf("relay: search: limit %d is above %d", q.Limit, MaxSearchLimit)
	}
	if q.Offset < 0 {
		return errors.New("relay: search: negative offset")
	}
	if q.Offset > MaxSearchOffset {
		return fmt.Errorf("relay: search: offset %d is above %d; page with the cursor (next) instead", q.Offset, MaxSearchOffset)
	}
	switch q.Direction {
	case "", Inbound, Outbound, Internal:
	default:
		return fmt.Errorf("relay: search: unknown direction %q (in, out, internal)", q.Direction)
	}
	if _, _, err := q.After(); err != nil {
		return err
	}
	return nil
}

// PageSize is q.Limit with the default applied and capped.
func (q SearchQuery) PageSize() int {
	switch {
	case q.Limit <= 0:
		return DefaultSearchLimit
	case q.Limit > MaxSearchLimit:
		return MaxSearchLimit
	}
	return q.Limit
}

// After decodes q.Cursor: the AcceptedAt (epoch milliseconds) and ID of
// the last message of the previous page. ok is false without a cursor.
func (q SearchQuery) After() (ms uint64, id string, err error) {
	if q.Cursor == "" {
		return 0, "", nil
	}
	b, err := base64.RawURLEncoding.DecodeString(q.Cursor)
	if err != nil {
		return 0, "", ErrBadCursor
	}
	msPart, id, ok := strings.Cut(string(b), ":")
	if !ok || id == "" {
		return 0, "", ErrBadCursor
	}
	ms, err = strconv.ParseUint(msPart, 10, 64)
	if err != nil {
		return 0, "", ErrBadCursor
	}
	return ms, id, nil
}

// SearchCursor is the cursor that continues after m.
func SearchCursor(m Message) string {
	return base64.RawURLEncoding.EncodeToString([]byte(strconv.FormatUint(archivedMillis(m.AcceptedAt), 10) + ":" + m.ID))
}

// String describes the query for audit records and manifests.
func (q SearchQuery) String() string {
	var parts []string
	add := func(k, v string) {
		if v != "" {
			parts = append(parts, k+"="+strconv.Quote(v))
		}
	}
	add("account", q.Account)
	add("client", q.Client)
	add("employee", q.Employee)
	if len(q.Employees) > 0 {
		names := make([]string, len(q.Employees))
		for i, e := range q.Employees {
			names[i] = cmp.Or(e, "(nobody)")
		}
		add("employees", strings.Join(names, ","))
	}
	add("conv", string(q.Conv))
	add("direction", string(q.Direction))
	add("kind", string(q.Kind))
	if !q.From.IsZero() {
		add("from", q.From.UTC().Format(time.RFC3339))
	}
	if !q.To.IsZero() {
		add("to", q.To.UTC().Format(time.RFC3339))
	}
	add("text", q.Text)
	if len(parts) == 0 {
		return "(everything)"
	}
	return strings.Join(parts, " ")
}

// ParseSearchTime reads the bound of a search's range as people type it
// (the console's query string, the search command's flags): an RFC 3339
// time or a date (YYYY-MM-DD, UTC).
// A date as the end of a range (end) means the end of that day.
func ParseSearchTime(s string, end bool) (time.Time, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	t, err := time.Parse("2006-01-02", s)
	if err != nil {
		return time.Time{}, fmt.Errorf("%q is neither a date (2006-01-02) nor an RFC 3339 time", s)
	}
	if end {
		t = t.AddDate(0, 0, 1)
	}
	return t, nil
}
