package console

import (
	"errors"
	"net/http"

	"github.com/wechat-relay/wechat-relay/relay"
)

// servePassword handles POST /api/me/password {"current","new"}: an
// employee changes their own console password. The current one must be
// given (a wrong one counts as a failed sign-in, so this is no way round
// the lockout); the change is audited (password_change) before it is
// archived, like an admin's. Every session begun before it ends; a
// browser that asked gets a new one, and the answer carries its CSRF
// token.
func (s *Server) servePassword(w http.ResponseWriter, r *http.Request, p *principal) {
	emp := p.emp
	var b struct {
		Current string `json:"current"`
		New     string `json:"new"`
	}
	if !decodeBody(w, r, &b, 4<<10, false) {
		return
	}
	have, ok := s.dir.Snapshot().Employee(emp.ID)
	switch {
	case !ok:
		writeError(w, http.StatusNotFound, "you are no longer in the directory")
		return
	case have.PasswordHash == "":
		writeError(w, http.StatusConflict, "you have no console password to change; ask an admin to set one")
		return
	case b.New == b.Current:
		writeError(w, http.StatusBadRequest, "the new password must differ from the current one")
		return
	}
	hash, err := hashPassword(b.New, s.cfg.PasswordCost)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	ctx := r.Context()
	if s.throttle != nil {
		locked, err := s.throttle.LoginLocked(ctx, emp.ID)
		if err != nil {
			writeError(w, http.StatusServiceUnavailable, "cannot check the sign-in throttle right now; try again")
			return
		}
		if locked > 0 {
			s.writeLocked(w, r, emp.ID, lock{locked, "sign-ins as this employee"})
			return
		}
	}
	if s.comparePassword([]byte(have.PasswordHash), []byte(b.Current)) != nil {
		if s.throttle != nil {
			if locked, err := s.throttle.LoginFailed(ctx, emp.ID, s.cfg.LoginAttempts, s.cfg.LoginWindow, s.cfg.LoginLockout); err == nil && locked > 0 {
				s.writeLocked(w, r, emp.ID, lock{locked, "sign-ins as this employee"})
				return
			}
		}
		writeError(w, http.StatusForbidden, "the current password is wrong")
		return
	}
	e := relay.Employee{ID: have.ID, Name: have.Name, Role: have.Role, Accounts: have.Accounts, Teams: have.Teams, AllTeams: have.AllTeams,
		Disabled: have.Disabled, PasswordHash: hash}
	audit := func(_ *relay.DirectorySnapshot, rec relay.DirectoryRecord) error {
		// The detail names the version (its hash), as an admin's change's
		// does: the directory loads it only once it finds this record.
		return s.record(r, emp, relay.AuditPasswordChange, "", relay.DirectoryAuditTarget(rec.Kind, rec.ID),
			relay.DirectoryAuditDetail("own password changed", rec))
	}
	got, err := s.dir.UpdateEmployee(r.Context(), emp.ID, e, have.Version, audit)
	if err != nil {
		if errors.Is(err, relay.ErrDirectoryConflict) {
			writeError(w, http.StatusConflict, "your entry changed meanwhile; try again")
			return
		}
		s.directoryError(w, err)
		return
	}
	if p.method != authSession {
		w.WriteHeader(http.StatusNoContent)
		return
	}
	// This browser's session began with the old password: it goes on in
	// a new one.
	if err := s.sessions.store.DeleteSession(ctx, p.sid); err != nil {
		s.log.Warn("ending the session of a changed password", "employee", emp.ID, "err", err)
	}
	id, sess, err := s.sessions.start(ctx, &got, p.sess.Via)
	if err != nil {
		setCookie(w, r, "")
		writeError(w, http.StatusServiceUnavailable, "your password is changed, but a new session could not be started: sign in again")
		return
	}
	setCookie(w, r, id)
	writeJSON(w, http.StatusOK, map[string]string{"csrf": sess.CSRF})
}
