package relay

import (
	"context"
	"errors"
	"fmt"
	"time"
	"unicode/utf8"
)

// What staff do with conversations besides writing to clients: internal
// notes, transfers, resolve and reopen. Each is archived as a message of
// the conversation with Direction Internal, through the same pipeline as
// every other message (spool, archive, then the bus), so it has a
// sequence number, reaches the consoles live and is part of the record.
// The pipeline hands only Outbound messages to the outbox: an internal
// message never reaches WeChat or the client.
//
// This file also holds what the console's inbox reads back from the
// archive: conversation summaries, unread counts and archived media.

// The kinds of internal messages.
const (
	KindNote     Kind = "note"     // Text: the note
	KindTransfer Kind = "transfer" // Attrs from, to; Text: an optional note
	KindResolve  Kind = "resolve"
	KindReopen   Kind = "reopen"
)

// Attributes of internal messages.
const (
	AttrBy   = "by"   // the employee who acted (every internal message)
	AttrFrom = "from" // transfer: the previous assignee ("" if none)
	AttrTo   = "to"   // transfer: the new assignee
)

// MaxNoteBytes caps the text of a note or a transfer note.
const MaxNoteBytes = 4096

// ErrBadAction wraps staff actions that cannot be carried out as they are.
var ErrBadAction = errors.New("relay: bad staff action")

// StaffAction is something an employee does to a conversation.
type StaffAction struct {
	Kind Kind // KindNote, KindTransfer, KindResolve or KindReopen
	Conv ConversationID
	By   string // the employee acting; authorisation is the caller's job
	// Key makes the action idempotent: the same conversation, kind and
	// key give the same message id, so a retry is archived once. Letters,
	// digits, '-', '_', ':', up to 100 characters.
	Key  string
	Text string // note: the note (required); transfer: optional
	To   string // transfer: the employee who serves the conversation from now on
}

// StaffID is the archive id of the internal message of an action.
func StaffID(conv ConversationID, kind Kind, key string) string {
	return "staff:" + string(conv) + ":" + string(kind) + ":" + key
}

// Acceptor makes a message durable: Pipeline.Accept.
type Acceptor interface {
	Accept(ctx context.Context, m Message) error
}

// Staff carries out staff actions. Safe for concurrent use.
type Staff struct {
	accept Acceptor
	assign Assignments
	now    func() time.Time
}

// NewStaff returns staff actions that archive through accept (the
// pipeline) and reassign conversations in assign. now may be nil
// (time.Now).
func NewStaff(accept Acceptor, assign Assignments, now func() time.Time) (*Staff, error) {
	if accept == nil || assign == nil {
		return nil, errors.New("relay: staff actions need a pipeline and assignments")
	}
	if now == nil {
		now = time.Now
	}
	return &Staff{accept: accept, assign: assign, now: now}, nil
}

// Act carries out a, and returns the id of its internal message once
// that is durable (spooled; archived and published shortly after).
//
// A transfer first assigns the conversation to a.To, then archives the
// transfer message, which routing therefore files under the new
// assignee. If archiving fails after the assignment changed, repeating
// the action with the same key records it.
func (s *Staff) Act(ctx context.Context, a StaffAction) (string, error) {
	if err := validateAction(a); err != nil {
		return "", err
	}
	account, client := splitConv(a.Conv)
	m := Message{
		ID: StaffID(a.Conv, a.Kind, a.Key), Account: account, Client: client, Conv: a.Conv,
		Direction: Internal, Kind: a.Kind, Text: a.Text, CreatedAt: s.now(),
		Attrs: map[string]string{AttrBy: a.By},
	}
	if a.Kind == KindTransfer {
		from, err := s.assign.Get(ctx, a.Conv)
		if err != nil {
			return "", fmt.Errorf("reading the assignment of %s: %w", a.Conv, err)
		}
		m.Attrs[AttrFrom], m.Attrs[AttrTo] = from, a.To
		if err := s.assign.Set(ctx, a.Conv, a.To); err != nil {
			return "", fmt.Errorf("assigning %s to %s: %w", a.Conv, a.To, err)
		}
	}
	if err := s.accept.Accept(ctx, m); err != nil {
		return "", fmt.Errorf("archiving the %s: %w", a.Kind, err)
	}
	return m.ID, nil
}

func validateAction(a StaffAction) error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrBadAction, fmt.Sprintf(format, args...))
	}
	if !keyPattern.MatchString(a.Key) {
		return bad("key must be 1-100 letters, digits, '-', '_' or ':'")
	}
	if acct, c := splitConv(a.Conv); acct == "" || c == "" {
		return bad("conversation %q is not <account>:<openid>", a.Conv)
	}
	if a.By == "" {
		return bad("no acting employee")
	}
	if len(a.Text) > MaxNoteBytes || !utf8.ValidString(a.Text) {
		return bad("text must be valid UTF-8 of at most %d bytes", MaxNoteBytes)
	}
	switch a.Kind {
	case KindNote:
		if a.Text == "" {
			return bad("a note needs text")
		}
	case KindTransfer:
		if a.To == "" {
			return bad("a transfer needs the employee to transfer to")
		}
	case KindResolve, KindReopen:
	default:
		return bad("unknown staff action %q", a.Kind)
	}
	return nil
}

// ConversationStatus is where a conversation stands for staff.
type ConversationStatus string

// The statuses. A conversation is resolved when its latest resolve
// message has a higher sequence than its latest reopen message and than
// the client's latest interaction (Message.IsInteraction): a client who
// writes again reopens it, as in an agent inbox. Otherwise it is open.
const (
	StatusOpen     ConversationStatus = "open"
	StatusResolved ConversationStatus = "resolved"
)

// ConversationFilter selects conversations for the inbox. Zero fields
// select everything.
type ConversationFilter struct {
	Account  string             // only this account's conversations
	Employee string             // only those whose latest message is filed under this employee
	Status   ConversationStatus // only those with this status
	Conv     ConversationID     // only this conversation
	// Employees, when not empty, keeps only the conversations whose
	// latest message is filed under one of them (AND with Employee).
	Employees []string
	// ActiveSince keeps only conversations with a message accepted
	// strictly after it. The summaries are still computed over every
	// message of those conversations.
	ActiveSince time.Time
	Limit       int // at most this many; <= 0: no limit
}

// ConversationSummary is one line of the inbox.
type ConversationSummary struct {
	Conv    ConversationID
	Account string
	Client  string
	// Employee is the Employee of the latest message: who the
	// conversation was assigned to when it was archived.
	Employee string
	Status   ConversationStatus
	LastSeq  uint64
	// Last is the message with sequence LastSeq.
	Last Message
	// LastInteraction is the AcceptedAt of the client's latest
	// interaction, zero if none.
	LastInteraction time.Time
}

// ConversationIndex reads conversations back from the archive for the
// inbox.
type ConversationIndex interface {
	// Conversations returns the conversations f selects, the most
	// recently active first (by the AcceptedAt of their latest message,
	// then by id).
	Conversations(ctx context.Context, f ConversationFilter) ([]ConversationSummary, error)
	// CountInbound returns, for each conversation of after, how many of
	// its inbound messages have a sequence above after[conv].
	// Conversations with none may be absent.
	CountInbound(ctx context.Context, after map[ConversationID]uint64) (map[ConversationID]int, error)
}

// MediaReader reads archived media back.
type MediaReader interface {
	// MessageMedia returns the archived message with id messageID and
	// the media linked to it (the first linked, if several). ok is false
	// when no media is linked to the id: not fetched yet, a message
	// without media, or no such message.
	MessageMedia(ctx context.Context, messageID string) (m Message, media Media, ok bool, err error)
}
