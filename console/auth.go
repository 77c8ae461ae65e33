package console

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/wechat-relay/wechat-relay/relay"
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

// errDirectoryNotLoaded is answered 503: until the directory has been
// read from the archive, the configuration alone might let in someone an
// admin disabled.
var errDirectoryNotLoaded = errors.New("the directory of employees is not loaded yet (the archive is unreachable)")

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
	emp    *relay.Employee
	method authMethod
	sess   *session // authSession only
	sid    string   // the session's store key; authSession only
}

// authenticator finds the employee a request belongs to, in the current
// directory: a change an admin makes applies to the next request.
type authenticator struct {
	dir      *relay.Directory
	sessions *sessions // nil: no browser sign-in
	view     atomic.Pointer[staffView]
}

// staffView is what authentication needs of one directory snapshot:
// the employees who may sign in, and their token hashes.
type staffView struct {
	snap   *relay.DirectorySnapshot
	byID   map[string]*relay.Employee // enabled employees
	hashes []tokenHash
	once   sync.Once
	dummy  []byte // bcrypt hash compared against for unknown ids (dummyHash)
}

type tokenHash struct {
	sum [32]byte
	emp *relay.Employee
}

func newAuthenticator(dir *relay.Directory, ses *sessions) *authenticator {
	return &authenticator{dir: dir, sessions: ses}
}

// current returns the view of the directory's current snapshot.
func (a *authenticator) current() *staffView {
	snap := a.dir.Snapshot()
	if v := a.view.Load(); v != nil && v.snap == snap {
		return v
	}
	v := &staffView{snap: snap, byID: map[string]*relay.Employee{}}
	for _, e := range snap.Employees {
		if e.Disabled {
			continue
		}
		emp := &e
		v.byID[e.ID] = emp
		if sum, err := hex.DecodeString(e.TokenHash); err == nil && len(sum) == sha256.Size {
			v.hashes = append(v.hashes, tokenHash{sum: [32]byte(sum), emp: emp})
		}
	}
	a.view.Store(v)
	return v
}

// employee returns the enabled employee with the given id, or nil (also
// while the directory is not loaded).
func (a *authenticator) employee(id string) *relay.Employee {
	if !a.dir.Loaded() {
		return nil
	}
	return a.current().byID[id]
}

// dummyHash is the hash a sign-in for an unknown id is compared with.
func (a *authenticator) dummyHash() []byte {
	v := a.current()
	v.once.Do(func() {
		emps := make([]relay.Employee, 0, len(v.byID))
		for _, e := range v.byID {
			emps = append(emps, *e)
		}
		v.dummy = dummyHash(emps)
	})
	return v.dummy
}

// logID is how a sign-in id appears in logs: as typed when it is an
// employee's, otherwise not at all, since people type their password
// into the id field now and then.
func (a *authenticator) logID(id string) string {
	if _, ok := a.dir.Snapshot().Employee(id); ok {
		return id
	}
	return "(unknown)"
}

// authenticate returns who sent r. A session store that cannot be
// reached is an error other than errUnauthenticated.
func (a *authenticator) authenticate(r *http.Request) (*principal, error) {
	if !a.dir.Loaded() {
		return nil, errDirectoryNotLoaded
	}
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
			// A session begun before the password last changed is over.
			if emp := a.employee(sess.Employee); emp != nil && sess.Cred == credFingerprint(emp.PasswordHash) {
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

// byToken returns the enabled employee whose token tok is, or nil.
// Tokens are compared as hashes in constant time, and every employee is
// compared, so timing reveals neither a token nor which one matched.
func (a *authenticator) byToken(tok string) *relay.Employee {
	if tok == "" {
		return nil
	}
	sum := sha256.Sum256([]byte(tok))
	var found *relay.Employee
	for _, h := range a.current().hashes {
		if subtle.ConstantTimeCompare(sum[:], h.sum[:]) == 1 {
			found = h.emp
		}
	}
	return found
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
// its own routes under /api/sso/<Name>/ (a browser starts at
// /api/sso/<Name>/login; then its callback, ...), and once it knows
// which employee signed in it calls SignIn, which starts the same
// session as a password sign-in (cookie and CSRF token). The provider
// answers the browser itself (a redirect to the console, or to say why
// not). Lockout and password checks are the provider's business.
type IdentityProvider interface {
	// Name is the provider's path segment, e.g. "oidc".
	Name() string
	// Handler serves the provider's routes; paths are passed whole
	// (/api/sso/<Name>/...).
	Handler(signIn SignInFunc) http.Handler
}

// SessionEnder is an IdentityProvider that can also end the employee's
// session at the identity provider: POST /api/logout of a session it
// began answers {"end_session_url"}, for the browser to offer.
type SessionEnder interface {
	// EndSessionURL is where the browser ends its session at the
	// identity provider; "" when it cannot.
	EndSessionURL() string
}

// Identity is who an identity provider vouches for.
type Identity struct {
	// Employee is the employee's id in the directory.
	Employee string
	// Detail says what the provider checked, for the audit trail (the
	// issuer and subject, say).
	Detail string
	// Grants, when not nil, are what the identity provider's groups give
	// the employee; the directory is changed to match before the session
	// starts, archived and audited (sso_grant) as an admin's change is.
	Grants *Grants
}

// Grants are a role and team memberships an identity provider asserts.
type Grants struct {
	// Role replaces the directory's; "" leaves it.
	Role Role
	// Teams says, for each team it names, whether the employee is in it;
	// memberships of teams it does not name stay as the directory has
	// them. A team the directory does not have is left out (and logged).
	Teams map[string]bool
	// Groups are the identity provider's groups the grants come from,
	// for the audit trail.
	Groups []string
}

// Why SignIn refuses an identity. Providers tell the browser which.
var (
	ErrSignInUnknown     = errors.New("not an employee of this console")
	ErrSignInDisabled    = errors.New("the employee is disabled in the directory")
	ErrSignInGrants      = errors.New("the directory refuses what the identity provider's groups grant")
	ErrSignInUnavailable = errors.New("sign-in is unavailable right now")
)

// SignInFunc starts a session for the identity, having applied its
// grants to the directory: it sets the session cookie and writes nothing
// else, so that the provider answers. It refuses (and writes nothing)
// an employee who is not in the directory or is disabled there,
// whatever the identity provider says, with one of the ErrSignIn errors.
// It is the only way a provider signs someone in.
type SignInFunc func(w http.ResponseWriter, r *http.Request, id Identity) error

// remoteAddr says where a request came from, for logs and the audit
// trail: the peer address, and the X-Forwarded-For a proxy added (as
// given, not trusted).
func remoteAddr(r *http.Request) string {
	if xff := r.Header.Get("X-Forwarded-For"); xff != "" {
		return r.RemoteAddr + " (forwarded for " + xff + ")"
	}
	return r.RemoteAddr
}

// stillSignsIn returns the check of a socket opened by r, which p
// authenticated: whether the same credential signs the same employee in
// now — the token still the employee's (rotated, or the employee
// disabled: no), the session still stored, within its maximum age and
// begun after the password last changed. It reads the session without
// extending it: an open socket does not keep an idle session alive.
func (a *authenticator) stillSignsIn(r *http.Request, p *principal) func(context.Context) (bool, error) {
	id := p.emp.ID
	switch p.method {
	case authSession:
		sid := p.sid
		return func(ctx context.Context) (bool, error) {
			sess, err := a.sessions.peek(ctx, sid)
			if err != nil || sess == nil {
				return false, err
			}
			emp := a.employee(sess.Employee)
			return emp != nil && emp.ID == id && sess.Cred == credFingerprint(emp.PasswordHash), nil
		}
	case authBearer, authTokenCookie:
		tok, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if p.method == authTokenCookie {
			tok = ""
			if c, err := r.Cookie(TokenCookie); err == nil {
				tok = c.Value
			}
		}
		return func(context.Context) (bool, error) {
			emp := a.byToken(tok)
			return emp != nil && emp.ID == id, nil
		}
	}
	return nil
}
