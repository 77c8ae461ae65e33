package e2e

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wechat-relay/wechat-relay/deployments/commands"
	"github.com/wechat-relay/wechat-relay/storage/testenv"
)

// BenchmarkCallback measures signed safe-mode callbacks answered per
// second. "baseline" is the gateway alone (verify, decrypt, parse) with an
// acceptor that does nothing; "durable" adds what every real callback
// pays: dedupe in Redis and an fsynced spool append, with the archive
// writer draining into ClickHouse behind it. `make bench` prints the ratio.
func BenchmarkCallback(b *testing.B) {
	plain := func(i int64) string {
		return textXML("oBench", fmt.Sprint(1_000_000+i), "benchmark message 基准", time.Now())
	}
	run := func(b *testing.B, h http.Handler) {
		var n atomic.Int64
		cbs := make(chan callback, 1024)
		go func() {
			for i := 0; i < b.N; i++ {
				cbs <- safeCallback(b, "acme", plain(n.Add(1)), time.Now())
			}
			close(cbs)
		}()
		// WeChat delivers many callbacks at once; 16 per core in flight
		// lets the spool's group commit share each fsync among them.
		b.SetParallelism(16)
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				cb := <-cbs
				req := httptest.NewRequest("POST", cb.path+"?"+cb.query, strings.NewReader(string(cb.body)))
				w := httptest.NewRecorder()
				h.ServeHTTP(w, req)
				if w.Code != 200 {
					b.Fatalf("callback answered %d: %s", w.Code, w.Body)
				}
			}
		})
	}
	b.Run("baseline", func(b *testing.B) {
		cfg := e2eConfig(b, "127.0.0.1:1", "", "db", "p", b.TempDir())
		run(b, commands.CeilingHandler(cfg, nil))
	})
	b.Run("durable", func(b *testing.B) {
		ch, rd := testenv.ClickHouseAddr(b), testenv.RedisAddr(b)
		cfg := e2eConfig(b, ch, rd, testenv.UniqueName("bench"), testenv.UniqueName("wr")+":", b.TempDir())
		r := startRelay(b, cfg)
		run(b, r.sys.Handler())
	})
}
