package deployments

import (
	"crypto/sha256"
	"encoding/hex"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
)

// clickhouse/cluster.sql is generated from the binary's migrations, so
// that a new migration cannot be forgotten on clusters:
//
//	go test ./deployments -run TestClusterSQL -update
var (
	update        = flag.Bool("update", false, "rewrite clickhouse/cluster.sql from the migrations")
	migrationsDir = flag.String("migrations", "../storage/archive/migrations", "the binary's migrations (NNNN_*.sql)")
)

const clusterSQLPath = "clickhouse/cluster.sql"

// Database names of the cluster layout: the relay uses archiveDB.
const (
	localDB   = "wechat_relay_local"
	archiveDB = "wechat_relay"
)

// shardKeys says how each table is spread over shards. Always a function
// of the row (never rand()), so that a replayed batch lands where its
// first copy did and merges can collapse it; one conversation's messages
// and events share a shard, and so does one seal chain.
var shardKeys = map[string]string{
	"messages":          "cityHash64(conv)",
	"events":            "cityHash64(conv)",
	"media":             "cityHash64(sha256)",
	"media_links":       "cityHash64(message_id)",
	"seals":             "cityHash64(writer, stream)",
	"audit":             "cityHash64(writer)", // one audit chain per shard
	"lexicon_hits":      "cityHash64(conv)",
	"alert_reviews":     "cityHash64(hit_id)",
	"holds":             "cityHash64(account)",
	"directory":         "cityHash64(kind, id)", // an entry's versions together
	"client_profiles":   "cityHash64(conv)",     // a client's versions together, beside their messages
	"client_tags":       "cityHash64(account)",  // an account's vocabulary together
	"journal":           "cityHash64(key)",
	"schema_migrations": "version",
}

// schemaMigrationsTable is storage/archive/migrate.go's
// createMigrationsTable; TestClusterSchemaOnClickHouse checks that both
// create the same columns.
const schemaMigrationsTable = `CREATE TABLE IF NOT EXISTS schema_migrations (
    version    UInt32,
    name       String,
    checksum   String,
    applied_at DateTime
) ENGINE = ReplacingMergeTree()
ORDER BY version`

type migrationFile struct {
	version uint32
	name    string
	sum     string
	body    string
}

func loadMigrationFiles(tb testing.TB, dir string) []migrationFile {
	tb.Helper()
	paths, err := filepath.Glob(filepath.Join(dir, "*.sql"))
	if err != nil || len(paths) == 0 {
		tb.Fatalf("no migrations in %s (%v)", dir, err)
	}
	var out []migrationFile
	for _, p := range paths {
		name := filepath.Base(p)
		prefix, _, _ := strings.Cut(name, "_")
		v, err := strconv.ParseUint(prefix, 10, 32)
		if err != nil {
			tb.Fatalf("migration %s: version %q: %v", name, prefix, err)
		}
		body, err := os.ReadFile(p)
		if err != nil {
			tb.Fatal(err)
		}
		sum := sha256.Sum256(body)
		out = append(out, migrationFile{uint32(v), name, hex.EncodeToString(sum[:]), string(body)})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].version < out[j].version })
	return out
}

// splitSQL cuts SQL at the semicolons that end statements, dropping
// comments (quotes respected).
func splitSQL(src string) []string {
	var (
		stmts []string
		cur   strings.Builder
	)
	flush := func() {
		if s := strings.TrimSpace(cur.String()); s != "" {
			stmts = append(stmts, s)
		}
		cur.Reset()
	}
	for i := 0; i < len(src); i++ {
		c := src[i]
		switch {
		case c == '-' && i+1 < len(src) && src[i+1] == '-':
			for i < len(src) && src[i] != '\n' {
				i++
			}
			cur.WriteByte('\n')
		case c == '/' && i+1 < len(src) && src[i+1] == '*':
			end := strings.Index(src[i+2:], "*/")
			if end < 0 {
				i = len(src)
			} else {
				i += end + 3
			}
			cur.WriteByte(' ')
		case c == '\'' || c == '"' || c == '`':
			j := i + 1
			for ; j < len(src) && src[j] != c; j++ {
				if src[j] == '\\' {
					j++
				}
			}
			cur.WriteString(src[i:min(j+1, len(src))])
			i = j
		case c == ';':
			flush()
		default:
			cur.WriteByte(c)
		}
	}
	flush()
	return stmts
}

var (
	createTableRE   = regexp.MustCompile(`(?is)^CREATE\s+TABLE\s+IF\s+NOT\s+EXISTS\s+([A-Za-z_][A-Za-z0-9_]*)\s*\((.*)\)\s*ENGINE\s*=\s*([A-Za-z]*MergeTree)\s*\(([^)]*)\)(.*)$`)
	addColumnStmtRE = regexp.MustCompile(`(?is)^ALTER\s+TABLE\s+([A-Za-z_][A-Za-z0-9_]*)\s+ADD\s+COLUMN\s+(.*)$`)
	blankLinesRE    = regexp.MustCompile(`\n\s*\n`)
)

// translate turns one statement of a single-server migration into its
// cluster form: the local replicated table (or change) ON CLUSTER, then
// the Distributed table of the same name (or the same change on it).
func translate(stmt string) (string, error) {
	if m := createTableRE.FindStringSubmatch(stmt); m != nil {
		table, cols, engine, args, rest := m[1], m[2], m[3], strings.TrimSpace(m[4]), strings.TrimSpace(m[5])
		key, ok := shardKeys[table]
		if !ok {
			return "", fmt.Errorf("table %s has no sharding key: add one to shardKeys in deployments/clusterddl_test.go", table)
		}
		rargs := fmt.Sprintf("'/clickhouse/tables/{shard}/%s/%s', '{replica}'", localDB, table)
		if args != "" {
			rargs += ", " + args
		}
		cols = strings.TrimRight(blankLinesRE.ReplaceAllString(cols, "\n"), " \n")
		var b strings.Builder
		fmt.Fprintf(&b, "CREATE TABLE IF NOT EXISTS %s.%s ON CLUSTER '{cluster}' (%s\n) ENGINE = Replicated%s(%s)\n%s;\n\n",
			localDB, table, cols, engine, rargs, rest)
		fmt.Fprintf(&b, "CREATE TABLE IF NOT EXISTS %s.%s ON CLUSTER '{cluster}'\n    AS %s.%s\n    ENGINE = Distributed('{cluster}', %s, %s, %s);\n",
			archiveDB, table, localDB, table, localDB, table, key)
		return b.String(), nil
	}
	if m := addColumnStmtRE.FindStringSubmatch(stmt); m != nil {
		table, def := m[1], strings.TrimSpace(m[2])
		var b strings.Builder
		for _, db := range []string{localDB, archiveDB} {
			fmt.Fprintf(&b, "ALTER TABLE %s.%s ON CLUSTER '{cluster}' ADD COLUMN IF NOT EXISTS %s;\n", db, table, def)
		}
		return b.String(), nil
	}
	return "", fmt.Errorf("cannot translate %.60q...: teach translate in deployments/clusterddl_test.go", stmt)
}

// clusterSQLHeader is the hand-written part of cluster.sql.
const clusterSQLHeader = `-- wechat-relay archive on a ClickHouse cluster: ReplicatedMergeTree local
-- tables in wechat_relay_local, Distributed tables of the same names in
-- wechat_relay. Point the relay at the Distributed ones:
--
--   storage.clickhouse.database: wechat_relay
--
-- GENERATED from storage/archive/migrations by deployments/clusterddl_test.go:
--   go test ./deployments -run TestClusterSQL -update
-- Do not edit by hand; the tests fail when it is out of date.
--
-- Run on ClickHouse 24.x/25.x with Keeper (or ZooKeeper) and, on every
-- node, the macros {cluster} (the cluster's name in remote_servers),
-- {shard} and {replica} (see config.d/wechat-relay-cluster.xml), as an
-- administrator or the wechat_relay_migrate user (grants.sql), against
-- any one node:
--
--   clickhouse-client --multiquery < cluster.sql
--
-- Every statement is idempotent (IF NOT EXISTS), so the whole file is also
-- how a cluster is upgraded: run it again before rolling out a release
-- that brings a new migration.
--
-- HOW THIS RELATES TO THE BINARY'S OWN MIGRATIONS
--
-- The relay creates and migrates its schema itself at start (the files in
-- storage/archive/migrations, embedded in the binary, recorded in
-- schema_migrations). Those statements make plain ReplacingMergeTree
-- tables on whichever node the relay talks to: right for one server, wrong
-- for a cluster (no replication, nothing distributed). So on a cluster the
-- operator applies this file, which is each migration translated (same
-- columns, types, defaults, keys and ReplacingMergeTree versions), and
-- which ends by recording every migration as applied, with the SHA-256 of
-- the embedded file. The relay then finds every version applied and every
-- table present, and at start only runs its idempotent
-- CREATE DATABASE IF NOT EXISTS and CREATE TABLE IF NOT EXISTS
-- schema_migrations, which change nothing. Apply this file BEFORE starting
-- a relay on the cluster: a relay that finds a migration unrecorded applies
-- it itself, locally, on one node.
--
-- WHY THESE ENGINES, KEYS AND SETTINGS
--
-- - Sharding keys are functions of the row, never rand(): a replayed batch
--   must reach the shard of its first copy so that merges collapse it (the
--   relay's reads collapse copies of an id themselves meanwhile). Messages
--   and events of one conversation share a shard. Most deployments need
--   one shard and two or three replicas; the keys matter from the second
--   shard on.
-- - The relay's user must insert synchronously (insert_distributed_sync = 1,
--   distributed_foreground_insert in current releases): an asynchronous
--   Distributed insert is acknowledged before any shard has the rows, which
--   breaks "archived before delivered". Its queries use
--   id NOT IN (SELECT ... FROM events ...) over Distributed tables, which
--   the default distributed_product_mode = 'deny' refuses as soon as the
--   cluster has a second shard: 'global' it is. Both settings are in the
--   wechat_relay settings profile (grants.sql, users.xml).
-- - remote_servers must say <internal_replication>true</internal_replication>
--   for this cluster, or the Distributed tables would write every replica
--   themselves on top of ReplicatedMergeTree's own replication.
-- - Retention is by dropping monthly partitions (day), as on one server;
--   the schema also runs on ClickHouse 18.16, so no TTL.

CREATE DATABASE IF NOT EXISTS wechat_relay_local ON CLUSTER '{cluster}';
CREATE DATABASE IF NOT EXISTS wechat_relay ON CLUSTER '{cluster}';
`

func generateClusterSQL(migrations []migrationFile) (string, error) {
	var b strings.Builder
	b.WriteString(clusterSQLHeader)
	b.WriteString("\n-- The migration record (storage/archive/migrate.go creates it; not a file).\n\n")
	s, err := translate(schemaMigrationsTable)
	if err != nil {
		return "", err
	}
	b.WriteString(s)
	for _, m := range migrations {
		fmt.Fprintf(&b, "\n-- %s %s\n", m.name, strings.Repeat("-", max(3, 72-len(m.name))))
		for _, stmt := range splitSQL(m.body) {
			s, err := translate(stmt)
			if err != nil {
				return "", fmt.Errorf("%s: %w", m.name, err)
			}
			b.WriteString("\n" + s)
		}
	}
	b.WriteString("\n-- Record the migrations as applied (checksum: SHA-256 of the file). A version\n")
	b.WriteString("-- recorded twice is harmless: ReplacingMergeTree keyed by version.\n\n")
	// One line per INSERT: clickhouse-client ends an INSERT's VALUES data
	// at the end of the line.
	b.WriteString("SET insert_distributed_sync = 1;\n\n")
	for _, m := range migrations {
		fmt.Fprintf(&b, "INSERT INTO wechat_relay.schema_migrations (version, name, checksum, applied_at) VALUES (%d, '%s', '%s', now());\n",
			m.version, m.name, m.sum)
	}
	return b.String(), nil
}

// TestClusterSQL checks that clickhouse/cluster.sql is what the generator
// makes of the binary's migrations, and so records each with the checksum
// of the embedded file.
func TestClusterSQL(t *testing.T) {
	want, err := generateClusterSQL(loadMigrationFiles(t, *migrationsDir))
	if err != nil {
		t.Fatal(err)
	}
	if *update {
		if err := os.WriteFile(clusterSQLPath, []byte(want), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	got, err := os.ReadFile(clusterSQLPath)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != want {
		t.Fatalf("%s is out of date with %s (a new or changed migration?); regenerate it:\n\tgo test ./deployments -run TestClusterSQL -update",
			clusterSQLPath, *migrationsDir)
	}
}

func TestTranslate(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ in, want string }{
		{
			"CREATE TABLE IF NOT EXISTS media (\n    sha256 String,\n    day Date\n) ENGINE = ReplacingMergeTree()\nORDER BY sha256",
			"CREATE TABLE IF NOT EXISTS wechat_relay_local.media ON CLUSTER '{cluster}' (\n    sha256 String,\n    day Date\n) ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/wechat_relay_local/media', '{replica}')\nORDER BY sha256;\n\n" +
				"CREATE TABLE IF NOT EXISTS wechat_relay.media ON CLUSTER '{cluster}'\n    AS wechat_relay_local.media\n    ENGINE = Distributed('{cluster}', wechat_relay_local, media, cityHash64(sha256));\n",
		},
		{
			"CREATE TABLE IF NOT EXISTS events (id String, at_ms UInt64, x UInt8 DEFAULT toUInt8(1)) ENGINE = ReplacingMergeTree(at_ms) PARTITION BY toYYYYMM(day) ORDER BY id",
			"CREATE TABLE IF NOT EXISTS wechat_relay_local.events ON CLUSTER '{cluster}' (id String, at_ms UInt64, x UInt8 DEFAULT toUInt8(1)\n) ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/wechat_relay_local/events', '{replica}', at_ms)\nPARTITION BY toYYYYMM(day) ORDER BY id;\n\n" +
				"CREATE TABLE IF NOT EXISTS wechat_relay.events ON CLUSTER '{cluster}'\n    AS wechat_relay_local.events\n    ENGINE = Distributed('{cluster}', wechat_relay_local, events, cityHash64(conv));\n",
		},
		{
			"ALTER TABLE messages ADD COLUMN hash String DEFAULT ''",
			"ALTER TABLE wechat_relay_local.messages ON CLUSTER '{cluster}' ADD COLUMN IF NOT EXISTS hash String DEFAULT '';\n" +
				"ALTER TABLE wechat_relay.messages ON CLUSTER '{cluster}' ADD COLUMN IF NOT EXISTS hash String DEFAULT '';\n",
		},
	} {
		got, err := translate(tc.in)
		if err != nil {
			t.Fatal(err)
		}
		if got != tc.want {
			t.Errorf("translate(%q) =\n%s\nwant\n%s", tc.in, got, tc.want)
		}
	}
	for _, bad := range []string{
		"CREATE TABLE IF NOT EXISTS unknown_table (a String) ENGINE = ReplacingMergeTree() ORDER BY a",
		"ALTER TABLE messages DELETE WHERE 1",
		"DROP TABLE messages",
	} {
		if _, err := translate(bad); err == nil {
			t.Errorf("translate(%q) succeeded, want an error", bad)
		}
	}
}

func TestSplitSQL(t *testing.T) {
	t.Parallel()
	got := splitSQL("-- a; comment\nSELECT 'x;y'; /* c; */ SELECT 2;\n-- trailing\n")
	want := []string{"SELECT 'x;y'", "SELECT 2"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("splitSQL = %q, want %q", got, want)
	}
}
