package chaos

import (
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/wechat-relay/wechat-relay/gateway/wxsim"
)

// The fault schedule: one fault at a time, each held for a while, then
// undone, with a calm gap before the next; the list is run again and
// again until the clients are done (at least once through).

type fault struct {
	name       string
	begin, end func() error
	skip       string        // why this fault cannot run here; empty: it can
	least      time.Duration // the fault lasts at least this long
}

// timeline records what happened when, relative to the start of the run.
type timeline struct {
	start time.Time
	logf  func(format string, args ...any)

	mu      sync.Mutex
	entries []string
}

func (tl *timeline) note(format string, args ...any) {
	now := time.Now()
	line := fmt.Sprintf("%7.1fs %s  %s", now.Sub(tl.start).Seconds(), now.Format("15:04:05.000"), fmt.Sprintf(format, args...))
	tl.mu.Lock()
	tl.entries = append(tl.entries, line)
	tl.mu.Unlock()
	tl.logf("%s", line)
}

func (tl *timeline) String() string {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	return strings.Join(tl.entries, "\n")
}

// faults is the schedule's list, in order.
func (h *harness) faults() []fault {
	a, b := h.relays[0], h.relays[1]
	ch, rd := h.ch, h.rd
	killRelay := func(r *relayProc) fault {
		return fault{name: "kill -9 " + r.name,
			begin: func() error { r.kill9(); return nil },
			end:   r.start}
	}
	diskFull := func(r *relayProc, d *spoolDisk) fault {
		f := fault{name: "spool disk full on " + r.name,
			begin: func() error {
				n, err := d.fill()
				h.tl.note("  filled %s with %d MiB", d.dir, n>>20)
				return err
			},
			end: d.free}
		if !d.ok {
			f.skip = "no tmpfs for the spool (needs root and mount)"
		}
		return f
	}
	pauseRelay := func(r *relayProc) fault {
		// Longer than WeChat's 5 s: the callbacks in flight on it are
		// tried again, maybe on the other relay, while it still holds
		// them; it carries on with them when it wakes up.
		return fault{name: "relay hung (SIGSTOP) " + r.name, least: 7 * time.Second,
			begin: r.pause, end: r.resume}
	}
	simFault := func(name string, flt wxsim.Fault) fault {
		return fault{name: name,
			begin: func() error { return h.sim.SetFault(pathCustomSend, flt) },
			end:   func() error { h.sim.ClearFault(pathCustomSend); return nil }}
	}
	all := []fault{
		killRelay(a),
		{name: "ClickHouse stopped (SIGTERM)",
			begin: func() error { ch.Stop(); return nil },
			end:   func() error { ch.Start(); return nil }},
		simFault("WeChat custom/send failing (errcode -1)", wxsim.Fault{ErrCode: -1}),
		killRelay(b),
		pauseRelay(a),
		{name: "ClickHouse hung (SIGSTOP)",
			begin: func() error { ch.Pause(); return nil },
			end:   func() error { ch.Resume(); return nil }},
		{name: "Redis killed (-9) and restarted empty",
			begin: func() error { rd.Kill(); return nil },
			end:   func() error { rd.Start(); return nil }},
		diskFull(a, h.disks[0]),
		simFault("WeChat custom/send hanging", wxsim.Fault{Hang: true}),
		{name: "ClickHouse killed (-9)",
			begin: func() error { ch.Kill(); return nil },
			end:   func() error { ch.Start(); return nil }},
		diskFull(b, h.disks[1]),
		pauseRelay(b),
	}
	if only := h.p.faults; len(only) > 0 {
		var keep []fault
		for _, f := range all {
			for _, o := range only {
				if strings.Contains(strings.ToLower(f.name), strings.ToLower(o)) {
					keep = append(keep, f)
					break
				}
			}
		}
		all = keep
	}
	return all
}

// runFaults runs the schedule until done is closed, and at least once
// through. It runs on the test's goroutine (the servers' Start may fail
// the test).
func (h *harness) runFaults(done <-chan struct{}) (ran int) {
	list := h.faults()
	for _, f := range list {
		if f.skip != "" {
			h.tl.note("fault skipped: %s: %s", f.name, f.skip)
		}
	}
	finished := func() bool {
		select {
		case <-done:
			return true
		default:
			return false
		}
	}
	for cycle := 1; ; cycle++ {
		for _, f := range list {
			if f.skip != "" {
				continue
			}
			if cycle > 1 && finished() {
				return ran
			}
			h.tl.note("fault begins: %s", f.name)
			if err := f.begin(); err != nil {
				h.tl.note("  %s: %v", f.name, err)
			}
			time.Sleep(max(h.p.faultFor, f.least))
			if err := f.end(); err != nil {
				h.t.Errorf("undoing %s: %v", f.name, err)
			}
			h.tl.note("fault ends:   %s", f.name)
			ran++
			time.Sleep(h.p.gap)
		}
		if len(list) == 0 || finished() {
			if len(list) == 0 {
				<-done
			}
			return ran
		}
	}
}
