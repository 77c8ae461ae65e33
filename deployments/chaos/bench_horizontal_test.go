package chaos

import (
	"fmt"
	"strings"
	"time"

	"github.com/wechat-relay/wechat-relay/gateway/wxsim"
)

// horizontalPhase: the relay alone, then the relay and a second instance
// (the same configuration: one ClickHouse database, one Redis), each
// behind the same balancer, as fast as they answer; a supervisor's
// socket on the first receives every message either archived (the bus
// carries the second's). Then the archive is counted against what was
// accepted: nothing may be missing or archived twice.
func (b *bench) horizontalPhase(relay *relayProc, recv *receiver) {
	relay2 := b.proc("relay2", "serve")
	b.waitReady(relay2)
	defer relay2.stop()
	one := b.behindBalancer(recv, "h1", false, relay)
	two := b.behindBalancer(recv, "h2", false, relay, relay2)
	sticky := b.behindBalancer(recv, "h3", true, relay, relay2)
	b.rep.row("horizontal: archived then delivered behind a balancer in the test process: one instance, then two on the same ClickHouse and Redis",
		fmt.Sprintf("one %s; two, each callback to either %s", one, two),
		fmt.Sprintf("%.2f× one (target ≥ 1.7× where the ceiling allows; on 2 cores: not below 1×, nothing lost)", two.ps/one.ps))
	b.rep.row("horizontal: two instances, each client's callbacks to one of them (the balancer hashes the callback's openid)",
		sticky.String(), fmt.Sprintf("%.2f× one", sticky.ps/one.ps))
}

type horizontal struct {
	ps                float64
	accepted, frames  int
	rows, ids         uint64
	answeredPS, spool float64
}

func (h horizontal) String() string {
	return fmt.Sprintf("%.0f/s (answered %.0f/s; %d accepted, %d frames, %d rows and %d ids archived)",
		h.ps, h.answeredPS, h.accepted, h.frames, h.rows, h.ids)
}

// behindBalancer runs one load phase through a balancer in front of
// relays and counts what arrived and what the archive holds.
func (b *bench) behindBalancer(recv *receiver, tag string, byOpenID bool, relays ...*relayProc) horizontal {
	t := b.t
	var addrs, names []string
	for _, r := range relays {
		addrs, names = append(addrs, r.addr), append(names, r.name)
	}
	lb := startBalancer(t, addrs, names)
	lb.byOpenID = byOpenID
	defer lb.srv.Close()
	ins := b.startInserts(tag, relays...)
	recv.reset(tag)
	start := time.Now()
	rep := b.loadURL("balancer → "+strings.Join(names, ", "), lb.url,
		wxsim.LoadConfig{Rate: 100000, Duration: b.p.dur, Clients: 64, MaxInFlight: 64}, tag)
	got := b.waitDelivered("horizontal "+tag, recv, rep.Accepted, 2*time.Minute)
	ins.stop()
	h := horizontal{ps: float64(got.n) / got.last.Sub(start).Seconds(), answeredPS: rep.AcceptedPS, accepted: rep.Accepted, frames: got.n}
	if _, ok := b.arch.untilArchived(tag, rep.Accepted, time.Minute); !ok {
		t.Logf("horizontal %s: not all %d accepted archived within a minute", tag, rep.Accepted)
	}
	var err error
	if h.rows, h.ids, err = b.arch.tagged(tag); err != nil {
		t.Errorf("counting the archive: %v", err)
	}
	if h.ids < uint64(rep.Accepted) || h.ids > uint64(rep.Sent) || h.rows != h.ids {
		b.missing = append(b.missing, fmt.Sprintf("horizontal %s: %d accepted of %d sent, the archive holds %d rows of %d ids", tag, rep.Accepted, rep.Sent, h.rows, h.ids))
	}
	return h
}
