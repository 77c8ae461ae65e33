package console

import (
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"net/http"
	"strings"
)

// errUnauthenticated is answered 401.
var errUnauthenticated = errors.New("sign-in required: send Authorization: Bearer <token> or the wr_token cookie")

// TokenCookie carries the token for browsers, which cannot set headers on
// a WebSocket upgrade.
const TokenCookie = "wr_token"

// authenticator finds the employee a request belongs to.
type authenticator struct {
	employees []Employee
	hashes    [][32]byte
}

func newAuthenticator(emps []Employee) *authenticator {
	a := &authenticator{employees: emps}
	for _, e := range emps {
		a.hashes = append(a.hashes, sha256.Sum256([]byte(e.Token)))
	}
	return a
}

// employee returns the employee whose token the request carries.
// Tokens are compared as hashes in constant time, and every employee is
// compared, so timing reveals neither a token nor which one matched.
func (a *authenticator) employee(r *http.Request) (*Employee, error) {
	tok := ""
	if h := r.Header.Get("Authorization"); h != "" {
		var ok bool
		tok, ok = strings.CutPrefix(h, "Bearer ")
		if !ok {
			return nil, errUnauthenticated
		}
	} else if c, err := r.Cookie(TokenCookie); err == nil {
		tok = c.Value
	}
	if tok == "" {
		return nil, errUnauthenticated
	}
	sum := sha256.Sum256([]byte(tok))
	found := -1
	for i, h := range a.hashes {
		if subtle.ConstantTimeCompare(sum[:], h[:]) == 1 {
			found = i
		}
	}
	if found < 0 {
		return nil, errUnauthenticated
	}
	return &a.employees[found], nil
}
