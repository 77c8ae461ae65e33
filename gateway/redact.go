package gateway

import (
	"context"
	"errors"
	"net/url"
	"regexp"
)

// WeChat API URLs carry the access token (and cgi-bin/token the
// AppSecret) in the query, and Go's HTTP client quotes the URL in its
// errors, as does silenceper on non-200 answers. Everything the API
// client returns or logs goes through redact first.

// secretParam matches the query parameters whose values are secrets, in
// raw or URL-escaped form (access_token%3D...%26). A value ends at '&',
// an escaped '&' (%26), white space or a quote.
var secretParam = regexp.MustCompile(`(?i)((?:access_token|secret|appsecret|component_access_token)(?:=|%3D))` +
	`(?:[^&\s"'<>%]|%[013-9a-f][0-9a-f]|%2[0-57-9a-f]|%$)*`)

// redactedValue replaces secret parameter values.
const redactedValue = "REDACTED"

// redact returns s with the value of every access_token= (and secret=)
// parameter replaced by REDACTED.
func redact(s string) string {
	return secretParam.ReplaceAllString(s, "${1}"+redactedValue)
}

// redactedError is an error whose message had secrets removed. It
// unwraps only to a context error, if the original was one, so that
// errors.Is(err, context.DeadlineExceeded) keeps working while nothing
// that still holds the secret can be reached through the chain.
type redactedError struct {
	msg   string
	cause error
}

func (e *redactedError) Error() string { return e.msg }
func (e *redactedError) Unwrap() error { return e.cause }

// redactErr returns err with secrets removed from its message. A
// *url.Error is rebuilt with a redacted URL around the same cause (the
// cause of a transport error never holds the URL), so callers can still
// inspect it; any other error whose message needed redacting is
// flattened to a redactedError.
func redactErr(err error) error {
	if err == nil {
		return nil
	}
	if ue, ok := err.(*url.Error); ok {
		return &url.Error{Op: ue.Op, URL: redact(ue.URL), Err: redactErr(ue.Err)}
	}
	msg := err.Error()
	clean := redact(msg)
	if clean == msg {
		return err
	}
	re := &redactedError{msg: clean}
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		re.cause = context.DeadlineExceeded
	case errors.Is(err, context.Canceled):
		re.cause = context.Canceled
	}
	return re
}
