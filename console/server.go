package console

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/gorilla/websocket"
	"github.com/wechat-relay/wechat-relay/relay"
)

// Handler returns the console's HTTP API:
//
//	POST /api/login                               sign in (sessions; when Deps.Sessions is set)
//	POST /api/logout                              end the session
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
//	GET  /api/ws                                  the live WebSocket
//	     /api/sso/{provider}/...                  identity providers (Deps.IdentityProviders)
//
// Every route but login authenticates first (bearer token, session
// cookie, or the wr_token cookie for reads), then checks the CSRF token
// of session requests that change something, then the employee's right
// to the conversation.
func (h *Hub) Handler() http.Handler {
	auth := h.auth
	up := websocket.Upgrader{
		ReadBufferSize:  4096,
		WriteBufferSize: 4096,
		CheckOrigin:     h.checkOrigin,
	}
	mux := http.NewServeMux()
	withPrincipal := func(pattern string, serve func(http.ResponseWriter, *http.Request, *principal)) {
		mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
			p, ok := h.authenticated(w, r)
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

	if h.sessions != nil {
		mux.HandleFunc("POST /api/login", h.serveLogin(auth))
		for _, idp := range h.idps {
			prefix := "/api/sso/" + idp.Name() + "/"
			mux.Handle(prefix, idp.Handler(h.signInFunc(auth, idp.Name())))
		}
	}
	mux.HandleFunc("POST /api/logout", h.serveLogout(auth))
	withPrincipal("GET /api/me", func(w http.ResponseWriter, r *http.Request, p *principal) {
		writeJSON(w, http.StatusOK, meBody(p.emp, p.sess))
	})
	withPrincipal("POST /api/me/password", h.servePassword)
	authed("GET /api/employees", h.serveEmployees)
	authed("GET /api/canned-replies", h.serveCanned)
	authed("GET /api/conversations/{conv}/messages", h.serveHistory)
	if h.outbox != nil {
		authed("POST /api/conversations/{conv}/messages", h.serveSend)
		authed("GET /api/conversations/{conv}/window", h.serveWindow)
		authed("POST /api/conversations/{conv}/typing", h.serveTyping)
	}
	if h.inbox != nil {
		authed("GET /api/conversations", h.serveInbox)
	}
	if h.marks != nil {
		authed("POST /api/conversations/{conv}/read", h.serveRead)
	}
	if h.staff != nil {
		authed("POST /api/conversations/{conv}/notes", h.serveNote)
		authed("POST /api/conversations/{conv}/transfer", h.serveTransfer)
		authed("POST /api/conversations/{conv}/resolve", h.serveStatus(relay.KindResolve))
		authed("POST /api/conversations/{conv}/reopen", h.serveStatus(relay.KindReopen))
	}
	if h.media != nil {
		authed("GET /api/media/{message_id}", h.serveMedia)
	}
	if h.qr != nil {
		authed("GET /api/me/qrcode", h.serveQRCode)
	}
	h.routeSearchExport(authed) // GET /api/search, /api/exports (search.go)
	h.routeAdmin(authed)        // GET /api/teams, /api/admin/... (admin.go)
	h.routeCompliance(route)    // /api/audit, /api/alerts, /api/holds (compliance.go)
	mux.HandleFunc("GET /api/ws", func(w http.ResponseWriter, r *http.Request) {
		// Authenticate before upgrading: an unauthenticated request never
		// becomes a socket.
		p, ok := h.authenticated(w, r)
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
			if err := h.record(r, emp, AuditLiveView, "", "", ""); err != nil {
				h.log.Error("writing the audit trail of a live view; connecting anyway", "employee", emp.ID, "err", err)
			}
		}
		ws, err := up.Upgrade(w, r, nil)
		if err != nil {
			h.log.Info("websocket upgrade refused", "employee", emp.ID, "origin", r.Header.Get("Origin"), "err", err)
			return // the upgrader has answered
		}
		c := newConn(h, ws, emp, remoteAddr(r), r.UserAgent())
		if !h.add(c) {
			ws.WriteControl(websocket.CloseMessage,
				websocket.FormatCloseMessage(websocket.CloseGoingAway, reasonShutdown), deadlineSoon())
			ws.Close()
			return
		}
		h.log.Info("console connected", "employee", emp.ID, "role", emp.Role)
		c.run()
	})
	return securityHeaders(mux)
}

func (h *Hub) serveHistory(w http.ResponseWriter, r *http.Request, emp *relay.Employee) {
	conv := relay.ConversationID(r.PathValue("conv"))
	after, err := parseUint(r.URL.Query().Get("after"), 0)
	if err != nil {
		writeError(w, http.StatusBadRequest, "after: "+err.Error())
		return
	}
	limit, err := parseUint(r.URL.Query().Get("limit"), 100)
	if err != nil || limit == 0 || limit > 1000 {
		writeError(w, http.StatusBadRequest, "limit must be between 1 and 1000")
		return
	}
	if !h.authorizeRead(w, r, emp, conv) {
		return
	}
	if !h.auditView(w, r, emp, AuditOpenConversation, conv, "") {
		return
	}
	msgs, err := h.history.Since(r.Context(), conv, after, int(limit))
	if err != nil {
		h.log.Warn("reading history", "conv", conv, "err", err)
		writeError(w, http.StatusServiceUnavailable, "archive unavailable")
		return
	}
	out := make([]WireMessage, len(msgs))
	for i, m := range msgs {
		out[i] = toWire(m)
	}
	h.addStatuses(r.Context(), out)
	writeJSON(w, http.StatusOK, map[string]any{"conv": conv, "messages": out})
}

// authenticated returns who sent r; when that cannot be told it has
// answered (401, or 503 when the session store is unreachable).
func (h *Hub) authenticated(w http.ResponseWriter, r *http.Request) (*principal, bool) {
	p, err := h.auth.authenticate(r)
	switch {
	case errors.Is(err, errUnauthenticated):
		writeError(w, http.StatusUnauthorized, err.Error())
		return nil, false
	case err != nil:
		h.log.Warn("authenticating a console request", "err", err)
		writeError(w, http.StatusServiceUnavailable, "cannot check the session right now; try again")
		return nil, false
	}
	return p, true
}

// auditView writes an audit record when a supervisor (or compliance
// officer, or admin) views something of conv: agents' views of their own
// conversations are not audited. It reports whether the view may go on;
// when not (the record could not be written), it has answered.
func (h *Hub) auditView(w http.ResponseWriter, r *http.Request, emp *relay.Employee, action string, conv relay.ConversationID, target string) bool {
	return !emp.Role.SeesAll() || h.auditOrRefuse(w, r, emp, action, conv, target, "")
}

// checkOrigin allows upgrades from the configured origins, or, when none
// are configured, from the console's own host. Requests without an
// Origin header do not come from a browser page and cannot be hijacked
// cross-site; they still need a token.
func (h *Hub) checkOrigin(r *http.Request) bool {
	origin := r.Header.Get("Origin")
	if origin == "" {
		return true
	}
	if len(h.cfg.AllowedOrigins) == 0 {
		u, err := url.Parse(origin)
		return err == nil && strings.EqualFold(u.Host, r.Host)
	}
	for _, o := range h.cfg.AllowedOrigins {
		if strings.EqualFold(strings.TrimSuffix(o, "/"), origin) {
			return true
		}
	}
	return false
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

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

// writeError answers {"error": msg}: the console API's error shape.
func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]string{"error": msg})
}

func parseUint(s string, def uint64) (uint64, error) {
	if s == "" {
		return def, nil
	}
	return strconv.ParseUint(s, 10, 64)
}
