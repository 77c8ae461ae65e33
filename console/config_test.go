package console

import (
	"strings"
	"testing"
)

func TestConfigValidate(t *testing.T) {
	hash := testHash("pw")
	for name, tc := range map[string]struct {
		cfg  Config
		want string // "" for valid
	}{
		"token only":        {Config{Employees: []Employee{{ID: "a", Role: RoleAgent, Token: "0123456789abcdef"}}}, ""},
		"password only":     {Config{Employees: []Employee{{ID: "a", Role: RoleAgent, PasswordHash: hash}}}, ""},
		"neither":           {Config{Employees: []Employee{{ID: "a", Role: RoleAgent}}}, "WR_CONSOLE_PASSWORD_HASH_A"},
		"short token":       {Config{Employees: []Employee{{ID: "a", Role: RoleAgent, Token: "short", PasswordHash: hash}}}, "at least 16"},
		"not bcrypt":        {Config{Employees: []Employee{{ID: "a", Role: RoleAgent, PasswordHash: "plaintext"}}}, "not a bcrypt hash"},
		"long id":           {Config{Employees: []Employee{{ID: strings.Repeat("a", 61), Role: RoleAgent, PasswordHash: hash}}}, "longer than 60"},
		"canned without id": {Config{CannedReplies: []CannedReply{{Text: "x"}}}, "canned_replies[0]: id is required"},
		"canned duplicate":  {Config{CannedReplies: []CannedReply{{ID: "a", Text: "x"}, {ID: "a", Text: "y"}}}, "duplicate id"},
		"canned empty":      {Config{CannedReplies: []CannedReply{{ID: "a"}}}, "text is required"},
		"team member":       {Config{Teams: []Team{{ID: "t1"}}, Employees: []Employee{{ID: "a", Role: RoleAgent, Teams: []string{"t1"}, PasswordHash: hash}}}, ""},
		"unknown team":      {Config{Employees: []Employee{{ID: "a", Role: RoleAgent, Teams: []string{"t9"}, PasswordHash: hash}}}, `team "t9" is not in console.teams`},
		"bad team id":       {Config{Teams: []Team{{ID: "a b"}}}, "console.teams[0]: id"},
		"duplicate team":    {Config{Teams: []Team{{ID: "t"}, {ID: "t"}}}, `duplicate id "t"`},
	} {
		err := tc.cfg.Validate()
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s: %v", name, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%s: %v, want an error with %q", name, err, tc.want)
		}
	}
	if got := PasswordHashEnv("hk-main.alice"); got != "WR_CONSOLE_PASSWORD_HASH_HK_MAIN_ALICE" {
		t.Fatalf("PasswordHashEnv = %s", got)
	}
}
