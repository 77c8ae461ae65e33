package journal_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/wechat-relay/wechat-relay/relay/journal"
	"github.com/wechat-relay/wechat-relay/relay/journal/journaltest"
	"github.com/wechat-relay/wechat-relay/storage/testenv"
)

func TestConfigValidate(t *testing.T) {
	if err := (journal.Config{}).Validate(); err != nil {
		t.Errorf("a journal without host is off, and fine: %v", err)
	}
	good := journal.Config{Host: "smtp.example.com", Username: "u", Password: "p", From: "relay@example.com",
		To: "journal@example.com", Domain: "wechat.example.com"}
	if err := good.Validate(); err != nil {
		t.Fatalf("good config: %v", err)
	}
	pw := filepath.Join(t.TempDir(), "pw")
	if err := os.WriteFile(pw, []byte("from-file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	no := false
	for name, c := range map[string]struct {
		edit func(*journal.Config)
		want string
	}{
		"clear text":   {func(c *journal.Config) { c.StartTLS = &no }, "journal.starttls"},
		"no username":  {func(c *journal.Config) { c.Username = "" }, "journal.username"},
		"no password":  {func(c *journal.Config) { c.Password = "" }, "no password"},
		"missing file": {func(c *journal.Config) { c.Password, c.PasswordFile = "", pw+"x" }, "journal.password_file"},
		"bad from":     {func(c *journal.Config) { c.From = "Relay <relay@example.com>" }, "journal.from"},
		"bad journal":  {func(c *journal.Config) { c.To = "nobody" }, "journal.journal_address"},
		"bad domain":   {func(c *journal.Config) { c.Domain = "no spaces allowed.com" }, "journal.domain"},
		"bad port":     {func(c *journal.Config) { c.Port = 70000 }, "journal.port"},
		"bad since":    {func(c *journal.Config) { c.Since = "yesterday" }, "journal.since"},
		"bad ca file":  {func(c *journal.Config) { c.CAFile = pw }, "journal.ca_file"},
		"missing ca":   {func(c *journal.Config) { c.CAFile = pw + "x" }, "journal.ca_file"},
	} {
		cfg := good
		c.edit(&cfg)
		err := cfg.Validate()
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: Validate = %v, want an error naming %s", name, err, c.want)
		}
	}
	fromFile := good
	fromFile.Password, fromFile.PasswordFile = "", pw
	if err := fromFile.Validate(); err != nil {
		t.Errorf("password from a file: %v", err)
	}
	if err := fromFile.LoadPassword(); err != nil || fromFile.Password != "from-file" {
		t.Errorf("LoadPassword = %v, password %q", err, fromFile.Password)
	}
}

// The journal sends nothing to a server whose certificate it cannot
// verify, nor without authenticating; the status says why.
func TestJournalRefusesAnUnverifiedServerAndWrongCredentials(t *testing.T) {
	for _, c := range []struct {
		name  string
		edit  func(*journal.Config)
		error string
		kind  string
	}{
		{"unverified certificate", func(c *journal.Config) { c.CAFile = "" }, "certificate", "connection"},
		{"wrong password", func(c *journal.Config) { c.Password = "wrong" }, "535", "refused"},
	} {
		t.Run(c.name, func(t *testing.T) {
			s := journaltest.Start(t)
			a := openArchive(t)
			archived(t, a, []string{"o_a"}, 1)
			cfg := config(s)
			c.edit(&cfg)
			w, _ := run(t, cfg, a, nil, "i1")
			testenv.Until(t, "an error naming "+c.error, func() bool {
				return strings.Contains(w.Status(t.Context()).LastError, c.error)
			})
			if st := w.Status(t.Context()); st.LastErrorKind != c.kind {
				t.Errorf("a %q failure, want %s", st.LastErrorKind, c.kind)
			}
			if n := len(s.Mails()); n != 0 {
				t.Errorf("%d emails sent", n)
			}
		})
	}
}
