package commands

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/wechat-relay/wechat-relay/configs"
	"github.com/wechat-relay/wechat-relay/deployments/system"
	"github.com/wechat-relay/wechat-relay/relay"
)

// journalArchive opens the configured archive read-only, for the journal
// commands: the journal's settings and its ledger. On failure it has
// said why and returns the exit code.
func journalArchive(ctx context.Context, name string, args []string, stderr io.Writer, env func(string) string, extra func(*flag.FlagSet)) (
	cfg *configs.Config, st relay.JournalStore, closeFn func(), asJSON bool, code int) {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	configPath := fs.String("config", env("WR_CONFIG"), "configuration file naming the archive and the journal")
	j := fs.Bool("json", false, "print JSON")
	if extra != nil {
		extra(fs)
	}
	if err := fs.Parse(args); err != nil || fs.NArg() > 0 {
		fmt.Fprintf(stderr, "usage: wechat-relay %s [-config FILE] [-json]\n", name)
		return nil, nil, nil, false, 2
	}
	cfg, err := configs.Load(*configPath, env)
	if err != nil {
		fmt.Fprintf(stderr, "wechat-relay %s: %v\n", name, err)
		return nil, nil, nil, false, 3
	}
	a, _, err := system.OpenReadOnly(ctx, cfg)
	if err != nil {
		fmt.Fprintf(stderr, "wechat-relay %s: %v\n", name, err)
		return nil, nil, nil, false, 3
	}
	st, ok := a.(relay.JournalStore)
	if !ok {
		a.Close()
		fmt.Fprintf(stderr, "wechat-relay %s: this archive keeps no journal ledger\n", name)
		return nil, nil, nil, false, 3
	}
	return cfg, st, func() { a.Close() }, *j, 0
}

// journalStatusCommand runs `wechat-relay journal-status`: how far the
// journal to the firm's archive is behind — how many archived messages
// have no ledger entry, and since when.
//
//	wechat-relay journal-status [-config FILE] [-json]
func journalStatusCommand(e cmdEnv) int {
	cfg, st, closeFn, asJSON, code := journalArchive(e.ctx, "journal-status", e.args, e.stderr, e.getenv, nil)
	if code != 0 {
		return code
	}
	defer closeFn()
	lag, err := st.UnjournaledLag(e.ctx, cfg.Journal.Start())
	if err != nil {
		fmt.Fprintf(e.stderr, "wechat-relay journal-status: %v\n", err)
		return 3
	}
	now := time.Now()
	if asJSON {
		out := struct {
			Enabled        bool             `json:"enabled"`
			Server         string           `json:"server,omitempty"`
			JournalAddress string           `json:"journal_address,omitempty"`
			Lag            relay.JournalLag `json:"lag"`
			LagSeconds     float64          `json:"lag_seconds"`
		}{Enabled: cfg.Journal.Enabled(), JournalAddress: cfg.Journal.To, Lag: lag}
		if out.Enabled {
			out.Server = fmt.Sprintf("%s:%d", cfg.Journal.Host, cfg.Journal.WithDefaults().Port)
		}
		if lag.Count > 0 {
			out.LagSeconds = now.Sub(lag.Oldest).Seconds()
		}
		return encodeJSON(e, out)
	}
	if cfg.Journal.Enabled() {
		fmt.Fprintf(e.stdout, "journal: to %s via %s:%d\n", cfg.Journal.To, cfg.Journal.Host, cfg.Journal.WithDefaults().Port)
	} else {
		fmt.Fprintln(e.stdout, "journal: not configured (journal.host is empty)")
	}
	if lag.Count == 0 {
		fmt.Fprintln(e.stdout, "not journaled: none")
		return 0
	}
	fmt.Fprintf(e.stdout, "not journaled: %d messages, the oldest accepted %s (%s ago)\n",
		lag.Count, lag.Oldest.UTC().Format(time.RFC3339), now.Sub(lag.Oldest).Round(time.Second))
	return 0
}

// journalReconcileCommand runs `wechat-relay journal-reconcile`: every
// archived message without a ledger entry (archived but not journaled),
// oldest first, with its row id and hash, to compare with the firm's
// archive. Exit 0 when there is none, 1 when it listed some.
//
//	wechat-relay journal-reconcile [-config FILE] [-json] [-limit N]
func journalReconcileCommand(e cmdEnv) int {
	var limit *int
	cfg, st, closeFn, asJSON, code := journalArchive(e.ctx, "journal-reconcile", e.args, e.stderr, e.getenv, func(fs *flag.FlagSet) {
		limit = fs.Int("limit", 10000, "list at most this many (0: all)")
	})
	if code != 0 {
		return code
	}
	defer closeFn()
	msgs, err := st.Unjournaled(e.ctx, cfg.Journal.Start(), *limit)
	if err != nil {
		fmt.Fprintf(e.stderr, "wechat-relay journal-reconcile: %v\n", err)
		return 3
	}
	type row struct {
		ID       string    `json:"id"`
		Conv     string    `json:"conv"`
		Seq      uint64    `json:"seq"`
		Accepted time.Time `json:"accepted"`
		Hash     string    `json:"hash"`
	}
	rows := make([]row, len(msgs))
	for i, m := range msgs {
		rows[i] = row{ID: m.ID, Conv: string(m.Conv), Seq: m.Seq, Accepted: m.AcceptedAt.UTC(), Hash: m.Hash}
	}
	if asJSON {
		if c := encodeJSON(e, rows); c != 0 {
			return c
		}
	} else {
		tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ROW ID\tCONVERSATION\tSEQ\tACCEPTED\tHASH")
		for _, r := range rows {
			fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\n", r.ID, r.Conv, r.Seq, r.Accepted.Format(time.RFC3339), r.Hash)
		}
		tw.Flush()
		fmt.Fprintf(e.stdout, "%d archived but not journaled\n", len(rows))
	}
	if len(rows) > 0 {
		return 1
	}
	return 0
}

func encodeJSON(e cmdEnv, v any) int {
	enc := json.NewEncoder(e.stdout)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		fmt.Fprintf(e.stderr, "wechat-relay: %v\n", err)
		return 3
	}
	return 0
}
