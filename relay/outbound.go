package relay

import (
	"context"
	"errors"
	"fmt"
	"math"
	"time"
)

// WeChat errcodes the relay's policy acts on.
const (
	ErrCodeSystemBusy    = -1    // try again later
	ErrCodeInvalidToken  = 40001 // access_token invalid or replaced
	ErrCodeInvalidOpenID = 40003 // not a follower of this account
	ErrCodeTokenExpired  = 42001
	ErrCodeAPIQuota      = 45009 // daily API quota reached
	ErrCodeOutOfWindow   = 45015 // more than 48 hours since the client's last interaction
	ErrCodeSendQuota     = 45047 // too many customer-service messages since the client's last interaction
	ErrCodeUnauthorized  = 48001 // the account may not use this API
)

// SendError is WeChat refusing a call with an errcode: nothing was
// delivered.
type SendError struct {
	Code int
	Msg  string
}

func (e *SendError) Error() string { return fmt.Sprintf("wechat errcode %d: %s", e.Code, e.Msg) }

// Retryable reports whether the same call may succeed later.
func (e *SendError) Retryable() bool { return e.Code == ErrCodeSystemBusy }

// ErrOutcomeUnknown marks a send whose request may have reached WeChat
// without its answer reaching us (a timeout, a connection lost while
// waiting). WeChat has no idempotency key, so such a send is never
// repeated blindly.
var ErrOutcomeUnknown = errors.New("relay: outcome of the send is unknown")

// Template is a template message, the only way to reach a client outside
// the 48-hour window.
type Template struct {
	ID   string            // template_id approved for the account
	URL  string            // optional link
	Data map[string]string // keyword → value
}

// Sender is WeChat's outbound API as the relay needs it.
//
// Errors: nil means WeChat accepted the call; *SendError means it
// refused (after the sender itself refreshed an expired token once);
// an error wrapping ErrOutcomeUnknown means the request may have been
// delivered; any other error means it certainly was not (for example the
// connection was refused) and may be retried.
type Sender interface {
	// SendCustom sends m through the customer-service API. m.Kind is
	// text (Text), image or voice (MediaID), video (MediaID, Attrs
	// thumb_media_id, title, description) or link (Attrs title,
	// description, url, pic_url: sent as a news article).
	// Attrs["kf_account"] sends it as that customer-service account.
	SendCustom(ctx context.Context, m Message) error
	// Typing shows or hides "typing…" to the client.
	Typing(ctx context.Context, account, openid string, typing bool) error
	// UploadMedia uploads temporary media (3 days) and returns its id.
	UploadMedia(ctx context.Context, account string, kind Kind, fileName string, data []byte) (string, error)
	// SendTemplate sends a template message and returns WeChat's msgid.
	SendTemplate(ctx context.Context, account, openid string, t Template) (string, error)
}

// DeliveryState is what is known about an outbound message.
type DeliveryState string

// The states of an outbound message, in the order they can happen.
// Pending is implicit: an archived outbound message without events.
const (
	DeliveryPending DeliveryState = "pending"
	// DeliverySending is archived before WeChat is called, so that a
	// crash during the call is recognised as an unknown outcome.
	DeliverySending DeliveryState = "sending"
	DeliverySent    DeliveryState = "sent"
	DeliveryFailed  DeliveryState = "failed"
	DeliveryUnknown DeliveryState = "unknown"
	// DeliveryRefused: the relay's own policy refused it before WeChat.
	DeliveryRefused DeliveryState = "refused"
)

// Final reports whether nothing more will happen to the message.
func (s DeliveryState) Final() bool {
	return s == DeliverySent || s == DeliveryFailed || s == DeliveryUnknown || s == DeliveryRefused
}

// DeliveryEvent records one step of an outbound message's delivery. It
// is archived (append-only) like the message itself.
type DeliveryEvent struct {
	ID        string // unique: MessageID + "/" + State (+ attempt)
	MessageID string
	Account   string
	Conv      ConversationID
	State     DeliveryState
	ErrCode   int
	ErrMsg    string
	At        time.Time
	// Hash and BatchID are set when the event is archived through a
	// sealing event log (Pipeline.SealedEvents): the hash of its archived
	// content and the id of the seal that covers it. Empty before.
	Hash    string
	BatchID string
}

// EventLog is the archive of delivery events.
type EventLog interface {
	// AppendEvents commits events; an ID already archived is not added
	// again.
	AppendEvents(ctx context.Context, evs []DeliveryEvent) error
	// LatestEvents returns, for each of the message ids that has events,
	// the latest one (by At, then by state order).
	LatestEvents(ctx context.Context, messageIDs []string) (map[string]DeliveryEvent, error)
	// MessageEvents returns every event of the messages, by message id
	// then At. An event appended before the call is in its answer: the
	// outbox relies on it to keep two instances from both sending.
	MessageEvents(ctx context.Context, messageIDs []string) ([]DeliveryEvent, error)
	// Unsettled returns archived outbound messages accepted after since
	// whose latest event is not final (none, or sending), oldest first.
	Unsettled(ctx context.Context, since time.Time, limit int) ([]Message, error)
}

// Interactions tells when a client last interacted with the account and
// how many customer-service messages were sent since: WeChat's 48-hour
// window and per-interaction quota, computed from the archive.
type Interactions interface {
	// LastInteraction returns the AcceptedAt of the latest inbound
	// message or event of conv that counts as an interaction (zero if
	// none), and the number of outbound messages of conv archived after
	// it whose latest event is sent, sending or unknown.
	LastInteraction(ctx context.Context, conv ConversationID) (at time.Time, sends int, err error)
}

// Validate refuses an event no reader of the archive could use: every
// backend refuses the same ones.
func (e *DeliveryEvent) Validate() error {
	switch {
	case e.ID == "":
		return errors.New("no ID")
	case e.MessageID == "":
		return fmt.Errorf("%s: no message ID", e.ID)
	case e.State == "":
		return fmt.Errorf("%s: no state", e.ID)
	case e.At.IsZero():
		return fmt.Errorf("%s: no time", e.ID)
	case e.ErrCode < math.MinInt32 || e.ErrCode > math.MaxInt32:
		return fmt.Errorf("%s: errcode %d does not fit 32 bits", e.ID, e.ErrCode)
	}
	return nil
}
