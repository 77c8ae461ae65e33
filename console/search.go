package console

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/wechat-relay/wechat-relay/relay"
	"github.com/wechat-relay/wechat-relay/relay/export"
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
//
// Export jobs live in the memory of the instance that runs them, and
// their zips in its temporary directory: behind a load balancer, poll
// and download from the same instance (sticky sessions), and a restart
// forgets the jobs (start the export again). A finished zip is kept for
// exportKeep, then deleted; a job is only visible to who started it.
// Shutdown waits for running jobs (bounded by its context).

// Audit actions of search and export.
const (
	AuditArchiveSearch         = "archive_search"          // GET /api/search; Target: the query
	AuditArchiveExport         = "archive_export"          // POST /api/exports; Target: the query
	AuditArchiveExportDownload = "archive_export_download" // GET .../download; Target: the job id
)

// Limits of export jobs.
const (
	exportKeep       = 24 * time.Hour
	exportMaxRunning = 2
	exportMaxKept    = 100
	exportTimeout    = 2 * time.Hour
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

// routeSearchExport mounts search and export when the archive behind
// Deps.History can do them (both archives in storage can).
func (h *Hub) routeSearchExport(authed func(pattern string, serve func(http.ResponseWriter, *http.Request, *relay.Employee))) {
	src, ok := h.history.(export.Source)
	if !ok {
		return
	}
	x := &exportJobs{h: h, src: src, jobs: map[string]*exportJob{}}
	authed("GET /api/search", func(w http.ResponseWriter, r *http.Request, emp *relay.Employee) { h.serveSearch(w, r, emp, src) })
	authed("POST /api/exports", x.serveCreate)
	authed("GET /api/exports/{id}", x.serveStatus)
	authed("GET /api/exports/{id}/download", x.serveDownload)
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
	if q.From, err = ParseSearchTime(v.Get("from"), false); err != nil {
		return q, fmt.Errorf("from: %w", err)
	}
	if q.To, err = ParseSearchTime(v.Get("to"), true); err != nil {
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

// ParseSearchTime reads an RFC 3339 time or a date (YYYY-MM-DD, UTC).
// A date as the end of a range (end) means the end of that day.
func ParseSearchTime(s string, end bool) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	t, err := time.Parse("2006-01-02", s)
	if err != nil {
		return time.Time{}, fmt.Errorf("%q is neither a date (2006-01-02) nor an RFC 3339 time", s)
	}
	if end {
		t = t.AddDate(0, 0, 1)
	}
	return t, nil
}

// narrow limits a search or export of a supervisor in teams to what
// their teams' members handled, and what nobody held.
func (h *Hub) narrow(emp *relay.Employee, q *relay.SearchQuery) {
	if !teamScoped(emp) {
		return
	}
	ids, _ := h.dir.Snapshot().Scope(*emp)
	q.Employees = append(ids, "")
}

func (h *Hub) serveSearch(w http.ResponseWriter, r *http.Request, emp *relay.Employee, src relay.Searcher) {
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
	h.narrow(emp, &q)
	if !h.auditOrRefuse(w, r, emp, AuditArchiveSearch, q.Conv, q.String(), "") {
		return
	}
	page, err := src.Search(r.Context(), q)
	if errors.Is(err, relay.ErrBadCursor) {
		writeError(w, http.StatusBadRequest, "cursor: not one this server made")
		return
	}
	if err != nil {
		h.log.Warn("searching the archive", "query", q.String(), "err", err)
		writeError(w, http.StatusServiceUnavailable, "archive unavailable")
		return
	}
	out := make([]WireMessage, len(page.Messages))
	for i, m := range page.Messages {
		out[i] = toWire(m)
	}
	body := map[string]any{"messages": out, "next": page.Next}
	if page.Total >= 0 {
		body["total"] = page.Total
	}
	writeJSON(w, http.StatusOK, body)
}

// exportJobs runs and keeps the export jobs of one hub.
type exportJobs struct {
	h   *Hub
	src export.Source

	mu   sync.Mutex
	jobs map[string]*exportJob
}

// exportJob is one export. Its fields after mu are guarded by it.
type exportJob struct {
	ID       string            `json:"id"`
	Employee string            `json:"employee"`
	Query    relay.SearchQuery `json:"query"`
	Created  time.Time         `json:"created"`

	mu       sync.Mutex
	state    string // running, done, failed
	progress export.Progress
	err      string
	finished time.Time
	path     string // the zip
	size     int64
	manifest *export.Manifest
}

// exportRequest is the body of POST /api/exports.
type exportRequest struct {
	Account   string `json:"account"`
	Client    string `json:"client"`
	Employee  string `json:"employee"`
	Conv      string `json:"conv"`
	Direction string `json:"direction"`
	Kind      string `json:"kind"`
	From      string `json:"from"`
	To        string `json:"to"`
	Text      string `json:"text"`
}

func (x *exportJobs) serveCreate(w http.ResponseWriter, r *http.Request, emp *relay.Employee) {
	if !maySearch(emp.Role) {
		writeError(w, http.StatusForbidden, "exporting the archive is for supervisors and compliance officers")
		return
	}
	var req exportRequest
	if err := json.NewDecoder(io.LimitReader(r.Body, 64<<10)).Decode(&req); err != nil {
		writeError(w, http.StatusBadRequest, "body: "+err.Error())
		return
	}
	q, err := ParseSearchQuery(url.Values{
		"account": {req.Account}, "client": {req.Client}, "employee": {req.Employee}, "conv": {req.Conv},
		"direction": {req.Direction}, "kind": {req.Kind}, "from": {req.From}, "to": {req.To}, "text": {req.Text},
	})
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	if q.Account == "" && q.Client == "" && q.Employee == "" && q.Conv == "" && q.Text == "" && q.From.IsZero() && q.To.IsZero() {
		writeError(w, http.StatusBadRequest, "an export needs a filter: conv, client, employee, account, text or a date range")
		return
	}
	x.h.narrow(emp, &q)
	id := newExportID()
	if !x.h.auditOrRefuse(w, r, emp, AuditArchiveExport, q.Conv, "export "+id+": "+q.String(), "") {
		return
	}
	job := &exportJob{ID: id, Employee: emp.ID, Query: q, Created: x.h.now().UTC(), state: "running"}
	if status, msg := x.start(job, emp); status != 0 {
		writeError(w, status, msg)
		return
	}
	writeJSON(w, http.StatusAccepted, job.view())
}

// start registers job and runs it in the background; a non-zero status
// is why it could not start.
func (x *exportJobs) start(job *exportJob, emp *relay.Employee) (int, string) {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.expireLocked()
	running := 0
	for _, j := range x.jobs {
		j.mu.Lock()
		if j.state == "running" {
			running++
		}
		j.mu.Unlock()
	}
	if running >= exportMaxRunning {
		return http.StatusTooManyRequests, "too many exports running; try again when one is done"
	}
	if len(x.jobs) >= exportMaxKept {
		return http.StatusTooManyRequests, "too many exports kept; download them or wait for them to expire"
	}
	h := x.h
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return http.StatusServiceUnavailable, "shutting down"
	}
	// Counted under the lock Shutdown takes before waiting, as for
	// connections: Shutdown cancels running exports and waits for them.
	h.wg.Add(1)
	h.mu.Unlock()
	x.jobs[job.ID] = job
	go func() {
		defer h.wg.Done()
		x.run(job, emp)
	}()
	return 0, ""
}

func (x *exportJobs) run(job *exportJob, emp *relay.Employee) {
	ctx, cancel := context.WithTimeout(x.h.ctx, exportTimeout)
	defer cancel()
	fail := func(err error) {
		x.h.log.Error("export failed", "export", job.ID, "employee", job.Employee, "err", err)
		job.mu.Lock()
		job.state, job.err, job.finished = "failed", err.Error(), x.h.now().UTC()
		job.mu.Unlock()
	}
	f, err := os.CreateTemp("", "wechat-relay-export-*.zip")
	if err != nil {
		fail(fmt.Errorf("creating the zip: %w", err))
		return
	}
	path := f.Name()
	man, err := export.Run(ctx, x.src, export.Request{
		Query: job.Query, By: emp.ID + " (" + emp.Name + ", " + string(emp.Role) + ")", Version: x.h.version, Now: x.h.now(),
	}, export.NewZipSink(f), func(p export.Progress) {
		job.mu.Lock()
		job.progress = p
		job.mu.Unlock()
	})
	if err != nil {
		os.Remove(path)
		fail(err)
		return
	}
	st, err := os.Stat(path)
	if err != nil {
		os.Remove(path)
		fail(err)
		return
	}
	job.mu.Lock()
	job.state, job.path, job.size, job.manifest, job.finished = "done", path, st.Size(), man, x.h.now().UTC()
	job.mu.Unlock()
	x.h.log.Info("export done", "export", job.ID, "employee", job.Employee, "messages", man.Counts.Messages, "bytes", st.Size())
}

// expireLocked forgets finished jobs older than exportKeep and deletes
// their zips. x.mu is held.
func (x *exportJobs) expireLocked() {
	now := x.h.now()
	for id, j := range x.jobs {
		j.mu.Lock()
		old := j.state != "running" && now.Sub(j.finished) > exportKeep
		path := j.path
		j.mu.Unlock()
		if old {
			if path != "" {
				os.Remove(path)
			}
			delete(x.jobs, id)
		}
	}
}

// job returns the job id of emp, or answers 404.
func (x *exportJobs) job(w http.ResponseWriter, r *http.Request, emp *relay.Employee) *exportJob {
	if !maySearch(emp.Role) {
		writeError(w, http.StatusForbidden, "exporting the archive is for supervisors and compliance officers")
		return nil
	}
	x.mu.Lock()
	x.expireLocked()
	j := x.jobs[r.PathValue("id")]
	x.mu.Unlock()
	if j == nil || j.Employee != emp.ID {
		writeError(w, http.StatusNotFound, "no such export on this server (jobs live in the memory of the instance that runs them)")
		return nil
	}
	return j
}

func (x *exportJobs) serveStatus(w http.ResponseWriter, r *http.Request, emp *relay.Employee) {
	if j := x.job(w, r, emp); j != nil {
		writeJSON(w, http.StatusOK, j.view())
	}
}

func (x *exportJobs) serveDownload(w http.ResponseWriter, r *http.Request, emp *relay.Employee) {
	j := x.job(w, r, emp)
	if j == nil {
		return
	}
	j.mu.Lock()
	state, path, size := j.state, j.path, j.size
	j.mu.Unlock()
	if state != "done" {
		writeError(w, http.StatusConflict, "the export is "+state)
		return
	}
	if !x.h.auditOrRefuse(w, r, emp, AuditArchiveExportDownload, j.Query.Conv, j.ID, "") {
		return
	}
	f, err := os.Open(path)
	if err != nil {
		x.h.log.Error("opening an export", "export", j.ID, "err", err)
		writeError(w, http.StatusGone, "the export's file is gone; start it again")
		return
	}
	defer f.Close()
	hd := w.Header()
	hd.Set("Content-Type", "application/zip")
	hd.Set("Content-Length", strconv.FormatInt(size, 10))
	hd.Set("Content-Disposition", `attachment; filename="wechat-relay-export-`+j.ID+`.zip"`)
	io.Copy(w, f)
}

// exportView is a job as GET /api/exports/{id} shows it.
type exportView struct {
	ID       string            `json:"id"`
	State    string            `json:"state"` // running, done, failed
	Query    relay.SearchQuery `json:"query"`
	Created  time.Time         `json:"created"`
	Finished time.Time         `json:"finished,omitzero"`
	Progress export.Progress   `json:"progress"`
	Error    string            `json:"error,omitempty"`
	Size     int64             `json:"size,omitempty"`
	Download string            `json:"download,omitempty"`
	Counts   *export.Counts    `json:"counts,omitempty"`
	Manifest *export.Manifest  `json:"-"`
}

func (j *exportJob) view() exportView {
	j.mu.Lock()
	defer j.mu.Unlock()
	v := exportView{ID: j.ID, State: j.state, Query: j.Query, Created: j.Created, Finished: j.finished,
		Progress: j.progress, Error: j.err, Size: j.size}
	if j.state == "done" {
		v.Download = "/api/exports/" + j.ID + "/download"
		c := j.manifest.Counts
		v.Counts = &c
	}
	return v
}

func newExportID() string {
	var b [12]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
