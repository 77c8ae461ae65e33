package commands

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"sort"
	"text/tabwriter"
	"time"

	"github.com/wechat-relay/wechat-relay/configs"
	"github.com/wechat-relay/wechat-relay/deployments/system"
	"github.com/wechat-relay/wechat-relay/relay"
)

// retentionReportCommand runs `wechat-relay retention-report`: what an
// operator MAY drop under the configured retention, per account and
// monthly partition. The relay itself never deletes.
//
//	wechat-relay retention-report [-config FILE] [-json]
func retentionReportCommand(ctx context.Context, args []string, stdout, stderr io.Writer, env func(string) string) int {
	fs := flag.NewFlagSet("retention-report", flag.ContinueOnError)
	fs.SetOutput(stderr)
	configPath := fs.String("config", env("WR_CONFIG"), "configuration file naming the archive and the retention")
	asJSON := fs.Bool("json", false, "print the report as JSON")
	if err := fs.Parse(args); err != nil || fs.NArg() > 0 {
		fmt.Fprintln(stderr, "usage: wechat-relay retention-report [-config FILE] [-json]")
		return 2
	}
	cfg, err := configs.Load(*configPath, env)
	if err != nil {
		fmt.Fprintf(stderr, "wechat-relay retention-report: %v\n", err)
		return 3
	}
	policies, err := cfg.RetentionPolicies()
	if err != nil {
		fmt.Fprintf(stderr, "wechat-relay retention-report: %v\n", err)
		return 2
	}
	a, name, err := system.OpenReadOnly(ctx, cfg)
	if err != nil {
		fmt.Fprintf(stderr, "wechat-relay retention-report: %v\n", err)
		return 3
	}
	defer a.Close()
	st, ok := a.(interface {
		relay.RetentionStore
		relay.AuditStore
	})
	if !ok {
		fmt.Fprintln(stderr, "wechat-relay retention-report: this archive keeps no retention counts")
		return 3
	}
	// A release lifts a hold only if it verifies with the instances' keys
	// (the configuration's seal key and trusted keys).
	keys, err := configuredPublicKeys(cfg)
	if err != nil {
		fmt.Fprintf(stderr, "wechat-relay retention-report: %v\n", err)
		return 3
	}
	lh, err := relay.NewLegalHolds(st, relay.RecordTrust{PublicKeys: keys, Audit: st,
		Log: slog.New(slog.NewTextHandler(stderr, nil))})
	if err != nil {
		fmt.Fprintf(stderr, "wechat-relay retention-report: %v\n", err)
		return 3
	}
	rep, err := relay.BuildRetentionReport(ctx, lh, policies, time.Now())
	if err != nil {
		fmt.Fprintf(stderr, "wechat-relay retention-report: %v\n", err)
		return 3
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(struct {
			Archive string `json:"archive"`
			*relay.RetentionReport
		}{name, rep}); err != nil {
			fmt.Fprintf(stderr, "wechat-relay retention-report: %v\n", err)
			return 3
		}
		return 0
	}
	printRetentionReport(stdout, name, rep)
	return 0
}

func printRetentionReport(w io.Writer, name string, rep *relay.RetentionReport) {
	fmt.Fprintf(w, "archive %s, %s\n\n", name, rep.At.Format(time.RFC3339))
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ACCOUNT\tMONTH\tMESSAGES\tHELD\tRETENTION\tMAY DROP\tNOTE")
	droppable := 0
	for _, r := range rep.Rows {
		may := "no"
		if r.Droppable {
			may = "yes"
			droppable += r.Messages
		}
		ret := r.Retention
		if ret == "" {
			ret = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%s\t%s\t%s\n", r.Account, r.Month, r.Messages, r.Held, ret, may, r.Note)
	}
	tw.Flush()
	fmt.Fprintf(w, "\n%d messages of accounts and months an operator may drop.\n", droppable)
	fmt.Fprintln(w, "\nmonthly partitions (every account): the whole partition may be dropped only if every account's part may")
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "MONTH\tMESSAGES\tHELD\tMAY DROP PARTITION")
	for _, p := range rep.Partitions {
		may := "no"
		if p.Droppable {
			may = "yes"
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%s\n", p.Month, p.Messages, p.Held, may)
	}
	tw.Flush()
	if len(rep.Holds) > 0 {
		fmt.Fprintf(w, "\nlegal holds (never expire; their months are excluded):\n")
		for _, h := range rep.Holds {
			what := "client " + h.Client
			if h.Conv != "" {
				what = "conversation " + string(h.Conv)
			}
			fmt.Fprintf(w, "  %s  %s %s, by %s at %s: %s\n", h.ID, h.Account, what, h.PlacedBy, h.At.UTC().Format(time.RFC3339), h.Reason)
			if h.Refused != "" {
				fmt.Fprintf(w, "    KEPT IN FORCE: %s\n", h.Refused)
			}
		}
	}
	fmt.Fprintf(w, "\n%s\n", rep.Note)
}

// printAuditReport writes the audit log's part of verify's report.
func printAuditReport(w io.Writer, rep *relay.AuditReport) {
	fmt.Fprintln(w, "\naudit log chains (writer: records, latest)")
	if len(rep.Chains) == 0 {
		fmt.Fprintln(w, "  no audit records")
	}
	chains := append([]relay.AuditChain(nil), rep.Chains...)
	sort.Slice(chains, func(i, j int) bool { return chains[i].Writer < chains[j].Writer })
	for _, c := range chains {
		fmt.Fprintf(w, "  %s: %d records, latest %d %s\n", c.Writer, c.Records, c.Last, c.LastHash)
	}
	printSignatures(w, "audit record", rep.Signatures)
	for _, p := range rep.Problems {
		fmt.Fprintf(w, "  %-14s audit    %s: %s\n", p.Kind, p.ID, p.Detail)
	}
	for _, wr := range rep.Witnesses {
		if wr.Found {
			fmt.Fprintf(w, "\nwitnessed audit hash %s: found, intact (%s)\n", wr.Hash, wr.Seal)
		} else {
			fmt.Fprintf(w, "\nwitnessed audit hash %s: NOT FOUND\n", wr.Hash)
		}
	}
	if rep.OK {
		signed := ""
		if sr := rep.Signatures; sr.Checked {
			signed = ", every record is signed by a given key"
			if sr.UnsignedAllowed > 0 {
				signed = fmt.Sprintf(", every record is signed by a given key but %d unsigned ones made before %s", sr.UnsignedAllowed, sr.AllowUnsignedBefore.Format(time.RFC3339))
			}
		}
		fmt.Fprintf(w, "\nOK: %d audit records intact, every audit chain unbroken%s\n", rep.Records, signed)
	} else {
		fmt.Fprintf(w, "\nFAILED: the audit log does not verify (%d problems)\n", len(rep.Problems))
	}
}

// configuredPublicKeys is the public keys cfg trusts: its seal key's and
// those of its trusted keys file.
func configuredPublicKeys(cfg *configs.Config) ([]ed25519.PublicKey, error) {
	keys, err := relay.LoadTrustedKeys(cfg.Pipeline.TrustedKeysFile)
	if err != nil {
		return nil, fmt.Errorf("pipeline.trusted_keys_file: %w", err)
	}
	if cfg.Pipeline.SealKeyFile != "" {
		s, err := relay.LoadSealSigner(cfg.Pipeline.SealKeyFile)
		if err != nil {
			return nil, fmt.Errorf("pipeline.seal_key_file: %w", err)
		}
		keys = append(keys, s.PublicKey())
	}
	return keys, nil
}
