package wxsim

import (
	"time"
)

// tokenKind tells which endpoint issued a token; the two families are
// independent, as WeChat documents for stable_token.
type tokenKind int

const (
	tokenPlain  tokenKind = iota // cgi-bin/token
	tokenStable                  // cgi-bin/stable_token
)

// accessToken is an issued access_token.
type accessToken struct {
	appID   string
	kind    tokenKind
	issued  time.Time
	expires time.Time
	// revoked is when a newer token of the same family superseded this
	// one (zero: never). From then on the token answers 40001.
	revoked time.Time
}

// tokenGrace is how long an expired token is remembered (to answer 42001
// rather than 40001) before it is forgotten.
const tokenGrace = 24 * time.Hour

// pruneTokens forgets tokens that ended long ago. Caller holds s.mu.
func (s *Sim) pruneTokens(now time.Time) {
	for k, t := range s.tokens {
		end := t.expires
		if !t.revoked.IsZero() && t.revoked.Before(end) {
			end = t.revoked
		}
		if now.Sub(end) > tokenGrace {
			delete(s.tokens, k)
		}
	}
}

// issuePlainToken issues a new cgi-bin/token token. The previous one keeps
// working for TokenOverlap (or until it expires, if sooner), then answers
// 40001. Caller holds s.mu.
func (s *Sim) issuePlainToken(a *account) (string, time.Duration) {
	now := s.clock.Now()
	s.pruneTokens(now)
	if old, ok := s.tokens[a.plainToken]; ok && old.revoked.IsZero() {
		old.revoked = now.Add(s.cfg.TokenOverlap)
	}
	tok := s.newToken(a.AppID, tokenPlain, now)
	a.plainToken = tok
	return tok, s.cfg.TokenTTL
}

// issueStableToken answers cgi-bin/stable_token: the current token while it
// is valid, unless force; a forced refresh invalidates the previous token
// at once (WeChat: "会导致上次获取的 access_token 失效") and counts against
// StableForceRefreshPerDay. Caller holds s.mu.
func (s *Sim) issueStableToken(a *account, force bool) (string, time.Duration, *APIError) {
	now := s.clock.Now()
	if cur, ok := s.tokens[a.stableToken]; ok && !force && cur.valid(now) == nil {
		return a.stableToken, cur.expires.Sub(now).Truncate(time.Second), nil
	}
	if force {
		a.rollQuotaDay(now)
		if a.forceRefreshes >= s.cfg.StableForceRefreshPerDay {
			return "", 0, apiErr(CodeDailyQuota, "force_refresh")
		}
		a.forceRefreshes++
		if cur, ok := s.tokens[a.stableToken]; ok && cur.revoked.IsZero() {
			cur.revoked = now
		}
	}
	s.pruneTokens(now)
	tok := s.newToken(a.AppID, tokenStable, now)
	a.stableToken = tok
	return tok, s.cfg.TokenTTL, nil
}

func (s *Sim) newToken(appID string, kind tokenKind, now time.Time) string {
	var tok string
	for {
		tok = newAccessToken(s.rng)
		if _, dup := s.tokens[tok]; !dup {
			break
		}
	}
	s.tokens[tok] = &accessToken{appID: appID, kind: kind, issued: now, expires: now.Add(s.cfg.TokenTTL)}
	return tok
}

// valid answers nil, 40001 for a superseded token, or 42001 for an expired
// one.
func (t *accessToken) valid(now time.Time) *APIError {
	revoked := !t.revoked.IsZero() && !now.Before(t.revoked)
	expired := !now.Before(t.expires)
	switch {
	case revoked && (!expired || t.revoked.Before(t.expires)):
		return apiErr(CodeInvalidCredential, "")
	case expired:
		return apiErr(CodeTokenExpired, "")
	}
	return nil
}

// checkToken resolves an access_token to its account: 41001 when missing,
// 40001 when unknown or superseded, 42001 when expired. Caller holds s.mu.
func (s *Sim) checkToken(tok string) (*account, *APIError) {
	if tok == "" {
		return nil, apiErr(CodeMissingToken, "")
	}
	t, ok := s.tokens[tok]
	if !ok {
		return nil, apiErr(CodeInvalidCredential, "")
	}
	if e := t.valid(s.clock.Now()); e != nil {
		return nil, e
	}
	a, ok := s.accounts[t.appID]
	if !ok {
		return nil, apiErr(CodeInvalidCredential, "")
	}
	return a, nil
}
