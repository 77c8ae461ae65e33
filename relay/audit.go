package relay

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"
)

// The audit log: who did what, when, from where — sign-ins and
// sign-outs, conversation views, searches, exports, transfers, admin and
// config changes, review decisions, legal holds.
//
// Audit records are few (one per human action), so each is written on
// its own, synchronously, before the action it records is answered. Each
// writer (relay instance) chains its records: record n carries the hash
// of record n-1 of the same writer (Prev), so a record altered, deleted
// or inserted behind the relay's back breaks the chain, and
// `wechat-relay verify` finds it (VerifyAudit). Deleting the newest
// records of a chain leaves no gap; the "audit seal" log line
// (AuditLog.Append logs the newest hash every AuditCheckpointEvery
// records) is what an outside witness keeps to notice that.
//
// Hashes alone do not stop someone who can write the archive: they can
// rewrite a record and recompute its hash and every later one. So, when
// the writer has a seal key (pipeline.seal_key_file), each record is
// also signed (KeyID, Signature; SealSigner.SignAudit, seal_sign.go),
// and VerifyAuditWith checks the signatures against the public keys.
//
// # Canonical encoding of an audit record, version 1
//
// As for messages (seal.go): length-prefixed fields, hex SHA-256.
//
//	"wechat-relay/audit/v1"
//	id, writer
//	number             (decimal)
//	prev
//	at_ms              (decimal epoch milliseconds, 0 before 1970)
//	employee, role, action, conv, target, detail, remote, user_agent

const auditTag = "wechat-relay/audit/v1"

// AuditCheckpointEvery is how many records of a chain pass between two
// "audit seal" log lines.
const AuditCheckpointEvery = 100

// Audit actions written by the relay's own parts; the console adds its
// views (see console/audit.go).
const (
	AuditSignIn         = "sign_in"
	AuditSignInFailed   = "sign_in_failed"
	AuditSignOut        = "sign_out"
	AuditSearch         = "search"
	AuditExport         = "export"
	AuditTransfer       = "transfer"
	AuditAssign         = "assign"
	AuditReview         = "alert_review"
	AuditLegalHold      = "legal_hold"
	AuditConfigChange   = "config_change"
	AuditAdminAction    = "admin"
	AuditSendBlocked    = "send_blocked"
	AuditReadAudit      = "read_audit"
	AuditReadAlerts     = "read_alerts"
	AuditRetentionView  = "retention_report"
	AuditPasswordChange = "password_change" // an employee changed their own password
	AuditReportView     = "report_view"     // a report (relay/report) was viewed
	// AuditSSOGrant: signing in through an identity provider changed
	// the employee's role or teams, as its group mapping says.
	AuditSSOGrant = "sso_grant"
)

// directoryAuditActions are the audit actions whose records vouch for a
// directory version (DirectoryAuditDetail): an admin's change, an
// employee's own password, and what an identity provider's groups
// changed at sign-in.
var directoryAuditActions = []string{AuditAdminAction, AuditPasswordChange, AuditSSOGrant}

// AuditEntry is one archived audit record.
type AuditEntry struct {
	ID       string    `json:"id"`
	Writer   string    `json:"writer"`
	Number   uint64    `json:"number"` // 1, 2, ... within the writer's chain
	Prev     string    `json:"prev"`   // Hash of record Number-1; "" for 1
	At       time.Time `json:"at"`     // to the millisecond
	Employee string    `json:"employee"`
	Role     string    `json:"role"`
	Action   string    `json:"action"`
	Conv     string    `json:"conv,omitempty"`
	// Target names what was acted on within Conv (a message id, an
	// alert id, a hold), or the subject of an action without a
	// conversation (the employee a sign-in failed for).
	Target string `json:"target,omitempty"`
	// Detail is what else says what was done: a search's query, an
	// export's scope, a review's comment.
	Detail    string `json:"detail,omitempty"`
	Remote    string `json:"remote"` // where from: peer address and X-Forwarded-For
	UserAgent string `json:"user_agent"`
	Hash      string `json:"hash"`
	// KeyID and Signature sign Hash with the writer's seal key
	// (SealSigner.SignAudit); both empty for an unsigned record. They
	// are not part of the hash.
	KeyID     string `json:"key_id,omitempty"`
	Signature string `json:"signature,omitempty"`
}

// ComputeHash is the hash of e's fields other than Hash.
func (e AuditEntry) ComputeHash() string {
	enc := newEncoder(auditTag)
	enc.str(e.ID)
	enc.str(e.Writer)
	enc.uint(e.Number)
	enc.str(e.Prev)
	enc.uint(archivedMillis(e.At))
	enc.str(e.Employee)
	enc.str(e.Role)
	enc.str(e.Action)
	enc.str(e.Conv)
	enc.str(e.Target)
	enc.str(e.Detail)
	enc.str(e.Remote)
	enc.str(e.UserAgent)
	return enc.sum()
}

// AuditQuery selects audit records. Zero fields select everything.
type AuditQuery struct {
	Employee string    // who
	Action   string    // what
	Conv     string    // about which conversation
	From, To time.Time // From <= At < To
	Limit    int       // at most this many, newest first (1000)
}

// AuditStore is the archive as the audit log needs it. Both archives in
// storage implement it.
type AuditStore interface {
	// AppendAudit stores e. Idempotent by (Writer, Number) for an
	// identical e.
	AppendAudit(ctx context.Context, e AuditEntry) error
	// LatestAudit returns writer's record with the highest number; ok is
	// false when it has none.
	LatestAudit(ctx context.Context, writer string) (e AuditEntry, ok bool, err error)
	// SearchAudit returns the records q selects, newest first, one copy
	// of each.
	SearchAudit(ctx context.Context, q AuditQuery) ([]AuditEntry, error)
	// ScanAudit calls fn for every stored audit record, physical copies
	// included, ordered by writer then number.
	ScanAudit(ctx context.Context, fn func(AuditEntry) error) error
}

// AuditLog appends chained audit records for one writer. Safe for
// concurrent use: records are written one at a time.
type AuditLog struct {
	store  AuditStore
	writer string
	log    interface {
		Info(msg string, args ...any)
	}
	now func() time.Time

	mu     sync.Mutex
	signer *SealSigner // signs every record; nil: unsigned
	loaded bool
	last   AuditEntry
	// pending is a record whose store failed: it may have landed anyway
	// (a cancelled or timed-out insert can), so it is stored again,
	// unchanged, before anything is chained after it. Its number is
	// never given to another record: that forked the chain.
	pending *AuditEntry
}

// NewAuditLog returns the audit log of writer (the pipeline's writer
// id). log receives the "audit seal" checkpoint lines; nil discards them.
func NewAuditLog(store AuditStore, writer string, log interface{ Info(string, ...any) }, now func() time.Time) (*AuditLog, error) {
	if store == nil {
		return nil, errors.New("relay: audit log needs a store")
	}
	if !ValidWriter(writer) {
		return nil, fmt.Errorf("relay: audit writer id %q is not valid", writer)
	}
	if now == nil {
		now = time.Now
	}
	return &AuditLog{store: store, writer: writer, log: log, now: now}, nil
}

// SignWith makes l sign every record it appends from now on with s (the
// writer's seal key: Pipeline.Signer); nil leaves them unsigned.
func (l *AuditLog) SignWith(s *SealSigner) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.signer = s
}

// Append chains e to the writer's previous record and stores it; it
// returns the stored record. ID, Writer, Number, Prev and Hash are set
// here, and KeyID and Signature (empty without a signer); a zero At is
// now.
//
// The store is not cut short by the caller giving up (ctx is used for
// its values, bounded by auditStoreTimeout). A record whose store failed
// is stored again, unchanged, before the next one: so the log may show
// an attempt its caller refused after the error, and never two different
// records under one number (TestAuditFailedStoreIsNotForked).
func (l *AuditLog) Append(ctx context.Context, e AuditEntry) (AuditEntry, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), auditStoreTimeout)
	defer cancel()
	if p := l.pending; p != nil {
		last, ok, err := l.store.LatestAudit(ctx, l.writer)
		if err != nil {
			return AuditEntry{}, fmt.Errorf("reading the audit chain of %s: %w", l.writer, err)
		}
		if ok && last.Number >= p.Number {
			// It landed (or the chain moved on without it).
			l.last = last
		} else {
			if err := l.store.AppendAudit(ctx, *p); err != nil {
				return AuditEntry{}, fmt.Errorf("archiving audit record %s (again, after an earlier error): %w", p.ID, err)
			}
			l.last = *p
		}
		l.pending = nil
	}
	if !l.loaded {
		last, ok, err := l.store.LatestAudit(ctx, l.writer)
		if err != nil {
			return AuditEntry{}, fmt.Errorf("reading the audit chain of %s: %w", l.writer, err)
		}
		if !ok {
			last = AuditEntry{}
		}
		l.last, l.loaded = last, true
	}
	if e.At.IsZero() {
		e.At = l.now()
	}
	e.At = millis(e.At)
	e.Writer = l.writer
	e.Number = l.last.Number + 1
	e.Prev = l.last.Hash
	e.ID = fmt.Sprintf("%s/audit/%020d", l.writer, e.Number)
	e.Hash = e.ComputeHash()
	e.KeyID, e.Signature = "", ""
	e = l.signer.SignAudit(e)
	if err := l.store.AppendAudit(ctx, e); err != nil {
		l.pending = &e
		return AuditEntry{}, fmt.Errorf("archiving audit record %s: %w", e.ID, err)
	}
	l.last = e
	if l.log != nil && e.Number%AuditCheckpointEvery == 0 {
		l.log.Info("audit seal", "writer", e.Writer, "number", e.Number, "hash", e.Hash)
	}
	return e, nil
}

// auditStoreTimeout bounds one store of an audit record.
const auditStoreTimeout = 30 * time.Second

// AuditReport is what VerifyAudit found.
type AuditReport struct {
	OK        bool            `json:"ok"`
	Records   int             `json:"records"` // intact records
	Chains    []AuditChain    `json:"chains"`
	Problems  []AuditProblem  `json:"problems"`
	Witnesses []WitnessReport `json:"witnesses,omitempty"`
	// Signatures sums up the records' signatures, as
	// verify.Report.Signatures does the seals' (counted per record).
	Signatures SignatureReport `json:"signatures"`
}

// AuditChain sums up one writer's audit chain.
type AuditChain struct {
	Writer   string `json:"writer"`
	Records  int    `json:"records"`
	Last     uint64 `json:"last"`
	LastHash string `json:"last_hash"`
	// Signed and Unsigned count its records with and without a
	// signature (whether or not public keys were given to check them).
	Signed   int `json:"signed"`
	Unsigned int `json:"unsigned"`
}

// AuditProblem is one thing wrong in the audit log. Kind is one of
// ProblemAltered, ProblemSealMissing (a number skipped: records
// deleted), ProblemChainBroken (prev does not match), ProblemInserted (a
// second, different record in one place, or an id out of its place),
// and, with public keys, ProblemBadSignature, ProblemUnknownKey and
// ProblemUnsigned (as for seals).
type AuditProblem struct {
	Kind   ProblemKind `json:"kind"`
	ID     string      `json:"id"`
	Detail string      `json:"detail"`
}

// maxAuditProblems bounds the problems listed.
const maxAuditProblems = 10000

// AuditVerifyOptions tunes VerifyAuditWith.
type AuditVerifyOptions struct {
	// Witnesses are audit hashes an outside witness kept (the "audit
	// seal" log lines); each must be the hash of an intact record.
	Witnesses []string
	// PublicKeys, if any, are the writers' seal keys: every record must
	// then carry a signature that one of them verifies.
	PublicKeys []ed25519.PublicKey
	// AllowUnsignedBefore, with PublicKeys, accepts an unsigned record
	// made (its At) before this time — one written before signing was
	// turned on — unless a signed record comes before it in its chain: a
	// chain that was signed once stays signed. Zero: no unsigned record
	// is accepted.
	AllowUnsignedBefore time.Time
}

// VerifyAudit is VerifyAuditWith with witnesses and no public keys:
// signatures are counted, not checked.
func VerifyAudit(ctx context.Context, src AuditStore, witnesses ...string) (*AuditReport, error) {
	return VerifyAuditWith(ctx, src, AuditVerifyOptions{Witnesses: witnesses})
}

// VerifyAuditWith recomputes every audit record's hash and chain link,
// checks that each witnessed hash (from the "audit seal" log lines) is
// the hash of an intact record, and, with public keys, that every record
// is signed by one of them (unsigned ones only as AllowUnsignedBefore
// allows).
func VerifyAuditWith(ctx context.Context, src AuditStore, opt AuditVerifyOptions) (*AuditReport, error) {
	rep := &AuditReport{}
	var keys map[string]ed25519.PublicKey
	if len(opt.PublicKeys) > 0 {
		keys = map[string]ed25519.PublicKey{}
		sr := &rep.Signatures
		sr.Checked = true
		for _, k := range opt.PublicKeys {
			id := SealKeyID(k)
			if _, dup := keys[id]; !dup {
				keys[id] = k
				sr.Keys = append(sr.Keys, id)
			}
		}
		if !opt.AllowUnsignedBefore.IsZero() {
			t := opt.AllowUnsignedBefore.UTC()
			sr.AllowUnsignedBefore = &t
		}
	}
	seen := map[string]bool{}
	for _, h := range opt.Witnesses {
		if h = strings.ToLower(strings.TrimSpace(h)); h != "" && !seen[h] {
			seen[h] = true
			rep.Witnesses = append(rep.Witnesses, WitnessReport{Hash: h})
		}
	}
	wit := map[string]*WitnessReport{}
	for i := range rep.Witnesses {
		wit[rep.Witnesses[i].Hash] = &rep.Witnesses[i]
	}
	add := func(k ProblemKind, id, detail string) {
		if len(rep.Problems) < maxAuditProblems {
			rep.Problems = append(rep.Problems, AuditProblem{Kind: k, ID: id, Detail: detail})
		}
	}
	var (
		cur     *AuditChain
		prev    *AuditEntry // the previous distinct record of cur
		prevBad bool
		signed  bool // a record of cur was signed: every later one must be
	)
	err := src.ScanAudit(ctx, func(e AuditEntry) error {
		if cur == nil || cur.Writer != e.Writer {
			rep.Chains = append(rep.Chains, AuditChain{Writer: e.Writer})
			cur = &rep.Chains[len(rep.Chains)-1]
			prev, prevBad, signed = nil, false, false
		}
		computed := e.ComputeHash()
		if prev != nil && prev.Number == e.Number {
			// Another physical copy of the same place. Ed25519 signs
			// deterministically: a retried insert carries the same
			// signature.
			if e.Hash != prev.Hash || computed != prev.ComputeHash() || e.KeyID != prev.KeyID || e.Signature != prev.Signature {
				add(ProblemInserted, e.ID, fmt.Sprintf("two different audit records numbered %d in %s's chain", e.Number, e.Writer))
			}
			return nil
		}
		bad := false
		if computed != e.Hash {
			add(ProblemAltered, e.ID, "content does not match its hash")
			bad = true
		}
		if want := fmt.Sprintf("%s/audit/%020d", e.Writer, e.Number); e.ID != want {
			add(ProblemInserted, e.ID, "id does not match its place "+want)
			bad = true
		}
		switch {
		case prev == nil && e.Number != 1:
			add(ProblemSealMissing, e.ID, fmt.Sprintf("chain of %s starts at %d: records 1..%d missing", e.Writer, e.Number, e.Number-1))
		case prev != nil && e.Number != prev.Number+1:
			add(ProblemSealMissing, e.ID, fmt.Sprintf("records %d..%d of %s missing", prev.Number+1, e.Number-1, e.Writer))
		case prev != nil && e.Prev != prev.Hash && !prevBad:
			add(ProblemChainBroken, e.ID, "prev is not the hash of record "+prev.ID)
			bad = true
		case prev == nil && e.Number == 1 && e.Prev != "":
			add(ProblemChainBroken, e.ID, "first record has a prev")
			bad = true
		}
		signed = checkAuditSignature(rep, cur, keys, opt.AllowUnsignedBefore, signed, e, add)
		if !bad {
			rep.Records++
			if w := wit[e.Hash]; w != nil {
				w.Found, w.Seal = true, e.ID
			}
		}
		c := e
		prev, prevBad = &c, bad
		cur.Records++
		cur.Last, cur.LastHash = e.Number, e.Hash
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("verify: reading the audit log: %w", err)
	}
	for _, w := range rep.Witnesses {
		if !w.Found {
			add(ProblemWitnessMissing, w.Hash, "a witnessed audit hash is not the hash of any intact audit record")
		}
	}
	rep.OK = len(rep.Problems) == 0
	return rep, nil
}

// checkAuditSignature counts e's signature and, when keys are given,
// checks it: a bad one, one by an unknown key, and a missing one that
// cut does not cover (or that comes after a signed record of its chain,
// after) are problems. It returns whether the chain is signed from e on.
func checkAuditSignature(rep *AuditReport, c *AuditChain, keys map[string]ed25519.PublicKey, cut time.Time, after bool, e AuditEntry, add func(ProblemKind, string, string)) bool {
	sr := &rep.Signatures
	isSigned := e.KeyID != "" || e.Signature != ""
	if isSigned {
		sr.Signed++
		c.Signed++
		if sr.ByKey == nil {
			sr.ByKey = map[string]int{}
		}
		sr.ByKey[e.KeyID]++
	} else {
		sr.Unsigned++
		c.Unsigned++
	}
	if keys == nil {
		return after || isSigned
	}
	place := fmt.Sprintf("audit record %d of writer %s", e.Number, e.Writer)
	switch CheckAuditSignature(e, keys) {
	case SignatureValid:
		sr.Valid++
	case SignatureBad:
		sr.Bad++
		add(ProblemBadSignature, e.ID, fmt.Sprintf("%s: its signature by key %s does not verify: the record was written or rewritten without that key", place, e.KeyID))
	case SignatureUnknownKey:
		sr.UnknownKey++
		key := e.KeyID
		if key == "" {
			key = `""`
		}
		add(ProblemUnknownKey, e.ID, fmt.Sprintf("%s: signed by key %s, which is not among the public keys given", place, key))
	case SignatureUnsigned:
		var detail string
		switch {
		case !cut.IsZero() && e.At.Before(cut) && !after:
			sr.UnsignedAllowed++
			return after
		case !cut.IsZero() && after:
			detail = fmt.Sprintf("%s: not signed, and an earlier record of its chain is: a signed chain stays signed", place)
		case !cut.IsZero():
			detail = fmt.Sprintf("%s: not signed, and made at %s, not before %s", place, e.At.UTC().Format(time.RFC3339Nano), cut.UTC().Format(time.RFC3339Nano))
		default:
			detail = fmt.Sprintf("%s: not signed (records written before signing was turned on: -allow-unsigned-before TIME)", place)
		}
		sr.UnsignedRefused++
		add(ProblemUnsigned, e.ID, detail)
	}
	return after || isSigned
}

// ParseAuditTime reads a time of an audit query: RFC 3339, or a date
// (YYYY-MM-DD, UTC midnight). "" is the zero time.
func ParseAuditTime(s string) (time.Time, error) { return ParseSearchTime(s, false) }
