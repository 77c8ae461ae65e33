package console

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"

	"github.com/wechat-relay/wechat-relay/relay"
)

// Search and export of the archive (eDiscovery), for supervisors and
// compliance officers (and admins); agents are refused (403):
//
//	GET  /api/search                  ?account=&client=&employee=&conv=&direction=&kind=
//	                                  &from=&to=&text=&limit=&cursor=&offset=
//	POST /api/exports                 start an export job (JSON: the same filters)
//	GET  /api/exports/{id}            the job: state and progress
//	GET  /api/exports/{id}/download   the zip, once done
//
// Every search, export and download is written to the audit trail first;
// a record that cannot be written refuses the request (503).

// Audit actions of search and export.
const (
	AuditArchiveSearch         = "archive_search"          // GET /api/search; Target: the query
	AuditArchiveExport         = "archive_export"          // POST /api/exports; Target: the query
	AuditArchiveExportDownload = "archive_export_download" // GET .../download; Target: the job id
)

// maySearch reports whether role may search and export the archive:
// supervisors, compliance officers and admins.
func maySearch(r Role) bool {
	switch r {
	case RoleSupervisor, RoleCompliance, RoleAdmin:
		return true
	}
	return false
}

// routeSearchExport mounts search (with Deps.Search) and export jobs
// (with Deps.Export).
func (s *Server) routeSearchExport(authed func(pattern string, serve func(http.ResponseWriter, *http.Request, *relay.Employee))) {
	if s.search != nil {
		authed("GET /api/search", s.serveSearch)
	}
	if x := s.exports; x != nil {
		authed("POST /api/exports", x.serveCreate)
		authed("GET /api/exports/{id}", x.serveStatus)
		authed("GET /api/exports/{id}/download", x.serveDownload)
	}
}

// ParseSearchQuery reads a search from URL parameters. from and to are
// RFC 3339 times or dates (YYYY-MM-DD, midnight UTC; to a date means
// up to the end of that day).
func ParseSearchQuery(v url.Values) (relay.SearchQuery, error) {
	q := relay.SearchQuery{
		Account: v.Get("account"), Client: v.Get("client"), Employee: v.Get("employee"),
		Conv: relay.ConversationID(v.Get("conv")), Direction: relay.Direction(v.Get("direction")),
		Kind: relay.Kind(v.Get("kind")), Text: v.Get("text"), Cursor: v.Get("cursor"),
	}
	var err error
	if q.From, err = relay.ParseSearchTime(v.Get("from"), false); err != nil {
		return q, fmt.Errorf("from: %w", err)
	}
	if q.To, err = relay.ParseSearchTime(v.Get("to"), true); err != nil {
		return q, fmt.Errorf("to: %w", err)
	}
	for name, dst := range map[string]*int{"limit": &q.Limit, "offset": &q.Offset} {
		if s := v.Get(name); s != "" {
			n, err := strconv.Atoi(s)
			if err != nil || n < 0 {
				return q, fmt.Errorf("%s: not a number: %q", name, s)
			}
			*dst = n
		}
	}
	return q, q.Validate()
}

// narrow limits a search or export of a supervisor without the
// all-teams grant to what their teams' members handled: nothing nobody
// held, and nothing at all in no team.
func (s *Server) narrow(emp *relay.Employee, q *relay.SearchQuery) {
	if !emp.TeamScoped() {
		return
	}
	q.Employees, _ = s.dir.Snapshot().Scope(*emp)
}

func (s *Server) serveSearch(w http.ResponseWriter, r *http.Request, emp *relay.Employee) {
	if !maySearch(emp.Role) {
		writeError(w, http.StatusForbidden, "searching the archive is for supervisors and compliance officers")
		return
	}
	q, err := ParseSearchQuery(r.URL.Query())
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	q.WithTotal = q.Cursor == ""
	s.narrow(emp, &q)
	if !s.auditOrRefuse(w, r, emp, AuditArchiveSearch, q.Conv, q.String(), "") {
		return
	}
	page, err := s.search.Search(r.Context(), q)
	if errors.Is(err, relay.ErrBadCursor) {
		writeError(w, http.StatusBadRequest, "cursor: not one this server made")
		return
	}
	if err != nil {
		s.log.Warn("searching the archive", "query", q.String(), "err", err)
		writeError(w, http.StatusServiceUnavailable, "archive unavailable")
		return
	}
	out := make([]WireMessage, len(page.Messages))
	for i, m := range page.Messages {
		out[i] = toWire(m)
	}
	body := map[string]any{"messages": out, "next": page.Next}
	if s.profiles != nil {
		// The clients' names, remarks and tags, by conversation.
		var convs []relay.ConversationID
		for _, m := range page.Messages {
			if !slices.Contains(convs, m.Conv) {
				convs = append(convs, m.Conv)
			}
		}
		body["profiles"] = s.clientProfiles(r.Context(), convs)
	}
	if page.Total >= 0 {
		body["total"] = page.Total
	}
	writeJSON(w, http.StatusOK, body)
}
