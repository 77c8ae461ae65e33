package console

import (
	"context"
	"fmt"
	"mime"
	"net/http"
	"slices"
	"strings"

	"github.com/wechat-relay/wechat-relay/relay"
)

// QRCodes makes permanent parametric QR codes (gateway.QRCodes).
type QRCodes interface {
	// PermanentQR returns the PNG of account's permanent QR code for
	// scene, created once.
	PermanentQR(ctx context.Context, account, scene string) ([]byte, error)
}

// serveQRCode handles GET /api/me/qrcode?account=ID[&download=1]: the
// employee's own QR code (scene "emp:<id>"). A client who scans it is
// bound to the employee, which routing does for the agents of the
// account, so only they have one.
func (s *Server) serveQRCode(w http.ResponseWriter, r *http.Request, emp *relay.Employee) {
	if emp.Role != RoleAgent || len(emp.Accounts) == 0 {
		writeError(w, http.StatusForbidden, "only agents who serve an account have a QR code: clients are bound to agents")
		return
	}
	account := r.URL.Query().Get("account")
	switch {
	case account == "" && len(emp.Accounts) == 1:
		account = emp.Accounts[0]
	case account == "":
		writeError(w, http.StatusBadRequest, "account is required: one of "+strings.Join(emp.Accounts, ", "))
		return
	case !slices.Contains(emp.Accounts, account):
		writeError(w, http.StatusForbidden, fmt.Sprintf("you do not serve account %q (yours: %s)", account, strings.Join(emp.Accounts, ", ")))
		return
	}
	img, err := s.qr.PermanentQR(r.Context(), account, relay.ScenePrefix+emp.ID)
	if err != nil {
		s.log.Warn("making an employee's QR code", "employee", emp.ID, "account", account, "err", err)
		writeError(w, http.StatusBadGateway, "WeChat did not give the QR code; try again later")
		return
	}
	hd := w.Header()
	hd.Set("Content-Type", "image/png")
	hd.Set("Cache-Control", "private, max-age=3600")
	disposition := "inline"
	if r.URL.Query().Get("download") == "1" {
		disposition = "attachment"
	}
	hd.Set("Content-Disposition", mime.FormatMediaType(disposition, map[string]string{"filename": "qrcode-" + account + "-" + emp.ID + ".png"}))
	w.Write(img)
}
