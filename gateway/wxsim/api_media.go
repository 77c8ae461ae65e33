package wxsim

import (
	"io"
	"mime/multipart"
	"net/http"
	"strconv"
)

// maxUpload bounds a media/upload request: the largest media (10 MB) plus
// multipart overhead.
const maxUpload = 10<<20 + 64<<10

// uploadResponse is media/upload's answer; thumbs come back as
// thumb_media_id, as on WeChat.
type uploadResponse struct {
	Type         string `json:"type"`
	MediaID      string `json:"media_id,omitempty"`
	ThumbMediaID string `json:"thumb_media_id,omitempty"`
	CreatedAt    int64  `json:"created_at"`
}

// handleMediaUpload serves media/upload (multipart field "media").
func (s *Sim) handleMediaUpload(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	a, e := s.authLocked(r, pathMediaUpload)
	var appID string
	if a != nil {
		appID = a.AppID
	}
	s.mu.Unlock()
	if e == nil {
		e = requirePost(r)
	}
	typ := r.URL.Query().Get("type")
	if e == nil {
		if _, ok := mediaLimits[typ]; !ok {
			e = apiErr(CodeInvalidMediaType, "")
		}
	}
	var data []byte
	if e == nil {
		data, e = readUpload(w, r)
	}
	var ct string
	if e == nil {
		ct, e = sniffMedia(typ, data)
	}
	if e != nil {
		s.writeAPIError(w, e)
		return
	}
	s.mu.Lock()
	m := s.storeMedia(appID, typ, ct, data)
	s.mu.Unlock()
	resp := uploadResponse{Type: typ, CreatedAt: m.created.Unix()}
	if typ == MediaThumb {
		resp.ThumbMediaID = m.id
	} else {
		resp.MediaID = m.id
	}
	writeJSON(w, resp)
}

// readUpload reads the "media" file of a multipart upload: 41005 when
// absent, 47001 when the form is broken.
func readUpload(w http.ResponseWriter, r *http.Request) ([]byte, *APIError) {
	r.Body = http.MaxBytesReader(w, r.Body, maxUpload)
	mr, err := r.MultipartReader()
	if err != nil {
		return nil, apiErr(CodeMissingMediaData, "")
	}
	for {
		part, err := mr.NextPart()
		if err == io.EOF {
			return nil, apiErr(CodeMissingMediaData, "")
		}
		if err != nil {
			return nil, apiErr(CodeDataFormat, "multipart")
		}
		if part.FormName() != "media" {
			_ = part.Close()
			continue
		}
		data, err := readPart(part)
		if err != nil {
			return nil, apiErr(CodeDataFormat, "multipart")
		}
		return data, nil
	}
}

func readPart(p *multipart.Part) ([]byte, error) {
	defer p.Close()
	return io.ReadAll(p)
}

// handleMediaGet serves media/get: the bytes with WeChat's headers, a
// video_url for videos, or 40007 when the id is unknown or expired.
func (s *Sim) handleMediaGet(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	a, e := s.authLocked(r, pathMediaGet)
	var m *media
	if e == nil {
		m, e = s.lookupMedia(a.AppID, r.URL.Query().Get("media_id"))
	}
	s.mu.Unlock()
	if e != nil {
		s.writeAPIError(w, e)
		return
	}
	if m.typ == MediaVideo {
		writeJSON(w, struct {
			VideoURL string `json:"video_url"`
		}{s.baseURL(r) + "/sim/media/" + m.id})
		return
	}
	h := w.Header()
	h.Set("Content-Type", m.contentType)
	h.Set("Content-disposition", `attachment; filename="`+m.id+mediaExt(m.contentType)+`"`)
	h.Set("Cache-Control", "no-cache, must-revalidate")
	h.Set("Content-Length", strconv.Itoa(len(m.data)))
	_, _ = w.Write(m.data)
}

// handleRawMedia serves /sim/media/{id}: the download link behind PicUrl
// and video_url. Like WeChat's CDN links it needs no token; unlike
// media/get it ignores expiry.
func (s *Sim) handleRawMedia(w http.ResponseWriter, r *http.Request) {
	data, info, err := s.Media(r.PathValue("id"))
	if err != nil {
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Content-Type", info.ContentType)
	w.Header().Set("Content-Length", strconv.Itoa(len(data)))
	_, _ = w.Write(data)
}
