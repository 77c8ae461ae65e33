package console

import (
	"context"
	"net/http"

	"github.com/wechat-relay/wechat-relay/relay"
)

func (s *Server) serveHistory(w http.ResponseWriter, r *http.Request, emp *relay.Employee) {
	conv := relay.ConversationID(r.PathValue("conv"))
	after, err := parseUint(r.URL.Query().Get("after"), 0)
	if err != nil {
		writeError(w, http.StatusBadRequest, "after: "+err.Error())
		return
	}
	limit, err := parseUint(r.URL.Query().Get("limit"), 100)
	if err != nil || limit == 0 || limit > 1000 {
		writeError(w, http.StatusBadRequest, "limit must be between 1 and 1000")
		return
	}
	if !s.authorizeRead(w, r, emp, conv) {
		return
	}
	if !s.auditView(w, r, emp, AuditOpenConversation, conv, "") {
		return
	}
	msgs, err := s.history.Since(r.Context(), conv, after, int(limit))
	if err != nil {
		s.log.Warn("reading history", "conv", conv, "err", err)
		writeError(w, http.StatusServiceUnavailable, "archive unavailable")
		return
	}
	out := make([]WireMessage, len(msgs))
	for i, m := range msgs {
		out[i] = toWire(m)
	}
	s.addStatuses(r.Context(), out)
	writeJSON(w, http.StatusOK, map[string]any{"conv": conv, "messages": out})
}

// addStatuses sets the delivery status of the outbound messages of msgs:
// their latest event, or pending without one. Without Deliveries, or when
// they cannot be read, the messages go without (the socket's status
// frames still follow).
func (s *Server) addStatuses(ctx context.Context, msgs []WireMessage) {
	if s.deliveries == nil {
		return
	}
	var ids []string
	for _, m := range msgs {
		if m.Direction == string(relay.Outbound) {
			ids = append(ids, m.ID)
		}
	}
	if len(ids) == 0 {
		return
	}
	latest, err := s.deliveries.LatestEvents(ctx, ids)
	if err != nil {
		s.log.Info("reading delivery statuses", "err", err)
		return
	}
	for i := range msgs {
		if msgs[i].Direction != string(relay.Outbound) {
			continue
		}
		st := WireStatus{MessageID: msgs[i].ID, State: string(relay.DeliveryPending), At: msgs[i].AcceptedAt}
		if e, ok := latest[msgs[i].ID]; ok {
			st = toWireStatus(e)
		}
		msgs[i].Status = &st
	}
}

// History is the part of the archive the console reads.
type History interface {
	Since(ctx context.Context, conv relay.ConversationID, after uint64, limit int) ([]relay.Message, error)
}
