package console

import (
	"context"
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
		if s.cfg.PasswordSignInOff {
			writeError(w, http.StatusForbidden, errPasswordSignInOff)
			return
		}
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
		limits := s.loginLimits(r, body.ID)
		ownKey := len(body.ID) <= maxLoginID && relay.ValidDirectoryID(body.ID)
		if !ownKey {
			// No employee has such an id: counted against its address and
			// all sign-ins, not under a key of its own — which could be
			// another count's ("*", "addr:…") and lock it.
			limits = limits[1:]
		}
		if locked, err := s.loginLocked(ctx, limits); err != nil {
			s.log.Warn("reading the sign-in throttle", "err", err)
			writeError(w, http.StatusServiceUnavailable, "sign-in is unavailable right now; try again shortly")
			return
		} else if locked.d > 0 {
			s.writeLocked(w, r, auth.logID(body.ID), locked)
			return
		}
		// The same work for an id nobody has as for an employee's: a
		// bcrypt comparison, against a hash of the same cost.
		emp := auth.employee(body.ID)
		if !ownKey {
			emp = nil
		}
		hash := auth.dummyHash()
		if emp != nil && emp.PasswordHash != "" {
			hash = []byte(emp.PasswordHash)
		}
		match := s.comparePassword(hash, []byte(body.Password)) == nil
		if !match || emp == nil || emp.PasswordHash == "" {
			s.log.Info("console sign-in failed", "id", auth.logID(body.ID), "remote", remoteAddr(r))
			locked, err := s.loginFailed(ctx, limits)
			if err != nil {
				s.log.Warn("counting a failed sign-in", "err", err)
			}
			s.auditFailedSignIn(r, auth.logID(body.ID), locked)
			if locked.d > 0 {
				s.writeLocked(w, r, auth.logID(body.ID), locked)
				return
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

// loginLimit is one count of failed sign-ins: per employee id, per client
// address, or of all.
type loginLimit struct {
	key      string // the throttle's key: the id, "addr:<address>", "*"
	what     string // what is locked, for the answer
	attempts int
	lockout  time.Duration
}

// loginLimits are the counts a sign-in as id from r's client falls
// under. The keys of addresses and of all cannot be employee ids, which
// have no ':' and do not start with '*' (serveLogin gives an id that is
// not a valid one no count of its own).
func (s *Server) loginLimits(r *http.Request, id string) []loginLimit {
	return []loginLimit{
		{key: id, what: "sign-ins as this employee", attempts: s.cfg.LoginAttempts, lockout: s.cfg.LoginLockout},
		{key: "addr:" + s.proxies.clientAddr(r), what: "sign-ins from this address", attempts: s.cfg.LoginAddrAttempts, lockout: s.cfg.LoginLockout},
		{key: "*", what: "password sign-ins", attempts: s.cfg.LoginGlobalAttempts, lockout: s.cfg.LoginGlobalLockout},
	}
}

// auditFailedSignIn writes the audit record of failed sign-ins as id
// (as logID shows it: unknown ids are one) from r's client address: the
// first of each login window, and the one that locks — not one record
// each, so that a spray of guesses does not flood the audit log (each
// failure is logged, and the lockouts bound them).
func (s *Server) auditFailedSignIn(r *http.Request, id string, locked lock) {
	detail := "password"
	if locked.d > 0 {
		detail = fmt.Sprintf("password; too many failed %s: locked for %s", locked.what, locked.d.Round(time.Second))
	} else if s.throttle != nil {
		// A throttle key of its own, locked for the window by the first
		// failure: later ones within it are not recorded one by one.
		key := "audit:" + id + "@" + s.proxies.clientAddr(r)
		ctx := r.Context()
		if d, err := s.throttle.LoginLocked(ctx, key); err == nil && d > 0 {
			return
		}
		if _, err := s.throttle.LoginFailed(ctx, key, 1, s.cfg.LoginWindow, s.cfg.LoginWindow); err != nil {
			s.log.Warn("counting a failed sign-in for the audit log", "err", err)
		}
		detail = fmt.Sprintf("password; further failures as this id from this address in the next %s are recorded only if they lock it", s.cfg.LoginWindow)
	}
	if err := s.record(r, &relay.Employee{ID: id}, AuditSignInFailed, "", "", detail); err != nil {
		s.log.Error("writing the audit trail of a failed sign-in", "err", err)
	}
}

// lock is how long, and what, a sign-in is locked.
type lock struct {
	d    time.Duration
	what string
}

// loginLocked returns the longest lock among limits.
func (s *Server) loginLocked(ctx context.Context, limits []loginLimit) (lock, error) {
	var out lock
	if s.throttle == nil {
		return out, nil
	}
	for _, l := range limits {
		d, err := s.throttle.LoginLocked(ctx, l.key)
		if err != nil {
			return lock{}, err
		}
		if d > out.d {
			out = lock{d, l.what}
		}
	}
	return out, nil
}

// loginFailed counts a failure under every limit and returns the longest
// lock it brought.
func (s *Server) loginFailed(ctx context.Context, limits []loginLimit) (lock, error) {
	var out lock
	if s.throttle == nil {
		return out, nil
	}
	for _, l := range limits {
		d, err := s.throttle.LoginFailed(ctx, l.key, l.attempts, s.cfg.LoginWindow, l.lockout)
		if err != nil {
			return lock{}, err
		}
		if d > out.d {
			out = lock{d, l.what}
		}
	}
	return out, nil
}

func (s *Server) writeLocked(w http.ResponseWriter, r *http.Request, id string, locked lock) {
	secs := int((locked.d + time.Second - 1) / time.Second)
	s.log.Warn("console sign-in locked", "id", id, "locked", locked.what, "retry_after_seconds", secs, "remote", remoteAddr(r))
	w.Header().Set("Retry-After", strconv.Itoa(secs))
	writeJSON(w, http.StatusTooManyRequests, map[string]any{
		"error":               fmt.Sprintf("too many failed %s: try again in %s", locked.what, (time.Duration(secs) * time.Second).String()),
		"retry_after_seconds": secs,
	})
}

// signIn starts a session for emp and answers as /api/login does.
func (s *Server) signIn(w http.ResponseWriter, r *http.Request, emp *relay.Employee, via string) {
	sess, err := s.startSession(w, r, emp, via, via)
	switch {
	case errors.Is(err, errSignInAudit):
		writeError(w, http.StatusServiceUnavailable, "sign-in is unavailable right now (the audit trail cannot be written); try again shortly")
		return
	case err != nil:
		writeError(w, http.StatusServiceUnavailable, "sign-in is unavailable right now; try again shortly")
		return
	}
	writeJSON(w, http.StatusOK, meBody(emp, sess))
}

// errSignInAudit: the sign-in's audit record cannot be written, so
// nobody is signed in.
var errSignInAudit = errors.New("the audit trail cannot be written")

// startSession audits the sign-in of emp (detail: how), starts its
// session and sets the cookie; it writes nothing else.
func (s *Server) startSession(w http.ResponseWriter, r *http.Request, emp *relay.Employee, via, detail string) (*session, error) {
	ctx := r.Context()
	if err := s.record(r, emp, AuditSignIn, "", "", detail); err != nil {
		s.log.Error("writing the audit trail; sign-in refused", "employee", emp.ID, "err", err)
		return nil, fmt.Errorf("%w: %w", errSignInAudit, err)
	}
	id, sess, err := s.sessions.start(ctx, emp, via)
	if err != nil {
		s.log.Warn("starting a console session", "employee", emp.ID, "err", err)
		return nil, err
	}
	setCookie(w, r, id)
	s.log.Info("console sign-in", "employee", emp.ID, "role", emp.Role, "via", via, "remote", remoteAddr(r))
	return sess, nil
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
			// This instance's sockets of the session close now; other
			// instances' at their next check (Config.SocketRecheck).
			s.hub.recheck(func(c *conn) bool { return c.emp.ID == p.emp.ID })
			s.log.Info("console sign-out", "employee", p.emp.ID, "remote", remoteAddr(r))
			if err := s.record(r, p.emp, AuditSignOut, "", "", ""); err != nil {
				// The session is gone already; the sign-out stands.
				s.log.Error("writing the audit trail of a sign-out", "employee", p.emp.ID, "err", err)
			}
			if u := s.endSessionURL(p.sess.Via); u != "" {
				writeJSON(w, http.StatusOK, map[string]string{"end_session_url": u})
				return
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
