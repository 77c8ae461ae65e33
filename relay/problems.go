package relay

import "time"

// The language the archive's checks speak: the seals' (relay/verify)
// and the audit log's (VerifyAudit, audit.go) both report missing,
// altered and inserted records, broken chains and signatures in these
// terms.

// ProblemKind says what a check found wrong.
type ProblemKind string

// The problems the checks report.
const (
	// ProblemMissing: a row a seal lists is not in the archive.
	ProblemMissing ProblemKind = "missing"
	// ProblemAltered: a row's content is not what its seal recorded, or
	// differs from its own hash column, or two stored copies of one id
	// differ.
	ProblemAltered ProblemKind = "altered"
	// ProblemInserted: a row no seal covers — without a batch id, with a
	// batch id no seal has, not listed by its batch's seal, or in the
	// wrong table for its batch.
	ProblemInserted ProblemKind = "inserted"
	// ProblemSealAltered: a seal's content does not match its own hash,
	// root or count, its id does not match its place, or two different
	// seals share one place.
	ProblemSealAltered ProblemKind = "seal_altered"
	// ProblemSealMissing: a chain skips numbers (seals deleted), or
	// starts after 1.
	ProblemSealMissing ProblemKind = "seal_missing"
	// ProblemChainBroken: a seal's prev is not the hash of the seal
	// before it (a seal altered and re-hashed, or inserted).
	ProblemChainBroken ProblemKind = "chain_broken"
	// ProblemWitnessMissing: a seal hash an outside witness kept is not
	// in the archive (seals removed or rewritten).
	ProblemWitnessMissing ProblemKind = "witness_missing"
	// ProblemBadSignature: a seal is signed by one of the given public
	// keys, and the signature does not verify (or is malformed): the
	// seal was rewritten by someone without the private key. Only when
	// public keys are given (verify.Options.PublicKeys).
	ProblemBadSignature ProblemKind = "bad_signature"
	// ProblemUnknownKey: a seal is signed by a key that is not among the
	// given public keys. Only when public keys are given.
	ProblemUnknownKey ProblemKind = "unknown_key"
	// ProblemUnsigned: a seal carries no signature, and
	// AllowUnsignedBefore does not cover it. Only when public keys are
	// given.
	ProblemUnsigned ProblemKind = "unsigned"
)

// SignatureReport sums up the seals' signatures. Without public keys
// (Checked false) it only counts; with them, every signature is checked
// and every seal must be signed by one of them, but for unsigned seals
// AllowUnsignedBefore covers.
type SignatureReport struct {
	Signed   int `json:"signed"`   // seals that carry a signature
	Unsigned int `json:"unsigned"` // seals that carry none
	// ByKey counts the signed seals per key id.
	ByKey map[string]int `json:"by_key,omitempty"`

	Checked bool     `json:"checked"`        // public keys were given
	Keys    []string `json:"keys,omitempty"` // the ids of the given public keys
	// AllowUnsignedBefore is the check's AllowUnsignedBefore option, if
	// set.
	AllowUnsignedBefore *time.Time `json:"allow_unsigned_before,omitempty"`
	Valid               int        `json:"valid"`            // signed by a given key, and verified
	Bad                 int        `json:"bad"`              // signed by a given key, and not verified
	UnknownKey          int        `json:"unknown_key"`      // signed by a key not given
	UnsignedAllowed     int        `json:"unsigned_allowed"` // unsigned, covered by AllowUnsignedBefore
	UnsignedRefused     int        `json:"unsigned_refused"` // unsigned, and reported
}

// WitnessReport says whether a witnessed seal hash was found.
type WitnessReport struct {
	Hash  string `json:"hash"`
	Found bool   `json:"found"`
	Seal  string `json:"seal,omitempty"` // its id, when found
}
