package relay

import (
	"cmp"
	"context"
	"crypto/ed25519"
	"fmt"
	"slices"
	"time"
)

// VerifyDirectory checks the directory's records (directory_sign.go) as
// `wechat-relay verify` does the seals and the audit log: every record's
// hash and signature, each entry's chain with its versions dense from 1,
// each signed record matched with the admin audit record that names it,
// and each admin audit record that names a version matched with its
// record, so a version deleted from the archive (the newest one too)
// shows up.

// DirectorySource is the archive as VerifyDirectory reads it.
type DirectorySource interface {
	DirectoryStore
	AuditStore
}

// DirectoryReport is what VerifyDirectory found.
type DirectoryReport struct {
	OK       bool               `json:"ok"`
	Records  int                `json:"records"` // intact records (entries' versions)
	Entries  int                `json:"entries"` // (kind, id) pairs
	Legacy   int                `json:"legacy"`  // unsigned records accepted: pinned, or before AllowUnsignedBefore
	Audited  int                `json:"audited"` // records matched with their admin audit record
	Pins     int                `json:"pins"`    // legacy pins (kind "legacy")
	Problems []DirectoryProblem `json:"problems"`
	// Signatures sums up the records' signatures, as AuditReport's.
	Signatures SignatureReport `json:"signatures"`
}

// DirectoryProblem is one thing wrong in the directory, in the terms of
// the seals' and the audit log's problems: ProblemAltered (hash column
// and content differ), ProblemBadSignature, ProblemUnknownKey,
// ProblemUnsigned, ProblemChainBroken (prev_hash is not the hash of a
// version before), ProblemSealMissing (versions skipped), ProblemInserted
// (a signed version no admin audit record names), ProblemMissing (an
// admin audit record names a version that is not in the archive). ID is
// "KIND:ID vVERSION", or the audit record's id.
type DirectoryProblem struct {
	Kind   ProblemKind `json:"kind"`
	ID     string      `json:"id"`
	Detail string      `json:"detail"`
}

// DirectoryVerifyOptions tunes VerifyDirectory.
type DirectoryVerifyOptions struct {
	// PublicKeys, if any, are the instances' seal keys: every record
	// must then be signed by one of them, but legacy ones (listed by a
	// valid pin, or made before AllowUnsignedBefore).
	PublicKeys          []ed25519.PublicKey
	AllowUnsignedBefore time.Time
}

// VerifyDirectory checks every directory record of src, and the admin
// audit records that name them.
func VerifyDirectory(ctx context.Context, src DirectorySource, opt DirectoryVerifyOptions) (*DirectoryReport, error) {
	rep := &DirectoryReport{Problems: []DirectoryProblem{}}
	keys := map[string]ed25519.PublicKey{}
	for _, k := range opt.PublicKeys {
		id := SealKeyID(k)
		if _, dup := keys[id]; !dup {
			keys[id] = k
			rep.Signatures.Keys = append(rep.Signatures.Keys, id)
		}
	}
	sr := &rep.Signatures
	sr.Checked = len(keys) > 0
	if sr.Checked && !opt.AllowUnsignedBefore.IsZero() {
		t := opt.AllowUnsignedBefore.UTC()
		sr.AllowUnsignedBefore = &t
	}
	add := func(k ProblemKind, id, detail string) {
		if len(rep.Problems) < maxAuditProblems {
			rep.Problems = append(rep.Problems, DirectoryProblem{Kind: k, ID: id, Detail: detail})
		}
	}
	recs, err := src.DirectoryRecords(ctx)
	if err != nil {
		return nil, fmt.Errorf("verify: reading the directory: %w", err)
	}
	// The admin audit records that name a version, by the version's hash.
	audits := map[string]AuditEntry{}
	err = src.ScanAudit(ctx, func(e AuditEntry) error {
		if _, _, _, hash, ok := AuditedVersion(e); ok {
			if !sr.Checked || CheckAuditSignature(e, keys) == SignatureValid {
				audits[hash] = e
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("verify: reading the audit log: %w", err)
	}

	pinned := map[string]bool{}
	groups := map[recordKey][]DirectoryRecord{}
	for _, r := range recs {
		if r.Kind != DirLegacy {
			groups[recordKey{r.Kind, r.ID}] = append(groups[recordKey{r.Kind, r.ID}], r)
			continue
		}
		rep.Pins++
		name := fmt.Sprintf("%s:%s v%d", r.Kind, r.ID, r.Version)
		if !verifySignature(rep, keys, r, name, add) {
			continue
		}
		hashes, err := decodePin(r.Data)
		if err != nil {
			add(ProblemAltered, name, err.Error())
			continue
		}
		for _, h := range hashes {
			pinned[h] = true
		}
	}
	seen := map[string]bool{}
	for k, g := range groups {
		rep.Entries++
		slices.SortFunc(g, func(a, b DirectoryRecord) int { return cmp.Compare(a.Version, b.Version) })
		byVersion := map[uint64][]string{}
		var want uint64 = 1
		for _, r := range g {
			name := fmt.Sprintf("%s:%s v%d", k.kind, k.id, r.Version)
			h := r.ComputeHash()
			seen[h] = true
			if r.Version > want {
				add(ProblemSealMissing, name, fmt.Sprintf("versions %d..%d of %s:%s are missing", want, r.Version-1, k.kind, k.id))
			}
			want = max(want, r.Version+1)
			byVersion[r.Version] = append(byVersion[r.Version], h)
			if r.Hash != "" && r.Hash != h {
				add(ProblemAltered, name, "content does not match its hash")
				continue
			}
			if !r.Signed() {
				sr.Unsigned++
				if pinned[h] || (!opt.AllowUnsignedBefore.IsZero() && r.At.Before(opt.AllowUnsignedBefore)) {
					rep.Legacy++
					if sr.Checked {
						sr.UnsignedAllowed++
					}
				} else if sr.Checked {
					sr.UnsignedRefused++
					add(ProblemUnsigned, name, "not signed, and not a legacy record (pinned, or made before -allow-unsigned-before)")
					continue
				}
				// Written since 0008 by a relay without a key: its
				// audit record names it all the same.
				if r.Hash != "" && !matchAudit(rep, audits, h, name, add) {
					continue
				}
				rep.Records++
				continue
			}
			if !verifySignature(rep, keys, r, name, add) {
				continue
			}
			bad := false
			if prev := byVersion[r.Version-1]; r.Version == 1 && r.PrevHash != "" {
				add(ProblemChainBroken, name, "the first version has a prev_hash")
				bad = true
			} else if r.Version > 1 && !slices.Contains(prev, r.PrevHash) {
				add(ProblemChainBroken, name, "prev_hash is not the hash of the version before it")
				bad = true
			}
			if !matchAudit(rep, audits, h, name, add) {
				bad = true
			}
			if !bad {
				rep.Records++
			}
		}
	}
	for h, e := range audits {
		if !seen[h] {
			kind, id, version, _, _ := AuditedVersion(e)
			add(ProblemMissing, e.ID, fmt.Sprintf("admin audit record of %s:%s version %d, which is not in the directory (deleted?)", kind, id, version))
		}
	}
	rep.OK = len(rep.Problems) == 0
	return rep, nil
}

// matchAudit reports whether an admin audit record names the version of
// hash h, and counts it; a problem if not.
func matchAudit(rep *DirectoryReport, audits map[string]AuditEntry, h, name string, add func(ProblemKind, string, string)) bool {
	if _, ok := audits[h]; ok {
		rep.Audited++
		return true
	}
	add(ProblemInserted, name, "no admin audit record (validly signed, with keys) names this version: written behind the relay's back, or its audit record was lost")
	return false
}

// verifySignature counts r's signature and, with keys, checks it; it
// reports whether r passes.
func verifySignature(rep *DirectoryReport, keys map[string]ed25519.PublicKey, r DirectoryRecord, name string, add func(ProblemKind, string, string)) bool {
	sr := &rep.Signatures
	if r.Signed() {
		sr.Signed++
		if sr.ByKey == nil {
			sr.ByKey = map[string]int{}
		}
		sr.ByKey[r.KeyID]++
	}
	if !sr.Checked {
		return true
	}
	if r.Hash != r.ComputeHash() {
		add(ProblemAltered, name, "content does not match its hash")
		return false
	}
	switch CheckDirectorySignature(r, keys) {
	case SignatureValid:
		sr.Valid++
		return true
	case SignatureUnknownKey:
		sr.UnknownKey++
		add(ProblemUnknownKey, name, fmt.Sprintf("signed by key %q, which is not among the public keys given", r.KeyID))
	case SignatureUnsigned:
		sr.UnsignedRefused++
		add(ProblemUnsigned, name, "not signed")
	default:
		sr.Bad++
		add(ProblemBadSignature, name, fmt.Sprintf("its signature by key %s does not verify", r.KeyID))
	}
	return false
}
