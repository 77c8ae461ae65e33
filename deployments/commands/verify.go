package commands

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/wechat-relay/wechat-relay/configs"
	"github.com/wechat-relay/wechat-relay/deployments/system"
	"github.com/wechat-relay/wechat-relay/relay"
	"github.com/wechat-relay/wechat-relay/relay/verify"
)

// Exit codes of `wechat-relay verify`.
const (
	verifyOK       = 0 // everything verifies
	verifyProblems = 1 // the archive does not verify: rows or seals missing, altered or inserted
	verifyUsage    = 2 // bad flags
	verifyFailed   = 3 // the archive could not be read
)

// stringList is a flag that may be given several times.
type stringList []string

func (l *stringList) String() string { return strings.Join(*l, ",") }
func (l *stringList) Set(v string) error {
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			*l = append(*l, s)
		}
	}
	return nil
}

// fileList is a flag that may be given several times, one file each
// (no splitting: a path may hold a comma).
type fileList []string

func (l *fileList) String() string { return strings.Join(*l, " ") }
func (l *fileList) Set(v string) error {
	if v = strings.TrimSpace(v); v == "" {
		return errors.New("empty file name")
	}
	*l = append(*l, v)
	return nil
}

// readPublicKeys reads every seal public key in files.
func readPublicKeys(files []string) ([]ed25519.PublicKey, error) {
	var keys []ed25519.PublicKey
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("-public-key: %w", err)
		}
		k, err := relay.ParseSealPublicKeys(data)
		if err != nil {
			return nil, fmt.Errorf("-public-key %s: %w", f, err)
		}
		keys = append(keys, k...)
	}
	return keys, nil
}

// parseCutoff reads -allow-unsigned-before: RFC 3339, or a date (UTC
// midnight).
func parseCutoff(v string) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339Nano, v); err == nil {
		return t, nil
	}
	if t, err := time.Parse(time.DateOnly, v); err == nil {
		return t, nil
	}
	return time.Time{}, fmt.Errorf("-allow-unsigned-before %q: give a time as 2006-01-02T15:04:05Z07:00 or a date as 2006-01-02 (UTC)", v)
}

// verifyCommand runs `wechat-relay verify`: it recomputes every row hash,
// Merkle root and seal chain from the archive the configuration names,
// and reports what is missing, altered or inserted (verify.Archive).
//
//	wechat-relay verify [-config FILE] [-json] [-seal HASH]... [-max-problems N]
//	                    [-public-key FILE]... [-allow-unsigned-before TIME]
//
// It checks the directory too (relay.VerifyDirectory): every version's
// hash, signature and chain, and its match with the admin audit record
// that names it, both ways; and so the legal holds and the alert
// reviews (relay.VerifyHolds, relay.VerifyReviews), each version named
// "hold:ID vN" or "review:HIT-ID vN", and the client profiles and tag
// vocabularies (relay.VerifyProfiles: "profile:ACCOUNT:OPENID vN",
// "tags:ACCOUNT vN").
//
// With -public-key, every seal, audit record and directory record must be signed by
// one of the keys (each file may hold several): a bad signature, an
// unknown key or a missing signature is a problem, as tampering is;
// -allow-unsigned-before accepts unsigned seals and audit records made
// before TIME (before signing was turned on), but never one after a
// signed seal (record) of its chain. Without it, signed and unsigned
// seals and records are only counted.
//
// Output goes to stdout, human-readable or, with -json, as one JSON
// object (verify.Report plus the archive's name); progress lines go
// to stderr while a long run lasts. Exit code 0 only when everything
// verifies, 1 when something does not, 2 for bad flags, 3 when the
// archive cannot be read.
func verifyCommand(ctx context.Context, args []string, stdout, stderr io.Writer, env func(string) string) int {
	fs := flag.NewFlagSet("verify", flag.ContinueOnError)
	fs.SetOutput(stderr)
	configPath := fs.String("config", env("WR_CONFIG"), "configuration file naming the archive (none: the embedded demo archive)")
	asJSON := fs.Bool("json", false, "print the report as JSON")
	var seals stringList
	fs.Var(&seals, "seal", "a seal hash an outside witness kept (from the \"archive seal\" log lines); must still be in the archive (repeatable)")
	maxProblems := fs.Int("max-problems", 1000, "problems listed in the report (all are counted)")
	var auditSeals stringList
	fs.Var(&auditSeals, "audit-seal", "an audit hash an outside witness kept (from the \"audit seal\" log lines); must still be an intact record (repeatable)")
	var publicKeys fileList
	fs.Var(&publicKeys, "public-key", "a file of seal public keys (PEM, one or more; from wechat-relay seal-key): every seal and audit record must be signed by one of them (repeatable)")
	allowUnsigned := fs.String("allow-unsigned-before", "", "with -public-key: accept unsigned seals and audit records made before this time (RFC 3339, or a date in UTC), i.e. written before signing was turned on")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: wechat-relay verify [-config FILE] [-json] [-seal HASH]... [-audit-seal HASH]... [-max-problems N] [-public-key FILE]... [-allow-unsigned-before TIME]")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return verifyUsage
	}
	if fs.NArg() > 0 {
		fs.Usage()
		return verifyUsage
	}
	keys, err := readPublicKeys(publicKeys)
	if err != nil {
		fmt.Fprintf(stderr, "wechat-relay verify: %v\n", err)
		return verifyUsage
	}
	var cutoff time.Time
	if *allowUnsigned != "" {
		if len(keys) == 0 {
			fmt.Fprintln(stderr, "wechat-relay verify: -allow-unsigned-before needs -public-key (without keys no signature is required)")
			return verifyUsage
		}
		if cutoff, err = parseCutoff(*allowUnsigned); err != nil {
			fmt.Fprintf(stderr, "wechat-relay verify: %v\n", err)
			return verifyUsage
		}
	}
	cfg, err := configs.Load(*configPath, env)
	if err != nil {
		fmt.Fprintf(stderr, "wechat-relay verify: %v\n", err)
		return verifyFailed
	}

	a, name, err := system.OpenReadOnly(ctx, cfg)
	if err != nil {
		fmt.Fprintf(stderr, "wechat-relay verify: %v\n", err)
		return verifyFailed
	}
	defer a.Close()

	start := time.Now()
	last := start
	rep, err := verify.Archive(ctx, a, verify.Options{
		Witnesses:           seals,
		MaxProblems:         *maxProblems,
		PublicKeys:          keys,
		AllowUnsignedBefore: cutoff,
		Progress: func(p verify.Progress) {
			if now := time.Now(); now.Sub(last) >= 2*time.Second {
				last = now
				fmt.Fprintf(stderr, "verify: %d seals, %d rows checked, %d problems so far (%s)\n",
					p.Seals, p.Rows, p.Problems, now.Sub(start).Round(time.Second))
			}
		},
	})
	if err != nil {
		fmt.Fprintf(stderr, "wechat-relay verify: %v\n", err)
		return verifyFailed
	}
	audit, err := relay.VerifyAuditWith(ctx, a, relay.AuditVerifyOptions{
		Witnesses: auditSeals, PublicKeys: keys, AllowUnsignedBefore: cutoff,
	})
	if err != nil {
		fmt.Fprintf(stderr, "wechat-relay verify: %v\n", err)
		return verifyFailed
	}
	dir, err := relay.VerifyDirectory(ctx, a, relay.DirectoryVerifyOptions{PublicKeys: keys, AllowUnsignedBefore: cutoff})
	if err != nil {
		fmt.Fprintf(stderr, "wechat-relay verify: %v\n", err)
		return verifyFailed
	}
	holds, reviews, err := verifyHoldsAndReviews(ctx, a, relay.DirectoryVerifyOptions{PublicKeys: keys, AllowUnsignedBefore: cutoff})
	if err != nil {
		fmt.Fprintf(stderr, "wechat-relay verify: %v\n", err)
		return verifyFailed
	}
	profiles, tags, err := verifyProfiles(ctx, a, relay.DirectoryVerifyOptions{PublicKeys: keys})
	if err != nil {
		fmt.Fprintf(stderr, "wechat-relay verify: %v\n", err)
		return verifyFailed
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(struct {
			Archive string `json:"archive"`
			*verify.Report
			Audit     *relay.AuditReport     `json:"audit"`
			Directory *relay.DirectoryReport `json:"directory"`
			Holds     *relay.RecordReport    `json:"holds"`
			Reviews   *relay.RecordReport    `json:"reviews"`
			Profiles  *relay.RecordReport    `json:"profiles"`
			Tags      *relay.RecordReport    `json:"tags"`
		}{name, rep, audit, dir, holds, reviews, profiles, tags}); err != nil {
			fmt.Fprintf(stderr, "wechat-relay verify: %v\n", err)
			return verifyFailed
		}
	} else {
		printVerifyReport(stdout, name, rep, time.Since(start))
		printAuditReport(stdout, audit)
		printDirectoryReport(stdout, dir)
		printRecordReport(stdout, "legal hold", "hold", holds)
		printRecordReport(stdout, "alert review", "review", reviews)
		printRecordReport(stdout, "client profile", "profile", profiles)
		printRecordReport(stdout, "tag list", "tags", tags)
	}
	if !rep.OK || !audit.OK || !dir.OK || !holds.OK || !reviews.OK || !profiles.OK || !tags.OK {
		return verifyProblems
	}
	return verifyOK
}

// verifyHoldsAndReviews checks a's legal holds and alert reviews.
func verifyHoldsAndReviews(ctx context.Context, a any, opt relay.DirectoryVerifyOptions) (holds, reviews *relay.RecordReport, err error) {
	hs, ok := a.(relay.HoldSource)
	rs, ok2 := a.(relay.ReviewSource)
	if !ok || !ok2 {
		return nil, nil, fmt.Errorf("this archive keeps no legal holds or reviews")
	}
	if holds, err = relay.VerifyHolds(ctx, hs, opt); err != nil {
		return nil, nil, err
	}
	if reviews, err = relay.VerifyReviews(ctx, rs, opt); err != nil {
		return nil, nil, err
	}
	return holds, reviews, nil
}

// verifyProfiles checks a's client profiles and tag vocabularies.
func verifyProfiles(ctx context.Context, a any, opt relay.DirectoryVerifyOptions) (profiles, tags *relay.RecordReport, err error) {
	src, ok := a.(relay.ProfileSource)
	if !ok {
		return nil, nil, fmt.Errorf("this archive keeps no client profiles")
	}
	return relay.VerifyProfiles(ctx, src, opt)
}

// printRecordReport writes the part of verify's report of one kind of
// signed record (legal holds, alert reviews), as the directory's.
func printRecordReport(w io.Writer, what, word string, rep *relay.RecordReport) {
	fmt.Fprintf(w, "\n%ss: %d chains, %d versions intact, %d matched with their audit record, %d legacy (unsigned, accepted)\n",
		what, rep.Chains, rep.Records, rep.Audited, rep.Legacy)
	printSignatures(w, what, rep.Signatures)
	for _, p := range rep.Problems {
		fmt.Fprintf(w, "  %-14s %-9s %s: %s\n", p.Kind, word, p.ID, p.Detail)
	}
	if rep.OK {
		fmt.Fprintf(w, "\nOK: every %s intact, chained, and matched with its audit record\n", what)
	} else {
		fmt.Fprintf(w, "\nFAILED: the %ss do not verify (%d problems)\n", what, len(rep.Problems))
	}
}

// printDirectoryReport writes the directory's part of verify's report.
func printDirectoryReport(w io.Writer, rep *relay.DirectoryReport) {
	fmt.Fprintf(w, "\ndirectory: %d entries, %d versions intact, %d matched with their admin audit record, %d legacy (unsigned, accepted), %d legacy pins\n",
		rep.Entries, rep.Records, rep.Audited, rep.Legacy, rep.Pins)
	printSignatures(w, "directory record", rep.Signatures)
	for _, p := range rep.Problems {
		fmt.Fprintf(w, "  %-14s directory %s: %s\n", p.Kind, p.ID, p.Detail)
	}
	if rep.OK {
		fmt.Fprintf(w, "\nOK: every directory version intact, chained, and matched with its admin audit record\n")
	} else {
		fmt.Fprintf(w, "\nFAILED: the directory does not verify (%d problems)\n", len(rep.Problems))
	}
}

// printVerifyReport writes rep for people: the chains, the totals, the
// conversations with problems, every listed problem, the witnesses, and
// the verdict last.
func printVerifyReport(w io.Writer, name string, rep *verify.Report, took time.Duration) {
	fmt.Fprintf(w, "archive %s\n\n", name)
	if len(rep.Chains) == 0 {
		fmt.Fprintln(w, "no seals")
	} else {
		fmt.Fprintln(w, "seal chains (writer/stream: seals, rows, latest seal)")
		for _, c := range rep.Chains {
			fmt.Fprintf(w, "  %s/%s: seals %d..%d (%d), %d rows, latest %s at %s\n",
				c.Writer, c.Stream, c.First, c.Last, c.Seals, c.Rows, c.LastHash, c.LastAt.UTC().Format(time.RFC3339))
		}
	}
	fmt.Fprintf(w, "\nchecked %d seals: %d messages and %d events intact (%s)\n", rep.Seals, rep.Messages, rep.Events, took.Round(time.Millisecond))
	printSignatures(w, "seal", rep.Signatures)

	if len(rep.Conversations) > 0 {
		fmt.Fprintln(w, "\nconversations with problems (missing, altered, inserted)")
		for _, c := range rep.Conversations {
			fmt.Fprintf(w, "  %s: %d missing, %d altered, %d inserted\n", c.Conv, c.Missing, c.Altered, c.Inserted)
		}
	}
	if n := problemCount(rep.Counts); n > 0 {
		kinds := make([]string, 0, len(rep.Counts))
		for k := range rep.Counts {
			kinds = append(kinds, string(k))
		}
		sort.Strings(kinds)
		var parts []string
		for _, k := range kinds {
			parts = append(parts, fmt.Sprintf("%s %d", k, rep.Counts[relay.ProblemKind(k)]))
		}
		fmt.Fprintf(w, "\nproblems: %d (%s)\n", n, strings.Join(parts, ", "))
		for _, p := range rep.Problems {
			fmt.Fprintf(w, "  %-14s %-8s %s", p.Kind, p.Table, p.ID)
			if p.Conv != "" {
				fmt.Fprintf(w, "  conv %s", p.Conv)
			}
			if p.Batch != "" {
				fmt.Fprintf(w, "  batch %s", p.Batch)
			}
			fmt.Fprintf(w, ": %s\n", p.Detail)
		}
		if len(rep.Problems) < n {
			fmt.Fprintf(w, "  ... and %d more (raise -max-problems to list them)\n", n-len(rep.Problems))
		}
	}
	for _, wr := range rep.Witnesses {
		if wr.Found {
			fmt.Fprintf(w, "\nwitnessed seal %s: found, intact (%s)\n", wr.Hash, wr.Seal)
		} else {
			fmt.Fprintf(w, "\nwitnessed seal %s: NOT FOUND\n", wr.Hash)
		}
	}
	if rep.OK {
		signed := ""
		if sr := rep.Signatures; sr.Checked {
			signed = ", every seal is signed by a given key"
			if sr.UnsignedAllowed > 0 {
				signed = fmt.Sprintf(", every seal is signed by a given key but %d unsigned ones made before %s", sr.UnsignedAllowed, sr.AllowUnsignedBefore.Format(time.RFC3339))
			}
		}
		fmt.Fprintf(w, "\nOK: every row is covered by an intact seal, every chain is unbroken%s\n", signed)
	} else {
		fmt.Fprintln(w, "\nFAILED: the archive does not verify")
	}
}

// printSignatures writes what the signatures of the seals (or audit
// records: what) are: counted only, without public keys; checked, with
// them.
func printSignatures(w io.Writer, what string, sr relay.SignatureReport) {
	if !sr.Checked {
		fmt.Fprintf(w, "%s signatures: %d signed, %d unsigned (not checked: give -public-key FILE to check them", what, sr.Signed, sr.Unsigned)
		if len(sr.ByKey) > 0 {
			ids := make([]string, 0, len(sr.ByKey))
			for id := range sr.ByKey {
				ids = append(ids, id)
			}
			sort.Strings(ids)
			fmt.Fprintf(w, "; key ids %s", strings.Join(ids, ", "))
		}
		fmt.Fprintln(w, ")")
		return
	}
	fmt.Fprintf(w, "%s signatures, checked with key ids %s: %d valid, %d bad, %d by an unknown key, %d unsigned",
		what, strings.Join(sr.Keys, ", "), sr.Valid, sr.Bad, sr.UnknownKey, sr.Unsigned)
	if sr.AllowUnsignedBefore != nil {
		fmt.Fprintf(w, " (%d allowed: made before %s; %d refused)", sr.UnsignedAllowed, sr.AllowUnsignedBefore.Format(time.RFC3339), sr.UnsignedRefused)
	} else if sr.Unsigned > 0 {
		fmt.Fprint(w, " (refused: -allow-unsigned-before TIME accepts those written before signing was turned on)")
	}
	fmt.Fprintln(w)
}

func problemCount(counts map[relay.ProblemKind]int) int {
	n := 0
	for _, c := range counts {
		n += c
	}
	return n
}
