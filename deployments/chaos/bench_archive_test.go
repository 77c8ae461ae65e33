package chaos

import (
	"bufio"
	"context"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

// What the benchmark reads of ClickHouse and of the relays' /metrics:
// the rows a phase archived, the INSERTs a second, the active parts.

// chQuery is the benchmark's own connection to the archive database.
type chQuery struct {
	t    *testing.T
	conn driver.Conn
	db   string
}

func newCHQuery(t *testing.T, addr, db string) *chQuery {
	conn, err := clickhouse.Open(&clickhouse.Options{
		Addr: []string{addr}, Auth: clickhouse.Auth{Database: "default"},
		DialTimeout: 2 * time.Second, ReadTimeout: time.Minute,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return &chQuery{t: t, conn: conn, db: db}
}

// tagged counts the rows of the phase's bench messages in the archive
// (rows, and distinct ids: more rows than ids is a message archived twice
// and not merged yet).
func (q *chQuery) tagged(tag string) (rows, ids uint64, err error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err = q.conn.QueryRow(ctx, fmt.Sprintf("SELECT count(), uniqExact(id) FROM %s.messages WHERE text LIKE ?", q.db),
		"bench "+tag+" %").Scan(&rows, &ids)
	return rows, ids, err
}

// untilArchived polls until n rows of the tag are archived (or within
// passed) and returns when that was seen.
func (q *chQuery) untilArchived(tag string, n int, within time.Duration) (time.Time, bool) {
	deadline := time.Now().Add(within)
	for {
		rows, _, err := q.tagged(tag)
		if err == nil && rows >= uint64(n) {
			return time.Now(), true
		}
		if time.Now().After(deadline) {
			return time.Now(), false
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// parts returns the active parts of each table of the archive, and the
// most in one partition (ClickHouse throttles inserts at 150 there).
func (q *chQuery) parts() (map[string]uint64, uint64, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	rows, err := q.conn.Query(ctx, "SELECT table, partition, count() FROM system.parts WHERE active AND database = ? GROUP BY table, partition", q.db)
	if err != nil {
		return nil, 0, err
	}
	defer rows.Close()
	out := map[string]uint64{}
	var most uint64
	for rows.Next() {
		var table, partition string
		var n uint64
		if err := rows.Scan(&table, &partition, &n); err != nil {
			return nil, 0, err
		}
		out[table] += n
		most = max(most, n)
	}
	return out, most, rows.Err()
}

// metric sums every series of the named metric on the relay's /metrics.
func (r *relayProc) metric(name string) (float64, error) {
	code, body, err := r.get("/metrics")
	if err != nil {
		return 0, err
	}
	if code != 200 {
		return 0, fmt.Errorf("/metrics answered %d", code)
	}
	sc := bufio.NewScanner(strings.NewReader(body))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	var sum float64
	found := false
	for sc.Scan() {
		line := sc.Text()
		rest, ok := strings.CutPrefix(line, name)
		if !ok || (rest[0] != ' ' && rest[0] != '{') {
			continue
		}
		f := strings.Fields(rest[strings.LastIndexByte(rest, '}')+1:])
		if len(f) == 0 {
			continue
		}
		v, err := strconv.ParseFloat(f[0], 64)
		if err != nil {
			return 0, fmt.Errorf("%s: %q: %w", name, line, err)
		}
		sum += v
		found = true
	}
	if !found {
		return 0, fmt.Errorf("no %s in /metrics", name)
	}
	return sum, nil
}

// insertsMeter counts the relays' INSERT statements over a phase.
type insertsMeter struct {
	b      *bench
	phase  string
	relays []*relayProc
	from   float64
	start  time.Time
}

const insertsMetric = "wechat_relay_archive_inserts_total"

func (b *bench) startInserts(phase string, relays ...*relayProc) *insertsMeter {
	m := &insertsMeter{b: b, phase: phase, relays: relays, start: time.Now()}
	m.from = m.read()
	return m
}

func (m *insertsMeter) read() float64 {
	var sum float64
	for _, r := range m.relays {
		v, err := r.metric(insertsMetric)
		if err != nil && !strings.HasPrefix(err.Error(), "no ") { // none yet: 0
			m.b.t.Logf("reading %s of %s: %v", insertsMetric, r.name, err)
		}
		sum += v
	}
	return sum
}

// stop notes the phase's INSERTs a second.
func (m *insertsMeter) stop() float64 {
	n := m.read() - m.from
	ps := n / time.Since(m.start).Seconds()
	m.b.inserts = append(m.b.inserts, insertsOf{m.phase, ps})
	m.b.t.Logf("%s: %.0f INSERT statements in %s (%.1f/s)", m.phase, n, time.Since(m.start).Round(time.Millisecond), ps)
	return ps
}

type insertsOf struct {
	phase string
	ps    float64
}

// clickhousePhase prints the INSERTs a second of every phase and the
// active parts per table at the end.
func (b *bench) clickhousePhase() {
	var figs []string
	var most float64
	for _, in := range b.inserts {
		figs = append(figs, fmt.Sprintf("%s %.0f/s", in.phase, in.ps))
		most = max(most, in.ps)
	}
	if len(figs) > 0 {
		b.rep.row("ClickHouse: INSERT statements a second, per phase (relay's /metrics)", strings.Join(figs, ", "),
			fmt.Sprintf("most %.1f× the target (20/s)", most/20))
	}
	parts, most1, err := b.arch.parts()
	if err != nil {
		b.t.Errorf("reading system.parts: %v", err)
		return
	}
	var tables []string
	for _, tbl := range slices.Sorted(maps.Keys(parts)) {
		tables = append(tables, fmt.Sprintf("%s %d", tbl, parts[tbl]))
	}
	b.rep.row("ClickHouse: active parts per table at the end (system.parts)", strings.Join(tables, ", "),
		fmt.Sprintf("most in one partition %d (throttled at 150; target < 50 after a 1-hour soak)", most1))
}

// eventsOf counts the outbound messages with an archived event of the
// type (a delivery state).
func (q *chQuery) eventsOf(state string) (uint64, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var n uint64
	err := q.conn.QueryRow(ctx, fmt.Sprintf("SELECT uniqExact(message_id) FROM %s.events WHERE type = ?", q.db), state).Scan(&n)
	return n, err
}
