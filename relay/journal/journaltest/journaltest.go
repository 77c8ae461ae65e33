// Package journaltest is a real SMTP server for the journal's tests
// (relay/journal, deployments/e2e): go-smtp in the test's process, with
// STARTTLS on a certificate made for the test and AUTH PLAIN only after
// it, and a hook that decides each message's fate.
package journaltest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"io"
	"math/big"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net"
	"net/mail"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"github.com/wechat-relay/wechat-relay/relay/journal"
)

// Server is a real SMTP server in the test's process (go-smtp):
// STARTTLS with a certificate made for the test, AUTH PLAIN only after
// it, and a hook that decides each message's fate.
type Server struct {
	Host   string
	Port   int
	CAFile string // the certificate, PEM, for journal.Config.CAFile

	mu       sync.Mutex
	received []Mail
	attempts int // DATA commands seen
	// hook, when set, is called with the attempt's number (from 1), the
	// message read so far and the connection; a non-nil error is the
	// server's answer instead of 250. It may read the rest of r itself.
	hook func(attempt int, r io.Reader, c *smtp.Conn) error
}

// Mail is a message the server answered 250 to (or took and
// then lost the answer of: see the hooks).
type Mail struct {
	From, To string // the envelope
	User     string // who authenticated
	TLS      bool   // the message came over TLS
	Raw      []byte
	Msg      *mail.Message
}

const (
	User     = "journal-user"
	Password = "s3cret-journal"
)

func Start(t testing.TB) *Server {
	t.Helper()
	cert, caFile := testCertificate(t)
	s := &Server{Host: "127.0.0.1", CAFile: caFile}
	srv := smtp.NewServer(smtp.BackendFunc(func(c *smtp.Conn) (smtp.Session, error) {
		return &smtpSession{srv: s, conn: c}, nil
	}))
	srv.Domain = "journal.test"
	srv.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}}
	srv.AllowInsecureAuth = false
	srv.ReadTimeout = time.Minute
	srv.WriteTimeout = time.Minute
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s.Port = l.Addr().(*net.TCPAddr).Port
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { _ = srv.Close() })
	return s
}

func (s *Server) SetHook(h func(attempt int, r io.Reader, c *smtp.Conn) error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.hook = h
}

func (s *Server) Mails() []Mail {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Mail(nil), s.received...)
}

// testCertificate makes a self-signed certificate for 127.0.0.1 and
// writes it as PEM for the client to trust.
func testCertificate(t testing.TB) (tls.Certificate, string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "journal test server"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IPAddresses:           []net.IP{net.ParseIP("127.0.0.1")},
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := tls.X509KeyPair(certPEM, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}))
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(path, certPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	return cert, path
}

type smtpSession struct {
	srv      *Server
	conn     *smtp.Conn
	user     string
	from, to string
}

func (s *smtpSession) AuthMechanisms() []string { return []string{sasl.Plain} }

func (s *smtpSession) Auth(mech string) (sasl.Server, error) {
	return sasl.NewPlainServer(func(identity, username, password string) error {
		if username != User || password != Password {
			return smtp.ErrAuthFailed
		}
		s.user = username
		return nil
	}), nil
}

func (s *smtpSession) Mail(from string, _ *smtp.MailOptions) error {
	if s.user == "" {
		return smtp.ErrAuthRequired
	}
	s.from = from
	return nil
}

func (s *smtpSession) Rcpt(to string, _ *smtp.RcptOptions) error {
	s.to = to
	return nil
}

func (s *smtpSession) Data(r io.Reader) error {
	s.srv.mu.Lock()
	s.srv.attempts++
	attempt, hook := s.srv.attempts, s.srv.hook
	s.srv.mu.Unlock()
	var buf strings.Builder
	tee := io.TeeReader(r, &buf)
	var drop bool
	if hook != nil {
		err := hook(attempt, tee, s.conn)
		switch {
		case errors.Is(err, ErrTakeAndDrop):
			drop = true
		case err != nil:
			_, _ = io.Copy(io.Discard, r)
			return err
		}
	}
	if _, err := io.Copy(io.Discard, tee); err != nil {
		return err
	}
	raw := []byte(buf.String())
	msg, err := mail.ReadMessage(strings.NewReader(buf.String()))
	if err != nil {
		return &smtp.SMTPError{Code: 554, Message: "unparsable message: " + err.Error()}
	}
	_, isTLS := s.conn.TLSConnectionState()
	s.srv.mu.Lock()
	s.srv.received = append(s.srv.received, Mail{From: s.from, To: s.to, User: s.user, TLS: isTLS, Raw: raw, Msg: msg})
	s.srv.mu.Unlock()
	if drop {
		// Taken, but the answer is lost: the connection closes first.
		_ = s.conn.Close()
		return ErrTakeAndDrop
	}
	return nil
}

// ErrTakeAndDrop, from a hook: the server keeps the message and closes
// the connection before answering.
var ErrTakeAndDrop = errors.New("taken, answer lost")

func (s *smtpSession) Reset()        { s.from, s.to = "", "" }
func (s *smtpSession) Logout() error { return nil }

// Answer is a refusal with code.
func Answer(code int, text string) error {
	return &smtp.SMTPError{Code: code, EnhancedCode: smtp.EnhancedCode{code / 100, 0, 0}, Message: text}
}

// Parts returns the decoded parts of m by content type.
func Parts(t testing.TB, m Mail) map[string]string {
	t.Helper()
	out := map[string]string{}
	var walk func(ct string, body io.Reader, enc string)
	walk = func(ct string, body io.Reader, enc string) {
		mt, params, err := mime.ParseMediaType(ct)
		if err != nil {
			t.Fatalf("content type %q: %v", ct, err)
		}
		if strings.HasPrefix(mt, "multipart/") {
			mr := multipart.NewReader(body, params["boundary"])
			for {
				p, err := mr.NextRawPart()
				if err == io.EOF {
					return
				}
				if err != nil {
					t.Fatal(err)
				}
				walk(p.Header.Get("Content-Type"), p, p.Header.Get("Content-Transfer-Encoding"))
			}
		}
		out[mt] = decode(t, body, enc)
	}
	_, body, _ := strings.Cut(strings.ReplaceAll(string(m.Raw), "\r\n", "\n"), "\n\n")
	walk(m.Msg.Header.Get("Content-Type"), strings.NewReader(strings.ReplaceAll(body, "\n", "\r\n")), m.Msg.Header.Get("Content-Transfer-Encoding"))
	return out
}

// decode undoes a part's transfer encoding.
func decode(t testing.TB, r io.Reader, enc string) string {
	t.Helper()
	switch strings.ToLower(enc) {
	case "base64":
		r = base64.NewDecoder(base64.StdEncoding, r) // skips line breaks
	case "quoted-printable":
		r = quotedprintable.NewReader(r)
	}
	b, err := io.ReadAll(r)
	if err != nil {
		t.Fatalf("decoding %s: %v", enc, err)
	}
	return string(b)
}

// Config is a journal configuration sending to s, as User, with
// addresses under domain; short timeouts and backoff, for tests.
func (s *Server) Config(domain string) journal.Config {
	return journal.Config{
		Host: s.Host, Port: s.Port, CAFile: s.CAFile, Username: User, Password: Password,
		From: "relay@" + domain, To: "journal@archive.example.com", Domain: domain,
		BatchSize: 4, Timeout: 2 * time.Second,
		PollInterval: 10 * time.Millisecond, MaxBackoff: 50 * time.Millisecond,
	}
}
