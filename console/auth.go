package console

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"net/http"
	"strings"
	"time"
)

// How a request proves who sent it, in the order they are looked at:
//
//  1. Authorization: Bearer <token>: API clients. Exempt from CSRF checks,
//     since a browser never adds that header on its own.
//  2. The wr_session cookie: browsers, after POST /api/login. Requests
//     that change something must also carry the session's CSRF token in
//     X-CSRF-Token.
//  3. The wr_token cookie (the employee's token): kept for browsers that
//     used it before sessions existed, for reads and the WebSocket only,
//     since it has no CSRF token.

// errUnauthenticated is answered 401.
var errUnauthenticated = errors.New("sign-in required: sign in (POST /api/login) or send Authorization: Bearer <token>")

// TokenCookie carries an employee's token for browsers, which cannot set
// headers on a WebSocket upgrade. Reads and the WebSocket only.
const TokenCookie = "wr_token"

// CSRFHeader carries the session's CSRF token on requests that change
// something.
const CSRFHeader = "X-CSRF-Token"

// authMethod says how a request was authenticated.
type authMethod int

const (
	authBearer authMethod = iota + 1
	authSession
	authTokenCookie
)

// principal is who sent a request, and how.
type principal struct {
	emp    *Employee
	method authMethod
	sess   *session // authSession only
	sid    string   // the session's store key; authSession only
}

// authenticator finds the employee a request belongs to.
type authenticator struct {
	employees []Employee
	hashes    [][32]byte // of tokens; zero for employees without one
	byID      map[string]*Employee
	sessions  *sessions // nil: no browser sign-in
	dummy     []byte    // bcrypt hash compared against for unknown ids
}

func newAuthenticator(emps []Employee, ses *sessions) *authenticator {
	a := &authenticator{employees: emps, byID: map[string]*Employee{}, sessions: ses}
	for i, e := range emps {
		var h [32]byte
		if e.Token != "" {
			h = sha256.Sum256([]byte(e.Token))
		}
		a.hashes = append(a.hashes, h)
		a.byID[e.ID] = &a.employees[i]
	}
	if ses != nil {
		a.dummy = dummyHash(emps)
	}
	return a
}

// logID is how a sign-in id appears in logs: as typed when it is an
// employee's, otherwise not at all, since people type their password
// into the id field now and then.
func (a *authenticator) logID(id string) string {
	if a.byID[id] != nil {
		return id
	}
	return "(unknown)"
}

// authenticate returns who sent r. A session store that cannot be
// reached is an error other than errUnauthenticated.
func (a *authenticator) authenticate(r *http.Request) (*principal, error) {
	if h := r.Header.Get("Authorization"); h != "" {
		tok, ok := strings.CutPrefix(h, "Bearer ")
		if !ok {
			return nil, errUnauthenticated
		}
		emp := a.byToken(tok)
		if emp == nil {
			return nil, errUnauthenticated
		}
		return &principal{emp: emp, method: authBearer}, nil
	}
	if c, err := r.Cookie(SessionCookie); err == nil && c.Value != "" && a.sessions != nil {
		sess, sid, err := a.sessions.get(r.Context(), c.Value)
		if err != nil {
			return nil, err
		}
		if sess != nil {
			if emp := a.byID[sess.Employee]; emp != nil {
				return &principal{emp: emp, method: authSession, sess: sess, sid: sid}, nil
			}
		}
	}
	if c, err := r.Cookie(TokenCookie); err == nil {
		if emp := a.byToken(c.Value); emp != nil {
			return &principal{emp: emp, method: authTokenCookie}, nil
		}
	}
	return nil, errUnauthenticated
}

// byToken returns the employee whose token tok is, or nil. Tokens are
// compared as hashes in constant time, and every employee is compared,
// so timing reveals neither a token nor which one matched.
func (a *authenticator) byToken(tok string) *Employee {
	if tok == "" {
		return nil
	}
	sum := sha256.Sum256([]byte(tok))
	found := -1
	for i, h := range a.hashes {
		if a.employees[i].Token != "" && subtle.ConstantTimeCompare(sum[:], h[:]) == 1 {
			found = i
		}
	}
	if found < 0 {
		return nil
	}
	return &a.employees[found]
}

// checkCSRF refuses a session-authenticated request that changes
// something without the session's CSRF token, and any such request
// authenticated by the wr_token cookie, which has none. It reports
// whether the request may go on; when not, it has answered.
func checkCSRF(w http.ResponseWriter, r *http.Request, p *principal) bool {
	switch r.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions:
		return true
	}
	switch p.method {
	case authSession:
		got := r.Header.Get(CSRFHeader)
		if got == "" || subtle.ConstantTimeCompare([]byte(got), []byte(p.sess.CSRF)) != 1 {
			writeError(w, http.StatusForbidden, "missing or wrong CSRF token: send the session's csrf (from /api/login or /api/me) in "+CSRFHeader)
			return false
		}
	case authTokenCookie:
		writeError(w, http.StatusForbidden, "the "+TokenCookie+" cookie cannot authorize changes: sign in, or send Authorization: Bearer <token>")
		return false
	}
	return true
}

// IdentityProvider is the seam for single sign-on (OIDC) and any other
// way of proving who someone is besides a password. A provider mounts
// its own routes under /api/sso/<Name>/ (a redirect to the identity
// provider, its callback, ...), and once it knows which employee signed
// in it calls SignIn, which starts the same session as a password
// sign-in: cookie, CSRF token and answer included. Lockout and password
// checks are the provider's business.
type IdentityProvider interface {
	// Name is the provider's path segment, e.g. "oidc".
	Name() string
	// Handler serves the provider's routes; paths are passed whole
	// (/api/sso/<Name>/...).
	Handler(signIn SignInFunc) http.Handler
}

// SignInFunc starts a session for the employee with the given id and
// answers the request as POST /api/login does ({"id","name","role",
// "csrf"}, or 403 for an id that is not an employee). It is the only way
// a provider signs someone in.
type SignInFunc func(w http.ResponseWriter, r *http.Request, employeeID string)

// remoteAddr says where a request came from, for logs and the audit
// trail: the peer address, and the X-Forwarded-For a proxy added (as
// given, not trusted).
func remoteAddr(r *http.Request) string {
	if xff := r.Header.Get("X-Forwarded-For"); xff != "" {
		return r.RemoteAddr + " (forwarded for " + xff + ")"
	}
	return r.RemoteAddr
}

// deadline bounds a store call made on behalf of a request.
func deadline(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, 5*time.Second)
}
