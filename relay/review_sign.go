package relay

import (
	"context"
	"fmt"
	"strings"
)

// Signed, chained alert reviews (record_seal.go). A review takes a
// lexicon hit out of the review queue, so a review forged in the archive
// would hide an alert. Each decision on a hit is hashed, chained to the
// decision before it on the same hit, signed with the instance's seal
// key, and named by the signed alert_review audit record the console
// writes before archiving it (ReviewAuditDetail). ReviewLog, the
// AlertStore the console reads, counts only the decisions that verify: a
// hit whose review is refused stays in the queue (status "open"), with
// Flag saying why, and the refusal is logged at Error and raised as a
// "review_refused" alert.
//
// Reviews stored before reviews were signed (migration 0009; version 0,
// unsigned) are refused like forged ones once a key is set: their hits
// come back to the queue, flagged, until reviewed again.
//
// # Canonical encoding of a review, version 1
//
//	"wechat-relay/review/v1"
//	id, hit_id
//	version            (decimal)
//	prev_hash
//	at_ms              (decimal epoch milliseconds, 0 before 1970)
//	decision, comment, reviewer
//
// signed as "wechat-relay/review-signature/v1" || 0x00 || hash.

const reviewTag = "wechat-relay/review/v1"

var reviewKind = recordKind{name: "review", sigTag: "wechat-relay/review-signature/v1", action: AuditReview}

// ComputeHash is the hash of r's fields but Hash, KeyID and Signature.
func (r AlertReview) ComputeHash() string {
	enc := newEncoder(reviewTag)
	enc.str(r.ID)
	enc.str(r.HitID)
	enc.uint(r.Version)
	enc.str(r.PrevHash)
	enc.uint(archivedMillis(r.At))
	enc.str(r.Decision)
	enc.str(r.Comment)
	enc.str(r.Reviewer)
	return enc.sum()
}

func (r AlertReview) chained() chained {
	return chained{Chain: r.HitID, Seal: r.RecordSeal, Computed: r.ComputeHash(), At: r.At}
}

// ReviewSignatureMessage is what a review's signature signs.
func ReviewSignatureMessage(hash string) []byte { return signedMessage(reviewKind.sigTag, hash) }

// ReviewAuditDetail is detail followed by the marker naming the review
// r: " [review HIT-ID vVERSION HASH]".
func ReviewAuditDetail(detail string, r AlertReview) string {
	return recordAuditDetail(detail, reviewKind.name, r.HitID, r.Version, r.Hash)
}

// ReviewLog is an AlertStore whose reviews are signed and checked.
type ReviewLog struct {
	AlertStore
	check *recordChecker
}

// NewReviewLog wraps st, checking its reviews with t.
func NewReviewLog(st AlertStore, t RecordTrust) (*ReviewLog, error) {
	c, err := newRecordChecker(reviewKind, t)
	if err != nil {
		return nil, err
	}
	return &ReviewLog{AlertStore: st, check: c}, nil
}

// SealReview sets r's version, chain and signature, following the
// decisions on its hit that verify. Write its audit record
// (ReviewAuditDetail), then AppendReview.
func (l *ReviewLog) SealReview(ctx context.Context, r AlertReview) (AlertReview, error) {
	hit, ok, err := l.AlertStore.Hit(ctx, r.HitID)
	if err != nil {
		return AlertReview{}, fmt.Errorf("reading the reviews of %s: %w", r.HitID, err)
	}
	var cs []chained
	if ok {
		for _, prev := range hit.Reviews {
			cs = append(cs, prev.chained())
		}
	}
	r.RecordSeal = RecordSeal{}
	if err := l.check.seal(ctx, cs, r.HitID, &r.RecordSeal, func() string { return r.ComputeHash() }); err != nil {
		return AlertReview{}, fmt.Errorf("sealing a review of %s: %w", r.HitID, err)
	}
	return r, nil
}

// AppendReview archives r, sealed by SealReview, once its audit record
// is written.
func (l *ReviewLog) AppendReview(ctx context.Context, r AlertReview) error {
	l.check.wrote(r.Hash)
	return l.AlertStore.AppendReview(ctx, r)
}

// Alerts returns the hits q selects with their latest review that
// verifies; a hit with a refused review is open, flagged.
func (l *ReviewLog) Alerts(ctx context.Context, q AlertQuery) ([]LexiconHit, error) {
	limit := q.Limit
	if limit <= 0 || limit > 10000 {
		limit = 500
	}
	inner := q
	inner.Status, inner.Limit = "", limit
	if q.Status != "" {
		inner.Limit = min(limit*4, 10000)
	}
	hits, err := l.AlertStore.Alerts(ctx, inner)
	if err != nil {
		return nil, err
	}
	if err := l.settle(ctx, hits); err != nil {
		return nil, err
	}
	return FilterAlerts(hits, q.Status, limit), nil
}

// Hit returns one hit with its latest review that verifies.
func (l *ReviewLog) Hit(ctx context.Context, id string) (LexiconHit, bool, error) {
	hit, ok, err := l.AlertStore.Hit(ctx, id)
	if err != nil || !ok {
		return hit, ok, err
	}
	hits := []LexiconHit{hit}
	if err := l.settle(ctx, hits); err != nil {
		return LexiconHit{}, false, err
	}
	return hits[0], true, nil
}

// settle sets each hit's Review to its newest review that verifies, and
// Flag to why the others do not.
func (l *ReviewLog) settle(ctx context.Context, hits []LexiconHit) error {
	var cs []chained
	for _, h := range hits {
		for _, r := range h.Reviews {
			cs = append(cs, r.chained())
		}
	}
	v, err := l.check.judge(ctx, cs)
	if err != nil {
		return fmt.Errorf("checking reviews: %w", err)
	}
	i := 0
	for hi := range hits {
		h := &hits[hi]
		h.Review, h.Flag = nil, ""
		var flags []string
		for ri := range h.Reviews {
			r, vd := h.Reviews[ri], v[i]
			i++
			if vd.Kind != "" {
				flags = append(flags, fmt.Sprintf("review %s (version %d, %s by %s) refused, %s: %s", r.ID, r.Version, r.Decision, r.Reviewer, vd.Kind, vd.Detail))
				continue
			}
			if h.Review == nil || r.Version > h.Review.Version || (r.Version == h.Review.Version && !r.At.Before(h.Review.At)) {
				h.Review = &h.Reviews[ri]
			}
		}
		h.Flag = strings.Join(flags, "; ")
	}
	return nil
}
