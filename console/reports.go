package console

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/wechat-relay/wechat-relay/relay"
	"github.com/wechat-relay/wechat-relay/relay/report"
)

// Reports, for supervisors, compliance officers and admins; agents are
// refused (403):
//
//	GET /api/reports          the report names
//	GET /api/reports/{name}   ?from=&to=&tz=&account=&team=&employee=&within=
//	                          &format=json|csv&table=
//
// A team supervisor sees their teams' members only and is refused
// another team or employee (403). Every view is written to the audit
// trail first (report_view); a record that cannot be written refuses
// the request (503). Parameters no report can use are refused (400)
// before anything is recorded.

// AuditReportView is the audit action of a report view; Target: the
// report's name, Detail: its parameters.
const AuditReportView = relay.AuditReportView

// routeReports mounts the reports (with Deps.Reports).
func (s *Server) routeReports(route func(pattern string, allowed func(Role) bool, serve func(http.ResponseWriter, *http.Request, *relay.Employee))) {
	if s.reports == nil {
		return
	}
	route("GET /api/reports", Role.SeesAll, func(w http.ResponseWriter, r *http.Request, emp *relay.Employee) {
		writeJSON(w, http.StatusOK, map[string]any{"reports": report.Names})
	})
	route("GET /api/reports/{name}", Role.SeesAll, s.serveReport)
}

func (s *Server) serveReport(w http.ResponseWriter, r *http.Request, emp *relay.Employee) {
	v := r.URL.Query()
	format := v.Get("format")
	if format == "" {
		format = "json"
	}
	if format != "json" && format != "csv" {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("format: %q is neither json nor csv", format))
		return
	}
	req, err := report.Params{
		Name: r.PathValue("name"), From: v.Get("from"), To: v.Get("to"), TZ: v.Get("tz"),
		Account: v.Get("account"), Team: v.Get("team"), Employee: v.Get("employee"), Within: v.Get("within"),
	}.Parse(s.now())
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	if !s.auditOrRefuse(w, r, emp, AuditReportView, "", req.Name, reportDetail(v)) {
		return
	}
	rep, err := s.reports.Run(r.Context(), emp, s.dir.Snapshot(), req)
	switch {
	case errors.Is(err, report.ErrBadRequest):
		writeError(w, http.StatusBadRequest, err.Error())
		return
	case errors.Is(err, report.ErrForbidden):
		writeError(w, http.StatusForbidden, err.Error())
		return
	case err != nil:
		s.log.Warn("computing a report", "report", req.Name, "employee", emp.ID, "err", err)
		writeError(w, http.StatusServiceUnavailable, "archive unavailable")
		return
	}
	if format == "json" {
		writeJSON(w, http.StatusOK, rep)
		return
	}
	table := v.Get("table")
	if table != "" {
		if _, ok := rep.Table(table); !ok {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("table: the %s report has no table %q", rep.Name, table))
			return
		}
	}
	name := "report-" + rep.Name
	if table != "" {
		name += "-" + table
	}
	w.Header().Set("Content-Type", "text/csv; charset=utf-8")
	w.Header().Set("Content-Disposition", `attachment; filename="`+name+`.csv"`)
	if err := report.WriteCSV(w, rep, table); err != nil {
		s.log.Warn("writing a report as CSV", "report", rep.Name, "err", err)
	}
}

// reportDetail is the parameters of a report view, for the audit record:
// the query without the ones that only shape the answer.
func reportDetail(v url.Values) string {
	keep := url.Values{}
	for _, k := range []string{"from", "to", "tz", "account", "team", "employee", "within"} {
		if s := strings.TrimSpace(v.Get(k)); s != "" {
			keep.Set(k, s)
		}
	}
	return keep.Encode()
}
