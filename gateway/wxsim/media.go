package wxsim

import (
	"bytes"
	"fmt"
	"net/http"
	"time"
)

// Temporary media types accepted by media/upload.
const (
	MediaImage = "image"
	MediaVoice = "voice"
	MediaVideo = "video"
	MediaThumb = "thumb"
)

// mediaLimits are WeChat's size limits for temporary media, with the
// errcode for exceeding each.
var mediaLimits = map[string]struct {
	max  int
	code int
}{
	MediaImage: {10 << 20, CodeInvalidImageSize},
	MediaVoice: {2 << 20, CodeInvalidVoiceSize},
	MediaVideo: {10 << 20, CodeInvalidVideoSize},
	MediaThumb: {64 << 10, CodeInvalidThumbSize},
}

// media is a stored temporary media file.
type media struct {
	id          string
	appID       string
	typ         string
	contentType string
	data        []byte
	created     time.Time
}

// MediaInfo describes a temporary media file.
type MediaInfo struct {
	MediaID     string    `json:"media_id"`
	Type        string    `json:"type"`
	ContentType string    `json:"content_type"`
	Size        int       `json:"size"`
	CreatedAt   time.Time `json:"created_at"`
	// ExpiresAt is when media/get starts answering 40007.
	ExpiresAt time.Time `json:"expires_at"`
}

func (s *Sim) mediaInfo(m *media) MediaInfo {
	return MediaInfo{
		MediaID: m.id, Type: m.typ, ContentType: m.contentType, Size: len(m.data),
		CreatedAt: m.created, ExpiresAt: m.created.Add(s.cfg.MediaTTL),
	}
}

// sniffMedia checks data against what WeChat accepts for typ (PNG, JPEG or
// GIF images; AMR or MP3 voice; MP4 video; JPEG thumbs) and returns its
// content type, or the errcode to answer.
func sniffMedia(typ string, data []byte) (string, *APIError) {
	lim, ok := mediaLimits[typ]
	if !ok {
		return "", apiErr(CodeInvalidMediaType, "")
	}
	if len(data) == 0 {
		return "", apiErr(CodeEmptyMediaData, "")
	}
	if len(data) > lim.max {
		return "", apiErr(lim.code, "")
	}
	ct := http.DetectContentType(data)
	switch {
	case bytes.HasPrefix(data, []byte("#!AMR")):
		ct = "audio/amr"
	case bytes.HasPrefix(data, []byte("ID3")), len(data) > 1 && data[0] == 0xFF && data[1]&0xE0 == 0xE0:
		ct = "audio/mpeg"
	}
	okType := false
	switch typ {
	case MediaImage:
		okType = ct == "image/png" || ct == "image/jpeg" || ct == "image/gif"
	case MediaThumb:
		okType = ct == "image/jpeg"
	case MediaVoice:
		okType = ct == "audio/amr" || ct == "audio/mpeg"
	case MediaVideo:
		okType = ct == "video/mp4"
	}
	if !okType {
		return "", apiErr(CodeInvalidFileType, "")
	}
	return ct, nil
}

// mediaExt is the file extension media/get names a file of content type ct
// with.
func mediaExt(ct string) string {
	switch ct {
	case "image/png":
		return ".png"
	case "image/gif":
		return ".gif"
	case "audio/amr":
		return ".amr"
	case "audio/mpeg":
		return ".mp3"
	case "video/mp4":
		return ".mp4"
	}
	return ".jpg"
}

// storeMedia stores validated media and returns it. Caller holds s.mu.
func (s *Sim) storeMedia(appID, typ, contentType string, data []byte) *media {
	var id string
	for {
		id = newMediaID(s.rng)
		if _, dup := s.media[id]; !dup {
			break
		}
	}
	m := &media{id: id, appID: appID, typ: typ, contentType: contentType, data: bytes.Clone(data), created: s.clock.Now()}
	s.media[id] = m
	return m
}

// lookupMedia finds a media id usable by appID: 41006 when empty, 40007
// when unknown, another account's, or older than MediaTTL. Caller holds
// s.mu.
func (s *Sim) lookupMedia(appID, id string) (*media, *APIError) {
	if id == "" {
		return nil, apiErr(CodeMissingMediaID, "")
	}
	m, ok := s.media[id]
	if !ok || m.appID != appID || !s.clock.Now().Before(m.created.Add(s.cfg.MediaTTL)) {
		return nil, apiErr(CodeInvalidMediaID, "")
	}
	return m, nil
}

// UploadMedia stores temporary media for the account as media/upload does
// (same type, format and size checks), e.g. to prepare a media_id for a
// test without going through HTTP.
func (s *Sim) UploadMedia(appID, typ string, data []byte) (MediaInfo, error) {
	ct, e := sniffMedia(typ, data)
	if e != nil {
		return MediaInfo{}, fmt.Errorf("wxsim: upload media: %w", e)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.accounts[appID]; !ok {
		return MediaInfo{}, fmt.Errorf("%w: %s", ErrUnknownAccount, appID)
	}
	return s.mediaInfo(s.storeMedia(appID, typ, ct, data)), nil
}

// Media returns the bytes and description of a media id, whatever its age
// (for tests and the phone page; the API enforces expiry).
func (s *Sim) Media(mediaID string) ([]byte, MediaInfo, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	m, ok := s.media[mediaID]
	if !ok {
		return nil, MediaInfo{}, fmt.Errorf("wxsim: media %q: %w", mediaID, apiErr(CodeInvalidMediaID, ""))
	}
	return bytes.Clone(m.data), s.mediaInfo(m), nil
}
