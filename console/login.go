package console

import (
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"strconv"
	"time"

	"github.com/wechat-relay/wechat-relay/relay"
	"golang.org/x/crypto/bcrypt"
)

// dummyHash returns a hash to compare against when the id is unknown or
// has no password, at the highest cost of the employees' hashes, so that
// the answer takes as long as for a wrong password and timing does not
// tell which ids exist.
func dummyHash(emps []relay.Employee) []byte {
	cost := 0
	for _, e := range emps {
		if c, err := bcrypt.Cost([]byte(e.PasswordHash)); err == nil && c > cost {
			cost = c
		}
	}
	if cost == 0 {
		cost = bcrypt.DefaultCost // nobody has a password: nothing to match
	}
	h, err := bcrypt.GenerateFromPassword([]byte("wechat-relay: no such employee"), cost)
	if err != nil {
		// Cannot happen for this input and a cost Validate accepted;
		// a hash nothing matches keeps sign-in closed rather than open.
		return []byte("$2a$10$invalid")
	}
	return h
}

// errWrongLogin is the one answer to an unknown id and a wrong password.
const errWrongLogin = "wrong employee id or password"

// maxLoginID bounds the id a sign-in may name: longer ones are no
// employee's (ids are at most 60 characters).
const maxLoginID = 64

// serveLogin handles POST /api/login.
func (s *Server) serveLogin(auth *authenticator) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		// JSON only: a cross-site form cannot send it without CORS
		// (which the console never allows), so no page can sign a
		// browser in behind its user's back.
		if ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); ct != "application/json" {
			writeError(w, http.StatusUnsupportedMediaType, "Content-Type must be application/json")
			return
		}
		var body struct {
			ID       string `json:"id"`
			Password string `json:"password"`
		}
		dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 4<<10))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&body); err != nil {
			writeError(w, http.StatusBadRequest, "malformed JSON body: "+err.Error())
			return
		}
		if body.ID == "" || body.Password == "" {
			writeError(w, http.StatusBadRequest, "id and password are required")
			return
		}
		if !auth.dir.Loaded() {
			writeError(w, http.StatusServiceUnavailable, "sign-in is unavailable right now: "+errDirectoryNotLoaded.Error()+"; try again shortly")
			return
		}
		ctx := r.Context()
		if len(body.ID) > maxLoginID {
			// No employee has such an id; not worth a throttle entry.
			bcrypt.CompareHashAndPassword(auth.dummyHash(), []byte(body.Password))
			writeError(w, http.StatusUnauthorized, errWrongLogin)
			return
		}
		if s.throttle != nil {
			locked, err := s.throttle.LoginLocked(ctx, body.ID)
			if err != nil {
				s.log.Warn("reading the sign-in throttle", "err", err)
				writeError(w, http.StatusServiceUnavailable, "sign-in is unavailable right now; try again shortly")
				return
			}
			if locked > 0 {
				s.writeLocked(w, r, auth.logID(body.ID), locked)
				return
			}
		}
		emp := auth.employee(body.ID)
		hash := auth.dummyHash()
		if emp != nil && emp.PasswordHash != "" {
			hash = []byte(emp.PasswordHash)
		}
		match := bcrypt.CompareHashAndPassword(hash, []byte(body.Password)) == nil
		if !match || emp == nil || emp.PasswordHash == "" {
			s.log.Info("console sign-in failed", "id", auth.logID(body.ID), "remote", remoteAddr(r))
			if err := s.record(r, &relay.Employee{ID: auth.logID(body.ID)}, AuditSignInFailed, "", "", "password"); err != nil {
				s.log.Error("writing the audit trail of a failed sign-in", "err", err)
			}
			if s.throttle != nil {
				locked, err := s.throttle.LoginFailed(ctx, body.ID, s.cfg.LoginAttempts, s.cfg.LoginWindow, s.cfg.LoginLockout)
				if err != nil {
					s.log.Warn("counting a failed sign-in", "err", err)
				} else if locked > 0 {
					s.writeLocked(w, r, auth.logID(body.ID), locked)
					return
				}
			}
			writeError(w, http.StatusUnauthorized, errWrongLogin)
			return
		}
		if s.throttle != nil {
			if err := s.throttle.LoginSucceeded(ctx, body.ID); err != nil {
				s.log.Warn("clearing failed sign-ins", "employee", emp.ID, "err", err)
			}
		}
		s.signIn(w, r, emp, "password")
	}
}

func (s *Server) writeLocked(w http.ResponseWriter, r *http.Request, id string, locked time.Duration) {
	secs := int((locked + time.Second - 1) / time.Second)
	s.log.Warn("console sign-in locked", "id", id, "retry_after_seconds", secs, "remote", remoteAddr(r))
	w.Header().Set("Retry-After", strconv.Itoa(secs))
	writeJSON(w, http.StatusTooManyRequests, map[string]any{
		"error":               fmt.Sprintf("too many failed sign-ins: try again in %s", (time.Duration(secs) * time.Second).String()),
		"retry_after_seconds": secs,
	})
}

// signIn starts a session for emp and answers as /api/login does.
func (s *Server) signIn(w http.ResponseWriter, r *http.Request, emp *relay.Employee, via string) {
	ctx := r.Context()
	if err := s.record(r, emp, AuditSignIn, "", "", via); err != nil {
		s.log.Error("writing the audit trail; sign-in refused", "employee", emp.ID, "err", err)
		writeError(w, http.StatusServiceUnavailable, "sign-in is unavailable right now (the audit trail cannot be written); try again shortly")
		return
	}
	id, sess, err := s.sessions.start(ctx, emp, via)
	if err != nil {
		s.log.Warn("starting a console session", "employee", emp.ID, "err", err)
		writeError(w, http.StatusServiceUnavailable, "sign-in is unavailable right now; try again shortly")
		return
	}
	setCookie(w, r, id)
	s.log.Info("console sign-in", "employee", emp.ID, "role", emp.Role, "via", via, "remote", remoteAddr(r))
	writeJSON(w, http.StatusOK, meBody(emp, sess))
}

// signInFunc is the SignInFunc handed to identity providers.
func (s *Server) signInFunc(auth *authenticator, via string) SignInFunc {
	return func(w http.ResponseWriter, r *http.Request, employeeID string) {
		if !auth.dir.Loaded() {
			writeError(w, http.StatusServiceUnavailable, "sign-in is unavailable right now: "+errDirectoryNotLoaded.Error()+"; try again shortly")
			return
		}
		emp := auth.employee(employeeID)
		if emp == nil {
			s.log.Warn("single sign-on for an unknown employee", "via", via, "id", employeeID, "remote", remoteAddr(r))
			writeError(w, http.StatusForbidden, "you are not an employee of this console")
			return
		}
		s.signIn(w, r, emp, via)
	}
}

// serveLogout handles POST /api/logout: the session is deleted from the
// store, so its cookie is worthless even if kept.
func (s *Server) serveLogout(auth *authenticator) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		p, err := auth.authenticate(r)
		switch {
		case errors.Is(err, errUnauthenticated):
			setCookie(w, r, "") // signed out already
			w.WriteHeader(http.StatusNoContent)
			return
		case err != nil:
			writeError(w, http.StatusServiceUnavailable, "cannot reach the session store; try again")
			return
		}
		if !checkCSRF(w, r, p) {
			return
		}
		if p.method == authSession {
			ctx := r.Context()
			if err := s.sessions.store.DeleteSession(ctx, p.sid); err != nil {
				s.log.Warn("ending a console session", "employee", p.emp.ID, "err", err)
				writeError(w, http.StatusServiceUnavailable, "cannot reach the session store; try again")
				return
			}
			setCookie(w, r, "")
			s.log.Info("console sign-out", "employee", p.emp.ID, "remote", remoteAddr(r))
			if err := s.record(r, p.emp, AuditSignOut, "", "", ""); err != nil {
				// The session is gone already; the sign-out stands.
				s.log.Error("writing the audit trail of a sign-out", "employee", p.emp.ID, "err", err)
			}
		}
		w.WriteHeader(http.StatusNoContent)
	}
}

func meBody(emp *relay.Employee, sess *session) map[string]any {
	body := map[string]any{"id": emp.ID, "name": emp.Name, "role": emp.Role}
	if len(emp.Accounts) > 0 {
		body["accounts"] = emp.Accounts
	}
	if sess != nil {
		body["csrf"] = sess.CSRF
	}
	return body
}
