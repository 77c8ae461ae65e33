package archive

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/wechat-relay/wechat-relay/relay"
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
