package console

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"
	"strings"

	"github.com/wechat-relay/wechat-relay/relay"
)

// maxUploadBytes caps a file an employee sends: WeChat's largest
// temporary media (video) is 10 MB.
const maxUploadBytes = 10 << 20

// sendBody is the JSON form of a send: text and link messages.
type sendBody struct {
	Key   string            `json:"key"`
	Kind  string            `json:"kind"`
	Text  string            `json:"text"`
	Attrs map[string]string `json:"attrs"`
}

// serveSend handles POST /api/conversations/{conv}/messages: JSON for text
// and links, multipart/form-data (fields key, kind, file) for images,
// voice and video.
func (s *Server) serveSend(w http.ResponseWriter, r *http.Request, emp *relay.Employee) {
	conv := relay.ConversationID(r.PathValue("conv"))
	if !s.authorizeWrite(w, r, emp, conv) {
		return
	}
	req, err := parseSend(w, r)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	req.Conv, req.Employee = conv, emp.ID
	res, err := s.outbox.Send(r.Context(), req)
	var pe *relay.PolicyError
	switch {
	case errors.As(err, &pe):
		writeJSON(w, http.StatusConflict, map[string]any{"error": pe.Reason, "errcode": pe.Code, "template": pe.Template})
	case errors.Is(err, relay.ErrBadRequest):
		writeError(w, http.StatusBadRequest, strings.TrimPrefix(err.Error(), relay.ErrBadRequest.Error()+": "))
	case errors.Is(err, relay.ErrInFlight):
		w.Header().Set("Retry-After", "1")
		writeError(w, http.StatusServiceUnavailable, "an earlier attempt with this key is still being accepted; try again with the same key")
	case err != nil:
		s.log.Warn("send failed", "conv", conv, "employee", emp.ID, "err", err)
		writeError(w, http.StatusServiceUnavailable, "the message could not be archived or uploaded; nothing was sent, try again")
	default:
		status := http.StatusAccepted
		if res.Duplicate {
			status = http.StatusOK
		}
		writeJSON(w, status, map[string]any{
			"message_id": res.MessageID, "state": res.State, "errcode": res.ErrCode,
			"reason": reason(res.State, res.ErrCode), "duplicate": res.Duplicate,
		})
	}
}

func parseSend(w http.ResponseWriter, r *http.Request) (relay.SendRequest, error) {
	ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	switch ct {
	case "application/json":
		var b sendBody
		dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 64<<10))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&b); err != nil {
			return relay.SendRequest{}, errors.New("malformed JSON body: " + err.Error())
		}
		return relay.SendRequest{Key: b.Key, Kind: relay.Kind(b.Kind), Text: b.Text, Attrs: b.Attrs}, nil
	case "multipart/form-data":
		r.Body = http.MaxBytesReader(w, r.Body, maxUploadBytes+64<<10)
		if err := r.ParseMultipartForm(1 << 20); err != nil {
			return relay.SendRequest{}, errors.New("malformed upload (at most 10 MB): " + err.Error())
		}
		f, hdr, err := r.FormFile("file")
		if err != nil {
			return relay.SendRequest{}, errors.New("upload needs a file field")
		}
		defer f.Close()
		data, err := io.ReadAll(f)
		if err != nil {
			return relay.SendRequest{}, errors.New("reading the upload: " + err.Error())
		}
		attrs := map[string]string{}
		for _, k := range []string{"title", "description"} {
			if v := r.FormValue(k); v != "" {
				attrs[k] = v
			}
		}
		return relay.SendRequest{
			Key: r.FormValue("key"), Kind: relay.Kind(r.FormValue("kind")), Attrs: attrs,
			Upload: &relay.Upload{FileName: hdr.Filename, ContentType: hdr.Header.Get("Content-Type"), Data: data},
		}, nil
	}
	return relay.SendRequest{}, errors.New("Content-Type must be application/json or multipart/form-data")
}

// serveWindow handles GET /api/conversations/{conv}/window: whether the
// employee may send now, until when, and how many messages.
func (s *Server) serveWindow(w http.ResponseWriter, r *http.Request, emp *relay.Employee) {
	conv := relay.ConversationID(r.PathValue("conv"))
	if !s.authorizeRead(w, r, emp, conv) {
		return
	}
	ws, err := s.outbox.Window(r.Context(), conv)
	if err != nil {
		writeError(w, http.StatusServiceUnavailable, "archive unavailable")
		return
	}
	writeJSON(w, http.StatusOK, ws)
}

// serveTyping handles POST /api/conversations/{conv}/typing.
func (s *Server) serveTyping(w http.ResponseWriter, r *http.Request, emp *relay.Employee) {
	conv := relay.ConversationID(r.PathValue("conv"))
	if !s.authorizeWrite(w, r, emp, conv) {
		return
	}
	sent, err := s.outbox.Typing(r.Context(), conv)
	if err != nil {
		s.log.Info("typing not forwarded", "conv", conv, "err", err)
	}
	writeJSON(w, http.StatusOK, map[string]bool{"forwarded": sent})
}

// Outbox sends employees' messages (relay.Outbox).
type Outbox interface {
	Send(ctx context.Context, req relay.SendRequest) (relay.SendResult, error)
	Window(ctx context.Context, conv relay.ConversationID) (relay.WindowState, error)
	Typing(ctx context.Context, conv relay.ConversationID) (bool, error)
}
