package archive

import (
	"context"
	"fmt"
	"log/slog"
	"sync"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

// OpenLazy returns an archive without contacting ClickHouse: the database
// and its schema are made ready by the first call that reaches the
// server, and every call before that fails with the connection error.
//
// It exists for the relay's start while ClickHouse is down: WeChat's
// callbacks must still be accepted into the spool, and are archived once
// the server answers. Open, which prepares at once, is what everything
// else uses.
func OpenLazy(cfg Config, log *slog.Logger) (*Archive, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	if cfg.ReadOnly {
		return nil, fmt.Errorf("archive: a read-only archive cannot be opened lazily")
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With("database", cfg.Database)
	driverLog := log.With("component", "clickhouse-go")
	conn, err := clickhouse.Open(cfg.options(cfg.Database, driverLog))
	if err != nil {
		return nil, fmt.Errorf("archive: connecting to %s: %w", cfg.Addr, err)
	}
	lc := &lazyConn{Conn: conn}
	lc.prepare = func(ctx context.Context) error {
		if cfg.NoMigrate {
			if err := checkSchema(ctx, cfg, conn); err != nil {
				return err
			}
			log.Info("archive ready: ClickHouse answered, schema checked (not migrated)")
			return nil
		}
		if err := bootstrap(ctx, cfg, log, driverLog, conn); err != nil {
			return err
		}
		log.Info("archive ready: ClickHouse answered, schema migrated")
		return nil
	}
	return &Archive{conn: lc, log: log}, nil
}

// lazyConn prepares the database on first use. Only the calls the
// archive makes are guarded.
type lazyConn struct {
	driver.Conn
	prepare func(ctx context.Context) error

	mu    sync.Mutex
	ready bool
}

func (c *lazyConn) ensure(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ready {
		return nil
	}
	if err := c.prepare(ctx); err != nil {
		return err
	}
	c.ready = true
	return nil
}

func (c *lazyConn) Select(ctx context.Context, dest any, query string, args ...any) error {
	if err := c.ensure(ctx); err != nil {
		return err
	}
	return c.Conn.Select(ctx, dest, query, args...)
}

func (c *lazyConn) Query(ctx context.Context, query string, args ...any) (driver.Rows, error) {
	if err := c.ensure(ctx); err != nil {
		return nil, err
	}
	return c.Conn.Query(ctx, query, args...)
}

func (c *lazyConn) QueryRow(ctx context.Context, query string, args ...any) driver.Row {
	if err := c.ensure(ctx); err != nil {
		return errRow{err}
	}
	return c.Conn.QueryRow(ctx, query, args...)
}

func (c *lazyConn) PrepareBatch(ctx context.Context, query string, opts ...driver.PrepareBatchOption) (driver.Batch, error) {
	if err := c.ensure(ctx); err != nil {
		return nil, err
	}
	return c.Conn.PrepareBatch(ctx, query, opts...)
}

func (c *lazyConn) Exec(ctx context.Context, query string, args ...any) error {
	if err := c.ensure(ctx); err != nil {
		return err
	}
	return c.Conn.Exec(ctx, query, args...)
}

func (c *lazyConn) Ping(ctx context.Context) error {
	if err := c.ensure(ctx); err != nil {
		return err
	}
	return c.Conn.Ping(ctx)
}

// errRow is a driver.Row that only reports err.
type errRow struct{ err error }

func (r errRow) Err() error           { return r.err }
func (r errRow) Scan(...any) error    { return r.err }
func (r errRow) ScanStruct(any) error { return r.err }
