package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strconv"

	"github.com/silenceper/wechat/v2/officialaccount/message"

	"github.com/wechat-relay/wechat-relay/relay"
)

// contentTypeJSON is what WeChat's JSON APIs are sent.
const contentTypeJSON = "application/json; charset=utf-8"

// customSendBody is the body of message/custom/send: silenceper's
// CustomerMessage, which lacks the optional customservice part that
// sends a message as a named customer-service (kf) account.
type customSendBody struct {
	*message.CustomerMessage
	CustomService *customService `json:"customservice,omitempty"`
}

type customService struct {
	KFAccount string `json:"kf_account"`
}

// SendCustom sends m to its client (m.Client) through the
// customer-service API of m.Account. m.Kind is text (m.Text), image or
// voice (m.MediaID), video (m.MediaID; Attrs thumb_media_id, title,
// description) or link (Attrs title, description, url, pic_url, sent as
// a news message with one article); Attrs["kf_account"] sends it as that
// customer-service account. Other kinds fail with ErrUnsupportedKind
// before anything is sent. Content is left for WeChat to judge: an empty
// text or an unknown media id comes back as its errcode. Errors follow
// Sender's contract.
func (s *Sender) SendCustom(ctx context.Context, m relay.Message) error {
	b, err := customBody(m)
	if err != nil {
		s.record(m.Account, m.ID, apiCustomSend, err)
		return err
	}
	body, err := marshalJSON(b)
	if err != nil {
		err = fmt.Errorf("gateway: %s: encode message %q: %w", apiCustomSend, m.ID, err)
		s.record(m.Account, m.ID, apiCustomSend, err)
		return err
	}
	return s.call(ctx, m.Account, m.ID, apiRequest{api: apiCustomSend, contentType: contentTypeJSON, body: body}, nil)
}

// customBody builds the custom/send body of m.
func customBody(m relay.Message) (*customSendBody, error) {
	var cm *message.CustomerMessage
	switch m.Kind {
	case relay.KindText:
		cm = message.NewCustomerTextMessage(m.Client, m.Text)
	case relay.KindImage:
		cm = message.NewCustomerImgMessage(m.Client, m.MediaID)
	case relay.KindVoice:
		cm = message.NewCustomerVoiceMessage(m.Client, m.MediaID)
	case relay.KindVideo:
		cm = &message.CustomerMessage{ToUser: m.Client, Msgtype: message.MsgTypeVideo, Video: &message.MediaVideo{
			MediaID:      m.MediaID,
			ThumbMediaID: attr(m, "thumb_media_id"),
			Title:        attr(m, "title"),
			Description:  attr(m, "description"),
		}}
	case relay.KindLink:
		// Since 2018 a news message carries exactly one article.
		cm = &message.CustomerMessage{ToUser: m.Client, Msgtype: message.MsgTypeNews, News: &message.MediaNews{
			Articles: []message.MediaArticles{{
				Title:       attr(m, "title"),
				Description: attr(m, "description"),
				URL:         attr(m, "url"),
				Picurl:      attr(m, "pic_url", "picurl"),
			}},
		}}
	default:
		return nil, fmt.Errorf("gateway: %s of message %q: %w: %q", apiCustomSend, m.ID, ErrUnsupportedKind, m.Kind)
	}
	b := &customSendBody{CustomerMessage: cm}
	if kf := attr(m, "kf_account"); kf != "" {
		b.CustomService = &customService{KFAccount: kf}
	}
	return b, nil
}

// attr returns the first non-empty of m.Attrs[keys...].
func attr(m relay.Message, keys ...string) string {
	for _, k := range keys {
		if v := m.Attrs[k]; v != "" {
			return v
		}
	}
	return ""
}

// typingBody is the body of message/custom/typing.
type typingBody struct {
	ToUser  string `json:"touser"`
	Command string `json:"command"`
}

// Typing shows (typing true) or hides the "typing…" indicator in the
// client's chat with account. WeChat allows it only within the 48-hour
// window (45015 otherwise); the indicator lasts 15 s or until the next
// message. Errors follow Sender's contract.
func (s *Sender) Typing(ctx context.Context, account, openid string, typing bool) error {
	cmd := "CancelTyping"
	if typing {
		cmd = "Typing"
	}
	body, err := marshalJSON(typingBody{ToUser: openid, Command: cmd})
	if err != nil {
		return fmt.Errorf("gateway: %s: %w", apiCustomTyping, err)
	}
	return s.call(ctx, account, "", apiRequest{api: apiCustomTyping, contentType: contentTypeJSON, body: body}, nil)
}

// templateSendBody is the body of message/template/send. silenceper's
// TemplateMessage is not used whole: its miniprogram part has no
// omitempty and would send an empty mini-program link with every
// message.
type templateSendBody struct {
	ToUser     string                               `json:"touser"`
	TemplateID string                               `json:"template_id"`
	URL        string                               `json:"url,omitempty"`
	Data       map[string]*message.TemplateDataItem `json:"data"`
}

// templateAnswer is template/send's answer on success.
type templateAnswer struct {
	MsgID int64 `json:"msgid"`
}

// SendTemplate sends template t to openid, a follower of account; it is
// not bound by the 48-hour window. It returns WeChat's msgid as a decimal
// string, which the TEMPLATESENDJOBFINISH event later quotes with the
// delivery status (empty in the unlikely case WeChat accepted the call
// without one). Errors follow Sender's contract.
func (s *Sender) SendTemplate(ctx context.Context, account, openid string, t relay.Template) (string, error) {
	b := templateSendBody{ToUser: openid, TemplateID: t.ID, URL: t.URL, Data: make(map[string]*message.TemplateDataItem, len(t.Data))}
	for k, v := range t.Data {
		b.Data[k] = &message.TemplateDataItem{Value: v}
	}
	body, err := marshalJSON(b)
	if err != nil {
		return "", fmt.Errorf("gateway: %s: %w", apiTemplateSend, err)
	}
	var ans templateAnswer
	if err := s.call(ctx, account, "", apiRequest{api: apiTemplateSend, contentType: contentTypeJSON, body: body}, &ans); err != nil {
		return "", err
	}
	if ans.MsgID == 0 {
		return "", nil
	}
	return strconv.FormatInt(ans.MsgID, 10), nil
}

// marshalJSON encodes v without Go's HTML escaping, as silenceper does:
// WeChat shows "\u0026" in a link or text literally in some places, so
// '&', '<' and '>' go out as themselves.
func marshalJSON(v any) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n")), nil
}
