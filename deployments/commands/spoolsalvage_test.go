package commands

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/wechat-relay/wechat-relay/relay"
	"github.com/wechat-relay/wechat-relay/storage/spool"
)

// `wechat-relay spool-salvage -dir DIR` recovers a spool the relay
// refuses to start with: it reports what it kept and skipped, the relay's
// spool opens again with every intact message, and a second run finds
// nothing to do. It needs no service, only a temporary directory.
func TestSpoolSalvageCommand(t *testing.T) {
	dir := t.TempDir()
	sp, err := spool.Open(spool.Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 10 {
		m := relay.Message{ID: fmt.Sprintf("in:main:%d", i), Account: "main", Text: fmt.Sprintf("message %d", i)}
		if err := sp.Append(context.Background(), m); err != nil {
			t.Fatal(err)
		}
	}
	if err := sp.Close(); err != nil {
		t.Fatal(err)
	}
	segs, _ := filepath.Glob(filepath.Join(dir, "*.wal"))
	if len(segs) != 1 {
		t.Fatalf("segments %v, want one", segs)
	}
	// Flip a byte in the first record's payload: after the 8-byte segment
	// header and the 8-byte frame header (doc.go, "File format").
	b, err := os.ReadFile(segs[0])
	if err != nil {
		t.Fatal(err)
	}
	b[8+8+3] ^= 0x01
	if err := os.WriteFile(segs[0], b, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := spool.Open(spool.Options{Dir: dir}); !errors.Is(err, spool.ErrCorrupt) ||
		!strings.Contains(err.Error(), "wechat-relay spool-salvage -dir "+dir) {
		t.Fatalf("Open of the damaged spool: %v; want ErrCorrupt pointing at spool-salvage", err)
	}

	env := func(string) string { return "" }
	var out, errOut bytes.Buffer
	if code := Run([]string{"spool-salvage", "-dir", dir}, &out, &errOut, env); code != 0 {
		t.Fatalf("exit %d\n%s%s", code, out.String(), errOut.String())
	}
	t.Log(out.String())
	for _, want := range []string{
		filepath.Base(segs[0]) + ": kept 9 records",
		"skipped offset 8, ",
		"checksum",
		"original kept as " + segs[0] + ".damaged",
		"9 messages pending",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output does not say %q:\n%s", want, out.String())
		}
	}
	if kept, err := os.ReadFile(segs[0] + ".damaged"); err != nil || !bytes.Equal(kept, b) {
		t.Fatalf("the damaged original is not kept as it was: %v", err)
	}
	sp, err = spool.Open(spool.Options{Dir: dir})
	if err != nil {
		t.Fatalf("Open after salvage: %v", err)
	}
	got := sp.Pending(100)
	if len(got) != 9 || got[0].ID != "in:main:1" || got[8].ID != "in:main:9" {
		t.Fatalf("pending after salvage: %d messages %v", len(got), got)
	}

	// While the spool is open, the command refuses.
	out.Reset()
	errOut.Reset()
	if code := Run([]string{"spool-salvage", "-dir", dir}, &out, &errOut, env); code != 1 ||
		!strings.Contains(errOut.String(), "in use") {
		t.Fatalf("with the spool open: exit %d, %s", code, errOut.String())
	}
	if err := sp.Close(); err != nil {
		t.Fatal(err)
	}

	out.Reset()
	errOut.Reset()
	if code := Run([]string{"spool-salvage", "-dir", dir}, &out, &errOut, env); code != 0 ||
		!strings.Contains(out.String(), "nothing to salvage") {
		t.Fatalf("second run: exit %d\n%s%s", code, out.String(), errOut.String())
	}

	if code := Run([]string{"spool-salvage", "-dir", filepath.Join(dir, "missing")}, &out, &errOut, env); code != 1 {
		t.Errorf("missing directory: exit %d, want 1", code)
	}
	for _, args := range [][]string{{"spool-salvage"}, {"spool-salvage", "-dir", dir, "extra"}, {"spool-salvage", "-bogus"}} {
		if code := Run(args, &out, &errOut, env); code != 2 {
			t.Errorf("%v: exit %d, want 2", args, code)
		}
	}
}
