package console

import (
	"fmt"
	"net/http"
	"strconv"

	"github.com/wechat-relay/wechat-relay/relay"
)

// serveHandover handles POST /api/admin/employees/{id}/handover
// {"to","note"}: every conversation the employee holds goes to another
// agent — when they leave, say, before or after they are disabled. Each
// is an ordinary transfer by the admin: audited, archived as an internal
// message, live in the consoles. The handover as a whole is audited
// first; a retry moves what is left and records nothing twice.
func (s *Server) serveHandover(w http.ResponseWriter, r *http.Request, emp *relay.Employee) {
	if s.staff == nil || s.inbox == nil {
		writeError(w, http.StatusServiceUnavailable, "this relay cannot transfer conversations")
		return
	}
	var b struct {
		To   string `json:"to"`
		Note string `json:"note"`
	}
	if !decodeBody(w, r, &b, maxAdminBody, false) {
		return
	}
	from := r.PathValue("id")
	if _, ok := s.dir.Snapshot().Employee(from); !ok {
		writeError(w, http.StatusNotFound, "no employee "+strconv.Quote(from))
		return
	}
	to, ok := s.transferTarget(w, b.To)
	if !ok {
		return
	}
	if to.ID == from {
		writeError(w, http.StatusBadRequest, "an employee cannot hand over to themselves")
		return
	}
	convs, err := s.heldBy(r, from)
	if err != nil {
		s.log.Warn("listing the conversations of an employee", "employee", from, "err", err)
		writeError(w, http.StatusServiceUnavailable, "cannot list the employee's conversations right now")
		return
	}
	detail := fmt.Sprintf("handover of %d conversations to %s", len(convs), to.ID)
	if err := s.record(r, emp, relay.AuditAdminAction, "", relay.DirEmployee+":"+from, detail); err != nil {
		s.log.Error("writing the audit trail; handover refused", "employee", emp.ID, "from", from, "err", err)
		writeError(w, http.StatusServiceUnavailable, "the audit trail cannot be written right now, so nothing was moved")
		return
	}
	moved, failed := []string{}, []string{}
	for _, conv := range convs {
		if err := s.handOver(r, emp, conv, from, to.ID, b.Note); err != nil {
			s.log.Warn("handing over a conversation", "conv", conv, "from", from, "to", to.ID, "err", err)
			failed = append(failed, string(conv))
			continue
		}
		moved = append(moved, string(conv))
	}
	s.log.Info("handover", "by", emp.ID, "from", from, "to", to.ID, "moved", len(moved), "failed", len(failed))
	status := http.StatusOK
	if len(failed) > 0 {
		status = http.StatusServiceUnavailable
	}
	writeJSON(w, status, map[string]any{"moved": moved, "failed": failed})
}

// heldBy lists the conversations employee holds now: those whose latest
// archived message is filed under them (as every message routed to them
// and every transfer to them is), kept only where the assignment store
// agrees.
func (s *Server) heldBy(r *http.Request, employee string) ([]relay.ConversationID, error) {
	sums, err := s.inbox.Conversations(r.Context(), relay.ConversationFilter{Employees: []string{employee}})
	if err != nil {
		return nil, err
	}
	var out []relay.ConversationID
	for _, sum := range sums {
		owner, err := s.assign.Get(r.Context(), sum.Conv)
		if err != nil {
			return nil, err
		}
		if owner == employee {
			out = append(out, sum.Conv)
		}
	}
	return out, nil
}

// handOver transfers conv from one employee to another as admin emp.
func (s *Server) handOver(r *http.Request, emp *relay.Employee, conv relay.ConversationID, from, to, note string) error {
	key, err := s.actionKey(r.Context(), conv, relay.KindTransfer, emp.ID, from+"\x00"+to)
	if err != nil {
		return err
	}
	if err := s.record(r, emp, AuditTransfer, conv, to, note); err != nil {
		return err
	}
	_, err = s.staff.Act(r.Context(), relay.StaffAction{Kind: relay.KindTransfer, Conv: conv, By: emp.ID, Key: key, To: to, Text: note})
	return err
}
