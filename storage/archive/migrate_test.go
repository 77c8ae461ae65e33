package archive

import (
	"reflect"
	"strings"
	"testing"
	"testing/fstest"
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
			// Re-running a migration must be harmless.
			if strings.HasPrefix(s, "CREATE") && !strings.Contains(s, "IF NOT EXISTS") {
				t.Errorf("%s: statement is not idempotent: %.60s", m.name, s)
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
	a1, err := Open(ctx, cfg, testLogger(t))
	if err != nil {
		t.Fatalf("first Open: %v", err)
	}
	defer a1.Close()
	a2, err := Open(ctx, cfg, testLogger(t))
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
	want := []string{"events", "media", "media_links", "messages", "schema_migrations"}
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
