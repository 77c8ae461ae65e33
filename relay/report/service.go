package report

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/wechat-relay/wechat-relay/relay"
)

// The reports.
const (
	Volume         = "volume"
	Responsiveness = "responsiveness"
	Delivery       = "delivery"
	Compliance     = "compliance"
)

// Names lists the reports, in the order the console shows them.
var Names = []string{Volume, Responsiveness, Delivery, Compliance}

// MaxRange bounds a report's range: a year and a day (leap years, zones).
const MaxRange = 367 * 24 * time.Hour

// Errors of Run. ErrBadRequest and ErrForbidden are wrapped with what was
// wrong; anything else is the archive failing.
var (
	ErrBadRequest = errors.New("bad report request")
	ErrForbidden  = errors.New("not allowed to see this report")
)

// Request is what a viewer asks for.
type Request struct {
	Name     string
	From, To time.Time     // the range: [From, To)
	Offset   time.Duration // the viewer's zone, for days and hours
	Account  string        // optional
	Team     string        // optional: its members only
	Employee string        // optional: this employee only
	// Within is how far ahead "closing" looks (responsiveness);
	// DefaultWithin when zero.
	Within time.Duration
}

// DefaultWithin is how far ahead the closing windows are listed.
const DefaultWithin = 4 * time.Hour

// Report is a report's figures, as tables.
type Report struct {
	Name      string    `json:"name"`
	From      time.Time `json:"from"`
	To        time.Time `json:"to"`
	Offset    int       `json:"tz"` // minutes east of UTC
	Account   string    `json:"account,omitempty"`
	Team      string    `json:"team,omitempty"`
	Employee  string    `json:"employee,omitempty"`
	Generated time.Time `json:"generated"`
	Tables    []Table   `json:"tables"`
}

// Table is one table of a report. Each cell of a row is a string or an
// int64, in the order of Columns.
type Table struct {
	ID      string   `json:"id"`
	Columns []Column `json:"columns"`
	Rows    [][]any  `json:"rows"`
}

// Column describes a table column. Type says how to show it: day
// (YYYY-MM-DD), hour (00-23), text, count, ms (a duration in
// milliseconds), time (RFC 3339, UTC), conv (a conversation id),
// employee, team, account, state, errcode.
type Column struct {
	ID   string `json:"id"`
	Type string `json:"type"`
}

// Table returns the table id of r, and whether there is one.
func (r *Report) Table(id string) (Table, bool) {
	for _, t := range r.Tables {
		if t.ID == id {
			return t, true
		}
	}
	return Table{}, false
}

// Service runs reports against the archive.
type Service struct {
	Store Store
	// Now is the clock (time.Now), for "waiting now" and "closing".
	Now func() time.Time
	// Reviews, when set, adds the review queue now to the compliance
	// report (verified.go): only reviews that verify take a hit out.
	Reviews *relay.ReviewLog
	// Holds, when set, adds the legal holds in force now to the
	// compliance report: only releases that verify lift a hold.
	Holds *relay.LegalHolds
}

// Run computes req for viewer. viewer nil is the operator (the command
// line): everything. snap is the directory for scopes and teams; nil
// knows no teams. Agents are refused (ErrForbidden); a team supervisor
// sees their teams' members only, and is refused another team or
// employee.
func (s *Service) Run(ctx context.Context, viewer *relay.Employee, snap *relay.DirectorySnapshot, req Request) (*Report, error) {
	if err := req.Validate(); err != nil {
		return nil, err
	}
	if snap == nil {
		snap = &relay.DirectorySnapshot{}
	}
	base, teams, err := scope(viewer, snap, req)
	if err != nil {
		return nil, err
	}
	now := time.Now
	if s.Now != nil {
		now = s.Now
	}
	rep := &Report{
		Name: req.Name, From: req.From.UTC(), To: req.To.UTC(), Offset: int(req.Offset / time.Minute),
		Account: req.Account, Team: req.Team, Employee: req.Employee, Generated: now().UTC(),
	}
	f := Filter{From: req.From, To: req.To, Offset: req.Offset, Account: req.Account, Employees: base}
	b := builder{s: s.Store, f: f, teams: teams, snap: snap, now: rep.Generated}
	switch req.Name {
	case Volume:
		rep.Tables, err = b.volume(ctx)
	case Responsiveness:
		within := req.Within
		if within == 0 {
			within = DefaultWithin
		}
		rep.Tables, err = b.responsiveness(ctx, within)
	case Delivery:
		rep.Tables, err = b.delivery(ctx)
	case Compliance:
		rep.Tables, err = b.compliance(ctx)
		if err == nil && s.Reviews != nil {
			var q []Table
			q, err = b.reviewQueue(ctx, s.Reviews)
			rep.Tables = append(rep.Tables, q...)
		}
		if err == nil && s.Holds != nil {
			var h []Table
			h, err = b.legalHolds(ctx, s.Holds)
			rep.Tables = append(rep.Tables, h...)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("computing the %s report: %w", req.Name, err)
	}
	for i := range rep.Tables {
		if rep.Tables[i].Rows == nil {
			rep.Tables[i].Rows = [][]any{} // [] in JSON, not null
		}
	}
	return rep, nil
}

// Validate refuses a request no report can answer (ErrBadRequest).
func (req Request) Validate() error {
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%w: %s", ErrBadRequest, fmt.Sprintf(format, a...))
	}
	switch {
	case !slices.Contains(Names, req.Name):
		return bad("no report %q (there are %v)", req.Name, Names)
	case req.From.IsZero() || req.To.IsZero():
		return bad("from and to are required")
	case !req.From.Before(req.To):
		return bad("from (%s) must be before to (%s)", req.From.Format(time.RFC3339), req.To.Format(time.RFC3339))
	case req.To.Sub(req.From) > MaxRange:
		return bad("the range is longer than %d days", MaxRange/(24*time.Hour))
	case req.Offset < -14*time.Hour || req.Offset > 14*time.Hour || req.Offset%time.Minute != 0:
		return bad("time zone offset %s is not a whole number of minutes within ±14 hours", req.Offset)
	case req.Within < 0 || req.Within > Window:
		return bad("within must be between 0 and %s", Window)
	}
	return nil
}

// scope returns the employees the viewer's report counts (nil: all) and
// the teams it breaks down by.
func scope(viewer *relay.Employee, snap *relay.DirectorySnapshot, req Request) ([]string, []relay.Team, error) {
	var (
		base  []string // nil: everyone
		teams = snap.Teams
	)
	if viewer != nil {
		if !viewer.Role.SeesAll() {
			return nil, nil, fmt.Errorf("%w: reports are for supervisors, compliance officers and admins, not the %s role", ErrForbidden, viewer.Role)
		}
		if req.Name == Compliance && !viewer.Role.ReadsAudit() {
			// It counts audit records: for those who read the audit log.
			return nil, nil, fmt.Errorf("%w: the compliance report is for compliance officers and admins, not the %s role", ErrForbidden, viewer.Role)
		}
		if viewer.TeamScoped() {
			base, _ = snap.Scope(*viewer)
			teams = nil
			for _, t := range snap.Teams {
				if slices.Contains(viewer.Teams, t.ID) {
					teams = append(teams, t)
				}
			}
		}
	}
	if req.Team != "" {
		i := slices.IndexFunc(teams, func(t relay.Team) bool { return t.ID == req.Team })
		if i < 0 {
			if _, known := snap.Team(req.Team); !known {
				return nil, nil, fmt.Errorf("%w: no team %q", ErrBadRequest, req.Team)
			}
			return nil, nil, fmt.Errorf("%w: team %q is not one of yours", ErrForbidden, req.Team)
		}
		teams = teams[i : i+1]
		base = intersect(base, snap.Members(req.Team))
	}
	if req.Employee != "" {
		if viewer != nil && viewer.TeamScoped() && !slices.Contains(mustScope(viewer, snap), req.Employee) {
			return nil, nil, fmt.Errorf("%w: employee %q is not in your teams", ErrForbidden, req.Employee)
		}
		base = intersect(base, []string{req.Employee})
	}
	return base, teams, nil
}

func mustScope(viewer *relay.Employee, snap *relay.DirectorySnapshot) []string {
	ids, _ := snap.Scope(*viewer)
	return ids
}

// intersect returns the ids of b that a holds; a nil a holds all. The
// answer is never nil.
func intersect(a, b []string) []string {
	out := []string{}
	for _, id := range b {
		if a == nil || slices.Contains(a, id) {
			out = append(out, id)
		}
	}
	return out
}
