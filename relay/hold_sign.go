package relay

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Signed, chained legal holds (record_seal.go). A hold keeps a client's
// or a conversation's messages out of every droppable partition of the
// retention report; releasing it lets them expire. A release forged in
// the archive (or a hold row deleted and replaced) must not lift a hold,
// so each version of a hold is hashed, chained to the version before it
// (per hold id), signed with the instance's seal key, and named by the
// signed legal_hold audit record the console writes before archiving it
// (HoldAuditDetail). LegalHolds.InForce lifts a hold only for a release
// that verifies: a refused release, or a hold none of whose versions
// verify, leaves the hold in force (fail closed), logged at Error and
// raised as a "hold_refused" alert.
//
// Holds stored before holds were signed (migration 0009) have version 0
// and no signature: such a placement is accepted as legacy — it can only
// keep more — and releasing it chains to it.
//
// # Canonical encoding of a hold version, version 1
//
//	"wechat-relay/hold/v1"
//	id
//	version            (decimal)
//	prev_hash
//	at_ms              (decimal epoch milliseconds, 0 before 1970)
//	account, client, conv, reason, placed_by
//	released           ("1" or "0")
//
// signed as "wechat-relay/hold-signature/v1" || 0x00 || hash.

const holdTag = "wechat-relay/hold/v1"

var holdKind = recordKind{name: "hold", sigTag: "wechat-relay/hold-signature/v1", action: AuditLegalHold}

// ErrNoHold is returned by Release for a hold that is not in force.
var ErrNoHold = errors.New("no legal hold in force with this id")

// ComputeHash is the hash of h's fields but Hash, KeyID, Signature (and
// Refused, which is not stored).
func (h Hold) ComputeHash() string {
	enc := newEncoder(holdTag)
	enc.str(h.ID)
	enc.uint(h.Version)
	enc.str(h.PrevHash)
	enc.uint(archivedMillis(h.At))
	enc.str(h.Account)
	enc.str(h.Client)
	enc.str(string(h.Conv))
	enc.str(h.Reason)
	enc.str(h.PlacedBy)
	enc.bool(h.Released)
	return enc.sum()
}

func (h Hold) chained() chained {
	return chained{Chain: h.ID, Seal: h.RecordSeal, Computed: h.ComputeHash(), At: h.At, Legacy: h.Version == 0 && !h.Released}
}

// HoldSignatureMessage is what a hold version's signature signs.
func HoldSignatureMessage(hash string) []byte { return signedMessage(holdKind.sigTag, hash) }

// HoldAuditDetail is detail followed by the marker naming the hold
// version h: " [hold ID vVERSION HASH]".
func HoldAuditDetail(detail string, h Hold) string {
	return recordAuditDetail(detail, holdKind.name, h.ID, h.Version, h.Hash)
}

// LegalHolds places, releases and reads holds, signed and checked.
type LegalHolds struct {
	store RetentionStore
	check *recordChecker
}

// NewLegalHolds reads and writes the holds of st, checked with t.
func NewLegalHolds(st RetentionStore, t RecordTrust) (*LegalHolds, error) {
	c, err := newRecordChecker(holdKind, t)
	if err != nil {
		return nil, err
	}
	return &LegalHolds{store: st, check: c}, nil
}

// Place archives h (ValidateHold) as version 1 of a new hold: sealed,
// then audit is called with it (to write its legal_hold audit record,
// HoldAuditDetail), then it is archived. An error of audit stops it.
func (l *LegalHolds) Place(ctx context.Context, h Hold, audit func(Hold) error) (Hold, error) {
	if err := ValidateHold(h); err != nil {
		return Hold{}, err
	}
	h.Released, h.RecordSeal, h.Refused = false, RecordSeal{}, ""
	h.At = h.At.UTC().Truncate(time.Millisecond)
	return l.write(ctx, nil, h, audit)
}

// Release archives a release of the hold id in force, by by, for
// reason, at at; ErrNoHold if it is not in force.
func (l *LegalHolds) Release(ctx context.Context, id, by, reason string, at time.Time, audit func(Hold) error) (Hold, error) {
	if strings.TrimSpace(reason) == "" {
		return Hold{}, errors.New("reason is required")
	}
	recs, err := l.store.HoldRecords(ctx)
	if err != nil {
		return Hold{}, fmt.Errorf("reading legal holds: %w", err)
	}
	in, err := l.inForce(ctx, recs)
	if err != nil {
		return Hold{}, err
	}
	i := slices.IndexFunc(in, func(h Hold) bool { return h.ID == id })
	if i < 0 {
		return Hold{}, ErrNoHold
	}
	h := in[i]
	h.Reason, h.PlacedBy, h.At, h.Released, h.Refused = reason, by, at.UTC().Truncate(time.Millisecond), true, ""
	return l.write(ctx, recs, h, audit)
}

// write seals h after the versions of its hold among recs, audits and
// archives it.
func (l *LegalHolds) write(ctx context.Context, recs []Hold, h Hold, audit func(Hold) error) (Hold, error) {
	var cs []chained
	for _, r := range recs {
		if r.ID == h.ID {
			cs = append(cs, r.chained())
		}
	}
	if err := l.check.seal(ctx, cs, h.ID, &h.RecordSeal, func() string { return h.ComputeHash() }); err != nil {
		return Hold{}, err
	}
	if err := audit(h); err != nil {
		return Hold{}, fmt.Errorf("auditing legal hold %s: %w", h.ID, err)
	}
	l.check.wrote(h.Hash)
	if err := l.store.AppendHold(ctx, h); err != nil {
		return Hold{}, fmt.Errorf("archiving legal hold %s: %w", h.ID, err)
	}
	return h, nil
}

// InForce returns the holds in force, oldest first: of each hold id, its
// newest version that verifies, unless that is a release. A hold none of
// whose versions verify is in force as its newest version, with Refused
// set; so is a hold whose release was refused (Refused says why).
func (l *LegalHolds) InForce(ctx context.Context) ([]Hold, error) {
	recs, err := l.store.HoldRecords(ctx)
	if err != nil {
		return nil, fmt.Errorf("reading legal holds: %w", err)
	}
	return l.inForce(ctx, recs)
}

func (l *LegalHolds) inForce(ctx context.Context, recs []Hold) ([]Hold, error) {
	cs := make([]chained, len(recs))
	for i, r := range recs {
		cs[i] = r.chained()
	}
	v, err := l.check.judge(ctx, cs)
	if err != nil {
		return nil, fmt.Errorf("checking legal holds: %w", err)
	}
	type state struct {
		head    *Hold // newest counting version
		newest  Hold  // newest version, counting or not
		refused string
	}
	byID := map[string]*state{}
	var order []string
	for i, r := range recs {
		st := byID[r.ID]
		if st == nil {
			st = &state{newest: r}
			byID[r.ID] = st
			order = append(order, r.ID)
		}
		if r.Version >= st.newest.Version {
			st.newest = r
		}
		if v[i].Kind != "" {
			st.refused = strings.TrimPrefix(st.refused+"; "+fmt.Sprintf("version %d refused (%s): %s", r.Version, v[i].Kind, v[i].Detail), "; ")
			continue
		}
		if st.head == nil || r.Version >= st.head.Version {
			st.head = &recs[i]
		}
	}
	var out []Hold
	for _, id := range order {
		st := byID[id]
		h := st.newest
		if st.head != nil {
			h = *st.head
		}
		if h.Released && st.head != nil {
			continue
		}
		h.Released, h.Refused = false, st.refused
		out = append(out, h)
	}
	return out, nil
}
