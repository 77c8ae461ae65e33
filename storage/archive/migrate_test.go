package archive

import (
	"fmt"
	"log/slog"
	"reflect"
	"strings"
	"sync"
	"testing"
	"testing/fstest"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/wechat-relay/wechat-relay/relay"
	"github.com/wechat-relay/wechat-relay/storage/testenv"
)

func TestSplitStatements(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		in   string
		want []string
	}{
		{"empty", "", nil},
		{"comments only", "-- nothing; here\n/* nor; here */\n", nil},
		{"one without semicolon", "SELECT 1", []string{"SELECT 1"}},
		{"two", "CREATE TABLE a (x UInt8) ENGINE = Memory;\n\nCREATE TABLE b (y String) ENGINE = Memory;\n",
			[]string{"CREATE TABLE a (x UInt8) ENGINE = Memory", "CREATE TABLE b (y String) ENGINE = Memory"}},
		{"semicolons in strings and comments", "SELECT 'a;b', \"c;d\", `e;f` -- g;h\n; SELECT 'it\\'s;' /* ; */ , 'x''y;z';",
			[]string{"SELECT 'a;b', \"c;d\", `e;f`", "SELECT 'it\\'s;'   , 'x''y;z'"}},
		{"trailing comment", "SELECT 1; -- done", []string{"SELECT 1"}},
	} {
		got, err := splitStatements(tc.in)
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s:\n got %q\nwant %q", tc.name, got, tc.want)
		}
	}
	for _, bad := range []string{"SELECT 'open", "SELECT 1 /* open"} {
		if _, err := splitStatements(bad); err == nil {
			t.Errorf("splitStatements(%q) succeeded", bad)
		}
	}
}

func TestLoadMigrations(t *testing.T) {
	t.Parallel()
	ms, err := loadMigrations(migrationFiles, "migrations")
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) == 0 || ms[0].version != 1 {
		t.Fatalf("embedded migrations = %+v", ms)
	}
	for i, m := range ms {
		if i > 0 && m.version <= ms[i-1].version {
			t.Errorf("migrations out of order: %d after %d", m.version, ms[i-1].version)
		}
		for _, s := range m.statements {
			// Re-running a migration must be harmless: CREATE says IF NOT
			// EXISTS, and ALTER is one ADD COLUMN that execIdempotent
			// recognises (18.16 has no ADD COLUMN IF NOT EXISTS).
			upper := strings.ToUpper(s)
			switch {
			case strings.HasPrefix(upper, "CREATE") && !strings.Contains(upper, "IF NOT EXISTS"):
				t.Errorf("%s: statement is not idempotent: %.60s", m.name, s)
			case strings.HasPrefix(upper, "ALTER") && (!addColumnRE.MatchString(s) || strings.Count(upper, "ADD COLUMN") != 1):
				t.Errorf("%s: ALTER must add exactly one column, as ALTER TABLE t ADD COLUMN c ...: %.60s", m.name, s)
			case !strings.HasPrefix(upper, "CREATE") && !strings.HasPrefix(upper, "ALTER"):
				t.Errorf("%s: neither CREATE nor ALTER ADD COLUMN, so not known to be idempotent: %.60s", m.name, s)
			}
		}
	}
	if got := len(ms[0].statements); got != 4 {
		t.Errorf("0001 has %d statements, want 4 (one per table)", got)
	}

	fsys := fstest.MapFS{
		"m/0002_b.sql": {Data: []byte("SELECT 2")},
		"m/0010_c.sql": {Data: []byte("SELECT 10")},
		"m/0001_a.sql": {Data: []byte("SELECT 1;")},
		"m/README.txt": {Data: []byte("not a migration")},
	}
	ms, err = loadMigrations(fsys, "m")
	if err != nil {
		t.Fatal(err)
	}
	var versions []uint32
	for _, m := range ms {
		versions = append(versions, m.version)
	}
	if !reflect.DeepEqual(versions, []uint32{1, 2, 10}) {
		t.Errorf("versions = %v", versions)
	}
	for name, fsys := range map[string]fstest.MapFS{
		"duplicate": {"m/0001_a.sql": {Data: []byte("SELECT 1")}, "m/01_b.sql": {Data: []byte("SELECT 1")}},
		"no number": {"m/init.sql": {Data: []byte("SELECT 1")}},
		"empty":     {"m/0001_a.sql": {Data: []byte("-- nothing")}},
	} {
		if _, err := loadMigrations(fsys, "m"); err == nil {
			t.Errorf("%s: loadMigrations succeeded", name)
		}
	}
}

func TestOpenTwiceIsNoop(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t)
	ctx := testCtx(t)
	a1, err := Open(ctx, cfg, testenv.Logger(t))
	if err != nil {
		t.Fatalf("first Open: %v", err)
	}
	defer a1.Close()
	a2, err := Open(ctx, cfg, testenv.Logger(t))
	if err != nil {
		t.Fatalf("second Open: %v", err)
	}
	defer a2.Close()

	ms, err := loadMigrations(migrationFiles, "migrations")
	if err != nil {
		t.Fatal(err)
	}
	if n := count(t, a2, `SELECT count() FROM schema_migrations`); n != uint64(len(ms)) {
		t.Errorf("schema_migrations has %d rows after two Opens, want %d", n, len(ms))
	}
	var tables []string
	rows, err := a2.conn.Query(ctx, `SELECT name FROM system.tables WHERE database = ? ORDER BY name`, cfg.Database)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			t.Fatal(err)
		}
		tables = append(tables, name)
	}
	rows.Close()
	want := []string{"alert_reviews", "audit", "client_profiles", "client_tags", "directory", "events", "holds", "journal", "lexicon_hits", "media", "media_links", "messages", "schema_migrations", "seals"}
	if !reflect.DeepEqual(tables, want) {
		t.Errorf("tables = %v, want %v", tables, want)
	}
	if err := a2.Ping(ctx); err != nil {
		t.Errorf("Ping: %v", err)
	}
}

func TestConfigValidate(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		cfg Config
		ok  bool
	}{
		{Config{Addr: "127.0.0.1:9000"}, true},
		{Config{Addr: "127.0.0.1:9000", Database: "wr_2"}, true},
		{Config{}, false},
		{Config{Addr: "127.0.0.1:9000", Database: "bad-name"}, false},
		{Config{Addr: "127.0.0.1:9000", Database: "x`; DROP"}, false},
	} {
		if err := tc.cfg.Validate(); (err == nil) != tc.ok {
			t.Errorf("Validate(%+v) = %v", tc.cfg, err)
		}
	}
	d := Config{Addr: "x"}.withDefaults()
	if d.Database != DefaultDatabase || d.DialTimeout != DefaultDialTimeout || d.ReadTimeout != DefaultReadTimeout {
		t.Errorf("defaults = %+v", d)
	}
}

func TestAddColumnRE(t *testing.T) {
	t.Parallel()
	for stmt, want := range map[string][]string{
		"ALTER TABLE messages ADD COLUMN interaction UInt8 DEFAULT 0":     {"messages", "interaction"},
		"alter table  m\n\tadd column\nx String":                          {"m", "x"},
		"ALTER TABLE messages DROP COLUMN interaction":                    nil,
		"ALTER TABLE messages ADD COLUMN IF NOT EXISTS interaction UInt8": {"messages", "IF"},
		"CREATE TABLE IF NOT EXISTS x (a UInt8) ENGINE = Memory":          nil,
	} {
		var got []string
		if sub := addColumnRE.FindStringSubmatch(stmt); sub != nil {
			got = sub[1:]
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("addColumnRE on %q = %q, want %q", stmt, got, want)
		}
	}
}

// openRaw connects to a fresh database on the test server without
// migrating it, so that a test can bring it to any version.
func openRaw(tb testing.TB) (Config, driver.Conn) {
	tb.Helper()
	cfg := testConfig(tb).withDefaults()
	ctx := testCtx(tb)
	boot, err := clickhouse.Open(cfg.options("", slog.New(slog.DiscardHandler)))
	if err != nil {
		tb.Fatal(err)
	}
	defer boot.Close()
	if err := boot.Exec(ctx, "CREATE DATABASE IF NOT EXISTS `"+cfg.Database+"`"); err != nil {
		tb.Fatal(err)
	}
	conn, err := clickhouse.Open(cfg.options(cfg.Database, slog.New(slog.DiscardHandler)))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { conn.Close() })
	return cfg, conn
}

// An ADD COLUMN cut short — applied, but its version not recorded — and
// the same migration run by several instances at once: every run
// succeeds, and the version is recorded.
func TestAddColumnMigrationIsIdempotent(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	cfg, conn := openRaw(t)
	ms, err := loadMigrations(migrationFiles, "migrations")
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) < 2 {
		t.Fatalf("want at least two migrations, have %d", len(ms))
	}
	log := testenv.Logger(t)
	if err := migrate(ctx, conn, ms[:1], log); err != nil {
		t.Fatalf("migrating to version 1: %v", err)
	}
	// Version 2's statements applied, its record lost.
	for _, stmt := range ms[1].statements {
		if err := conn.Exec(ctx, stmt); err != nil {
			t.Fatalf("applying %s by hand: %v", ms[1].name, err)
		}
	}
	// Plainly again fails on 18.16 (the reason for the guard)...
	if addColumnRE.MatchString(ms[1].statements[0]) {
		err := conn.Exec(ctx, ms[1].statements[0])
		t.Logf("ADD COLUMN run twice without the guard: %v", err)
	}
	// ...through the runner it does not, even from several instances.
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for range 4 {
		wg.Go(func() { errs <- migrate(ctx, conn, ms, log) })
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Errorf("migrate after a cut-short ADD COLUMN: %v", err)
		}
	}
	var v uint64
	if err := conn.QueryRow(ctx, `SELECT count() FROM schema_migrations WHERE version = ?`, ms[1].version).Scan(&v); err != nil || v == 0 {
		t.Errorf("version %d recorded %d times (%v), want at least once", ms[1].version, v, err)
	}
	a, err := Open(ctx, cfg, log)
	if err != nil {
		t.Fatalf("Open after it all: %v", err)
	}
	a.Close()

	// Instances racing on a database at version 1: some see the column
	// missing and add it while another does.
	_, conn2 := openRaw(t)
	if err := migrate(ctx, conn2, ms[:1], log); err != nil {
		t.Fatalf("migrating to version 1: %v", err)
	}
	errs = make(chan error, 8)
	for range 8 {
		wg.Go(func() { errs <- migrate(ctx, conn2, ms, log) })
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Errorf("concurrent migrate from version 1: %v", err)
		}
	}
}

// Messages archived before migration 0002 have no interaction value of
// their own; the column's default derives it from direction, kind and
// event, and LastInteraction sees them as IsInteraction does.
func TestInteractionOfRowsArchivedBeforeTheColumn(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	cfg, conn := openRaw(t)
	ms, err := loadMigrations(migrationFiles, "migrations")
	if err != nil {
		t.Fatal(err)
	}
	if err := migrate(ctx, conn, ms[:1], testenv.Logger(t)); err != nil {
		t.Fatalf("migrating to version 1: %v", err)
	}
	at := time.Date(2026, 3, 14, 8, 0, 0, 0, time.UTC)
	var msgs []relay.Message
	for i, k := range legacyKinds {
		conv := relay.Conversation("acc", fmt.Sprintf("o_legacy%d", i))
		m := testMessage(conv, 1, at)
		m.Direction, m.Kind, m.Event = k.dir, k.kind, k.event
		msgs = append(msgs, m)
	}
	// As version 1 wrote them: without the column.
	batch, err := conn.PrepareBatch(ctx, `INSERT INTO messages (id, account, client, conv, seq, direction, kind, wx_msg_id, event, event_key, `+
		`text, media_id, attrs, raw, created_at, accepted_at, accepted_ms, employee, day)`)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range msgs {
		if err := batch.Append(m.ID, m.Account, m.Client, string(m.Conv), m.Seq,
			string(m.Direction), string(m.Kind), m.WxMsgID, m.Event, m.EventKey,
			m.Text, m.MediaID, "{}", m.Raw, m.CreatedAt, m.AcceptedAt, uint64(m.AcceptedAt.UnixMilli()), m.Employee, dayOf(m.AcceptedAt),
		); err != nil {
			t.Fatal(err)
		}
	}
	if err := batch.Send(); err != nil {
		t.Fatal(err)
	}

	a, err := Open(ctx, cfg, testenv.Logger(t))
	if err != nil {
		t.Fatalf("Open (migrating to the latest version): %v", err)
	}
	defer a.Close()
	checkLegacyInteractions(t, a, msgs)
	// Merged parts keep the same answer.
	if err := a.conn.Exec(ctx, `OPTIMIZE TABLE messages FINAL`); err != nil {
		t.Fatal(err)
	}
	checkLegacyInteractions(t, a, msgs)
}

// legacyKinds covers the rule IsInteraction applies: inbound messages of
// every sort, the events of the client's own actions and others, and
// outbound messages.
var legacyKinds = []struct {
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

func checkLegacyInteractions(t *testing.T, a *Archive, msgs []relay.Message) {
	t.Helper()
	for _, m := range msgs {
		at, _, err := a.LastInteraction(testCtx(t), m.Conv)
		if err != nil {
			t.Fatalf("LastInteraction(%s): %v", m.Conv, err)
		}
		if got := !at.IsZero(); got != m.IsInteraction() {
			t.Errorf("%s %s %q archived before the column: interaction %v, IsInteraction %v", m.Direction, m.Kind, m.Event, got, m.IsInteraction())
		}
	}
}
