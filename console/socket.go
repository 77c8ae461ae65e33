package console

import (
	"context"
	"net/http"
	"net/url"
	"strings"

	"github.com/gorilla/websocket"
	"github.com/wechat-relay/wechat-relay/relay"
)

// serveSocket upgrades an authenticated request of emp to a WebSocket
// and runs its connection. The upgrader checks the Origin and answers a
// refusal itself.
func (h *Hub) serveSocket(w http.ResponseWriter, r *http.Request, emp *relay.Employee, signedIn func(context.Context) (bool, error)) {
	ws, err := h.up.Upgrade(w, r, nil)
	if err != nil {
		h.log.Info("websocket upgrade refused", "employee", emp.ID, "origin", r.Header.Get("Origin"), "err", err)
		return // the upgrader has answered
	}
	c := newConn(h, ws, emp, remoteAddr(r), r.UserAgent())
	c.signedIn = signedIn
	if !h.add(c) {
		ws.WriteControl(websocket.CloseMessage,
			websocket.FormatCloseMessage(websocket.CloseGoingAway, reasonShutdown), deadlineSoon())
		ws.Close()
		return
	}
	h.log.Info("console connected", "employee", emp.ID, "role", emp.Role)
	c.run()
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
