package deployments

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/xml"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"

	"github.com/wechat-relay/wechat-relay/relay"
	"github.com/wechat-relay/wechat-relay/storage/archive"
	"github.com/wechat-relay/wechat-relay/storage/archivetest"
	"github.com/wechat-relay/wechat-relay/storage/testenv"
)

// The ClickHouse files are checked against a real server where one can
// be had: the Debian package, 18.16, which is what the tests here run.
// It has no Keeper, no ON CLUSTER, no SQL access control and no
// <grants> in users.xml, so cluster.sql is applied in its single-server
// form (singleNode) to a private server whose remote_servers has a
// one-shard cluster: the Distributed tables are real, only replication
// is not. What only a 24.x/25.x cluster can show (ON CLUSTER, Keeper
// paths, the GRANTs) is not verified here.

const testCluster = "wr_test"

// singleNode turns cluster.sql into what one 18.16 server without Keeper
// runs: no ON CLUSTER, plain instead of Replicated engines, the test
// cluster for {cluster}, no ADD COLUMN IF NOT EXISTS (newer syntax), and
// the databases renamed.
func singleNode(sql, local, dist string) string {
	sql = strings.ReplaceAll(sql, " ON CLUSTER '{cluster}'", "")
	sql = regexp.MustCompile(`Replicated([A-Za-z]*MergeTree)\('[^']*', '\{replica\}'(, )?`).ReplaceAllString(sql, "$1(")
	sql = strings.ReplaceAll(sql, "Distributed('{cluster}'", "Distributed('"+testCluster+"'")
	sql = strings.ReplaceAll(sql, "ADD COLUMN IF NOT EXISTS", "ADD COLUMN")
	sql = regexp.MustCompile(`\bwechat_relay_local\b`).ReplaceAllString(sql, local)
	sql = regexp.MustCompile(`\bwechat_relay\b`).ReplaceAllString(sql, dist)
	return sql
}

// privateClickHouse is a clickhouse-server of this test alone, with a
// one-shard cluster and the deployment's users.xml in users.d.
type privateClickHouse struct {
	addr string
	cmd  *exec.Cmd
	done chan struct{}
}

const (
	relayUser     = "wechat_relay"
	relayPassword = "test-password-of-wechat-relay"
)

var (
	sharedCHOnce sync.Once
	sharedCH     *privateClickHouse
	sharedCHErr  string
)

// clusterClickHouse starts the private server once for the package's
// tests; it is stopped by TestMain.
func clusterClickHouse(t *testing.T) *privateClickHouse {
	t.Helper()
	if testing.Short() {
		t.Skip("starts a ClickHouse server")
	}
	for _, bin := range []string{"clickhouse-server", "clickhouse-client"} {
		if _, err := exec.LookPath(bin); err != nil {
			missing(t, bin)
		}
	}
	users, err := os.ReadFile("/etc/clickhouse-server/users.xml")
	if err != nil {
		missing(t, "/etc/clickhouse-server/users.xml")
	}
	sharedCHOnce.Do(func() { sharedCH, sharedCHErr = startClusterClickHouse(users) })
	if sharedCH == nil {
		t.Fatal(sharedCHErr)
	}
	return sharedCH
}

func missing(t *testing.T, what string) {
	t.Helper()
	if testenv.InCI() {
		t.Fatalf("%s is required under CI", what)
	}
	t.Skipf("%s not installed; `make test` installs it", what)
}

func startClusterClickHouse(users []byte) (*privateClickHouse, string) {
	dir, err := os.MkdirTemp("", "wr-deploy-ch-")
	if err != nil {
		return nil, err.Error()
	}
	cleanupDirs = append(cleanupDirs, dir)
	for _, d := range []string{"data", "tmp", "user_files", "format_schemas", "log", "users.d"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			return nil, err.Error()
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "users.xml"), users, 0o644); err != nil {
		return nil, err.Error()
	}
	// The deployment's users.xml, as a drop-in. 18.16 wants <yandex> as
	// the root and ignores <grants>; the profile's settings must all be
	// known to it.
	dep, err := os.ReadFile("clickhouse/users.xml")
	if err != nil {
		return nil, err.Error()
	}
	sum := sha256.Sum256([]byte(relayPassword))
	s := strings.NewReplacer("<clickhouse>", "<yandex>", "</clickhouse>", "</yandex>",
		"__WECHAT_RELAY_PASSWORD_SHA256__", hex.EncodeToString(sum[:]),
		"__WECHAT_RELAY_MIGRATE_PASSWORD_SHA256__", hex.EncodeToString(sum[:])).Replace(string(dep))
	if err := os.WriteFile(filepath.Join(dir, "users.d", "wechat-relay.xml"), []byte(s), 0o644); err != nil {
		return nil, err.Error()
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err.Error()
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	l, err = net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err.Error()
	}
	httpPort := l.Addr().(*net.TCPAddr).Port
	l.Close()
	// A one-shard cluster of this server alone.
	config := testenv.ClickHouseConfig(dir, port, httpPort, fmt.Sprintf(`    <remote_servers>
        <%[1]s>
            <shard>
                <internal_replication>true</internal_replication>
                <replica><host>127.0.0.1</host><port>%[2]d</port></replica>
            </shard>
        </%[1]s>
    </remote_servers>
    <macros>
        <cluster>%[1]s</cluster>
        <shard>01</shard>
        <replica>r1</replica>
    </macros>
`, testCluster, port))
	if err := os.WriteFile(filepath.Join(dir, "config.xml"), []byte(config), 0o644); err != nil {
		return nil, err.Error()
	}
	out, err := os.Create(filepath.Join(dir, "server.out"))
	if err != nil {
		return nil, err.Error()
	}
	cmd := exec.Command("clickhouse-server", "--config-file="+filepath.Join(dir, "config.xml"))
	cmd.Dir = dir
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		out.Close()
		return nil, "starting clickhouse-server: " + err.Error()
	}
	s2 := &privateClickHouse{addr: fmt.Sprintf("127.0.0.1:%d", port), cmd: cmd, done: make(chan struct{})}
	go func() { cmd.Wait(); out.Close(); close(s2.done) }()
	stopServers = append(stopServers, s2.stop)
	deadline := time.Now().Add(60 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", s2.addr, time.Second)
		if err == nil {
			c.Close()
			return s2, ""
		}
		select {
		case <-s2.done:
			log, _ := os.ReadFile(filepath.Join(dir, "log", "error.log"))
			return nil, "clickhouse-server exited at start: " + string(log)
		default:
		}
		if time.Now().After(deadline) {
			s2.stop()
			return nil, "clickhouse-server did not listen within 60s"
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// stop ends the server by its pid: SIGTERM, then SIGKILL after 30s.
func (s *privateClickHouse) stop() {
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(30 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.done
	}
}

// client runs clickhouse-client --multiquery with sql on stdin, as an
// operator applies cluster.sql.
func (s *privateClickHouse) client(t *testing.T, sql string, args ...string) {
	t.Helper()
	host, port, _ := net.SplitHostPort(s.addr)
	cmd := exec.Command("clickhouse-client", append([]string{"--host", host, "--port", port, "--multiquery"}, args...)...)
	cmd.Stdin = strings.NewReader(sql)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("clickhouse-client: %v\n%s", err, out)
	}
}

// applyCluster applies cluster.sql in its single-server form, into the
// databases local (ReplacingMergeTree tables) and dist (Distributed).
func (s *privateClickHouse) applyCluster(t *testing.T, local, dist string) {
	t.Helper()
	sql, err := os.ReadFile(clusterSQLPath)
	if err != nil {
		t.Fatal(err)
	}
	s.client(t, singleNode(string(sql), local, dist))
}

func (s *privateClickHouse) conn(t *testing.T) clickhouse.Conn {
	t.Helper()
	c, err := clickhouse.Open(&clickhouse.Options{Addr: []string{s.addr}, DialTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// recordingHandler keeps every log record, for checks on what Open did.
type recordingHandler struct {
	mu   sync.Mutex
	msgs []string
}

func (h *recordingHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h *recordingHandler) Handle(_ context.Context, r slog.Record) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.msgs = append(h.msgs, r.Level.String()+" "+r.Message)
	return nil
}
func (h *recordingHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *recordingHandler) WithGroup(string) slog.Handler      { return h }

func (h *recordingHandler) all() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.msgs)
}

// TestClusterSchemaOnClickHouse applies cluster.sql (single-server form)
// and checks that the binary's archive takes it as is: every migration
// found applied with the checksum it embeds, nothing applied again, the
// same columns as the binary's own schema, and the archive conformance
// suite passing over the Distributed tables as the users.xml user, whose
// profile settings 18.16 accepts.
func TestClusterSchemaOnClickHouse(t *testing.T) {
	ch := clusterClickHouse(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	// Once: applying it again (as an upgrade does) relies on ADD COLUMN IF
	// NOT EXISTS, which 18.16 lacks, so that cannot be checked here.
	ch.applyCluster(t, "wechat_relay_local", "wechat_relay")

	t.Run("profile", func(t *testing.T) {
		c, err := clickhouse.Open(&clickhouse.Options{Addr: []string{ch.addr}, DialTimeout: 5 * time.Second,
			Auth: clickhouse.Auth{Username: relayUser, Password: relayPassword}})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		want := map[string]string{"insert_distributed_sync": "1", "distributed_product_mode": "global", "insert_quorum": "2"}
		for name, v := range want {
			var got string
			if err := c.QueryRow(ctx, "SELECT value FROM system.settings WHERE name = ?", name).Scan(&got); err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			if got != v {
				t.Errorf("users.xml profile: %s = %q, want %q", name, got, v)
			}
		}
	})

	t.Run("binary accepts it", func(t *testing.T) {
		rec := &recordingHandler{}
		a, err := archive.Open(ctx, archive.Config{Addr: ch.addr, Database: "wechat_relay", Username: relayUser, Password: relayPassword}, slog.New(rec))
		if err != nil {
			t.Fatalf("archive.Open over the Distributed tables: %v", err)
		}
		a.Close()
		for _, m := range rec.all() {
			if strings.Contains(m, "migration applied") || strings.Contains(m, "differs") || strings.Contains(m, "does not know") {
				t.Errorf("archive.Open on the cluster schema logged %q: cluster.sql does not record the migrations as the binary embeds them", m)
			}
		}
	})

	t.Run("same columns as the binary's schema", func(t *testing.T) {
		// The binary's own schema, in a database of its own.
		a, err := archive.Open(ctx, archive.Config{Addr: ch.addr, Database: "binary_schema"}, nil)
		if err != nil {
			t.Fatal(err)
		}
		a.Close()
		c := ch.conn(t)
		columns := func(db string) map[string]string {
			rows, err := c.Query(ctx, `SELECT table, name, type, default_kind, default_expression FROM system.columns
				WHERE database = ? ORDER BY table, name`, db)
			if err != nil {
				t.Fatal(err)
			}
			defer rows.Close()
			out := map[string]string{}
			for rows.Next() {
				var table, name, typ, kind, expr string
				if err := rows.Scan(&table, &name, &typ, &kind, &expr); err != nil {
					t.Fatal(err)
				}
				out[table] += fmt.Sprintf("%s %s %s %s\n", name, typ, kind, expr)
			}
			return out
		}
		want := columns("binary_schema")
		for _, db := range []string{"wechat_relay_local", "wechat_relay"} {
			got := columns(db)
			for table, cols := range want {
				if got[table] != cols {
					t.Errorf("%s.%s columns:\n%s\nthe binary creates:\n%s", db, table, got[table], cols)
				}
			}
			for table := range got {
				if _, ok := want[table]; !ok {
					t.Errorf("%s.%s: a table the binary does not create", db, table)
				}
			}
		}
		engines := map[string]string{}
		rows, err := c.Query(ctx, `SELECT name, engine FROM system.tables WHERE database = 'wechat_relay'`)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		for rows.Next() {
			var name, engine string
			if err := rows.Scan(&name, &engine); err != nil {
				t.Fatal(err)
			}
			engines[name] = engine
		}
		for table := range want {
			if engines[table] != "Distributed" {
				t.Errorf("wechat_relay.%s: engine %q, want Distributed", table, engines[table])
			}
		}
	})

	t.Run("conformance over Distributed tables", func(t *testing.T) {
		archivetest.Run(t, func(t *testing.T) archivetest.Store {
			return openDistributed(t, ch)
		})
	})

	t.Run("journal over Distributed tables", func(t *testing.T) {
		archivetest.RunJournal(t, func(t *testing.T) archivetest.JournalStore {
			return openDistributed(t, ch)
		})
	})

	// The directory is read back right after each change: the relay's
	// user inserts synchronously, so the Distributed table has it.
	t.Run("directory over Distributed tables", func(t *testing.T) {
		archivetest.RunDirectory(t, func(t *testing.T) relay.DirectoryStore {
			return openDistributed(t, ch)
		})
	})
}

// TestApplyMigrationsScript runs clickhouse/apply-migrations.sh (what the
// compose stack runs at ClickHouse's first start) on the shared test
// server, twice, and checks that the binary then finds its schema
// complete: nothing applied, nothing differing.
func TestApplyMigrationsScript(t *testing.T) {
	if testing.Short() {
		t.Skip("needs ClickHouse")
	}
	addr := testenv.ClickHouseAddr(t)
	if _, err := exec.LookPath("clickhouse-client"); err != nil {
		missing(t, "clickhouse-client")
	}
	db := testenv.UniqueName("deploy")
	host, port, _ := net.SplitHostPort(addr)
	t.Cleanup(func() {
		exec.Command("clickhouse-client", "--host", host, "--port", port, "-q", "DROP DATABASE IF EXISTS "+db).Run()
	})
	for range 2 {
		cmd := exec.Command("bash", "clickhouse/apply-migrations.sh")
		cmd.Env = append(os.Environ(), "CH_HOST="+host, "CH_PORT="+port, "WR_DATABASE="+db, "MIGRATIONS_DIR="+*migrationsDir)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("apply-migrations.sh: %v\n%s", err, out)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	rec := &recordingHandler{}
	a, err := archive.Open(ctx, archive.Config{Addr: addr, Database: db}, slog.New(rec))
	if err != nil {
		t.Fatal(err)
	}
	a.Close()
	for _, m := range rec.all() {
		if strings.Contains(m, "migration applied") || strings.Contains(m, "differs") {
			t.Errorf("archive.Open after apply-migrations.sh logged %q", m)
		}
	}
}

// usersXML is the part of clickhouse/users.xml the checks below read.
type usersXML struct {
	Profiles struct {
		Relay struct {
			Settings []struct {
				XMLName xml.Name
				Value   string `xml:",chardata"`
			} `xml:",any"`
		} `xml:"wechat_relay"`
	} `xml:"profiles"`
	Users struct {
		Relay struct {
			Profile string   `xml:"profile"`
			Grants  []string `xml:"grants>query"`
		} `xml:"wechat_relay"`
		Migrate struct {
			Grants []string `xml:"grants>query"`
		} `xml:"wechat_relay_migrate"`
	} `xml:"users"`
}

// forbidden are the privileges the relay's own user must never have: the
// archive is append-only.
var forbidden = regexp.MustCompile(`(?i)\b(ALTER|DROP|TRUNCATE|OPTIMIZE|DELETE|UPDATE|ALL|RENAME|KILL|SYSTEM)\b`)

// TestGrants checks grants.sql and users.xml: the relay's user reads and
// appends (plus the CREATE its startup needs), never alters, drops,
// truncates or optimizes; the migrator may create and add columns only.
func TestGrants(t *testing.T) {
	t.Parallel()
	sqlText, err := os.ReadFile("clickhouse/grants.sql")
	if err != nil {
		t.Fatal(err)
	}
	stmts := splitSQL(string(sqlText))
	grantRE := regexp.MustCompile(`(?is)^GRANT\s+ON\s+CLUSTER\s+'\{cluster\}'\s+(.+?)\s+ON\s+(\S+)\s+TO\s+(\S+)$`)
	privs := map[string][]string{} // role -> privileges
	for _, s := range stmts {
		if m := grantRE.FindStringSubmatch(s); m != nil {
			privs[m[3]] = append(privs[m[3]], m[1]+" ON "+m[2])
		} else if strings.HasPrefix(strings.ToUpper(s), "GRANT") && !strings.Contains(s, " TO wechat_relay") {
			t.Errorf("grants.sql: unrecognised GRANT %q", s)
		}
	}
	for _, role := range []string{"wechat_relay_writer", "wechat_relay_startup"} {
		if len(privs[role]) == 0 {
			t.Errorf("grants.sql grants nothing to %s", role)
		}
		for _, p := range privs[role] {
			if forbidden.MatchString(p) {
				t.Errorf("grants.sql: %s gets %q, which can change or remove archived rows", role, p)
			}
		}
	}
	if !slices.ContainsFunc(privs["wechat_relay_writer"], func(p string) bool { return p == "SELECT, INSERT ON wechat_relay.*" }) {
		t.Errorf("grants.sql: wechat_relay_writer lacks SELECT, INSERT ON wechat_relay.*: %q", privs["wechat_relay_writer"])
	}
	for _, p := range privs["wechat_relay_migrator"] {
		if regexp.MustCompile(`(?i)\b(DROP|TRUNCATE|OPTIMIZE|DELETE|UPDATE|ALL)\b`).MatchString(p) {
			t.Errorf("grants.sql: the migrator gets %q; migrations only add", p)
		}
	}
	if !strings.Contains(string(sqlText), "GRANT ON CLUSTER '{cluster}' wechat_relay_writer TO wechat_relay;") {
		t.Error("grants.sql: the user wechat_relay does not get exactly the writer role (it runs with storage.clickhouse.migrate: false)")
	}
	for _, s := range stmts {
		if strings.Contains(s, "IDENTIFIED") && !strings.Contains(s, "sha256_hash BY '__") {
			t.Errorf("grants.sql: a user with a password that is not a placeholder hash: %q", s)
		}
	}

	data, err := os.ReadFile("clickhouse/users.xml")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(xmlComments(string(data)), "--") {
		t.Error("users.xml: a double hyphen inside an XML comment makes ClickHouse refuse the whole file")
	}
	var u usersXML
	if err := xml.Unmarshal(data, &u); err != nil {
		t.Fatalf("users.xml: %v", err)
	}
	if u.Users.Relay.Profile != "wechat_relay" || len(u.Profiles.Relay.Settings) == 0 {
		t.Error("users.xml: user wechat_relay without the wechat_relay profile")
	}
	if len(u.Users.Relay.Grants) == 0 {
		t.Error("users.xml: user wechat_relay has no <grants> (it would get everything)")
	}
	for _, g := range u.Users.Relay.Grants {
		if forbidden.MatchString(g) {
			t.Errorf("users.xml: wechat_relay gets %q", g)
		}
	}
	for _, g := range u.Users.Migrate.Grants {
		if regexp.MustCompile(`(?i)\b(DROP|TRUNCATE|OPTIMIZE|DELETE|UPDATE)\b|GRANT ALL`).MatchString(g) {
			t.Errorf("users.xml: wechat_relay_migrate gets %q", g)
		}
	}
	// The profile in users.xml and the one in grants.sql carry the same settings.
	for _, s := range u.Profiles.Relay.Settings {
		want := s.XMLName.Local + " = " + s.Value
		if _, err := fmt.Sscan(s.Value, new(int)); err != nil {
			want = s.XMLName.Local + " = '" + s.Value + "'"
		}
		if !strings.Contains(string(sqlText), want) {
			t.Errorf("users.xml sets %s, grants.sql's profile does not (%q)", s.XMLName.Local, want)
		}
	}
}

func xmlComments(s string) string {
	var b strings.Builder
	for {
		i := strings.Index(s, "<!--")
		if i < 0 {
			return b.String()
		}
		s = s[i+4:]
		j := strings.Index(s, "-->")
		if j < 0 {
			return b.String() + s
		}
		b.WriteString(s[:j] + "\n")
		s = s[j+3:]
	}
}

// openDistributed applies the cluster schema to a database of its own on
// ch, dropped when the test ends, and opens it as the relay's restricted
// user.
func openDistributed(t *testing.T, ch *privateClickHouse) *archive.Archive {
	t.Helper()
	dist := testenv.UniqueName("d")
	ch.applyCluster(t, dist+"_local", dist)
	t.Cleanup(func() {
		ch.client(t, fmt.Sprintf("DROP DATABASE IF EXISTS %s; DROP DATABASE IF EXISTS %s_local", dist, dist))
	})
	octx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	a, err := archive.Open(octx, archive.Config{Addr: ch.addr, Database: dist, Username: relayUser, Password: relayPassword},
		testenv.LoggerAt(t, slog.LevelError))
	if err != nil {
		t.Fatalf("archive.Open: %v", err)
	}
	t.Cleanup(func() { a.Close() })
	return a
}
