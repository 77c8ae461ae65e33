package wxsim

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
)

// API paths served, as on api.weixin.qq.com (showqrcode lives on
// mp.weixin.qq.com under the same path).
const (
	pathToken         = "/cgi-bin/token"
	pathStableToken   = "/cgi-bin/stable_token"
	pathCustomSend    = "/cgi-bin/message/custom/send"
	pathCustomTyping  = "/cgi-bin/message/custom/typing"
	pathTemplateSend  = "/cgi-bin/message/template/send"
	pathMediaUpload   = "/cgi-bin/media/upload"
	pathMediaGet      = "/cgi-bin/media/get"
	pathQRCodeCreate  = "/cgi-bin/qrcode/create"
	pathShowQRCode    = "/cgi-bin/showqrcode"
	pathUserInfo      = "/cgi-bin/user/info"
	pathUserGet       = "/cgi-bin/user/get"
	pathUserRemark    = "/cgi-bin/user/info/updateremark"
	pathGetCallbackIP = "/cgi-bin/getcallbackip"
	pathClearQuota    = "/cgi-bin/clear_quota"
)

// maxJSONBody bounds JSON request bodies; WeChat's own bodies are small.
const maxJSONBody = 1 << 20

// APIHandler serves the WeChat API paths under /cgi-bin/, with the
// configured faults applied before each call.
func (s *Sim) APIHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc(pathToken, s.handleToken)
	mux.HandleFunc(pathStableToken, s.handleStableToken)
	mux.HandleFunc(pathCustomSend, s.handleCustomSend)
	mux.HandleFunc(pathCustomTyping, s.handleTyping)
	mux.HandleFunc(pathTemplateSend, s.handleTemplateSend)
	mux.HandleFunc(pathMediaUpload, s.handleMediaUpload)
	mux.HandleFunc(pathMediaGet, s.handleMediaGet)
	mux.HandleFunc(pathQRCodeCreate, s.handleQRCreate)
	mux.HandleFunc(pathShowQRCode, s.handleShowQRCode)
	mux.HandleFunc(pathUserInfo, s.handleUserInfo)
	mux.HandleFunc(pathUserGet, s.handleUserGet)
	mux.HandleFunc(pathUserRemark, s.handleUserRemark)
	mux.HandleFunc(pathGetCallbackIP, s.handleCallbackIP)
	mux.HandleFunc(pathClearQuota, s.handleClearQuota)
	mux.HandleFunc("/cgi-bin/", func(w http.ResponseWriter, r *http.Request) {
		// An API the simulator does not know: say so in WeChat's terms.
		s.writeAPIError(w, apiErr(CodeAPIUnauthorized, "not simulated by wxsim"))
	})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.applyFault(w, r) {
			return
		}
		mux.ServeHTTP(w, r)
	})
}

// writeJSON answers v as WeChat does: HTTP 200, its content type, no HTML
// escaping.
func writeJSON(w http.ResponseWriter, v any) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json; encoding=utf-8")
	_, _ = w.Write(b.Bytes())
}

// writeAPIError answers e with a request id appended to errmsg, as WeChat
// does.
func (s *Sim) writeAPIError(w http.ResponseWriter, e *APIError) {
	writeJSON(w, APIError{Code: e.Code, Msg: e.Msg + " rid: " + s.rid()})
}

// writeOK answers {"errcode":0,"errmsg":"ok"}.
func writeOK(w http.ResponseWriter) { writeJSON(w, APIError{Code: 0, Msg: "ok"}) }

// readBody reads a JSON request body: 44002 when empty, 47001 when too big
// or unreadable.
func readBody(r *http.Request) ([]byte, *APIError) {
	b, err := io.ReadAll(io.LimitReader(r.Body, maxJSONBody+1))
	if err != nil {
		return nil, apiErr(CodeDataFormat, "")
	}
	if len(b) > maxJSONBody {
		return nil, apiErr(CodeDataFormat, "body too large")
	}
	if len(bytes.TrimSpace(b)) == 0 {
		return nil, apiErr(CodeEmptyPostData, "")
	}
	return b, nil
}

// decodeJSON parses a request body into v: 47001 when it is not JSON of
// the right shape.
func decodeJSON(b []byte, v any) *APIError {
	if err := json.Unmarshal(b, v); err != nil {
		var syn *json.SyntaxError
		if errors.As(err, &syn) {
			return apiErr(CodeDataFormat, "invalid json")
		}
		return apiErr(CodeDataFormat, "")
	}
	return nil
}

// authLocked checks the request's access_token and counts the call of path
// against the account's daily quota. Caller holds s.mu.
func (s *Sim) authLocked(r *http.Request, path string) (*account, *APIError) {
	a, e := s.checkToken(r.URL.Query().Get("access_token"))
	if e != nil {
		return nil, e
	}
	if !s.takeQuota(a, path) {
		return nil, apiErr(CodeDailyQuota, "")
	}
	return a, nil
}

// requirePost answers 43002 for methods other than POST.
func requirePost(r *http.Request) *APIError {
	if r.Method != http.MethodPost {
		return apiErr(CodeRequirePost, "")
	}
	return nil
}
