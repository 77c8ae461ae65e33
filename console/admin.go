package console

import (
	"encoding/json"
	"errors"
	"net/http"
	"time"

	"github.com/wechat-relay/wechat-relay/relay"
)

// The Admin section: admins change the directory (employees, teams,
// accounts) at run time. Each change is checked, written to the audit
// log (a change whose record cannot be written is refused; one that is
// refused for any reason leaves no record), then archived as a new
// version of the entry (relay.Directory). Employees are disabled, never
// deleted: the archive names them. This file has the routes, the reads
// and what every change shares; admin_employees.go and admin_teams.go the
// changes, handover.go the move of the conversations of one who leaves.

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
	AllTeams    bool       `json:"all_teams"`
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
	Deleting  bool       `json:"deleting,omitempty"` // deleted, but kept while someone is in it
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
		AllTeams: e.AllTeams, Disabled: e.Disabled, Version: e.Version, Seeded: e.Seeded,
		HasPassword: e.PasswordHash != "", HasToken: e.TokenHash != "",
		UpdatedAt: changedAt(e.UpdatedAt), UpdatedBy: e.UpdatedBy,
	}
}

func toAdminTeam(s *relay.DirectorySnapshot, t relay.Team) adminTeam {
	return adminTeam{ID: t.ID, Name: t.Name, Version: t.Version, Members: orEmpty(s.Members(t.ID)), Deleting: t.Deleting,
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

// audited returns the hook that writes the audit record of an admin's
// directory change through r, once the change is checked and before it
// is archived (relay.AuditChange); describe says what changes.
func (s *Server) audited(r *http.Request, emp *relay.Employee, describe func(*relay.DirectorySnapshot, relay.DirectoryRecord) string) relay.AuditChange {
	return func(before *relay.DirectorySnapshot, rec relay.DirectoryRecord) error {
		// The detail ends with the version's hash: the directory loads a
		// signed version only once it finds this (signed) record.
		target := relay.DirectoryAuditTarget(rec.Kind, rec.ID)
		if err := s.record(r, emp, relay.AuditAdminAction, "", target, relay.DirectoryAuditDetail(describe(before, rec), rec)); err != nil {
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
