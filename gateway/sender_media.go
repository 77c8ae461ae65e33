package gateway

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"mime/multipart"
	"net/http"
	"net/textproto"
	"net/url"
	"strings"

	"github.com/wechat-relay/wechat-relay/relay"
)

// KindThumb is the UploadMedia kind of a video thumbnail (a JPEG of at
// most 64 KB), used as a video message's thumb_media_id. It is no
// message kind, so relay does not define it.
const KindThumb relay.Kind = "thumb"

// uploadTypes maps the kinds UploadMedia accepts to media/upload's type.
var uploadTypes = map[relay.Kind]string{
	relay.KindImage: "image",
	relay.KindVoice: "voice",
	relay.KindVideo: "video",
	KindThumb:       "thumb",
}

// uploadAnswer is media/upload's answer on success; a thumb's id comes
// back as thumb_media_id.
type uploadAnswer struct {
	MediaID      string `json:"media_id"`
	ThumbMediaID string `json:"thumb_media_id"`
}

// UploadMedia uploads data as temporary media of account (kept by WeChat
// for three days) and returns its media id. kind is image, voice, video
// or KindThumb; anything else fails with ErrUnsupportedKind. fileName is
// sent as the file's name (its directory part dropped); WeChat judges the
// format and size and answers its errcode when they do not fit. Errors
// follow Sender's contract; an upload of unknown outcome is harmless to
// repeat (the first copy just expires unused).
func (s *Sender) UploadMedia(ctx context.Context, account string, kind relay.Kind, fileName string, data []byte) (string, error) {
	typ, ok := uploadTypes[kind]
	if !ok {
		err := fmt.Errorf("gateway: %s: %w: %q", apiMediaUpload, ErrUnsupportedKind, kind)
		s.record(account, "", apiMediaUpload, err)
		return "", err
	}
	if len(data) == 0 {
		err := fmt.Errorf("gateway: %s: empty %s", apiMediaUpload, typ)
		s.record(account, "", apiMediaUpload, err)
		return "", err
	}
	body, contentType, err := multipartMedia(uploadFileName(fileName, typ), data)
	if err != nil {
		return "", fmt.Errorf("gateway: %s: %w", apiMediaUpload, err)
	}
	var ans uploadAnswer
	r := apiRequest{api: apiMediaUpload, query: url.Values{"type": {typ}}, contentType: contentType, body: body}
	if err := s.call(ctx, account, "", r, &ans); err != nil {
		return "", err
	}
	id := ans.MediaID
	if id == "" {
		id = ans.ThumbMediaID
	}
	if id == "" {
		return "", errors.New("gateway: media/upload: WeChat answered without a media id")
	}
	return id, nil
}

// uploadFileName returns a file name safe for a multipart header: the
// base name without quotes or line breaks, or "media" when nothing is
// left.
func uploadFileName(name, typ string) string {
	if i := strings.LastIndexAny(name, `/\`); i >= 0 {
		name = name[i+1:]
	}
	name = strings.Map(func(r rune) rune {
		switch {
		case r == '"' || r < 0x20 || r == 0x7f:
			return '_'
		}
		return r
	}, strings.TrimSpace(name))
	if name == "" {
		name = typ
	}
	return name
}

// multipartMedia builds the form media/upload expects: one file field
// named "media" with a file name and the content type sniffed from data.
func multipartMedia(fileName string, data []byte) ([]byte, string, error) {
	var buf bytes.Buffer
	w := multipart.NewWriter(&buf)
	h := textproto.MIMEHeader{}
	h.Set("Content-Disposition", `form-data; name="media"; filename="`+fileName+`"`)
	h.Set("Content-Type", http.DetectContentType(data))
	part, err := w.CreatePart(h)
	if err != nil {
		return nil, "", err
	}
	if _, err := part.Write(data); err != nil {
		return nil, "", err
	}
	if err := w.Close(); err != nil {
		return nil, "", err
	}
	return buf.Bytes(), w.FormDataContentType(), nil
}
