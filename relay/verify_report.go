package relay

import "time"

// What Verify reports (verify.go). ProblemKind, SignatureReport and
// WitnessReport are shared with the audit log's check (VerifyAudit,
// audit.go): both speak the same language of missing, altered and
// inserted records, broken chains and signatures.

// ProblemKind says what Verify found wrong.
type ProblemKind string

// The problems Verify reports.
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
	// VerifyOptions.PublicKeys are given.
	ProblemBadSignature ProblemKind = "bad_signature"
	// ProblemUnknownKey: a seal is signed by a key that is not among the
	// given public keys. Only when VerifyOptions.PublicKeys are given.
	ProblemUnknownKey ProblemKind = "unknown_key"
	// ProblemUnsigned: a seal carries no signature, and
	// VerifyOptions.AllowUnsignedBefore does not cover it. Only when
	// VerifyOptions.PublicKeys are given.
	ProblemUnsigned ProblemKind = "unsigned"
)

// Problem is one thing Verify found wrong.
type Problem struct {
	Kind   ProblemKind    `json:"kind"`
	Table  string         `json:"table"` // messages, events or seals
	ID     string         `json:"id"`    // the row's id, or the seal's
	Conv   ConversationID `json:"conv,omitempty"`
	Batch  string         `json:"batch,omitempty"` // the batch (seal id) the row belongs to
	Detail string         `json:"detail"`
}

// ChainReport sums up one verified chain.
type ChainReport struct {
	Writer   string    `json:"writer"`
	Stream   string    `json:"stream"`
	Seals    int       `json:"seals"`
	First    uint64    `json:"first"` // number of the first seal found
	Last     uint64    `json:"last"`  // number of the last seal found
	LastHash string    `json:"last_hash"`
	LastAt   time.Time `json:"last_at"`
	Rows     int       `json:"rows"` // rows its seals list
	// Signed and Unsigned count its seals with and without a signature
	// (whether or not public keys were given to check them).
	Signed   int `json:"signed"`
	Unsigned int `json:"unsigned"`
}

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
	// AllowUnsignedBefore is VerifyOptions.AllowUnsignedBefore, if set.
	AllowUnsignedBefore *time.Time `json:"allow_unsigned_before,omitempty"`
	Valid               int        `json:"valid"`            // signed by a given key, and verified
	Bad                 int        `json:"bad"`              // signed by a given key, and not verified
	UnknownKey          int        `json:"unknown_key"`      // signed by a key not given
	UnsignedAllowed     int        `json:"unsigned_allowed"` // unsigned, covered by AllowUnsignedBefore
	UnsignedRefused     int        `json:"unsigned_refused"` // unsigned, and reported
}

// ConvReport counts a conversation's problems.
type ConvReport struct {
	Conv     ConversationID `json:"conv"`
	Missing  int            `json:"missing"`
	Altered  int            `json:"altered"`
	Inserted int            `json:"inserted"`
}

// WitnessReport says whether a witnessed seal hash was found.
type WitnessReport struct {
	Hash  string `json:"hash"`
	Found bool   `json:"found"`
	Seal  string `json:"seal,omitempty"` // its id, when found
}

// VerifyReport is what Verify found.
type VerifyReport struct {
	// OK is true when nothing is wrong: every row is covered by a seal
	// that lists it with its content, every seal is intact, every chain
	// runs unbroken from 1, and every witnessed seal is there.
	OK     bool          `json:"ok"`
	Chains []ChainReport `json:"chains"`
	Seals  int           `json:"seals"`
	// Messages and Events count the sealed rows found intact.
	Messages int `json:"messages"`
	Events   int `json:"events"`
	// Counts holds the number of problems of each kind; Problems lists
	// them, up to VerifyOptions.MaxProblems.
	Counts        map[ProblemKind]int `json:"counts"`
	Problems      []Problem           `json:"problems"`
	Conversations []ConvReport        `json:"conversations"` // those with problems, by id
	Witnesses     []WitnessReport     `json:"witnesses,omitempty"`
	Signatures    SignatureReport     `json:"signatures"`
}

// VerifyProgress is how far Verify got, for a progress line.
type VerifyProgress struct {
	Seals, Rows, Problems int
}
