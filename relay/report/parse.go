package report

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// DefaultDays is the range of a request that names none: the last seven
// days, today included.
const DefaultDays = 7

// Params are a request as the API and the command line take it, all
// strings: from and to are dates (YYYY-MM-DD, in the tz; to includes its
// day) or RFC 3339 times; tz is minutes east of UTC (480 for China);
// within is hours.
type Params struct {
	Name, From, To, TZ, Account, Team, Employee, Within string
}

// Parse checks p and makes it a Request; now dates the default range.
// Errors wrap ErrBadRequest and name the parameter.
func (p Params) Parse(now time.Time) (Request, error) {
	req := Request{Name: p.Name, Account: p.Account, Team: p.Team, Employee: p.Employee}
	bad := func(name, format string, a ...any) (Request, error) {
		return req, fmt.Errorf("%w: %s: %s", ErrBadRequest, name, fmt.Sprintf(format, a...))
	}
	if tz := strings.TrimSpace(p.TZ); tz != "" {
		m, err := strconv.Atoi(tz)
		if err != nil {
			return bad("tz", "%q is not a number of minutes east of UTC", tz)
		}
		req.Offset = time.Duration(m) * time.Minute
	}
	if w := strings.TrimSpace(p.Within); w != "" {
		h, err := strconv.Atoi(w)
		if err != nil || h <= 0 {
			return bad("within", "%q is not a positive number of hours", w)
		}
		req.Within = time.Duration(h) * time.Hour
	}
	zone := time.FixedZone("", int(req.Offset/time.Second))
	var err error
	if req.From, err = parseTime(p.From, zone, false); err != nil {
		return bad("from", "%v", err)
	}
	if req.To, err = parseTime(p.To, zone, true); err != nil {
		return bad("to", "%v", err)
	}
	if req.To.IsZero() {
		y, m, d := now.In(zone).Date()
		req.To = time.Date(y, m, d+1, 0, 0, 0, 0, zone)
	}
	if req.From.IsZero() {
		req.From = req.To.AddDate(0, 0, -DefaultDays)
	}
	return req, req.Validate()
}

// parseTime reads a date (midnight in zone; with end, the midnight after
// it) or an RFC 3339 time; "" is the zero time.
func parseTime(s string, zone *time.Location, end bool) (time.Time, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	t, err := time.ParseInLocation(time.DateOnly, s, zone)
	if err != nil {
		return time.Time{}, fmt.Errorf("%q is neither a date (2006-01-02) nor an RFC 3339 time", s)
	}
	if end {
		t = t.AddDate(0, 0, 1)
	}
	return t, nil
}
