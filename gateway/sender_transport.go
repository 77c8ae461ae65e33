package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"

	"github.com/wechat-relay/wechat-relay/relay"
)

// maxAnswerBytes bounds a WeChat API answer. Real answers are a few
// hundred bytes.
const maxAnswerBytes = 1 << 20

// post sends one POST and returns the status and body of the answer. Its
// error is already classified: it wraps relay.ErrOutcomeUnknown when the
// whole request may have reached the server, and is a plain error when
// it certainly did not.
//
// Whether the request may have arrived is decided by a gate on the
// request body (see bodyGate), not by httptrace's WroteRequest: that
// callback runs on the transport's writer goroutine and may come after
// Do has returned, so reading it then could miss a request that was
// written. The gate is closed before it is read, so a request judged not
// sent can never be completed afterwards.
func (s *Sender) post(ctx context.Context, rawURL, contentType string, body []byte) (int, []byte, error) {
	gate := &bodyGate{}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, rawURL, nil)
	if err != nil {
		return 0, nil, fmt.Errorf("build request: %w", redactErr(err))
	}
	req.Header.Set("Content-Type", contentType)
	req.ContentLength = int64(len(body))
	req.Body = gate.reader(body)
	req.GetBody = func() (io.ReadCloser, error) { return gate.reader(body), nil }

	resp, err := s.client.Do(req)
	if err != nil {
		err = redactErr(err)
		if !gate.close() {
			return 0, nil, fmt.Errorf("request not sent: %w", err)
		}
		return 0, nil, fmt.Errorf("%w: request sent, no answer: %w", relay.ErrOutcomeUnknown, err)
	}
	defer resp.Body.Close()
	gate.close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswerBytes+1))
	if err != nil {
		return 0, nil, fmt.Errorf("%w: HTTP %d, answer lost while reading: %w", relay.ErrOutcomeUnknown, resp.StatusCode, redactErr(err))
	}
	if len(data) > maxAnswerBytes {
		return 0, nil, fmt.Errorf("%w: HTTP %d, answer larger than %d bytes", relay.ErrOutcomeUnknown, resp.StatusCode, maxAnswerBytes)
	}
	return resp.StatusCode, data, nil
}

// errGateClosed fails the transport's reads of a request body after the
// sender has decided the request was not sent.
var errGateClosed = errors.New("request abandoned")

// bodyGate records whether the transport has taken the last bytes of a
// request body. A server cannot act on a POST whose body it has not
// received in full (the Content-Length is set), so a body never taken in
// full proves the request was not delivered. After close, the body hands
// out nothing more, so that proof cannot be overtaken by a late write.
// One gate serves every copy of the body the transport asks for
// (GetBody, on a retry over a fresh connection).
type bodyGate struct {
	mu       sync.Mutex
	consumed bool // the last bytes of some copy were handed out
	closed   bool
}

// reader returns a copy of body behind the gate.
func (g *bodyGate) reader(body []byte) io.ReadCloser {
	return &gatedBody{gate: g, r: bytes.NewReader(body)}
}

// close shuts the gate and reports whether the body was consumed, that
// is whether the request may have been delivered.
func (g *bodyGate) close() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.closed = true
	return g.consumed
}

type gatedBody struct {
	gate *bodyGate
	r    *bytes.Reader
}

func (b *gatedBody) Read(p []byte) (int, error) {
	g := b.gate
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return 0, errGateClosed
	}
	n, err := b.r.Read(p)
	if b.r.Len() == 0 {
		g.consumed = true
	}
	return n, err
}

func (b *gatedBody) Close() error { return nil }

// apiAnswer is the part every WeChat API answer may carry.
type apiAnswer struct {
	ErrCode *int   `json:"errcode"`
	ErrMsg  string `json:"errmsg"`
}

// interpretAnswer turns an HTTP answer into the Sender's error contract
// and, on success, decodes it into out. tok is scrubbed from WeChat's
// errmsg, in case an answer ever quotes it.
//
//   - A JSON object with a non-zero errcode, whatever the status, is
//     WeChat refusing the call: *relay.SendError.
//   - A JSON object without errcode or with 0 and a 2xx status is a
//     success (WeChat omits errcode in some successful answers, such as
//     media/upload's).
//   - Anything else with a 5xx status, or a 2xx body that is not WeChat's
//     JSON: outcome unknown. A gateway or proxy answering 502/504 may
//     have forwarded the request and lost the answer, and a 500 or 503
//     cannot be told apart from that.
//   - Anything else (3xx, 4xx without an errcode): something in front of
//     WeChat (an egress proxy, a wrong base URL) refused the request as
//     such; WeChat's API itself answers 200 with an errcode. Not sent.
func interpretAnswer(status int, data []byte, tok string, out any) error {
	var ans apiAnswer
	trimmed := bytes.TrimSpace(data)
	isJSON := len(trimmed) > 0 && trimmed[0] == '{' && json.Unmarshal(trimmed, &ans) == nil
	ok2xx := status >= 200 && status < 300
	switch {
	case isJSON && ans.ErrCode != nil && *ans.ErrCode != 0:
		return &relay.SendError{Code: *ans.ErrCode, Msg: scrubToken(ans.ErrMsg, tok)}
	case isJSON && ok2xx:
		if out != nil {
			if err := json.Unmarshal(trimmed, out); err != nil {
				return fmt.Errorf("%w: errcode 0 but the answer does not decode: %w", relay.ErrOutcomeUnknown, err)
			}
		}
		return nil
	case ok2xx || status >= 500:
		return fmt.Errorf("%w: HTTP %d with an answer that is not WeChat's JSON", relay.ErrOutcomeUnknown, status)
	}
	return fmt.Errorf("HTTP %d without a WeChat errcode: refused before reaching WeChat's API", status)
}

// scrubToken removes tok, and any access_token= value, from s.
func scrubToken(s, tok string) string {
	if tok != "" {
		s = strings.ReplaceAll(s, tok, redactedValue)
	}
	return redact(s)
}
