package console

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
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

// Export jobs live in the memory of the instance that runs them, and
// their zips in its temporary directory: behind a load balancer, poll
// and download from the same instance (sticky sessions), and a restart
// forgets the jobs (start the export again). A finished zip is kept for
// exportKeep, then deleted; a job is only visible to who started it.
// Shutdown waits for running jobs (bounded by its context).

// Limits of export jobs.
const (
	exportKeep       = 24 * time.Hour
	exportMaxRunning = 2
	exportMaxKept    = 100
	exportTimeout    = 2 * time.Hour
)

// exportJobs runs and keeps the export jobs of one Server.
type exportJobs struct {
	srv     *Server // audits, narrows and logs for the jobs
	src     export.Source
	version string // the relay's, written into manifests
	// ctx is the parent of every job: close cancels it.
	ctx    context.Context
	cancel context.CancelFunc

	mu     sync.Mutex
	jobs   map[string]*exportJob
	closed bool           // no new jobs: shutting down
	wg     sync.WaitGroup // running jobs
}

func newExportJobs(srv *Server, src export.Source, version string) *exportJobs {
	x := &exportJobs{srv: srv, src: src, version: version, jobs: map[string]*exportJob{}}
	x.ctx, x.cancel = context.WithCancel(srv.ctx)
	return x
}

// close refuses new jobs and cancels the running ones (their partial
// files are removed). A nil x has nothing to close.
func (x *exportJobs) close() {
	if x == nil {
		return
	}
	x.mu.Lock()
	x.closed = true
	x.mu.Unlock()
	x.cancel()
}

// wait waits for the running jobs to end, or for ctx.
func (x *exportJobs) wait(ctx context.Context) error {
	if x == nil {
		return nil
	}
	return waitGroup(ctx, &x.wg)
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
	x.srv.narrow(emp, &q)
	id := newExportID()
	if !x.srv.auditOrRefuse(w, r, emp, AuditArchiveExport, q.Conv, "export "+id+": "+q.String(), "") {
		return
	}
	job := &exportJob{ID: id, Employee: emp.ID, Query: q, Created: x.srv.now().UTC(), state: "running"}
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
	if x.closed {
		return http.StatusServiceUnavailable, "shutting down"
	}
	// Counted under the lock close takes, as for connections: Shutdown
	// cancels running exports and waits for them.
	x.wg.Add(1)
	x.jobs[job.ID] = job
	go func() {
		defer x.wg.Done()
		x.run(job, emp)
	}()
	return 0, ""
}

func (x *exportJobs) run(job *exportJob, emp *relay.Employee) {
	ctx, cancel := context.WithTimeout(x.ctx, exportTimeout)
	defer cancel()
	fail := func(err error) {
		x.srv.log.Error("export failed", "export", job.ID, "employee", job.Employee, "err", err)
		job.mu.Lock()
		job.state, job.err, job.finished = "failed", err.Error(), x.srv.now().UTC()
		job.mu.Unlock()
	}
	f, err := os.CreateTemp("", "wechat-relay-export-*.zip")
	if err != nil {
		fail(fmt.Errorf("creating the zip: %w", err))
		return
	}
	path := f.Name()
	man, err := export.Run(ctx, x.src, export.Request{
		Query: job.Query, By: emp.ID + " (" + emp.Name + ", " + string(emp.Role) + ")", Version: x.version, Now: x.srv.now(),
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
	job.state, job.path, job.size, job.manifest, job.finished = "done", path, st.Size(), man, x.srv.now().UTC()
	job.mu.Unlock()
	x.srv.log.Info("export done", "export", job.ID, "employee", job.Employee, "messages", man.Counts.Messages, "bytes", st.Size())
}

// expireLocked forgets finished jobs older than exportKeep and deletes
// their zips. x.mu is held.
func (x *exportJobs) expireLocked() {
	now := x.srv.now()
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
	if !x.srv.auditOrRefuse(w, r, emp, AuditArchiveExportDownload, j.Query.Conv, j.ID, "") {
		return
	}
	f, err := os.Open(path)
	if err != nil {
		x.srv.log.Error("opening an export", "export", j.ID, "err", err)
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
