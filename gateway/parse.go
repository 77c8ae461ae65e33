package gateway

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/xml"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/wechat-relay/wechat-relay/relay"
)

// wireMessage is the plaintext callback XML: every message type and event
// an Official Account receives. Every field is a string on purpose.
// silenceper's message.MixMessage decodes MsgId into int64 and the
// coordinates into float64: a coordinate would lose the exact text WeChat
// sent, and a single odd numeric field would fail the whole message. It
// also lacks the kf_* event fields. Here MsgId stays the decimal string
// WeChat sent, from the wire to relay.Message.WxMsgID.
type wireMessage struct {
	XMLName      xml.Name `xml:"xml"`
	ToUserName   string   `xml:"ToUserName"`
	FromUserName string   `xml:"FromUserName"`
	CreateTime   string   `xml:"CreateTime"`
	MsgType      string   `xml:"MsgType"`
	MsgID        string   `xml:"MsgId"`

	// text
	Content string `xml:"Content"`
	// image
	PicURL  string `xml:"PicUrl"`
	MediaID string `xml:"MediaId"`
	// voice
	Format      string `xml:"Format"`
	Recognition string `xml:"Recognition"`
	// video, shortvideo
	ThumbMediaID string `xml:"ThumbMediaId"`
	// location
	LocationX string `xml:"Location_X"`
	LocationY string `xml:"Location_Y"`
	Scale     string `xml:"Scale"`
	Label     string `xml:"Label"`
	// link (and file: Title is the file name)
	Title       string `xml:"Title"`
	Description string `xml:"Description"`
	URL         string `xml:"Url"`
	// file
	FileName     string `xml:"FileName"`
	FileKey      string `xml:"FileKey"`
	FileMd5      string `xml:"FileMd5"`
	FileTotalLen string `xml:"FileTotalLen"`

	// events
	Event    string `xml:"Event"`
	EventKey string `xml:"EventKey"`
	Ticket   string `xml:"Ticket"`
	// LOCATION
	Latitude  string `xml:"Latitude"`
	Longitude string `xml:"Longitude"`
	Precision string `xml:"Precision"`
	// VIEW
	MenuID string `xml:"MenuId"`
	// kf_create_session, kf_close_session, kf_switch_session
	KfAccount     string `xml:"KfAccount"`
	FromKfAccount string `xml:"FromKfAccount"`
	ToKfAccount   string `xml:"ToKfAccount"`
	CloseType     string `xml:"CloseType"`
	// TEMPLATESENDJOBFINISH carries its id as MsgID (upper-case D).
	TemplateMsgID string `xml:"MsgID"`
	Status        string `xml:"Status"`
}

// errMalformed marks callbacks whose XML cannot become a message.
var errMalformed = errors.New("malformed callback")

// parseMessage turns the plaintext callback XML of account into an
// inbound relay.Message. raw is kept as Message.Raw byte for byte; the
// parser reads a sanitised copy (see sanitizeXML), so text with
// characters XML forbids is accepted with those characters replaced by
// U+FFFD. Errors wrap errMalformed and never quote the body.
func parseMessage(account string, raw []byte) (relay.Message, error) {
	var w wireMessage
	if err := xml.Unmarshal(sanitizeXML(raw), &w); err != nil {
		return relay.Message{}, fmt.Errorf("%w: xml: %w", errMalformed, err)
	}
	openid := strings.TrimSpace(w.FromUserName)
	if openid == "" {
		return relay.Message{}, fmt.Errorf("%w: FromUserName is missing", errMalformed)
	}
	msgType := strings.TrimSpace(w.MsgType)
	if !isToken(msgType) {
		return relay.Message{}, fmt.Errorf("%w: MsgType is missing or not a plain word", errMalformed)
	}
	created, err := strconv.ParseInt(strings.TrimSpace(w.CreateTime), 10, 64)
	if err != nil || created < 0 {
		return relay.Message{}, fmt.Errorf("%w: CreateTime is missing or not a non-negative integer", errMalformed)
	}
	msgID := strings.TrimSpace(w.MsgID)
	if msgID != "" && !isDecimal(msgID) {
		return relay.Message{}, fmt.Errorf("%w: MsgId is not a decimal number", errMalformed)
	}

	kind := relay.Kind(msgType)
	m := relay.Message{
		Account:   account,
		Client:    openid,
		Conv:      relay.Conversation(account, openid),
		Direction: relay.Inbound,
		Kind:      kind,
		MediaID:   strings.TrimSpace(w.MediaID),
		Raw:       raw,
		CreatedAt: time.Unix(created, 0).UTC(),
	}
	attrs := attrSet{}

	if kind == relay.KindEvent {
		m.Event = strings.TrimSpace(w.Event)
		if m.Event == "" {
			return relay.Message{}, fmt.Errorf("%w: event without Event", errMalformed)
		}
		m.EventKey = w.EventKey
		attrs.put("ticket", w.Ticket)
		attrs.put("latitude", w.Latitude)
		attrs.put("longitude", w.Longitude)
		attrs.put("precision", w.Precision)
		attrs.put("menu_id", w.MenuID)
		attrs.put("kf_account", w.KfAccount)
		attrs.put("from_kf_account", w.FromKfAccount)
		attrs.put("to_kf_account", w.ToKfAccount)
		attrs.put("close_type", w.CloseType)
		attrs.put("msg_id", strings.TrimSpace(w.TemplateMsgID))
		attrs.put("status", w.Status)
		// Events have no MsgId of their own; one that carries it anyway
		// is still keyed like an event, as relay.InboundID documents.
		attrs.put("wx_msg_id", msgID)
		m.ID = relay.InboundID(account, openid, "", created, m.Event, m.EventKey)
	} else {
		m.WxMsgID = msgID
		if kind == relay.KindText {
			m.Text = w.Content
		} else {
			attrs.put("content", w.Content)
		}
		attrs.put("pic_url", w.PicURL)
		attrs.put("format", w.Format)
		attrs.put("recognition", w.Recognition)
		attrs.put("thumb_media_id", w.ThumbMediaID)
		attrs.put("location_x", w.LocationX)
		attrs.put("location_y", w.LocationY)
		attrs.put("scale", w.Scale)
		attrs.put("label", w.Label)
		attrs.put("title", w.Title)
		attrs.put("description", w.Description)
		attrs.put("url", w.URL)
		fileName := w.FileName
		if fileName == "" && kind == relay.KindFile {
			fileName = w.Title
		}
		attrs.put("file_name", fileName)
		attrs.put("file_key", w.FileKey)
		attrs.put("file_md5", w.FileMd5)
		attrs.put("file_total_len", w.FileTotalLen)
		if msgID != "" {
			m.ID = relay.InboundID(account, openid, msgID, created, "", "")
		} else {
			// WeChat always sends MsgId with a message; should one come
			// without, key it by its exact content so a retry still maps
			// to the same ID and two different messages in the same
			// second do not collide.
			sum := sha256.Sum256(raw)
			m.ID = relay.InboundID(account, openid, "", created, "msg:"+msgType, hex.EncodeToString(sum[:]))
		}
	}
	if len(attrs) > 0 {
		m.Attrs = attrs
	}
	return m, nil
}

// attrSet collects the non-empty type-specific fields of a message.
type attrSet map[string]string

func (a attrSet) put(k, v string) {
	if v != "" {
		a[k] = v
	}
}

// isDecimal reports whether s is a non-empty run of ASCII digits.
func isDecimal(s string) bool {
	if s == "" || len(s) > 32 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// isToken reports whether s is a plausible MsgType: a short word of
// letters, digits and '_'. It keeps garbage out of relay.Kind.
func isToken(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_') {
			return false
		}
	}
	return true
}

// envelope is the outer XML of an encrypted callback. In compatible mode
// it also carries the plaintext fields, which are ignored: only the
// ciphertext is covered by msg_signature.
type envelope struct {
	XMLName    xml.Name `xml:"xml"`
	ToUserName string   `xml:"ToUserName"`
	Encrypt    string   `xml:"Encrypt"`
}

// parseEnvelope extracts the ciphertext of an encrypted callback body.
func parseEnvelope(body []byte) (envelope, error) {
	var e envelope
	if err := xml.Unmarshal(sanitizeXML(body), &e); err != nil {
		return e, fmt.Errorf("%w: envelope xml: %w", errMalformed, err)
	}
	e.Encrypt = string(bytes.TrimSpace([]byte(e.Encrypt)))
	if e.Encrypt == "" {
		return e, fmt.Errorf("%w: envelope has no Encrypt element", errMalformed)
	}
	return e, nil
}
