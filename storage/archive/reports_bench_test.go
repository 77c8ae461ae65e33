package archive

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/wechat-relay/wechat-relay/relay/report"
	"github.com/wechat-relay/wechat-relay/storage/testenv"
)

// BenchmarkReports measures the reports' figures over an archive of
// WR_BENCH_REPORT_ROWS messages (1,000,000 by default): 20,000
// conversations of 3 accounts, 12 employees, 50 messages each over six
// months, every third one a reply, each reply with a delivery event (one
// in fifty failed). The rows are written by ClickHouse itself
// (INSERT … SELECT … FROM numbers(), a few seconds for a million) into
// the scratch database wr_bench_reports, kept for later runs and
// rebuilt when its row count differs. ns/op is one figure, or one whole
// report (the service's every query) for the report/… cases.
//
//	go test ./storage/archive -run '^$' -bench Reports -benchtime 5x
func BenchmarkReports(b *testing.B) {
	if testing.Short() {
		b.Skip("needs ClickHouse")
	}
	rows := 1_000_000
	if v := os.Getenv("WR_BENCH_REPORT_ROWS"); v != "" {
		fmt.Sscan(v, &rows)
	}
	a := benchReportArchive(b, testenv.ClickHouseAddr(b), rows)
	last := time.UnixMilli(benchReportStart + 50*benchReportStep)
	month := report.Filter{From: last.Add(-30 * 24 * time.Hour), To: last, Offset: 8 * time.Hour}
	all := report.Filter{From: time.UnixMilli(benchReportStart), To: last.Add(time.Hour), Offset: 8 * time.Hour}
	emp := month
	emp.Employees = []string{"emp_1", "emp_2", "emp_3"}
	ctx := context.Background()
	for _, c := range []struct {
		name string
		run  func() error
	}{
		{"volume/day/month", func() error { _, err := a.ReportVolume(ctx, month, report.GroupDay); return err }},
		{"volume/employee/6months", func() error { _, err := a.ReportVolume(ctx, all, report.GroupEmployee); return err }},
		{"clients/month", func() error { _, err := a.ReportClients(ctx, month); return err }},
		{"conversations/month", func() error { _, err := a.ReportConversations(ctx, month); return err }},
		{"responses/employee/month", func() error { _, err := a.ReportResponses(ctx, month, report.GroupEmployee); return err }},
		{"responses/employee/6months", func() error { _, err := a.ReportResponses(ctx, all, report.GroupEmployee); return err }},
		{"responses/3employees/month", func() error { _, err := a.ReportResponses(ctx, emp, report.GroupAll); return err }},
		{"waiting", func() error { _, err := a.ReportWaiting(ctx, month); return err }},
		{"closing", func() error { _, err := a.ReportClosing(ctx, month, last, 24*time.Hour); return err }},
		{"delivery/month", func() error { _, err := a.ReportDelivery(ctx, month); return err }},
	} {
		b.Run(c.name, func(b *testing.B) {
			for b.Loop() {
				if err := c.run(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
	svc := &report.Service{Store: a, Now: func() time.Time { return last }}
	for _, name := range report.Names {
		b.Run("report/"+name+"/month", func(b *testing.B) {
			req := report.Request{Name: name, From: month.From, To: month.To, Offset: month.Offset}
			for b.Loop() {
				if _, err := svc.Run(ctx, nil, nil, req); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// The scratch database and the timing of its messages: message seq
// (1..50) of every conversation is accepted benchReportStep × seq after
// benchReportStart, plus a second per conversation number.
const (
	benchReportDB    = "wr_bench_reports"
	benchReportStart = int64(1761955200000) // 2025-11-01
	benchReportStep  = int64(311_040_000)   // 3.6 days: 50 steps are six months
	benchReportConvs = 20_000
)

// benchReportArchive opens the scratch database, filling it with rows
// messages unless it holds that many already.
func benchReportArchive(b *testing.B, addr string, rows int) *Archive {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	cfg := Config{Addr: addr, Database: benchReportDB}
	a, err := Open(ctx, cfg, nil)
	if err != nil {
		b.Fatalf("Open: %v", err)
	}
	var have uint64
	if err := a.conn.QueryRow(ctx, `SELECT count() FROM messages`).Scan(&have); err != nil {
		b.Fatal(err)
	}
	if int(have) != rows {
		b.Logf("filling %s with %d messages (had %d)", benchReportDB, rows, have)
		a.Close()
		dropDatabase(b, addr, benchReportDB)
		if a, err = Open(ctx, cfg, nil); err != nil {
			b.Fatalf("Open: %v", err)
		}
		start := time.Now()
		if err := a.conn.Exec(ctx, fmt.Sprintf(`INSERT INTO messages (id, account, client, conv, seq, direction, kind, wx_msg_id, event,
				event_key, text, media_id, attrs, raw, created_at, accepted_at, accepted_ms, employee, day, interaction, hash, batch_id)
			SELECT concat('b:', toString(number)) AS id, concat('acc', toString(number %% %[1]d %% 3)) AS acc,
				concat('o_client_', toString(number %% %[1]d)) AS cl, concat(acc, ':', cl), intDiv(number, %[1]d) + 1 AS sq,
				if(sq %% 3 = 0, 'out', 'in') AS dir, 'text', '', '', '', '您好，请问我的账户余额是多少？', '', '{}', '',
				toDateTime(intDiv(ms, 1000)) AS at, at, toUInt64(%[2]d + sq * %[3]d + (number %% %[1]d) * 1000) AS ms,
				concat('emp_', toString(number %% %[1]d %% 12)), toDate(at, 'UTC'), toUInt8(dir = 'in'), 'h', 'bench/messages/1'
			FROM numbers(%[4]d)`, benchReportConvs, benchReportStart, benchReportStep, rows)); err != nil {
			b.Fatalf("filling messages: %v", err)
		}
		if err := a.conn.Exec(ctx, `INSERT INTO events (`+eventColumns+`)
			SELECT concat(id, '/', st), id, account, conv, if(sipHash64(id) % 50 = 0, 'failed', 'sent') AS st,
				if(st = 'failed', 45015, 0), '', accepted_at + 1, accepted_ms + 1000, day, '', ''
			FROM messages WHERE direction = 'out'`); err != nil {
			b.Fatalf("filling events: %v", err)
		}
		b.Logf("filled %s: %d messages and their events in %s", benchReportDB, rows, time.Since(start).Round(time.Millisecond))
	}
	b.Cleanup(func() { a.Close() })
	return a
}
