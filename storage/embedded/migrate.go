package embedded

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"embed"
	"encoding/hex"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strconv"
	"strings"
	"time"
)

// migrationFiles holds the schema, one file per version, named
// NNNN_description.sql. A released file is never edited: a change is a
// new file.
//
//go:embed migrations/*.sql
var migrationFiles embed.FS

// migration is one versioned schema step: a script run in one transaction.
type migration struct {
	version  int64
	name     string // file name, for the record and the logs
	checksum string // hex SHA-256 of the file, to notice edited history
	script   string
}

const createMigrationsTable = `CREATE TABLE IF NOT EXISTS schema_migrations (
    version    INTEGER NOT NULL PRIMARY KEY,
    name       TEXT    NOT NULL,
    checksum   TEXT    NOT NULL,
    applied_at TEXT    NOT NULL
) STRICT`

// loadMigrations reads the migrations in dir of fsys, in version order.
func loadMigrations(fsys fs.FS, dir string) ([]migration, error) {
	entries, err := fs.ReadDir(fsys, dir)
	if err != nil {
		return nil, fmt.Errorf("embedded: reading migrations: %w", err)
	}
	var out []migration
	seen := map[int64]string{}
	for _, e := range entries {
		if e.IsDir() || !strings.HasSuffix(e.Name(), ".sql") {
			continue
		}
		prefix, _, ok := strings.Cut(e.Name(), "_")
		if !ok {
			return nil, fmt.Errorf("embedded: migration %q: name must be NNNN_description.sql", e.Name())
		}
		v, err := strconv.ParseInt(prefix, 10, 32)
		if err != nil || v <= 0 {
			return nil, fmt.Errorf("embedded: migration %q: version %q is not a positive number", e.Name(), prefix)
		}
		if other, dup := seen[v]; dup {
			return nil, fmt.Errorf("embedded: migrations %q and %q share version %d", other, e.Name(), v)
		}
		seen[v] = e.Name()
		body, err := fs.ReadFile(fsys, path.Join(dir, e.Name()))
		if err != nil {
			return nil, fmt.Errorf("embedded: reading migration %q: %w", e.Name(), err)
		}
		sum := sha256.Sum256(body)
		out = append(out, migration{version: v, name: e.Name(), checksum: hex.EncodeToString(sum[:]), script: string(body)})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].version < out[j].version })
	return out, nil
}

// migrate applies the embedded migrations the database has not seen.
func (a *Archive) migrate(ctx context.Context) error {
	ms, err := loadMigrations(migrationFiles, "migrations")
	if err != nil {
		return err
	}
	return a.applyMigrations(ctx, ms)
}

// applyMigrations applies, in order, each of ms that schema_migrations does
// not list, each in its own transaction with its record: SQLite's DDL is
// transactional, so a migration is applied whole or not at all. Two
// processes opening the same file at once take turns (the transaction
// begins IMMEDIATE), and the second finds the work done.
func (a *Archive) applyMigrations(ctx context.Context, ms []migration) error {
	if err := a.write(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, createMigrationsTable)
		return err
	}); err != nil {
		return fmt.Errorf("embedded: creating schema_migrations in %s: %w", a.path, err)
	}
	known := map[int64]bool{}
	for _, m := range ms {
		known[m.version] = true
		var applied bool
		err := a.write(ctx, func(tx *sql.Tx) error {
			var sum string
			switch err := tx.QueryRowContext(ctx, `SELECT checksum FROM schema_migrations WHERE version = ?`, m.version).Scan(&sum); err {
			case nil:
				if sum != m.checksum {
					// History was edited after this file applied it. Not
					// re-run (migrations are not idempotent here); said
					// loudly instead of refusing to start.
					a.log.Warn("embedded: applied migration differs from the embedded one",
						"version", m.version, "name", m.name, "applied_checksum", sum, "embedded_checksum", m.checksum)
				}
				return nil
			case sql.ErrNoRows:
			default:
				return err
			}
			if _, err := tx.ExecContext(ctx, m.script); err != nil {
				return err
			}
			if _, err := tx.ExecContext(ctx,
				`INSERT INTO schema_migrations (version, name, checksum, applied_at) VALUES (?, ?, ?, ?)`,
				m.version, m.name, m.checksum, time.Now().UTC().Format(time.RFC3339)); err != nil {
				return err
			}
			applied = true
			return nil
		})
		if err != nil {
			return fmt.Errorf("embedded: applying migration %s to %s: %w", m.name, a.path, err)
		}
		if applied {
			a.log.Info("embedded: migration applied", "version", m.version, "name", m.name)
		}
	}

	rows, err := a.db.QueryContext(ctx, `SELECT version FROM schema_migrations ORDER BY version`)
	if err != nil {
		return fmt.Errorf("embedded: reading schema_migrations of %s: %w", a.path, err)
	}
	defer rows.Close()
	for rows.Next() {
		var v int64
		if err := rows.Scan(&v); err != nil {
			return fmt.Errorf("embedded: reading schema_migrations of %s: %w", a.path, err)
		}
		if !known[v] {
			// A newer binary migrated this file. Migrations are meant to
			// only add (tables, indexes, columns with defaults), so an
			// older binary can still write; warn so it is noticed.
			a.log.Warn("embedded: archive has a migration this binary does not know; was it written by a newer version?", "version", v)
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("embedded: reading schema_migrations of %s: %w", a.path, err)
	}
	return nil
}
