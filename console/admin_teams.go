package console

import (
	"fmt"
	"net/http"
	"strconv"

	"github.com/wechat-relay/wechat-relay/relay"
)

// The Admin section's changes to teams and accounts (admin.go has the
// routes and what every change shares).

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
	// A deletion that crossed a change putting someone in the team is
	// undone with a second version, audited as such (relay.Directory.DeleteTeam).
	describe := func(_ *relay.DirectorySnapshot, rec relay.DirectoryRecord) string {
		if rec.Deleted {
			return "deleted"
		}
		return "kept: someone was put in it while it was being deleted"
	}
	if err := s.dir.DeleteTeam(r.Context(), emp.ID, id, version, s.audited(r, emp, describe)); err != nil {
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
