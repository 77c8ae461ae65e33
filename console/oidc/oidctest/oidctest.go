// Package oidctest runs a real OpenID Connect provider for tests:
// github.com/oauth2-proxy/mockoidc over HTTP on 127.0.0.1 (discovery,
// JWKS, authorization and token endpoints, PKCE, one-time codes). Its
// discovery document also names an end_session_endpoint, and what its
// token endpoint answers can be tampered with, as an attacker in the
// middle would, and its published keys extended, as a key rotation does.
package oidctest

import (
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/go-jose/go-jose/v4"
	"github.com/oauth2-proxy/mockoidc"
)

// Provider is a running OpenID Connect provider. Users signing in are
// queued with QueueUser (mockoidc's default user when none is).
type Provider struct {
	*mockoidc.MockOIDC
	// Resign, when set, re-signs every ID token the token endpoint
	// answers with this key (and its kid).
	Resign atomic.Pointer[jose.JSONWebKey]
	// ExtraKey, when set, is published in the JWKS beside the server's.
	ExtraKey atomic.Pointer[jose.JSONWebKey]
}

// EndSessionPath is the end_session_endpoint's path.
const EndSessionPath = "/oidc/logout"

// Start runs a provider until the test ends.
func Start(t testing.TB) *Provider {
	t.Helper()
	m, err := mockoidc.NewServer(nil)
	if err != nil {
		t.Fatal(err)
	}
	p := &Provider{MockOIDC: m}
	if _, err := m.Keypair.KeyID(); err != nil { // computed once, before any request
		t.Fatal(err)
	}
	m.AddMiddleware(p.tamper)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Start(ln, nil); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Shutdown() })
	return p
}

// tamper adds end_session_endpoint to the discovery document, the extra
// key to the JWKS, and re-signs ID tokens when asked.
func (p *Provider) tamper(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case mockoidc.DiscoveryEndpoint, mockoidc.JWKSEndpoint, mockoidc.TokenEndpoint:
		default:
			next.ServeHTTP(w, r)
			return
		}
		rec := httptest.NewRecorder()
		next.ServeHTTP(rec, r)
		var body map[string]any
		if rec.Code != http.StatusOK || json.Unmarshal(rec.Body.Bytes(), &body) != nil {
			copyResponse(w, rec, rec.Body.Bytes())
			return
		}
		switch r.URL.Path {
		case mockoidc.DiscoveryEndpoint:
			body["end_session_endpoint"] = p.Addr() + EndSessionPath
		case mockoidc.JWKSEndpoint:
			if k := p.ExtraKey.Load(); k != nil {
				body["keys"] = append(body["keys"].([]any), k.Public())
			}
		case mockoidc.TokenEndpoint:
			if k := p.Resign.Load(); k != nil {
				body["id_token"] = resignJWT(body["id_token"].(string), k)
			}
		}
		data, _ := json.Marshal(body)
		copyResponse(w, rec, data)
	})
}

func copyResponse(w http.ResponseWriter, rec *httptest.ResponseRecorder, body []byte) {
	for k, v := range rec.Header() {
		w.Header()[k] = v
	}
	w.Header().Del("Content-Length")
	w.WriteHeader(rec.Code)
	w.Write(body)
}

// resignJWT signs the claims of token with key.
func resignJWT(token string, key *jose.JSONWebKey) string {
	parts := strings.Split(token, ".")
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		panic(err)
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: *key}, (&jose.SignerOptions{}).WithType("JWT"))
	if err != nil {
		panic(err)
	}
	sig, err := signer.Sign(payload)
	if err != nil {
		panic(err)
	}
	out, err := sig.CompactSerialize()
	if err != nil {
		panic(err)
	}
	return out
}

// RSAKey is a new RSA signing key named kid.
func RSAKey(t testing.TB, kid string) *jose.JSONWebKey {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	return &jose.JSONWebKey{Key: k, KeyID: kid, Algorithm: string(jose.RS256), Use: "sig"}
}
