package relay

import (
	"cmp"
	"crypto/ed25519"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Signed, chained records of the tables, besides the directory, that
// change what is kept or who sees what: legal holds (hold_sign.go) and
// alert reviews (review_sign.go). They follow the directory's scheme
// (directory_sign.go): each version of a record carries a RecordSeal —
// its Version within its chain (a hold id, a hit id), the Hash of its
// canonical encoding, the PrevHash of the version it follows, and the
// writer's seal-key signature of the Hash:
//
//	message = "wechat-relay/<kind>-signature/v1" || 0x00 || Hash
//
// and the compliance audit record written before the version is archived
// (signed too) ends its Detail with " [<kind> <chain-id> v<version> <hash>]"
// (recordAuditDetail), which only a holder of the key can write.
//
// judgeChains (below) is the one check both the relay, when it uses the
// records, and `wechat-relay verify` apply.

// RecordSeal makes one version of a hold or review tamper-evident.
type RecordSeal struct {
	// Version is 1, 2, ... within the record's chain; 0 for a record
	// stored before records were signed (legacy).
	Version   uint64 `json:"version"`
	PrevHash  string `json:"prev_hash,omitempty"`
	Hash      string `json:"hash,omitempty"`
	KeyID     string `json:"key_id,omitempty"`
	Signature string `json:"signature,omitempty"`
}

// Signed reports whether s carries a signature (valid or not).
func (s RecordSeal) Signed() bool { return s.KeyID != "" || s.Signature != "" }

// recordKind names one kind of signed record.
type recordKind struct {
	name   string // "hold", "review": the audit marker's and the problems' word
	sigTag string // the signature's domain separation
	action string // the audit action of the record's audit record
}

// sign sets seal's KeyID and Signature for its Hash; a nil signer leaves
// it unsigned.
func (s *SealSigner) signRecord(k recordKind, seal *RecordSeal) {
	if s == nil {
		return
	}
	seal.KeyID = s.id
	seal.Signature = s.signature(signedMessage(k.sigTag, seal.Hash))
}

// recordAuditDetail is detail followed by the marker that ties an audit
// record to the version it records: " [KIND ID vVERSION HASH]".
func recordAuditDetail(detail, kind, id string, version uint64, hash string) string {
	return fmt.Sprintf("%s [%s %s v%d %s]", detail, kind, id, version, hash)
}

// auditedRecord reads the marker of recordAuditDetail of kind in detail.
func auditedRecord(detail, kind string) (id string, version uint64, hash string, ok bool) {
	marker := " [" + kind + " "
	i := strings.LastIndex(detail, marker)
	if i < 0 || !strings.HasSuffix(detail, "]") {
		return "", 0, "", false
	}
	if n, err := fmt.Sscanf(detail[i+len(marker):len(detail)-1], "%s v%d %s", &id, &version, &hash); err != nil || n != 3 {
		return "", 0, "", false
	}
	return id, version, hash, true
}

// chained is one stored version as judgeChains sees it.
type chained struct {
	Chain    string // the hold id, the hit id
	Seal     RecordSeal
	Computed string // the hash of its content
	At       time.Time
	// Legacy: unsigned and stored before signing, and of a kind that
	// cannot take anything away (a hold placed): accepted unchecked.
	Legacy bool
}

// name is how problems name the version: "KIND:ID vN".
func (c chained) name(k recordKind) string {
	return fmt.Sprintf("%s:%s v%d", k.name, c.Chain, c.Seal.Version)
}

// verdict is what judgeChains found of one version: Kind "" when it
// counts.
type verdict struct {
	Kind   ProblemKind
	Detail string
}

// judgeChains checks each of recs (any order): its hash, its signature
// by one of keys (without keys nothing is checked: every version counts),
// its place in its chain (PrevHash the hash of a counting version before
// it; "" for version 1 or a chain starting at a legacy version 0), and,
// by audited, that a signed audit record names its hash. The verdicts
// are in recs' order.
func judgeChains(k recordKind, recs []chained, keys map[string]ed25519.PublicKey, audited func(hash string) bool) []verdict {
	out := make([]verdict, len(recs))
	if len(keys) == 0 {
		return out
	}
	byChain := map[string][]int{}
	for i, r := range recs {
		byChain[r.Chain] = append(byChain[r.Chain], i)
	}
	for _, idx := range byChain {
		slices.SortStableFunc(idx, func(a, b int) int { return cmp.Compare(recs[a].Seal.Version, recs[b].Seal.Version) })
		counting := map[uint64][]string{} // version -> hashes of its counting records
		for _, i := range idx {
			r := recs[i]
			out[i] = judgeOne(k, r, keys, counting, audited)
			if out[i].Kind == "" {
				counting[r.Seal.Version] = append(counting[r.Seal.Version], r.Computed)
			}
		}
	}
	return out
}

func judgeOne(k recordKind, r chained, keys map[string]ed25519.PublicKey, counting map[uint64][]string, audited func(string) bool) verdict {
	if r.Seal.Hash != "" && r.Seal.Hash != r.Computed {
		return verdict{ProblemAltered, "its hash column does not match its content"}
	}
	if !r.Seal.Signed() {
		if r.Legacy {
			return verdict{}
		}
		return verdict{ProblemUnsigned, "not signed"}
	}
	switch checkSignature(r.Seal.KeyID, r.Seal.Signature, signedMessage(k.sigTag, r.Seal.Hash), keys) {
	case SignatureValid:
	case SignatureUnknownKey:
		return verdict{ProblemUnknownKey, fmt.Sprintf("signed by key %q, which is not trusted", r.Seal.KeyID)}
	default:
		return verdict{ProblemBadSignature, fmt.Sprintf("its signature by key %s does not verify", r.Seal.KeyID)}
	}
	prev := counting[r.Seal.Version-1]
	switch {
	case r.Seal.Version == 0:
		return verdict{ProblemChainBroken, "a signed record has version 0"}
	case r.Seal.Version == 1 && r.Seal.PrevHash != "" && !slices.Contains(counting[0], r.Seal.PrevHash):
		return verdict{ProblemChainBroken, "the first version follows a record that is not in the archive"}
	case r.Seal.Version > 1 && !slices.Contains(prev, r.Seal.PrevHash):
		return verdict{ProblemChainBroken, "its prev_hash is not the hash of the version before it"}
	}
	if !audited(r.Seal.Hash) {
		return verdict{ProblemInserted, fmt.Sprintf("no signed %s audit record names this version", k.action)}
	}
	return verdict{}
}

// chainHead is the hash and version of the newest counting version of
// chain among recs (judged by v), for the next version to follow.
func chainHead(recs []chained, v []verdict, chain string) (version uint64, hash string) {
	for i, r := range recs {
		if r.Chain != chain || v[i].Kind != "" {
			continue
		}
		if hash == "" || r.Seal.Version >= version {
			version, hash = r.Seal.Version, r.Computed
		}
	}
	return version, hash
}
