package archive

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"regexp"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/wechat-relay/wechat-relay/relay"
)

// Defaults for the zero values of Config.
const (
	DefaultDatabase    = "wechat_relay"
	DefaultDialTimeout = 5 * time.Second
	DefaultReadTimeout = 30 * time.Second
)

// Config says where the archive lives. The zero value of each optional
// field is its default.
type Config struct {
	// Addr is the host:port of ClickHouse's native protocol (9000 by
	// default on the server side). Required.
	Addr string
	// Database holds the archive's tables; created if missing. Zero:
	// "wechat_relay". Letters, digits and underscores only.
	Database string
	// Username and Password authenticate; empty means the server's
	// "default" user without a password.
	Username, Password string
	// DialTimeout bounds connecting, so that a ClickHouse that is down
	// or unreachable surfaces as a prompt error instead of a hang. Zero: 5s.
	DialTimeout time.Duration
	// ReadTimeout bounds each wait for the server during a query. Zero: 30s.
	ReadTimeout time.Duration
	// ReadOnly opens an existing database without creating it or
	// migrating it, for readers such as `wechat-relay verify` that need
	// SELECT only. Open then fails if the schema is older than this
	// binary's.
	ReadOnly bool
	// NoMigrate opens an existing database as ReadOnly does — no CREATE,
	// no ALTER; Open fails if the schema is older than this binary's —
	// but for writing: the relay then needs INSERT and SELECT only, and
	// the schema is applied by an operator beforehand (a run with a user
	// that may create tables, or the statements of migrations/). The
	// relay's `storage.clickhouse.migrate: false`.
	NoMigrate bool
}

var identRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

func (c Config) withDefaults() Config {
	if c.Database == "" {
		c.Database = DefaultDatabase
	}
	if c.DialTimeout <= 0 {
		c.DialTimeout = DefaultDialTimeout
	}
	if c.ReadTimeout <= 0 {
		c.ReadTimeout = DefaultReadTimeout
	}
	return c
}

// Validate reports the first problem with c (after defaults are applied).
func (c Config) Validate() error {
	c = c.withDefaults()
	if c.Addr == "" {
		return errors.New("archive: Addr is required (host:port of ClickHouse's native protocol)")
	}
	if !identRE.MatchString(c.Database) {
		return fmt.Errorf("archive: database name %q: use letters, digits and underscores only", c.Database)
	}
	return nil
}

func (c Config) options(database string, log *slog.Logger) *clickhouse.Options {
	// Every wait is bounded: connecting by DialTimeout or the context,
	// the handshake by DialTimeout (the driver does not consult the
	// context there), each read of a query by ReadTimeout or the context.
	return &clickhouse.Options{
		Addr: []string{c.Addr},
		Auth: clickhouse.Auth{
			Database: database,
			Username: c.Username,
			Password: c.Password,
		},
		ClientInfo: clickhouse.ClientInfo{
			Products: []struct{ Name, Version string }{{Name: "wechat-relay"}},
		},
		// Raw callback bodies and text compress well; LZ4 is what every
		// server version, 18.16 included, speaks.
		Compression: &clickhouse.Compression{Method: clickhouse.CompressionLZ4},
		// The driver's own dialer ignores the caller's context; this one
		// gives up at the context's deadline when that comes first.
		DialContext: func(ctx context.Context, addr string) (net.Conn, error) {
			d := net.Dialer{Timeout: c.DialTimeout}
			return d.DialContext(ctx, "tcp", addr)
		},
		DialTimeout: c.DialTimeout,
		ReadTimeout: c.ReadTimeout,
		Logger:      log,
	}
}

// Archive is the ClickHouse archive. It implements relay.Archive,
// relay.MediaStore, relay.EventLog and relay.Interactions. Safe for concurrent use: every call borrows a
// connection from the driver's pool, which also replaces connections
// broken by a server restart.
type Archive struct {
	conn driver.Conn
	log  *slog.Logger
}

var (
	_ relay.Archive      = (*Archive)(nil)
	_ relay.MediaStore   = (*Archive)(nil)
	_ relay.EventLog     = (*Archive)(nil)
	_ relay.Interactions = (*Archive)(nil)
	_ relay.JournalStore = (*Archive)(nil)
)

// Open connects to ClickHouse, creates the database if it does not exist
// and brings its schema up to date. It fails promptly (within DialTimeout)
// when the server cannot be reached.
func Open(ctx context.Context, cfg Config, log *slog.Logger) (*Archive, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With("database", cfg.Database)
	driverLog := log.With("component", "clickhouse-go")

	if cfg.ReadOnly || cfg.NoMigrate {
		return openReadOnly(ctx, cfg, log, driverLog)
	}
	conn, err := clickhouse.Open(cfg.options(cfg.Database, driverLog))
	if err != nil {
		return nil, fmt.Errorf("archive: connecting to %s: %w", cfg.Addr, err)
	}
	if err := bootstrap(ctx, cfg, log, driverLog, conn); err != nil {
		conn.Close()
		return nil, err
	}
	return &Archive{conn: conn, log: log}, nil
}

// bootstrap creates the database if it is missing and migrates its
// schema, through conn (a connection to that database).
func bootstrap(ctx context.Context, cfg Config, log, driverLog *slog.Logger, conn driver.Conn) error {
	// The database may not exist yet, and a connection cannot name a
	// missing database, so it is created through a connection to the
	// user's default one.
	boot, err := clickhouse.Open(cfg.options("", driverLog))
	if err != nil {
		return fmt.Errorf("archive: connecting to %s: %w", cfg.Addr, err)
	}
	err = boot.Exec(ctx, "CREATE DATABASE IF NOT EXISTS `"+cfg.Database+"`")
	if cerr := boot.Close(); cerr != nil {
		log.Debug("archive: closing bootstrap connection", "err", cerr)
	}
	if err != nil {
		return fmt.Errorf("archive: creating database %s on %s: %w", cfg.Database, cfg.Addr, err)
	}
	if err := conn.Ping(ctx); err != nil {
		return fmt.Errorf("archive: connecting to %s: %w", cfg.Addr, err)
	}
	ms, err := loadMigrations(migrationFiles, "migrations")
	if err != nil {
		return err
	}
	return migrate(ctx, conn, ms, log)
}

// openReadOnly connects to cfg.Database and checks that its schema has
// every migration this binary knows, without changing anything.
func openReadOnly(ctx context.Context, cfg Config, log, driverLog *slog.Logger) (*Archive, error) {
	conn, err := clickhouse.Open(cfg.options(cfg.Database, driverLog))
	if err != nil {
		return nil, fmt.Errorf("archive: connecting to %s: %w", cfg.Addr, err)
	}
	if err := conn.Ping(ctx); err != nil {
		conn.Close()
		return nil, fmt.Errorf("archive: connecting to %s, database %s: %w", cfg.Addr, cfg.Database, err)
	}
	if err := checkSchema(ctx, cfg, conn); err != nil {
		conn.Close()
		return nil, err
	}
	return &Archive{conn: conn, log: log}, nil
}

// checkSchema fails unless the database has every migration this binary
// knows. It changes nothing.
func checkSchema(ctx context.Context, cfg Config, conn driver.Conn) error {
	ms, err := loadMigrations(migrationFiles, "migrations")
	if err != nil {
		return err
	}
	var have uint32
	if err := conn.QueryRow(ctx, `SELECT max(version) FROM schema_migrations`).Scan(&have); err != nil {
		return fmt.Errorf("archive: reading the schema version of %s: %w", cfg.Database, err)
	}
	if want := ms[len(ms)-1].version; have < want {
		return fmt.Errorf("archive: database %s is at schema version %d, this binary reads version %d: start the relay (or apply the migrations) first", cfg.Database, have, want)
	}
	return nil
}

// Close releases the connections. Calls in flight fail.
func (a *Archive) Close() error {
	if err := a.conn.Close(); err != nil {
		return fmt.Errorf("archive: closing: %w", err)
	}
	return nil
}

// Ping checks that ClickHouse answers, for readiness probes.
func (a *Archive) Ping(ctx context.Context) error {
	if err := a.conn.Ping(ctx); err != nil {
		return fmt.Errorf("archive: ping: %w", err)
	}
	return nil
}
