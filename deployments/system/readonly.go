package system

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"

	"github.com/wechat-relay/wechat-relay/configs"
	"github.com/wechat-relay/wechat-relay/relay"
	"github.com/wechat-relay/wechat-relay/relay/export"
	"github.com/wechat-relay/wechat-relay/relay/report"
	"github.com/wechat-relay/wechat-relay/relay/verify"
	"github.com/wechat-relay/wechat-relay/storage/archive"
	"github.com/wechat-relay/wechat-relay/storage/embedded"
)

// ReadArchive is the archive as the read-only commands (verify, search,
// export, retention-report, report) use it.
type ReadArchive interface {
	verify.Source
	relay.AuditStore
	relay.DirectoryStore
	export.Source
	report.Store
	Close() error
}

// OpenReadOnly opens the configured archive for reading, and names it:
// ClickHouse without creating or migrating anything (SELECT is enough),
// or the embedded file, which must exist (an empty new one would verify,
// and prove nothing).
func OpenReadOnly(ctx context.Context, cfg *configs.Config) (ReadArchive, string, error) {
	log := slog.New(slog.DiscardHandler)
	if c := cfg.Storage.ClickHouse; c.Addr != "" {
		acfg := archive.Config{Addr: c.Addr, Database: c.Database, Username: c.Username, Password: c.Password, ReadOnly: true}
		a, err := archive.Open(ctx, acfg, log)
		if err != nil {
			return nil, "", err
		}
		db := c.Database
		if db == "" {
			db = archive.DefaultDatabase
		}
		return a, "clickhouse://" + c.Addr + "/" + db, nil
	}
	path := cfg.ArchivePath()
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
		return nil, "", fmt.Errorf("no embedded archive at %s (is this the configuration the relay runs with?)", path)
	}
	a, err := embedded.Open(ctx, path, log)
	if err != nil {
		return nil, "", err
	}
	return a, path, nil
}
