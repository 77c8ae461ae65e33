package archive

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"

	"github.com/wechat-relay/wechat-relay/relay"
	"github.com/wechat-relay/wechat-relay/storage/testenv"
)

// testConfig returns a Config for a fresh database on the test server,
// dropped when the test ends. The dev server is shared: only databases
// this helper created are ever dropped.
func testConfig(tb testing.TB) Config {
	tb.Helper()
	addr := testenv.ClickHouseAddr(tb)
	cfg := Config{Addr: addr, Database: testenv.UniqueName("t_archive")}
	tb.Cleanup(func() { dropDatabase(tb, addr, cfg.Database) })
	return cfg
}

func dropDatabase(tb testing.TB, addr, db string) {
	tb.Helper()
	conn, err := clickhouse.Open(&clickhouse.Options{Addr: []string{addr}, DialTimeout: 5 * time.Second})
	if err != nil {
		tb.Errorf("dropping database %s: %v", db, err)
		return
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := conn.Exec(ctx, "DROP DATABASE IF EXISTS `"+db+"`"); err != nil {
		tb.Errorf("dropping database %s: %v", db, err)
	}
}

// openTest opens an archive on a fresh database.
func openTest(tb testing.TB) *Archive {
	tb.Helper()
	a, err := Open(testCtx(tb), testConfig(tb), testenv.Logger(tb))
	if err != nil {
		tb.Fatalf("Open: %v", err)
	}
	tb.Cleanup(func() { a.Close() })
	return a
}

func testCtx(tb testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	tb.Cleanup(cancel)
	return ctx
}

// count runs a query returning one UInt64.
func count(tb testing.TB, a *Archive, q string, args ...any) uint64 {
	tb.Helper()
	var n uint64
	if err := a.conn.QueryRow(testCtx(tb), q, args...).Scan(&n); err != nil {
		tb.Fatalf("%s: %v", q, err)
	}
	return n
}

// testMessage returns a plausible inbound text message of conv with seq.
func testMessage(conv relay.ConversationID, seq uint64, accepted time.Time) relay.Message {
	return relay.Message{
		ID:         fmt.Sprintf("in:acc:%s:%d", conv, seq),
		Account:    "acc",
		Client:     "o_client",
		Conv:       conv,
		Seq:        seq,
		Direction:  relay.Inbound,
		Kind:       relay.KindText,
		WxMsgID:    fmt.Sprint(1000000 + seq),
		Text:       fmt.Sprintf("message %d", seq),
		Raw:        []byte(fmt.Sprintf("<xml><Content>message %d</Content></xml>", seq)),
		CreatedAt:  accepted.Add(-time.Second).Truncate(time.Second),
		AcceptedAt: accepted.Truncate(time.Millisecond),
		Employee:   "emp1",
	}
}
