package relay

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Directory holds the current directory and makes changes to it. Safe
// for concurrent use.
type Directory struct {
	store DirectoryStore // nil: read-only, the seed only
	seed  DirectorySeed
	log   *slog.Logger
	now   func() time.Time

	mu       sync.Mutex // serialises changes and loads
	snap     atomic.Pointer[DirectorySnapshot]
	loaded   atomic.Bool // the store has been read at least once
	watchers []func(old, cur *DirectorySnapshot)

	// Metrics (Instrument); they count whether or not anyone registered
	// them.
	loadedAt       prometheus.Gauge
	reloadFailures prometheus.Counter
	changes        *prometheus.CounterVec
	refused        *prometheus.CounterVec

	// What records are checked with (directory_trust.go); d.mu guards
	// them. keys is nil when nothing is checked.
	trust DirectoryTrust
	keys  map[string]ed25519.PublicKey
	ts    trustState
}

// NewDirectory returns the directory of seed, changed by the records in
// store. store may be nil: the seed is then the directory, and changes
// fail with ErrDirectoryReadOnly. now may be nil (time.Now). Call Load
// before use when store is set.
func NewDirectory(store DirectoryStore, seed DirectorySeed, log *slog.Logger, now func() time.Time) *Directory {
	if now == nil {
		now = time.Now
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	d := &Directory{store: store, seed: seed, log: log, now: now,
		loadedAt: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "wechat_relay_directory_loaded_timestamp_seconds",
			Help: "When this instance last read the directory from the archive (Unix seconds); it reloads every console.directory_refresh.",
		}),
		reloadFailures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "wechat_relay_directory_reload_failures_total",
			Help: "Failed reads of the directory from the archive; the instance keeps the directory it had.",
		}),
		changes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "wechat_relay_directory_changes_total",
			Help: "Directory changes archived by this instance, by kind (employee, team, account).",
		}, []string{"kind"}),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "wechat_relay_directory_refused_records_total",
			Help: "Directory records this instance refused to load (unsigned, badly signed, off their chain, or without their admin audit record), by reason; each is also logged and alerted.",
		}, []string{"reason"}),
		ts: newTrustState(),
	}
	d.snap.Store(build(seed, nil, nil))
	return d
}

// Instrument registers the directory's metrics with reg.
func (d *Directory) Instrument(reg prometheus.Registerer) {
	reg.MustRegister(d.loadedAt, d.reloadFailures, d.changes, d.refused)
}

// Snapshot returns the current directory.
func (d *Directory) Snapshot() *DirectorySnapshot { return d.snap.Load() }

// TeamsOf returns the teams employee is in now (Lexicon.TeamsOf).
func (d *Directory) TeamsOf(employee string) []string {
	e, _ := d.Snapshot().Employee(employee)
	return e.Teams
}

// Loaded reports whether the directory is known: read from the store at
// least once (always, without a store). Until then the seed alone would
// let in someone an admin has disabled, so callers refuse sign-ins.
func (d *Directory) Loaded() bool { return d.store == nil || d.loaded.Load() }

// Writable reports whether changes can be made.
func (d *Directory) Writable() bool { return d.store != nil }

// OnChange registers f, called with the previous and the new snapshot
// each time the directory changes (after a change here, or a reload that
// found one made elsewhere). f must not block.
func (d *Directory) OnChange(f func(old, cur *DirectorySnapshot)) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.watchers = append(d.watchers, f)
}

// Load reads the records from the store and makes them current.
func (d *Directory) Load(ctx context.Context) error {
	if d.store == nil {
		return nil
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	_, err := d.reload(ctx)
	return err
}

// reload reads every record and installs the snapshot they make. d.mu
// is held.
func (d *Directory) reload(ctx context.Context) (*DirectorySnapshot, error) {
	recs, err := d.store.DirectoryRecords(ctx)
	if err != nil {
		d.reloadFailures.Inc()
		return nil, fmt.Errorf("reading the directory from the archive: %w", err)
	}
	recs, err = d.screen(ctx, recs)
	if err != nil {
		d.reloadFailures.Inc()
		return nil, err
	}
	d.loadedAt.SetToCurrentTime() // wall time, for alerting; d.now dates records
	cur := build(d.seed, recs, func(r DirectoryRecord, err error) {
		d.log.Error("directory record cannot be read; skipped", "kind", r.Kind, "id", r.ID, "version", r.Version, "err", err)
	})
	d.install(cur)
	d.loaded.Store(true)
	return cur, nil
}

// install makes cur current and tells the watchers, when it differs
// from the current one: an unchanged reload keeps the snapshot, so what
// callers derived from it (the console's sign-in tables) stays valid.
// d.mu is held.
func (d *Directory) install(cur *DirectorySnapshot) {
	old := d.snap.Load()
	if sameDirectory(old, cur) {
		return
	}
	d.snap.Store(cur)
	for _, f := range d.watchers {
		f(old, cur)
	}
}

// sameDirectory reports whether two snapshots hold the same versions.
func sameDirectory(a, b *DirectorySnapshot) bool {
	if len(a.Employees) != len(b.Employees) || len(a.Teams) != len(b.Teams) || len(a.Accounts) != len(b.Accounts) {
		return false
	}
	for i := range a.Employees {
		if a.Employees[i].ID != b.Employees[i].ID || a.Employees[i].Version != b.Employees[i].Version {
			return false
		}
	}
	for i := range a.Teams {
		if a.Teams[i].ID != b.Teams[i].ID || a.Teams[i].Version != b.Teams[i].Version {
			return false
		}
	}
	for i := range a.Accounts {
		if a.Accounts[i].Version != b.Accounts[i].Version {
			return false
		}
	}
	return true
}

// Run reloads the directory every interval (5s when <= 0) until ctx
// ends, so changes made by other instances arrive. A failed reload is
// logged and the current directory kept.
func (d *Directory) Run(ctx context.Context, every time.Duration) error {
	const reloadTimeout = 30 * time.Second
	if d.store == nil {
		return nil
	}
	if every <= 0 {
		every = 5 * time.Second
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		// A reload may take longer than the interval under load: bounding
		// it by the interval (100ms in tests) made every reload fail then.
		rctx, cancel := context.WithTimeout(ctx, max(every, reloadTimeout))
		if err := d.Load(rctx); err != nil && ctx.Err() == nil {
			d.log.Warn("reloading the directory; keeping the current one", "err", err)
		}
		cancel()
	}
}

// CreateEmployee adds an employee as admin by, and returns it as
// stored.
func (d *Directory) CreateEmployee(ctx context.Context, by string, e Employee, audit AuditChange) (Employee, error) {
	return d.saveEmployee(ctx, by, e, 0, true, audit)
}

// UpdateEmployee changes an employee as admin by; expect is the version
// the admin saw (0 for one only the configuration defines yet). Empty
// credential hashes leave the employee's credentials as they are.
func (d *Directory) UpdateEmployee(ctx context.Context, by string, e Employee, expect uint64, audit AuditChange) (Employee, error) {
	return d.saveEmployee(ctx, by, e, expect, false, audit)
}

func (d *Directory) saveEmployee(ctx context.Context, by string, e Employee, expect uint64, create bool, audit AuditChange) (Employee, error) {
	err := d.change(ctx, audit, func(s *DirectorySnapshot) (DirectoryRecord, error) {
		have, exists := s.Employee(e.ID)
		switch {
		case create && exists:
			return DirectoryRecord{}, invalid("employee %q exists already", e.ID)
		case create && !ValidDirectoryID(e.ID):
			return DirectoryRecord{}, invalid("id %q: 1-60 letters, digits, '.', '_' or '-', starting with a letter or digit", e.ID)
		case !create && !exists:
			return DirectoryRecord{}, fmt.Errorf("%w: employee %q", ErrDirectoryNotFound, e.ID)
		case have.Version != expect:
			return DirectoryRecord{}, conflict(DirEmployee, e.ID, have.Version, expect)
		}
		if err := s.checkEmployee(e); err != nil {
			return DirectoryRecord{}, err
		}
		// Hashes not replaced stay as an earlier record set them; those
		// the seed gives are filled in by build, so a new secret in the
		// environment keeps taking effect until an admin sets one.
		seed := d.seedEmployee(e.ID)
		if e.PasswordHash == "" && have.PasswordHash != seed.PasswordHash {
			e.PasswordHash = have.PasswordHash
		}
		if e.TokenHash == "" && have.TokenHash != seed.TokenHash {
			e.TokenHash = have.TokenHash
		}
		if have.Role == RoleAdmin && !have.Disabled && (e.Role != RoleAdmin || e.Disabled) && s.enabledAdmins() == 1 {
			return DirectoryRecord{}, invalid("%s is the last enabled admin: make another admin first", e.ID)
		}
		return d.record(DirEmployee, e.ID, have.Version+1, by, false, e)
	})
	if err != nil {
		return Employee{}, err
	}
	got, _ := d.Snapshot().Employee(e.ID)
	return got, nil
}

func (d *Directory) seedEmployee(id string) Employee {
	for _, e := range d.seed.Employees {
		if e.ID == id {
			return e
		}
	}
	return Employee{}
}

// CreateTeam adds a team.
func (d *Directory) CreateTeam(ctx context.Context, by string, t Team, audit AuditChange) (Team, error) {
	return d.saveTeam(ctx, by, t, 0, true, audit)
}

// UpdateTeam renames a team; expect is the version the admin saw.
func (d *Directory) UpdateTeam(ctx context.Context, by string, t Team, expect uint64, audit AuditChange) (Team, error) {
	return d.saveTeam(ctx, by, t, expect, false, audit)
}

func (d *Directory) saveTeam(ctx context.Context, by string, t Team, expect uint64, create bool, audit AuditChange) (Team, error) {
	err := d.change(ctx, audit, func(s *DirectorySnapshot) (DirectoryRecord, error) {
		have, exists := s.Team(t.ID)
		switch {
		case create && exists:
			return DirectoryRecord{}, invalid("team %q exists already", t.ID)
		case create && !ValidDirectoryID(t.ID):
			return DirectoryRecord{}, invalid("id %q: 1-60 letters, digits, '.', '_' or '-', starting with a letter or digit", t.ID)
		case !create && !exists:
			return DirectoryRecord{}, fmt.Errorf("%w: team %q", ErrDirectoryNotFound, t.ID)
		case have.Version != expect:
			return DirectoryRecord{}, conflict(DirTeam, t.ID, have.Version, expect)
		}
		if err := checkName(t.Name); err != nil {
			return DirectoryRecord{}, err
		}
		version, err := d.nextVersion(ctx, DirTeam, t.ID)
		if err != nil {
			return DirectoryRecord{}, err
		}
		return d.record(DirTeam, t.ID, version, by, false, t)
	})
	if err != nil {
		return Team{}, err
	}
	got, _ := d.Snapshot().Team(t.ID)
	return got, nil
}

// DeleteTeam deletes a team that has no members.
//
// Its check and its write are not one transaction: an admin on another
// instance may put someone in the team in between. The directory then
// keeps the team (build), and DeleteTeam, reading the directory back,
// archives the team again, undeleted, so that the deletion does not take
// later when that member leaves, and answers ErrDirectoryConflict. A
// membership written after that read back keeps the team the same way
// until nobody names it; the deletion then takes.
func (d *Directory) DeleteTeam(ctx context.Context, by, id string, expect uint64, audit AuditChange) error {
	if err := d.deleteTeam(ctx, by, id, expect, audit); err != nil {
		return err
	}
	have, ok := d.Snapshot().Team(id)
	if !ok || !have.Deleting {
		return nil
	}
	members := d.Snapshot().Members(id)
	err := d.change(ctx, audit, func(s *DirectorySnapshot) (DirectoryRecord, error) {
		have, ok := s.Team(id)
		if !ok || !have.Deleting {
			return DirectoryRecord{}, errNoChange
		}
		version, err := d.nextVersion(ctx, DirTeam, id)
		if err != nil {
			return DirectoryRecord{}, err
		}
		return d.record(DirTeam, id, version, by, false, Team{ID: id, Name: have.Name})
	})
	if err != nil && !errors.Is(err, errNoChange) {
		return fmt.Errorf("team %q got members meanwhile (%s), so its deletion did not take, and keeping it failed: %w",
			id, strings.Join(members, ", "), err)
	}
	return fmt.Errorf("%w: team %q got members meanwhile (%s), so it was not deleted; move them first",
		ErrDirectoryConflict, id, strings.Join(members, ", "))
}

// errNoChange tells change that there is nothing to archive.
var errNoChange = errors.New("nothing to change")

func (d *Directory) deleteTeam(ctx context.Context, by, id string, expect uint64, audit AuditChange) error {
	return d.change(ctx, audit, func(s *DirectorySnapshot) (DirectoryRecord, error) {
		have, ok := s.Team(id)
		switch {
		case !ok:
			return DirectoryRecord{}, fmt.Errorf("%w: team %q", ErrDirectoryNotFound, id)
		case have.Version != expect:
			return DirectoryRecord{}, conflict(DirTeam, id, have.Version, expect)
		}
		if m := s.Members(id); len(m) > 0 {
			return DirectoryRecord{}, invalid("team %q still has %d members (%s): move them first", id, len(m), strings.Join(m, ", "))
		}
		version, err := d.nextVersion(ctx, DirTeam, id)
		if err != nil {
			return DirectoryRecord{}, err
		}
		return d.record(DirTeam, id, version, by, true, have)
	})
}

// UpdateAccount changes what the directory says of a configured account.
func (d *Directory) UpdateAccount(ctx context.Context, by string, a AccountInfo, expect uint64, audit AuditChange) (AccountInfo, error) {
	err := d.change(ctx, audit, func(s *DirectorySnapshot) (DirectoryRecord, error) {
		have, ok := s.Account(a.ID)
		switch {
		case !ok:
			return DirectoryRecord{}, fmt.Errorf("%w: account %q (accounts are added in the configuration, with their secrets)", ErrDirectoryNotFound, a.ID)
		case have.Version != expect:
			return DirectoryRecord{}, conflict(DirAccount, a.ID, have.Version, expect)
		}
		if err := checkName(a.Name); err != nil {
			return DirectoryRecord{}, err
		}
		return d.record(DirAccount, a.ID, have.Version+1, by, false, a)
	})
	if err != nil {
		return AccountInfo{}, err
	}
	got, _ := d.Snapshot().Account(a.ID)
	return got, nil
}

// nextVersion is the version after the newest archived for an entry:
// a team deleted and made again continues its numbering, so versions
// stay unique per id. d.mu is held.
func (d *Directory) nextVersion(ctx context.Context, kind, id string) (uint64, error) {
	recs, err := d.store.DirectoryRecords(ctx)
	if err != nil {
		return 0, fmt.Errorf("reading the directory from the archive: %w", err)
	}
	var top uint64
	for _, r := range recs {
		if r.Kind == kind && r.ID == id {
			top = max(top, r.Version)
		}
	}
	return top + 1, nil
}

// History returns the archived versions of an entry, oldest first.
func (d *Directory) History(ctx context.Context, kind, id string) ([]DirectoryRecord, error) {
	if d.store == nil {
		return nil, nil
	}
	recs, err := d.store.DirectoryRecords(ctx)
	if err != nil {
		return nil, fmt.Errorf("reading the directory history: %w", err)
	}
	out := slices.DeleteFunc(recs, func(r DirectoryRecord) bool { return r.Kind != kind || r.ID != id })
	slices.SortFunc(out, func(a, b DirectoryRecord) int {
		if newer(a, b) {
			return 1
		}
		return -1
	})
	return out, nil
}

func conflict(kind, id string, have, expect uint64) error {
	return fmt.Errorf("%w: %s %q is at version %d, the change was made to version %d; reload and try again",
		ErrDirectoryConflict, kind, id, have, expect)
}

func (d *Directory) record(kind, id string, version uint64, by string, deleted bool, entry any) (DirectoryRecord, error) {
	data, err := json.Marshal(entry)
	if err != nil {
		return DirectoryRecord{}, fmt.Errorf("encoding the %s %q: %w", kind, id, err)
	}
	r := DirectoryRecord{Kind: kind, ID: id, Version: version, At: d.now().UTC().Truncate(time.Millisecond),
		By: by, Deleted: deleted, Data: string(data), PrevHash: d.ts.heads[recordKey{kind, id}]}
	r.Hash = r.ComputeHash()
	return d.trust.Signer.SignDirectory(r), nil
}

// AuditChange writes the audit record of a directory change, called once
// the change has been checked and before it is archived, with the
// directory as it stands and the record of the change: an error refuses
// the change, and a change that is refused or conflicts leaves no audit
// record. nil: no audit record.
type AuditChange func(before *DirectorySnapshot, rec DirectoryRecord) error

// change makes one change: it reloads the directory, so the change is
// checked against what every instance has archived, asks mk for the
// record, has it audited, archives it and installs the new directory.
func (d *Directory) change(ctx context.Context, audit AuditChange, mk func(*DirectorySnapshot) (DirectoryRecord, error)) error {
	if d.store == nil {
		return fmt.Errorf("%w: no archive to keep changes in", ErrDirectoryReadOnly)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.keys != nil && (d.trust.Signer == nil || audit == nil) {
		// Its records would be refused on load, here and everywhere.
		return fmt.Errorf("%w: directory records are checked, and this instance has no seal key to sign them or no audit log", ErrDirectoryReadOnly)
	}
	s, err := d.reload(ctx)
	if err != nil {
		return err
	}
	rec, err := mk(s)
	if err != nil {
		return err
	}
	if audit != nil {
		if err := audit(s, rec); err != nil {
			return fmt.Errorf("%w: %w", ErrDirectoryAudit, err)
		}
		d.ts.audited[rec.Hash] = true // its audit record is archived
	}
	if err := d.store.AppendDirectory(ctx, rec); err != nil {
		return fmt.Errorf("archiving the change of %s %q: %w", rec.Kind, rec.ID, err)
	}
	d.changes.WithLabelValues(rec.Kind).Inc()
	if _, err := d.reload(ctx); err != nil {
		return fmt.Errorf("the change of %s %q is archived, but reading the directory back failed: %w", rec.Kind, rec.ID, err)
	}
	return nil
}
