package commands

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/wechat-relay/wechat-relay/configs"
	"github.com/wechat-relay/wechat-relay/deployments/system"
	"github.com/wechat-relay/wechat-relay/relay"
	"github.com/wechat-relay/wechat-relay/relay/report"
)

// Exit codes of `wechat-relay report`.
const (
	reportDone   = 0
	reportUsage  = 2 // bad flags or parameters
	reportFailed = 3 // the archive could not be read
)

// reportCommand runs `wechat-relay report`: the figures of one report,
// as the console's Reports view shows them, for the operator (every
// employee and team; teams as the archived directory has them), written
// as CSV (every table, or -table) or JSON.
//
//	wechat-relay report NAME [-config FILE] [-from DATE] [-to DATE] [-tz MINUTES]
//	    [-account A] [-team T] [-employee E] [-within HOURS] [-format csv|json] [-table ID]
func reportCommand(ctx context.Context, args []string, stdout, stderr io.Writer, env func(string) string) int {
	fs := flag.NewFlagSet("report", flag.ContinueOnError)
	fs.SetOutput(stderr)
	_, local := time.Now().Zone()
	configPath := fs.String("config", env("WR_CONFIG"), "configuration file naming the archive (none: the embedded demo archive)")
	from := fs.String("from", "", "first day (2026-11-01, in -tz) or an RFC 3339 time; default: 7 days before -to")
	to := fs.String("to", "", "last day, included (in -tz), or an RFC 3339 time (excluded); default: today")
	tz := fs.Int("tz", local/60, "the time zone days and hours are counted in, minutes east of UTC (480: China)")
	account := fs.String("account", "", "one account only")
	team := fs.String("team", "", "one team's members only")
	employee := fs.String("employee", "", "one employee only")
	within := fs.Int("within", 0, fmt.Sprintf("responsiveness: list the windows closing within this many hours (default %d)", int(report.DefaultWithin.Hours())))
	format := fs.String("format", "csv", "csv or json")
	table := fs.String("table", "", "csv: this table only (default: every table, each headed by its name)")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: wechat-relay report %s [-config FILE] [-from DATE] [-to DATE] [-tz MINUTES] [filters] [-format csv|json] [-table ID]\n",
			strings.Join(report.Names, "|"))
		fs.PrintDefaults()
	}
	// The name may come before or after the flags.
	var name string
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		name, args = args[0], args[1:]
	}
	if err := fs.Parse(args); err != nil {
		return reportUsage
	}
	if name == "" && fs.NArg() == 1 {
		name = fs.Arg(0)
	} else if fs.NArg() > 0 || name == "" {
		fs.Usage()
		return reportUsage
	}
	fail := func(code int, err error) int {
		fmt.Fprintf(stderr, "wechat-relay report: %v\n", err)
		return code
	}
	if *format != "csv" && *format != "json" {
		return fail(reportUsage, fmt.Errorf("-format: %q is neither csv nor json", *format))
	}
	p := report.Params{Name: name, From: *from, To: *to, TZ: strconv.Itoa(*tz), Account: *account, Team: *team, Employee: *employee}
	if *within != 0 {
		p.Within = strconv.Itoa(*within)
	}
	req, err := p.Parse(time.Now())
	if err != nil {
		return fail(reportUsage, err)
	}
	cfg, err := configs.Load(*configPath, env)
	if err != nil {
		return fail(reportFailed, err)
	}
	a, _, err := system.OpenReadOnly(ctx, cfg)
	if err != nil {
		return fail(reportFailed, err)
	}
	defer a.Close()
	dir := relay.NewDirectory(a, cfg.DirectorySeed(), slog.New(slog.DiscardHandler), nil)
	if err := dir.Load(ctx); err != nil {
		return fail(reportFailed, err)
	}
	svc := &report.Service{Store: a}
	if req.Name == report.Compliance {
		if svc.Reviews, svc.Holds, err = complianceServices(a, cfg, stderr); err != nil {
			return fail(reportFailed, err)
		}
	}
	rep, err := svc.Run(ctx, nil, dir.Snapshot(), req)
	if errors.Is(err, report.ErrBadRequest) {
		return fail(reportUsage, err)
	}
	if err != nil {
		return fail(reportFailed, err)
	}
	if *format == "json" {
		enc := json.NewEncoder(stdout)
		enc.SetEscapeHTML(false)
		enc.SetIndent("", "  ")
		if err := enc.Encode(rep); err != nil {
			return fail(reportFailed, err)
		}
		return reportDone
	}
	if err := report.WriteCSV(stdout, rep, *table); err != nil {
		if errors.Is(err, report.ErrBadRequest) {
			return fail(reportUsage, err)
		}
		return fail(reportFailed, err)
	}
	return reportDone
}

// complianceServices are the review log and the legal holds of a,
// checked with the instances' keys as retention-report checks holds: the
// compliance report's review queue and holds count only the reviews and
// releases that verify. Refusals are logged to stderr; nothing is
// written. nil, nil when a keeps no alerts or holds.
func complianceServices(a system.ReadArchive, cfg *configs.Config, stderr io.Writer) (*relay.ReviewLog, *relay.LegalHolds, error) {
	st, ok := a.(interface {
		relay.AlertStore
		relay.RetentionStore
	})
	if !ok {
		return nil, nil, nil
	}
	keys, err := configuredPublicKeys(cfg)
	if err != nil {
		return nil, nil, err
	}
	trust := relay.RecordTrust{PublicKeys: keys, Audit: a, Log: slog.New(slog.NewTextHandler(stderr, nil))}
	reviews, err := relay.NewReviewLog(st, trust)
	if err != nil {
		return nil, nil, err
	}
	holds, err := relay.NewLegalHolds(st, trust)
	if err != nil {
		return nil, nil, err
	}
	return reviews, holds, nil
}
