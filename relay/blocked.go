package relay

import (
	"context"
	"log/slog"
	"strconv"
	"time"
)

// BlockedSendRecorder returns what Lexicon.OnBlocked calls for a send a
// lexicon rule refused. It records it: in the audit log
// (who, which conversation, which rule and what matched — not the text,
// which is not archived), and as a hit in the review queue (no message
// id; the excerpt is the match alone), alerted like any other.
func BlockedSendRecorder(l *AuditLog, hits AlertStore, alert func(LexiconHit), log *slog.Logger) func(context.Context, SendRequest, LexiconMatch) {
	return func(ctx context.Context, req SendRequest, m LexiconMatch) {
		log.Warn("send blocked by a lexicon rule", "rule", m.Rule, "conv", req.Conv, "employee", req.Employee)
		role := "agent" // only agents send; the relay's own messages have no employee
		if req.Employee == "" {
			role = "relay"
		}
		if _, err := l.Append(ctx, AuditEntry{
			Employee: req.Employee, Role: role, Action: AuditSendBlocked, Conv: string(req.Conv),
			Target: m.Rule, Detail: "matched " + strconv.Quote(m.Matched),
		}); err != nil {
			log.Error("archiving the audit record of a blocked send", "conv", req.Conv, "err", err)
		}
		account, _ := req.Conv.Split()
		hit := LexiconHit{
			ID: HitID("blocked:"+string(req.Conv)+":"+req.Key, m.Rule), Account: account, Conv: req.Conv,
			Direction: Outbound, Employee: req.Employee, Rule: m.Rule, Matched: m.Matched,
			Excerpt: "(blocked, not sent) " + m.Matched, At: time.Now().Truncate(time.Millisecond),
		}
		if err := hits.AppendHits(ctx, []LexiconHit{hit}); err != nil {
			log.Error("archiving the hit of a blocked send", "conv", req.Conv, "err", err)
			return
		}
		alert(hit)
	}
}
