package archivetest

import (
	"archive/zip"
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/csv"
	"encoding/hex"
	"encoding/json"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/wechat-relay/wechat-relay/relay"
	"github.com/wechat-relay/wechat-relay/relay/export"
)

// exportFixture archives a sealed conversation with text, an image whose
// media is archived, an image whose media is not, and an outbound reply
// with its delivery events; plus an unsealed message and a message of
// another conversation. It returns the conversation's messages (in
// sequence order), the seals and the image's bytes.
func exportFixture(t *testing.T, s SearchStore) (msgs []relay.Message, evs []relay.DeliveryEvent, seals []relay.Seal, picture []byte) {
	c := conv("o_导出")
	text := message(c, 1)
	text.Text = "您好，请把合同发给我 <b>&</b>"
	img := mediaMessage(c, 2, relay.KindImage, "MEDIA_X", 2*time.Second)
	gone := mediaMessage(c, 3, relay.KindVoice, "MEDIA_GONE", 3*time.Second)
	reply := outMessage(c, 4, 4*time.Second)
	reply.Text = "好的，马上发送"
	sealed := []relay.Message{text, img, gone, reply}
	mb := relay.BatchID("relay-1", relay.StreamMessages, 1)
	s1 := seal("relay-1", relay.StreamMessages, 1, "", stamp(sealed, mb), base.Add(5*time.Second))
	unsealed := message(c, 5)
	unsealed.Text = "未封存"
	other := message(conv("o_other"), 1)
	insert(t, s, append(slices.Clone(sealed), unsealed, other)...)

	evs = []relay.DeliveryEvent{
		deliveryEvent(sealed[3], relay.DeliverySending, base.Add(5*time.Second)),
		deliveryEvent(sealed[3], relay.DeliverySent, base.Add(6*time.Second)),
	}
	eb := relay.BatchID("relay-1", relay.StreamEvents, 1)
	s2 := seal("relay-1", relay.StreamEvents, 1, "", stampEvents(evs, eb), base.Add(7*time.Second))
	appendEvents(t, s, evs...)
	insertSeal(t, s, s1, s2)

	picture = blob(50<<10, 42)
	putMedia(t, s, media(sealed[1], picture))

	// The client's profile, two versions, and another client's.
	p1 := relay.ClientProfile{Account: "acc", OpenID: "o_导出", Name: "王先生", By: "alice", At: base, RecordSeal: relay.RecordSeal{Version: 1}}
	p1.Hash = p1.ComputeHash()
	p2 := p1
	p2.Name, p2.Remark, p2.Tags, p2.Note, p2.At = "王伟", "老客户", []string{"vip"}, "prefers <mornings>", base.Add(time.Second)
	p2.Version, p2.PrevHash = 2, p1.Hash
	p2.Hash = p2.ComputeHash()
	po := relay.ClientProfile{Account: "acc", OpenID: "o_other", Name: "Other", By: "bob", At: base, RecordSeal: relay.RecordSeal{Version: 1}}
	for _, p := range []relay.ClientProfile{p2, p1, po} {
		if err := s.AppendProfile(testCtx(t), p); err != nil {
			t.Fatal(err)
		}
	}
	return append(sealed, unsealed), evs, []relay.Seal{s1, s2}, picture
}

// exportFile is one file of an export as read back.
type exportFiles map[string][]byte

func readDir(t *testing.T, dir string) exportFiles {
	t.Helper()
	files := exportFiles{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		files[filepath.ToSlash(rel)] = b
		return nil
	})
	if err != nil {
		t.Fatalf("reading the export: %v", err)
	}
	return files
}

func readZip(t *testing.T, b []byte) exportFiles {
	t.Helper()
	zr, err := zip.NewReader(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		t.Fatalf("the export is not a zip: %v", err)
	}
	files := exportFiles{}
	for _, f := range zr.File {
		r, err := f.Open()
		if err != nil {
			t.Fatalf("zip entry %s: %v", f.Name, err)
		}
		data, err := io.ReadAll(r)
		r.Close()
		if err != nil {
			t.Fatalf("zip entry %s: %v", f.Name, err)
		}
		files[f.Name] = data
	}
	return files
}

func testExportContents(t *testing.T, s SearchStore) {
	msgs, evs, seals, picture := exportFixture(t, s)
	req := export.Request{
		Query: relay.SearchQuery{Conv: conv("o_导出")}, By: "compliance_王", Version: "test-1",
		Now: time.Date(2026, 11, 26, 1, 2, 3, 0, time.UTC),
	}
	dir := filepath.Join(t.TempDir(), "export")
	sink, err := export.NewDirSink(dir)
	if err != nil {
		t.Fatal(err)
	}
	var last export.Progress
	man, err := export.Run(testCtx(t), s, req, sink, func(p export.Progress) { last = p })
	if err != nil {
		t.Fatalf("Export: %v", err)
	}
	if last.Phase != "done" || last.Rows != len(msgs) || last.RowsTotal != len(msgs) || last.Media != 2 || last.MediaTotal != 2 {
		t.Errorf("last progress %+v, want done with %d rows and 2 of 2 media", last, len(msgs))
	}
	checkExport(t, "folder", readDir(t, dir), man, msgs, evs, seals, picture)

	// The same as a zip.
	var zb bytes.Buffer
	zman, err := export.Run(testCtx(t), s, req, export.NewZipSink(&zb), nil)
	if err != nil {
		t.Fatalf("Export to zip: %v", err)
	}
	checkExport(t, "zip", readZip(t, zb.Bytes()), zman, msgs, evs, seals, picture)

	// An export into a folder that is not empty is refused.
	if _, err := export.NewDirSink(dir); err == nil {
		t.Error("NewDirSink of a non-empty folder: no error")
	}
}

func checkExport(t *testing.T, what string, files exportFiles, man *export.Manifest, msgs []relay.Message, evs []relay.DeliveryEvent, seals []relay.Seal, picture []byte) {
	t.Helper()
	// The manifest on disk is the one returned.
	var disk export.Manifest
	if err := json.Unmarshal(files["manifest.json"], &disk); err != nil {
		t.Fatalf("%s: manifest.json: %v", what, err)
	}
	if disk.ExportedBy != "compliance_王" || disk.Version != "test-1" || !disk.ExportedAt.Equal(man.ExportedAt) ||
		disk.Query.Conv != conv("o_导出") || !strings.Contains(disk.QueryText, "o_导出") {
		t.Errorf("%s: manifest header: by %q version %q at %s query %+v (%s)", what, disk.ExportedBy, disk.Version, disk.ExportedAt, disk.Query, disk.QueryText)
	}
	// Every file but the manifest is listed with its hash and size, and
	// nothing else is.
	listed := map[string]bool{}
	for _, f := range disk.Files {
		listed[f.Name] = true
		data, ok := files[f.Name]
		if !ok {
			t.Errorf("%s: manifest lists %s, not in the export", what, f.Name)
			continue
		}
		sum := sha256.Sum256(data)
		if hex.EncodeToString(sum[:]) != f.SHA256 || int64(len(data)) != f.Size {
			t.Errorf("%s: %s: manifest says %s (%d bytes), file is %x (%d bytes)", what, f.Name, f.SHA256, f.Size, sum, len(data))
		}
	}
	for name := range files {
		if name != "manifest.json" && !listed[name] {
			t.Errorf("%s: %s is not in the manifest", what, name)
		}
	}
	for _, name := range []string{"messages.jsonl", "messages.csv", "events.jsonl", "events.csv", "profiles.jsonl", "transcript.html"} {
		if !listed[name] {
			t.Errorf("%s: no %s", what, name)
		}
	}
	// Counts.
	want := export.Counts{Messages: len(msgs), Conversations: 1, Events: len(evs), Media: 1, MediaMissing: 1, Seals: 2, Profiles: 2}
	if disk.Counts != want {
		t.Errorf("%s: counts %+v, want %+v", what, disk.Counts, want)
	}
	// The seals covering the rows, and the unsealed one.
	var sealHashes []string
	for _, s := range disk.Seals {
		sealHashes = append(sealHashes, s.Hash)
	}
	for _, s := range seals {
		if !slices.Contains(sealHashes, s.Hash) {
			t.Errorf("%s: seal %s (%s) not in the manifest: %v", what, s.ID, s.Hash, sealHashes)
		}
	}
	if !slices.Equal(disk.Unsealed, []string{msgs[4].ID}) {
		t.Errorf("%s: unsealed %v, want [%s]", what, disk.Unsealed, msgs[4].ID)
	}
	// The media, byte for byte, named by its hash.
	sum := sha256.Sum256(picture)
	name := "media/" + hex.EncodeToString(sum[:]) + ".jpg"
	if !bytes.Equal(files[name], picture) {
		t.Errorf("%s: %s: %d bytes, not the archived %d", what, name, len(files[name]), len(picture))
	}

	// messages.jsonl: every message, every field, raw as base64.
	var lines []export.Message
	sc := bufio.NewScanner(bytes.NewReader(files["messages.jsonl"]))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var m export.Message
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("%s: messages.jsonl: %v", what, err)
		}
		lines = append(lines, m)
	}
	if len(lines) != len(msgs) {
		t.Fatalf("%s: messages.jsonl has %d lines, want %d", what, len(lines), len(msgs))
	}
	for i, m := range msgs {
		l := lines[i]
		if l.ID != m.ID || l.Seq != m.Seq || l.Text != m.Text || !bytes.Equal(l.Raw, m.Raw) && len(m.Raw) > 0 ||
			l.Hash != m.Hash || l.BatchID != m.BatchID || l.Direction != string(m.Direction) || l.Employee != m.Employee {
			t.Errorf("%s: messages.jsonl line %d: %+v\nwant %+v", what, i+1, l, m)
		}
	}
	if lines[1].MediaFile != name {
		t.Errorf("%s: the image's media_file %q, want %s", what, lines[1].MediaFile, name)
	}
	if !strings.Contains(string(files["messages.jsonl"]), `"raw":"`+base64.StdEncoding.EncodeToString(msgs[0].Raw)+`"`) {
		t.Errorf("%s: raw is not base64 in messages.jsonl", what)
	}

	// messages.csv parses, one row per message plus the header.
	r := csv.NewReader(bytes.NewReader(bytes.TrimPrefix(files["messages.csv"], []byte("\uFEFF"))))
	recs, err := r.ReadAll()
	if err != nil {
		t.Fatalf("%s: messages.csv: %v", what, err)
	}
	if len(recs) != len(msgs)+1 || recs[0][0] != "id" {
		t.Fatalf("%s: messages.csv: %d records, want %d", what, len(recs), len(msgs)+1)
	}
	col := slices.Index(recs[0], "text")
	rawCol := slices.Index(recs[0], "raw_base64")
	for i, m := range msgs {
		raw, err := base64.StdEncoding.DecodeString(recs[i+1][rawCol])
		if recs[i+1][0] != m.ID || recs[i+1][col] != m.Text || err != nil || !bytes.Equal(raw, m.Raw) && len(m.Raw) > 0 {
			t.Errorf("%s: messages.csv row %d: %v", what, i+1, recs[i+1])
		}
	}
	erecs, err := csv.NewReader(bytes.NewReader(files["events.csv"])).ReadAll()
	if err != nil || len(erecs) != len(evs)+1 {
		t.Errorf("%s: events.csv: %d records (%v), want %d", what, len(erecs), err, len(evs)+1)
	}
	if n := bytes.Count(files["events.jsonl"], []byte("\n")); n != len(evs) {
		t.Errorf("%s: events.jsonl: %d lines, want %d", what, n, len(evs))
	}

	// profiles.jsonl: the client's two versions, in order, as archived;
	// not the other client's.
	var profs []export.Profile
	for _, l := range bytes.Split(bytes.TrimSpace(files["profiles.jsonl"]), []byte("\n")) {
		var p export.Profile
		if err := json.Unmarshal(l, &p); err != nil {
			t.Fatalf("%s: profiles.jsonl: %v", what, err)
		}
		profs = append(profs, p)
	}
	if len(profs) != 2 || profs[0].Version != 1 || profs[0].Name != "王先生" || profs[1].Version != 2 || profs[1].PrevHash != profs[0].Hash ||
		!slices.Equal(profs[1].Tags, []string{"vip"}) || profs[1].Note != "prefers <mornings>" || profs[1].By != "alice" || profs[1].Conv != string(conv("o_导出")) {
		t.Errorf("%s: profiles.jsonl = %+v; want the client's versions 1 and 2", what, profs)
	}

	// The transcript shows the messages, escaped, and the image inline,
	// under the client's newest profile.
	html := string(files["transcript.html"])
	for _, s := range []string{"王伟 · acc:o_导出", "老客户", `<span class="tag">vip</span>`, "prefers &lt;mornings&gt;", "好的，马上发送", "您好，请把合同发给我 &lt;b&gt;&amp;&lt;/b&gt;", `<img src="` + name + `"`, "未封存", "media not archived", "delivery: sent", `charset="utf-8"`} {
		if !strings.Contains(html, s) {
			t.Errorf("%s: transcript.html lacks %q", what, s)
		}
	}
	if strings.Contains(html, "<b>&</b>") {
		t.Errorf("%s: transcript.html does not escape message text", what)
	}
}
