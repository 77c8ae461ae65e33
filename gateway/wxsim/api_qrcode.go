package wxsim

import (
	"errors"
	"net/http"
	"strconv"
	"time"
)

// qrResponse is qrcode/create's answer; permanent codes have no
// expire_seconds.
type qrResponse struct {
	Ticket        string `json:"ticket"`
	ExpireSeconds int64  `json:"expire_seconds,omitempty"`
	URL           string `json:"url"`
}

// handleQRCreate serves qrcode/create.
func (s *Sim) handleQRCreate(w http.ResponseWriter, r *http.Request) {
	body, bodyErr := readBody(r)
	var q QRInfo
	s.mu.Lock()
	e := func() *APIError {
		a, e := s.authLocked(r, pathQRCodeCreate)
		if e != nil {
			return e
		}
		if e := requirePost(r); e != nil {
			return e
		}
		if bodyErr != nil {
			return bodyErr
		}
		var req QRRequest
		if e := decodeJSON(body, &req); e != nil {
			return e
		}
		q, e = s.createQR(a, req)
		return e
	}()
	s.mu.Unlock()
	if e != nil {
		s.writeAPIError(w, e)
		return
	}
	resp := qrResponse{Ticket: q.Ticket, URL: q.URL}
	if !q.ExpiresAt.IsZero() {
		resp.ExpireSeconds = int64(q.ExpiresAt.Sub(q.Created) / time.Second)
	}
	writeJSON(w, resp)
}

// handleShowQRCode serves showqrcode?ticket=: the QR image (430×430 PNG)
// encoding the code's URL. The ticket must be URL-escaped, as WeChat
// requires; unknown or expired tickets get 404.
func (s *Sim) handleShowQRCode(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	q, err := s.lookupQR(r.URL.Query().Get("ticket"))
	s.mu.Unlock()
	if err != nil {
		status := http.StatusNotFound
		if errors.Is(err, ErrQRExpired) {
			status = http.StatusGone
		}
		http.Error(w, err.Error(), status)
		return
	}
	png, err := QRPNG(q.URL, qrImageSize)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "image/png")
	w.Header().Set("Content-Length", strconv.Itoa(len(png)))
	_, _ = w.Write(png)
}
