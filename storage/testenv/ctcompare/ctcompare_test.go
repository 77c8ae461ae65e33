package ctcompare

import (
	"fmt"
	"strings"
	"testing"
)

// recorder is a testing.TB that keeps the failures instead of failing.
type recorder struct {
	testing.TB
	errs []string
}

func (r *recorder) Helper() {}

func (r *recorder) Errorf(format string, args ...any) {
	r.errs = append(r.errs, fmt.Sprintf(format, args...))
}

func (r *recorder) Fatal(args ...any) { r.errs = append(r.errs, fmt.Sprint(args...)) }

// Check passes the functions that compare in constant time and fails
// each way of comparing that is not.
func TestCheck(t *testing.T) {
	for _, tc := range []struct {
		fn   string
		want string // in the failure; "" for none
	}{
		{"constant", ""},
		{"withHMAC", ""},
		{"equalOperator", "compares two values with =="},
		{"bytesEqual", "bytes.Equal"},
		{"both", "compares two values with !="},
		{"missing", "no function missing"},
	} {
		r := &recorder{TB: t}
		Check(r, "testdata/compare.go", tc.fn)
		got := strings.Join(r.errs, "\n")
		if tc.want == "" && got != "" || tc.want != "" && !strings.Contains(got, tc.want) {
			t.Errorf("%s: failures %q, want %q", tc.fn, got, tc.want)
		}
	}
}
