package commands

import (
	"archive/zip"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/wechat-relay/wechat-relay/deployments/commands/cmdtest"
	"github.com/wechat-relay/wechat-relay/relay"
	"github.com/wechat-relay/wechat-relay/relay/export"
	"github.com/wechat-relay/wechat-relay/storage/archive"
	"github.com/wechat-relay/wechat-relay/storage/embedded"
	"github.com/wechat-relay/wechat-relay/storage/testenv"
)

// `wechat-relay search` and `wechat-relay export` against both archives:
// exit codes, the table, JSON lines, the folder and the zip.

// cliArchive is what the fixture writes through.
type cliArchive interface {
	relay.Archive
	relay.MediaStore
}

// cliFixture archives a conversation with Chinese text, an image and its
// media, and a second conversation; it returns the image's bytes.
func cliFixture(t *testing.T, a cliArchive) []byte {
	t.Helper()
	base := time.Date(2026, 11, 3, 10, 0, 0, 0, time.UTC)
	mk := func(conv relay.ConversationID, seq uint64, text string, d time.Duration) relay.Message {
		_, client, _ := strings.Cut(string(conv), ":")
		return relay.Message{
			ID: "in:" + string(conv) + ":" + string(rune('0'+seq)), Account: "acme", Client: client, Conv: conv, Seq: seq,
			Direction: relay.Inbound, Kind: relay.KindText, Text: text, Raw: []byte("<xml>" + text + "</xml>"),
			AcceptedAt: base.Add(d), CreatedAt: base.Add(d - time.Second), Employee: "alice",
		}
	}
	one, two := relay.Conversation("acme", "o_one"), relay.Conversation("acme", "o_two")
	img := mk(one, 2, "", time.Minute)
	img.Kind, img.MediaID = relay.KindImage, "MEDIA_1"
	msgs := []relay.Message{mk(one, 1, "请问 REFUND 退款进度", 0), img, mk(two, 1, "Hello 合同", 2*time.Minute)}
	if err := a.Insert(context.Background(), msgs); err != nil {
		t.Fatal(err)
	}
	picture := []byte("\xff\xd8\xff\xe0 not really a jpeg, but bytes all the same")
	if err := a.PutMedia(context.Background(), relay.Media{MessageID: img.ID, MediaID: "MEDIA_1", ContentType: "image/jpeg", Data: picture}); err != nil {
		t.Fatal(err)
	}
	return picture
}

func runCLI(args ...string) (int, string, string) {
	var out, errOut bytes.Buffer
	code := Run(args, &out, &errOut, func(k string) string {
		if k == "USER" {
			return "tester"
		}
		return ""
	})
	return code, out.String(), errOut.String()
}

func TestSearchAndExportCommandsEmbedded(t *testing.T) {
	dataDir := t.TempDir()
	a, err := embedded.Open(context.Background(), filepath.Join(dataDir, "archive.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	picture := cliFixture(t, a)
	a.Close()
	cliCases(t, cmdtest.ArchiveConfig(t, dataDir, "", ""), picture)

	// No archive where the configuration says: 3.
	if code, _, errOut := runCLI("search", "-config", cmdtest.ArchiveConfig(t, t.TempDir(), "", ""), "-text", "x"); code != searchFailed {
		t.Errorf("search without an archive: exit %d (%s), want 3", code, errOut)
	}
}

func TestSearchAndExportCommandsClickHouse(t *testing.T) {
	if testing.Short() {
		t.Skip("needs ClickHouse")
	}
	addr := testenv.ClickHouseAddr(t)
	db := testenv.UniqueName("t_cli_search")
	t.Cleanup(func() { cmdtest.DropDatabase(t, addr, db) })
	a, err := archive.Open(context.Background(), archive.Config{Addr: addr, Database: db}, nil)
	if err != nil {
		t.Fatal(err)
	}
	picture := cliFixture(t, a)
	a.Close()
	cliCases(t, cmdtest.ArchiveConfig(t, t.TempDir(), addr, db), picture)
}

func cliCases(t *testing.T, cfg string, picture []byte) {
	// The table.
	code, out, errOut := runCLI("search", "-config", cfg, "-text", "refund", "-from", "2026-11-03", "-to", "2026-11-03")
	if code != searchFound || !strings.Contains(out, "请问 REFUND 退款进度") || !strings.Contains(out, "acme:o_one") || !strings.Contains(out, "1 messages of 1") {
		t.Fatalf("search: exit %d\n%s%s", code, out, errOut)
	}
	// JSON lines, newest first.
	code, out, errOut = runCLI("search", "-config", cfg, "-json")
	var lines []searchLine
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		var sl searchLine
		if err := json.Unmarshal([]byte(l), &sl); err != nil {
			t.Fatalf("search -json: %v: %q", err, l)
		}
		lines = append(lines, sl)
	}
	if code != searchFound || len(lines) != 3 || lines[0].Text != "Hello 合同" || lines[2].Text != "请问 REFUND 退款进度" {
		t.Fatalf("search -json: exit %d %+v\n%s", code, lines, errOut)
	}
	// Paging: the summary names the cursor of the next page.
	code, out, _ = runCLI("search", "-config", cfg, "-limit", "2")
	i := strings.Index(out, "-cursor ")
	if code != searchFound || i < 0 {
		t.Fatalf("search -limit 2: %d\n%s", code, out)
	}
	cursor := strings.TrimSpace(out[i+len("-cursor "):])
	if code, out, _ = runCLI("search", "-config", cfg, "-limit", "2", "-cursor", cursor); code != searchFound || !strings.Contains(out, "退款进度") {
		t.Fatalf("search second page: %d\n%s", code, out)
	}
	// Exit codes.
	for _, c := range []struct {
		args []string
		want int
	}{
		{[]string{"search", "-config", cfg, "-text", "没有这个词"}, searchNothing},
		{[]string{"search", "-config", cfg, "-from", "yesterday"}, searchUsage},
		{[]string{"search", "-config", cfg, "-bogus"}, searchUsage},
		{[]string{"search", "-config", cfg, "-cursor", "!!"}, searchUsage},
		{[]string{"search", "-config", cfg, "extra"}, searchUsage},
		{[]string{"export", "-config", cfg, "-conv", "acme:o_one"}, searchUsage},                                   // no -out
		{[]string{"export", "-config", cfg, "-out", filepath.Join(t.TempDir(), "x")}, searchUsage},                 // no filter
		{[]string{"export", "-config", cfg, "-conv", "c", "-out", t.TempDir(), "-by", " ", "-quiet"}, searchUsage}, // no -by
	} {
		if code, out, errOut := runCLI(c.args...); code != c.want {
			t.Errorf("%v: exit %d, want %d\n%s%s", c.args[3:], code, c.want, out, errOut)
		}
	}

	// An export to a folder, with a progress bar.
	dir := filepath.Join(t.TempDir(), "out")
	code, out, errOut = runCLI("export", "-config", cfg, "-conv", "acme:o_one", "-out", dir, "-by", "Compliance 李")
	if code != searchFound || !strings.Contains(out, "exported 2 messages of 1 conversations") || !strings.Contains(errOut, "export: done") {
		t.Fatalf("export: exit %d\n%s%s", code, out, errOut)
	}
	var man export.Manifest
	b, err := os.ReadFile(filepath.Join(dir, "manifest.json"))
	if err == nil {
		err = json.Unmarshal(b, &man)
	}
	if err != nil || man.ExportedBy != "Compliance 李" || man.Version != Version() || man.Counts.Messages != 2 || man.Counts.Media != 1 {
		t.Fatalf("manifest: %v %+v", err, man)
	}
	for _, f := range man.Files {
		data, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(f.Name)))
		sum := sha256.Sum256(data)
		if err != nil || hex.EncodeToString(sum[:]) != f.SHA256 {
			t.Errorf("%s: %v, hash %x, manifest %s", f.Name, err, sum, f.SHA256)
		}
	}
	sum := sha256.Sum256(picture)
	if got, err := os.ReadFile(filepath.Join(dir, "media", hex.EncodeToString(sum[:])+".jpg")); err != nil || !bytes.Equal(got, picture) {
		t.Errorf("the exported media differs from the archived bytes: %v", err)
	}
	// The folder is not empty now: refused.
	if code, _, _ := runCLI("export", "-config", cfg, "-conv", "acme:o_one", "-out", dir, "-quiet"); code != searchFailed {
		t.Errorf("export into a non-empty folder: exit %d, want 3", code)
	}

	// A zip, by client, with the default -by ($USER).
	zpath := filepath.Join(t.TempDir(), "export.zip")
	if code, out, errOut := runCLI("export", "-config", cfg, "-client", "o_two", "-out", zpath, "-quiet"); code != searchFound || errOut != "" {
		t.Fatalf("export -out .zip: exit %d\n%s%s", code, out, errOut)
	}
	zr, err := zip.OpenReader(zpath)
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, f := range zr.File {
		names[f.Name] = true
	}
	zr.Close()
	for _, n := range []string{"manifest.json", "messages.jsonl", "messages.csv", "events.jsonl", "transcript.html"} {
		if !names[n] {
			t.Errorf("zip lacks %s: %v", n, names)
		}
	}
	// The zip exists now: never overwritten.
	if code, _, _ := runCLI("export", "-config", cfg, "-client", "o_two", "-out", zpath, "-quiet"); code != searchFailed {
		t.Errorf("export over an existing zip: exit %d, want 3", code)
	}
}
