package console

import (
	"context"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/wechat-relay/wechat-relay/relay"
)

// Inbox is the part of the archive the inbox reads.
type Inbox interface {
	relay.ConversationIndex
	// MaxSeq returns the highest sequence archived for conv, 0 if none.
	MaxSeq(ctx context.Context, conv relay.ConversationID) (uint64, error)
}

// ReadMarks keeps how far each employee has read each conversation
// (storage/state).
type ReadMarks interface {
	// MarkRead raises employee's mark of conv to seq; it never lowers it.
	MarkRead(ctx context.Context, employee string, conv relay.ConversationID, seq uint64) error
	// ReadMarks returns employee's marks of convs; absent: never marked.
	ReadMarks(ctx context.Context, employee string, convs []relay.ConversationID) (map[relay.ConversationID]uint64, error)
}

// Deliveries gives the latest delivery event of outbound messages
// (relay.EventLog).
type Deliveries interface {
	LatestEvents(ctx context.Context, messageIDs []string) (map[string]relay.DeliveryEvent, error)
}

// inboxLimit caps the conversations one inbox answer lists.
const inboxLimit = 200

// windowHorizon is how long after the client's last message the inbox
// still asks the outbox about a conversation's window. WeChat's window is
// 48 hours; beyond this bound the window is closed without a look-up, so
// an inbox of old conversations costs no queries for them.
const windowHorizon = 7 * 24 * time.Hour

// inboxWorkers bounds the assignment and window look-ups one inbox
// answer makes at a time.
const inboxWorkers = 8

// WireConversation is one line of the inbox.
type WireConversation struct {
	Conv        string             `json:"conv"`
	Account     string             `json:"account"`
	Client      string             `json:"client"`
	Employee    string             `json:"employee"`
	Status      string             `json:"status"`
	LastSeq     uint64             `json:"last_seq"`
	LastMessage *WireMessage       `json:"last_message,omitempty"`
	Unread      int                `json:"unread"`
	Window      *relay.WindowState `json:"window,omitempty"`
	Profile     *WireProfile       `json:"profile,omitempty"` // the client's name, remark and tags (profile.go)
}

// serveInbox handles GET /api/conversations?status=open|resolved|all
// &employee=ID&team=ID&account=ID&q=TEXT&tag=TAG: agents get the
// conversations assigned to them (employee and team are ignored),
// supervisors all or their teams', filterable; team keeps those held by
// the team's members; q and tag keep the clients whose profile matches
// (relay.Profiles.Find).
func (s *Server) serveInbox(w http.ResponseWriter, r *http.Request, emp *relay.Employee) {
	q := r.URL.Query()
	f := relay.ConversationFilter{
		Account: q.Get("account"), Employee: q.Get("employee"),
		ActiveSince: s.now().Add(-s.cfg.InboxHorizon), Limit: inboxLimit,
	}
	switch st := q.Get("status"); st {
	case "", "open":
		f.Status = relay.StatusOpen
	case "resolved":
		f.Status = relay.StatusResolved
	case "all":
	default:
		writeError(w, http.StatusBadRequest, "status must be open, resolved or all")
		return
	}
	if !emp.Role.SeesAll() {
		f.Employee = emp.ID
	}
	var members []string // of the team asked for
	if team := q.Get("team"); team != "" {
		snap := s.dir.Snapshot()
		if _, ok := snap.Team(team); !ok {
			writeError(w, http.StatusBadRequest, "no team "+strconv.Quote(team))
			return
		}
		members = slices.DeleteFunc(snap.Members(team), func(id string) bool { return !s.sees(emp, id) })
		if len(members) == 0 {
			writeJSON(w, http.StatusOK, map[string]any{"conversations": []WireConversation{}})
			return
		}
		f.Employees = members
	} else if emp.TeamScoped() {
		// The archive's newest conversations may be other teams': ask it
		// for this supervisor's teams' only.
		f.Employees, _ = s.dir.Snapshot().Scope(*emp)
	}
	if text, tag := q.Get("q"), q.Get("tag"); text != "" || tag != "" {
		if s.profiles == nil {
			writeError(w, http.StatusBadRequest, "q and tag filter by client profile, which this console does not keep")
			return
		}
		found, err := s.profiles.Find(r.Context(), f.Account, text, tag)
		if err != nil {
			s.log.Warn("finding client profiles for the inbox", "employee", emp.ID, "err", err)
			writeError(w, http.StatusServiceUnavailable, "archive unavailable")
			return
		}
		if len(found) == 0 {
			writeJSON(w, http.StatusOK, map[string]any{"conversations": []WireConversation{}})
			return
		}
		for _, p := range found {
			f.Convs = append(f.Convs, p.Conv())
		}
	}
	sums, err := s.inbox.Conversations(r.Context(), f)
	if err != nil {
		s.log.Warn("listing conversations", "employee", emp.ID, "err", err)
		writeError(w, http.StatusServiceUnavailable, "archive unavailable")
		return
	}

	// The archive files each message under the assignee of its time; the
	// assignment store has the word on who holds a conversation now. An
	// agent sees only what is theirs now.
	owners := make([]string, len(sums))
	windows := make([]*relay.WindowState, len(sums))
	var (
		wg      sync.WaitGroup
		sem     = make(chan struct{}, inboxWorkers)
		mu      sync.Mutex
		firstEr error
	)
	for i := range sums {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			ctx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
			defer cancel()
			owner, err := s.assign.Get(ctx, sums[i].Conv)
			if err != nil {
				mu.Lock()
				firstEr = err
				mu.Unlock()
				return
			}
			owners[i] = owner
			windows[i] = s.inboxWindow(ctx, sums[i])
		})
	}
	wg.Wait()
	if firstEr != nil {
		s.log.Warn("reading assignments for the inbox", "employee", emp.ID, "err", firstEr)
		writeError(w, http.StatusServiceUnavailable, "cannot read assignments right now")
		return
	}

	var convs []relay.ConversationID
	var keep []int
	for i, sum := range sums {
		if !s.sees(emp, owners[i]) {
			continue
		}
		if emp.Role.SeesAll() && f.Employee != "" && owners[i] != "" && owners[i] != f.Employee {
			continue
		}
		if members != nil && !slices.Contains(members, owners[i]) {
			continue
		}
		keep = append(keep, i)
		convs = append(convs, sum.Conv)
	}
	unread, err := s.unread(r.Context(), emp, convs)
	if err != nil {
		s.log.Warn("counting unread messages", "employee", emp.ID, "err", err)
		writeError(w, http.StatusServiceUnavailable, "cannot count unread messages right now")
		return
	}
	profiles := s.clientProfiles(r.Context(), convs)
	out := make([]WireConversation, 0, len(keep))
	for _, i := range keep {
		sum := sums[i]
		wc := WireConversation{
			Conv: string(sum.Conv), Account: sum.Account, Client: sum.Client, Employee: owners[i],
			Status: string(sum.Status), LastSeq: sum.LastSeq, Unread: unread[sum.Conv], Window: windows[i],
			Profile: profiles[sum.Conv],
		}
		if wc.Employee == "" {
			wc.Employee = sum.Employee
		}
		if sum.Last.ID != "" {
			lm := toWire(sum.Last)
			wc.LastMessage = &lm
		}
		out = append(out, wc)
	}
	writeJSON(w, http.StatusOK, map[string]any{"conversations": out})
}

// inboxWindow returns the window of a listed conversation: asked of the
// outbox when the client interacted within windowHorizon, closed
// otherwise. nil
// without an outbox, or when the outbox cannot tell right now.
func (s *Server) inboxWindow(ctx context.Context, sum relay.ConversationSummary) *relay.WindowState {
	if s.outbox == nil {
		return nil
	}
	if sum.LastInteraction.IsZero() || s.now().Sub(sum.LastInteraction) > windowHorizon {
		return &relay.WindowState{Open: false}
	}
	ws, err := s.outbox.Window(ctx, sum.Conv)
	if err != nil {
		s.log.Info("window for the inbox", "conv", sum.Conv, "err", err)
		return nil
	}
	return &ws
}

// unread counts, per conversation, the inbound messages after emp's read
// mark.
func (s *Server) unread(ctx context.Context, emp *relay.Employee, convs []relay.ConversationID) (map[relay.ConversationID]int, error) {
	if len(convs) == 0 {
		return map[relay.ConversationID]int{}, nil
	}
	marks := map[relay.ConversationID]uint64{}
	if s.marks != nil {
		var err error
		if marks, err = s.marks.ReadMarks(ctx, emp.ID, convs); err != nil {
			return nil, err
		}
	}
	after := make(map[relay.ConversationID]uint64, len(convs))
	for _, c := range convs {
		after[c] = marks[c]
	}
	return s.inbox.CountInbound(ctx, after)
}

// serveRead handles POST /api/conversations/{conv}/read {"seq": N}: the
// employee has read conv up to N. Marks never move back; one beyond the
// conversation's last message is lowered to it.
func (s *Server) serveRead(w http.ResponseWriter, r *http.Request, emp *relay.Employee) {
	conv := relay.ConversationID(r.PathValue("conv"))
	var body struct {
		Seq *uint64 `json:"seq"`
	}
	if !decodeBody(w, r, &body, 4<<10, false) {
		return
	}
	if body.Seq == nil {
		writeError(w, http.StatusBadRequest, "seq is required")
		return
	}
	if !s.authorizeRead(w, r, emp, conv) {
		return
	}
	seq := *body.Seq
	if s.inbox != nil {
		last, err := s.inbox.MaxSeq(r.Context(), conv)
		if err != nil {
			writeError(w, http.StatusServiceUnavailable, "archive unavailable")
			return
		}
		seq = min(seq, last)
	}
	if err := s.marks.MarkRead(r.Context(), emp.ID, conv, seq); err != nil {
		s.log.Warn("recording a read mark", "employee", emp.ID, "conv", conv, "err", err)
		writeError(w, http.StatusServiceUnavailable, "cannot record the read mark right now")
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
