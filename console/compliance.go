package console

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/wechat-relay/wechat-relay/relay"
)

// ComplianceDeps are the stores the compliance API reads and writes. A
// nil store leaves its routes out.
type ComplianceDeps struct {
	Audit relay.AuditStore // GET /api/audit
	// Alerts: GET /api/alerts, POST /api/alerts/{id}/review. A
	// *relay.ReviewLog signs reviews and shows a hit whose review does
	// not verify as open, flagged.
	Alerts relay.AlertStore
	// Holds: GET, POST /api/holds. No route releases a hold (docs/compliance.md).
	Holds *relay.LegalHolds
}

// reviewSealer is an AlertStore that signs reviews (relay.ReviewLog).
type reviewSealer interface {
	SealReview(ctx context.Context, r relay.AlertReview) (relay.AlertReview, error)
}

// routeCompliance adds the compliance API (Deps.Compliance) to Handler's
// routes:
//
//	GET  /api/audit?who=&action=&conv=&from=&to=&limit=   the audit log (compliance, admin)
//	GET  /api/alerts?status=&account=&from=&to=&limit=   lexicon hits and their latest review (supervisor, compliance, admin)
//	POST /api/alerts/{id}/review                          {"decision":"reviewed"|"escalated","comment"} (compliance, admin)
//	GET  /api/holds                                       legal holds (compliance, admin)
//	POST /api/holds                                       {"account","client"|"conv","reason"} (compliance, admin)
//
// Every request is itself written to the audit log, before it is
// answered; one whose record cannot be written is refused. There is no
// route that deletes or changes anything archived.
func (s *Server) routeCompliance(route func(pattern string, allowed func(Role) bool, serve func(http.ResponseWriter, *http.Request, *relay.Employee))) {
	d := s.compliance
	if d.Audit != nil {
		route("GET /api/audit", Role.ReadsAudit, func(w http.ResponseWriter, r *http.Request, emp *relay.Employee) {
			s.serveAudit(w, r, emp, d.Audit)
		})
	}
	if d.Alerts != nil {
		route("GET /api/alerts", Role.SeesAll, func(w http.ResponseWriter, r *http.Request, emp *relay.Employee) {
			s.serveAlerts(w, r, emp, d.Alerts)
		})
		route("POST /api/alerts/{id}/review", Role.ReadsAudit, func(w http.ResponseWriter, r *http.Request, emp *relay.Employee) {
			s.serveReview(w, r, emp, d.Alerts)
		})
	}
	if d.Holds != nil {
		route("GET /api/holds", Role.ReadsAudit, func(w http.ResponseWriter, r *http.Request, emp *relay.Employee) {
			holds, err := d.Holds.InForce(r.Context())
			if err != nil {
				s.log.Warn("reading legal holds", "err", err)
				writeError(w, http.StatusServiceUnavailable, "archive unavailable")
				return
			}
			writeJSON(w, http.StatusOK, map[string]any{"holds": orEmpty(holds)})
		})
		route("POST /api/holds", Role.ReadsAudit, func(w http.ResponseWriter, r *http.Request, emp *relay.Employee) {
			s.serveHold(w, r, emp, d.Holds)
		})
	}
}

func (s *Server) serveAudit(w http.ResponseWriter, r *http.Request, emp *relay.Employee, st relay.AuditStore) {
	q := r.URL.Query()
	aq := relay.AuditQuery{Employee: q.Get("who"), Action: q.Get("action"), Conv: q.Get("conv")}
	var err error
	if aq.From, err = relay.ParseAuditTime(q.Get("from")); err != nil {
		writeError(w, http.StatusBadRequest, "from: "+err.Error())
		return
	}
	if aq.To, err = relay.ParseAuditTime(q.Get("to")); err != nil {
		writeError(w, http.StatusBadRequest, "to: "+err.Error())
		return
	}
	if aq.Limit, err = parseLimit(q.Get("limit"), 1000); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	if !s.auditOrRefuse(w, r, emp, AuditReadAudit, "", "", queryDetail(q)) {
		return
	}
	out, err := st.SearchAudit(r.Context(), aq)
	if err != nil {
		s.log.Warn("searching the audit log", "err", err)
		writeError(w, http.StatusServiceUnavailable, "archive unavailable")
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"records": orEmpty(out)})
}

func (s *Server) serveAlerts(w http.ResponseWriter, r *http.Request, emp *relay.Employee, st relay.AlertStore) {
	q := r.URL.Query()
	aq := relay.AlertQuery{Account: q.Get("account"), Status: q.Get("status")}
	switch aq.Status {
	case "", "open", relay.DecisionReviewed, relay.DecisionEscalated:
	default:
		writeError(w, http.StatusBadRequest, "status must be open, reviewed or escalated")
		return
	}
	var err error
	if aq.From, err = relay.ParseAuditTime(q.Get("from")); err != nil {
		writeError(w, http.StatusBadRequest, "from: "+err.Error())
		return
	}
	if aq.To, err = relay.ParseAuditTime(q.Get("to")); err != nil {
		writeError(w, http.StatusBadRequest, "to: "+err.Error())
		return
	}
	if aq.Limit, err = parseLimit(q.Get("limit"), 500); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	if emp.TeamScoped() {
		aq.Employees, _ = s.dir.Snapshot().Scope(*emp)
	}
	if !s.auditOrRefuse(w, r, emp, AuditReadAlerts, "", "", queryDetail(q)) {
		return
	}
	out, err := st.Alerts(r.Context(), aq)
	if err != nil {
		s.log.Warn("reading alerts", "err", err)
		writeError(w, http.StatusServiceUnavailable, "archive unavailable")
		return
	}
	if emp.TeamScoped() {
		out = slices.DeleteFunc(out, func(hit relay.LexiconHit) bool { return !s.sees(emp, hit.Employee) })
	}
	writeJSON(w, http.StatusOK, map[string]any{"alerts": orEmpty(out)})
}

func (s *Server) serveReview(w http.ResponseWriter, r *http.Request, emp *relay.Employee, st relay.AlertStore) {
	id := r.PathValue("id")
	var body struct {
		Decision string `json:"decision"`
		Comment  string `json:"comment"`
	}
	if !decodeBody(w, r, &body, 16<<10, false) {
		return
	}
	if !relay.ValidDecision(body.Decision) {
		writeError(w, http.StatusBadRequest, "decision must be reviewed or escalated")
		return
	}
	hit, ok, err := st.Hit(r.Context(), id)
	switch {
	case err != nil:
		s.log.Warn("reading an alert", "id", id, "err", err)
		writeError(w, http.StatusServiceUnavailable, "archive unavailable")
		return
	case !ok:
		writeError(w, http.StatusNotFound, "no alert "+strconv.Quote(id))
		return
	}
	rev := relay.AlertReview{ID: "rev-" + randomID(), HitID: id, Decision: body.Decision, Comment: body.Comment,
		Reviewer: emp.ID, At: s.now().UTC().Truncate(time.Millisecond)}
	detail := body.Decision + ": " + body.Comment
	if sealer, ok := st.(reviewSealer); ok {
		if rev, err = sealer.SealReview(r.Context(), rev); err != nil {
			s.log.Warn("sealing a review", "id", id, "err", err)
			writeError(w, http.StatusServiceUnavailable, "archive unavailable")
			return
		}
		detail = relay.ReviewAuditDetail(detail, rev)
	}
	if !s.auditOrRefuse(w, r, emp, AuditReview, hit.Conv, id, detail) {
		return
	}
	if err := st.AppendReview(r.Context(), rev); err != nil {
		s.log.Warn("archiving a review", "id", id, "err", err)
		writeError(w, http.StatusServiceUnavailable, "the review could not be archived; try again")
		return
	}
	writeJSON(w, http.StatusCreated, rev)
}

func (s *Server) serveHold(w http.ResponseWriter, r *http.Request, emp *relay.Employee, lh *relay.LegalHolds) {
	var body struct {
		Account string `json:"account"`
		Client  string `json:"client"`
		Conv    string `json:"conv"`
		Reason  string `json:"reason"`
	}
	if !decodeBody(w, r, &body, 16<<10, false) {
		return
	}
	hold := relay.Hold{ID: "hold-" + randomID(), Account: body.Account, Client: body.Client,
		Conv: relay.ConversationID(body.Conv), Reason: body.Reason, PlacedBy: emp.ID, At: s.now()}
	if err := relay.ValidateHold(hold); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	s.writeHold(w, r, emp, "placed", func(audit func(relay.Hold) error) (relay.Hold, error) {
		return lh.Place(r.Context(), hold, audit)
	})
}

// writeHold places a hold by write, whose legal_hold audit record names
// the version (relay.HoldAuditDetail); a hold that cannot be audited is
// not written.
func (s *Server) writeHold(w http.ResponseWriter, r *http.Request, emp *relay.Employee, what string, write func(audit func(relay.Hold) error) (relay.Hold, error)) {
	audited := false
	hold, err := write(func(h relay.Hold) error {
		target := h.ID + " client=" + h.Client
		if err := s.record(r, emp, AuditLegalHold, h.Conv, target, relay.HoldAuditDetail(what+": "+h.Reason, h)); err != nil {
			return err
		}
		audited = true
		return nil
	})
	switch {
	case errors.Is(err, relay.ErrNoHold):
		writeError(w, http.StatusNotFound, err.Error())
	case err != nil && !audited:
		s.log.Error("writing the audit trail of a legal hold; refused", "employee", emp.ID, "err", err)
		writeError(w, http.StatusServiceUnavailable, "the audit trail cannot be written right now, so this cannot be done")
	case err != nil:
		s.log.Warn("archiving a legal hold", "err", err)
		writeError(w, http.StatusServiceUnavailable, "the hold could not be archived; try again")
	default:
		writeJSON(w, http.StatusCreated, hold)
	}
}
