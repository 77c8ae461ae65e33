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
	// Browser → server.
	FrameResume = "resume" // send what was archived in Conv after Seq
)

// Frame is one WebSocket message, either way.
type Frame struct {
	Type    string       `json:"type"`
	Conv    string       `json:"conv,omitempty"`
	Seq     uint64       `json:"seq,omitempty"`
	Message *WireMessage `json:"message,omitempty"`
	Error   string       `json:"error,omitempty"`
}
