package relay

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"sort"
	"time"
	"unicode/utf8"
)

// The directory: who works here, in which role and team, serving which
// Official Accounts. It starts from the configuration (the seed) and is
// changed at run time by admins, without a restart.
//
// Every change is archived as a new version of the entry it changes
// (DirectoryRecord), never by updating a row, so the archive keeps who
// held which role and which rights at any time. The current directory is
// the newest version of each entry, over the seed. Each relay instance
// keeps the current directory in memory (DirectorySnapshot, immutable)
// and reloads it from the archive every few seconds (Directory.Run), so
// a change made on one instance reaches the others without Redis.
//
// Credentials are kept as hashes only: a bcrypt hash of the console
// password, the SHA-256 of an API token. An entry of the seed keeps the
// credentials the configuration gives it until an admin sets new ones.

// Directory entry kinds.
const (
	DirEmployee = "employee"
	DirTeam     = "team"
	DirAccount  = "account"
)

// Errors of directory changes. Each is wrapped with what was wrong.
var (
	ErrDirectoryInvalid  = errors.New("invalid directory change")
	ErrDirectoryConflict = errors.New("directory entry changed meanwhile")
	ErrDirectoryNotFound = errors.New("no such directory entry")
	ErrDirectoryReadOnly = errors.New("the directory cannot be changed here")
	ErrDirectoryAudit    = errors.New("the audit record of the change cannot be written, so nothing was changed")
)

// DirectoryRecord is one archived version of a directory entry.
type DirectoryRecord struct {
	Kind    string // DirEmployee, DirTeam or DirAccount
	ID      string
	Version uint64 // 1, 2, ... per (Kind, ID)
	At      time.Time
	By      string // the admin who made the change
	Deleted bool
	Data    string // the entry as JSON (DirEmployee: Employee, ...)

	// PrevHash is the Hash of the version this one follows ("" for the
	// first); Hash covers every field above (ComputeHash); KeyID and
	// Signature sign Hash with the writer's seal key. All four are empty
	// in records written before directory records were signed
	// (directory_sign.go).
	PrevHash  string
	Hash      string
	KeyID     string
	Signature string
}

// DirectoryStore keeps directory records. Both archives in storage
// implement it.
type DirectoryStore interface {
	// AppendDirectory stores r. Storing an identical record twice is
	// harmless.
	AppendDirectory(ctx context.Context, r DirectoryRecord) error
	// DirectoryRecords returns every record stored, in any order.
	DirectoryRecords(ctx context.Context) ([]DirectoryRecord, error)
}

// Employee is a person who signs in to the console.
type Employee struct {
	ID   string `json:"id"`
	Name string `json:"name"`
	Role Role   `json:"role"`
	// Accounts are the Official Accounts whose new clients may be
	// auto-assigned to this employee (agents only).
	Accounts []string `json:"accounts,omitempty"`
	// Teams the employee belongs to; a supervisor supervises them.
	Teams []string `json:"teams,omitempty"`
	// AllTeams grants a supervisor every conversation, whatever the
	// teams: the explicit grant of what an empty team list meant before.
	// Supervisors only; the other roles' scope does not depend on it.
	AllTeams bool `json:"all_teams,omitempty"`
	// Disabled employees cannot sign in and get no new clients; their
	// conversations stay theirs until reassigned.
	Disabled bool `json:"disabled,omitempty"`
	// PasswordHash is a bcrypt hash; TokenHash the hex SHA-256 of the
	// API token. Either may be empty.
	PasswordHash string `json:"password_hash,omitempty"`
	TokenHash    string `json:"token_hash,omitempty"`

	// Set by the directory, not stored in records.
	Version   uint64    `json:"-"` // 0: only in the configuration
	UpdatedAt time.Time `json:"-"`
	UpdatedBy string    `json:"-"`
	Seeded    bool      `json:"-"` // defined in the configuration
}

// Team is a group of employees; its supervisors see its members'
// conversations.
type Team struct {
	ID   string `json:"id"`
	Name string `json:"name"`

	// Deleting: the team's newest version deletes it, but an employee
	// still names it (their change and the deletion crossed, on two
	// instances), so it stays until nobody does (build).
	Deleting  bool      `json:"-"`
	Version   uint64    `json:"-"`
	UpdatedAt time.Time `json:"-"`
	UpdatedBy string    `json:"-"`
}

// AccountInfo is what the directory says of an Official Account: its
// display name. Accounts themselves, and their secrets, come from the
// configuration.
type AccountInfo struct {
	ID   string `json:"id"`
	Name string `json:"name"`

	Version   uint64    `json:"-"`
	UpdatedAt time.Time `json:"-"`
	UpdatedBy string    `json:"-"`
}

// DirectorySeed is the directory the configuration gives.
type DirectorySeed struct {
	Employees []Employee
	Teams     []Team
	Accounts  []AccountInfo // every account served; the directory adds none
}

// DirectorySnapshot is the directory at one moment. It is never changed:
// a change makes a new snapshot.
type DirectorySnapshot struct {
	Employees []Employee // by ID
	Teams     []Team     // by ID
	Accounts  []AccountInfo
	emp       map[string]int
	team      map[string]int
	acct      map[string]int
}

func newSnapshot(emps []Employee, teams []Team, accts []AccountInfo) *DirectorySnapshot {
	s := &DirectorySnapshot{Employees: emps, Teams: teams, Accounts: accts,
		emp: map[string]int{}, team: map[string]int{}, acct: map[string]int{}}
	sort.Slice(s.Employees, func(i, j int) bool { return s.Employees[i].ID < s.Employees[j].ID })
	sort.Slice(s.Teams, func(i, j int) bool { return s.Teams[i].ID < s.Teams[j].ID })
	for i, e := range s.Employees {
		s.emp[e.ID] = i
	}
	for i, t := range s.Teams {
		s.team[t.ID] = i
	}
	for i, a := range s.Accounts {
		s.acct[a.ID] = i
	}
	return s
}

// Employee returns the employee with the given id.
func (s *DirectorySnapshot) Employee(id string) (Employee, bool) {
	i, ok := s.emp[id]
	if !ok {
		return Employee{}, false
	}
	return s.Employees[i], true
}

// Team returns the team with the given id.
func (s *DirectorySnapshot) Team(id string) (Team, bool) {
	i, ok := s.team[id]
	if !ok {
		return Team{}, false
	}
	return s.Teams[i], true
}

// Account returns the account with the given id.
func (s *DirectorySnapshot) Account(id string) (AccountInfo, bool) {
	i, ok := s.acct[id]
	if !ok {
		return AccountInfo{}, false
	}
	return s.Accounts[i], true
}

// Members returns the ids of the employees in team, disabled ones too.
func (s *DirectorySnapshot) Members(team string) []string {
	var out []string
	for _, e := range s.Employees {
		if slices.Contains(e.Teams, team) {
			out = append(out, e.ID)
		}
	}
	return out
}

// Sees reports whether the employee viewer may read the conversations
// held by owner ("" for nobody, or nobody known): their own; every one
// for compliance, admins and supervisors with the all-teams grant; for
// any other supervisor, those of the members of their teams, and so
// nothing when they are in no team. Scope is granted, never assumed: a
// conversation nobody is known to hold is not a team's.
func (s *DirectorySnapshot) Sees(viewer Employee, owner string) bool {
	switch {
	case owner != "" && owner == viewer.ID:
		return true
	case !viewer.Role.SeesAll():
		return false
	case !viewer.TeamScoped():
		return true
	case owner == "":
		return false
	}
	o, ok := s.Employee(owner)
	if !ok {
		return false
	}
	for _, t := range viewer.Teams {
		if slices.Contains(o.Teams, t) {
			return true
		}
	}
	return false
}

// TeamScoped reports whether e is a supervisor limited to their teams'
// members: every supervisor without the all-teams grant.
func (e Employee) TeamScoped() bool { return e.Role == RoleSupervisor && !e.AllTeams }

// Scope returns the employees whose conversations viewer may read, and
// whether that is everyone (nil, true). Conversations nobody is known to
// hold are in it only when it is everyone.
func (s *DirectorySnapshot) Scope(viewer Employee) (ids []string, all bool) {
	if viewer.Role.SeesAll() && !viewer.TeamScoped() {
		return nil, true
	}
	ids = []string{viewer.ID}
	for _, e := range s.Employees {
		if e.ID != viewer.ID && viewer.Role.SeesAll() && s.Sees(viewer, e.ID) {
			ids = append(ids, e.ID)
		}
	}
	return ids, false
}

// AutoAssign returns the enabled agents new clients of account may be
// assigned to, by id.
func (s *DirectorySnapshot) AutoAssign(account string) []string {
	var out []string
	for _, e := range s.Employees {
		if e.Role == RoleAgent && !e.Disabled && slices.Contains(e.Accounts, account) {
			out = append(out, e.ID)
		}
	}
	return out
}

// idPattern is what an employee or team id may be: it goes into QR
// scene strings (64 characters at most, with the "emp:" prefix) and URLs.
var idPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,59}$`)

// MaxDirectoryName caps a display name, in characters.
const MaxDirectoryName = 100

// ValidDirectoryID reports whether id may name a new employee or team.
func ValidDirectoryID(id string) bool { return idPattern.MatchString(id) }

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrDirectoryInvalid, fmt.Sprintf(format, args...))
}

func checkName(name string) error {
	if !utf8.ValidString(name) || utf8.RuneCountInString(name) > MaxDirectoryName {
		return invalid("name must be valid UTF-8 of at most %d characters", MaxDirectoryName)
	}
	return nil
}

// check reports what is wrong with e in the directory s.
func (s *DirectorySnapshot) checkEmployee(e Employee) error {
	if err := checkName(e.Name); err != nil {
		return err
	}
	if !e.Role.Valid() {
		return invalid("role %q is not one of agent, supervisor, compliance, admin", e.Role)
	}
	for _, a := range e.Accounts {
		if _, ok := s.Account(a); !ok {
			return invalid("no account %q", a)
		}
	}
	for _, t := range e.Teams {
		if _, ok := s.Team(t); !ok {
			return invalid("no team %q", t)
		}
	}
	if e.AllTeams && e.Role != RoleSupervisor {
		return invalid("all_teams is a supervisor's grant; a %s's scope does not depend on it", e.Role)
	}
	return nil
}

// enabledAdmins counts the admins who can sign in.
func (s *DirectorySnapshot) enabledAdmins() int {
	n := 0
	for _, e := range s.Employees {
		if e.Role == RoleAdmin && !e.Disabled {
			n++
		}
	}
	return n
}

// recordKey names an entry.
type recordKey struct{ kind, id string }

// newer reports whether a is the newer of two versions of an entry. Two
// instances may write the same version at once; the order is total, so
// every instance picks the same one.
func newer(a, b DirectoryRecord) bool {
	if a.Version != b.Version {
		return a.Version > b.Version
	}
	if !a.At.Equal(b.At) {
		return a.At.After(b.At)
	}
	if a.By != b.By {
		return a.By > b.By
	}
	return a.Data > b.Data
}

// latest folds records into the newest version of each entry.
func latest(recs []DirectoryRecord) map[recordKey]DirectoryRecord {
	out := map[recordKey]DirectoryRecord{}
	for _, r := range recs {
		k := recordKey{r.Kind, r.ID}
		if have, ok := out[k]; !ok || newer(r, have) {
			out[k] = r
		}
	}
	return out
}

// build makes the snapshot of seed overlaid with the newest records.
// Records that cannot be decoded are skipped and reported through bad.
//
// A team is deleted only while no employee names it. An admin deletes
// a team once it has no members, but records are appended without a
// transaction: on another instance an admin may put someone in the team
// between that check and the deletion's write. Such a deletion does not
// take while the membership stands (Team.Deleting), so no instance
// drops the membership silently, nor gives it back to a team made again
// under the same id later.
func build(seed DirectorySeed, recs []DirectoryRecord, bad func(DirectoryRecord, error)) *DirectorySnapshot {
	top := latest(recs)
	emps := map[string]Employee{}
	for _, e := range seed.Employees {
		e.Seeded = true
		emps[e.ID] = e
	}
	teams := map[string]Team{}
	for _, t := range seed.Teams {
		teams[t.ID] = t
	}
	accts := make([]AccountInfo, len(seed.Accounts))
	acctAt := map[string]int{}
	for i, a := range seed.Accounts {
		accts[i] = a
		acctAt[a.ID] = i
	}
	// Employees first: whether a team's deletion takes depends on them.
	for k, r := range top {
		if k.kind != DirEmployee {
			continue
		}
		var e Employee
		if err := json.Unmarshal([]byte(r.Data), &e); err != nil {
			bad(r, err)
			continue
		}
		base, seeded := emps[k.id]
		e.ID, e.Version, e.UpdatedAt, e.UpdatedBy, e.Seeded = k.id, r.Version, r.At, r.By, seeded
		if e.PasswordHash == "" {
			e.PasswordHash = base.PasswordHash
		}
		if e.TokenHash == "" {
			e.TokenHash = base.TokenHash
		}
		emps[k.id] = e
	}
	named := map[string]bool{}
	for _, e := range emps {
		for _, t := range e.Teams {
			named[t] = true
		}
	}
	live := liveTeams(recs)
	for k, r := range top {
		switch k.kind {
		case DirTeam:
			if r.Deleted && !named[k.id] {
				delete(teams, k.id)
				continue
			}
			t, ok := teams[k.id] // the seed's, if it is one
			data, stored := r, true
			if r.Deleted {
				// Named still: the team as it was before the deletion.
				data, stored = live[k.id]
			}
			if stored {
				t = Team{}
				if err := json.Unmarshal([]byte(data.Data), &t); err != nil {
					bad(data, err)
					continue
				}
			} else if !ok {
				continue // neither stored nor seeded undeleted
			}
			t.ID, t.Version, t.UpdatedAt, t.UpdatedBy, t.Deleting = k.id, r.Version, r.At, r.By, r.Deleted
			teams[k.id] = t
		case DirAccount:
			i, ok := acctAt[k.id]
			if !ok {
				continue // no longer configured
			}
			var a AccountInfo
			if err := json.Unmarshal([]byte(r.Data), &a); err != nil {
				bad(r, err)
				continue
			}
			a.ID, a.Version, a.UpdatedAt, a.UpdatedBy = k.id, r.Version, r.At, r.By
			accts[i] = a
		}
	}
	es := make([]Employee, 0, len(emps))
	for _, e := range emps {
		// No membership of a team that does not exist (one a broken
		// record or the configuration names).
		e.Teams = slices.DeleteFunc(slices.Clone(e.Teams), func(t string) bool { _, ok := teams[t]; return !ok })
		es = append(es, e)
	}
	ts := make([]Team, 0, len(teams))
	for _, t := range teams {
		ts = append(ts, t)
	}
	return newSnapshot(es, ts, accts)
}

// liveTeams returns the newest record of each team that does not delete
// it.
func liveTeams(recs []DirectoryRecord) map[string]DirectoryRecord {
	out := map[string]DirectoryRecord{}
	for _, r := range recs {
		if r.Kind != DirTeam || r.Deleted {
			continue
		}
		if have, ok := out[r.ID]; !ok || newer(r, have) {
			out[r.ID] = r
		}
	}
	return out
}
