package e2e

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	_ "modernc.org/sqlite"

	"github.com/wechat-relay/wechat-relay/configs"
	"github.com/wechat-relay/wechat-relay/deployments/commands"
	"github.com/wechat-relay/wechat-relay/deployments/commands/cmdtest"
	"github.com/wechat-relay/wechat-relay/relay"
	"github.com/wechat-relay/wechat-relay/relay/verify"
	"github.com/wechat-relay/wechat-relay/storage/archive"
	"github.com/wechat-relay/wechat-relay/storage/bus"
	"github.com/wechat-relay/wechat-relay/storage/embedded"
	"github.com/wechat-relay/wechat-relay/storage/spool"
	"github.com/wechat-relay/wechat-relay/storage/state"
	"github.com/wechat-relay/wechat-relay/storage/testenv"
)

// `wechat-relay verify` against archives written by a real relay, then
// tampered with behind its back, directly in the database, as someone
// with access to it would: each alteration, deletion and insertion must
// be reported, with the row's id and conversation.

// verifyReport is the -json output.
type verifyReport struct {
	Archive string `json:"archive"`
	verify.Report
	Audit     *relay.AuditReport     `json:"audit"`
	Directory *relay.DirectoryReport `json:"directory"`
	Holds     *relay.RecordReport    `json:"holds"`
	Reviews   *relay.RecordReport    `json:"reviews"`
}

// runVerify runs `wechat-relay verify -config cfgPath -json` with extra
// flags and returns the exit code and the report.
func runVerify(t *testing.T, cfgPath string, extra ...string) (int, verifyReport) {
	t.Helper()
	var out, errOut bytes.Buffer
	code := commands.Run(append([]string{"verify", "-config", cfgPath, "-json"}, extra...), &out, &errOut, func(string) string { return "" })
	var rep verifyReport
	if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
		t.Fatalf("verify exited %d; output is not JSON (%v):\n%s\nstderr:\n%s", code, err, out.String(), errOut.String())
	}
	return code, rep
}

// runVerifyText runs verify with human-readable output.
func runVerifyText(t *testing.T, cfgPath string, extra ...string) (int, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code := commands.Run(append([]string{"verify", "-config", cfgPath}, extra...), &out, &errOut, func(string) string { return "" })
	return code, out.String() + errOut.String()
}

// wantFound fails unless rep lists a problem of kind about id (in conv,
// if conv is set).
func wantFound(t *testing.T, rep verifyReport, kind relay.ProblemKind, id string, conv relay.ConversationID) {
	t.Helper()
	for _, p := range rep.Problems {
		if p.Kind == kind && p.ID == id && (conv == "" || p.Conv == conv) {
			return
		}
	}
	t.Fatalf("verify did not report %s %s (conv %s); problems: %+v", kind, id, conv, rep.Problems)
}

// conversationTraffic runs a conversation through a relay: the client
// writes n messages, one at a time (so they land in several batches),
// and alice answers twice; it returns the conversation once everything
// is archived and delivered.
func conversationTraffic(t *testing.T, r *testRelay, appID string, n int) relay.ConversationID {
	t.Helper()
	if err := testSim.SetCallbackURL(appID, r.sys.URL()+"/wechat/acme"); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	client, err := testSim.NewClient(appID)
	if err != nil {
		t.Fatal(err)
	}
	if res, err := client.Subscribe(ctx); err != nil {
		t.Fatalf("subscribe: %v (%+v)", err, res)
	}
	conv := relay.ConversationID("acme:" + client.OpenID)
	for i := range n {
		if res, err := client.SendText(ctx, fmt.Sprintf("第 %d 条消息", i+1)); err != nil {
			t.Fatalf("client message: %v (%+v)", err, res)
		}
		// Archived before the next: each in a batch (and seal) of its own.
		verifyWait(t, "the message archived", func() bool {
			got, err := r.sys.Archive().Since(ctx, conv, 0, 0)
			return err == nil && len(got) == i+2
		})
	}
	for i := range 2 {
		send := map[string]any{"key": fmt.Sprint("reply-", i), "kind": "text", "text": fmt.Sprint("回复 ", i)}
		if status, body := r.api(t, "POST", "/api/conversations/"+string(conv)+"/messages", aliceTok, send); status != http.StatusAccepted {
			t.Fatalf("send: %d %v", status, body)
		}
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		delivered, _ := client.Delivered()
		ev, err := r.sys.Archive().LatestEvents(ctx, []string{relay.OutboundID(conv, "reply-0"), relay.OutboundID(conv, "reply-1")})
		if err != nil {
			t.Fatal(err)
		}
		if len(delivered) == 2 && len(ev) == 2 && ev[relay.OutboundID(conv, "reply-0")].State == relay.DeliverySent &&
			ev[relay.OutboundID(conv, "reply-1")].State == relay.DeliverySent {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("replies not delivered and settled: phone %d, events %+v", len(delivered), ev)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return conv
}

// tamperer alters an archive behind the relay's back.
type tamperer interface {
	// exec runs SQL as an attacker with access to the database would.
	exec(t *testing.T, q string, args ...any)
	// insertMessage adds a row to messages, columns as given.
	insertMessage(t *testing.T, m relay.Message)
	// rewriteSeal replaces the stored seal s.ID with s.
	rewriteSeal(t *testing.T, s relay.Seal)
}

// verifyCatchesTampering is the part shared by both backends: a clean
// archive verifies; then each kind of tampering is reported.
func verifyCatchesTampering(t *testing.T, cfgPath string, conv relay.ConversationID, src verify.Source, tm tamperer) {
	code, rep := runVerify(t, cfgPath)
	if code != 0 || !rep.OK {
		t.Fatalf("clean archive: exit %d, problems %+v", code, rep.Problems)
	}
	// subscribe, 5 texts, 2 replies; sending and sent for each reply.
	if rep.Messages != 8 || rep.Events != 4 || len(rep.Chains) != 2 {
		t.Fatalf("clean archive: %d messages, %d events, chains %+v", rep.Messages, rep.Events, rep.Chains)
	}
	if code, out := runVerifyText(t, cfgPath); code != 0 || !strings.Contains(out, "OK: every row") {
		t.Fatalf("clean archive, text output: exit %d\n%s", code, out)
	}

	var msgChain verify.Chain
	for _, c := range rep.Chains {
		if c.Stream == relay.StreamMessages {
			msgChain = c
		}
	}
	if msgChain.Seals < 4 {
		t.Fatalf("the messages chain has %d seals; the test needs 4", msgChain.Seals)
	}
	// A witness's copy of the latest seal is found; a made-up one is not.
	if code, rep := runVerify(t, cfgPath, "-seal", msgChain.LastHash); code != 0 || len(rep.Witnesses) != 1 || !rep.Witnesses[0].Found {
		t.Fatalf("witnessed seal: exit %d, %+v", code, rep.Witnesses)
	}
	bogus := strings.Repeat("ab", 32)
	if code, rep := runVerify(t, cfgPath, "-seal", bogus); code != 1 {
		t.Fatalf("made-up witnessed seal: exit %d, %+v", code, rep.Witnesses)
	} else {
		wantFound(t, rep, relay.ProblemWitnessMissing, bogus, "")
	}

	rows := storedRows(t, src, conv)
	texts := rows.messages(func(m *relay.Message) bool { return m.Kind == relay.KindText && m.Direction == relay.Inbound })
	if len(texts) != 5 {
		t.Fatalf("%d inbound texts archived, want 5", len(texts))
	}

	// Altered: a message's text.
	tm.exec(t, `UPDATE messages SET text = 'I never said that' WHERE id = ?`, texts[1].ID)
	code, rep = runVerify(t, cfgPath)
	if code != 1 {
		t.Fatalf("after altering a row: exit %d", code)
	}
	wantFound(t, rep, relay.ProblemAltered, texts[1].ID, conv)
	if len(rep.Conversations) != 1 || rep.Conversations[0].Conv != conv || rep.Conversations[0].Altered != 1 {
		t.Fatalf("per conversation: %+v", rep.Conversations)
	}
	if _, out := runVerifyText(t, cfgPath); !strings.Contains(out, "altered") || !strings.Contains(out, texts[1].ID) ||
		!strings.Contains(out, "conv "+string(conv)) || !strings.Contains(out, "FAILED") {
		t.Fatalf("text output does not name the altered row:\n%s", out)
	}

	// Altered: a delivery event's outcome.
	sent := rows.events(func(e *relay.DeliveryEvent) bool { return e.State == relay.DeliverySent })
	tm.exec(t, `UPDATE events SET errmsg = 'never sent' WHERE id = ?`, sent[0].ID)
	_, rep = runVerify(t, cfgPath)
	wantFound(t, rep, relay.ProblemAltered, sent[0].ID, conv)

	// Missing: a message deleted.
	tm.exec(t, `DELETE FROM messages WHERE id = ?`, texts[3].ID)
	_, rep = runVerify(t, cfgPath)
	wantFound(t, rep, relay.ProblemMissing, texts[3].ID, conv)

	// Inserted: a forged message with no batch, and one slipped into a
	// sealed batch with a correct hash.
	forged := *texts[0]
	forged.ID, forged.WxMsgID, forged.Seq, forged.Text = "in:acme:forged-1", "forged-1", 99, "forged"
	forged.BatchID, forged.Hash = "", ""
	tm.insertMessage(t, forged)
	slipped := forged
	slipped.ID, slipped.Seq, slipped.BatchID = "in:acme:forged-2", 100, texts[0].BatchID
	slipped.Hash = relay.MessageHash(slipped)
	tm.insertMessage(t, slipped)
	_, rep = runVerify(t, cfgPath)
	wantFound(t, rep, relay.ProblemInserted, forged.ID, conv)
	wantFound(t, rep, relay.ProblemInserted, slipped.ID, conv)
	if rep.Counts[relay.ProblemInserted] != 2 || rep.Counts[relay.ProblemMissing] != 1 || rep.Counts[relay.ProblemAltered] != 2 {
		t.Fatalf("counts %v", rep.Counts)
	}

	// A seal altered in place: its hash no longer matches.
	seals := storedSeals(t, src, msgChain.Writer, relay.StreamMessages)
	tm.exec(t, `UPDATE seals SET root = ? WHERE id = ?`, strings.Repeat("0", 64), seals[0].ID)
	_, rep = runVerify(t, cfgPath)
	wantFound(t, rep, relay.ProblemSealAltered, seals[0].ID, "")

	// A row altered and its seal rewritten to match — hash column, leaf,
	// root and seal hash all recomputed: the next seal's link breaks.
	covering := func(id string) int {
		for i, x := range seals {
			if slices.ContainsFunc(x.Leaves, func(l relay.Leaf) bool { return l.ID == id }) {
				return i
			}
		}
		t.Fatalf("no seal lists %s", id)
		return -1
	}
	victim := *texts[2]
	victim.Text = "rewritten, seal and all"
	victim.Hash = relay.MessageHash(victim)
	tm.exec(t, `UPDATE messages SET text = ?, hash = ? WHERE id = ?`, victim.Text, victim.Hash, victim.ID)
	j := covering(victim.ID)
	if j == len(seals)-1 {
		t.Fatalf("%s is in the last seal", victim.ID)
	}
	tm.rewriteSeal(t, resealed(seals[j], victim.ID, victim.Hash))
	_, rep = runVerify(t, cfgPath)
	wantFound(t, rep, relay.ProblemChainBroken, seals[j+1].ID, "")

	// A seal deleted: its rows are left without one.
	k := covering(texts[4].ID)
	if k == len(seals)-1 || k == j || k == j+1 {
		t.Fatalf("seal %d covers %s: the test needs another", k, texts[4].ID)
	}
	tm.exec(t, `DELETE FROM seals WHERE id = ?`, seals[k].ID)
	_, rep = runVerify(t, cfgPath)
	wantFound(t, rep, relay.ProblemSealMissing, seals[k].ID, "")
	wantFound(t, rep, relay.ProblemInserted, texts[4].ID, conv)
	if _, out := runVerifyText(t, cfgPath); os.Getenv("WR_SHOW_VERIFY") != "" {
		t.Log(out)
	}
}

// rowSet is a conversation's rows as stored.
type rowSet []relay.StoredRow

func (r rowSet) messages(keep func(*relay.Message) bool) []*relay.Message {
	var out []*relay.Message
	for _, x := range r {
		if x.Message != nil && keep(x.Message) && !slices.ContainsFunc(out, func(m *relay.Message) bool { return m.ID == x.Message.ID }) {
			out = append(out, x.Message)
		}
	}
	slices.SortFunc(out, func(a, b *relay.Message) int { return int(a.Seq) - int(b.Seq) })
	return out
}

func (r rowSet) events(keep func(*relay.DeliveryEvent) bool) []*relay.DeliveryEvent {
	var out []*relay.DeliveryEvent
	for _, x := range r {
		if x.Event != nil && keep(x.Event) {
			out = append(out, x.Event)
		}
	}
	return out
}

// storedRows reads every sealed row of conv.
func storedRows(t *testing.T, src verify.Source, conv relay.ConversationID) rowSet {
	t.Helper()
	var out rowSet
	if err := src.ScanBatches(context.Background(), "", "\xff", func(r relay.StoredRow) error {
		if r.Conv() == conv {
			out = append(out, r)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return out
}

// storedSeals reads the seals of one chain, in order.
func storedSeals(t *testing.T, src verify.Source, writer, stream string) []relay.Seal {
	t.Helper()
	var (
		out   []relay.Seal
		after *relay.SealKey
	)
	for {
		page, err := src.Seals(context.Background(), after, 100)
		if err != nil {
			t.Fatal(err)
		}
		if len(page) == 0 {
			return out
		}
		for _, s := range page {
			if s.Writer == writer && s.Stream == stream {
				out = append(out, s)
			}
		}
		last := page[len(page)-1]
		after = &relay.SealKey{Writer: last.Writer, Stream: last.Stream, Number: last.Number}
	}
}

// clickhouseTamperer alters a ClickHouse archive with SQL: mutations
// (ALTER TABLE ... UPDATE/DELETE, which 18.16 has, applied in the
// background: waited for here) and plain inserts.
type clickhouseTamperer struct {
	conn driver.Conn
	db   string
}

// sqlite-style statements, rewritten into ClickHouse mutations.
func (c clickhouseTamperer) exec(t *testing.T, q string, args ...any) {
	t.Helper()
	switch {
	case strings.HasPrefix(q, "UPDATE "):
		table, rest, _ := strings.Cut(strings.TrimPrefix(q, "UPDATE "), " SET ")
		q = "ALTER TABLE " + table + " UPDATE " + rest
	case strings.HasPrefix(q, "DELETE FROM "):
		table, rest, _ := strings.Cut(strings.TrimPrefix(q, "DELETE FROM "), " WHERE ")
		q = "ALTER TABLE " + table + " DELETE WHERE " + rest
	}
	ctx := context.Background()
	if err := c.conn.Exec(ctx, q, args...); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	c.waitMutations(t)
}

func (c clickhouseTamperer) waitMutations(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		var n uint64
		if err := c.conn.QueryRow(context.Background(),
			`SELECT count() FROM system.mutations WHERE database = ? AND is_done = 0`, c.db).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d mutations still running after 30s", n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (c clickhouseTamperer) insertMessage(t *testing.T, m relay.Message) {
	t.Helper()
	b, err := c.conn.PrepareBatch(context.Background(), `INSERT INTO messages (id, account, client, conv, seq, direction, kind,
		wx_msg_id, event, event_key, text, media_id, attrs, raw, created_at, accepted_at, accepted_ms, employee, day, interaction, hash, batch_id)`)
	if err != nil {
		t.Fatal(err)
	}
	acc := m.AcceptedAt.UTC()
	day := time.Date(acc.Year(), acc.Month(), acc.Day(), 0, 0, 0, 0, time.UTC)
	var interaction uint8
	if m.IsInteraction() {
		interaction = 1
	}
	if err := b.Append(m.ID, m.Account, m.Client, string(m.Conv), m.Seq, string(m.Direction), string(m.Kind),
		m.WxMsgID, m.Event, m.EventKey, m.Text, m.MediaID, attrsJSON(m), string(m.Raw), m.CreatedAt.UTC(), acc.Truncate(time.Second),
		uint64(acc.UnixMilli()), m.Employee, day, interaction, m.Hash, m.BatchID); err != nil {
		t.Fatal(err)
	}
	if err := b.Send(); err != nil {
		t.Fatal(err)
	}
}

func (c clickhouseTamperer) rewriteSeal(t *testing.T, s relay.Seal) {
	t.Helper()
	ids, convs, hashes := leafColumns(s)
	c.exec(t, `UPDATE seals SET leaf_ids = ?, leaf_convs = ?, leaf_hashes = ?, leaf_count = ?, root = ?, hash = ? WHERE id = ?`,
		ids, convs, hashes, uint64(s.Count), s.Root, s.Hash, s.ID)
}

// attrsJSON is m.Attrs as both archives store them.
func attrsJSON(m relay.Message) string {
	if len(m.Attrs) == 0 {
		return "{}"
	}
	b, _ := json.Marshal(m.Attrs)
	return string(b)
}

func leafColumns(s relay.Seal) (ids, convs, hashes []string) {
	for _, l := range s.Leaves {
		ids = append(ids, l.ID)
		convs = append(convs, string(l.Conv))
		hashes = append(hashes, l.Hash)
	}
	return ids, convs, hashes
}

// sqliteTamperer alters an embedded archive with the sqlite driver, after
// dropping the triggers that make the tables append-only — as anyone
// holding the file can.
type sqliteTamperer struct{ db *sql.DB }

func openSQLiteTamperer(t *testing.T, path string) sqliteTamperer {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+path+"?_busy_timeout=10000")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	rows, err := db.Query(`SELECT name FROM sqlite_master WHERE type = 'trigger'`)
	if err != nil {
		t.Fatal(err)
	}
	var triggers []string
	for rows.Next() {
		var name string
		rows.Scan(&name)
		triggers = append(triggers, name)
	}
	rows.Close()
	if len(triggers) == 0 {
		t.Fatal("the embedded archive has no append-only triggers")
	}
	for _, name := range triggers {
		if _, err := db.Exec(`DROP TRIGGER "` + name + `"`); err != nil {
			t.Fatal(err)
		}
	}
	return sqliteTamperer{db}
}

func (s sqliteTamperer) exec(t *testing.T, q string, args ...any) {
	t.Helper()
	res, err := s.db.Exec(q, args...)
	if err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	if n, _ := res.RowsAffected(); n != 1 {
		t.Fatalf("%s changed %d rows, want 1", q, n)
	}
}

func (s sqliteTamperer) insertMessage(t *testing.T, m relay.Message) {
	t.Helper()
	interaction := 0
	if m.IsInteraction() {
		interaction = 1
	}
	s.exec(t, `INSERT INTO messages (id, account, client, conv, seq, direction, kind, wx_msg_id, event, event_key,
		text, media_id, attrs, raw, created_at, accepted_ms, employee, has_media, interaction, hash, batch_id)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0, ?, ?, ?)`,
		m.ID, m.Account, m.Client, string(m.Conv), int64(m.Seq), string(m.Direction), string(m.Kind), m.WxMsgID, m.Event, m.EventKey,
		m.Text, m.MediaID, attrsJSON(m), append([]byte{}, m.Raw...), m.CreatedAt.Unix(), m.AcceptedAt.UnixMilli(), m.Employee, interaction, m.Hash, m.BatchID)
}

func (s sqliteTamperer) rewriteSeal(t *testing.T, x relay.Seal) {
	t.Helper()
	leaves := make([][3]string, len(x.Leaves))
	for i, l := range x.Leaves {
		leaves[i] = [3]string{l.ID, string(l.Conv), l.Hash}
	}
	js, _ := json.Marshal(leaves)
	s.exec(t, `UPDATE seals SET leaves = ?, leaf_count = ?, root = ?, hash = ? WHERE id = ?`, string(js), x.Count, x.Root, x.Hash, x.ID)
}

func TestVerifyClickHouseArchive(t *testing.T) {
	ch, rd := testenv.ClickHouseAddr(t), testenv.RedisAddr(t)
	db := testenv.UniqueName("e2e_verify")
	dataDir := t.TempDir()
	cfg := e2eConfig(t, ch, rd, db, testenv.UniqueName("wr")+":", dataDir)
	t.Cleanup(func() { cmdtest.DropDatabase(t, ch, db) })
	acct := simAccount(t, cfg)
	r := startRelay(t, cfg)
	conv := conversationTraffic(t, r, acct.AppID, 5)
	r.stop()

	conn, err := clickhouse.Open(&clickhouse.Options{Addr: []string{ch}, Auth: clickhouse.Auth{Database: db}})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	src, err := archive.Open(context.Background(), archive.Config{Addr: ch, Database: db, ReadOnly: true}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	tm := clickhouseTamperer{conn, db}
	cfgPath := cmdtest.ArchiveConfig(t, dataDir, ch, db)

	// ReplacingMergeTree's way first: a modified copy of a row with a
	// higher version, which FINAL and merges prefer to the original.
	texts := storedRows(t, src, conv).messages(func(m *relay.Message) bool { return m.Kind == relay.KindText && m.Direction == relay.Inbound })
	copyOf := *texts[4]
	copyOf.Text = "a later, better version"
	copyOf.AcceptedAt = copyOf.AcceptedAt.Add(time.Hour)
	copyOf.Hash = relay.MessageHash(copyOf)
	tm.insertMessage(t, copyOf)
	code, rep := runVerify(t, cfgPath)
	if code != 1 {
		t.Fatalf("after a modified copy: exit %d", code)
	}
	wantFound(t, rep, relay.ProblemAltered, copyOf.ID, conv)
	// Merged away, the original is gone and the copy alone is there.
	if err := conn.Exec(context.Background(), `OPTIMIZE TABLE messages FINAL`); err != nil {
		t.Fatal(err)
	}
	_, rep = runVerify(t, cfgPath)
	wantFound(t, rep, relay.ProblemAltered, copyOf.ID, conv)
	// Put it back as it was, so that the shared cases start clean.
	tm.exec(t, `DELETE FROM messages WHERE id = ?`, copyOf.ID)
	tm.insertMessage(t, *texts[4])

	verifyCatchesTampering(t, cfgPath, conv, src, tm)
}

func TestVerifyEmbeddedArchive(t *testing.T) {
	dataDir := t.TempDir()
	cfg := e2eConfig(t, "", "", "", "", dataDir)
	acct := simAccount(t, cfg)
	r := startRelay(t, cfg)
	conv := conversationTraffic(t, r, acct.AppID, 5)
	r.stop()

	cfgPath := cmdtest.ArchiveConfig(t, dataDir, "", "")
	src, err := embedded.Open(context.Background(), cfg.ArchivePath(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	tm := openSQLiteTamperer(t, cfg.ArchivePath())
	verifyCatchesTampering(t, cfgPath, conv, src, tm)
}

func TestVerifyMissingEmbeddedArchive(t *testing.T) {
	code, out := runVerifyText(t, cmdtest.ArchiveConfig(t, t.TempDir(), "", ""))
	if code != 3 || !strings.Contains(out, "no embedded archive") {
		t.Fatalf("exit %d:\n%s", code, out)
	}
}

// sealFails is an archive whose seals are never stored: a relay that
// dies between the insert of a batch and the insert of its seal.
type sealFails struct{ relay.Archive }

func (sealFails) InsertSeal(context.Context, relay.Seal) error {
	return fmt.Errorf("killed before the seal was written")
}

// A crash between a batch's insert and its seal's: the restarted relay
// seals the batch from the archive before it delivers anything, and the
// archive verifies.
func TestVerifyAfterCrashBeforeSeal(t *testing.T) {
	for _, backend := range []string{"clickhouse", "embedded"} {
		t.Run(backend, func(t *testing.T) {
			dataDir := t.TempDir()
			var (
				store   relay.Archive
				src     verify.Source
				cfgPath string
			)
			switch backend {
			case "clickhouse":
				ch := testenv.ClickHouseAddr(t)
				db := testenv.UniqueName("e2e_crash")
				t.Cleanup(func() { cmdtest.DropDatabase(t, ch, db) })
				a, err := archive.Open(context.Background(), archive.Config{Addr: ch, Database: db}, nil)
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { a.Close() })
				store, src, cfgPath = a, a, cmdtest.ArchiveConfig(t, dataDir, ch, db)
			default:
				a, err := embedded.Open(context.Background(), filepath.Join(dataDir, "archive.db"), nil)
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { a.Close() })
				store, src, cfgPath = a, a, cmdtest.ArchiveConfig(t, dataDir, "", "")
			}
			spoolDir := filepath.Join(dataDir, "spool")
			writer, err := configs.WriterID(spoolDir + "-id")
			if err == nil {
				t.Fatal("writerID of a missing directory succeeded")
			}
			os.MkdirAll(spoolDir, 0o700)
			if writer, err = configs.WriterID(spoolDir); err != nil {
				t.Fatal(err)
			}
			if again, _ := configs.WriterID(spoolDir); again != writer || !relay.ValidWriter(writer) {
				t.Fatalf("writer id %q, then %q", writer, again)
			}

			conv := relay.Conversation("acme", "oCrash")
			msgs := make([]relay.Message, 3)
			for i := range msgs {
				msgs[i] = relay.Message{
					ID: msgID("oCrash", fmt.Sprint(900+i)), Account: "acme", Client: "oCrash", Conv: conv,
					Direction: relay.Inbound, Kind: relay.KindText, WxMsgID: fmt.Sprint(900 + i), Text: fmt.Sprint("crash ", i),
					CreatedAt: time.Now().Truncate(time.Second),
				}
			}

			// First life: the batch is archived, its seal never is.
			p1, sp1, published1 := crashPipeline(t, spoolDir, writer, sealFails{store})
			ctx1, stop1 := context.WithCancel(context.Background())
			done1 := make(chan error, 1)
			// All three are spooled before the writer starts, so they are
			// one batch: were they split, the first batch's seal, which
			// never succeeds, would hold the others back for good.
			for _, m := range msgs {
				if err := p1.Accept(context.Background(), m); err != nil {
					t.Fatal(err)
				}
			}
			go func() { done1 <- p1.Run(ctx1) }()
			verifyWait(t, "the batch archived", func() bool {
				got, err := store.Since(context.Background(), conv, 0, 0)
				return err == nil && len(got) == len(msgs)
			})
			time.Sleep(50 * time.Millisecond)
			stop1()
			<-done1
			sp1.Close()
			if n := published1(); n != 0 {
				t.Fatalf("%d messages delivered before their batch was sealed", n)
			}
			if code, rep := runVerify(t, cfgPath); code != 1 || rep.Counts[relay.ProblemInserted] != len(msgs) {
				t.Fatalf("before the restart: exit %d, %+v", code, rep.Problems)
			}

			// Second life, same writer: the seal is written from the archive
			// first, then the spooled batch is delivered, not archived again.
			p2, sp2, published2 := crashPipeline(t, spoolDir, writer, store)
			ctx2, stop2 := context.WithCancel(context.Background())
			done2 := make(chan error, 1)
			go func() { done2 <- p2.Run(ctx2) }()
			verifyWait(t, "the spool drained", func() bool { return sp2.Len() == 0 && published2() == len(msgs) })
			stop2()
			<-done2
			sp2.Close()

			seals := storedSeals(t, src, writer, relay.StreamMessages)
			if len(seals) != 1 || !seals[0].Recovered || seals[0].Count != len(msgs) {
				t.Fatalf("seals after the restart: %+v", seals)
			}
			if code, rep := runVerify(t, cfgPath); code != 0 || rep.Messages != len(msgs) {
				t.Fatalf("after the restart: exit %d, %d messages, problems %+v", code, rep.Messages, rep.Problems)
			}
		})
	}
}

// crashPipeline builds a pipeline on real storage: the spool in dir, the
// given archive, in-memory state and bus. published counts the messages
// it has delivered.
func crashPipeline(t *testing.T, dir, writer string, a relay.Archive) (*relay.Pipeline, *spool.Spool, func() int) {
	t.Helper()
	sp, err := spool.Open(spool.Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	b := bus.NewMemoryBus(bus.Options{})
	ch, err := b.Subscribe(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var n int
	count := func() int {
		for {
			select {
			case e := <-ch:
				if e.Type == relay.EventMessage {
					n++
				}
			default:
				return n
			}
		}
	}
	p, err := relay.NewPipeline(relay.Config{Writer: writer, Linger: time.Millisecond, RetryMin: 5 * time.Millisecond,
		RetryMax: 20 * time.Millisecond, DrainTimeout: 100 * time.Millisecond}, relay.Deps{
		Spool: sp, Archive: a, Bus: b, Dedupe: state.NewMemoryDedupe(), Sequencer: state.NewMemorySequencer(),
		Router: relay.NewRouter(state.NewMemoryAssignments(), map[string][]string{"acme": {"alice"}}),
	})
	if err != nil {
		t.Fatal(err)
	}
	return p, sp, count
}

func verifyWait(t *testing.T, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// makeSealKey runs `wechat-relay seal-key -out dir/name` and returns the
// private key's path and the path of a file holding the public key it
// printed.
func makeSealKey(t *testing.T, dir, name string) (private, public string) {
	t.Helper()
	private = filepath.Join(dir, name)
	var out, errOut bytes.Buffer
	if code := commands.Run([]string{"seal-key", "-out", private}, &out, &errOut, func(string) string { return "" }); code != 0 {
		t.Fatalf("seal-key exited %d: %s", code, errOut.String())
	}
	public = private + ".pub"
	if err := os.WriteFile(public, out.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	return private, public
}

// supervisorViews has the supervisor open conv n times: each view is an
// audit record.
func supervisorViews(t *testing.T, r *testRelay, conv relay.ConversationID, n int) {
	t.Helper()
	for range n {
		if status, body := r.api(t, "GET", "/api/conversations/"+string(conv)+"/messages", supTok, nil); status != http.StatusOK {
			t.Fatalf("supervisor view: %d %v", status, body)
		}
	}
}

// wantAudit fails unless rep's audit part lists a problem of kind about
// id.
func wantAudit(t *testing.T, rep verifyReport, kind relay.ProblemKind, id string) {
	t.Helper()
	if rep.Audit == nil || !slices.ContainsFunc(rep.Audit.Problems, func(p relay.AuditProblem) bool { return p.Kind == kind && p.ID == id }) {
		t.Fatalf("verify did not report audit %s %s; audit report: %+v", kind, id, rep.Audit)
	}
}

// verifyChecksSignatures runs a relay without a seal key, then again
// (same writer) with one, and checks what verify says of the signatures
// of the seals and the audit records — with the right key, the wrong
// one, both, unsigned ones before and after the cut-off — and that a
// chain's last seal, or the audit log's last record, rewritten with
// recomputed hashes by someone without the key is caught.
func verifyChecksSignatures(t *testing.T, cfg *configs.Config, cfgPath string, src verify.Source, tm tamperer) {
	keys := t.TempDir()
	private, public := makeSealKey(t, keys, "seal.key")
	_, otherPublic := makeSealKey(t, keys, "other.key")
	pubs, err := os.ReadFile(public)
	if err != nil {
		t.Fatal(err)
	}
	others, _ := os.ReadFile(otherPublic)
	both := filepath.Join(keys, "both.pem")
	os.WriteFile(both, append(others, pubs...), 0o600)

	// First life: no key. Then signing is turned on.
	acct := simAccount(t, cfg)
	before := time.Now()
	r := startRelay(t, cfg)
	supervisorViews(t, r, conversationTraffic(t, r, acct.AppID, 2), 1)
	r.stop()
	time.Sleep(5 * time.Millisecond)
	cutoff := time.Now().UTC()
	time.Sleep(5 * time.Millisecond)
	cfg.Pipeline.SealKeyFile = private
	r = startRelay(t, cfg)
	conv := conversationTraffic(t, r, acct.AppID, 3)
	supervisorViews(t, r, conv, 2)
	r.stop()

	// Without keys: as before, plus the counts.
	code, rep := runVerify(t, cfgPath)
	if code != 0 || !rep.OK {
		t.Fatalf("mixed archive without keys: exit %d, %+v", code, rep.Problems)
	}
	sr := rep.Signatures
	if sr.Checked || sr.Signed == 0 || sr.Unsigned == 0 || sr.Signed+sr.Unsigned != rep.Seals || len(sr.ByKey) != 1 {
		t.Fatalf("signature counts without keys: %+v (%d seals)", sr, rep.Seals)
	}
	if _, out := runVerifyText(t, cfgPath); !strings.Contains(out, fmt.Sprintf("seal signatures: %d signed, %d unsigned (not checked", sr.Signed, sr.Unsigned)) ||
		!strings.Contains(out, "audit record signatures: 2 signed, 1 unsigned (not checked") {
		t.Fatalf("text output without keys:\n%s", out)
	}
	unsigned := sr.Unsigned
	// The audit log: the first life's view unsigned, the second's two
	// signed, one chain, only counted.
	if a := rep.Audit; !a.OK || len(a.Chains) != 1 || a.Chains[0].Records != 3 || a.Signatures.Checked ||
		a.Signatures.Signed != 2 || a.Signatures.Unsigned != 1 || len(a.Signatures.ByKey) != 1 {
		t.Fatalf("audit signatures without keys: %+v", a)
	}
	auditWriter := rep.Audit.Chains[0].Writer
	firstAudit := fmt.Sprintf("%s/audit/%020d", auditWriter, 1)
	lastAudit := fmt.Sprintf("%s/audit/%020d", auditWriter, 3)

	// With the key: the unsigned seals fail, unless the cut-off covers them.
	code, rep = runVerify(t, cfgPath, "-public-key", public)
	if code != 1 || rep.Counts[relay.ProblemUnsigned] != unsigned || rep.Signatures.Valid != sr.Signed || len(rep.Counts) != 1 {
		t.Fatalf("with the key, no cut-off: exit %d, counts %v, %+v", code, rep.Counts, rep.Signatures)
	}
	if a := rep.Audit; a.OK || len(a.Problems) != 1 || a.Signatures.Valid != 2 || a.Signatures.UnsignedRefused != 1 {
		t.Fatalf("audit with the key, no cut-off: %+v", a)
	}
	wantAudit(t, rep, relay.ProblemUnsigned, firstAudit)
	for _, p := range rep.Problems {
		if _, stream, n, ok := relay.ParseBatchID(p.ID); !ok || p.Table != "seals" ||
			!strings.Contains(p.Detail, fmt.Sprintf("seal %d of writer ", n)) || !strings.Contains(p.Detail, "stream "+stream) {
			t.Fatalf("problem does not name writer, stream and number: %+v", p)
		}
	}
	if code, out := runVerifyText(t, cfgPath, "-public-key", public); code != 1 || !strings.Contains(out, "unsigned") ||
		!strings.Contains(out, "-allow-unsigned-before") || !strings.Contains(out, "FAILED") {
		t.Fatalf("text output, unsigned refused: exit %d\n%s", code, out)
	}
	code, rep = runVerify(t, cfgPath, "-public-key", public, "-allow-unsigned-before", cutoff.Format(time.RFC3339Nano))
	if code != 0 || !rep.OK || rep.Signatures.UnsignedAllowed != unsigned || rep.Signatures.Valid != sr.Signed {
		t.Fatalf("with the key and the cut-off: exit %d, %+v, %+v", code, rep.Problems, rep.Signatures)
	}
	if a := rep.Audit; !a.OK || a.Signatures.Valid != 2 || a.Signatures.UnsignedAllowed != 1 {
		t.Fatalf("audit with the key and the cut-off: %+v", a)
	}
	if code, out := runVerifyText(t, cfgPath, "-public-key", public, "-allow-unsigned-before", cutoff.Format(time.RFC3339Nano)); code != 0 ||
		!strings.Contains(out, fmt.Sprintf("but %d unsigned ones made before", unsigned)) ||
		!strings.Contains(out, "audit record signatures, checked with key ids") ||
		!strings.Contains(out, "every record is signed by a given key but 1 unsigned ones made before") {
		t.Fatalf("text output, unsigned allowed: exit %d\n%s", code, out)
	}
	early := before.Add(-time.Second).UTC().Format(time.RFC3339Nano)
	if code, rep := runVerify(t, cfgPath, "-public-key", public, "-allow-unsigned-before", early); code != 1 || rep.Counts[relay.ProblemUnsigned] != unsigned ||
		rep.Audit.Signatures.UnsignedRefused != 1 {
		t.Fatalf("a cut-off before the first life: exit %d, %v, audit %+v", code, rep.Counts, rep.Audit.Signatures)
	}
	// The wrong key; then both (two instances, or a key rotation) as two
	// flags and as one file.
	code, rep = runVerify(t, cfgPath, "-public-key", otherPublic, "-allow-unsigned-before", cutoff.Format(time.RFC3339Nano))
	if code != 1 || rep.Counts[relay.ProblemUnknownKey] != sr.Signed {
		t.Fatalf("the wrong key: exit %d, %v", code, rep.Counts)
	}
	if a := rep.Audit; a.OK || a.Signatures.UnknownKey != 2 {
		t.Fatalf("audit with the wrong key: %+v", a)
	}
	wantAudit(t, rep, relay.ProblemUnknownKey, lastAudit)
	for _, flags := range [][]string{{"-public-key", otherPublic, "-public-key", public}, {"-public-key", both}} {
		code, rep = runVerify(t, cfgPath, append(flags, "-allow-unsigned-before", cutoff.Format(time.RFC3339Nano))...)
		if code != 0 || len(rep.Signatures.Keys) != 2 || !rep.Audit.OK || rep.Audit.Signatures.Valid != 2 {
			t.Fatalf("%v: exit %d, %+v, audit %+v", flags, code, rep.Signatures, rep.Audit)
		}
	}
	// Bad flags.
	for _, flags := range [][]string{
		{"-public-key", private}, {"-public-key", filepath.Join(keys, "none.pem")},
		{"-allow-unsigned-before", "2024-01-01"}, {"-public-key", public, "-allow-unsigned-before", "yesterday"},
	} {
		if code, out := runVerifyText(t, cfgPath, flags...); code != 2 {
			t.Errorf("%v: exit %d, want 2\n%s", flags, code, out)
		}
	}

	// The attacker: alters a row of the messages chain's last seal, and
	// rewrites that seal to match — hash column, leaf, root, seal hash —
	// but cannot sign it. No later seal links to it: without keys this
	// passes (the hole signing closes), with the key it does not.
	var writer string
	for _, c := range rep.Chains {
		if c.Stream == relay.StreamMessages {
			writer = c.Writer
		}
	}
	seals := storedSeals(t, src, writer, relay.StreamMessages)
	last := seals[len(seals)-1]
	if last.KeyID == "" {
		t.Fatalf("the last seal %s is not signed", last.ID)
	}
	var victim *relay.Message
	for _, r := range storedRows(t, src, conv) {
		if r.Message != nil && r.Message.BatchID == last.ID {
			victim = r.Message
		}
	}
	if victim == nil {
		t.Fatalf("no message of %s in the last seal %s", conv, last.ID)
	}
	changed := *victim
	changed.Text = "rewritten at the end of the chain"
	changed.Hash = relay.MessageHash(changed)
	tm.exec(t, `UPDATE messages SET text = ?, hash = ? WHERE id = ?`, changed.Text, changed.Hash, changed.ID)
	tm.rewriteSeal(t, resealed(last, changed.ID, changed.Hash))
	if code, rep := runVerify(t, cfgPath); code != 0 {
		t.Fatalf("the rewritten tail without keys: exit %d, %+v (expected to pass: hashes alone cannot tell)", code, rep.Problems)
	}
	code, rep = runVerify(t, cfgPath, "-public-key", public, "-allow-unsigned-before", cutoff.Format(time.RFC3339Nano))
	if code != 1 || rep.Counts[relay.ProblemBadSignature] != 1 || len(rep.Counts) != 1 {
		t.Fatalf("the rewritten tail with the key: exit %d, %v", code, rep.Counts)
	}
	wantFound(t, rep, relay.ProblemBadSignature, last.ID, "")
	if code, out := runVerifyText(t, cfgPath, "-public-key", public, "-allow-unsigned-before", cutoff.Format(time.RFC3339Nano)); code != 1 ||
		!strings.Contains(out, "bad_signature") || !strings.Contains(out, last.ID) || !strings.Contains(out, "FAILED") {
		t.Fatalf("text output, bad signature: exit %d\n%s", code, out)
	}
	// Its signature removed instead: unsigned after signed seals, refused
	// whatever the cut-off.
	tm.exec(t, `UPDATE seals SET key_id = '', signature = '' WHERE id = ?`, last.ID)
	code, rep = runVerify(t, cfgPath, "-public-key", public, "-allow-unsigned-before", time.Now().Add(time.Hour).UTC().Format(time.RFC3339))
	if code != 1 || rep.Counts[relay.ProblemUnsigned] != 1 {
		t.Fatalf("the rewritten tail, unsigned: exit %d, %v", code, rep.Counts)
	}
	wantFound(t, rep, relay.ProblemUnsigned, last.ID, "")

	// The same attacker on the audit log: the last record's detail
	// rewritten, its hash recomputed (the chain still links: nothing
	// follows it). Without keys it passes; with the key its signature
	// does not verify; stripped of it, it is unsigned after signed
	// records, refused whatever the cut-off.
	audits, ok := src.(interface {
		LatestAudit(ctx context.Context, writer string) (relay.AuditEntry, bool, error)
	})
	if !ok {
		t.Fatalf("%T cannot read the audit log", src)
	}
	rec, ok, err := audits.LatestAudit(context.Background(), auditWriter)
	if err != nil || !ok || rec.ID != lastAudit || rec.KeyID == "" {
		t.Fatalf("LatestAudit = %+v, %v, %v; want %s, signed", rec, ok, err, lastAudit)
	}
	rec.Detail = "never looked at this conversation"
	rec.Hash = rec.ComputeHash()
	tm.exec(t, `UPDATE audit SET detail = ?, hash = ? WHERE id = ?`, rec.Detail, rec.Hash, rec.ID)
	if _, rep := runVerify(t, cfgPath); !rep.Audit.OK {
		t.Fatalf("the rewritten audit record without keys: %+v (expected to pass: hashes alone cannot tell)", rep.Audit.Problems)
	}
	cut := cutoff.Format(time.RFC3339Nano)
	code, rep = runVerify(t, cfgPath, "-public-key", public, "-allow-unsigned-before", cut)
	if code != 1 || rep.Audit.OK || len(rep.Audit.Problems) != 1 || rep.Audit.Signatures.Bad != 1 {
		t.Fatalf("the rewritten audit record with the key: exit %d, %+v", code, rep.Audit)
	}
	wantAudit(t, rep, relay.ProblemBadSignature, lastAudit)
	if code, out := runVerifyText(t, cfgPath, "-public-key", public, "-allow-unsigned-before", cut); code != 1 ||
		!strings.Contains(out, "bad_signature  audit    "+lastAudit) || !strings.Contains(out, "FAILED: the audit log does not verify") {
		t.Fatalf("text output, bad audit signature: exit %d\n%s", code, out)
	}
	tm.exec(t, `UPDATE audit SET key_id = '', signature = '' WHERE id = ?`, rec.ID)
	_, rep = runVerify(t, cfgPath, "-public-key", public, "-allow-unsigned-before", time.Now().Add(time.Hour).UTC().Format(time.RFC3339))
	if rep.Audit.OK || len(rep.Audit.Problems) != 1 || !strings.Contains(rep.Audit.Problems[0].Detail, "a signed chain stays signed") {
		t.Fatalf("the rewritten audit record, unsigned: %+v", rep.Audit)
	}
	wantAudit(t, rep, relay.ProblemUnsigned, lastAudit)
}

func TestVerifySignedClickHouseArchive(t *testing.T) {
	ch, rd := testenv.ClickHouseAddr(t), testenv.RedisAddr(t)
	db := testenv.UniqueName("e2e_signed")
	dataDir := t.TempDir()
	cfg := e2eConfig(t, ch, rd, db, testenv.UniqueName("wr")+":", dataDir)
	t.Cleanup(func() { cmdtest.DropDatabase(t, ch, db) })
	conn, err := clickhouse.Open(&clickhouse.Options{Addr: []string{ch}, Auth: clickhouse.Auth{Database: db}})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	src, err := archive.Open(context.Background(), archive.Config{Addr: ch, Database: db}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	verifyChecksSignatures(t, cfg, cmdtest.ArchiveConfig(t, dataDir, ch, db), src, clickhouseTamperer{conn, db})
}

func TestVerifySignedEmbeddedArchive(t *testing.T) {
	dataDir := t.TempDir()
	cfg := e2eConfig(t, "", "", "", "", dataDir)
	cfgPath := cmdtest.ArchiveConfig(t, dataDir, "", "")
	src := lazySQLite{path: cfg.ArchivePath()}
	t.Cleanup(func() {
		if src.a != nil {
			src.a.Close()
		}
	})
	verifyChecksSignatures(t, cfg, cfgPath, &src, &src)
}

// lazySQLite opens the embedded archive, as reader and as tamperer, once
// the relays that write it have run (the tamperer drops its triggers).
type lazySQLite struct {
	path string
	a    *embedded.Archive
	tm   *sqliteTamperer
}

func (l *lazySQLite) archive() *embedded.Archive {
	if l.a == nil {
		a, err := embedded.Open(context.Background(), l.path, nil)
		if err != nil {
			panic(err)
		}
		l.a = a
	}
	return l.a
}

func (l *lazySQLite) tamper(t *testing.T) *sqliteTamperer {
	if l.tm == nil {
		tm := openSQLiteTamperer(t, l.path)
		l.tm = &tm
	}
	return l.tm
}

func (l *lazySQLite) Seals(ctx context.Context, after *relay.SealKey, limit int) ([]relay.Seal, error) {
	return l.archive().Seals(ctx, after, limit)
}
func (l *lazySQLite) ScanBatches(ctx context.Context, from, to string, fn func(relay.StoredRow) error) error {
	return l.archive().ScanBatches(ctx, from, to, fn)
}
func (l *lazySQLite) ScanUnsealed(ctx context.Context, fn func(relay.StoredRow) error) error {
	return l.archive().ScanUnsealed(ctx, fn)
}
func (l *lazySQLite) exec(t *testing.T, q string, args ...any) { l.tamper(t).exec(t, q, args...) }
func (l *lazySQLite) insertMessage(t *testing.T, m relay.Message) {
	l.tamper(t).insertMessage(t, m)
}
func (l *lazySQLite) rewriteSeal(t *testing.T, s relay.Seal) { l.tamper(t).rewriteSeal(t, s) }
func (l *lazySQLite) LatestAudit(ctx context.Context, writer string) (relay.AuditEntry, bool, error) {
	return l.archive().LatestAudit(ctx, writer)
}

// resealed is s with the leaf id's hash replaced and its root and hash
// recomputed, as someone who can write the archive but has no seal key
// would forge it.
func resealed(s relay.Seal, id, hash string) relay.Seal {
	s.Leaves = slices.Clone(s.Leaves)
	hashes := make([]string, len(s.Leaves))
	for i := range s.Leaves {
		if s.Leaves[i].ID == id {
			s.Leaves[i].Hash = hash
		}
		hashes[i] = s.Leaves[i].Hash
	}
	s.Root = relay.MerkleRoot(hashes)
	s.Hash = s.ComputeHash()
	return s
}
