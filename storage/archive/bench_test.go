package archive

import (
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/wechat-relay/wechat-relay/relay"
	"github.com/wechat-relay/wechat-relay/relay/verify"
)

// BenchmarkInsert measures one Insert (one batch, one INSERT) of 1, 100
// and 1000 realistic messages against the real server. ns/op is per
// batch; msgs/s is the throughput a group-committing writer can expect.
// Batches of one show why the writer must group-commit: each INSERT is a
// round trip and a new part on disk.
func BenchmarkInsert(b *testing.B) {
	raw := []byte("<xml><ToUserName><![CDATA[gh_123456789abc]]></ToUserName><FromUserName><![CDATA[oABCD1234567890abcdefghijk]]></FromUserName>" +
		"<CreateTime>1773451613</CreateTime><MsgType><![CDATA[text]]></MsgType><Content><![CDATA[" +
		strings.Repeat("您好，请问我的账户余额是多少？", 4) + "]]></Content><MsgId>24089373712345678</MsgId></xml>")
	for _, size := range []int{1, 100, 1000} {
		b.Run(fmt.Sprintf("batch=%d", size), func(b *testing.B) {
			a := openTest(b)
			ctx := testCtx(b)
			seq := uint64(0)
			now := time.Now()
			batch := make([]relay.Message, size)
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				for j := range batch {
					seq++
					conv := relay.Conversation("acc", fmt.Sprintf("o_client_%d", seq%200))
					m := testMessage(conv, seq, now)
					m.ID = fmt.Sprintf("in:acc:%d", 24089373700000000+seq)
					m.Text = "您好，请问我的账户余额是多少？"
					m.Raw = raw
					m.Attrs = map[string]string{"msg_data_id": "", "idx": "0"}
					batch[j] = m
				}
				if err := a.Insert(ctx, batch); err != nil {
					b.Fatalf("Insert: %v", err)
				}
			}
			b.StopTimer()
			b.ReportMetric(float64(b.N*size)/b.Elapsed().Seconds(), "msgs/s")
		})
	}
}

// BenchmarkVerify measures `wechat-relay verify` (verify.Archive) over an
// archive of WR_BENCH_VERIFY_ROWS messages (200000 by default) sealed in
// batches of 500, as the pipeline writes them under load. ns/op is one
// full verification; rows/s its throughput.
func BenchmarkVerify(b *testing.B) {
	rows := 200000
	if v := os.Getenv("WR_BENCH_VERIFY_ROWS"); v != "" {
		fmt.Sscan(v, &rows)
	}
	a := openTest(b)
	ctx := testCtx(b)
	raw := []byte("<xml><Content><![CDATA[" + strings.Repeat("您好，请问我的账户余额是多少？", 4) + "]]></Content></xml>")
	now := time.Now()
	prev := ""
	for n, seq := uint64(1), uint64(0); seq < uint64(rows); n++ {
		batchID := relay.BatchID("bench", relay.StreamMessages, n)
		batch := make([]relay.Message, 0, 500)
		leaves := make([]relay.Leaf, 0, 500)
		for range 500 {
			seq++
			m := testMessage(relay.Conversation("acc", fmt.Sprintf("o_client_%d", seq%2000)), seq, now)
			m.ID = fmt.Sprintf("in:acc:%d", 24089373700000000+seq)
			m.Raw = raw
			m.BatchID = batchID
			m.Hash = relay.MessageHash(m)
			batch = append(batch, m)
			leaves = append(leaves, relay.Leaf{ID: m.ID, Conv: m.Conv, Hash: m.Hash})
		}
		if err := a.Insert(ctx, batch); err != nil {
			b.Fatal(err)
		}
		slices.SortFunc(leaves, func(x, y relay.Leaf) int { return strings.Compare(x.ID, y.ID) })
		hashes := make([]string, len(leaves))
		for i, l := range leaves {
			hashes[i] = l.Hash
		}
		s := relay.Seal{ID: batchID, Writer: "bench", Stream: relay.StreamMessages, Number: n, Prev: prev,
			Root: relay.MerkleRoot(hashes), Count: len(leaves), First: now, Last: now, At: now, Leaves: leaves}
		s.Hash = s.ComputeHash()
		if err := a.InsertSeal(ctx, s); err != nil {
			b.Fatal(err)
		}
		prev = s.Hash
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		rep, err := verify.Archive(ctx, a, verify.Options{})
		if err != nil {
			b.Fatal(err)
		}
		if !rep.OK || rep.Messages < rows {
			b.Fatalf("verify: ok %v, %d messages; %+v", rep.OK, rep.Messages, rep.Problems[:min(5, len(rep.Problems))])
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N*rows)/b.Elapsed().Seconds(), "rows/s")
}
