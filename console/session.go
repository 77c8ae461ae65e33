package console

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"time"

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
	// stored, deleted or expired), and keeps it for another idle (idle 0:
	// as long as it was — a socket checking that its session still holds
	// must not keep it alive).
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
	sess, err := s.load(ctx, key, s.idle)
	if sess == nil {
		return nil, "", err
	}
	return sess, key, nil
}

// peek returns the session stored under key, without extending it.
func (s *sessions) peek(ctx context.Context, key string) (*session, error) {
	return s.load(ctx, key, 0)
}

// load reads the session under key and extends it for idle (0: not at
// all); nil when there is none, or it is past its maximum age.
func (s *sessions) load(ctx context.Context, key string, idle time.Duration) (*session, error) {
	data, err := s.store.GetSession(ctx, key, idle)
	if err != nil {
		return nil, fmt.Errorf("reading the session: %w", err)
	}
	if data == nil {
		return nil, nil
	}
	var sess session
	if err := json.Unmarshal(data, &sess); err != nil || sess.Employee == "" || sess.CSRF == "" {
		return nil, nil
	}
	if s.now().Sub(sess.Created) > s.maxAge {
		if err := s.store.DeleteSession(ctx, key); err != nil {
			return nil, fmt.Errorf("ending an expired session: %w", err)
		}
		return nil, nil
	}
	return &sess, nil
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
