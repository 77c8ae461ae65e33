package archive

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"testing"
	"time"

	"github.com/wechat-relay/wechat-relay/relay"
	"github.com/wechat-relay/wechat-relay/storage/testenv"
)

// BenchmarkSearch measures Search over an archive of
// WR_BENCH_SEARCH_ROWS messages (1,000,000 by default) with Chinese text:
// 20,000 conversations of 3 accounts, 12 employees, over six months, 1%
// of the rows replayed (a second physical copy). The rows are written
// once into the scratch database wr_bench_search (in batches of 100,000;
// about 20 s for a million on 18.16) and kept for later runs; it is
// rebuilt when its row count differs. ns/op is one search (one page of
// 50, newest first).
//
//	go test ./storage/archive -run '^$' -bench Search -benchtime 10x
func BenchmarkSearch(b *testing.B) {
	if testing.Short() {
		b.Skip("needs ClickHouse and a minute to fill")
	}
	rows := 1_000_000
	if v := os.Getenv("WR_BENCH_SEARCH_ROWS"); v != "" {
		fmt.Sscan(v, &rows)
	}
	addr := testenv.ClickHouseAddr(b)
	a, newest := benchSearchArchive(b, addr, rows)

	at := newest.Add(-30 * 24 * time.Hour)
	for _, c := range []struct {
		name string
		q    relay.SearchQuery
	}{
		{"newest", relay.SearchQuery{}},
		{"newest+total", relay.SearchQuery{WithTotal: true}},
		{"text=common", relay.SearchQuery{Text: "退款"}},
		{"text=common+total", relay.SearchQuery{Text: "退款", WithTotal: true}},
		{"text=rare", relay.SearchQuery{Text: "zx-4471"}},
		{"client", relay.SearchQuery{Client: "o_client_1234"}},
		{"conv", relay.SearchQuery{Conv: relay.Conversation("acc1", "o_client_1234")}},
		{"employee+month", relay.SearchQuery{Employee: "emp_7", From: at, To: newest}},
		{"text+month", relay.SearchQuery{Text: "合同", From: at, To: newest}},
		{"account+direction+kind", relay.SearchQuery{Account: "acc2", Direction: relay.Outbound, Kind: relay.KindText}},
		{"offset=1000", relay.SearchQuery{Offset: 1000}},
	} {
		b.Run(c.name, func(b *testing.B) {
			ctx := context.Background()
			var n int
			for b.Loop() {
				p, err := a.Search(ctx, c.q)
				if err != nil {
					b.Fatalf("Search(%s): %v", c.q, err)
				}
				n = len(p.Messages)
			}
			b.ReportMetric(float64(n), "results")
		})
	}
	// The cursor of a deep page: the 20th page of a common word.
	b.Run("text=common/page20", func(b *testing.B) {
		ctx := context.Background()
		q := relay.SearchQuery{Text: "退款"}
		for range 19 {
			p, err := a.Search(ctx, q)
			if err != nil || p.Next == "" {
				b.Fatalf("paging: %v", err)
			}
			q.Cursor = p.Next
		}
		for b.Loop() {
			if _, err := a.Search(ctx, q); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// benchSearchDB is the scratch database of BenchmarkSearch, kept between
// runs so that a million rows are written once.
const benchSearchDB = "wr_bench_search"

var benchPhrases = []string{
	"您好，请问我的账户余额是多少？", "我想申请退款，订单号在下面", "合同什么时候可以签？", "Hello, is anyone there?",
	"请把产品说明书发给我", "基金净值今天更新了吗", "我要投诉，服务太慢了", "谢谢，已经收到了",
	"明天上午十点开会", "保险理赔需要哪些材料", "Please call me back", "利率调整的通知收到了",
}

// benchSearchArchive opens the scratch database, filling it with rows
// messages unless it holds exactly that many distinct ids already; it
// returns the archive and the newest AcceptedAt.
func benchSearchArchive(b *testing.B, addr string, rows int) (*Archive, time.Time) {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	newest := time.Date(2026, 10, 31, 0, 0, 0, 0, time.UTC)
	span := 180 * 24 * time.Hour
	cfg := Config{Addr: addr, Database: benchSearchDB}
	a, err := Open(ctx, cfg, nil)
	if err != nil {
		b.Fatalf("Open: %v", err)
	}
	b.Cleanup(func() { a.Close() })
	var have uint64
	if err := a.conn.QueryRow(ctx, `SELECT uniqExact(id) FROM messages`).Scan(&have); err != nil {
		b.Fatal(err)
	}
	if int(have) == rows {
		return a, newest
	}
	b.Logf("filling %s with %d messages (had %d)", benchSearchDB, rows, have)
	a.Close()
	dropDatabase(b, addr, benchSearchDB)
	if a, err = Open(ctx, cfg, nil); err != nil {
		b.Fatalf("Open: %v", err)
	}
	b.Cleanup(func() { a.Close() })
	start := time.Now()
	r := rand.New(rand.NewPCG(1, 2))
	const batchSize = 100_000
	batch := make([]relay.Message, 0, batchSize)
	seqs := map[int]uint64{}
	flush := func() {
		if err := a.Insert(ctx, batch); err != nil {
			b.Fatalf("Insert: %v", err)
		}
		batch = batch[:0]
	}
	for i := range rows {
		client := r.IntN(20_000)
		account := fmt.Sprintf("acc%d", client%3)
		seqs[client]++
		conv := relay.Conversation(account, fmt.Sprintf("o_client_%d", client))
		accepted := newest.Add(-time.Duration(r.Int64N(int64(span)))).Truncate(time.Millisecond)
		text := benchPhrases[r.IntN(len(benchPhrases))]
		if i%100_000 == 7 {
			text += " 合同编号 ZX-4471"
		}
		dir, id := relay.Inbound, fmt.Sprintf("in:%s:%d", account, 24000000000000000+i)
		if r.IntN(3) == 0 {
			dir, id = relay.Outbound, fmt.Sprintf("out:%s:%d", conv, i)
		}
		batch = append(batch, relay.Message{
			ID: id, Account: account, Client: fmt.Sprintf("o_client_%d", client), Conv: conv, Seq: seqs[client],
			Direction: dir, Kind: relay.KindText, Text: text, Raw: []byte("<xml><Content>" + text + "</Content></xml>"),
			CreatedAt: accepted.Add(-time.Second), AcceptedAt: accepted, Employee: fmt.Sprintf("emp_%d", client%12),
			Hash: "h", BatchID: "bench/messages/1",
		})
		if i%100 == 0 { // a replay: a second physical copy
			batch = append(batch, batch[len(batch)-1])
		}
		if len(batch) >= batchSize {
			flush()
		}
	}
	if len(batch) > 0 {
		flush()
	}
	b.Logf("filled %s: %d messages in %s", benchSearchDB, rows, time.Since(start).Round(time.Second))
	return a, newest
}
