package configs

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The journal section: checked by check-config, its password from the
// environment (or its _FILE).
func TestJournalConfig(t *testing.T) {
	example, err := os.ReadFile("relay.example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	write := func(journal string) string {
		p := filepath.Join(t.TempDir(), "relay.yaml")
		head, section, _ := strings.Cut(string(example), "\njournal:\n")
		body := strings.Replace(section, "  host: \"\"", "  host: smtp.example.com", 1)
		body = strings.Replace(body, "  username: \"\"", "  username: relay", 1)
		body = strings.Replace(body, "  from: \"\"", "  from: relay@example.com", 1)
		body = strings.Replace(body, "  journal_address: \"\"", journal, 1)
		body = strings.Replace(body, "  domain: \"\"", "  domain: wechat.example.com", 1)
		if err := os.WriteFile(p, []byte(head+"\njournal:\n"+body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	env := map[string]string{
		"WR_ACCOUNT_MAIN_APP_SECRET": "s3cret", "WR_ACCOUNT_MAIN_TOKEN": "tok",
		"WR_ACCOUNT_MAIN_ENCODING_AES_KEY": "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG",
		"WR_CONSOLE_TOKEN_ALICE":           "alice-token-0123456789", "WR_CONSOLE_TOKEN_SUE": "sue-token-0123456789ab",
		"WR_CONSOLE_TOKEN_LIN":          "lin-token-0123456789ab",
		"WR_CONSOLE_PASSWORD_HASH_ROOT": "$2a$10$N9qo8uLOickgx2ZMRZoMyeIjZAgcfl7p92ldGxad68LJZdL17lhWy",
	}
	good := write("  journal_address: journal@archive.example.com")
	if _, err := Check(good, envMap(env)); err == nil || !strings.Contains(err.Error(), "WR_JOURNAL_PASSWORD") {
		t.Errorf("a journal without a password: check-config says %v, want it to name WR_JOURNAL_PASSWORD", err)
	}
	pw := filepath.Join(t.TempDir(), "pw")
	if err := os.WriteFile(pw, []byte("smtp-secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	env["WR_JOURNAL_PASSWORD_FILE"] = pw
	cfg, err := Check(good, envMap(env))
	if err != nil {
		t.Fatalf("check-config: %v", err)
	}
	if cfg.Journal.Password != "smtp-secret" || !cfg.Journal.Enabled() {
		t.Errorf("journal: password %q, enabled %v", cfg.Journal.Password, cfg.Journal.Enabled())
	}
	bad := write("  journal_address: not-an-address")
	if _, err := Check(bad, envMap(env)); err == nil || !strings.Contains(err.Error(), "journal.journal_address") {
		t.Errorf("a bad journal address: check-config says %v", err)
	}
}
