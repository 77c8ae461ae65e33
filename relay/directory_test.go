package relay

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// memDirectory keeps directory records in memory.
type memDirectory struct {
	mu   sync.Mutex
	recs []DirectoryRecord
}

func (m *memDirectory) AppendDirectory(_ context.Context, r DirectoryRecord) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.recs = append(m.recs, r)
	return nil
}

func (m *memDirectory) DirectoryRecords(context.Context) ([]DirectoryRecord, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.recs), nil
}

func testSeed() DirectorySeed {
	return DirectorySeed{
		Employees: []Employee{
			{ID: "root", Role: RoleAdmin, PasswordHash: "seed-root-hash"},
			{ID: "alice", Role: RoleAgent, Accounts: []string{"acct"}, Teams: []string{"t1"}, PasswordHash: "seed-alice-hash", TokenHash: "seed-alice-token"},
			{ID: "bob", Role: RoleAgent, Accounts: []string{"acct"}, Teams: []string{"t2"}},
			{ID: "lead", Role: RoleSupervisor, Teams: []string{"t1"}},
			{ID: "sup", Role: RoleSupervisor, AllTeams: true},
			{ID: "lonely", Role: RoleSupervisor},
			{ID: "cmp", Role: RoleCompliance, Teams: []string{"t1"}},
		},
		Teams:    []Team{{ID: "t1", Name: "One"}, {ID: "t2", Name: "Two"}},
		Accounts: []AccountInfo{{ID: "acct"}},
	}
}

func TestDirectorySees(t *testing.T) {
	s := NewDirectory(nil, testSeed(), nil, nil).Snapshot()
	emp := func(id string) Employee { e, _ := s.Employee(id); return e }
	cases := []struct {
		viewer, owner string
		want          bool
	}{
		{"alice", "alice", true},
		{"alice", "bob", false},
		{"alice", "", false},
		{"lead", "alice", true}, // same team
		{"lead", "bob", false},  // other team
		{"lead", "", false},     // nobody's (or nobody known): not a team's
		{"lead", "ghost", false},
		{"sup", "bob", true},     // the all-teams grant sees all
		{"sup", "", true},        // nobody's too
		{"lonely", "bob", false}, // a supervisor in no team, without the grant, sees nothing
		{"lonely", "", false},
		{"lonely", "alice", false},
		{"cmp", "bob", true}, // compliance sees all, teams or not
		{"cmp", "", true},
		{"root", "bob", true},
		{"root", "", true},
	}
	for _, c := range cases {
		if got := s.Sees(emp(c.viewer), c.owner); got != c.want {
			t.Errorf("Sees(%s, %q) = %t, want %t", c.viewer, c.owner, got, c.want)
		}
	}
	if ids, all := s.Scope(emp("lead")); all || strings.Join(ids, ",") != "lead,alice,cmp" {
		t.Errorf("lead's scope: %v %t", ids, all)
	}
	if _, all := s.Scope(emp("sup")); !all {
		t.Error("the scope of a supervisor granted all teams is not everyone")
	}
	if ids, all := s.Scope(emp("lonely")); all || strings.Join(ids, ",") != "lonely" {
		t.Errorf("the scope of a supervisor in no team without the grant: %v %t, want only their own", ids, all)
	}
	if got := s.AutoAssign("acct"); strings.Join(got, ",") != "alice,bob" {
		t.Errorf("AutoAssign = %v", got)
	}
}

func TestDirectoryReadOnlyWithoutStore(t *testing.T) {
	d := NewDirectory(nil, testSeed(), nil, nil)
	_, err := d.CreateTeam(context.Background(), "root", Team{ID: "t3"}, nil)
	if !errors.Is(err, ErrDirectoryReadOnly) || d.Writable() {
		t.Fatalf("change without a store: %v", err)
	}
}

func TestDirectoryCredentialsFollowTheSeedUntilSet(t *testing.T) {
	ctx := context.Background()
	store := &memDirectory{}
	d := NewDirectory(store, testSeed(), nil, nil)
	if err := d.Load(ctx); err != nil {
		t.Fatal(err)
	}
	alice, _ := d.Snapshot().Employee("alice")
	alice.PasswordHash, alice.TokenHash, alice.Name = "", "", "Alice"
	if _, err := d.UpdateEmployee(ctx, "root", alice, 0, nil); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(store.recs[0].Data, "seed-alice") {
		t.Fatalf("the record copies the seed's credentials: %s", store.recs[0].Data)
	}
	// A new secret in the environment (a new seed) still applies.
	seed := testSeed()
	seed.Employees[1].PasswordHash = "rotated-hash"
	d2 := NewDirectory(store, seed, nil, nil)
	if err := d2.Load(ctx); err != nil {
		t.Fatal(err)
	}
	got, _ := d2.Snapshot().Employee("alice")
	if got.Name != "Alice" || got.PasswordHash != "rotated-hash" || got.TokenHash != "seed-alice-token" || !got.Seeded || got.Version != 1 {
		t.Fatalf("alice over a rotated seed: %+v", got)
	}
	// Once an admin sets one, it wins over the seed, and survives edits.
	got.PasswordHash = "admin-set-hash"
	if _, err := d2.UpdateEmployee(ctx, "root", got, 1, nil); err != nil {
		t.Fatal(err)
	}
	got, _ = d2.Snapshot().Employee("alice")
	got.PasswordHash, got.TokenHash, got.Name = "", "", "Alice W."
	if _, err := d2.UpdateEmployee(ctx, "root", got, 2, nil); err != nil {
		t.Fatal(err)
	}
	got, _ = d2.Snapshot().Employee("alice")
	if got.PasswordHash != "admin-set-hash" || got.TokenHash != "seed-alice-token" || got.Name != "Alice W." {
		t.Fatalf("alice after an edit: %+v", got)
	}
}

func TestDirectoryConcurrentVersionsConverge(t *testing.T) {
	// Two instances wrote version 1 of the same team at once: every
	// reader picks the same one.
	at := time.Date(2026, 11, 26, 1, 0, 0, 0, time.UTC)
	recs := []DirectoryRecord{
		{Kind: DirTeam, ID: "t9", Version: 1, At: at, By: "root", Data: `{"id":"t9","name":"A"}`},
		{Kind: DirTeam, ID: "t9", Version: 1, At: at, By: "root2", Data: `{"id":"t9","name":"B"}`},
	}
	for _, order := range [][]DirectoryRecord{recs, {recs[1], recs[0]}} {
		s := build(testSeed(), order, func(DirectoryRecord, error) {})
		if tm, _ := s.Team("t9"); tm.Name != "B" {
			t.Fatalf("team t9 = %+v, want the same pick (B) whatever the order", tm)
		}
	}
	// A team deleted while someone still names it stays (its deletion
	// crossed a change that put them in it); one nobody names goes. A
	// broken record is skipped, reported, and does not hide the rest.
	var bad []string
	s := build(testSeed(), []DirectoryRecord{
		{Kind: DirTeam, ID: "t2", Version: 1, At: at, By: "root", Deleted: true, Data: `{}`},
		{Kind: DirTeam, ID: "t9", Version: 1, At: at, By: "root", Data: `{"id":"t9","name":"Nine"}`},
		{Kind: DirTeam, ID: "t9", Version: 2, At: at, By: "root", Deleted: true, Data: `{}`},
		{Kind: DirEmployee, ID: "sup", Version: 1, At: at, By: "root", Data: `{not json`},
	}, func(r DirectoryRecord, err error) { bad = append(bad, r.ID) })
	if bob, _ := s.Employee("bob"); strings.Join(bob.Teams, ",") != "t2" {
		t.Errorf("bob's teams after t2's deletion, which he still names: %v", bob.Teams)
	}
	if t2, ok := s.Team("t2"); !ok || !t2.Deleting || t2.Version != 1 || t2.Name != "Two" {
		t.Errorf("t2 deleted while bob is in it: %+v %t, want it kept (the seed's name), deleting, at version 1", t2, ok)
	}
	if _, ok := s.Team("t9"); ok || strings.Join(bad, ",") != "sup" {
		t.Errorf("t9 still there, or bad records %v", bad)
	}
	if sup, ok := s.Employee("sup"); !ok || sup.Role != RoleSupervisor {
		t.Errorf("sup after an unreadable record: %+v", sup)
	}
}

func TestDirectoryOnChange(t *testing.T) {
	ctx := context.Background()
	store := &memDirectory{}
	d := NewDirectory(store, testSeed(), nil, nil)
	var changes int
	d.OnChange(func(old, cur *DirectorySnapshot) { changes++ })
	if err := d.Load(ctx); err != nil || changes != 0 {
		t.Fatalf("loading an empty store: %v, %d changes", err, changes)
	}
	if _, err := d.CreateTeam(ctx, "root", Team{ID: "t3", Name: "Three"}, nil); err != nil {
		t.Fatal(err)
	}
	if changes != 1 {
		t.Fatalf("%d changes after a team was made, want 1", changes)
	}
	// Another instance sees it on its next reload, and says so once.
	other := NewDirectory(store, testSeed(), nil, nil)
	var seen int
	other.OnChange(func(old, cur *DirectorySnapshot) { seen++ })
	for range 2 {
		if err := other.Load(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if _, ok := other.Snapshot().Team("t3"); !ok || seen != 1 {
		t.Fatalf("the other instance: team there %t, %d changes", ok, seen)
	}
	// A reload that finds nothing new keeps the snapshot itself.
	before := other.Snapshot()
	if err := other.Load(ctx); err != nil || other.Snapshot() != before {
		t.Fatalf("an unchanged reload replaced the snapshot (%v)", err)
	}
}

func TestDirectoryAuditHook(t *testing.T) {
	ctx := context.Background()
	store := &memDirectory{}
	d := NewDirectory(store, testSeed(), nil, nil)
	if err := d.Load(ctx); err != nil {
		t.Fatal(err)
	}
	var audited []string
	audit := func(before *DirectorySnapshot, rec DirectoryRecord) error {
		was, _ := before.Team(rec.ID)
		audited = append(audited, rec.Kind+":"+rec.ID+" was "+was.Name)
		return nil
	}
	if _, err := d.UpdateTeam(ctx, "root", Team{ID: "t1", Name: "Uno"}, 0, audit); err != nil {
		t.Fatal(err)
	}
	// Refused and conflicting changes are not audited.
	if _, err := d.UpdateTeam(ctx, "root", Team{ID: "t1", Name: "Stale"}, 0, audit); !errors.Is(err, ErrDirectoryConflict) {
		t.Fatalf("stale change: %v", err)
	}
	if _, err := d.CreateTeam(ctx, "root", Team{ID: "bad id"}, audit); !errors.Is(err, ErrDirectoryInvalid) {
		t.Fatalf("bad id: %v", err)
	}
	if strings.Join(audited, ";") != "team:t1 was One" {
		t.Fatalf("audited %q", audited)
	}
	// An audit record that cannot be written refuses the change.
	failing := func(*DirectorySnapshot, DirectoryRecord) error { return errors.New("archive down") }
	if _, err := d.UpdateTeam(ctx, "root", Team{ID: "t1", Name: "Dos"}, 1, failing); !errors.Is(err, ErrDirectoryAudit) {
		t.Fatalf("change with a failing audit: %v", err)
	}
	if tm, _ := d.Snapshot().Team("t1"); tm.Name != "Uno" || len(store.recs) != 1 {
		t.Fatalf("after a failed audit: %+v, %d records", tm, len(store.recs))
	}
}

func TestDirectoryMetrics(t *testing.T) {
	ctx := context.Background()
	store := &failingDirectory{}
	start := time.Now()
	d := NewDirectory(store, testSeed(), nil, nil)
	reg := prometheus.NewPedanticRegistry()
	d.Instrument(reg)
	if err := d.Load(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := d.CreateTeam(ctx, "root", Team{ID: "t3"}, nil); err != nil {
		t.Fatal(err)
	}
	store.fail = true
	if err := d.Load(ctx); err == nil {
		t.Fatal("a failing store loaded")
	}
	if got := testutil.ToFloat64(d.loadedAt); got < float64(start.Unix()) || got > float64(time.Now().Unix()+1) {
		t.Errorf("loaded timestamp %v, want the wall time of the last good load (after %d)", got, start.Unix())
	}
	if got := testutil.ToFloat64(d.reloadFailures); got != 1 {
		t.Errorf("reload failures %v, want 1", got)
	}
	if got := testutil.ToFloat64(d.changes.WithLabelValues(DirTeam)); got != 1 {
		t.Errorf("team changes %v, want 1", got)
	}
	if n, err := testutil.GatherAndCount(reg); err != nil || n != 3 {
		t.Errorf("gathered %d metrics (%v), want 3", n, err)
	}
}

// failingDirectory is a memDirectory that fails reads when told to.
type failingDirectory struct {
	memDirectory
	fail bool
}

func (f *failingDirectory) DirectoryRecords(ctx context.Context) ([]DirectoryRecord, error) {
	if f.fail {
		return nil, errors.New("archive down")
	}
	return f.memDirectory.DirectoryRecords(ctx)
}

// The all-teams grant is a supervisor's: given to another role it would
// lie dormant until a change of role made it a grant nobody chose.
func TestDirectoryAllTeamsIsASupervisorsGrant(t *testing.T) {
	ctx := context.Background()
	d := NewDirectory(&memDirectory{}, testSeed(), nil, nil)
	if err := d.Load(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := d.UpdateEmployee(ctx, "root", Employee{ID: "bob", Role: RoleAgent, AllTeams: true}, 0, nil); !errors.Is(err, ErrDirectoryInvalid) {
		t.Fatalf("granting an agent all teams: %v, want ErrDirectoryInvalid", err)
	}
	got, err := d.UpdateEmployee(ctx, "root", Employee{ID: "lonely", Role: RoleSupervisor, AllTeams: true}, 0, nil)
	if err != nil || !got.AllTeams || !d.Snapshot().Sees(got, "bob") {
		t.Fatalf("granting a supervisor all teams: %+v %v", got, err)
	}
}

// hookedDirectory runs before once, just before the first record it is
// asked to append that matches: the moment another instance's change
// lands in between a change's check and its write.
type hookedDirectory struct {
	*memDirectory
	match  func(DirectoryRecord) bool
	before func()
	once   sync.Once
}

func (h *hookedDirectory) AppendDirectory(ctx context.Context, r DirectoryRecord) error {
	if h.match(r) {
		h.once.Do(h.before)
	}
	return h.memDirectory.AppendDirectory(ctx, r)
}

// Deleting a team and putting someone in it, on two instances at once,
// never leaves a membership of a deleted team behind (dropped silently,
// and back when a team of that id is made again): whichever order the
// writes land in, the team stays with its new member, and the instance
// that deleted it says the deletion did not take.
func TestDirectoryDeleteTeamRacesAMembership(t *testing.T) {
	ctx := context.Background()
	seed := testSeed()
	seed.Teams = append(seed.Teams, Team{ID: "t3", Name: "Three"})
	open := func(store DirectoryStore) *Directory {
		d := NewDirectory(store, seed, nil, nil)
		if err := d.Load(ctx); err != nil {
			t.Fatal(err)
		}
		return d
	}
	check := func(t *testing.T, dirs ...*Directory) {
		t.Helper()
		for i, d := range dirs {
			if err := d.Load(ctx); err != nil {
				t.Fatal(err)
			}
			s := d.Snapshot()
			if _, ok := s.Team("t3"); !ok || !slices.Contains(s.Members("t3"), "bob") {
				t.Errorf("instance %d: team t3 %t, members %v; want t3 with bob in it", i, ok, s.Members("t3"))
			}
		}
	}

	t.Run("the member lands between the deletion's check and its write", func(t *testing.T) {
		mem := &memDirectory{}
		var a, b *Directory
		store := &hookedDirectory{memDirectory: mem,
			match: func(r DirectoryRecord) bool { return r.Kind == DirTeam && r.Deleted },
			before: func() {
				if _, err := b.UpdateEmployee(ctx, "root2", Employee{ID: "bob", Role: RoleAgent, Accounts: []string{"acct"}, Teams: []string{"t2", "t3"}}, 0, nil); err != nil {
					t.Errorf("putting bob in t3 on instance b: %v", err)
				}
			}}
		a, b = open(store), open(mem)
		err := a.DeleteTeam(ctx, "root", "t3", 0, nil)
		if !errors.Is(err, ErrDirectoryConflict) {
			t.Fatalf("deleting t3 while bob joined it: %v, want ErrDirectoryConflict", err)
		}
		check(t, a, b)
		// The failed deletion does not linger: bob leaving later leaves
		// the team in place.
		if _, err := b.UpdateEmployee(ctx, "root2", Employee{ID: "bob", Role: RoleAgent, Accounts: []string{"acct"}, Teams: []string{"t2"}}, 1, nil); err != nil {
			t.Fatal(err)
		}
		if err := a.Load(ctx); err != nil {
			t.Fatal(err)
		}
		if _, ok := a.Snapshot().Team("t3"); !ok {
			t.Error("t3 vanished when bob left it, after its deletion had failed")
		}
	})

	t.Run("the member lands after the deletion", func(t *testing.T) {
		mem := &memDirectory{}
		var a, b *Directory
		store := &hookedDirectory{memDirectory: mem,
			match: func(r DirectoryRecord) bool { return r.Kind == DirEmployee },
			before: func() {
				// b checked bob's change against a directory with t3; a
				// deletes t3 before b's record lands.
				if err := a.DeleteTeam(ctx, "root", "t3", 0, nil); err != nil {
					t.Errorf("deleting t3 on instance a: %v", err)
				}
			}}
		a, b = open(mem), open(store)
		if _, err := b.UpdateEmployee(ctx, "root2", Employee{ID: "bob", Role: RoleAgent, Accounts: []string{"acct"}, Teams: []string{"t2", "t3"}}, 0, nil); err != nil {
			t.Fatal(err)
		}
		check(t, a, b)
		// Made again later, the team has only the members it is given.
		if _, err := b.UpdateEmployee(ctx, "root2", Employee{ID: "bob", Role: RoleAgent, Accounts: []string{"acct"}, Teams: []string{"t2"}}, 1, nil); err != nil {
			t.Fatal(err)
		}
		if err := a.Load(ctx); err != nil {
			t.Fatal(err)
		}
		if _, ok := a.Snapshot().Team("t3"); ok {
			t.Error("t3 is still there once nobody is in it, though it was deleted")
		}
	})
}
