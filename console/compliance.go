package console

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/wechat-relay/wechat-relay/relay"
)

// ComplianceDeps are the stores the compliance API reads and writes. A
// nil store leaves its routes out.
type ComplianceDeps struct {
	Audit     relay.AuditStore     // GET /api/audit
	Alerts    relay.AlertStore     // GET /api/alerts, POST /api/alerts/{id}/review
	Retention relay.RetentionStore // GET, POST /api/holds
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
func (h *Hub) routeCompliance(route func(pattern string, allowed func(Role) bool, serve func(http.ResponseWriter, *http.Request, *relay.Employee))) {
	d := h.compliance
	if d.Audit != nil {
		route("GET /api/audit", Role.ReadsAudit, func(w http.ResponseWriter, r *http.Request, emp *relay.Employee) {
			h.serveAudit(w, r, emp, d.Audit)
		})
	}
	if d.Alerts != nil {
		route("GET /api/alerts", Role.SeesAll, func(w http.ResponseWriter, r *http.Request, emp *relay.Employee) {
			h.serveAlerts(w, r, emp, d.Alerts)
		})
		route("POST /api/alerts/{id}/review", Role.ReadsAudit, func(w http.ResponseWriter, r *http.Request, emp *relay.Employee) {
			h.serveReview(w, r, emp, d.Alerts)
		})
	}
	if d.Retention != nil {
		route("GET /api/holds", Role.ReadsAudit, func(w http.ResponseWriter, r *http.Request, emp *relay.Employee) {
			holds, err := d.Retention.Holds(r.Context())
			if err != nil {
				h.log.Warn("reading legal holds", "err", err)
				writeError(w, http.StatusServiceUnavailable, "archive unavailable")
				return
			}
			writeJSON(w, http.StatusOK, map[string]any{"holds": orEmpty(holds)})
		})
		route("POST /api/holds", Role.ReadsAudit, func(w http.ResponseWriter, r *http.Request, emp *relay.Employee) {
			h.serveHold(w, r, emp, d.Retention)
		})
	}
}

func (h *Hub) serveAudit(w http.ResponseWriter, r *http.Request, emp *relay.Employee, st relay.AuditStore) {
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
	if !h.auditOrRefuse(w, r, emp, AuditReadAudit, "", "", queryDetail(q)) {
		return
	}
	out, err := st.SearchAudit(r.Context(), aq)
	if err != nil {
		h.log.Warn("searching the audit log", "err", err)
		writeError(w, http.StatusServiceUnavailable, "archive unavailable")
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"records": orEmpty(out)})
}

func (h *Hub) serveAlerts(w http.ResponseWriter, r *http.Request, emp *relay.Employee, st relay.AlertStore) {
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
	if !h.auditOrRefuse(w, r, emp, AuditReadAlerts, "", "", queryDetail(q)) {
		return
	}
	out, err := st.Alerts(r.Context(), aq)
	if err != nil {
		h.log.Warn("reading alerts", "err", err)
		writeError(w, http.StatusServiceUnavailable, "archive unavailable")
		return
	}
	if teamScoped(emp) {
		out = slices.DeleteFunc(out, func(hit relay.LexiconHit) bool { return !h.sees(emp, hit.Employee) })
	}
	writeJSON(w, http.StatusOK, map[string]any{"alerts": orEmpty(out)})
}

func (h *Hub) serveReview(w http.ResponseWriter, r *http.Request, emp *relay.Employee, st relay.AlertStore) {
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
		h.log.Warn("reading an alert", "id", id, "err", err)
		writeError(w, http.StatusServiceUnavailable, "archive unavailable")
		return
	case !ok:
		writeError(w, http.StatusNotFound, "no alert "+strconv.Quote(id))
		return
	}
	rev := relay.AlertReview{ID: "rev-" + randomID(), HitID: id, Decision: body.Decision, Comment: body.Comment,
		Reviewer: emp.ID, At: h.now()}
	if !h.auditOrRefuse(w, r, emp, AuditReview, hit.Conv, id, body.Decision+": "+body.Comment) {
		return
	}
	if err := st.AppendReview(r.Context(), rev); err != nil {
		h.log.Warn("archiving a review", "id", id, "err", err)
		writeError(w, http.StatusServiceUnavailable, "the review could not be archived; try again")
		return
	}
	writeJSON(w, http.StatusCreated, rev)
}

func (h *Hub) serveHold(w http.ResponseWriter, r *http.Request, emp *relay.Employee, st relay.RetentionStore) {
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
		Conv: relay.ConversationID(body.Conv), Reason: body.Reason, PlacedBy: emp.ID, At: h.now()}
	if err := relay.ValidateHold(hold); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	target := hold.ID + " client=" + hold.Client
	if !h.auditOrRefuse(w, r, emp, AuditLegalHold, hold.Conv, target, hold.Reason) {
		return
	}
	if err := st.PlaceHold(r.Context(), hold); err != nil {
		h.log.Warn("archiving a legal hold", "err", err)
		writeError(w, http.StatusServiceUnavailable, "the hold could not be archived; try again")
		return
	}
	writeJSON(w, http.StatusCreated, hold)
}

// Alert pushes a lexicon hit to the supervisors (team supervisors: of
// the employee's teams), compliance officers and admins connected to
// this instance, as an "alert" frame. Every instance
// sees every archived message (the bus) and alerts its own connections,
// so each person gets the alert once.
func (h *Hub) Alert(hit relay.LexiconHit) {
	h.mu.Lock()
	targets := make([]*conn, 0, len(h.conns))
	for c := range h.conns {
		if c.emp.Role.SeesAll() && h.sees(c.emp, hit.Employee) {
			targets = append(targets, c)
		}
	}
	h.mu.Unlock()
	for _, c := range targets {
		hit := hit
		c.enqueue(outItem{frame: &Frame{Type: FrameAlert, Conv: string(hit.Conv), Alert: &hit}})
	}
}

func parseLimit(s string, def int) (int, error) {
	if s == "" {
		return def, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n <= 0 || n > 10000 {
		return 0, errors.New("limit must be between 1 and 10000")
	}
	return n, nil
}

// queryDetail is a query string as the audit record keeps it: JSON of
// its parameters, in key order.
func queryDetail(q url.Values) string {
	if len(q) == 0 {
		return ""
	}
	m := map[string]string{}
	for k, v := range q {
		m[k] = strings.Join(v, ",")
	}
	b, _ := json.Marshal(m)
	return string(b)
}

func orEmpty[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

func randomID() string {
	b := make([]byte, 10)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
