package console

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/wechat-relay/wechat-relay/relay"
)

// Staff carries out staff actions (relay.Staff): archived as internal
// messages, never sent to the client.
type Staff interface {
	Act(ctx context.Context, a relay.StaffAction) (string, error)
}

// maxActionBody caps the JSON body of a staff action.
const maxActionBody = 64 << 10

// serveNote handles POST /api/conversations/{conv}/notes {"key","text"}:
// anyone who may read the conversation may note in it.
func (s *Server) serveNote(w http.ResponseWriter, r *http.Request, emp *relay.Employee) {
	conv := relay.ConversationID(r.PathValue("conv"))
	var body struct {
		Key  string `json:"key"`
		Text string `json:"text"`
	}
	if !decodeBody(w, r, &body, maxActionBody, false) {
		return
	}
	if body.Key == "" {
		writeError(w, http.StatusBadRequest, "key is required (an idempotency key, e.g. a UUID)")
		return
	}
	if !s.authorizeRead(w, r, emp, conv) {
		return
	}
	s.act(w, r, relay.StaffAction{Kind: relay.KindNote, Conv: conv, By: emp.ID, Key: body.Key, Text: body.Text})
}

// serveTransfer handles POST /api/conversations/{conv}/transfer
// {"to","note","key"}: by the assignee or a supervisor, to an agent.
func (s *Server) serveTransfer(w http.ResponseWriter, r *http.Request, emp *relay.Employee) {
	conv := relay.ConversationID(r.PathValue("conv"))
	var body struct {
		To   string `json:"to"`
		Note string `json:"note"`
		Key  string `json:"key"`
	}
	if !decodeBody(w, r, &body, maxActionBody, false) {
		return
	}
	to, ok := s.transferTarget(w, body.To)
	if !ok {
		return
	}
	if !s.authorizeManage(w, r, emp, conv) {
		return
	}
	key := body.Key
	if key == "" {
		owner, err := s.assign.Get(r.Context(), conv)
		if err != nil {
			writeError(w, http.StatusServiceUnavailable, "cannot read the assignment right now")
			return
		}
		if owner == to.ID {
			writeError(w, http.StatusConflict, fmt.Sprintf("the conversation is already assigned to %s", to.ID))
			return
		}
		var ok bool
		// The note is part of the request: two transfers that differ
		// only in it are two requests, not a request and its retry.
		if key, ok = s.derivedKey(w, r, conv, relay.KindTransfer, emp.ID, owner+"\x00"+to.ID+"\x00"+body.Note); !ok {
			return
		}
	}
	if err := s.record(r, emp, AuditTransfer, conv, to.ID, body.Note); err != nil {
		s.log.Error("writing the audit trail; transfer refused", "employee", emp.ID, "conv", conv, "err", err)
		writeError(w, http.StatusServiceUnavailable, "the audit trail cannot be written right now, so the conversation cannot be transferred")
		return
	}
	s.act(w, r, relay.StaffAction{Kind: relay.KindTransfer, Conv: conv, By: emp.ID, Key: key, To: to.ID, Text: body.Note})
}

// transferTarget returns the enabled agent id names, who may take
// conversations over. When not, it has answered 400.
func (s *Server) transferTarget(w http.ResponseWriter, id string) (*relay.Employee, bool) {
	to := s.auth.employee(id)
	switch {
	case id == "":
		writeError(w, http.StatusBadRequest, "to is required: the id of the agent who takes the conversation over")
	case to == nil:
		writeError(w, http.StatusBadRequest, fmt.Sprintf("no enabled employee %q", id))
	case to.Role != RoleAgent:
		writeError(w, http.StatusBadRequest, fmt.Sprintf("%s is a %s; conversations are served by agents", to.ID, to.Role))
	default:
		return to, true
	}
	return nil, false
}

// serveStatus handles POST .../resolve and .../reopen {"key"} (the body
// is optional): by the assignee or a supervisor. Without a key, resolving
// a resolved conversation (or reopening an open one) is refused with 409.
func (s *Server) serveStatus(kind relay.Kind) func(http.ResponseWriter, *http.Request, *relay.Employee) {
	return func(w http.ResponseWriter, r *http.Request, emp *relay.Employee) {
		conv := relay.ConversationID(r.PathValue("conv"))
		var body struct {
			Key string `json:"key"`
		}
		if !decodeBody(w, r, &body, 4<<10, true) {
			return
		}
		if !s.authorizeManage(w, r, emp, conv) {
			return
		}
		key := body.Key
		if key == "" {
			if s.inbox != nil {
				sums, err := s.inbox.Conversations(r.Context(), relay.ConversationFilter{Conv: conv})
				if err != nil {
					writeError(w, http.StatusServiceUnavailable, "archive unavailable")
					return
				}
				already := relay.StatusOpen
				if kind == relay.KindResolve {
					already = relay.StatusResolved
				}
				if len(sums) == 1 && sums[0].Status == already {
					writeError(w, http.StatusConflict, fmt.Sprintf("the conversation is already %s", already))
					return
				}
			}
			var ok bool
			if key, ok = s.derivedKey(w, r, conv, kind, emp.ID, ""); !ok {
				return
			}
		}
		s.act(w, r, relay.StaffAction{Kind: kind, Conv: conv, By: emp.ID, Key: key})
	}
}

// derivedKey makes the idempotency key of an action sent without one:
// the same action by the same employee on the same state of the
// conversation (its last sequence) gets the same key, so a double click
// or a retry before the first was archived records it once.
func (s *Server) derivedKey(w http.ResponseWriter, r *http.Request, conv relay.ConversationID, kind relay.Kind, by, extra string) (string, bool) {
	key, err := s.actionKey(r.Context(), conv, kind, by, extra)
	if err != nil {
		writeError(w, http.StatusServiceUnavailable, "archive unavailable")
		return "", false
	}
	return key, true
}

// actionKey is the idempotency key of an action on conv in the state it
// is in now (its newest sequence number): a retry makes the same key, the
// same action after anything else happened a new one.
func (s *Server) actionKey(ctx context.Context, conv relay.ConversationID, kind relay.Kind, by, extra string) (string, error) {
	var last uint64
	if s.inbox != nil {
		var err error
		if last, err = s.inbox.MaxSeq(ctx, conv); err != nil {
			return "", err
		}
	}
	sum := sha256.Sum256([]byte(fmt.Sprintf("%s\x00%s\x00%s\x00%d", kind, by, extra, last)))
	return "auto-" + hex.EncodeToString(sum[:16]), nil
}

// act carries out a and answers 202 {"message_id"}: for a retry (the
// same key, the same request) the first one's id. A key used before for
// a different request is answered 409 and nothing is done.
func (s *Server) act(w http.ResponseWriter, r *http.Request, a relay.StaffAction) {
	id, err := s.staff.Act(r.Context(), a)
	switch {
	case errors.Is(err, relay.ErrBadAction):
		writeError(w, http.StatusBadRequest, strings.TrimPrefix(err.Error(), relay.ErrBadAction.Error()+": "))
	case errors.Is(err, relay.ErrKeyReused):
		s.log.Info("staff action refused: key reused", "kind", a.Kind, "conv", a.Conv, "employee", a.By, "key", a.Key)
		writeError(w, http.StatusConflict, fmt.Sprintf("idempotency key %s was already used for a different request (another %s of this conversation); nothing was done: use a new key for a new request", a.Key, a.Kind))
	case err != nil:
		s.log.Warn("staff action failed", "kind", a.Kind, "conv", a.Conv, "employee", a.By, "err", err)
		writeError(w, http.StatusServiceUnavailable, fmt.Sprintf("the %s could not be recorded; try again", a.Kind))
	default:
		s.log.Info("staff action", "kind", a.Kind, "conv", a.Conv, "employee", a.By, "to", a.To, "msg_id", id)
		writeJSON(w, http.StatusAccepted, map[string]string{"message_id": id})
	}
}
