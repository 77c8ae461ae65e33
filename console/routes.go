package console

import (
	"errors"
	"net/http"

	"github.com/wechat-relay/wechat-relay/relay"
)

// Handler returns the console's HTTP API:
//
//	POST /api/login                               sign in (sessions; when Deps.Sessions is set)
//	POST /api/logout                              end the session ({"end_session_url"} after single sign-on)
//	GET  /api/sign-in                             how one may sign in: password form, identity providers (sso.go)
//	GET  /api/me                                  the signed-in employee (and the session's CSRF token)
//	GET  /api/me/qrcode                           the employee's QR code (?account=ID&download=1)
//	POST /api/me/password                         change one's own password ({"current","new"})
//	GET  /api/employees                           every employee: id, name, role, teams, disabled
//	GET  /api/teams                               every team and its members
//	     /api/admin/...                           the directory, for admins (admin.go)
//	GET  /api/canned-replies                      the canned replies
//	GET  /api/conversations                       the inbox (?status=&employee=&team=&account=)
//	GET  /api/conversations/{conv}/messages       archived messages (?after=SEQ&limit=N)
//	POST /api/conversations/{conv}/messages       send (JSON or multipart)
//	GET  /api/conversations/{conv}/window         may the employee send now, and how much
//	POST /api/conversations/{conv}/typing         show "typing…" to the client
//	POST /api/conversations/{conv}/read           read marks ({"seq"})
//	POST /api/conversations/{conv}/notes          internal note ({"key","text"})
//	POST /api/conversations/{conv}/transfer       transfer ({"to","note","key"})
//	POST /api/conversations/{conv}/resolve        resolve ({"key"} optional)
//	POST /api/conversations/{conv}/reopen         reopen ({"key"} optional)
//	GET  /api/media/{message_id}                  archived media of a message
//	GET  /api/clients/{account}/{openid}/profile  a client's profile; PUT a new version; .../history (profile.go)
//	     /api/tags/{account}                      the account's tag vocabulary (profile.go)
//	GET  /api/reports/{name}                      a report (reports.go)
//	GET  /api/ws                                  the live WebSocket
//	     /api/sso/{provider}/...                  identity providers (Deps.IdentityProviders)
//
// Every route but login authenticates first (bearer token, session
// cookie, or the wr_token cookie for reads), then checks the CSRF token
// of session requests that change something, then the employee's right
// to the conversation.
func (s *Server) Handler() http.Handler {
	h, _ := s.handler()
	return h
}

// handler is Handler, and the patterns it serves: the test that walks
// every route for every role reads them, so that a route added without
// its row in that test's table fails it.
func (s *Server) handler() (http.Handler, []string) {
	auth := s.auth
	mux := &patternMux{ServeMux: http.NewServeMux()}
	withPrincipal := func(pattern string, serve func(http.ResponseWriter, *http.Request, *principal)) {
		mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
			p, ok := s.authenticated(w, r)
			if !ok || !checkCSRF(w, r, p) {
				return
			}
			serve(w, r, p)
		})
	}
	// route serves pattern to employees whose role allowed accepts (nil:
	// every role), once authenticated and past the CSRF check.
	route := func(pattern string, allowed func(Role) bool, serve func(http.ResponseWriter, *http.Request, *relay.Employee)) {
		withPrincipal(pattern, func(w http.ResponseWriter, r *http.Request, p *principal) {
			if allowed != nil && !allowed(p.emp.Role) {
				writeError(w, http.StatusForbidden, "your role ("+string(p.emp.Role)+") may not do this")
				return
			}
			serve(w, r, p.emp)
		})
	}
	authed := func(pattern string, serve func(http.ResponseWriter, *http.Request, *relay.Employee)) {
		route(pattern, nil, serve)
	}

	if s.sessions != nil {
		mux.HandleFunc("POST /api/login", s.serveLogin(auth))
		for _, idp := range s.idps {
			prefix := "/api/sso/" + idp.Name() + "/"
			mux.Handle(prefix, idp.Handler(s.signInFunc(auth, idp.Name())))
		}
	}
	mux.HandleFunc("POST /api/logout", s.serveLogout(auth))
	mux.HandleFunc("GET /api/sign-in", s.serveSignInOptions)
	withPrincipal("GET /api/me", func(w http.ResponseWriter, r *http.Request, p *principal) {
		writeJSON(w, http.StatusOK, meBody(p.emp, p.sess))
	})
	withPrincipal("POST /api/me/password", s.servePassword)
	authed("GET /api/employees", s.serveEmployees)
	authed("GET /api/canned-replies", s.serveCanned)
	authed("GET /api/conversations/{conv}/messages", s.serveHistory)
	if s.outbox != nil {
		authed("POST /api/conversations/{conv}/messages", s.serveSend)
		authed("GET /api/conversations/{conv}/window", s.serveWindow)
		authed("POST /api/conversations/{conv}/typing", s.serveTyping)
	}
	if s.inbox != nil {
		authed("GET /api/conversations", s.serveInbox)
	}
	if s.marks != nil {
		authed("POST /api/conversations/{conv}/read", s.serveRead)
	}
	if s.staff != nil {
		authed("POST /api/conversations/{conv}/notes", s.serveNote)
		authed("POST /api/conversations/{conv}/transfer", s.serveTransfer)
		authed("POST /api/conversations/{conv}/resolve", s.serveStatus(relay.KindResolve))
		authed("POST /api/conversations/{conv}/reopen", s.serveStatus(relay.KindReopen))
	}
	if s.media != nil {
		authed("GET /api/media/{message_id}", s.serveMedia)
	}
	if s.qr != nil {
		authed("GET /api/me/qrcode", s.serveQRCode)
	}
	s.routeSearchExport(authed) // GET /api/search, /api/exports (search.go)
	s.routeAdmin(authed)        // GET /api/teams, /api/admin/... (admin.go)
	s.routeCompliance(route)    // /api/audit, /api/alerts, /api/holds (compliance.go)
	s.routeProfiles(route)      // /api/clients/.../profile, /api/tags (profile.go)
	s.routeReports(route)       // /api/reports (reports.go)
	s.routeJournal(route)       // GET /api/admin/journal (journal.go)
	mux.HandleFunc("GET /api/ws", func(w http.ResponseWriter, r *http.Request) {
		// Authenticate before upgrading: an unauthenticated request never
		// becomes a socket.
		p, ok := s.authenticated(w, r)
		if !ok {
			return
		}
		emp := p.emp
		// A supervisor's socket receives every conversation live: the
		// live view is audited before the upgrade. Not refused when the
		// record cannot be archived (the failure is logged with the
		// record): nothing reaches a socket before it is archived anyway,
		// and supervisors must be able to watch a relay that waits for
		// its archive. Each conversation they open is audited strictly.
		if emp.Role.SeesAll() {
			if err := s.record(r, emp, AuditLiveView, "", "", ""); err != nil {
				s.log.Error("writing the audit trail of a live view; connecting anyway", "employee", emp.ID, "err", err)
			}
		}
		s.hub.serveSocket(w, r, emp, s.auth.stillSignsIn(r, p))
	})
	return securityHeaders(mux), mux.patterns
}

// patternMux is a ServeMux that keeps the patterns it was given.
type patternMux struct {
	*http.ServeMux
	patterns []string
}

func (m *patternMux) HandleFunc(pattern string, h func(http.ResponseWriter, *http.Request)) {
	m.patterns = append(m.patterns, pattern)
	m.ServeMux.HandleFunc(pattern, h)
}

func (m *patternMux) Handle(pattern string, h http.Handler) {
	m.patterns = append(m.patterns, pattern)
	m.ServeMux.Handle(pattern, h)
}

// authenticated returns who sent r; when that cannot be told it has
// answered (401, or 503 when the session store is unreachable).
func (s *Server) authenticated(w http.ResponseWriter, r *http.Request) (*principal, bool) {
	p, err := s.auth.authenticate(r)
	switch {
	case errors.Is(err, errUnauthenticated):
		writeError(w, http.StatusUnauthorized, err.Error())
		return nil, false
	case err != nil:
		s.log.Warn("authenticating a console request", "err", err)
		writeError(w, http.StatusServiceUnavailable, "cannot check the session right now; try again")
		return nil, false
	}
	return p, true
}

func securityHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hd := w.Header()
		hd.Set("X-Content-Type-Options", "nosniff")
		hd.Set("X-Frame-Options", "DENY")
		hd.Set("Referrer-Policy", "no-referrer")
		hd.Set("Cache-Control", "no-store")
		next.ServeHTTP(w, r)
	})
}
