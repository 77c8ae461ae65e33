package commands

import (
	"bytes"
	"strings"
	"testing"

	"golang.org/x/crypto/bcrypt"
)

func TestHashPassword(t *testing.T) {
	var out, errOut bytes.Buffer
	if code := hashPasswordCommand([]string{"-cost", "10"}, strings.NewReader("correct horse battery\n"), &out, &errOut); code != 0 {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
	hash := strings.TrimSpace(out.String())
	if bcrypt.CompareHashAndPassword([]byte(hash), []byte("correct horse battery")) != nil {
		t.Fatalf("%q is not a hash of the password", hash)
	}
	if cost, _ := bcrypt.Cost([]byte(hash)); cost != 10 {
		t.Fatalf("cost %d", cost)
	}
	for name, tc := range map[string]struct {
		args  []string
		stdin string
		code  int
	}{
		"short":             {nil, "short\n", 1},
		"empty":             {nil, "", 1},
		"too long":          {nil, strings.Repeat("x", 73), 1},
		"as an argument":    {[]string{"secret-password"}, "", 2},
		"cost out of range": {[]string{"-cost", "4"}, "long enough password\n", 2},
	} {
		out.Reset()
		if code := hashPasswordCommand(tc.args, strings.NewReader(tc.stdin), &out, &errOut); code != tc.code || out.Len() != 0 {
			t.Errorf("%s: exit %d, stdout %q; want exit %d and nothing printed", name, code, out.String(), tc.code)
		}
	}
}
