package console

import (
	"context"
	"log/slog"
	"net/http"
	"time"

	"github.com/wechat-relay/wechat-relay/relay"
)

// Audit records who looked at what and who did what. The console writes
// a record every time a supervisor, compliance officer or admin opens a
// conversation (reads its messages, over HTTP or by a WebSocket resume)
// or downloads its media, before answering — a record that cannot be
// written refuses the view — and for every sign-in (failed ones too),
// sign-out, transfer, search, export, review decision and legal hold.
// ArchiveAudit keeps the records in the archive, chained
// (relay.AuditLog); SlogAudit only logs them.
type Audit interface {
	Record(ctx context.Context, r AuditRecord) error
}

// Audit actions.
const (
	AuditOpenConversation   = "open_conversation"   // GET messages
	AuditResumeConversation = "resume_conversation" // WebSocket resume
	AuditDownloadMedia      = "download_media"      // GET media
	AuditLiveView           = "live_view"           // a supervisor's WebSocket: every conversation, live
	AuditSignIn             = relay.AuditSignIn
	AuditSignInFailed       = relay.AuditSignInFailed
	AuditSignOut            = relay.AuditSignOut
	AuditTransfer           = relay.AuditTransfer
	AuditReview             = relay.AuditReview
	AuditLegalHold          = relay.AuditLegalHold
	AuditReadAudit          = relay.AuditReadAudit
	AuditReadAlerts         = relay.AuditReadAlerts
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
	// Detail says what else defines the action: a search's query, an
	// export's scope, a transfer's target, a review's comment.
	Detail string
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
	if r.Detail != "" {
		attrs = append(attrs, "detail", r.Detail)
	}
	a.Log.InfoContext(ctx, "audit", attrs...)
	return nil
}

// ArchiveAudit archives each record in the audit log, chained per writer
// (relay.AuditLog), and writes the slog line too. Record fails when the
// archive does, so a view whose record cannot be archived is refused.
type ArchiveAudit struct {
	Log  *relay.AuditLog
	Slog SlogAudit
}

var _ Audit = ArchiveAudit{}

// Record archives r, then logs it.
func (a ArchiveAudit) Record(ctx context.Context, r AuditRecord) error {
	_, err := a.Log.Append(ctx, relay.AuditEntry{
		At: r.At, Employee: r.Employee, Role: string(r.Role), Action: r.Action, Conv: string(r.Conv),
		Target: r.Target, Detail: r.Detail, Remote: r.From, UserAgent: r.UserAgent,
	})
	if err != nil {
		if a.Slog.Log != nil {
			// The log line keeps the record where the archive could not.
			_ = a.Slog.Record(ctx, r)
			a.Slog.Log.ErrorContext(ctx, "audit record not archived", "employee", r.Employee, "action", r.Action, "conv", r.Conv, "err", err)
		}
		return err
	}
	if a.Slog.Log != nil {
		return a.Slog.Record(ctx, r)
	}
	return nil
}

// record writes an audit record of an action emp took through r.
func (s *Server) record(r *http.Request, emp *relay.Employee, action string, conv relay.ConversationID, target, detail string) error {
	rec := AuditRecord{
		At: s.now(), Action: action, Conv: conv, Target: target, Detail: detail,
		From: remoteAddr(r), UserAgent: r.UserAgent(),
	}
	if emp != nil {
		rec.Employee, rec.Role = emp.ID, emp.Role
	}
	return s.audit.Record(r.Context(), rec)
}

// auditOrRefuse records an action emp takes through r, before it is
// taken: when the record cannot be written it answers 503 and reports
// false, and the action must not happen. The one "audit or refuse" of
// the console.
func (s *Server) auditOrRefuse(w http.ResponseWriter, r *http.Request, emp *relay.Employee, action string, conv relay.ConversationID, target, detail string) bool {
	if err := s.record(r, emp, action, conv, target, detail); err != nil {
		s.log.Error("writing the audit trail; request refused", "employee", emp.ID, "action", action, "err", err)
		writeError(w, http.StatusServiceUnavailable, "the audit trail cannot be written right now, so this cannot be done")
		return false
	}
	return true
}

// auditView writes an audit record when a supervisor (or compliance
// officer, or admin) views something of conv: agents' views of their own
// conversations are not audited. It reports whether the view may go on;
// when not (the record could not be written), it has answered.
func (s *Server) auditView(w http.ResponseWriter, r *http.Request, emp *relay.Employee, action string, conv relay.ConversationID, target string) bool {
	return !emp.Role.SeesAll() || s.auditOrRefuse(w, r, emp, action, conv, target, "")
}
