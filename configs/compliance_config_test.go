package configs

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestComplianceConfig(t *testing.T) {
	dir := t.TempDir()
	env := envMap(map[string]string{
		"WR_ACCOUNT_MAIN_APP_SECRET": "s3cret", "WR_ACCOUNT_MAIN_TOKEN": "tok",
		"WR_ACCOUNT_MAIN_ENCODING_AES_KEY": "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG",
		"WR_CONSOLE_TOKEN_CMP":             "cmp-token-0123456789ab",
	})
	write := func(name, y string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(y), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	base := `
wechat:
  accounts:
    - {id: main, app_id: wx1, mode: safe}
console:
  employees:
    - {id: cmp, role: compliance}
`
	good := write("good.yaml", base+`
storage:
  clickhouse: {addr: "127.0.0.1:9000", migrate: false}
lexicon:
  - {name: promise, words: ["保证收益"], regex: ['\d+%\s*回报']}
  - {name: off, accounts: [main], direction: outbound, words: [WhatsApp], block: true, reason: stay here}
retention: {main: 7y, "*": 90d}
`)
	if _, err := Check(good, env); err != nil {
		t.Fatalf("check-config of a good compliance config: %v", err)
	}
	cfg, err := Load(good, env)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Migrate() {
		t.Error("migrate: false not read")
	}
	if lex, err := cfg.CompileLexicon(); err != nil || lex == nil {
		t.Errorf("lexicon: %v", err)
	}
	if pol, err := cfg.RetentionPolicies(); err != nil || pol["main"].String() != "7y" || pol["*"].String() != "90d" {
		t.Errorf("retention: %v, %v", pol, err)
	}
	if c, _ := Load(write("default.yaml", base), env); !c.Migrate() {
		t.Error("migrate is not true by default")
	}

	bad := write("bad.yaml", base+`
lexicon:
  - {name: re, regex: ['(']}
  - {name: nowhere, accounts: [nosuch], words: [x]}
  - {name: inblock, direction: inbound, block: true, words: [x]}
retention: {main: 7 years, other: 1y}
`)
	_, err = Check(bad, env)
	if err == nil {
		t.Fatal("check-config accepts a bad compliance config")
	}
	for _, want := range []string{`regex "("`, `account "nosuch"`, "outbound messages only", `retention.main`, `retention: account "other"`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("check-config output lacks %q:\n%v", want, err)
		}
	}
}
