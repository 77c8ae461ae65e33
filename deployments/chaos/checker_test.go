package chaos

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sort"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

// The checker: after the drain, it reads the archive (and the log of
// every insert), the clients' outcomes, the consumers' records and the
// simulator's log of sends, and counts what went wrong.

func randInt64(n int64) int64 {
	if n <= 0 {
		return 0
	}
	return rand.Int64N(n)
}

// row is one archived message row (one physical copy).
type row struct {
	id, conv               string
	seq                    uint64
	direction, kind, event string
	text, employee         string
	fromLog, fromTable     bool
}

func (h *harness) archiveConn() driver.Conn {
	h.t.Helper()
	conn, err := clickhouse.Open(&clickhouse.Options{
		Addr: []string{h.ch.Addr}, Auth: clickhouse.Auth{Database: h.db},
		DialTimeout: 5 * time.Second, ReadTimeout: 5 * time.Minute,
		Settings: clickhouse.Settings{"max_execution_time": 600},
	})
	if err != nil {
		h.t.Fatal(err)
	}
	return conn
}

// readRows returns every physical row of the archive's messages table
// (without collapsing copies: FINAL is not used) and every row the
// insert log saw.
func (h *harness) readRows(ctx context.Context, conn driver.Conn) (table, log []row, err error) {
	rs, err := conn.Query(ctx, "SELECT id, conv, seq, direction, kind, event, text, employee FROM messages WHERE account = ?", accountID)
	if err != nil {
		return nil, nil, err
	}
	for rs.Next() {
		var r row
		if err := rs.Scan(&r.id, &r.conv, &r.seq, &r.direction, &r.kind, &r.event, &r.text, &r.employee); err != nil {
			rs.Close()
			return nil, nil, err
		}
		r.fromTable = true
		table = append(table, r)
	}
	rs.Close()
	if err := rs.Err(); err != nil {
		return nil, nil, err
	}
	rs, err = conn.Query(ctx, "SELECT id, conv, seq, direction FROM "+h.logDB+".messages")
	if err != nil {
		return nil, nil, err
	}
	defer rs.Close()
	for rs.Next() {
		var r row
		if err := rs.Scan(&r.id, &r.conv, &r.seq, &r.direction); err != nil {
			return nil, nil, err
		}
		r.fromLog = true
		log = append(log, r)
	}
	return table, log, rs.Err()
}

// outcomes returns the delivery events of each outbound message.
func (h *harness) outcomes(ctx context.Context, conn driver.Conn) (map[string][]string, error) {
	rs, err := conn.Query(ctx, "SELECT message_id, groupUniqArray(type) FROM events WHERE account = ? GROUP BY message_id", accountID)
	if err != nil {
		return nil, err
	}
	defer rs.Close()
	out := map[string][]string{}
	for rs.Next() {
		var id string
		var types []string
		if err := rs.Scan(&id, &types); err != nil {
			return nil, err
		}
		sort.Strings(types)
		out[id] = types
	}
	return out, rs.Err()
}

func final(types []string) bool {
	for _, t := range types {
		switch t {
		case "sent", "failed", "unknown", "refused":
			return true
		}
	}
	return false
}

// waitSettled waits until every accepted reply has a final delivery event.
func (h *harness) waitSettled(within time.Duration) bool {
	conn := h.archiveConn()
	defer conn.Close()
	var ids []string
	for _, r := range h.replies.all() {
		if r.accepted() {
			ids = append(ids, r.messageID)
		}
	}
	return waitUntil(within, func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		got, err := h.outcomes(ctx, conn)
		if err != nil {
			return false
		}
		for _, id := range ids {
			if !final(got[id]) {
				return false
			}
		}
		return true
	})
}

// waitCaughtUp waits until both supervisors' consoles hold every archived
// message, reconnecting them when they make no progress.
func (h *harness) waitCaughtUp(within time.Duration) bool {
	conn := h.archiveConn()
	defer conn.Close()
	deadline := time.Now().Add(within)
	lastKick := time.Now()
	for {
		start := time.Now()
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		table, _, err := h.readRows(ctx, conn)
		cancel()
		missing := 0
		if err == nil {
			for _, c := range h.consumers[:2] {
				for _, r := range table {
					if !c.holds(r.conv, r.seq, r.id) {
						missing++
					}
				}
			}
			if missing == 0 {
				return true
			}
		}
		if time.Now().After(deadline) {
			h.tl.note("consoles not caught up within %s: %d missing (%v)", within, missing, err)
			return false
		}
		if took := time.Since(start); took > time.Second {
			time.Sleep(took) // a large archive: poll less often
		}
		if time.Since(lastKick) > 5*time.Second {
			for _, c := range h.consumers {
				select {
				case c.kick <- struct{}{}:
				default:
				}
			}
			lastKick = time.Now()
		}
		time.Sleep(time.Second)
	}
}

// report is the checker's result.
type report struct {
	p                     params
	sendTime              time.Duration
	faultsRun             int
	stopExits             []string
	sent, acked, retried  int
	unacked               map[string]int // by outcome
	unackedWhy            map[string]int // by error
	subscribed, subsAcked int
	archivedClient        int // client messages archived (distinct)
	archivedUnacked       int // archived though WeChat had no acknowledgement
	archivedRows, logRows int
	lost                  []string
	duplicated            []string
	duplicateRows         []string
	seqGaps, seqDups      []string
	clientOrder           []string
	deliveredEarly        []string
	sentEarly             []string
	outOfOrder            []string
	undelivered           []string
	agentUndelivered      int
	consumerInfo          []string
	replies               int
	repliesAccepted       int
	repliesRefused        map[string]int
	repliesNotAccepted    []string
	sendsLost             []string
	doubleSent            []string
	unsettled             []string
	outcomes              map[string]int
	wechat                string
	verify                string
	verifyProblems        int
	relayInfo             []string
	relayPanics           int
	balancer              string
	probeInfo             string
	insertLogMissing      int
	stuck                 []string
	otherRelay            int
	wrongOutcome          []string
	unknownRows           int
}

type failure struct {
	name string
	n    int
}

// failures are the counts that must be zero.
func (r *report) failures() []failure {
	reordered := len(r.seqGaps) + len(r.seqDups) + len(r.clientOrder)
	all := []failure{
		{"lost (acknowledged, not archived)", len(r.lost)},
		{"duplicated", len(r.duplicated)},
		{"duplicate rows", len(r.duplicateRows)},
		{"reordered", reordered},
		{"delivered before archived", len(r.deliveredEarly)},
		{"delivered out of order", len(r.outOfOrder)},
		{"never delivered to a supervisor", len(r.undelivered)},
		{"sends lost (accepted, not archived)", len(r.sendsLost)},
		{"sends double-sent", len(r.doubleSent)},
		{"sent before archived", len(r.sentEarly)},
		{"sends unsettled", len(r.unsettled)},
		{"verify problems", r.verifyProblems},
		{"relay panics", r.relayPanics},
		{"relays stuck (not ready, not exited)", len(r.stuck)},
		{"delivery outcome contradicts WeChat", len(r.wrongOutcome)},
	}
	var out []failure
	for _, f := range all {
		if f.n > 0 {
			out = append(out, f)
		}
	}
	return out
}

// check reads everything and counts.
func (h *harness) check(clients *clientsRun) *report {
	t := h.t
	rep := &report{p: h.p, unacked: map[string]int{}, unackedWhy: map[string]int{}, repliesRefused: map[string]int{}, outcomes: map[string]int{}}
	rep.stuck = h.stuck
	conn := h.archiveConn()
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	table, log, err := h.readRows(ctx, conn)
	if err != nil {
		t.Fatalf("reading the archive: %v", err)
	}
	outcomes, err := h.outcomes(ctx, conn)
	if err != nil {
		t.Fatalf("reading the delivery events: %v", err)
	}
	rep.archivedRows, rep.logRows = len(table), len(log)

	// Every (id, seq) ever written, from the table and the insert log.
	type key struct {
		id  string
		seq uint64
	}
	inTable := map[string]bool{}
	logCount := map[key]int{}
	byID := map[string]*row{} // one copy of each id, with the table's columns
	seqsOf := map[string]map[uint64]bool{}
	add := func(r row) {
		if seqsOf[r.id] == nil {
			seqsOf[r.id] = map[uint64]bool{}
		}
		seqsOf[r.id][r.seq] = true
	}
	for i := range table {
		r := &table[i]
		inTable[r.id] = true
		if byID[r.id] == nil {
			byID[r.id] = r
		}
		add(*r)
	}
	inLog := map[string]bool{}
	for _, r := range log {
		inLog[r.id] = true
		logCount[key{r.id, r.seq}]++
		add(r)
		if byID[r.id] == nil {
			rr := r
			byID[r.id] = &rr
		}
	}
	for id := range inTable {
		if !inLog[id] {
			rep.insertLogMissing++
		}
	}
	for k, n := range logCount {
		if n > 1 {
			rep.duplicateRows = append(rep.duplicateRows, fmt.Sprintf("%s (seq %d) inserted %d times", k.id, k.seq, n))
		}
	}
	for id, seqs := range seqsOf {
		if len(seqs) > 1 {
			rep.duplicated = append(rep.duplicated, fmt.Sprintf("%s archived under %d sequence numbers %v", id, len(seqs), keys(seqs)))
		}
	}

	// Per conversation: sequence numbers 1..n, each exactly once.
	convSeqs := map[string]map[uint64][]string{}
	for id, seqs := range seqsOf {
		conv := byID[id].conv
		if convSeqs[conv] == nil {
			convSeqs[conv] = map[uint64][]string{}
		}
		for s := range seqs {
			convSeqs[conv][s] = append(convSeqs[conv][s], id)
		}
	}
	subSeq := map[string]string{} // conv → where its subscribe is
	for id, r := range byID {
		if r.fromTable && r.kind == "event" && r.event == "subscribe" {
			subSeq[r.conv] += fmt.Sprintf("its subscribe %s is at seq %v (%s)", id, keys(seqsOf[id]), h.describe(id, r.conv))
		}
	}
	for conv, seqs := range convSeqs {
		var max uint64
		for s, ids := range seqs {
			max = maxU(max, s)
			if len(ids) > 1 {
				sort.Strings(ids)
				rep.seqDups = append(rep.seqDups, fmt.Sprintf("%s seq %d held by %v", conv, s, ids))
			}
		}
		for s := uint64(1); s <= max; s++ {
			if len(seqs[s]) == 0 {
				var near []string
				for _, n := range []uint64{s - 1, s + 1} {
					for _, id := range seqs[n] {
						near = append(near, fmt.Sprintf("seq %d is %s (%s)", n, id, h.describe(id, conv)))
					}
				}
				if s == 1 && subSeq[conv] != "" {
					near = append(near, subSeq[conv])
				}
				rep.seqGaps = append(rep.seqGaps, fmt.Sprintf("%s has no seq %d (last %d); %s", conv, s, max, strings.Join(near, "; ")))
			}
		}
	}

	// Client messages: archived once each, none lost, in the client's order.
	type cm struct{ ci, mi int }
	idsOf := map[cm][]string{}
	subs := map[string][]string{}
	for id, r := range byID {
		if r.direction != "in" {
			continue
		}
		if r.fromTable && r.kind == "event" && r.event == "subscribe" {
			subs[r.conv] = append(subs[r.conv], id)
			continue
		}
		if !r.fromTable {
			continue // seen only by the insert log: merged away?
		}
		if r.kind != "text" {
			rep.unknownRows++
			continue
		}
		ci, mi, ok := parseClientText(r.text)
		if !ok {
			rep.unknownRows++
			continue
		}
		idsOf[cm{ci, mi}] = append(idsOf[cm{ci, mi}], id)
	}
	for k, ids := range idsOf {
		if len(ids) > 1 {
			sort.Strings(ids)
			rep.duplicated = append(rep.duplicated, fmt.Sprintf("client %d message %d archived as %d messages %v", k.ci, k.mi, len(ids), ids))
		}
	}
	for conv, ids := range subs {
		if len(ids) > 1 {
			rep.duplicated = append(rep.duplicated, fmt.Sprintf("%s's subscribe archived as %d messages %v", conv, len(ids), ids))
		}
	}
	for _, c := range clients.clients {
		rep.subscribed++
		if c.sub.acked() {
			rep.subsAcked++
			if len(subs[c.conv]) == 0 {
				rep.lost = append(rep.lost, fmt.Sprintf("client %d's subscribe (%s)", c.idx, c.conv))
			}
		}
		type placed struct {
			mi  int
			seq uint64
			id  string
		}
		var order []placed
		for mi, s := range c.msgs {
			if s.status == "" && s.err == "" {
				continue // never sent (the run was cut short)
			}
			rep.sent++
			if s.attempts > 1 {
				rep.retried++
			}
			ids := idsOf[cm{c.idx, mi}]
			switch {
			case s.acked():
				rep.acked++
				if len(ids) == 0 {
					rep.lost = append(rep.lost, fmt.Sprintf("client %d message %d (%s, MsgId %s, %d tries: %s)", c.idx, mi, c.conv, s.msgID, s.attempts, h.lb.tries(s.msgID)))
				}
			default:
				rep.unacked[string(s.status)]++
				why := s.err
				if i := strings.Index(why, "rid:"); i > 0 {
					why = why[:i]
				}
				if len(why) > 110 {
					why = why[:110] + "…"
				}
				rep.unackedWhy[why]++
				if len(ids) > 0 {
					rep.archivedUnacked++
				}
			}
			if len(ids) > 0 {
				rep.archivedClient++
				order = append(order, placed{mi, minKey(seqsOf[ids[0]]), ids[0]})
			}
		}
		// The subscribe came before every message.
		if ids := subs[c.conv]; c.sub.acked() && len(ids) > 0 && len(order) > 0 {
			if seq := minKey(seqsOf[ids[0]]); seq > order[0].seq {
				rep.clientOrder = append(rep.clientOrder, fmt.Sprintf("client %d (%s): its subscribe %s at seq %d, after message %d at seq %d; tries of the subscribe: %s",
					c.idx, c.conv, ids[0], seq, order[0].mi, order[0].seq, h.describe(ids[0], c.conv)))
			}
		}
		for i := 1; i < len(order); i++ {
			if order[i].seq < order[i-1].seq {
				rep.clientOrder = append(rep.clientOrder, fmt.Sprintf("client %d (%s): message %d at seq %d, message %d at seq %d; tries of %d: %s; of %d: %s",
					c.idx, c.conv, order[i].mi, order[i].seq, order[i-1].mi, order[i-1].seq,
					order[i-1].mi, h.lb.tries(c.msgs[order[i-1].mi].msgID), order[i].mi, h.lb.tries(c.msgs[order[i].mi].msgID)))
			}
		}
	}

	// Deliveries to consoles and to WeChat, looked up right after they
	// happened.
	h.probe.mu.Lock()
	for _, v := range h.probe.violations {
		if strings.HasPrefix(v, "wechat ") {
			rep.sentEarly = append(rep.sentEarly, v)
		} else {
			rep.deliveredEarly = append(rep.deliveredEarly, v)
		}
	}
	rep.probeInfo = fmt.Sprintf("%d deliveries looked up, %d of them more than 2 s late (ClickHouse down), %d failed lookups retried",
		h.probe.checked, h.probe.late, h.probe.errors)
	h.probe.mu.Unlock()

	for i, c := range h.consumers {
		s := c.snapshot()
		for _, d := range s.details {
			rep.outOfOrder = append(rep.outOfOrder, c.name+": "+d)
		}
		if n := s.outOfOrder + s.seqConflicts - len(s.details); n > 0 {
			rep.outOfOrder = append(rep.outOfOrder, fmt.Sprintf("%s: %d more", c.name, n))
		}
		missing := 0
		for id, r := range byID {
			if !r.fromTable || len(seqsOf[id]) != 1 {
				continue
			}
			if i < 2 || r.employee == c.emp {
				if !c.holds(r.conv, r.seq, id) {
					missing++
					if i < 2 && len(rep.undelivered) < 50 {
						rep.undelivered = append(rep.undelivered, fmt.Sprintf("%s never got %s (%s seq %d); it %s", c.name, id, r.conv, r.seq, c.heldAt(r.conv, r.seq)))
					}
				}
			}
		}
		if i < 2 && missing > 50 {
			rep.undelivered = append(rep.undelivered, fmt.Sprintf("%s: %d more", c.name, missing-50))
		}
		if i >= 2 {
			rep.agentUndelivered += missing
		}
		rep.consumerInfo = append(rep.consumerInfo, fmt.Sprintf("%-6s %5d connections, %7d message frames (%d again after a resume), %d gaps healed by reconnecting, %d error frames, %d failed dials, %d missing at the end",
			c.name, s.conns, s.messages, s.redelivered, s.gaps, s.errorFrames, s.dialFailures, missing))
		for text, n := range s.errors {
			rep.consumerInfo = append(rep.consumerInfo, fmt.Sprintf("         %5d× error frame %q", n, text))
		}
	}

	// Employees' replies.
	deliveries := h.sends.deliveries()
	for _, r := range h.replies.all() {
		rep.replies++
		switch {
		case r.accepted():
			rep.repliesAccepted++
			if !inTable[r.messageID] {
				rep.sendsLost = append(rep.sendsLost, fmt.Sprintf("%s accepted (%d) as %s, not archived", r.task.key, r.status, r.messageID))
			} else if types := outcomes[r.messageID]; !final(types) {
				rep.unsettled = append(rep.unsettled, fmt.Sprintf("%s: events %v", r.messageID, types))
			}
		case r.status == 409:
			rep.repliesRefused[fmt.Sprintf("409 errcode %v", r.errcode)]++
		case r.status >= 400:
			rep.repliesRefused[fmt.Sprintf("%d", r.status)]++
		default:
			rep.repliesNotAccepted = append(rep.repliesNotAccepted, fmt.Sprintf("%s after %d tries: %s", r.task.key, r.tries, r.err))
		}
	}
	for text, n := range deliveries {
		if n > 1 {
			rep.doubleSent = append(rep.doubleSent, fmt.Sprintf("%q delivered %d times", text, n))
		}
	}
	for id, r := range byID {
		if r.direction == "out" && r.fromTable {
			types := outcomes[id]
			switch {
			case contains(types, "sent"):
				rep.outcomes["sent"]++
			case contains(types, "failed"):
				rep.outcomes["failed"]++
			case contains(types, "unknown"):
				rep.outcomes["unknown"]++
			case contains(types, "refused"):
				rep.outcomes["refused"]++
			default:
				rep.outcomes["unsettled"]++
			}
		}
	}
	// What the relay archived as the outcome of each reply against what
	// WeChat did: "sent" only if WeChat delivered it, "failed" or
	// "refused" only if it did not ("unknown" may be either).
	for _, r := range h.replies.all() {
		if !r.accepted() || !inTable[r.messageID] {
			continue
		}
		n := deliveries[replyText(r.task.key)]
		types := outcomes[r.messageID]
		switch {
		case contains(types, "sent") && n == 0:
			rep.wrongOutcome = append(rep.wrongOutcome, fmt.Sprintf("%s archived as sent, never delivered by WeChat (events %v)", r.messageID, types))
		case (contains(types, "failed") || contains(types, "refused")) && !contains(types, "sent") && n > 0:
			rep.wrongOutcome = append(rep.wrongOutcome, fmt.Sprintf("%s archived as %v, but WeChat delivered it", r.messageID, types))
		}
	}
	rep.wechat = fmt.Sprintf("%d custom/send calls: %d delivered, %d refused (errcode), %d unanswered (hung)",
		h.sends.calls.Load(), h.sends.delivered.Load(), h.sends.refused.Load(), h.sends.unanswered.Load())

	// The seals: the archive verifies after all this.
	out, err := h.relayCmd("verify", "-config", h.configs[0]).CombinedOutput()
	switch {
	case err == nil:
		rep.verify = "OK"
	default:
		rep.verifyProblems = 1
		rep.verify = fmt.Sprintf("%v:\n%s", err, tailLines(string(out), 30))
	}
	if rep.verifyProblems == 0 {
		rep.verify = "OK: " + tailLines(strings.TrimSpace(string(out)), 3)
	}

	for _, r := range h.relays {
		errs, panics := r.logLines()
		rep.relayPanics += panics
		r.mu.Lock()
		rep.relayInfo = append(rep.relayInfo, fmt.Sprintf("%s: %d starts, %d exits of its own %v, %d ERROR log lines, %d panics; log %s",
			r.name, r.starts, len(r.exits), r.exits, errs, panics, r.logPath))
		r.mu.Unlock()
	}
	rep.otherRelay = h.lb.retriedElsewhere()
	rep.balancer = fmt.Sprintf("%d requests, %d connections refused (sent to the other relay), %d dropped (relay died mid-request), %d with no relay (502)",
		h.lb.requests.Load(), h.lb.refused.Load(), h.lb.dropped.Load(), h.lb.noRelay.Load())
	return rep
}

func keys(m map[uint64]bool) []uint64 {
	var out []uint64
	for k := range m {
		out = append(out, k)
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}

func minKey(m map[uint64]bool) uint64 {
	ks := keys(m)
	if len(ks) == 0 {
		return 0
	}
	return ks[0]
}

func maxU(a, b uint64) uint64 {
	if a > b {
		return a
	}
	return b
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func tailLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// String prints the report: the counts, then the details of every
// failure (at most 20 lines each), then how the run went.
func (r *report) String(h *harness) string {
	var b strings.Builder
	p := r.p
	fmt.Fprintf(&b, "==== chaos report: %d client messages from %d clients, 2 relays; sending took %s under %d faults (each %s, %s apart)\n",
		p.n, p.clients, r.sendTime.Round(time.Second), r.faultsRun, p.faultFor, p.gap)
	unacked := 0
	for _, n := range r.unacked {
		unacked += n
	}
	line := func(name string, n int, fail bool) {
		mark := ""
		if fail && n > 0 {
			mark = "   <-- FAIL"
		}
		fmt.Fprintf(&b, "  %-44s %9d%s\n", name, n, mark)
	}
	line("client messages sent", r.sent, false)
	line("acknowledged (WeChat got success)", r.acked, false)
	line("unacknowledged (WeChat gave up)", unacked, false)
	line("  retried by WeChat (more than one try)", r.retried, false)
	line("  tried on both relays", r.otherRelay, false)
	line("archived (distinct client messages)", r.archivedClient, false)
	line("  of them unacknowledged", r.archivedUnacked, false)
	line("subscribes acknowledged", r.subsAcked, false)
	line("lost (acknowledged, not archived)", len(r.lost), true)
	line("duplicated (archived more than once)", len(r.duplicated), true)
	line("duplicate rows (one row inserted twice)", len(r.duplicateRows), true)
	line("reordered", len(r.seqGaps)+len(r.seqDups)+len(r.clientOrder), true)
	line("  seq gaps", len(r.seqGaps), true)
	line("  seq held twice", len(r.seqDups), true)
	line("  client order inverted", len(r.clientOrder), true)
	line("delivered before archived", len(r.deliveredEarly), true)
	line("delivered out of order (one connection)", len(r.outOfOrder), true)
	line("never delivered to a supervisor", len(r.undelivered), true)
	line("employee replies requested", r.replies, false)
	line("  accepted by the relay", r.repliesAccepted, false)
	line("  not accepted after a minute of retries", len(r.repliesNotAccepted), false)
	line("sends lost (accepted, not archived)", len(r.sendsLost), true)
	line("sends double-sent", len(r.doubleSent), true)
	line("sent before archived", len(r.sentEarly), true)
	line("sends unsettled (no final delivery event)", len(r.unsettled), true)
	line("verify problems", r.verifyProblems, true)
	line("relay panics", r.relayPanics, true)
	line("relays stuck (not ready, not exited)", len(r.stuck), true)
	line("delivery outcome contradicts WeChat", len(r.wrongOutcome), true)
	if f := r.failures(); len(f) == 0 {
		b.WriteString("  RESULT: PASS, every failure count is 0\n")
	} else {
		fmt.Fprintf(&b, "  RESULT: FAIL, %d failure counts are not 0\n", len(f))
	}
	details := func(name string, list []string) {
		if len(list) == 0 {
			return
		}
		fmt.Fprintf(&b, "-- %s (%d):\n", name, len(list))
		sort.Strings(list)
		for i, l := range list {
			if i == 20 {
				fmt.Fprintf(&b, "   … %d more\n", len(list)-20)
				break
			}
			fmt.Fprintf(&b, "   %s\n", l)
		}
	}
	details("lost", r.lost)
	details("duplicated", r.duplicated)
	details("duplicate rows", r.duplicateRows)
	details("seq gaps", r.seqGaps)
	details("seq held twice", r.seqDups)
	details("client order inverted", r.clientOrder)
	details("delivered before archived", r.deliveredEarly)
	details("delivered out of order", r.outOfOrder)
	details("never delivered to a supervisor", r.undelivered)
	details("sends lost", r.sendsLost)
	details("sends double-sent", r.doubleSent)
	details("sent before archived", r.sentEarly)
	details("sends unsettled", r.unsettled)
	details("replies not accepted", r.repliesNotAccepted)
	details("relays stuck", r.stuck)
	details("delivery outcome contradicts WeChat", r.wrongOutcome)
	if r.verifyProblems > 0 {
		fmt.Fprintf(&b, "-- verify:\n%s\n", r.verify)
	}
	b.WriteString("-- how it went:\n")
	fmt.Fprintf(&b, "   unacknowledged by outcome: %v\n", r.unacked)
	for why, n := range r.unackedWhy {
		fmt.Fprintf(&b, "     %5d× %s\n", n, why)
	}
	fmt.Fprintf(&b, "   archive: %d rows in messages, %d inserts logged (%d ids in the table the insert log missed), %d rows not from the clients' script\n",
		r.archivedRows, r.logRows, r.insertLogMissing, r.unknownRows)
	fmt.Fprintf(&b, "   replies refused before anything was archived: %v\n", r.repliesRefused)
	fmt.Fprintf(&b, "   outbound delivery outcomes: %v\n", r.outcomes)
	fmt.Fprintf(&b, "   WeChat: %s\n", r.wechat)
	fmt.Fprintf(&b, "   probe: %s\n", r.probeInfo)
	for _, c := range r.consumerInfo {
		fmt.Fprintf(&b, "   console %s\n", c)
	}
	fmt.Fprintf(&b, "   agents' consoles: %d messages of their conversations never reached them (reassignments after Redis lost its state count here; informational)\n", r.agentUndelivered)
	fmt.Fprintf(&b, "   balancer: %s\n", r.balancer)
	for _, l := range r.relayInfo {
		fmt.Fprintf(&b, "   %s\n", l)
	}
	fmt.Fprintf(&b, "   final stop: %s\n", strings.Join(r.stopExits, "; "))
	fmt.Fprintf(&b, "   verify: %s\n", strings.ReplaceAll(r.verify, "\n", " | "))
	b.WriteString("-- timeline:\n")
	b.WriteString(h.tl.String())
	b.WriteString("\n==== end of chaos report")
	return b.String()
}

// describe tells where the tries of an inbound message's callback went
// (the clients' only events are their subscribes).
func (h *harness) describe(id, conv string) string {
	key := ""
	switch {
	case strings.HasPrefix(id, "in:"+accountID+":"):
		key = strings.TrimPrefix(id, "in:"+accountID+":")
	case strings.HasPrefix(id, "ev:"):
		key = strings.TrimPrefix(conv, accountID+":") + "/subscribe"
	default:
		return "not from a client"
	}
	if tries := h.lb.tries(key); tries != "" {
		return "tries: " + tries
	}
	return "no tries recorded"
}
