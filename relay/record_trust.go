package relay

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"
)

// RecordTrust is what the relay checks holds and reviews with, as the
// directory's records (DirectoryTrust): with at least one key, a version
// that judgeChains refuses does not count — a refused hold release
// leaves the hold in force, a refused review leaves its hit in the
// review queue, flagged — and is logged at Error and raised as an alert
// (rule "hold_refused" or "review_refused") once per instance. Without
// keys nothing is checked, and a warning says so once.
type RecordTrust struct {
	// Signer signs this instance's records; its public key is trusted.
	Signer *SealSigner
	// PublicKeys are the other instances' keys.
	PublicKeys []ed25519.PublicKey
	// Audit is where the records' audit records are looked up. Required
	// with any key.
	Audit AuditStore
	// Alerts archives the alert of a refused record and Alert raises it;
	// either may be nil.
	Alerts AlertStore
	Alert  func(LexiconHit)
	Log    *slog.Logger
	Now    func() time.Time
}

// recordChecker applies RecordTrust to one kind of record.
type recordChecker struct {
	kind  recordKind
	trust RecordTrust
	keys  map[string]ed25519.PublicKey
	log   *slog.Logger
	now   func() time.Time

	mu       sync.Mutex
	audited  map[string]bool // hashes a signed audit record names
	reported map[string]bool // refusals logged and alerted
}

func newRecordChecker(k recordKind, t RecordTrust) (*recordChecker, error) {
	c := &recordChecker{kind: k, trust: t, keys: map[string]ed25519.PublicKey{}, log: t.Log, now: t.Now,
		audited: map[string]bool{}, reported: map[string]bool{}}
	if c.log == nil {
		c.log = slog.Default()
	}
	if c.now == nil {
		c.now = time.Now
	}
	if t.Signer != nil {
		c.keys[t.Signer.KeyID()] = t.Signer.PublicKey()
	}
	for _, pub := range t.PublicKeys {
		c.keys[SealKeyID(pub)] = pub
	}
	if len(c.keys) > 0 && t.Audit == nil {
		return nil, fmt.Errorf("relay: %s records: trusted keys need the audit log to check records against", k.name)
	}
	if len(c.keys) == 0 {
		c.log.Warn("no seal key: " + k.name + " records are not signed or checked, so someone who can write the archive could forge them; " +
			"set pipeline.seal_key_file (or WR_SEAL_KEY_FILE)")
	}
	return c, nil
}

// seal sets s's Hash to hash() (which must read s), its Version and PrevHash to follow the head
// of its chain among recs, and signs it.
func (c *recordChecker) seal(ctx context.Context, recs []chained, chain string, s *RecordSeal, hash func() string) error {
	v, err := c.judge(ctx, recs)
	if err != nil {
		return err
	}
	version, head := chainHead(recs, v, chain)
	s.Version, s.PrevHash = version+1, head
	s.Hash = hash()
	c.trust.Signer.signRecord(c.kind, s)
	return nil
}

// wrote remembers that this instance wrote the audit record of hash.
func (c *recordChecker) wrote(hash string) {
	c.mu.Lock()
	c.audited[hash] = true
	c.mu.Unlock()
}

// judge checks recs (judgeChains), looking up the audit records it has
// not seen, and reports the refused ones. A signed version whose audit
// record is not found within auditGrace of its At does not count, and is
// not reported yet.
func (c *recordChecker) judge(ctx context.Context, recs []chained) ([]verdict, error) {
	if len(c.keys) == 0 {
		return make([]verdict, len(recs)), nil
	}
	if err := c.lookUp(ctx, recs); err != nil {
		return nil, err
	}
	c.mu.Lock()
	v := judgeChains(c.kind, recs, c.keys, func(h string) bool { return c.audited[h] })
	c.mu.Unlock()
	for i, r := range recs {
		if v[i].Kind == "" || (v[i].Kind == ProblemInserted && c.now().Sub(r.At) < auditGrace) {
			continue
		}
		c.refuse(ctx, r, v[i])
	}
	return v, nil
}

// lookUp finds the audit records of the signed versions of recs not
// found yet.
func (c *recordChecker) lookUp(ctx context.Context, recs []chained) error {
	c.mu.Lock()
	var ats []time.Time
	need := map[string]bool{}
	for _, r := range recs {
		if r.Seal.Signed() && !c.audited[r.Seal.Hash] {
			ats = append(ats, r.At)
			need[r.Seal.Hash] = true
		}
	}
	c.mu.Unlock()
	return lookUpAudit(ctx, c.trust.Audit, []string{c.kind.action}, ats, c.log, func(e AuditEntry) {
		if _, _, hash, ok := auditedRecord(e.Detail, c.kind.name); ok && need[hash] && CheckAuditSignature(e, c.keys) == SignatureValid {
			c.mu.Lock()
			c.audited[hash] = true
			c.mu.Unlock()
		}
	})
}

// lookUpAudit reads the audit records of actions within auditWindow of
// each of ats, one query per action and cluster of times close together,
// and hands each to found.
func lookUpAudit(ctx context.Context, st AuditStore, actions []string, ats []time.Time, log *slog.Logger, found func(AuditEntry)) error {
	ats = slices.Clone(ats)
	slices.SortFunc(ats, func(a, b time.Time) int { return a.Compare(b) })
	for i := 0; i < len(ats); {
		from, to := ats[i].Add(-auditWindow), ats[i].Add(auditWindow)
		j := i + 1
		for j < len(ats) && !ats[j].Add(-auditWindow).After(to) {
			to = ats[j].Add(auditWindow)
			j++
		}
		const limit = 10000
		for _, action := range actions {
			recs, err := st.SearchAudit(ctx, AuditQuery{Action: action, From: from, To: to, Limit: limit})
			if err != nil {
				return fmt.Errorf("reading the %s audit records: %w", action, err)
			}
			if len(recs) == limit {
				log.Warn("more audit records than one look-up reads: some signed records may be refused", "action", action, "from", from, "to", to)
			}
			for _, e := range recs {
				found(e)
			}
		}
		i = j
	}
	return nil
}

// refuse logs, and raises as an alert, the refusal of r once.
func (c *recordChecker) refuse(ctx context.Context, r chained, v verdict) {
	name := r.name(c.kind)
	key := r.Computed + "\x00" + r.Seal.KeyID + "\x00" + r.Seal.Signature + "\x00" + string(v.Kind)
	c.mu.Lock()
	done := c.reported[key]
	c.reported[key] = true
	c.mu.Unlock()
	if done {
		return
	}
	c.log.Error(c.kind.name+" record refused: it does not count; someone may have written the archive behind the relay's back",
		"record", name, "reason", v.Kind, "detail", v.Detail, "at", r.At, "hash", r.Computed, "key_id", r.Seal.KeyID)
	rule := c.kind.name + "_refused"
	hit := LexiconHit{
		ID:      HitID(c.kind.name+":"+key, rule),
		Rule:    rule,
		Matched: name,
		Excerpt: fmt.Sprintf("%s record %s refused, %s: %s", c.kind.name, name, v.Kind, v.Detail),
		At:      c.now().UTC().Truncate(time.Millisecond),
	}
	if c.trust.Alerts != nil {
		if err := c.trust.Alerts.AppendHits(ctx, []LexiconHit{hit}); err != nil {
			c.log.Error("archiving the alert of a refused record", "record", name, "err", err)
		}
	}
	if c.trust.Alert != nil {
		c.trust.Alert(hit)
	}
}
