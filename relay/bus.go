package relay

import "context"

// EventType names what a bus Event carries.
type EventType string

const (
	// EventMessage carries an archived message.
	EventMessage EventType = "message"
	// EventStatus carries an archived delivery event of an outbound
	// message.
	EventStatus EventType = "status"
)

// Event is what travels on the Bus between relay instances and to the
// console: always something that is already archived.
type Event struct {
	Type     EventType      `json:"type"`
	Conv     ConversationID `json:"conv"`
	Employee string         `json:"employee,omitempty"` // who the conversation is assigned to
	Message  *Message       `json:"message,omitempty"`
	Status   *DeliveryEvent `json:"status,omitempty"`
}

// BatchPublisher is a Bus that can publish many events, in order, in one
// round trip (Redis pipelining). The archive writer uses it, when the bus
// has it, to publish a whole batch at once instead of one call per
// message.
type BatchPublisher interface {
	PublishBatch(ctx context.Context, events []Event) error
}

// Bus fans events out to every relay instance's console.
type Bus interface {
	Publish(ctx context.Context, e Event) error
	// Subscribe delivers events until ctx is done; the channel is then
	// closed.
	Subscribe(ctx context.Context) (<-chan Event, error)
}
