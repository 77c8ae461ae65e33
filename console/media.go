package console

import (
	"bytes"
	"mime"
	"net/http"
	"strings"

	"github.com/wechat-relay/wechat-relay/relay"
)

// mediaCSP keeps archived media inert when opened on its own: a file a
// client sent is the client's content, served from the console's origin.
const mediaCSP = "default-src 'none'; img-src 'self'; media-src 'self'; style-src 'unsafe-inline'; sandbox"

// serveMedia handles GET /api/media/{message_id}: the archived media of a
// message, to whoever may read its conversation. Pictures, voice and
// video are served inline with their type (and byte ranges, for
// players); files, and any content a browser could run, as an attachment.
func (s *Server) serveMedia(w http.ResponseWriter, r *http.Request, emp *relay.Employee) {
	id := r.PathValue("message_id")
	m, md, ok, err := s.media.MessageMedia(r.Context(), id)
	if err != nil {
		s.log.Warn("reading media", "msg_id", id, "err", err)
		writeError(w, http.StatusServiceUnavailable, "archive unavailable")
		return
	}
	if !ok {
		writeError(w, http.StatusNotFound, "no media archived for this message: not fetched from WeChat yet, or the message has none")
		return
	}
	if !s.authorizeRead(w, r, emp, m.Conv) {
		return
	}
	if !s.auditView(w, r, emp, AuditDownloadMedia, m.Conv, m.ID) {
		return
	}
	ct := md.ContentType
	if mt, _, err := mime.ParseMediaType(ct); err != nil || mt == "" {
		ct = http.DetectContentType(md.Data)
	}
	mt, _, _ := mime.ParseMediaType(ct)
	name := md.FileName
	if name == "" {
		name = m.Attrs["file_name"]
	}
	hd := w.Header()
	hd.Set("Content-Security-Policy", mediaCSP)
	// Cache-Control stays no-store, as on every /api/ answer: a client's
	// file must not outlive the session in the disk cache of a shared
	// desk's browser.
	if md.SHA256 != "" {
		hd.Set("ETag", `"`+md.SHA256+`"`)
	}
	disposition := "attachment"
	if inlineKind(m.Kind) && inlineType(mt) {
		disposition = "inline"
		hd.Set("Content-Type", ct)
	} else {
		// Never let a browser render a file as a page of ours.
		hd.Set("Content-Type", "application/octet-stream")
		if inlineType(mt) {
			hd.Set("Content-Type", ct)
		}
	}
	if name == "" {
		name = defaultMediaName(m)
	}
	hd.Set("Content-Disposition", mime.FormatMediaType(disposition, map[string]string{"filename": name}))
	http.ServeContent(w, r, "", m.AcceptedAt, bytes.NewReader(md.Data))
}

func inlineKind(k relay.Kind) bool {
	switch k {
	case relay.KindImage, relay.KindVoice, relay.KindVideo, relay.KindShortVideo:
		return true
	}
	return false
}

// inlineType reports whether a browser may show content of type mt
// without any risk of running it: pictures (not SVG, which can carry
// script), sound and video.
func inlineType(mt string) bool {
	switch {
	case mt == "image/svg+xml":
		return false
	case strings.HasPrefix(mt, "image/"), strings.HasPrefix(mt, "audio/"), strings.HasPrefix(mt, "video/"):
		return true
	}
	return false
}

// defaultMediaName names a download that WeChat gave no name.
func defaultMediaName(m relay.Message) string {
	ext := map[relay.Kind]string{
		relay.KindImage: ".jpg", relay.KindVoice: ".amr", relay.KindVideo: ".mp4", relay.KindShortVideo: ".mp4",
	}[m.Kind]
	return strings.NewReplacer(":", "-", "/", "-").Replace(m.ID) + ext
}
