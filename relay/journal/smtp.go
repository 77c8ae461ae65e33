package journal

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/textproto"
	"os"
	"strings"
	"time"

	"github.com/wneessen/go-mail"
	"github.com/wneessen/go-mail/smtp"
)

// loadCAs returns the system's roots plus the certificates of the PEM
// file at path.
func loadCAs(path string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	pool, err := x509.SystemCertPool()
	if err != nil || pool == nil {
		pool = x509.NewCertPool()
	}
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("%s holds no PEM certificate", path)
	}
	return pool, nil
}

// transport opens SMTP sessions to the configured server: STARTTLS
// required and verified, then AUTH. go-mail dials, says EHLO, starts TLS
// and authenticates; the session then speaks MAIL, RCPT and DATA itself,
// because the envelope (the journal address) is not the headers' From
// and To (the client and the employee).
type transport struct {
	cfg Config
	tls *tls.Config
}

func newTransport(cfg Config) (*transport, error) {
	tc := &tls.Config{ServerName: cfg.Host, MinVersion: tls.VersionTLS12}
	if cfg.CAFile != "" {
		pool, err := loadCAs(cfg.CAFile)
		if err != nil {
			return nil, fmt.Errorf("journal: ca_file: %w", err)
		}
		tc.RootCAs = pool
	}
	return &transport{cfg: cfg, tls: tc}, nil
}

// session is one SMTP connection, ready for messages.
type session struct {
	c       *smtp.Client
	timeout time.Duration
	stop    func() bool // stops closing the connection when ctx ends
}

// open connects, starts TLS, authenticates. The connection is closed
// when ctx ends, which ends whatever step is waiting.
func (t *transport) open(ctx context.Context) (*session, error) {
	client, err := mail.NewClient(t.cfg.Host,
		mail.WithPort(t.cfg.Port),
		mail.WithTLSPolicy(mail.TLSMandatory),
		mail.WithTLSConfig(t.tls),
		mail.WithSMTPAuth(mail.SMTPAuthAutoDiscover),
		mail.WithUsername(t.cfg.Username),
		mail.WithPassword(t.cfg.Password),
		mail.WithTimeout(t.cfg.Timeout),
	)
	if err != nil {
		return nil, fmt.Errorf("journal: setting up the SMTP client: %w", err)
	}
	c, err := client.DialToSMTPClientWithContext(ctx)
	if err != nil {
		return nil, fmt.Errorf("journal: connecting to %s: %w", client.ServerAddr(), err)
	}
	s := &session{c: c, timeout: t.cfg.Timeout}
	s.stop = context.AfterFunc(ctx, func() { _ = c.Close() })
	return s, nil
}

// send hands msg to the server for the envelope from → to and returns
// the server's answer to its data ("250 2.0.0 Ok: queued as ..."). An
// error means the server did not say it took the message (it may have,
// if the answer was lost: the journal delivers at least once).
func (s *session) send(from, to string, msg *mail.Msg) (string, error) {
	step := func(what string, f func() error) error {
		if err := s.c.UpdateDeadline(s.timeout); err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		if err := f(); err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		return nil
	}
	if err := step("MAIL FROM", func() error { return s.c.Mail(from) }); err != nil {
		return "", err
	}
	if err := step("RCPT TO", func() error { return s.c.Rcpt(to) }); err != nil {
		return "", err
	}
	var w interface {
		Write([]byte) (int, error)
		Close() error
	}
	if err := step("DATA", func() (err error) { w, err = s.c.Data(); return err }); err != nil {
		return "", err
	}
	if err := step("sending the message", func() error { _, err := msg.WriteTo(w); return err }); err != nil {
		return "", err
	}
	if err := step("ending the message", w.Close); err != nil {
		return "", err
	}
	answer := "250"
	if dc, ok := w.(*smtp.DataCloser); ok && dc.ServerResponse() != "" {
		answer += " " + dc.ServerResponse()
	}
	return answer, nil
}

// abort closes the connection.
func (s *session) abort() {
	s.stop()
	_ = s.c.Close()
}

// close says QUIT (briefly) and closes the connection.
func (s *session) close() {
	s.stop()
	_ = s.c.UpdateDeadline(5 * time.Second)
	if err := s.c.Quit(); err != nil {
		_ = s.c.Close()
	}
}

// failure names the kind of a failed send, for the metric and the
// status: "refused" (5xx: the server will not take it as it is),
// "deferred" (4xx: try later) or "connection" (no answer: network,
// TLS, timeout, a closed connection).
func failure(err error) string {
	var te *textproto.Error
	if errors.As(err, &te) {
		if te.Code >= 500 {
			return "refused"
		}
		return "deferred"
	}
	if strings.Contains(err.Error(), "SMTP AUTH failed") {
		return "refused" // go-mail reports the server's answer as text
	}
	return "connection"
}
