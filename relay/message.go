package relay

import (
	"crypto/sha256"
	"encoding/hex"
	"strconv"
	"strings"
	"time"
)

// Direction says who wrote a message.
type Direction string

const (
	// Inbound messages come from the client through WeChat.
	Inbound Direction = "in"
	// Outbound messages go from the firm to the client.
	Outbound Direction = "out"
	// Internal messages are staff actions (notes, transfers, resolve,
	// reopen): archived in the conversation like any message, shown to
	// staff, never sent to the client. See StaffAction.
	Internal Direction = "internal"
)

// Kind is the WeChat message type, or KindEvent for events.
type Kind string

// The message kinds WeChat delivers to an Official Account.
const (
	KindText       Kind = "text"
	KindImage      Kind = "image"
	KindVoice      Kind = "voice"
	KindVideo      Kind = "video"
	KindShortVideo Kind = "shortvideo"
	KindLocation   Kind = "location"
	KindLink       Kind = "link"
	KindFile       Kind = "file"
	KindEvent      Kind = "event"
)

// HasMedia reports whether messages of this kind carry a temporary media
// id that must be fetched from WeChat within three days.
func (k Kind) HasMedia() bool {
	switch k {
	case KindImage, KindVoice, KindVideo, KindShortVideo, KindFile:
		return true
	}
	return false
}

// ConversationID names a conversation: one client of one account.
type ConversationID string

// Conversation returns the id of the conversation between account and
// the client with the given openid.
func Conversation(account, openid string) ConversationID {
	return ConversationID(account + ":" + openid)
}

// Split returns the account and the client's openid of c; both are empty
// when c is not <account>:<openid>. (An openid may hold ':'; an account
// id may not.)
func (c ConversationID) Split() (account, openid string) {
	account, openid, ok := strings.Cut(string(c), ":")
	if !ok {
		return "", ""
	}
	return account, openid
}

// Message is one archived item of a conversation: a message either way,
// or an event. Fields that do not apply to a kind are empty.
type Message struct {
	// ID is the archive key. It is derived from what WeChat sent, so a
	// retried callback produces the same ID (see InboundID).
	ID        string
	Account   string // account id from the configuration
	Client    string // client openid
	Conv      ConversationID
	Seq       uint64 // per conversation, dense, assigned when archived; 0 before
	Direction Direction
	Kind      Kind

	WxMsgID  string // WeChat MsgId as a decimal string; empty for events
	Event    string // event name as WeChat sends it (subscribe, SCAN, ...)
	EventKey string

	// Text is the content, sanitised to valid UTF-8 without characters
	// XML 1.0 forbids. The exact bytes received are kept in Raw.
	Text    string
	MediaID string
	// Attrs holds the type-specific fields (pic_url, format,
	// recognition, thumb_media_id, location_x, location_y, scale,
	// label, title, description, url, file_name, ...).
	Attrs map[string]string
	// Raw is the plaintext callback body exactly as received.
	Raw []byte

	CreatedAt  time.Time // WeChat's CreateTime
	AcceptedAt time.Time // when the relay made it durable
	Employee   string    // assigned employee, set by routing before archiving

	// Hash and BatchID are set by the pipeline when it archives the
	// message (see seal.go): the hash of its archived content, and the id
	// of the seal that covers it. Empty before.
	Hash    string
	BatchID string

	// Ticket is the message's place in its conversation's line of
	// accepted messages (see AcceptOrder), taken before it is spooled
	// and kept in the spool; 0 when it has none. It orders numbering
	// across instances and is not archived.
	Ticket uint64
}

// InboundID returns the archive key for an inbound message or event.
// Messages are keyed by MsgId; events, which have none, by sender,
// creation time, event and key — the fields WeChat repeats on retry.
func InboundID(account, openid, wxMsgID string, createTime int64, event, eventKey string) string {
	if wxMsgID != "" {
		return "in:" + account + ":" + wxMsgID
	}
	h := sha256.New()
	for _, s := range []string{account, openid, strconv.FormatInt(createTime, 10), event, eventKey} {
		h.Write([]byte(s))
		h.Write([]byte{0})
	}
	return "ev:" + account + ":" + hex.EncodeToString(h.Sum(nil)[:16])
}

// interactionEvents are the events WeChat counts as the client
// interacting with the account, opening (or renewing) the 48-hour window
// for customer-service messages. WeChat's list: a message, following,
// scanning a QR code, and of the menu only "click" and the two
// "scan code" kinds — not VIEW (a link), photo or location menus.
var interactionEvents = map[string]bool{
	"subscribe": true, "SCAN": true, "CLICK": true,
	"scancode_push": true, "scancode_waitmsg": true,
}

// IsInteraction reports whether m, as an inbound message, opens the
// 48-hour customer-service window: any message the client sends, and the
// events of the client's own actions (not unsubscribe, automatic
// location reports or the platform's notifications).
func (m Message) IsInteraction() bool {
	if m.Direction != Inbound {
		return false
	}
	if m.Kind != KindEvent {
		return true
	}
	return interactionEvents[m.Event]
}
