package relay

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"slices"
)

// VerifyHolds and VerifyReviews check the signed records of
// record_seal.go as VerifyDirectory checks the directory: every
// version's hash and, with keys, its signature, its chain (versions
// dense from 1, prev_hash the hash of the version before), its signed
// audit record, and every audit record that names a version matched
// with it, so a version deleted from the archive shows up. Problems
// name the version "KIND:ID vVERSION" (hold:hold-1 v2, review:hit-… v1).

// HoldSource is the archive as VerifyHolds reads it.
type HoldSource interface {
	HoldRecords(ctx context.Context) ([]Hold, error)
	AuditStore
}

// ReviewSource is the archive as VerifyReviews reads it.
type ReviewSource interface {
	// AllReviews returns every stored review, identical copies once.
	AllReviews(ctx context.Context) ([]AlertReview, error)
	AuditStore
}

// RecordReport is what VerifyHolds or VerifyReviews found, in the
// directory's terms (DirectoryProblem).
type RecordReport struct {
	OK         bool               `json:"ok"`
	Records    int                `json:"records"` // versions intact
	Chains     int                `json:"chains"`  // holds, or hits reviewed
	Legacy     int                `json:"legacy"`  // unsigned versions accepted
	Audited    int                `json:"audited"` // versions matched with their audit record
	Problems   []DirectoryProblem `json:"problems"`
	Signatures SignatureReport    `json:"signatures"`
}

// VerifyHolds checks every stored hold version of src.
func VerifyHolds(ctx context.Context, src HoldSource, opt DirectoryVerifyOptions) (*RecordReport, error) {
	holds, err := src.HoldRecords(ctx)
	if err != nil {
		return nil, fmt.Errorf("verify: reading legal holds: %w", err)
	}
	recs := make([]chained, len(holds))
	for i, h := range holds {
		recs[i] = h.chained()
	}
	return verifyRecords(ctx, holdKind, recs, src, opt)
}

// VerifyReviews checks every stored review of src. Unsigned reviews
// made before opt.AllowUnsignedBefore pass as legacy.
func VerifyReviews(ctx context.Context, src ReviewSource, opt DirectoryVerifyOptions) (*RecordReport, error) {
	revs, err := src.AllReviews(ctx)
	if err != nil {
		return nil, fmt.Errorf("verify: reading reviews: %w", err)
	}
	recs := make([]chained, len(revs))
	for i, r := range revs {
		recs[i] = r.chained()
		recs[i].Legacy = r.Version == 0 && !opt.AllowUnsignedBefore.IsZero() && r.At.Before(opt.AllowUnsignedBefore)
	}
	return verifyRecords(ctx, reviewKind, recs, src, opt)
}

func verifyRecords(ctx context.Context, k recordKind, recs []chained, audit AuditStore, opt DirectoryVerifyOptions) (*RecordReport, error) {
	rep := &RecordReport{Problems: []DirectoryProblem{}}
	sr := &rep.Signatures
	keys := map[string]ed25519.PublicKey{}
	for _, pub := range opt.PublicKeys {
		if id := SealKeyID(pub); keys[id] == nil {
			keys[id] = pub
			sr.Keys = append(sr.Keys, id)
		}
	}
	sr.Checked = len(keys) > 0
	add := func(kind ProblemKind, id, detail string) {
		if len(rep.Problems) < maxAuditProblems {
			rep.Problems = append(rep.Problems, DirectoryProblem{Kind: kind, ID: id, Detail: detail})
		}
	}
	audits := map[string]AuditEntry{} // by the hash of the version they name
	err := audit.ScanAudit(ctx, func(e AuditEntry) error {
		if _, _, hash, ok := auditedRecord(e.Detail, k.name); ok && e.Action == k.action {
			if !sr.Checked || CheckAuditSignature(e, keys) == SignatureValid {
				audits[hash] = e
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("verify: reading the audit log: %w", err)
	}
	v := judgeChains(k, recs, keys, func(h string) bool { _, ok := audits[h]; return ok })
	seen := map[string]bool{}
	versions := map[string][]uint64{}
	for i, r := range recs {
		seen[r.Computed] = true
		versions[r.Chain] = append(versions[r.Chain], r.Seal.Version)
		countSignature(sr, r, keys, v[i].Kind)
		if v[i].Kind == "" && !sr.Checked && r.Seal.Hash != "" && r.Seal.Hash != r.Computed {
			v[i] = verdict{ProblemAltered, "its hash column does not match its content"}
		}
		if v[i].Kind != "" {
			add(v[i].Kind, r.name(k), v[i].Detail)
			continue
		}
		rep.Records++
		switch {
		case !r.Seal.Signed():
			rep.Legacy++
		case audits[r.Seal.Hash].ID != "":
			rep.Audited++
		}
	}
	for chain, vs := range versions {
		rep.Chains++
		slices.Sort(vs)
		vs = slices.Compact(vs)
		if vs[0] == 0 {
			vs = vs[1:]
		}
		for i, got := range vs {
			if want := uint64(i + 1); got != want {
				add(ProblemSealMissing, fmt.Sprintf("%s:%s v%d", k.name, chain, got), fmt.Sprintf("versions before %d of %s:%s are missing", got, k.name, chain))
				break
			}
		}
	}
	for h, e := range audits {
		if !seen[h] {
			id, version, _, _ := auditedRecord(e.Detail, k.name)
			add(ProblemMissing, e.ID, fmt.Sprintf("%s audit record of %s:%s version %d, which is not in the archive (deleted?)", k.action, k.name, id, version))
		}
	}
	rep.OK = len(rep.Problems) == 0
	return rep, nil
}

// countSignature tallies r's signature in sr; kind is its verdict.
func countSignature(sr *SignatureReport, r chained, keys map[string]ed25519.PublicKey, kind ProblemKind) {
	if !r.Seal.Signed() {
		sr.Unsigned++
		switch {
		case r.Legacy && sr.Checked:
			sr.UnsignedAllowed++
		case sr.Checked:
			sr.UnsignedRefused++
		}
		return
	}
	sr.Signed++
	if sr.ByKey == nil {
		sr.ByKey = map[string]int{}
	}
	sr.ByKey[r.Seal.KeyID]++
	if !sr.Checked {
		return
	}
	switch kind {
	case ProblemBadSignature:
		sr.Bad++
	case ProblemUnknownKey:
		sr.UnknownKey++
	case ProblemAltered:
	default:
		sr.Valid++
	}
}
