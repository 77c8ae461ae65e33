package console

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"golang.org/x/crypto/bcrypt"

	"github.com/wechat-relay/wechat-relay/relay"
)

// The Admin section: admins change the directory (employees, teams,
// accounts) at run time. Each change is checked, written to the audit
// log (a change whose record cannot be written is refused; one that is
// refused for any reason leaves no record), then archived as a new
// version of the entry (relay.Directory). Employees are disabled, never
// deleted: the archive names them. handover.go moves the conversations
// of one who leaves.

// reasonDirectoryChanged closes the sockets of employees whose role,
// teams or standing an admin changed; they reconnect with their new
// rights, or find themselves signed out.
const reasonDirectoryChanged = "directory_changed"

// MinPasswordLen is the shortest password the Admin section sets.
const MinPasswordLen = 10

// maxAdminBody caps an admin request body.
const maxAdminBody = 16 << 10

// routeAdmin adds the directory routes: GET /api/teams for everyone,
// /api/admin/... for admins.
func (s *Server) routeAdmin(authed func(pattern string, serve func(http.ResponseWriter, *http.Request, *relay.Employee))) {
	authed("GET /api/teams", s.serveTeams)
	admin := func(pattern string, serve func(http.ResponseWriter, *http.Request, *relay.Employee)) {
		authed(pattern, func(w http.ResponseWriter, r *http.Request, emp *relay.Employee) {
			if !emp.Role.Configures() {
				writeError(w, http.StatusForbidden, "only admins change the directory; your role is "+string(emp.Role))
				return
			}
			serve(w, r, emp)
		})
	}
	admin("GET /api/admin/directory", s.serveDirectory)
	admin("GET /api/admin/history", s.serveDirectoryHistory)
	admin("POST /api/admin/employees", s.serveCreateEmployee)
	admin("PUT /api/admin/employees/{id}", s.serveUpdateEmployee)
	admin("POST /api/admin/employees/{id}/password", s.serveSetPassword)
	admin("POST /api/admin/employees/{id}/token", s.serveNewToken)
	admin("POST /api/admin/employees/{id}/handover", s.serveHandover)
	admin("POST /api/admin/teams", s.serveCreateTeam)
	admin("PUT /api/admin/teams/{id}", s.serveUpdateTeam)
	admin("DELETE /api/admin/teams/{id}", s.serveDeleteTeam)
	admin("PUT /api/admin/accounts/{id}", s.serveUpdateAccount)
}

// Wire shapes of the Admin section. Credential hashes never leave the
// relay: has_password and has_token say whether there are any.
type adminEmployee struct {
	ID          string     `json:"id"`
	Name        string     `json:"name"`
	Role        Role       `json:"role"`
	Accounts    []string   `json:"accounts"`
	Teams       []string   `json:"teams"`
	Disabled    bool       `json:"disabled"`
	Version     uint64     `json:"version"`
	Seeded      bool       `json:"seeded"`
	HasPassword bool       `json:"has_password"`
	HasToken    bool       `json:"has_token"`
	UpdatedAt   *time.Time `json:"updated_at,omitempty"`
	UpdatedBy   string     `json:"updated_by,omitempty"`
}

type adminTeam struct {
	ID        string     `json:"id"`
	Name      string     `json:"name"`
	Version   uint64     `json:"version"`
	Members   []string   `json:"members"`
	UpdatedAt *time.Time `json:"updated_at,omitempty"`
	UpdatedBy string     `json:"updated_by,omitempty"`
}

type adminAccount struct {
	ID        string     `json:"id"`
	Name      string     `json:"name"`
	Version   uint64     `json:"version"`
	Agents    []string   `json:"agents"`
	UpdatedAt *time.Time `json:"updated_at,omitempty"`
	UpdatedBy string     `json:"updated_by,omitempty"`
}

func changedAt(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	u := t.UTC()
	return &u
}

func toAdminEmployee(e relay.Employee) adminEmployee {
	return adminEmployee{
		ID: e.ID, Name: e.Name, Role: e.Role, Accounts: orEmpty(e.Accounts), Teams: orEmpty(e.Teams),
		Disabled: e.Disabled, Version: e.Version, Seeded: e.Seeded,
		HasPassword: e.PasswordHash != "", HasToken: e.TokenHash != "",
		UpdatedAt: changedAt(e.UpdatedAt), UpdatedBy: e.UpdatedBy,
	}
}

func toAdminTeam(s *relay.DirectorySnapshot, t relay.Team) adminTeam {
	return adminTeam{ID: t.ID, Name: t.Name, Version: t.Version, Members: orEmpty(s.Members(t.ID)),
		UpdatedAt: changedAt(t.UpdatedAt), UpdatedBy: t.UpdatedBy}
}

func toAdminAccount(s *relay.DirectorySnapshot, a relay.AccountInfo) adminAccount {
	return adminAccount{ID: a.ID, Name: a.Name, Version: a.Version, Agents: orEmpty(s.AutoAssign(a.ID)),
		UpdatedAt: changedAt(a.UpdatedAt), UpdatedBy: a.UpdatedBy}
}

// serveDirectory handles GET /api/admin/directory.
func (s *Server) serveDirectory(w http.ResponseWriter, r *http.Request, emp *relay.Employee) {
	snap := s.dir.Snapshot()
	emps := make([]adminEmployee, len(snap.Employees))
	for i, e := range snap.Employees {
		emps[i] = toAdminEmployee(e)
	}
	teams := make([]adminTeam, len(snap.Teams))
	for i, t := range snap.Teams {
		teams[i] = toAdminTeam(snap, t)
	}
	accts := make([]adminAccount, len(snap.Accounts))
	for i, a := range snap.Accounts {
		accts[i] = toAdminAccount(snap, a)
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"employees": emps, "teams": teams, "accounts": accts, "roles": relay.Roles, "writable": s.dir.Writable(),
	})
}

// serveDirectoryHistory handles GET /api/admin/history?kind=&id=: the
// archived versions of an entry, oldest first, without credentials.
func (s *Server) serveDirectoryHistory(w http.ResponseWriter, r *http.Request, emp *relay.Employee) {
	kind, id := r.URL.Query().Get("kind"), r.URL.Query().Get("id")
	switch kind {
	case relay.DirEmployee, relay.DirTeam, relay.DirAccount:
	default:
		writeError(w, http.StatusBadRequest, "kind must be employee, team or account")
		return
	}
	if id == "" {
		writeError(w, http.StatusBadRequest, "id is required")
		return
	}
	recs, err := s.dir.History(r.Context(), kind, id)
	if err != nil {
		s.log.Warn("reading the directory history", "kind", kind, "id", id, "err", err)
		writeError(w, http.StatusServiceUnavailable, "archive unavailable")
		return
	}
	type version struct {
		Version uint64         `json:"version"`
		At      time.Time      `json:"at"`
		By      string         `json:"by"`
		Deleted bool           `json:"deleted"`
		Entry   map[string]any `json:"entry"`
	}
	out := make([]version, 0, len(recs))
	for _, rec := range recs {
		var entry map[string]any
		if err := json.Unmarshal([]byte(rec.Data), &entry); err != nil {
			entry = map[string]any{}
		}
		for _, secret := range []string{"password_hash", "token_hash"} {
			if _, ok := entry[secret]; ok {
				entry[secret] = "(set)"
			}
		}
		out = append(out, version{Version: rec.Version, At: rec.At.UTC(), By: rec.By, Deleted: rec.Deleted, Entry: entry})
	}
	writeJSON(w, http.StatusOK, map[string]any{"versions": out})
}

type employeeBody struct {
	ID       string   `json:"id"`
	Name     string   `json:"name"`
	Role     Role     `json:"role"`
	Accounts []string `json:"accounts"`
	Teams    []string `json:"teams"`
	Disabled bool     `json:"disabled"`
	Password string   `json:"password"`
	Version  uint64   `json:"version"`
}

// serveCreateEmployee handles POST /api/admin/employees.
func (s *Server) serveCreateEmployee(w http.ResponseWriter, r *http.Request, emp *relay.Employee) {
	var b employeeBody
	if !decodeBody(w, r, &b, maxAdminBody, false) {
		return
	}
	e := relay.Employee{ID: b.ID, Name: b.Name, Role: b.Role, Accounts: b.Accounts, Teams: b.Teams, Disabled: b.Disabled}
	if b.Password != "" {
		hash, err := hashPassword(b.Password, s.cfg.PasswordCost)
		if err != nil {
			writeError(w, http.StatusBadRequest, err.Error())
			return
		}
		e.PasswordHash = hash
	}
	detail := fmt.Sprintf("created: name=%q role=%s teams=%v accounts=%v disabled=%t password=%t",
		e.Name, e.Role, orEmpty(e.Teams), orEmpty(e.Accounts), e.Disabled, b.Password != "")
	got, err := s.dir.CreateEmployee(r.Context(), emp.ID, e, s.audited(r, emp, said(detail)))
	if err != nil {
		s.directoryError(w, err)
		return
	}
	writeJSON(w, http.StatusCreated, toAdminEmployee(got))
}

// serveUpdateEmployee handles PUT /api/admin/employees/{id}: name,
// role, accounts, teams, disabled. Credentials have their own routes.
func (s *Server) serveUpdateEmployee(w http.ResponseWriter, r *http.Request, emp *relay.Employee) {
	var b employeeBody
	if !decodeBody(w, r, &b, maxAdminBody, false) {
		return
	}
	id := r.PathValue("id")
	if b.ID != "" && b.ID != id {
		writeError(w, http.StatusBadRequest, "an employee's id cannot change")
		return
	}
	if b.Password != "" {
		writeError(w, http.StatusBadRequest, "set a password with POST /api/admin/employees/{id}/password")
		return
	}
	e := relay.Employee{ID: id, Name: b.Name, Role: b.Role, Accounts: b.Accounts, Teams: b.Teams, Disabled: b.Disabled}
	diff := func(before *relay.DirectorySnapshot, _ relay.DirectoryRecord) string {
		have, _ := before.Employee(id)
		return employeeDiff(have, e)
	}
	got, err := s.dir.UpdateEmployee(r.Context(), emp.ID, e, b.Version, s.audited(r, emp, diff))
	if err != nil {
		s.directoryError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, toAdminEmployee(got))
}

// employeeDiff says what a change does to an employee, for the audit log.
func employeeDiff(have, e relay.Employee) string {
	var parts []string
	add := func(field string, was, now any) {
		if fmt.Sprint(was) != fmt.Sprint(now) {
			parts = append(parts, fmt.Sprintf("%s %v→%v", field, was, now))
		}
	}
	add("name", strconv.Quote(have.Name), strconv.Quote(e.Name))
	add("role", have.Role, e.Role)
	add("teams", orEmpty(have.Teams), orEmpty(e.Teams))
	add("accounts", orEmpty(have.Accounts), orEmpty(e.Accounts))
	add("disabled", have.Disabled, e.Disabled)
	if len(parts) == 0 {
		return "saved unchanged"
	}
	return strings.Join(parts, "; ")
}

// serveSetPassword handles POST /api/admin/employees/{id}/password.
func (s *Server) serveSetPassword(w http.ResponseWriter, r *http.Request, emp *relay.Employee) {
	var b struct {
		Password string `json:"password"`
		Version  uint64 `json:"version"`
	}
	if !decodeBody(w, r, &b, maxAdminBody, false) {
		return
	}
	hash, err := hashPassword(b.Password, s.cfg.PasswordCost)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	s.changeCredential(w, r, emp, "password set", func(e *relay.Employee) { e.PasswordHash = hash }, b.Version, "")
}

// serveNewToken handles POST /api/admin/employees/{id}/token: a new API
// token replaces the old one and is answered once; only its hash is kept.
func (s *Server) serveNewToken(w http.ResponseWriter, r *http.Request, emp *relay.Employee) {
	var b struct {
		Version uint64 `json:"version"`
	}
	if !decodeBody(w, r, &b, maxAdminBody, false) {
		return
	}
	raw := make([]byte, 24)
	rand.Read(raw)
	token := "wr_" + hex.EncodeToString(raw)
	sum := sha256.Sum256([]byte(token))
	s.changeCredential(w, r, emp, "new API token", func(e *relay.Employee) { e.TokenHash = hex.EncodeToString(sum[:]) }, b.Version, token)
}

// changeCredential sets a credential of the employee in the path and
// answers the employee (and token, when one was made).
func (s *Server) changeCredential(w http.ResponseWriter, r *http.Request, emp *relay.Employee, what string, set func(*relay.Employee), version uint64, token string) {
	id := r.PathValue("id")
	have, ok := s.dir.Snapshot().Employee(id)
	if !ok {
		writeError(w, http.StatusNotFound, "no employee "+strconv.Quote(id))
		return
	}
	e := relay.Employee{ID: id, Name: have.Name, Role: have.Role, Accounts: have.Accounts, Teams: have.Teams, Disabled: have.Disabled}
	set(&e)
	got, err := s.dir.UpdateEmployee(r.Context(), emp.ID, e, version, s.audited(r, emp, said(what)))
	if err != nil {
		s.directoryError(w, err)
		return
	}
	if token == "" {
		writeJSON(w, http.StatusOK, toAdminEmployee(got))
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"employee": toAdminEmployee(got), "token": token})
}

// hashPassword checks a new password and returns its bcrypt hash.
func hashPassword(pw string, cost int) (string, error) {
	switch n := utf8.RuneCountInString(pw); {
	case n < MinPasswordLen:
		return "", fmt.Errorf("the password must be at least %d characters", MinPasswordLen)
	case len(pw) > 72:
		return "", errors.New("the password must be at most 72 bytes (bcrypt ignores the rest)")
	}
	hash, err := bcrypt.GenerateFromPassword([]byte(pw), cost)
	if err != nil {
		return "", fmt.Errorf("hashing the password: %w", err)
	}
	return string(hash), nil
}

type teamBody struct {
	ID      string `json:"id"`
	Name    string `json:"name"`
	Version uint64 `json:"version"`
}

// serveCreateTeam handles POST /api/admin/teams.
func (s *Server) serveCreateTeam(w http.ResponseWriter, r *http.Request, emp *relay.Employee) {
	var b teamBody
	if !decodeBody(w, r, &b, maxAdminBody, false) {
		return
	}
	got, err := s.dir.CreateTeam(r.Context(), emp.ID, relay.Team{ID: b.ID, Name: b.Name}, s.audited(r, emp, said(fmt.Sprintf("created: name=%q", b.Name))))
	if err != nil {
		s.directoryError(w, err)
		return
	}
	writeJSON(w, http.StatusCreated, toAdminTeam(s.dir.Snapshot(), got))
}

// serveUpdateTeam handles PUT /api/admin/teams/{id}: a new name.
func (s *Server) serveUpdateTeam(w http.ResponseWriter, r *http.Request, emp *relay.Employee) {
	var b teamBody
	if !decodeBody(w, r, &b, maxAdminBody, false) {
		return
	}
	id := r.PathValue("id")
	if b.ID != "" && b.ID != id {
		writeError(w, http.StatusBadRequest, "a team's id cannot change")
		return
	}
	rename := func(before *relay.DirectorySnapshot, _ relay.DirectoryRecord) string {
		have, _ := before.Team(id)
		return fmt.Sprintf("name %q→%q", have.Name, b.Name)
	}
	got, err := s.dir.UpdateTeam(r.Context(), emp.ID, relay.Team{ID: id, Name: b.Name}, b.Version, s.audited(r, emp, rename))
	if err != nil {
		s.directoryError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, toAdminTeam(s.dir.Snapshot(), got))
}

// serveDeleteTeam handles DELETE /api/admin/teams/{id}?version=N.
func (s *Server) serveDeleteTeam(w http.ResponseWriter, r *http.Request, emp *relay.Employee) {
	id := r.PathValue("id")
	version, err := strconv.ParseUint(r.URL.Query().Get("version"), 10, 64)
	if err != nil {
		writeError(w, http.StatusBadRequest, "version: the version of the team you saw is required")
		return
	}
	if err := s.dir.DeleteTeam(r.Context(), emp.ID, id, version, s.audited(r, emp, said("deleted"))); err != nil {
		s.directoryError(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// serveUpdateAccount handles PUT /api/admin/accounts/{id}: a display name.
func (s *Server) serveUpdateAccount(w http.ResponseWriter, r *http.Request, emp *relay.Employee) {
	var b teamBody
	if !decodeBody(w, r, &b, maxAdminBody, false) {
		return
	}
	id := r.PathValue("id")
	rename := func(before *relay.DirectorySnapshot, _ relay.DirectoryRecord) string {
		have, _ := before.Account(id)
		return fmt.Sprintf("name %q→%q", have.Name, b.Name)
	}
	got, err := s.dir.UpdateAccount(r.Context(), emp.ID, relay.AccountInfo{ID: id, Name: b.Name}, b.Version, s.audited(r, emp, rename))
	if err != nil {
		s.directoryError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, toAdminAccount(s.dir.Snapshot(), got))
}

// audited returns the hook that writes the audit record of an admin's
// directory change through r, once the change is checked and before it
// is archived (relay.AuditChange); describe says what changes.
func (s *Server) audited(r *http.Request, emp *relay.Employee, describe func(*relay.DirectorySnapshot, relay.DirectoryRecord) string) relay.AuditChange {
	return func(before *relay.DirectorySnapshot, rec relay.DirectoryRecord) error {
		target := rec.Kind + ":" + rec.ID
		if err := s.record(r, emp, relay.AuditAdminAction, "", target, describe(before, rec)); err != nil {
			s.log.Error("writing the audit trail; directory change refused", "employee", emp.ID, "target", target, "err", err)
			return err
		}
		return nil
	}
}

// said describes every change the same way.
func said(detail string) func(*relay.DirectorySnapshot, relay.DirectoryRecord) string {
	return func(*relay.DirectorySnapshot, relay.DirectoryRecord) string { return detail }
}

// directoryError answers a failed directory change.
func (s *Server) directoryError(w http.ResponseWriter, err error) {
	switch {
	case errors.Is(err, relay.ErrDirectoryInvalid):
		writeError(w, http.StatusBadRequest, err.Error())
	case errors.Is(err, relay.ErrDirectoryConflict):
		writeError(w, http.StatusConflict, err.Error())
	case errors.Is(err, relay.ErrDirectoryNotFound):
		writeError(w, http.StatusNotFound, err.Error())
	case errors.Is(err, relay.ErrDirectoryReadOnly):
		writeError(w, http.StatusServiceUnavailable, "the directory cannot be changed here: the relay keeps no archive for it")
	case errors.Is(err, relay.ErrDirectoryAudit):
		writeError(w, http.StatusServiceUnavailable, "the audit trail cannot be written right now, so nothing was changed")
	default:
		s.log.Warn("changing the directory", "err", err)
		writeError(w, http.StatusServiceUnavailable, "the archive is unavailable, so nothing was changed: "+err.Error())
	}
}
