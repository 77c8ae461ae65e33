package relay

import (
	"cmp"
	"context"
	"crypto/ed25519"
	"fmt"
	"slices"
	"strings"
	"time"
)

// What the directory trusts when it loads (Directory.Trust). With at
// least one trusted public key (the instance's own seal key's, and those
// of pipeline.trusted_keys_file), every record read from the archive is
// checked before it may count, and one that fails is refused: left out
// of the snapshot as if it did not exist, logged at Error, counted in
// wechat_relay_directory_refused_records_total{reason} and raised as an
// alert (a hit of rule "directory_refused" in the review queue, pushed
// to the supervisors, compliance officers and admins connected). A
// record is refused when
//
//   - its hash column does not match its content (altered);
//   - it is signed, and the signature does not verify (bad_signature)
//     or is by a key not trusted (unknown_key);
//   - it is unsigned, and not a legacy record (unsigned, below);
//   - its PrevHash is not the Hash of an accepted record of the version
//     before it ("" when there is none) (chain_broken);
//   - it is signed and no signed admin (or password_change, sso_grant) audit
//     record names its Hash (DirectoryAuditDetail) (no_audit). A record this instance wrote
//     itself, after writing its audit record, needs no look-up; others
//     are given auditGrace from their At for their audit record to
//     arrive (a replica lagging), and are left out meanwhile.
//
// Records refused once are reported once per instance. Checks are kept
// by hash, so a reload looks up only the records it has not seen.
//
// # Legacy records: the cut-over
//
// Records written before signing began carry no signature. The first
// instance that loads the directory with a seal key, when the archive
// holds no validly signed record yet, pins them: it archives a record
// of kind DirLegacy (not an entry of the directory), signed, listing
// their hashes. From then on an unsigned record is accepted only if a
// valid pin lists it: a row inserted later, whatever time it claims, is
// refused. An instance with trusted keys and no seal key accepts
// unsigned records only while no pin and no signed record exist. Rows
// inserted before the pin are pinned with the rest: nothing tells them
// apart; `wechat-relay verify` matches every version with its admin
// audit record, which legacy forgeries lack.
//
// Without any trusted key, nothing is checked (as before signing), and
// the directory logs once that it is not tamper-evident.

// auditGrace is how long a signed record whose admin audit record is
// not found yet is left out without being refused.
const auditGrace = 2 * time.Minute

// auditWindow is how far from a record's At its audit record is looked
// for: the audit record is written just after the record is made.
const auditWindow = 2 * time.Minute

// directoryRefusedRule is the rule of the alert of a refused record.
const directoryRefusedRule = "directory_refused"

// Reasons a record is refused (the metric's label).
const (
	refusedAltered   = "altered"
	refusedBadSig    = "bad_signature"
	refusedUnknown   = "unknown_key"
	refusedUnsigned  = "unsigned"
	refusedChain     = "chain_broken"
	refusedNoAudit   = "no_audit"
	refusedBadLegacy = "bad_pin"
)

// DirectoryTrust is what the directory checks the records it loads
// with.
type DirectoryTrust struct {
	// Signer signs this instance's changes (the pipeline's seal key);
	// its public key is trusted. nil: changes are unsigned.
	Signer *SealSigner
	// PublicKeys are the other keys whose records are trusted (other
	// instances' seal keys, earlier keys).
	PublicKeys []ed25519.PublicKey
	// Audit is where the admin audit records are looked up. Required
	// when any key is trusted.
	Audit AuditStore
	// Alerts archives the alert of a refused record, and Alert raises it
	// (console.Server.Alert); either may be nil.
	Alerts AlertStore
	Alert  func(LexiconHit)
}

// Trust makes the directory sign its changes and check what it loads
// with t, from the next load on. Without any key it logs once that the
// directory is not tamper-evident.
func (d *Directory) Trust(t DirectoryTrust) error {
	keys := map[string]ed25519.PublicKey{}
	if t.Signer != nil {
		keys[t.Signer.KeyID()] = t.Signer.PublicKey()
	}
	for _, k := range t.PublicKeys {
		keys[SealKeyID(k)] = k
	}
	if len(keys) > 0 && t.Audit == nil {
		return fmt.Errorf("relay: directory: trusted keys need the audit log to check changes against")
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	d.trust = t
	d.keys = nil
	if len(keys) == 0 {
		d.log.Warn("no seal key: directory records are not signed or checked, so someone who can write the archive could add an admin; " +
			"set pipeline.seal_key_file (or WR_SEAL_KEY_FILE)")
		return nil
	}
	d.keys = keys
	ids := make([]string, 0, len(keys))
	for id := range keys {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	d.log.Info("checking directory records", "keys", ids, "signing", t.Signer != nil)
	return nil
}

// trustState is what the checks remember between loads. Guarded by
// Directory.mu.
type trustState struct {
	heads    map[recordKey]string // Hash of the newest accepted version of each entry
	sigs     map[string]SignatureStatus
	audited  map[string]bool // hashes whose admin audit record was found (or written here)
	reported map[string]bool // refusals logged and counted
	alerted  map[string]bool // refusals whose alert was archived
}

func newTrustState() trustState {
	return trustState{heads: map[recordKey]string{}, sigs: map[string]SignatureStatus{},
		audited: map[string]bool{}, reported: map[string]bool{}, alerted: map[string]bool{}}
}

// screen returns the records of recs that may count, refusing the
// others (see the top of this file). d.mu is held.
func (d *Directory) screen(ctx context.Context, recs []DirectoryRecord) ([]DirectoryRecord, error) {
	if d.keys == nil {
		heads := map[recordKey]string{}
		for k, r := range latest(recs) {
			heads[k] = r.ComputeHash()
		}
		d.ts.heads = heads
		return recs, nil
	}
	pinned := map[string]bool{}
	pins, anySigned := 0, false
	var entries, unsigned []DirectoryRecord
	for _, r := range recs {
		if r.Kind == DirLegacy {
			if reason, detail := d.checkSignedRecord(r); reason != "" {
				d.refuse(ctx, r, reason, detail)
				continue
			}
			hashes, err := decodePin(r.Data)
			if err != nil {
				d.refuse(ctx, r, refusedBadLegacy, err.Error())
				continue
			}
			for _, h := range hashes {
				pinned[h] = true
			}
			pins++
			continue
		}
		entries = append(entries, r)
		if !r.Signed() {
			unsigned = append(unsigned, r)
		} else if reason, _ := d.checkSignedRecord(r); reason == "" {
			anySigned = true
		}
	}
	legacyOpen := pins == 0 && !anySigned
	if legacyOpen && d.trust.Signer != nil {
		// The cut-over, even with nothing to pin: from now on no
		// unsigned record is legacy.
		hashes, err := d.pin(ctx, unsigned)
		if err != nil {
			return nil, err
		}
		for _, h := range hashes {
			pinned[h] = true
		}
		legacyOpen = false
	}
	if err := d.lookUpAudit(ctx, entries); err != nil {
		return nil, err
	}
	groups := map[recordKey][]DirectoryRecord{}
	for _, r := range entries {
		k := recordKey{r.Kind, r.ID}
		groups[k] = append(groups[k], r)
	}
	heads := map[recordKey]string{}
	var out []DirectoryRecord
	for k, g := range groups {
		slices.SortFunc(g, func(a, b DirectoryRecord) int {
			if a.Version != b.Version {
				return cmp.Compare(a.Version, b.Version)
			}
			if newer(a, b) {
				return 1
			}
			return -1
		})
		var prev []string // hashes of the accepted records of the last accepted version
		for i := 0; i < len(g); {
			j := i
			for j < len(g) && g[j].Version == g[i].Version {
				j++
			}
			var acc []string
			for _, r := range g[i:j] {
				reason, detail := d.verdict(r, prev, pinned, legacyOpen)
				switch reason {
				case "":
					out = append(out, r)
					acc = append(acc, r.ComputeHash())
				case pending:
					d.log.Debug("directory record waits for its audit record", "kind", r.Kind, "id", r.ID, "version", r.Version)
				default:
					d.refuse(ctx, r, reason, detail)
				}
			}
			if len(acc) > 0 {
				prev = acc
				heads[k] = acc[len(acc)-1] // the newest, as latest picks
			}
			i = j
		}
	}
	d.ts.heads = heads
	return out, nil
}

// pending is the verdict of a record whose audit record may yet arrive.
const pending = "pending"

// verdict says why r may not count, "" when it may. prev holds the
// hashes of the accepted records of the version before r's.
func (d *Directory) verdict(r DirectoryRecord, prev []string, pinned map[string]bool, legacyOpen bool) (reason, detail string) {
	h := r.ComputeHash()
	if !r.Signed() {
		switch {
		case r.Hash != "" && r.Hash != h:
			return refusedAltered, "its hash column does not match its content"
		case pinned[h] || legacyOpen:
			return "", ""
		}
		return refusedUnsigned, "not signed, and not among the legacy records written before directory records were signed"
	}
	if reason, detail := d.checkSignedRecord(r); reason != "" {
		return reason, detail
	}
	switch {
	case len(prev) == 0 && r.PrevHash != "":
		return refusedChain, "it follows a version that is not in the directory"
	case len(prev) > 0 && !slices.Contains(prev, r.PrevHash):
		return refusedChain, "its prev_hash is not the hash of the version before it"
	}
	if !d.ts.audited[h] {
		if d.now().Sub(r.At) < auditGrace {
			return pending, ""
		}
		return refusedNoAudit, "no signed admin audit record names this version"
	}
	return "", ""
}

// checkSignedRecord checks a signed record's hash and signature (cached).
func (d *Directory) checkSignedRecord(r DirectoryRecord) (reason, detail string) {
	if r.Hash != r.ComputeHash() {
		return refusedAltered, "its hash column does not match its content"
	}
	key := r.Hash + "\x00" + r.KeyID + "\x00" + r.Signature
	st, ok := d.ts.sigs[key]
	if !ok {
		st = CheckDirectorySignature(r, d.keys)
		d.ts.sigs[key] = st
	}
	switch st {
	case SignatureValid:
		return "", ""
	case SignatureUnknownKey:
		return refusedUnknown, fmt.Sprintf("signed by key %q, which is not trusted", r.KeyID)
	case SignatureUnsigned:
		return refusedUnsigned, "not signed"
	}
	return refusedBadSig, fmt.Sprintf("its signature by key %s does not verify", r.KeyID)
}

// pin archives the legacy pin of the unsigned records (the cut-over)
// and returns their hashes.
func (d *Directory) pin(ctx context.Context, unsigned []DirectoryRecord) ([]string, error) {
	hashes := make([]string, 0, len(unsigned))
	for _, r := range unsigned {
		hashes = append(hashes, r.ComputeHash())
	}
	rec := DirectoryRecord{Kind: DirLegacy, ID: "pin", Version: 1, At: d.now().UTC().Truncate(time.Millisecond),
		By: "relay", Data: encodePin(hashes)}
	rec.Hash = rec.ComputeHash()
	rec = d.trust.Signer.SignDirectory(rec)
	if err := d.store.AppendDirectory(ctx, rec); err != nil {
		return nil, fmt.Errorf("archiving the pin of the legacy directory records: %w", err)
	}
	d.log.Warn("directory records are signed from now on: the unsigned records archived so far are accepted as legacy, and later unsigned ones refused",
		"legacy_records", len(hashes), "key_id", d.trust.Signer.KeyID())
	return hashes, nil
}

// lookUpAudit finds the admin audit records of the signed records of
// recs not looked up yet, and remembers the hashes they name. One query
// per cluster of records close in time.
func (d *Directory) lookUpAudit(ctx context.Context, recs []DirectoryRecord) error {
	var want []DirectoryRecord
	for _, r := range recs {
		if r.Signed() && !d.ts.audited[r.Hash] && !d.ts.reported[refusalKey(r, refusedNoAudit)] {
			if reason, _ := d.checkSignedRecord(r); reason == "" {
				want = append(want, r)
			}
		}
	}
	if len(want) == 0 {
		return nil
	}
	need := map[string]bool{}
	ats := make([]time.Time, 0, len(want))
	for _, r := range want {
		need[r.Hash] = true
		ats = append(ats, r.At)
	}
	err := lookUpAudit(ctx, d.trust.Audit, directoryAuditActions, ats, d.log, func(e AuditEntry) {
		_, _, _, hash, ok := AuditedVersion(e)
		if ok && need[hash] && CheckAuditSignature(e, d.keys) == SignatureValid {
			d.ts.audited[hash] = true
		}
	})
	if err != nil {
		return fmt.Errorf("directory changes: %w", err)
	}
	return nil
}

func refusalKey(r DirectoryRecord, reason string) string {
	return strings.Join([]string{r.ComputeHash(), r.KeyID, r.Signature, reason}, "\x00")
}

// refuse reports a refused record once: an Error log line, the metric,
// and an alert (archived, then raised).
func (d *Directory) refuse(ctx context.Context, r DirectoryRecord, reason, detail string) {
	key := refusalKey(r, reason)
	if !d.ts.reported[key] {
		d.ts.reported[key] = true
		d.refused.WithLabelValues(reason).Inc()
		d.log.Error("directory record refused: left out of the directory; someone may have written the archive behind the relay's back",
			"kind", r.Kind, "id", r.ID, "version", r.Version, "reason", reason, "detail", detail,
			"by", r.By, "at", r.At, "hash", r.ComputeHash(), "key_id", r.KeyID)
	}
	if d.ts.alerted[key] {
		return
	}
	hit := LexiconHit{
		ID:      HitID("directory:"+key, directoryRefusedRule),
		Rule:    directoryRefusedRule,
		Matched: fmt.Sprintf("%s:%s v%d", r.Kind, r.ID, r.Version),
		Excerpt: fmt.Sprintf("directory record %s:%s version %d (by %q) refused, %s: %s", r.Kind, r.ID, r.Version, r.By, reason, detail),
		At:      d.now().UTC().Truncate(time.Millisecond),
	}
	if d.trust.Alerts != nil {
		if err := d.trust.Alerts.AppendHits(ctx, []LexiconHit{hit}); err != nil {
			d.log.Error("archiving the alert of a refused directory record; retrying at the next load", "kind", r.Kind, "id", r.ID, "err", err)
			return
		}
	}
	d.ts.alerted[key] = true
	if d.trust.Alert != nil {
		d.trust.Alert(hit)
	}
}
