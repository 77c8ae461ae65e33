package wxsim

import (
	"crypto/subtle"
	"net/http"
)

// tokenResponse is the success answer of both token endpoints.
type tokenResponse struct {
	AccessToken string `json:"access_token"`
	ExpiresIn   int64  `json:"expires_in"`
}

// checkCredentials validates grant_type, appid and secret as both token
// endpoints do. Caller holds s.mu.
func (s *Sim) checkCredentials(grantType, appID, secret string) (*account, *APIError) {
	if grantType != "client_credential" {
		return nil, apiErr(CodeInvalidGrantType, "")
	}
	if appID == "" {
		return nil, apiErr(CodeMissingAppID, "")
	}
	if secret == "" {
		return nil, apiErr(CodeMissingSecret, "")
	}
	a, ok := s.accounts[appID]
	if !ok {
		return nil, apiErr(CodeInvalidAppID, "")
	}
	if subtle.ConstantTimeCompare([]byte(secret), []byte(a.AppSecret)) != 1 {
		return nil, apiErr(CodeInvalidAppSecret, "")
	}
	return a, nil
}

// handleToken serves GET cgi-bin/token: every call issues a new token, and
// the previous one dies TokenOverlap later.
func (s *Sim) handleToken(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	s.mu.Lock()
	a, e := s.checkCredentials(q.Get("grant_type"), q.Get("appid"), q.Get("secret"))
	if e == nil && !s.takeQuota(a, pathToken) {
		e = apiErr(CodeDailyQuota, "")
	}
	var resp tokenResponse
	if e == nil {
		tok, ttl := s.issuePlainToken(a)
		resp = tokenResponse{AccessToken: tok, ExpiresIn: int64(ttl.Seconds())}
	}
	s.mu.Unlock()
	if e != nil {
		s.writeAPIError(w, e)
		return
	}
	writeJSON(w, resp)
}

// stableTokenRequest is the body of cgi-bin/stable_token.
type stableTokenRequest struct {
	GrantType    string `json:"grant_type"`
	AppID        string `json:"appid"`
	Secret       string `json:"secret"`
	ForceRefresh bool   `json:"force_refresh"`
}

// handleStableToken serves POST cgi-bin/stable_token: the same token until
// it expires, unless force_refresh.
func (s *Sim) handleStableToken(w http.ResponseWriter, r *http.Request) {
	if e := requirePost(r); e != nil {
		s.writeAPIError(w, e)
		return
	}
	body, e := readBody(r)
	var req stableTokenRequest
	if e == nil {
		e = decodeJSON(body, &req)
	}
	if e != nil {
		s.writeAPIError(w, e)
		return
	}
	s.mu.Lock()
	a, e := s.checkCredentials(req.GrantType, req.AppID, req.Secret)
	if e == nil && !s.takeQuota(a, pathStableToken) {
		e = apiErr(CodeDailyQuota, "")
	}
	var resp tokenResponse
	if e == nil {
		tok, ttl, ie := s.issueStableToken(a, req.ForceRefresh)
		e = ie
		resp = tokenResponse{AccessToken: tok, ExpiresIn: int64(ttl.Seconds())}
	}
	s.mu.Unlock()
	if e != nil {
		s.writeAPIError(w, e)
		return
	}
	writeJSON(w, resp)
}
