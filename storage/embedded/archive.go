package embedded

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	_ "modernc.org/sqlite" // registers the "sqlite" database/sql driver

	"github.com/wechat-relay/wechat-relay/relay"
)

// MemoryPath opens an archive that lives in memory and is gone on Close.
const MemoryPath = ":memory:"

// busyTimeout is how long a statement waits for a lock held by another
// connection (another process on the same file) before failing.
const busyTimeout = 10 * time.Second

// maxReaders bounds the connections of a file archive. In WAL mode readers
// do not block the writer nor each other; writers take turns (see
// Archive.write).
const maxReaders = 8

// Archive is the embedded archive: one SQLite file. It implements
// relay.Archive, relay.MediaStore, relay.EventLog and relay.Interactions. Safe for concurrent use; writes are
// serialised inside the process, reads run alongside them.
type Archive struct {
	db   *sql.DB
	path string
	log  *slog.Logger
	// writeTurn holds one token: a write takes it before beginning its
	// transaction. SQLite allows one writer at a time anyway; queuing in
	// Go, with the caller's context, beats spinning on SQLITE_BUSY.
	writeTurn chan struct{}
}

var (
	_ relay.Archive      = (*Archive)(nil)
	_ relay.MediaStore   = (*Archive)(nil)
	_ relay.EventLog     = (*Archive)(nil)
	_ relay.Interactions = (*Archive)(nil)
	_ relay.JournalStore = (*Archive)(nil)
)

// Open opens the archive in the SQLite file at path, creating the file (and
// its directory) if missing, and brings its schema up to date. path may be
// MemoryPath for an archive that lasts as long as the *Archive.
//
// The file is put in WAL journal mode with synchronous=FULL, so a
// committed Insert survives a crash of the process or of the machine.
// A nil log discards the archive's logs.
func Open(ctx context.Context, path string, log *slog.Logger) (*Archive, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if path == "" {
		return nil, errors.New("embedded: archive path is empty (use a file name, or :memory:)")
	}
	memory := path == MemoryPath
	log = log.With("path", path)
	if !memory {
		if err := createFile(path); err != nil {
			return nil, err
		}
	}
	db, err := sql.Open("sqlite", dsn(path, memory))
	if err != nil {
		return nil, fmt.Errorf("embedded: opening %s: %w", path, err)
	}
	if memory {
		// Every connection to :memory: is a database of its own: keep
		// exactly one, for ever.
		db.SetMaxOpenConns(1)
		db.SetMaxIdleConns(1)
		db.SetConnMaxLifetime(0)
		db.SetConnMaxIdleTime(0)
	} else {
		db.SetMaxOpenConns(maxReaders)
		db.SetMaxIdleConns(maxReaders)
	}
	a := &Archive{db: db, path: path, log: log, writeTurn: make(chan struct{}, 1)}
	a.writeTurn <- struct{}{}

	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("embedded: opening %s: %w", path, err)
	}
	if !memory {
		var mode string
		if err := db.QueryRowContext(ctx, "PRAGMA journal_mode").Scan(&mode); err != nil {
			db.Close()
			return nil, fmt.Errorf("embedded: opening %s: reading the journal mode: %w", path, err)
		}
		if !strings.EqualFold(mode, "wal") {
			// WAL needs shared memory, which some network file systems
			// lack; SQLite then keeps its rollback journal. Still
			// correct, only slower for concurrent readers.
			log.Warn("embedded: archive is not in WAL mode", "journal_mode", mode)
		}
	}
	if err := a.migrate(ctx); err != nil {
		db.Close()
		return nil, err
	}
	return a, nil
}

// createFile makes sure path exists, readable by its owner only: the
// archive holds the firm's conversations with its clients. SQLite gives
// its -wal and -shm files the permissions of the database file.
func createFile(path string) error {
	if dir := filepath.Dir(path); dir != "." {
		if err := os.MkdirAll(dir, 0o750); err != nil {
			return fmt.Errorf("embedded: creating the archive's directory: %w", err)
		}
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("embedded: creating the archive file: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("embedded: creating the archive file: %w", err)
	}
	return nil
}

// dsn is the driver's connection string for path. Every connection gets
// the busy timeout first, then WAL, synchronous=FULL and recursive
// triggers; transactions
// begin IMMEDIATE, taking the write lock up front, so that a transaction
// never fails half-way on a lock another process took after it read.
func dsn(path string, memory bool) string {
	// recursive_triggers makes the append-only triggers fire on the
	// deletes that INSERT OR REPLACE would do, too.
	params := fmt.Sprintf("_busy_timeout=%d&_synchronous=FULL&_txlock=immediate&_pragma=recursive_triggers(1)",
		busyTimeout.Milliseconds())
	if memory {
		return "file::memory:?" + params
	}
	// The path goes into a file: URI, where '%', '?' and '#' are syntax.
	esc := strings.NewReplacer("%", "%25", "?", "%3f", "#", "%23").Replace(path)
	return "file:" + esc + "?" + params + "&_journal_mode=WAL"
}

// Close closes the database. Calls in flight fail or finish first;
// calls after Close fail.
func (a *Archive) Close() error {
	if err := a.db.Close(); err != nil {
		return fmt.Errorf("embedded: closing %s: %w", a.path, err)
	}
	return nil
}

// Ping checks that the database answers, for readiness probes.
func (a *Archive) Ping(ctx context.Context) error {
	var one int
	if err := a.db.QueryRowContext(ctx, "SELECT 1").Scan(&one); err != nil {
		return fmt.Errorf("embedded: ping %s: %w", a.path, err)
	}
	return nil
}

// write runs fn in a transaction, committed if fn returns nil and rolled
// back otherwise. Writes take turns (writeTurn); waiting for the turn
// ends with ctx.
func (a *Archive) write(ctx context.Context, fn func(tx *sql.Tx) error) (err error) {
	select {
	case <-a.writeTurn:
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() { a.writeTurn <- struct{}{} }()

	tx, err := a.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			if rerr := tx.Rollback(); rerr != nil && !errors.Is(rerr, sql.ErrTxDone) {
				a.log.Warn("embedded: rolling back", "err", rerr)
			}
		}
	}()
	if err := fn(tx); err != nil {
		return err
	}
	return tx.Commit()
}
