package embedded

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/fstest"
	"time"

	"github.com/wechat-relay/wechat-relay/relay"
	"github.com/wechat-relay/wechat-relay/storage/archivetest"
	"github.com/wechat-relay/wechat-relay/storage/testenv"
)

func testCtx(tb testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	tb.Cleanup(cancel)
	return ctx
}

// openAt opens the archive at path, closed when the test ends.
func openAt(tb testing.TB, path string) *Archive {
	tb.Helper()
	a, err := Open(testCtx(tb), path, testenv.Logger(tb))
	if err != nil {
		tb.Fatalf("Open(%s): %v", path, err)
	}
	tb.Cleanup(func() {
		if err := a.Close(); err != nil {
			tb.Errorf("Close: %v", err)
		}
	})
	return a
}

func TestConformance(t *testing.T) {
	t.Parallel()
	archivetest.Run(t, func(t *testing.T) archivetest.Store {
		return openAt(t, filepath.Join(t.TempDir(), "archive.db"))
	})
}

func TestConformanceInMemory(t *testing.T) {
	t.Parallel()
	archivetest.Run(t, func(t *testing.T) archivetest.Store {
		return openAt(t, MemoryPath)
	})
}

func testMessage(conv relay.ConversationID, seq uint64, kind relay.Kind, mediaID string) relay.Message {
	at := time.Date(2026, 5, 1, 8, 0, 0, 0, time.UTC).Add(time.Duration(seq) * time.Second)
	return relay.Message{
		ID:         fmt.Sprintf("in:acc:%s:%d", conv, seq),
		Account:    "acc",
		Client:     "o_client",
		Conv:       conv,
		Seq:        seq,
		Direction:  relay.Inbound,
		Kind:       kind,
		WxMsgID:    fmt.Sprint(1000000 + seq),
		Text:       fmt.Sprintf("消息 %d", seq),
		MediaID:    mediaID,
		Attrs:      map[string]string{"k": "值"},
		Raw:        []byte("<xml>\x02\xff</xml>"),
		CreatedAt:  at.Add(-time.Second),
		AcceptedAt: at.Add(123 * time.Millisecond),
		Employee:   "emp1",
	}
}

func TestSurvivesCloseAndReopen(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "data", "archive.db") // the directory is created too
	conv := relay.Conversation("acc", "o_reopen")
	msgs := []relay.Message{
		testMessage(conv, 1, relay.KindText, ""),
		testMessage(conv, 2, relay.KindImage, "M2"),
		testMessage(conv, 3, relay.KindVoice, "M3"),
	}
	since := msgs[0].AcceptedAt.Add(-time.Hour)

	a, err := Open(testCtx(t), path, testenv.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Insert(testCtx(t), msgs); err != nil {
		t.Fatal(err)
	}
	if err := a.PutMedia(testCtx(t), relay.Media{MessageID: msgs[1].ID, MediaID: "M2", Data: []byte("jpeg")}); err != nil {
		t.Fatal(err)
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(path); err != nil {
		t.Fatal(err)
	} else if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		t.Errorf("archive file mode %v, want no access for group and others", perm)
	}

	logs := &testenv.SyncBuffer{}
	b, err := Open(testCtx(t), path, testenv.Logger(t, logs))
	if err != nil {
		t.Fatalf("reopening: %v", err)
	}
	defer b.Close()
	if strings.Contains(logs.String(), "migration applied") {
		t.Errorf("reopening applied migrations again:\n%s", logs)
	}
	got, err := b.Since(testCtx(t), conv, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 || got[0].ID != msgs[0].ID || got[2].ID != msgs[2].ID || !bytes.Equal(got[1].Raw, msgs[1].Raw) {
		t.Fatalf("after reopening Since = %v, want the 3 messages", got)
	}
	if n, err := b.MaxSeq(testCtx(t), conv); err != nil || n != 3 {
		t.Fatalf("after reopening MaxSeq = %d, %v; want 3", n, err)
	}
	missing, err := b.MissingMedia(testCtx(t), since, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(missing) != 1 || missing[0].ID != msgs[2].ID {
		t.Fatalf("after reopening MissingMedia = %v, want only %s", missing, msgs[2].ID)
	}
	// And it still takes writes, idempotently.
	if err := b.Insert(testCtx(t), msgs); err != nil {
		t.Fatal(err)
	}
	if got, _ := b.Since(testCtx(t), conv, 0, 0); len(got) != 3 {
		t.Fatalf("after replay into the reopened archive: %d messages, want 3", len(got))
	}
}

func TestAppendOnlyEnforced(t *testing.T) {
	t.Parallel()
	a := openAt(t, MemoryPath)
	ctx := testCtx(t)
	conv := relay.Conversation("acc", "o_ao")
	m := testMessage(conv, 1, relay.KindImage, "M1")
	if err := a.Insert(ctx, []relay.Message{m}); err != nil {
		t.Fatal(err)
	}
	if err := a.PutMedia(ctx, relay.Media{MessageID: m.ID, Data: []byte("x")}); err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{
		`UPDATE messages SET text = 'altered'`,
		`DELETE FROM messages`,
		`UPDATE media SET data = x'00'`,
		`DELETE FROM media`,
		`UPDATE media_links SET sha256 = ''`,
		`DELETE FROM media_links`,
		`UPDATE events SET errcode = 0`,
		`DELETE FROM events`,
		`INSERT OR REPLACE INTO messages (id, account, client, conv, seq, direction, kind, wx_msg_id, event, event_key,
			text, media_id, attrs, raw, employee, has_media)
			SELECT id, account, client, conv, seq, direction, kind, wx_msg_id, event, event_key,
			'altered', media_id, attrs, raw, employee, has_media FROM messages`,
	} {
		_, err := a.db.ExecContext(ctx, q)
		// The events table is empty: an UPDATE or DELETE touching no
		// row fires no trigger, which is fine.
		if err == nil && !strings.Contains(q, "events") {
			t.Errorf("%s: succeeded, want the append-only trigger to refuse it", q)
		}
	}
	got, err := a.Since(ctx, conv, 0, 0)
	if err != nil || len(got) != 1 || got[0].Text != m.Text {
		t.Fatalf("after refused changes Since = %v, %v; want the message unchanged", got, err)
	}
}

func TestReplayKeepsFirstCopyAndWarnsOnConflict(t *testing.T) {
	t.Parallel()
	logs := &testenv.SyncBuffer{}
	a, err := Open(testCtx(t), MemoryPath, testenv.Logger(t, logs))
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	ctx := testCtx(t)
	conv := relay.Conversation("acc", "o_conflict")
	m := testMessage(conv, 1, relay.KindText, "")
	if err := a.Insert(ctx, []relay.Message{m, m}); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(logs.String(), "archived again") {
		t.Fatalf("identical replay logged a conflict:\n%s", logs)
	}
	other := m
	other.Seq = 7
	other.Text = "another text"
	if err := a.Insert(ctx, []relay.Message{other}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(logs.String(), "archived again") {
		t.Errorf("a replay with another sequence logged no warning:\n%s", logs)
	}
	got, err := a.Since(ctx, conv, 0, 0)
	if err != nil || len(got) != 1 || got[0].Seq != 1 || got[0].Text != m.Text {
		t.Fatalf("Since = %v, %v; want the first copy only", got, err)
	}
}

func TestPathsNeedingEscapes(t *testing.T) {
	t.Parallel()
	for _, name := range []string{"a?b.db", "c#d.db", "e%20f.db", "归档 文件.db"} {
		path := filepath.Join(t.TempDir(), name)
		a := openAt(t, path)
		conv := relay.Conversation("acc", "o_path")
		if err := a.Insert(testCtx(t), []relay.Message{testMessage(conv, 1, relay.KindText, "")}); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if _, err := os.Stat(path); err != nil {
			t.Errorf("%s: the archive is not at the path given: %v", name, err)
		}
		entries, _ := os.ReadDir(filepath.Dir(path))
		for _, e := range entries {
			if e.Name() != name && !strings.HasPrefix(e.Name(), name+"-") {
				t.Errorf("%s: unexpected file %q next to the archive", name, e.Name())
			}
		}
	}
}

func TestOpenErrors(t *testing.T) {
	t.Parallel()
	if _, err := Open(testCtx(t), "", nil); err == nil {
		t.Error("Open of an empty path succeeded")
	}
	// A directory where the file should be.
	if _, err := Open(testCtx(t), t.TempDir(), nil); err == nil {
		t.Error("Open of a directory succeeded")
	}
	// A file that is not a database.
	junk := filepath.Join(t.TempDir(), "junk.db")
	if err := os.WriteFile(junk, bytes.Repeat([]byte("not a database "), 1000), 0o600); err != nil {
		t.Fatal(err)
	}
	if a, err := Open(testCtx(t), junk, nil); err == nil {
		a.Close()
		t.Error("Open of a file that is not SQLite succeeded")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if a, err := Open(ctx, filepath.Join(t.TempDir(), "x.db"), nil); err == nil {
		a.Close()
		t.Error("Open with a cancelled context succeeded")
	}
}

func TestPingAndClose(t *testing.T) {
	t.Parallel()
	a, err := Open(testCtx(t), filepath.Join(t.TempDir(), "p.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Ping(testCtx(t)); err != nil {
		t.Fatalf("Ping: %v", err)
	}
	if err := a.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := a.Ping(testCtx(t)); err == nil {
		t.Fatal("Ping after Close succeeded")
	}
	if err := a.Insert(testCtx(t), []relay.Message{testMessage("acc:o", 1, relay.KindText, "")}); err == nil {
		t.Fatal("Insert after Close succeeded")
	}
}

func TestMigrations(t *testing.T) {
	t.Parallel()
	ms, err := loadMigrations(migrationFiles, "migrations")
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) == 0 || ms[0].version != 1 {
		t.Fatalf("embedded migrations = %v, want version 1 first", ms)
	}
	for _, names := range [][]string{
		{"init.sql"},
		{"0000_zero.sql"},
		{"0001_a.sql", "1_b.sql"},
	} {
		fsys := fstest.MapFS{}
		for _, n := range names {
			fsys["m/"+n] = &fstest.MapFile{Data: []byte("SELECT 1;")}
		}
		if _, err := loadMigrations(fsys, "m"); err == nil {
			t.Errorf("loadMigrations(%v) succeeded", names)
		}
	}

	// A failing migration leaves nothing behind: not its first
	// statement, not its record.
	logs := &testenv.SyncBuffer{}
	a, err := Open(testCtx(t), MemoryPath, testenv.Logger(t, logs))
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	failing := migration{version: 90, name: "0090_fail.sql", checksum: "x",
		script: "CREATE TABLE half (x INTEGER); SELECT no_such_function();"}
	if err := a.applyMigrations(testCtx(t), append(ms, failing)); err == nil {
		t.Fatal("a failing migration succeeded")
	}
	var n int
	if err := a.db.QueryRow(`SELECT count(*) FROM sqlite_schema WHERE name = 'half'`).Scan(&n); err != nil || n != 0 {
		t.Errorf("the failing migration's table exists (%d, %v)", n, err)
	}
	if err := a.db.QueryRow(`SELECT count(*) FROM schema_migrations WHERE version = 90`).Scan(&n); err != nil || n != 0 {
		t.Errorf("the failing migration was recorded (%d, %v)", n, err)
	}

	// Edited history and versions from a newer binary are warned about.
	edited := slices.Clone(ms)
	edited[0].checksum = "edited"
	if err := a.applyMigrations(testCtx(t), edited[:1]); err != nil {
		t.Fatal(err)
	}
	if _, err := a.db.Exec(`INSERT INTO schema_migrations (version, name, checksum, applied_at) VALUES (99, '0099_future.sql', 'x', '')`); err != nil {
		t.Fatal(err)
	}
	if err := a.applyMigrations(testCtx(t), ms); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"applied migration differs", "migration this binary does not know"} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("no warning %q in the logs:\n%s", want, logs)
		}
	}
}

// TestTwoHandlesOneFile is two processes on one file, as when an operator
// runs `wechat-relay export` next to a running relay: both can write, and
// the busy timeout, not an error, sorts out the lock.
func TestTwoHandlesOneFile(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "shared.db")
	handles := []*Archive{openAt(t, path), openAt(t, path)}
	var wg sync.WaitGroup
	errs := make(chan error, 2*20)
	for h, a := range handles {
		wg.Go(func() {
			conv := relay.Conversation("acc", fmt.Sprintf("o_handle%d", h))
			for seq := uint64(1); seq <= 20; seq++ {
				if err := a.Insert(testCtx(t), []relay.Message{testMessage(conv, seq, relay.KindText, "")}); err != nil {
					errs <- err
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	for h := range handles {
		conv := relay.Conversation("acc", fmt.Sprintf("o_handle%d", h))
		for _, a := range handles {
			if n, err := a.MaxSeq(testCtx(t), conv); err != nil || n != 20 {
				t.Errorf("MaxSeq(%s) = %d, %v; want 20", conv, n, err)
			}
		}
	}
}

func TestSeqBeyondInt64Refused(t *testing.T) {
	t.Parallel()
	a := openAt(t, MemoryPath)
	m := testMessage("acc:o_big", 1<<63, relay.KindText, "")
	if err := a.Insert(testCtx(t), []relay.Message{m}); err == nil {
		t.Fatal("Insert of a sequence beyond int64 succeeded")
	}
	if got, err := a.Since(testCtx(t), "acc:o_big", 1<<63, 0); err != nil || len(got) != 0 {
		t.Fatalf("Since after 2^63 = %v, %v", got, err)
	}
}

// BenchmarkInsert measures a committed (fsynced) Insert of a batch of 1
// and of 100 messages into a file archive.
func BenchmarkInsert(b *testing.B) {
	for _, size := range []int{1, 100} {
		b.Run(fmt.Sprintf("batch=%d", size), func(b *testing.B) {
			a, err := Open(context.Background(), filepath.Join(b.TempDir(), "bench.db"), nil)
			if err != nil {
				b.Fatal(err)
			}
			defer a.Close()
			ctx := context.Background()
			conv := relay.Conversation("acc", "o_bench")
			batch := make([]relay.Message, size)
			seq := uint64(0)
			b.ReportAllocs()
			for b.Loop() {
				for i := range batch {
					seq++
					batch[i] = testMessage(conv, seq, relay.KindText, "")
				}
				if err := a.Insert(ctx, batch); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(seq)/b.Elapsed().Seconds(), "msgs/s")
		})
	}
}

// Messages archived before migration 0002 have no interaction value
// (NULL); legacy_interaction derives it from direction, kind and event,
// and LastInteraction sees them as IsInteraction does.
func TestInteractionOfRowsArchivedBeforeTheColumn(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	path := filepath.Join(t.TempDir(), "legacy.db")
	if err := createFile(path); err != nil {
		t.Fatal(err)
	}
	db, err := sql.Open("sqlite", dsn(path, false))
	if err != nil {
		t.Fatal(err)
	}
	old := &Archive{db: db, path: path, log: testenv.Logger(t), writeTurn: make(chan struct{}, 1)}
	old.writeTurn <- struct{}{}
	ms, err := loadMigrations(migrationFiles, "migrations")
	if err != nil {
		t.Fatal(err)
	}
	if err := old.applyMigrations(ctx, ms[:1]); err != nil {
		t.Fatalf("migrating to version 1: %v", err)
	}
	kinds := []struct {
		dir   relay.Direction
		kind  relay.Kind
		event string
	}{
		{relay.Inbound, relay.KindText, ""}, {relay.Inbound, relay.KindImage, ""}, {relay.Inbound, relay.KindLocation, ""},
		{relay.Inbound, relay.KindEvent, "subscribe"}, {relay.Inbound, relay.KindEvent, "SCAN"},
		{relay.Inbound, relay.KindEvent, "CLICK"}, {relay.Inbound, relay.KindEvent, "VIEW"},
		{relay.Inbound, relay.KindEvent, "scancode_push"}, {relay.Inbound, relay.KindEvent, "scancode_waitmsg"},
		{relay.Inbound, relay.KindEvent, "pic_sysphoto"}, {relay.Inbound, relay.KindEvent, "pic_photo_or_album"},
		{relay.Inbound, relay.KindEvent, "pic_weixin"}, {relay.Inbound, relay.KindEvent, "location_select"},
		{relay.Inbound, relay.KindEvent, "unsubscribe"}, {relay.Inbound, relay.KindEvent, "LOCATION"},
		{relay.Inbound, relay.KindEvent, "TEMPLATESENDJOBFINISH"}, {relay.Inbound, relay.KindEvent, "MASSSENDJOBFINISH"},
		{relay.Outbound, relay.KindText, ""}, {relay.Outbound, relay.KindEvent, "subscribe"},
	}
	var msgs []relay.Message
	for i, k := range kinds {
		m := testMessage(relay.Conversation("acc", fmt.Sprintf("o_legacy%d", i)), 1, k.kind, "")
		m.Direction, m.Event = k.dir, k.event
		msgs = append(msgs, m)
		// As version 1 wrote them: without the column.
		if _, err := db.ExecContext(ctx, `INSERT INTO messages (id, account, client, conv, seq, direction, kind,
			wx_msg_id, event, event_key, text, media_id, attrs, raw, created_at, accepted_ms, employee, has_media)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			m.ID, m.Account, m.Client, string(m.Conv), int64(m.Seq), string(m.Direction), string(m.Kind),
			m.WxMsgID, m.Event, m.EventKey, m.Text, m.MediaID, "{}", m.Raw,
			m.CreatedAt.Unix(), m.AcceptedAt.UnixMilli(), m.Employee, 0); err != nil {
			t.Fatal(err)
		}
	}
	if err := old.Close(); err != nil {
		t.Fatal(err)
	}

	a := openAt(t, path) // migrates to the latest version
	for _, m := range msgs {
		at, _, err := a.LastInteraction(ctx, m.Conv)
		if err != nil {
			t.Fatalf("LastInteraction(%s): %v", m.Conv, err)
		}
		if got := !at.IsZero(); got != m.IsInteraction() {
			t.Errorf("%s %s %q archived before the column: interaction %v, IsInteraction %v", m.Direction, m.Kind, m.Event, got, m.IsInteraction())
		}
	}
	// New rows carry their own value, which wins over the derived one.
	var own, derived sql.NullInt64
	m := testMessage(relay.Conversation("acc", "o_new"), 1, relay.KindText, "")
	if err := a.Insert(ctx, []relay.Message{m}); err != nil {
		t.Fatal(err)
	}
	if err := a.db.QueryRowContext(ctx, `SELECT interaction, legacy_interaction FROM messages WHERE id = ?`, m.ID).Scan(&own, &derived); err != nil {
		t.Fatal(err)
	}
	if !own.Valid || own.Int64 != 1 || !derived.Valid || derived.Int64 != 1 {
		t.Errorf("a new inbound text: interaction %v, legacy_interaction %v; want 1 and 1", own, derived)
	}
}
