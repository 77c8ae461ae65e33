package wxsim

import "fmt"

// WeChat API error codes the simulator answers with. The messages are
// WeChat's own (errmsg), to which a " rid: …" request id is appended as the
// real platform does; callers must compare codes, never messages.
const (
	CodeOK                 = 0
	CodeSystemBusy         = -1    // system error / system busy
	CodeInvalidCredential  = 40001 // invalid or superseded access_token
	CodeInvalidGrantType   = 40002
	CodeInvalidOpenID      = 40003
	CodeInvalidMediaType   = 40004
	CodeInvalidFileType    = 40005
	CodeInvalidMediaID     = 40007
	CodeInvalidMessageType = 40008
	CodeInvalidImageSize   = 40009
	CodeInvalidVoiceSize   = 40010
	CodeInvalidVideoSize   = 40011
	CodeInvalidThumbSize   = 40012
	CodeInvalidAppID       = 40013
	CodeInvalidArgs        = 40035
	CodeInvalidTemplateID  = 40037
	CodeInvalidActionInfo  = 40053
	CodeInvalidCardID      = 40073
	CodeInvalidAppSecret   = 40125
	CodeMissingToken       = 41001
	CodeMissingAppID       = 41002
	CodeMissingSecret      = 41004
	CodeMissingMediaData   = 41005
	CodeMissingMediaID     = 41006
	CodeTokenExpired       = 42001
	CodeRequirePost        = 43002
	CodeRequireSubscribe   = 43004
	CodeEmptyMediaData     = 44001
	CodeEmptyPostData      = 44002
	CodeEmptyNewsData      = 44003
	CodeEmptyContent       = 44004
	CodeContentTooLong     = 45002
	CodeTooManyArticles    = 45008
	CodeDailyQuota         = 45009
	CodeOutOfWindow        = 45015
	CodeOutOfResponseCount = 45047
	CodeDataFormat         = 47001
	CodeAPIUnauthorized    = 48001
	CodeInvalidKFAccount   = 65401
)

// errMessages are WeChat's errmsg texts for the codes above.
var errMessages = map[int]string{
	CodeOK:                 "ok",
	CodeSystemBusy:         "system error",
	CodeInvalidCredential:  "invalid credential, access_token is invalid or not latest",
	CodeInvalidGrantType:   "invalid grant_type",
	CodeInvalidOpenID:      "invalid openid",
	CodeInvalidMediaType:   "invalid media type",
	CodeInvalidFileType:    "invalid file type",
	CodeInvalidMediaID:     "invalid media_id",
	CodeInvalidMessageType: "invalid message type",
	CodeInvalidImageSize:   "invalid image size",
	CodeInvalidVoiceSize:   "invalid voice size",
	CodeInvalidVideoSize:   "invalid video size",
	CodeInvalidThumbSize:   "invalid thumb size",
	CodeInvalidAppID:       "invalid appid",
	CodeInvalidArgs:        "invalid args",
	CodeInvalidTemplateID:  "invalid template_id",
	CodeInvalidActionInfo:  "invalid action info",
	CodeInvalidCardID:      "invalid card id",
	CodeInvalidAppSecret:   "invalid appsecret",
	CodeMissingToken:       "access_token missing",
	CodeMissingAppID:       "appid missing",
	CodeMissingSecret:      "appsecret missing",
	CodeMissingMediaData:   "media data missing",
	CodeMissingMediaID:     "media_id missing",
	CodeTokenExpired:       "access_token expired",
	CodeRequirePost:        "require POST method",
	CodeRequireSubscribe:   "require subscribe",
	CodeEmptyMediaData:     "empty media data",
	CodeEmptyPostData:      "empty post data",
	CodeEmptyNewsData:      "empty news data",
	CodeEmptyContent:       "empty content",
	CodeContentTooLong:     "content size out of limit",
	CodeTooManyArticles:    "article size out of limit",
	CodeDailyQuota:         "reach max api daily quota limit",
	CodeOutOfWindow:        "response out of time limit or subscription is canceled",
	CodeOutOfResponseCount: "out of response count limit",
	CodeDataFormat:         "data format error",
	CodeAPIUnauthorized:    "api unauthorized",
	CodeInvalidKFAccount:   "invalid kf_account",
}

// APIError is a WeChat API error as the simulator answers it: errcode and
// errmsg (without the rid suffix).
type APIError struct {
	Code int    `json:"errcode"`
	Msg  string `json:"errmsg"`
}

// Error implements error.
func (e *APIError) Error() string { return fmt.Sprintf("errcode=%d errmsg=%s", e.Code, e.Msg) }

// apiErr builds the APIError for code with WeChat's message for it, plus an
// optional hint in WeChat's " hint: [...]" style.
func apiErr(code int, hint string) *APIError {
	msg, ok := errMessages[code]
	if !ok {
		msg = "unknown error"
	}
	if hint != "" {
		msg += " hint: [" + hint + "]"
	}
	return &APIError{Code: code, Msg: msg}
}
