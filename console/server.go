package console

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/gorilla/websocket"
	"github.com/wechat-relay/wechat-relay/relay"
)

// Handler returns the console's HTTP API:
//
//	GET  /api/me                              the signed-in employee
//	GET  /api/conversations/{conv}/messages   archived messages (?after=SEQ&limit=N)
//	POST /api/conversations/{conv}/messages   send (JSON or multipart)
//	GET  /api/conversations/{conv}/window     may the employee send now, and how much
//	POST /api/conversations/{conv}/typing     show "typing…" to the client
//	GET  /api/ws                              the live WebSocket
func (h *Hub) Handler() http.Handler {
	auth := newAuthenticator(h.cfg.Employees)
	up := websocket.Upgrader{
		ReadBufferSize:  4096,
		WriteBufferSize: 4096,
		CheckOrigin:     h.checkOrigin,
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/me", func(w http.ResponseWriter, r *http.Request) {
		emp, err := auth.employee(r)
		if err != nil {
			writeError(w, http.StatusUnauthorized, err.Error())
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"id": emp.ID, "name": emp.Name, "role": emp.Role})
	})
	authed := func(pattern string, serve func(http.ResponseWriter, *http.Request, *Employee)) {
		mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
			emp, err := auth.employee(r)
			if err != nil {
				writeError(w, http.StatusUnauthorized, err.Error())
				return
			}
			serve(w, r, emp)
		})
	}
	authed("GET /api/conversations/{conv}/messages", h.serveHistory)
	if h.outbox != nil {
		authed("POST /api/conversations/{conv}/messages", h.serveSend)
		authed("GET /api/conversations/{conv}/window", h.serveWindow)
		authed("POST /api/conversations/{conv}/typing", h.serveTyping)
	}
	mux.HandleFunc("GET /api/ws", func(w http.ResponseWriter, r *http.Request) {
		// Authenticate before upgrading: an unauthenticated request never
		// becomes a socket.
		emp, err := auth.employee(r)
		if err != nil {
			writeError(w, http.StatusUnauthorized, err.Error())
			return
		}
		ws, err := up.Upgrade(w, r, nil)
		if err != nil {
			h.log.Info("websocket upgrade refused", "employee", emp.ID, "origin", r.Header.Get("Origin"), "err", err)
			return // the upgrader has answered
		}
		c := newConn(h, ws, emp)
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

func (h *Hub) serveHistory(w http.ResponseWriter, r *http.Request, emp *Employee) {
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
	writeJSON(w, http.StatusOK, map[string]any{"conv": conv, "messages": out})
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
