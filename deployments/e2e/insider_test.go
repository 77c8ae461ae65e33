package e2e

import (
	"context"
	"testing"

	"github.com/ClickHouse/clickhouse-go/v2"

	"github.com/wechat-relay/wechat-relay/configs"
	"github.com/wechat-relay/wechat-relay/console"
	"github.com/wechat-relay/wechat-relay/deployments/commands/cmdtest"
)

// insider is a relay that signs with a seal key of its own, and the
// archive it writes, open to a test that plays an insider: someone who
// can write ClickHouse, but not the relay's host or its key.
type insider struct {
	*testRelay
	public  string // the seal key's public half, a PEM file
	archive string // a config that opens the same archive, for verify
	ch, db  string
}

// startInsider starts a signing relay with an admin (admTok); tweak, if
// set, changes its configuration first.
func startInsider(t *testing.T, tweak func(*configs.Config)) *insider {
	t.Helper()
	cfg, ch, db := ownConfig(t)
	cfg.Console.Employees = append(cfg.Console.Employees, configs.EmployeeConfig{ID: "adm", Role: console.RoleAdmin, Token: admTok})
	in := &insider{ch: ch, db: db}
	cfg.Pipeline.SealKeyFile, in.public = makeSealKey(t, t.TempDir(), "seal.key")
	if tweak != nil {
		tweak(cfg)
	}
	in.testRelay = startRelay(t, cfg)
	in.archive = cmdtest.ArchiveConfig(t, cfg.DataDir, ch, db)
	return in
}

// insert writes one row straight into the archive, past the relay.
func (in *insider) insert(t *testing.T, query string, row ...any) {
	t.Helper()
	conn, err := clickhouse.Open(&clickhouse.Options{Addr: []string{in.ch}, Auth: clickhouse.Auth{Database: in.db}})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	batch, err := conn.PrepareBatch(context.Background(), query)
	if err != nil {
		t.Fatal(err)
	}
	if err := batch.Append(row...); err != nil {
		t.Fatal(err)
	}
	if err := batch.Send(); err != nil {
		t.Fatal(err)
	}
}

// verify runs `wechat-relay verify -json` with the relay's public key.
func (in *insider) verify(t *testing.T) (int, verifyReport) {
	t.Helper()
	return runVerify(t, in.archive, "-public-key", in.public)
}
