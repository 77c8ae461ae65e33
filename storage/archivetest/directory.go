package archivetest

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wechat-relay/wechat-relay/relay"
)

// RunDirectory runs the conformance suite of relay.DirectoryStore, and of
// relay.Directory over it. open is called once per subtest, from parallel
// subtests, and must return a new, empty store, as for Run.
//
// What it pins down beyond the interface's doc comments:
//
//   - Every field comes back as stored: At to the millisecond, in UTC
//     (the zero time as the zero time); Data byte for byte, Chinese
//     included; Deleted.
//   - An identical record stored again is no error, and changes nothing
//     a reader can tell: DirectoryRecords may return the copy or not, but
//     no other record. Two different records of one version (two
//     instances changing an entry at once) are both kept.
//   - Through relay.Directory: changes are versioned per entry, a stale
//     version is ErrDirectoryConflict, a second Directory on the same
//     store sees the changes once it loads, and History returns every
//     version oldest first.
func RunDirectory(t *testing.T, open func(t *testing.T) relay.DirectoryStore) {
	t.Helper()
	for _, c := range []struct {
		name string
		run  func(t *testing.T, s relay.DirectoryStore)
	}{
		{"DirectoryRoundTripEveryField", testDirectoryRoundTrip},
		{"DirectoryCopiesHarmless", testDirectoryCopies},
		{"DirectoryEmptyStore", testDirectoryEmpty},
		{"DirectoryChangesAndConflicts", testDirectoryChanges},
		{"DirectoryTeamsDeletedAndMadeAgain", testDirectoryTeams},
		{"DirectoryLastAdmin", testDirectoryLastAdmin},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			c.run(t, open(t))
		})
	}
}

func appendDirectory(t *testing.T, s relay.DirectoryStore, recs ...relay.DirectoryRecord) {
	t.Helper()
	for _, r := range recs {
		if err := s.AppendDirectory(testCtx(t), r); err != nil {
			t.Fatalf("AppendDirectory(%s %s v%d): %v", r.Kind, r.ID, r.Version, err)
		}
	}
}

func directoryRecords(t *testing.T, s relay.DirectoryStore) []relay.DirectoryRecord {
	t.Helper()
	recs, err := s.DirectoryRecords(testCtx(t))
	if err != nil {
		t.Fatalf("DirectoryRecords: %v", err)
	}
	return recs
}

// normalizeRecord is r as an archive gives it back: At in UTC, to the
// millisecond.
func normalizeRecord(r relay.DirectoryRecord) relay.DirectoryRecord {
	if !r.At.IsZero() {
		r.At = r.At.UTC().Truncate(time.Millisecond)
	}
	return r
}

func compareRecords(a, b relay.DirectoryRecord) int {
	return cmp.Or(
		strings.Compare(a.Kind, b.Kind),
		strings.Compare(a.ID, b.ID),
		cmp.Compare(a.Version, b.Version),
		a.At.Compare(b.At),
		strings.Compare(a.By, b.By),
		strings.Compare(fmt.Sprint(a.Deleted), fmt.Sprint(b.Deleted)),
		strings.Compare(a.Data, b.Data),
		strings.Compare(a.PrevHash, b.PrevHash),
		strings.Compare(a.Hash, b.Hash),
		strings.Compare(a.KeyID, b.KeyID),
		strings.Compare(a.Signature, b.Signature),
	)
}

func fmtRecord(r relay.DirectoryRecord) string {
	return fmt.Sprintf("%s/%s v%d at %s by %q deleted=%v data=%q prev=%q hash=%q key=%q sig=%q",
		r.Kind, r.ID, r.Version, fmtTime(r.At), r.By, r.Deleted, r.Data, r.PrevHash, r.Hash, r.KeyID, r.Signature)
}

// sameRecords fails unless got holds exactly the records of want (in any
// order), each field equal, times in UTC. Identical copies in got are
// allowed when copies is set.
func sameRecords(t *testing.T, what string, got, want []relay.DirectoryRecord, copies bool) {
	t.Helper()
	for _, r := range got {
		if !r.At.IsZero() && r.At.Location() != time.UTC {
			t.Errorf("%s: %s: At is in %s, want UTC", what, fmtRecord(r), r.At.Location())
		}
	}
	g := slices.Clone(got)
	slices.SortFunc(g, compareRecords)
	if copies {
		g = slices.CompactFunc(g, func(a, b relay.DirectoryRecord) bool { return compareRecords(a, b) == 0 })
	}
	w := make([]relay.DirectoryRecord, len(want))
	for i, r := range want {
		w[i] = normalizeRecord(r)
	}
	slices.SortFunc(w, compareRecords)
	if len(g) != len(w) {
		t.Errorf("%s: %d records, want %d", what, len(g), len(w))
	}
	for i := range min(len(g), len(w)) {
		if compareRecords(g[i], w[i]) != 0 || !g[i].At.Equal(w[i].At) {
			t.Errorf("%s: record %d is\n\t%s\nwant\n\t%s", what, i, fmtRecord(g[i]), fmtRecord(w[i]))
		}
	}
}

func testDirectoryRoundTrip(t *testing.T, s relay.DirectoryStore) {
	emp, _ := json.Marshal(relay.Employee{ID: "zhang.san", Name: "张三 (客户经理)", Role: relay.RoleAgent,
		Accounts: []string{"acc"}, Teams: []string{"华东"}, PasswordHash: "$2a$10$abcdefghijklmnopqrstuv"})
	want := []relay.DirectoryRecord{
		// At in China Standard Time, with sub-millisecond noise: stored
		// as the instant, to the millisecond, read back in UTC.
		{Kind: relay.DirEmployee, ID: "zhang.san", Version: 1, At: base.Add(456_789 * time.Nanosecond), By: "admin_李四", Data: string(emp)},
		{Kind: relay.DirTeam, ID: "华东", Version: 7, At: base.Add(time.Hour), By: "root", Deleted: true,
			Data: `{"id":"华东","name":"华东销售部 \"一组\"\n\t'引号' \\ ; --"}`},
		{Kind: relay.DirAccount, ID: "acc", Version: 1<<53 + 1, At: time.Date(2106, 1, 1, 0, 0, 0, 999_000_000, time.UTC), By: "", Data: ""},
		{Kind: relay.DirAccount, ID: "acc2", Version: 2, At: time.Time{}, By: "root", Data: `{"name":"服务号 🚀"}`},
		// Hash, chain link and signature (migration 0008) come back too.
		{Kind: relay.DirEmployee, ID: "signed", Version: 2, At: base, By: "root", Data: `{"id":"signed"}`,
			PrevHash: strings.Repeat("a", 64), Hash: strings.Repeat("b", 64), KeyID: "0123456789abcdef", Signature: strings.Repeat("c", 86) + "=="},
	}
	// And many entries of every kind, several versions each.
	for i, kind := range []string{relay.DirEmployee, relay.DirTeam, relay.DirAccount} {
		for id := range 12 {
			for v := uint64(1); v <= 3; v++ {
				want = append(want, relay.DirectoryRecord{
					Kind: kind, ID: fmt.Sprintf("e%02d", id), Version: v,
					At: base.Add(time.Duration(i*1000+id*10+int(v))*time.Second + time.Duration(v)*time.Millisecond),
					By: "root", Deleted: kind == relay.DirTeam && v == 3,
					Data: fmt.Sprintf(`{"id":"e%02d","name":"员工 %d 第%d版"}`, id, id, v),
				})
			}
		}
	}
	appendDirectory(t, s, want...)
	sameRecords(t, "DirectoryRecords", directoryRecords(t, s), want, false)
}

func testDirectoryCopies(t *testing.T, s relay.DirectoryStore) {
	r1 := relay.DirectoryRecord{Kind: relay.DirTeam, ID: "ops", Version: 1, At: base, By: "root", Data: `{"id":"ops","name":"运维"}`}
	r2 := r1
	r2.Version, r2.At, r2.Data = 2, base.Add(time.Second), `{"id":"ops","name":"运维部"}`
	// Another instance wrote version 2 at the same time, differently: both
	// are kept, and the relay picks one the same way everywhere.
	r2b := r2
	r2b.By, r2b.Data = "root2", `{"id":"ops","name":"运维中心"}`
	appendDirectory(t, s, r1, r2)
	appendDirectory(t, s, r1, r2, r1) // retried inserts
	appendDirectory(t, s, r2b)
	sameRecords(t, "after copies", directoryRecords(t, s), []relay.DirectoryRecord{r1, r2, r2b}, true)

	d := relay.NewDirectory(s, relay.DirectorySeed{}, nil, nil)
	if err := d.Load(testCtx(t)); err != nil {
		t.Fatalf("Load: %v", err)
	}
	team, ok := d.Snapshot().Team("ops")
	if !ok || team.Version != 2 || (team.Name != "运维部" && team.Name != "运维中心") {
		t.Errorf("team ops after copies: %+v (found %v), want version 2", team, ok)
	}
	h, err := d.History(testCtx(t), relay.DirTeam, "ops")
	if err != nil {
		t.Fatalf("History: %v", err)
	}
	h = slices.CompactFunc(h, func(a, b relay.DirectoryRecord) bool { return compareRecords(a, b) == 0 })
	if len(h) != 3 || h[0].Version != 1 || h[1].Version != 2 || h[2].Version != 2 {
		t.Errorf("History of ops: %d records, want versions 1, 2, 2", len(h))
	}
}

func testDirectoryEmpty(t *testing.T, s relay.DirectoryStore) {
	if recs := directoryRecords(t, s); len(recs) != 0 {
		t.Errorf("a new store has %d directory records", len(recs))
	}
	d := relay.NewDirectory(s, directorySeed(), nil, nil)
	if err := d.Load(testCtx(t)); err != nil {
		t.Fatalf("Load of an empty store: %v", err)
	}
	if e, ok := d.Snapshot().Employee("root"); !ok || e.Role != relay.RoleAdmin || e.Version != 0 || !e.Seeded {
		t.Errorf("seeded admin over an empty store: %+v (found %v)", e, ok)
	}
}

// directorySeed is the configuration's directory: two accounts, a team,
// an admin and an agent.
func directorySeed() relay.DirectorySeed {
	return relay.DirectorySeed{
		Accounts: []relay.AccountInfo{{ID: "acc", Name: "Main"}, {ID: "acc2", Name: "Second"}},
		Teams:    []relay.Team{{ID: "sales", Name: "Sales"}},
		Employees: []relay.Employee{
			{ID: "root", Name: "Root", Role: relay.RoleAdmin, PasswordHash: "seed-hash"},
			{ID: "alice", Name: "Alice", Role: relay.RoleAgent, Accounts: []string{"acc"}, Teams: []string{"sales"}},
		},
	}
}

// directoryClock returns a clock for relay.NewDirectory that moves one
// second (and some nanoseconds) on at each reading, in China Standard
// Time, and a function returning what it last read.
func directoryClock() (now func() time.Time, last func() time.Time) {
	var n atomic.Int64
	at := func(i int64) time.Time {
		return base.Add(time.Duration(i)*time.Second + time.Duration(i)*time.Millisecond + 345_678*time.Nanosecond)
	}
	return func() time.Time { return at(n.Add(1)) }, func() time.Time { return at(n.Load()) }
}

// loadedDirectory returns a Directory over s, loaded.
func loadedDirectory(t *testing.T, s relay.DirectoryStore, now func() time.Time) *relay.Directory {
	t.Helper()
	d := relay.NewDirectory(s, directorySeed(), nil, now)
	if err := d.Load(testCtx(t)); err != nil {
		t.Fatalf("Load: %v", err)
	}
	return d
}

func wantErr(t *testing.T, what string, err, want error) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Errorf("%s: error %v, want %v", what, err, want)
	}
}

func must[T any](t *testing.T, what string) func(T, error) T {
	return func(v T, err error) T {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		return v
	}
}

func testDirectoryChanges(t *testing.T, s relay.DirectoryStore) {
	ctx := testCtx(t)
	now, last := directoryClock()
	d1 := loadedDirectory(t, s, now)

	team := must[relay.Team](t, "CreateTeam")(d1.CreateTeam(ctx, "root", relay.Team{ID: "support", Name: "客服部"}, nil))
	if team.Version != 1 || team.Name != "客服部" || team.UpdatedBy != "root" {
		t.Errorf("created team: %+v", team)
	}
	bob := must[relay.Employee](t, "CreateEmployee")(d1.CreateEmployee(ctx, "root", relay.Employee{
		ID: "bob", Name: "王小明", Role: relay.RoleAgent, Accounts: []string{"acc", "acc2"}, Teams: []string{"support", "sales"}}, nil))
	if want := last().UTC().Truncate(time.Millisecond); !bob.UpdatedAt.Equal(want) || bob.UpdatedAt.Location() != time.UTC {
		t.Errorf("created employee's UpdatedAt %s, want %s (UTC, to the millisecond)", fmtTime(bob.UpdatedAt), fmtTime(want))
	}
	if bob.Version != 1 || bob.Name != "王小明" || bob.UpdatedBy != "root" || bob.Seeded ||
		!slices.Equal(bob.Accounts, []string{"acc", "acc2"}) || !slices.Equal(bob.Teams, []string{"support", "sales"}) {
		t.Errorf("created employee: %+v", bob)
	}
	_, err := d1.CreateEmployee(ctx, "root", relay.Employee{ID: "bob", Name: "again", Role: relay.RoleAgent}, nil)
	wantErr(t, "creating bob twice", err, relay.ErrDirectoryInvalid)
	_, err = d1.CreateEmployee(ctx, "root", relay.Employee{ID: "eve", Name: "Eve", Role: relay.RoleAgent, Accounts: []string{"no-such-account"}}, nil)
	wantErr(t, "an employee of an unknown account", err, relay.ErrDirectoryInvalid)

	bob.Name, bob.Role = "王小明 (主管)", relay.RoleSupervisor
	bob = must[relay.Employee](t, "UpdateEmployee")(d1.UpdateEmployee(ctx, "root", bob, 1, nil))
	if bob.Version != 2 || bob.Role != relay.RoleSupervisor || bob.Name != "王小明 (主管)" {
		t.Errorf("updated employee: %+v", bob)
	}
	stale := bob
	stale.Name = "stale"
	_, err = d1.UpdateEmployee(ctx, "root", stale, 1, nil)
	wantErr(t, "updating bob at version 1 when it is at 2", err, relay.ErrDirectoryConflict)
	_, err = d1.UpdateEmployee(ctx, "root", relay.Employee{ID: "nobody", Name: "x", Role: relay.RoleAgent}, 0, nil)
	wantErr(t, "updating an unknown employee", err, relay.ErrDirectoryNotFound)

	// A seeded employee changed: from version 0.
	alice, _ := d1.Snapshot().Employee("alice")
	alice.Name = "Alice 李"
	alice = must[relay.Employee](t, "UpdateEmployee alice")(d1.UpdateEmployee(ctx, "root", alice, 0, nil))
	if alice.Version != 1 || !alice.Seeded || alice.Name != "Alice 李" {
		t.Errorf("updated seeded employee: %+v", alice)
	}
	acct := must[relay.AccountInfo](t, "UpdateAccount")(d1.UpdateAccount(ctx, "root", relay.AccountInfo{ID: "acc2", Name: "第二服务号"}, 0, nil))
	if acct.Version != 1 || acct.Name != "第二服务号" {
		t.Errorf("updated account: %+v", acct)
	}

	// A second instance on the same store sees all of it once loaded.
	d2 := relay.NewDirectory(s, directorySeed(), nil, nil)
	if _, ok := d2.Snapshot().Employee("bob"); ok {
		t.Error("a directory not loaded yet knows bob")
	}
	if err := d2.Load(ctx); err != nil {
		t.Fatalf("Load: %v", err)
	}
	snap := d2.Snapshot()
	if got, ok := snap.Employee("bob"); !ok || got.Version != 2 || got.Name != "王小明 (主管)" || got.Role != relay.RoleSupervisor ||
		!got.UpdatedAt.Equal(bob.UpdatedAt) || got.UpdatedBy != "root" || !slices.Equal(got.Teams, []string{"support", "sales"}) {
		t.Errorf("bob seen by a second instance: %+v (found %v), want %+v", got, ok, bob)
	}
	if got, ok := snap.Team("support"); !ok || got.Version != 1 || got.Name != "客服部" {
		t.Errorf("team seen by a second instance: %+v (found %v)", got, ok)
	}
	if got, _ := snap.Account("acc2"); got.Version != 1 || got.Name != "第二服务号" {
		t.Errorf("account seen by a second instance: %+v", got)
	}
	if got, _ := snap.Employee("alice"); got.Version != 1 || got.Name != "Alice 李" {
		t.Errorf("alice seen by a second instance: %+v", got)
	}
	if m := snap.Members("support"); !slices.Equal(m, []string{"bob"}) {
		t.Errorf("members of support seen by a second instance: %v", m)
	}

	// The second instance changes bob; the first, not reloaded, still
	// has version 2, and its change made to version 2 is a conflict.
	before := time.Now()
	bob2 := bob
	bob2.Teams = []string{"support"}
	bob2 = must[relay.Employee](t, "UpdateEmployee on the second instance")(d2.UpdateEmployee(ctx, "root2", bob2, 2, nil))
	if bob2.Version != 3 || bob2.UpdatedBy != "root2" || bob2.UpdatedAt.Before(before.Truncate(time.Millisecond)) || bob2.UpdatedAt.After(time.Now()) {
		t.Errorf("bob changed on the second instance: %+v", bob2)
	}
	if got, _ := d1.Snapshot().Employee("bob"); got.Version != 2 {
		t.Errorf("the first instance has bob at version %d before reloading, want 2", got.Version)
	}
	_, err = d1.UpdateEmployee(ctx, "root", bob, 2, nil)
	wantErr(t, "the first instance updating bob at version 2 after the second made 3", err, relay.ErrDirectoryConflict)
	if got, _ := d1.Snapshot().Employee("bob"); got.Version != 3 || !slices.Equal(got.Teams, []string{"support"}) {
		t.Errorf("the first instance after a conflict: bob %+v, want version 3 (a change reloads)", got)
	}
	bob3 := must[relay.Employee](t, "UpdateEmployee at version 3")(d1.UpdateEmployee(ctx, "root", bob2, 3, nil))
	if bob3.Version != 4 {
		t.Errorf("bob after updating version 3: version %d, want 4", bob3.Version)
	}

	// Every version is archived, oldest first.
	h := must[[]relay.DirectoryRecord](t, "History")(d2.History(ctx, relay.DirEmployee, "bob"))
	var versions []uint64
	for _, r := range h {
		versions = append(versions, r.Version)
		if r.Kind != relay.DirEmployee || r.ID != "bob" || r.Deleted || r.At.Location() != time.UTC {
			t.Errorf("History of bob: %s", fmtRecord(r))
		}
	}
	if !slices.Equal(versions, []uint64{1, 2, 3, 4}) {
		t.Fatalf("History of bob: versions %v, want 1 2 3 4", versions)
	}
	if h[0].By != "root" || h[2].By != "root2" || !h[1].At.Equal(bob.UpdatedAt) {
		t.Errorf("History of bob: %s / %s / %s", fmtRecord(h[0]), fmtRecord(h[1]), fmtRecord(h[2]))
	}
	var first relay.Employee
	if err := json.Unmarshal([]byte(h[0].Data), &first); err != nil || first.Name != "王小明" || first.Role != relay.RoleAgent {
		t.Errorf("History of bob, version 1: %+v (%v)", first, err)
	}
	if h := must[[]relay.DirectoryRecord](t, "History")(d1.History(ctx, relay.DirEmployee, "nobody")); len(h) != 0 {
		t.Errorf("History of an unknown employee: %d records", len(h))
	}
}

func testDirectoryTeams(t *testing.T, s relay.DirectoryStore) {
	ctx := testCtx(t)
	now, _ := directoryClock()
	d1 := loadedDirectory(t, s, now)
	must[relay.Team](t, "CreateTeam")(d1.CreateTeam(ctx, "root", relay.Team{ID: "vip", Name: "贵宾组"}, nil))
	must[relay.Employee](t, "CreateEmployee")(d1.CreateEmployee(ctx, "root", relay.Employee{ID: "bob", Name: "Bob", Role: relay.RoleAgent, Teams: []string{"vip"}}, nil))

	// A team with members cannot go; neither can the seed's, which alice
	// is in.
	err := d1.DeleteTeam(ctx, "root", "vip", 1, nil)
	wantErr(t, "deleting a team with a member", err, relay.ErrDirectoryInvalid)
	err = d1.DeleteTeam(ctx, "root", "sales", 0, nil)
	wantErr(t, "deleting the seed's team with a member", err, relay.ErrDirectoryInvalid)
	if _, ok := d1.Snapshot().Team("vip"); !ok {
		t.Error("a refused delete deleted the team")
	}

	// Emptied, renamed, then deleted: the version must be the current one.
	must[relay.Employee](t, "UpdateEmployee")(d1.UpdateEmployee(ctx, "root", relay.Employee{ID: "bob", Name: "Bob", Role: relay.RoleAgent}, 1, nil))
	must[relay.Team](t, "UpdateTeam")(d1.UpdateTeam(ctx, "root", relay.Team{ID: "vip", Name: "贵宾服务组"}, 1, nil))
	err = d1.DeleteTeam(ctx, "root", "vip", 1, nil)
	wantErr(t, "deleting at a stale version", err, relay.ErrDirectoryConflict)
	if err := d1.DeleteTeam(ctx, "root", "vip", 2, nil); err != nil {
		t.Fatalf("deleting an empty team: %v", err)
	}
	if _, ok := d1.Snapshot().Team("vip"); ok {
		t.Error("a deleted team is still in the directory")
	}
	d2 := loadedDirectory(t, s, nil)
	if _, ok := d2.Snapshot().Team("vip"); ok {
		t.Error("a deleted team is in a second instance's directory")
	}
	err = d2.DeleteTeam(ctx, "root", "vip", 3, nil)
	wantErr(t, "deleting a deleted team", err, relay.ErrDirectoryNotFound)

	// Made again, on the other instance: the versions continue.
	vip := must[relay.Team](t, "CreateTeam again")(d2.CreateTeam(ctx, "root", relay.Team{ID: "vip", Name: "新贵宾组"}, nil))
	if vip.Version != 4 || vip.Name != "新贵宾组" {
		t.Errorf("team made again: %+v, want version 4", vip)
	}
	if err := d1.Load(ctx); err != nil {
		t.Fatal(err)
	}
	if got, ok := d1.Snapshot().Team("vip"); !ok || got.Version != 4 || got.Name != "新贵宾组" {
		t.Errorf("team made again, seen by the first instance: %+v (found %v)", got, ok)
	}
	h := must[[]relay.DirectoryRecord](t, "History")(d1.History(ctx, relay.DirTeam, "vip"))
	var got []string
	for _, r := range h {
		var team relay.Team
		if err := json.Unmarshal([]byte(r.Data), &team); err != nil {
			t.Errorf("History of vip, version %d: data %q: %v", r.Version, r.Data, err)
		}
		got = append(got, fmt.Sprintf("%d:%v:%s", r.Version, r.Deleted, team.Name))
	}
	if want := []string{"1:false:贵宾组", "2:false:贵宾服务组", "3:true:贵宾服务组", "4:false:新贵宾组"}; !slices.Equal(got, want) {
		t.Errorf("History of vip: %v, want %v", got, want)
	}
}

func testDirectoryLastAdmin(t *testing.T, s relay.DirectoryStore) {
	ctx := testCtx(t)
	d := loadedDirectory(t, s, nil)
	root, _ := d.Snapshot().Employee("root")

	demoted := root
	demoted.Role = relay.RoleSupervisor
	_, err := d.UpdateEmployee(ctx, "root", demoted, 0, nil)
	wantErr(t, "demoting the last admin", err, relay.ErrDirectoryInvalid)
	disabled := root
	disabled.Disabled = true
	_, err = d.UpdateEmployee(ctx, "root", disabled, 0, nil)
	wantErr(t, "disabling the last admin", err, relay.ErrDirectoryInvalid)
	if got, _ := d.Snapshot().Employee("root"); got.Role != relay.RoleAdmin || got.Disabled || got.Version != 0 {
		t.Errorf("the last admin after refused changes: %+v", got)
	}
	if recs := directoryRecords(t, s); len(recs) != 0 {
		t.Errorf("refused changes archived %d records", len(recs))
	}

	// With a second admin, the first may go; then the second is the last.
	must[relay.Employee](t, "CreateEmployee")(d.CreateEmployee(ctx, "root", relay.Employee{ID: "carol", Name: "Carol", Role: relay.RoleAdmin}, nil))
	got := must[relay.Employee](t, "demoting one of two admins")(d.UpdateEmployee(ctx, "carol", demoted, 0, nil))
	if got.Role != relay.RoleSupervisor || got.Version != 1 || got.PasswordHash != "seed-hash" {
		t.Errorf("demoted admin: %+v (the seed's password hash kept)", got)
	}
	d2 := loadedDirectory(t, s, nil)
	carol, _ := d2.Snapshot().Employee("carol")
	carol.Role = relay.RoleAgent
	_, err = d2.UpdateEmployee(ctx, "carol", carol, 1, nil)
	wantErr(t, "demoting the new last admin on a second instance", err, relay.ErrDirectoryInvalid)
}
