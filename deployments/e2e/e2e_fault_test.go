package e2e

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/wechat-relay/wechat-relay/console"
	"github.com/wechat-relay/wechat-relay/storage/testenv"
)

// Fault tests: each runs its own ClickHouse or Redis, so it can stop it.

// With ClickHouse down, WeChat is still answered and nothing is
// delivered; once it is back, the message is archived, then delivered.
func TestE2EClickHouseDownFrameWaitsForRow(t *testing.T) {
	if testing.Short() {
		t.Skip("starts its own ClickHouse")
	}
	t.Parallel()
	ch := testenv.StartClickHouse(t)
	rd := testenv.RedisAddr(t)
	db := testenv.UniqueName("e2e")
	cfg := e2eConfig(t, ch.Addr, rd, db, testenv.UniqueName("wr")+":", t.TempDir())
	r := startRelay(t, cfg)
	alice := r.dial(t, aliceTok)

	ch.Stop()
	now := time.Now()
	start := time.Now()
	status, body := r.post(t, safeCallback(t, "acme", textXML("oDown", "40001", "archive is down", now), now))
	if status != 200 || body != "success" {
		t.Fatalf("with ClickHouse down the callback was answered %d %q; WeChat must be answered once the message is spooled", status, body)
	}
	t.Logf("answered in %v with ClickHouse down", time.Since(start))
	if f, ok := readFrame(t, alice, 2*time.Second); ok {
		t.Fatalf("frame delivered while the archive was down: %+v", f)
	}
	if got := r.sys.Spool().Len(); got != 1 {
		t.Fatalf("spool holds %d messages, want 1", got)
	}

	ch.Start()
	f, ok := readFrame(t, alice, 30*time.Second)
	if !ok || f.Message.WxMsgID != "40001" {
		t.Fatalf("after ClickHouse returned: frame %+v (ok=%v)", f, ok)
	}
	// The frame came, so the row must be there already.
	if n := rowCount(t, ch.Addr, db, msgID("oDown", "40001")); n != 1 {
		t.Fatalf("%d rows archived", n)
	}
}

// A relay stopped while messages wait in its spool archives them exactly
// once when it starts again, and delivers them.
func TestE2ESpoolSurvivesRestart(t *testing.T) {
	if testing.Short() {
		t.Skip("starts its own ClickHouse")
	}
	t.Parallel()
	ch := testenv.StartClickHouse(t)
	rd := testenv.RedisAddr(t)
	db := testenv.UniqueName("e2e")
	dataDir := t.TempDir()
	prefix := testenv.UniqueName("wr") + ":"
	cfg := e2eConfig(t, ch.Addr, rd, db, prefix, dataDir)
	r1 := startRelay(t, cfg)

	ch.Stop()
	now := time.Now()
	ids := []string{"50001", "50002", "50003", "50004", "50005"}
	for i, id := range ids {
		if status, _ := r1.post(t, safeCallback(t, "acme", textXML("oSpool", id, "spooled "+id, now.Add(time.Duration(i)*time.Second)), now)); status != 200 {
			t.Fatalf("callback %s answered %d", id, status)
		}
	}
	r1.stop() // ClickHouse still down: the drain fails, the spool keeps them
	if n := r1.sys.Spool().Len(); n != len(ids) {
		t.Fatalf("stopped with %d spooled, want %d", n, len(ids))
	}

	ch.Start()
	r2 := startRelay(t, e2eConfig(t, ch.Addr, rd, db, prefix, dataDir))
	alice := r2.dial(t, aliceTok)
	// Whatever was published before the socket connected, resume fetches
	// from the archive: the employee ends up with all five, in order.
	alice.send(t, console.Frame{Type: console.FrameResume, Conv: "acme:oSpool"})
	var got []string
	deadline := time.Now().Add(30 * time.Second)
	for len(got) < len(ids) && time.Now().Before(deadline) {
		f, ok := readFrame(t, alice, 30*time.Second)
		if !ok {
			break
		}
		if f.Type == console.FrameMessage {
			if f.Seq != uint64(len(got)+1) {
				t.Fatalf("frame seq %d, want %d", f.Seq, len(got)+1)
			}
			got = append(got, f.Message.WxMsgID)
		}
	}
	for i := range ids {
		if i >= len(got) || got[i] != ids[i] {
			t.Fatalf("delivered %v, want %v", got, ids)
		}
	}
	waitSpoolEmpty(t, r2)
	for _, id := range ids {
		if n := rowCount(t, ch.Addr, db, msgID("oSpool", id)); n != 1 {
			t.Fatalf("message %s archived %d times", id, n)
		}
	}
}

// With Redis down the callback is still accepted; the message is archived
// and delivered once Redis is back (its sequence numbers come from
// Redis, and are re-seeded from the archive after Redis lost them).
func TestE2ERedisDownThenBack(t *testing.T) {
	if testing.Short() {
		t.Skip("starts its own Redis")
	}
	t.Parallel()
	ch := testenv.ClickHouseAddr(t)
	rd := testenv.StartRedis(t)
	db := testenv.UniqueName("e2e")
	cfg := e2eConfig(t, ch, rd.Addr, db, "wr:", t.TempDir())
	r := startRelay(t, cfg)
	sup := r.dial(t, supTok)

	now := time.Now()
	if status, _ := r.post(t, safeCallback(t, "acme", textXML("oRedis", "60001", "before", now), now)); status != 200 {
		t.Fatal("first callback refused")
	}
	if f, ok := readFrame(t, sup, 10*time.Second); !ok || f.Seq != 1 {
		t.Fatalf("first frame %+v", f)
	}

	rd.Kill()
	status, body := r.post(t, safeCallback(t, "acme", textXML("oRedis", "60002", "during", now.Add(time.Second)), now))
	if status != 200 || body != "success" {
		t.Fatalf("with Redis down the callback was answered %d %q", status, body)
	}
	if f, ok := readFrame(t, sup, time.Second); ok {
		t.Fatalf("frame while Redis is down: %+v", f)
	}
	rd.Start() // empty: no dedupe keys, no counters
	// The hub resubscribes to the restarted Redis; give the frame time.
	var f console.Frame
	var ok bool
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); {
		if f, ok = readFrame(t, sup, 5*time.Second); ok {
			break
		}
	}
	if !ok {
		// The publication may have been lost while the hub resubscribed:
		// the console catches up from the archive.
		sup.send(t, console.Frame{Type: console.FrameResume, Conv: "acme:oRedis", Seq: 1})
		f, ok = readFrame(t, sup, 10*time.Second)
	}
	if !ok || f.Message.WxMsgID != "60002" || f.Seq != 2 {
		t.Fatalf("after Redis returned: %+v (ok=%v); want message 60002 with seq 2, seeded from the archive", f, ok)
	}
	if n := rowCount(t, ch, db, msgID("oRedis", "60002")); n != 1 {
		t.Fatalf("%d rows", n)
	}
}

func waitSpoolEmpty(t *testing.T, r *testRelay) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for r.sys.Spool().Len() > 0 {
		if ctx.Err() != nil {
			t.Fatalf("spool still holds %d", r.sys.Spool().Len())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// A relay started while ClickHouse is down still answers WeChat and
// spools, and keeps the console closed (it cannot know whom an admin
// disabled); once ClickHouse is up, the archive is created and migrated,
// the message archived, then delivered to the console, which opens.
func TestE2EStartsWithClickHouseDown(t *testing.T) {
	if testing.Short() {
		t.Skip("starts its own ClickHouse")
	}
	t.Parallel()
	ch := testenv.StartClickHouse(t)
	ch.Stop()
	rd := testenv.RedisAddr(t)
	db := testenv.UniqueName("e2e")
	cfg := e2eConfig(t, ch.Addr, rd, db, testenv.UniqueName("wr")+":", t.TempDir())
	cfg.Console.DirectoryRefresh = 100 * time.Millisecond
	r := startRelay(t, cfg)
	if code, out := r.api(t, "GET", "/api/me", supTok, nil); code != http.StatusServiceUnavailable {
		t.Fatalf("console with the directory unread: %d %v, want 503", code, out)
	}
	resp, err := http.Get(r.sys.URL() + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("readyz %d without an archive", resp.StatusCode)
	}
	now := time.Now()
	if status, body := r.post(t, safeCallback(t, "acme", textXML("oCold", "70001", "cold start", now), now)); status != 200 || body != "success" {
		t.Fatalf("callback answered %d %q with ClickHouse down since start", status, body)
	}
	if n := r.sys.Spool().Len(); n != 1 {
		t.Fatalf("spool holds %d with ClickHouse down, want the message", n)
	}
	ch.Start()
	testenv.Until(t, "the console to open once the directory is read", func() bool {
		code, _ := r.api(t, "GET", "/api/me", supTok, nil)
		return code == http.StatusOK
	})
	// Whether it came live or is caught up, it arrives once archived.
	sup := r.dial(t, supTok)
	sup.send(t, console.Frame{Type: console.FrameResume, Conv: "acme:oCold", Seq: 0})
	f := waitFrame(t, sup, "the cold-start message", func(f console.Frame) bool {
		return f.Type == console.FrameMessage && f.Message != nil && f.Message.WxMsgID == "70001"
	})
	if f.Seq != 1 {
		t.Fatalf("cold-start message delivered with seq %d", f.Seq)
	}
	if n := rowCount(t, ch.Addr, db, msgID("oCold", "70001")); n != 1 {
		t.Fatalf("%d rows", n)
	}
}

// A spool that refuses everything (failed for good after an fsync error,
// or closed) makes the instance unready, so that the load balancer sends
// WeChat elsewhere instead of to an instance that answers 503 to every
// callback; /readyz says why.
func TestE2EReadyReflectsTheSpool(t *testing.T) {
	ch, rd := testenv.ClickHouseAddr(t), testenv.RedisAddr(t)
	cfg := e2eConfig(t, ch, rd, testenv.UniqueName("e2e"), testenv.UniqueName("wr")+":", t.TempDir())
	r := startRelay(t, cfg)
	readyz := func() (int, string) {
		resp, err := http.Get(r.sys.URL() + "/readyz")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	testenv.Eventually(t, "ready", func() error {
		if code, body := readyz(); code != http.StatusOK {
			return fmt.Errorf("readyz %d %q", code, body)
		}
		return nil
	})
	if err := r.sys.Spool().Close(); err != nil {
		t.Fatal(err)
	}
	code, body := readyz()
	if code != http.StatusServiceUnavailable || !strings.Contains(body, "spool") {
		t.Fatalf("readyz with the spool refusing everything: %d %q, want 503 naming the spool", code, body)
	}
	now := time.Now()
	if status, _ := r.post(t, safeCallback(t, "acme", textXML("oGone", "80001", "hello", now), now)); status == http.StatusOK {
		t.Fatal("a callback was answered 200 with the spool refusing everything")
	}
}
