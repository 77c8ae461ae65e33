package report

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wechat-relay/wechat-relay/relay"
)

func TestParams(t *testing.T) {
	now := time.Date(2026, 3, 14, 20, 0, 0, 0, time.UTC) // 15 March in China
	cst := time.FixedZone("", 8*3600)
	for _, c := range []struct {
		p        Params
		from, to time.Time
		offset   time.Duration
	}{
		{Params{Name: Volume, From: "2026-03-01", To: "2026-03-02", TZ: "480"},
			time.Date(2026, 3, 1, 0, 0, 0, 0, cst), time.Date(2026, 3, 3, 0, 0, 0, 0, cst), 8 * time.Hour},
		{Params{Name: Volume, From: "2026-03-01T10:00:00Z", To: "2026-03-01T11:00:00Z"},
			time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC), time.Date(2026, 3, 1, 11, 0, 0, 0, time.UTC), 0},
		// The default: the last seven days, today (in the zone) included.
		{Params{Name: Delivery, TZ: "480"},
			time.Date(2026, 3, 9, 0, 0, 0, 0, cst), time.Date(2026, 3, 16, 0, 0, 0, 0, cst), 8 * time.Hour},
		{Params{Name: Delivery},
			time.Date(2026, 3, 8, 0, 0, 0, 0, time.UTC), time.Date(2026, 3, 15, 0, 0, 0, 0, time.UTC), 0},
	} {
		req, err := c.p.Parse(now)
		if err != nil {
			t.Errorf("%+v: %v", c.p, err)
			continue
		}
		if !req.From.Equal(c.from) || !req.To.Equal(c.to) || req.Offset != c.offset {
			t.Errorf("%+v: [%s, %s) at %s, want [%s, %s) at %s", c.p, req.From, req.To, req.Offset, c.from, c.to, c.offset)
		}
	}
	for _, p := range []Params{
		{Name: "nope"},
		{Name: Volume, From: "yesterday"},
		{Name: Volume, From: "2026-03-05", To: "2026-03-01"},
		{Name: Volume, From: "2025-01-01", To: "2026-03-01"},
		{Name: Volume, TZ: "east"},
		{Name: Volume, TZ: "900"},
		{Name: Responsiveness, Within: "0"},
		{Name: Responsiveness, Within: "49"},
	} {
		if _, err := p.Parse(now); !errors.Is(err, ErrBadRequest) {
			t.Errorf("%+v: %v, want ErrBadRequest", p, err)
		}
	}
}

// recorder is a Store that records the employees each figure was asked
// for, and counts nothing.
type recorder struct {
	mu   sync.Mutex
	asks []string
}

func (r *recorder) ask(what string, f Filter) {
	r.mu.Lock()
	defer r.mu.Unlock()
	who := "all"
	if f.Employees != nil {
		who = strings.Join(f.Employees, ",")
	}
	r.asks = append(r.asks, what+":"+who)
}

func (r *recorder) ReportVolume(_ context.Context, f Filter, g Group) ([]VolumeRow, error) {
	r.ask("volume/"+string(g), f)
	return nil, nil
}
func (r *recorder) ReportClients(_ context.Context, f Filter) ([]ClientsRow, error) {
	r.ask("clients", f)
	return nil, nil
}
func (r *recorder) ReportConversations(_ context.Context, f Filter) ([]ConversationsRow, error) {
	r.ask("conversations", f)
	return nil, nil
}
func (r *recorder) ReportResponses(_ context.Context, f Filter, g Group) ([]ResponseRow, error) {
	r.ask("responses/"+string(g), f)
	return nil, nil
}
func (r *recorder) ReportWaiting(_ context.Context, f Filter) ([]WaitingRow, error) {
	r.ask("waiting", f)
	return nil, nil
}
func (r *recorder) ReportClosing(_ context.Context, f Filter, _ time.Time, _ time.Duration) ([]ClosingRow, error) {
	r.ask("closing", f)
	return nil, nil
}
func (r *recorder) ReportDelivery(_ context.Context, f Filter) ([]DeliveryRow, error) {
	r.ask("delivery", f)
	return nil, nil
}

func (r *recorder) ReportHits(_ context.Context, f Filter) ([]DayCount, error) {
	r.ask("hits", f)
	return nil, nil
}
func (r *recorder) ReportActions(_ context.Context, f Filter, _ []string) ([]DayCount, error) {
	r.ask("actions", f)
	return nil, nil
}

func TestScope(t *testing.T) {
	dir := relay.NewDirectory(nil, relay.DirectorySeed{
		Teams: []relay.Team{{ID: "red"}, {ID: "blue"}},
		Employees: []relay.Employee{
			{ID: "a1", Role: relay.RoleAgent, Teams: []string{"red"}},
			{ID: "a2", Role: relay.RoleAgent, Teams: []string{"blue"}},
			{ID: "a3", Role: relay.RoleAgent, Teams: []string{"red", "blue"}},
			{ID: "lead", Role: relay.RoleSupervisor, Teams: []string{"red"}},
			{ID: "boss", Role: relay.RoleSupervisor, AllTeams: true},
		},
	}, nil, nil)
	snap := dir.Snapshot()
	emp := func(id string) *relay.Employee { e, _ := snap.Employee(id); return &e }
	from := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	run := func(viewer *relay.Employee, req Request) ([]string, error) {
		rec := &recorder{}
		req.Name, req.From, req.To = Volume, from, from.AddDate(0, 0, 1)
		_, err := (&Service{Store: rec}).Run(t.Context(), viewer, snap, req)
		slices.Sort(rec.asks)
		return rec.asks, err
	}
	for _, c := range []struct {
		name   string
		viewer *relay.Employee
		req    Request
		want   string
	}{
		// Teams are their members, supervisors included.
		{"operator", nil, Request{}, "clients:all conversations:all volume/account:all volume/all:a1,a3,lead volume/all:a2,a3 volume/day:all volume/employee:all volume/hour:all"},
		{"all teams", emp("boss"), Request{}, "clients:all conversations:all volume/account:all volume/all:a1,a3,lead volume/all:a2,a3 volume/day:all volume/employee:all volume/hour:all"},
		// Her scope: herself and her teams' members; only her teams.
		{"team supervisor", emp("lead"), Request{}, "clients:lead,a1,a3 conversations:lead,a1,a3 volume/account:lead,a1,a3 volume/all:a1,a3,lead volume/day:lead,a1,a3 volume/employee:lead,a1,a3 volume/hour:lead,a1,a3"},
		{"team supervisor, her team", emp("lead"), Request{Team: "red"}, "clients:a1,a3,lead conversations:a1,a3,lead volume/account:a1,a3,lead volume/all:a1,a3,lead volume/day:a1,a3,lead volume/employee:a1,a3,lead volume/hour:a1,a3,lead"},
		{"team supervisor, her agent", emp("lead"), Request{Employee: "a3"}, "clients:a3 conversations:a3 volume/account:a3 volume/all:a3 volume/day:a3 volume/employee:a3 volume/hour:a3"},
		// a2 is not in red: the archive is not asked about red.
		{"all teams, red and a2", emp("boss"), Request{Team: "red", Employee: "a2"}, ""},
	} {
		got, err := run(c.viewer, c.req)
		if err != nil || strings.Join(got, " ") != c.want {
			t.Errorf("%s: %v %q\nwant %q", c.name, err, strings.Join(got, " "), c.want)
		}
	}
	for _, c := range []struct {
		name   string
		viewer *relay.Employee
		req    Request
		want   error
	}{
		{"agent", emp("a1"), Request{}, ErrForbidden},
		{"another team", emp("lead"), Request{Team: "blue"}, ErrForbidden},
		{"an agent of another team", emp("lead"), Request{Employee: "a2"}, ErrForbidden},
		{"no such team", emp("boss"), Request{Team: "green"}, ErrBadRequest},
	} {
		if asks, err := run(c.viewer, c.req); !errors.Is(err, c.want) || len(asks) != 0 {
			t.Errorf("%s: %v after %v, want %v and no question", c.name, err, asks, c.want)
		}
	}
}
