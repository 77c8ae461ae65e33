package archive

import (
	"context"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"fmt"
	"io/fs"
	"log/slog"
	"path"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

// migrationFiles holds the schema, one file per version, named
// NNNN_description.sql. Files are never edited once released: a change is
// a new file.
//
//go:embed migrations/*.sql
var migrationFiles embed.FS

// migration is one versioned schema step.
type migration struct {
	version    uint32
	name       string // file name, for the record and the logs
	checksum   string // hex SHA-256 of the file, to notice edited history
	statements []string
}

// createMigrationsTable records applied versions. ReplacingMergeTree keyed
// by version, because two instances starting together may both apply and
// record the same version; the reader groups by version anyway.
const createMigrationsTable = `CREATE TABLE IF NOT EXISTS schema_migrations (
    version    UInt32,
    name       String,
    checksum   String,
    applied_at DateTime
) ENGINE = ReplacingMergeTree()
ORDER BY version`

// loadMigrations reads and splits the embedded migrations, in version order.
func loadMigrations(fsys fs.FS, dir string) ([]migration, error) {
	entries, err := fs.ReadDir(fsys, dir)
	if err != nil {
		return nil, fmt.Errorf("archive: reading migrations: %w", err)
	}
	var out []migration
	seen := map[uint32]string{}
	for _, e := range entries {
		if e.IsDir() || !strings.HasSuffix(e.Name(), ".sql") {
			continue
		}
		prefix, _, ok := strings.Cut(e.Name(), "_")
		if !ok {
			return nil, fmt.Errorf("archive: migration %q: name must be NNNN_description.sql", e.Name())
		}
		v, err := strconv.ParseUint(prefix, 10, 32)
		if err != nil || v == 0 {
			return nil, fmt.Errorf("archive: migration %q: version %q is not a positive number", e.Name(), prefix)
		}
		if other, dup := seen[uint32(v)]; dup {
			return nil, fmt.Errorf("archive: migrations %q and %q share version %d", other, e.Name(), v)
		}
		seen[uint32(v)] = e.Name()
		body, err := fs.ReadFile(fsys, path.Join(dir, e.Name()))
		if err != nil {
			return nil, fmt.Errorf("archive: reading migration %q: %w", e.Name(), err)
		}
		stmts, err := splitStatements(string(body))
		if err != nil {
			return nil, fmt.Errorf("archive: migration %q: %w", e.Name(), err)
		}
		if len(stmts) == 0 {
			return nil, fmt.Errorf("archive: migration %q has no statements", e.Name())
		}
		sum := sha256.Sum256(body)
		out = append(out, migration{
			version:    uint32(v),
			name:       e.Name(),
			checksum:   hex.EncodeToString(sum[:]),
			statements: stmts,
		})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].version < out[j].version })
	return out, nil
}

// splitStatements cuts a SQL file at the semicolons that end statements.
// The native protocol takes one statement per query, so the file must be
// split; a semicolon inside a quoted string or identifier, or inside a
// comment, does not end anything. Comment-only pieces are dropped.
func splitStatements(src string) ([]string, error) {
	var (
		stmts []string
		cur   strings.Builder
		code  bool // cur holds something besides comments and blanks
	)
	flush := func() {
		if code {
			stmts = append(stmts, strings.TrimSpace(cur.String()))
		}
		cur.Reset()
		code = false
	}
	for i := 0; i < len(src); i++ {
		c := src[i]
		switch {
		case c == '-' && i+1 < len(src) && src[i+1] == '-':
			end := strings.IndexByte(src[i:], '\n')
			if end < 0 {
				end = len(src) - i
			}
			i += end - 1 // the newline itself is copied by the next round
			continue
		case c == '/' && i+1 < len(src) && src[i+1] == '*':
			end := strings.Index(src[i+2:], "*/")
			if end < 0 {
				return nil, fmt.Errorf("unterminated /* comment")
			}
			i += 2 + end + 1
			cur.WriteByte(' ')
			continue
		case c == '\'' || c == '"' || c == '`':
			j := i + 1
			for ; j < len(src); j++ {
				if src[j] == '\\' {
					j++
					continue
				}
				if src[j] == c {
					break
				}
			}
			if j >= len(src) {
				return nil, fmt.Errorf("unterminated %c quote", c)
			}
			cur.WriteString(src[i : j+1])
			code = true
			i = j
			continue
		case c == ';':
			flush()
			continue
		}
		cur.WriteByte(c)
		if c != ' ' && c != '\t' && c != '\n' && c != '\r' {
			code = true
		}
	}
	flush()
	return stmts, nil
}

// migrate applies, in order, the migrations that schema_migrations does not
// list yet. Statements are idempotent (CREATE ... IF NOT EXISTS, and ADD
// COLUMN through execIdempotent's guard), so a migration cut short, or
// applied by two instances at once, is safely applied again; a version is
// recorded only once all its statements succeeded.
func migrate(ctx context.Context, conn driver.Conn, migrations []migration, log *slog.Logger) error {
	if err := conn.Exec(ctx, createMigrationsTable); err != nil {
		return fmt.Errorf("archive: creating schema_migrations: %w", err)
	}
	applied := map[uint32]string{}
	rows, err := conn.Query(ctx, `SELECT version, any(checksum) FROM schema_migrations GROUP BY version`)
	if err != nil {
		return fmt.Errorf("archive: reading schema_migrations: %w", err)
	}
	for rows.Next() {
		var (
			v   uint32
			sum string
		)
		if err := rows.Scan(&v, &sum); err != nil {
			rows.Close()
			return fmt.Errorf("archive: reading schema_migrations: %w", err)
		}
		applied[v] = sum
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("archive: reading schema_migrations: %w", err)
	}

	known := map[uint32]bool{}
	for _, m := range migrations {
		known[m.version] = true
		if sum, ok := applied[m.version]; ok {
			if sum != m.checksum {
				// History was edited after it was applied somewhere. The
				// statements are not re-run (they are additive and
				// idempotent); say so loudly instead of refusing to start.
				log.Warn("archive: applied migration differs from the embedded one",
					"version", m.version, "name", m.name, "applied_checksum", sum, "embedded_checksum", m.checksum)
			}
			continue
		}
		start := time.Now()
		for i, stmt := range m.statements {
			if err := execIdempotent(ctx, conn, stmt); err != nil {
				return fmt.Errorf("archive: applying migration %s, statement %d: %w", m.name, i+1, err)
			}
		}
		if err := recordMigration(ctx, conn, m); err != nil {
			return err
		}
		log.Info("archive: migration applied", "version", m.version, "name", m.name,
			"statements", len(m.statements), "took", time.Since(start))
	}
	for v := range applied {
		if !known[v] {
			// A newer binary migrated this database. Migrations only add,
			// so an older binary can still write; warn so it is noticed.
			log.Warn("archive: database has a migration this binary does not know; is an older version running?", "version", v)
		}
	}
	return nil
}

// addColumnRE recognises `ALTER TABLE t ADD COLUMN c ...` (names
// unquoted), the one kind of statement that cannot say IF NOT EXISTS on
// 18.16 (a syntax error there).
var addColumnRE = regexp.MustCompile(`(?is)^ALTER\s+TABLE\s+([A-Za-z_][A-Za-z0-9_]*)\s+ADD\s+COLUMN\s+([A-Za-z_][A-Za-z0-9_]*)\s`)

// execIdempotent runs one migration statement so that running it again is
// harmless. CREATE statements say IF NOT EXISTS themselves. ADD COLUMN
// cannot on 18.16, and fails when the column exists, which would leave a
// migration cut short after its ALTER (or raced by another instance)
// failing for ever; so it is skipped when the column is already there,
// and its error forgiven when the column is there afterwards (another
// instance added it meanwhile). Hence one column per ALTER statement:
// the guard looks at the first.
func execIdempotent(ctx context.Context, conn driver.Conn, stmt string) error {
	sub := addColumnRE.FindStringSubmatch(stmt)
	if sub == nil {
		return conn.Exec(ctx, stmt)
	}
	table, column := sub[1], sub[2]
	if have, err := hasColumn(ctx, conn, table, column); err != nil {
		return err
	} else if have {
		return nil
	}
	err := conn.Exec(ctx, stmt)
	if err == nil {
		return nil
	}
	if have, cerr := hasColumn(ctx, conn, table, column); cerr == nil && have {
		return nil
	}
	return err
}

// hasColumn reports whether table of the connection's database has column.
func hasColumn(ctx context.Context, conn driver.Conn, table, column string) (bool, error) {
	var n uint64
	if err := conn.QueryRow(ctx,
		`SELECT count() FROM system.columns WHERE database = currentDatabase() AND table = ? AND name = ?`,
		table, column).Scan(&n); err != nil {
		return false, fmt.Errorf("looking for column %s.%s: %w", table, column, err)
	}
	return n > 0, nil
}

func recordMigration(ctx context.Context, conn driver.Conn, m migration) (err error) {
	batch, err := conn.PrepareBatch(ctx, `INSERT INTO schema_migrations (version, name, checksum, applied_at)`)
	if err != nil {
		return fmt.Errorf("archive: recording migration %s: %w", m.name, err)
	}
	defer abortUnsent(batch)
	if err := batch.Append(m.version, m.name, m.checksum, time.Now().UTC().Truncate(time.Second)); err != nil {
		return fmt.Errorf("archive: recording migration %s: %w", m.name, err)
	}
	if err := batch.Send(); err != nil {
		return fmt.Errorf("archive: recording migration %s: %w", m.name, err)
	}
	return nil
}

// abortUnsent gives back the connection of a batch that was not sent, so a
// failed Append or an early return never leaves an INSERT half-open on a
// pooled connection. Abort closes that connection rather than finishing the
// INSERT, so nothing buffered is committed by accident.
func abortUnsent(batch driver.Batch) {
	if !batch.IsSent() {
		_ = batch.Abort()
	}
}
