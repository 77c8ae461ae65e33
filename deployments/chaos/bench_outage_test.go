package chaos

import (
	"fmt"
	"time"

	"github.com/wechat-relay/wechat-relay/gateway/wxsim"
)

// outagePhases: WeChat's callbacks while ClickHouse is stopped, while it
// hangs (SIGSTOP: its sockets open, nothing answered), and while Redis
// is down (killed, restarted empty) — each for WR_BENCH_OUTAGE at
// WR_BENCH_OUTAGE_RATE — and how long after each returns the backlog is
// archived and on the supervisor's socket.
func (b *bench) outagePhases(relay *relayProc, recv *receiver) {
	for _, o := range []struct {
		name, tag  string
		begin, end func()
	}{
		{"ClickHouse stopped", "chstop", b.ch.Stop, b.ch.Start},
		{"ClickHouse hung (SIGSTOP)", "chhung", b.ch.Pause, b.ch.Resume},
		{"Redis down (killed, back empty)", "redis", b.rd.Kill, b.rd.Start},
	} {
		b.outage(relay, recv, o.name, o.tag, o.begin, o.end)
	}
}

func (b *bench) outage(relay *relayProc, recv *receiver, name, tag string, begin, end func()) {
	t := b.t
	ins := b.startInserts(tag, relay)
	recv.reset(tag)
	b.waitReady(relay)
	began := time.Now()
	begin()
	rep := b.load(relay, wxsim.LoadConfig{Rate: b.p.outRate, Duration: b.p.outage, Clients: 64, MaxInFlight: 256}, tag)
	spool, err := relay.spoolPending()
	if err != nil {
		t.Logf("%s: reading the spool: %v", name, err)
	}
	end()
	back := time.Now()
	t.Logf("%s: over after %s, spool %.0f", name, back.Sub(began).Round(time.Millisecond), spool)

	archivedAt, ok := b.arch.untilArchived(tag, rep.Accepted, 5*time.Minute)
	archived := "not all archived within 5 minutes"
	if ok {
		archived = fmt.Sprintf("archived %s", archivedAt.Sub(back).Round(100*time.Millisecond))
	}
	got := recv.waitFor(rep.Accepted, 5*time.Minute)
	resumed := ""
	if got.n < rep.Accepted {
		// What the socket missed is in the archive; a console resumes.
		recv.resumeAll(nil)
		before := got.n
		got = b.waitDelivered(name, recv, rep.Accepted, time.Minute)
		resumed = fmt.Sprintf("; %d only after a resume", got.n-before)
	}
	ins.stop()
	delivered := got.last.Sub(back)
	b.rep.row(fmt.Sprintf("%s for %s at %.0f/s: WeChat answered", name, back.Sub(began).Round(time.Second), b.p.outRate),
		fmt.Sprintf("p50 %s, p99 %s, max %s (%d of %d accepted, %d timeouts, %d failed)",
			rep.P50.Round(100*time.Microsecond), rep.P99.Round(100*time.Microsecond), rep.Max.Round(time.Millisecond),
			rep.Accepted, rep.Sent, rep.Timeouts, rep.Failed),
		fmt.Sprintf("p99 %.2f× the target (100 ms), max %.2f× (2 s)", rep.P99.Seconds()/0.1, rep.Max.Seconds()/2))
	b.rep.row(fmt.Sprintf("after %s: the backlog (%d accepted, spool %.0f at its return)", name, rep.Accepted, spool),
		fmt.Sprintf("%s, delivered %s after its return (%d frames%s)", archived, delivered.Round(100*time.Millisecond), got.n, resumed),
		fmt.Sprintf("%.2f× the target (20 s)", delivered.Seconds()/20))
}
