package gateway

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"testing"
)

func TestRedact(t *testing.T) {
	t.Parallel()
	tests := []struct{ in, want string }{
		{"https://api.weixin.qq.com/cgi-bin/media/get?access_token=ACCESS_TOKEN_abc-123&media_id=M1",
			"https://api.weixin.qq.com/cgi-bin/media/get?access_token=REDACTED&media_id=M1"},
		{"uri=https://api.weixin.qq.com/x?media_id=1&access_token=tok , statusCode=500",
			"uri=https://api.weixin.qq.com/x?media_id=1&access_token=REDACTED , statusCode=500"},
		{`Get "http://127.0.0.1:1/a?access_token=t0k": EOF`, `Get "http://127.0.0.1:1/a?access_token=REDACTED": EOF`},
		{"/cgi-bin/token?grant_type=client_credential&appid=wx1&secret=S3CR3T",
			"/cgi-bin/token?grant_type=client_credential&appid=wx1&secret=REDACTED"},
		{"escaped access_token%3Dabc%26x", "escaped access_token%3DREDACTED%26x"},
		{"ACCESS_TOKEN=abc upper", "ACCESS_TOKEN=REDACTED upper"},
		{"two: access_token=a&access_token=b", "two: access_token=REDACTED&access_token=REDACTED"},
		{"nothing secret here", "nothing secret here"},
		{"access_token= empty", "access_token=REDACTED empty"},
	}
	for _, tt := range tests {
		if got := redact(tt.in); got != tt.want {
			t.Errorf("redact(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestRedactErr(t *testing.T) {
	t.Parallel()
	if redactErr(nil) != nil {
		t.Fatal("redactErr(nil) != nil")
	}
	plain := errors.New("no secret")
	if redactErr(plain) != plain {
		t.Error("clean error replaced")
	}

	ue := &url.Error{Op: "Get", URL: "http://h/x?access_token=SECRET1&media_id=m", Err: context.DeadlineExceeded}
	got := redactErr(ue)
	if strings.Contains(got.Error(), "SECRET1") || !strings.Contains(got.Error(), "access_token=REDACTED") {
		t.Errorf("url.Error not redacted: %v", got)
	}
	if !errors.Is(got, context.DeadlineExceeded) {
		t.Errorf("url.Error cause lost: %v", got)
	}
	var ue2 *url.Error
	if !errors.As(got, &ue2) || strings.Contains(ue2.URL, "SECRET1") {
		t.Errorf("url.Error not preserved or still secret")
	}

	wrapped := fmt.Errorf("fetch: %w", &url.Error{Op: "Get", URL: "http://h/?access_token=SECRET2", Err: context.Canceled})
	got = redactErr(wrapped)
	if strings.Contains(got.Error(), "SECRET2") {
		t.Errorf("wrapped error not redacted: %v", got)
	}
	if !errors.Is(got, context.Canceled) {
		t.Errorf("context cause lost: %v", got)
	}
	// Nothing holding the secret is reachable through the chain.
	for e := got; e != nil; e = errors.Unwrap(e) {
		if strings.Contains(e.Error(), "SECRET2") {
			t.Errorf("secret reachable via Unwrap: %v", e)
		}
	}
}
