package console

import (
	"context"
	"net/http"

	"github.com/wechat-relay/wechat-relay/relay"
)

// JournalStatus is the journal to the firm's archive (relay/journal), as
// admins see it: what is not journaled yet and how the last rounds went.
type JournalStatus interface {
	Status(ctx context.Context) relay.JournalStatus
}

// routeJournal adds GET /api/admin/journal, for admins: the journal's
// status, {"enabled": false} when the relay has none.
func (s *Server) routeJournal(route func(pattern string, allowed func(Role) bool, serve func(http.ResponseWriter, *http.Request, *relay.Employee))) {
	route("GET /api/admin/journal", Role.Configures, func(w http.ResponseWriter, r *http.Request, _ *relay.Employee) {
		if s.journal == nil {
			writeJSON(w, http.StatusOK, relay.JournalStatus{})
			return
		}
		writeJSON(w, http.StatusOK, s.journal.Status(r.Context()))
	})
}
