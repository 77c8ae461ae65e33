package console

import (
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/wechat-relay/wechat-relay/relay"
	"github.com/wechat-relay/wechat-relay/relay/export"
	"github.com/wechat-relay/wechat-relay/relay/report"
)

// Deps are the parts of the relay the console uses. Bus, History and
// Assignments are required; every other part may be nil, which turns off
// what needs it (named in its comment).
type Deps struct {
	Bus         relay.Bus
	History     History
	Assignments Assignments
	// Outbox sends; nil: the console is read-only (no send, window,
	// typing, and no window in the inbox).
	Outbox Outbox
	// Sessions keeps browser sessions; nil: no POST /api/login, API
	// tokens only.
	Sessions SessionStore
	// Throttle locks an employee id after repeated failed sign-ins; nil:
	// no lockout.
	Throttle LoginThrottle
	// ReadMarks keeps how far each employee has read; nil: no
	// POST .../read, and every inbound message counts as unread.
	ReadMarks ReadMarks
	// Inbox lists conversations; nil: no GET /api/conversations.
	Inbox Inbox
	// Deliveries gives the delivery status of outbound messages in
	// GET .../messages; nil: messages carry no status.
	Deliveries Deliveries
	// Media reads archived media; nil: no GET /api/media/.
	Media relay.MediaReader
	// Search searches the archive; nil: no GET /api/search.
	Search relay.Searcher
	// Export reads what an eDiscovery export takes from the archive;
	// nil: no /api/exports.
	Export export.Source
	// Reports computes the reports (relay/report); nil: no
	// /api/reports.
	Reports report.Store
	// Staff carries out notes, transfers, resolve and reopen; nil: none.
	Staff Staff
	// QRCodes makes employees' QR codes; nil: no GET /api/me/qrcode.
	QRCodes QRCodes
	// Audit records supervisors' views; nil: SlogAudit on Logger.
	Audit Audit
	// Directory is who may sign in, in which role and team; admins
	// change it (GET/POST /api/admin/...). nil: the configuration's
	// employees and teams, unchangeable.
	Directory *relay.Directory
	// IdentityProviders are mounted under /api/sso/<name>/ (the seam for
	// single sign-on).
	IdentityProviders []IdentityProvider
	Logger            *slog.Logger
	Registerer        prometheus.Registerer
	// Now is the clock (time.Now).
	Now func() time.Time
	// Version is the relay's, written into export manifests.
	Version string
	// Profiles keeps client profiles and tag vocabularies (profile.go);
	// nil: no /api/clients/.../profile, /api/tags, and no profiles in
	// the inbox and search results.
	Profiles *relay.Profiles
	// Compliance serves the audit log, alerts and legal holds under
	// /api/ (compliance.go); its nil stores leave their routes out.
	Compliance ComplianceDeps
	// Journal is the journal to the firm's archive; nil: none (GET
	// /api/admin/journal says so).
	Journal JournalStatus
}

// employeeAccounts lists the accounts the employees serve, for a
// console given no directory.
func employeeAccounts(emps []Employee) []relay.AccountInfo {
	var out []relay.AccountInfo
	seen := map[string]bool{}
	for _, e := range emps {
		for _, a := range e.Accounts {
			if !seen[a] {
				seen[a] = true
				out = append(out, relay.AccountInfo{ID: a})
			}
		}
	}
	return out
}
