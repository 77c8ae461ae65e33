package main

import (
	"bytes"
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
	var out, errOut bytes.Buffer
	if code := run([]string{"check-config", "-config", good}, &out, &errOut, env); code != 0 {
		t.Fatalf("check-config of a good compliance config: exit %d: %s", code, errOut.String())
	}
	cfg, err := loadConfig(good, env)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.migrate() {
		t.Error("migrate: false not read")
	}
	if lex, err := cfg.lexicon(); err != nil || lex == nil {
		t.Errorf("lexicon: %v", err)
	}
	if pol, err := cfg.retentionPolicies(); err != nil || pol["main"].String() != "7y" || pol["*"].String() != "90d" {
		t.Errorf("retention: %v, %v", pol, err)
	}
	if c, _ := loadConfig(write("default.yaml", base), env); !c.migrate() {
		t.Error("migrate is not true by default")
	}

	bad := write("bad.yaml", base+`
lexicon:
  - {name: re, regex: ['(']}
  - {name: nowhere, accounts: [nosuch], words: [x]}
  - {name: inblock, direction: inbound, block: true, words: [x]}
retention: {main: 7 years, other: 1y}
`)
	out.Reset()
	errOut.Reset()
	if code := run([]string{"check-config", "-config", bad}, &out, &errOut, env); code != 1 {
		t.Fatalf("check-config of a bad compliance config: exit %d", code)
	}
	for _, want := range []string{`regex "("`, `account "nosuch"`, "outbound messages only", `retention.main`, `retention: account "other"`} {
		if !strings.Contains(errOut.String()+out.String(), want) {
			t.Errorf("check-config output lacks %q:\n%s%s", want, out.String(), errOut.String())
		}
	}
}
