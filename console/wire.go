package console

import (
	"time"

	"github.com/wechat-relay/wechat-relay/relay"
)

// WireMessage is a message as the console API shows it. The raw
// callback body stays in the archive.
type WireMessage struct {
	ID         string            `json:"id"`
	Account    string            `json:"account"`
	Client     string            `json:"client"`
	Conv       string            `json:"conv"`
	Seq        uint64            `json:"seq"`
	Direction  string            `json:"direction"`
	Kind       string            `json:"kind"`
	WxMsgID    string            `json:"wx_msg_id,omitempty"`
	Event      string            `json:"event,omitempty"`
	EventKey   string            `json:"event_key,omitempty"`
	Text       string            `json:"text,omitempty"`
	MediaID    string            `json:"media_id,omitempty"`
	Attrs      map[string]string `json:"attrs,omitempty"`
	CreatedAt  time.Time         `json:"created_at"`
	AcceptedAt time.Time         `json:"accepted_at"`
	Employee   string            `json:"employee,omitempty"`
	// Status is the delivery status of an outbound message, in answers
	// of GET .../messages (not in socket frames, which are followed by
	// status frames).
	Status *WireStatus `json:"status,omitempty"`
}

func toWire(m relay.Message) WireMessage {
	return WireMessage{
		ID: m.ID, Account: m.Account, Client: m.Client, Conv: string(m.Conv), Seq: m.Seq,
		Direction: string(m.Direction), Kind: string(m.Kind), WxMsgID: m.WxMsgID, Event: m.Event,
		EventKey: m.EventKey, Text: m.Text, MediaID: m.MediaID, Attrs: m.Attrs,
		CreatedAt: m.CreatedAt, AcceptedAt: m.AcceptedAt, Employee: m.Employee,
	}
}

// Frame types on the WebSocket.
const (
	// Server → browser.
	FrameMessage  = "message"   // an archived message: Conv, Seq, Message
	FrameCaughtUp = "caught_up" // a resume finished: Conv, Seq (last sent)
	FrameError    = "error"     // a refused request: Error, and Conv when it concerns one
	FrameStatus   = "status"    // delivery of an outbound message: Conv, Status
	FrameAlert    = "alert"     // a lexicon hit, to supervisors, compliance and admins: Conv, Alert
	// Browser → server.
	FrameResume = "resume" // send what was archived in Conv after Seq
)

// Frame is one WebSocket message, either way.
type Frame struct {
	Type    string            `json:"type"`
	Conv    string            `json:"conv,omitempty"`
	Seq     uint64            `json:"seq,omitempty"`
	Message *WireMessage      `json:"message,omitempty"`
	Status  *WireStatus       `json:"status,omitempty"`
	Alert   *relay.LexiconHit `json:"alert,omitempty"`
	Error   string            `json:"error,omitempty"`
}

// WireStatus is the delivery state of an outbound message.
type WireStatus struct {
	MessageID string    `json:"message_id"`
	State     string    `json:"state"` // pending, sending, sent, failed, unknown
	ErrCode   int       `json:"errcode,omitempty"`
	ErrMsg    string    `json:"errmsg,omitempty"`
	Reason    string    `json:"reason,omitempty"` // plain words for the employee
	At        time.Time `json:"at"`
}

func toWireStatus(e relay.DeliveryEvent) WireStatus {
	return WireStatus{MessageID: e.MessageID, State: string(e.State), ErrCode: e.ErrCode, ErrMsg: e.ErrMsg,
		Reason: reason(e.State, e.ErrCode), At: e.At}
}

// reason says in plain words why a message is where it is.
func reason(state relay.DeliveryState, code int) string {
	switch state {
	case relay.DeliveryUnknown:
		return "WeChat did not confirm this message; the client may or may not have received it. It will not be resent automatically."
	case relay.DeliveryFailed:
	default:
		return ""
	}
	switch code {
	case relay.ErrCodeOutOfWindow:
		return "More than 48 hours since the client's last message: WeChat allows only template messages now."
	case relay.ErrCodeSendQuota:
		return "Too many messages since the client's last message (WeChat's limit); wait for the client to write."
	case relay.ErrCodeInvalidOpenID:
		return "The client no longer follows the account."
	case relay.ErrCodeAPIQuota:
		return "The account's daily WeChat API quota is used up."
	case relay.ErrCodeUnauthorized:
		return "The account is not allowed to send customer-service messages."
	case relay.ErrCodeSystemBusy:
		return "WeChat was busy and the message could not be delivered; try again."
	}
	return "WeChat refused the message."
}
