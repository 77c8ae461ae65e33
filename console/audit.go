package console

import (
	"context"
	"log/slog"
	"time"

	"github.com/wechat-relay/wechat-relay/relay"
)

// Audit records who looked at what. The console writes a record every
// time a supervisor opens a conversation (reads its messages, over HTTP
// or by a WebSocket resume) or downloads its media, before answering; a
// record that cannot be written refuses the view.
type Audit interface {
	Record(ctx context.Context, r AuditRecord) error
}

// Audit actions.
const (
	AuditOpenConversation   = "open_conversation"   // GET messages
	AuditResumeConversation = "resume_conversation" // WebSocket resume
	AuditDownloadMedia      = "download_media"      // GET media
)

// AuditRecord is one entry of the audit trail.
type AuditRecord struct {
	At       time.Time
	Employee string
	Role     Role
	Action   string
	Conv     relay.ConversationID
	// Target names what was looked at within the conversation (a
	// message id for media), "" for the conversation itself.
	Target string
	// From is where the request came from: the peer address, and what a
	// proxy said in X-Forwarded-For.
	From      string
	UserAgent string
}

// SlogAudit writes the audit trail as structured log lines at level
// INFO with msg "audit", for a log pipeline to keep. It never fails.
type SlogAudit struct{ Log *slog.Logger }

var _ Audit = SlogAudit{}

// Record writes r.
func (a SlogAudit) Record(ctx context.Context, r AuditRecord) error {
	attrs := []any{
		"at", r.At.UTC().Format(time.RFC3339Nano), "employee", r.Employee, "role", r.Role,
		"action", r.Action, "conv", r.Conv, "from", r.From, "user_agent", r.UserAgent,
	}
	if r.Target != "" {
		attrs = append(attrs, "target", r.Target)
	}
	a.Log.InfoContext(ctx, "audit", attrs...)
	return nil
}
