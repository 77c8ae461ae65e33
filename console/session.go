package console

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"strconv"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/wechat-relay/wechat-relay/relay"
)

// SessionCookie carries a browser's session id. The id is 32 random
// bytes; the store knows it only by its SHA-256, so a copy of the store
// holds no usable session.
const SessionCookie = "wr_session"

// SessionStore keeps sign-in sessions where every relay instance finds
// them (storage/state: Redis, or memory for a single instance).
type SessionStore interface {
	// PutSession stores data under id until it has been idle for idle.
	PutSession(ctx context.Context, id string, data []byte, idle time.Duration) error
	// GetSession returns what is stored under id, nil if nothing is (never
	// stored, deleted or expired), and keeps it for another idle.
	GetSession(ctx context.Context, id string, idle time.Duration) ([]byte, error)
	// DeleteSession forgets id.
	DeleteSession(ctx context.Context, id string) error
}

// LoginThrottle counts failed sign-ins per employee id, shared by every
// relay instance.
type LoginThrottle interface {
	// LoginLocked returns how long sign-ins as id stay locked, 0 if not.
	LoginLocked(ctx context.Context, id string) (time.Duration, error)
	// LoginFailed counts a failure within window; the one that reaches
	// limit locks id for lockout. It returns how long id is locked now.
	LoginFailed(ctx context.Context, id string, limit int, window, lockout time.Duration) (time.Duration, error)
	// LoginSucceeded forgets id's failures.
	LoginSucceeded(ctx context.Context, id string) error
}

// session is what the store keeps of a signed-in browser.
type session struct {
	Employee string    `json:"employee"`
	CSRF     string    `json:"csrf"`
	Created  time.Time `json:"created"`
	Via      string    `json:"via"` // "password", or an IdentityProvider's name
	// Cred fingerprints the employee's password hash when the session
	// began: a new password (set by the employee or by an admin, say
	// after a suspected compromise) ends every session begun before it.
	Cred string `json:"cred,omitempty"`
}

// credFingerprint is a session's Cred for a password hash: short, and
// telling nothing of the hash.
func credFingerprint(passwordHash string) string {
	if passwordHash == "" {
		return ""
	}
	sum := sha256.Sum256([]byte("wechat-relay/session-cred\x00" + passwordHash))
	return hex.EncodeToString(sum[:8])
}

// sessions creates, finds and ends browser sessions.
type sessions struct {
	store  SessionStore
	idle   time.Duration
	maxAge time.Duration
	now    func() time.Time
}

// storeKey is the store's name of the session whose cookie holds id.
func storeKey(id string) string {
	sum := sha256.Sum256([]byte(id))
	return hex.EncodeToString(sum[:])
}

func randomToken() (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// start creates a session for emp and returns the cookie value.
func (s *sessions) start(ctx context.Context, emp *relay.Employee, via string) (id string, sess *session, err error) {
	id, err = randomToken()
	if err != nil {
		return "", nil, fmt.Errorf("making a session id: %w", err)
	}
	csrf, err := randomToken()
	if err != nil {
		return "", nil, fmt.Errorf("making a CSRF token: %w", err)
	}
	sess = &session{Employee: emp.ID, CSRF: csrf, Created: s.now().UTC(), Via: via, Cred: credFingerprint(emp.PasswordHash)}
	data, err := json.Marshal(sess)
	if err != nil {
		return "", nil, err
	}
	if err := s.store.PutSession(ctx, storeKey(id), data, s.idle); err != nil {
		return "", nil, fmt.Errorf("storing the session: %w", err)
	}
	return id, sess, nil
}

// get returns the live session whose cookie holds id, nil if there is
// none (unknown, expired or past its maximum age).
func (s *sessions) get(ctx context.Context, id string) (*session, string, error) {
	if len(id) > 100 {
		return nil, "", nil
	}
	key := storeKey(id)
	data, err := s.store.GetSession(ctx, key, s.idle)
	if err != nil {
		return nil, "", fmt.Errorf("reading the session: %w", err)
	}
	if data == nil {
		return nil, "", nil
	}
	var sess session
	if err := json.Unmarshal(data, &sess); err != nil || sess.Employee == "" || sess.CSRF == "" {
		return nil, "", nil
	}
	if s.now().Sub(sess.Created) > s.maxAge {
		if err := s.store.DeleteSession(ctx, key); err != nil {
			return nil, "", fmt.Errorf("ending an expired session: %w", err)
		}
		return nil, "", nil
	}
	return &sess, key, nil
}

// setCookie sets (or, with an empty id, clears) the session cookie.
// Secure when the request came over TLS, directly or through a proxy
// that says so.
func setCookie(w http.ResponseWriter, r *http.Request, id string) {
	c := &http.Cookie{
		Name: SessionCookie, Value: id, Path: "/", HttpOnly: true, SameSite: http.SameSiteStrictMode,
		Secure: r.TLS != nil || r.Header.Get("X-Forwarded-Proto") == "https",
	}
	if id == "" {
		c.MaxAge = -1
	}
	http.SetCookie(w, c)
}

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
func (h *Hub) serveLogin(auth *authenticator) http.HandlerFunc {
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
		if h.throttle != nil {
			locked, err := h.throttle.LoginLocked(ctx, body.ID)
			if err != nil {
				h.log.Warn("reading the sign-in throttle", "err", err)
				writeError(w, http.StatusServiceUnavailable, "sign-in is unavailable right now; try again shortly")
				return
			}
			if locked > 0 {
				h.writeLocked(w, r, auth.logID(body.ID), locked)
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
			h.log.Info("console sign-in failed", "id", auth.logID(body.ID), "remote", remoteAddr(r))
			if err := h.record(r, &relay.Employee{ID: auth.logID(body.ID)}, AuditSignInFailed, "", "", "password"); err != nil {
				h.log.Error("writing the audit trail of a failed sign-in", "err", err)
			}
			if h.throttle != nil {
				locked, err := h.throttle.LoginFailed(ctx, body.ID, h.cfg.LoginAttempts, h.cfg.LoginWindow, h.cfg.LoginLockout)
				if err != nil {
					h.log.Warn("counting a failed sign-in", "err", err)
				} else if locked > 0 {
					h.writeLocked(w, r, auth.logID(body.ID), locked)
					return
				}
			}
			writeError(w, http.StatusUnauthorized, errWrongLogin)
			return
		}
		if h.throttle != nil {
			if err := h.throttle.LoginSucceeded(ctx, body.ID); err != nil {
				h.log.Warn("clearing failed sign-ins", "employee", emp.ID, "err", err)
			}
		}
		h.signIn(w, r, emp, "password")
	}
}

func (h *Hub) writeLocked(w http.ResponseWriter, r *http.Request, id string, locked time.Duration) {
	secs := int((locked + time.Second - 1) / time.Second)
	h.log.Warn("console sign-in locked", "id", id, "retry_after_seconds", secs, "remote", remoteAddr(r))
	w.Header().Set("Retry-After", strconv.Itoa(secs))
	writeJSON(w, http.StatusTooManyRequests, map[string]any{
		"error":               fmt.Sprintf("too many failed sign-ins: try again in %s", (time.Duration(secs) * time.Second).String()),
		"retry_after_seconds": secs,
	})
}

// signIn starts a session for emp and answers as /api/login does.
func (h *Hub) signIn(w http.ResponseWriter, r *http.Request, emp *relay.Employee, via string) {
	ctx := r.Context()
	if err := h.record(r, emp, AuditSignIn, "", "", via); err != nil {
		h.log.Error("writing the audit trail; sign-in refused", "employee", emp.ID, "err", err)
		writeError(w, http.StatusServiceUnavailable, "sign-in is unavailable right now (the audit trail cannot be written); try again shortly")
		return
	}
	id, sess, err := h.sessions.start(ctx, emp, via)
	if err != nil {
		h.log.Warn("starting a console session", "employee", emp.ID, "err", err)
		writeError(w, http.StatusServiceUnavailable, "sign-in is unavailable right now; try again shortly")
		return
	}
	setCookie(w, r, id)
	h.log.Info("console sign-in", "employee", emp.ID, "role", emp.Role, "via", via, "remote", remoteAddr(r))
	writeJSON(w, http.StatusOK, meBody(emp, sess))
}

// signInFunc is the SignInFunc handed to identity providers.
func (h *Hub) signInFunc(auth *authenticator, via string) SignInFunc {
	return func(w http.ResponseWriter, r *http.Request, employeeID string) {
		if !auth.dir.Loaded() {
			writeError(w, http.StatusServiceUnavailable, "sign-in is unavailable right now: "+errDirectoryNotLoaded.Error()+"; try again shortly")
			return
		}
		emp := auth.employee(employeeID)
		if emp == nil {
			h.log.Warn("single sign-on for an unknown employee", "via", via, "id", employeeID, "remote", remoteAddr(r))
			writeError(w, http.StatusForbidden, "you are not an employee of this console")
			return
		}
		h.signIn(w, r, emp, via)
	}
}

// serveLogout handles POST /api/logout: the session is deleted from the
// store, so its cookie is worthless even if kept.
func (h *Hub) serveLogout(auth *authenticator) http.HandlerFunc {
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
			if err := h.sessions.store.DeleteSession(ctx, p.sid); err != nil {
				h.log.Warn("ending a console session", "employee", p.emp.ID, "err", err)
				writeError(w, http.StatusServiceUnavailable, "cannot reach the session store; try again")
				return
			}
			setCookie(w, r, "")
			h.log.Info("console sign-out", "employee", p.emp.ID, "remote", remoteAddr(r))
			if err := h.record(r, p.emp, AuditSignOut, "", "", ""); err != nil {
				// The session is gone already; the sign-out stands.
				h.log.Error("writing the audit trail of a sign-out", "employee", p.emp.ID, "err", err)
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
