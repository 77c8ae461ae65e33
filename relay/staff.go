package relay

import (
	"context"
	"errors"
	"fmt"
	"math"
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

// ErrKeyReused wraps staff actions whose key was used before, in the same
// conversation for the same kind of action, by a different request:
// another target, text or acting employee. Nothing is done; the key
// keeps standing for the request recorded under it.
var ErrKeyReused = errors.New("relay: idempotency key already used for a different request")

// StaffAction is something an employee does to a conversation.
type StaffAction struct {
	Kind Kind // KindNote, KindTransfer, KindResolve or KindReopen
	Conv ConversationID
	By   string // the employee acting; authorisation is the caller's job
	// Key makes the action idempotent: the same conversation, kind and
	// key give the same message id, so a retry is archived once. A key
	// names one request: used again with another To, Text or By, the
	// action is refused (ErrKeyReused). Letters, digits, '-', '_', ':',
	// up to 100 characters.
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

// Recorder makes staff actions durable and reads back what is durable
// under an id: the Pipeline.
type Recorder interface {
	Acceptor
	// Recorded returns the message durable under m.ID, spooled or
	// archived, and whether there is one. m gives the id, account and
	// conversation.
	Recorded(ctx context.Context, m Message) (Message, bool, error)
}

// Recorded returns what is durable under m.ID: the spool's copy while it
// waits for the archive, else the archive's. A message leaves the spool
// only once it is archived, so one found in neither was never accepted.
// The archive is asked as Archive.Existing allows: in m's conversation,
// a day either side of m.AcceptedAt (now, when zero).
func (p *Pipeline) Recorded(ctx context.Context, m Message) (Message, bool, error) {
	for _, q := range p.d.Spool.Pending(math.MaxInt32) {
		if q.ID == m.ID {
			return q, true, nil
		}
	}
	if m.AcceptedAt.IsZero() {
		m.AcceptedAt = p.d.Now()
	}
	seqs, err := p.d.Archive.Existing(ctx, []Message{m})
	if err != nil {
		return Message{}, false, fmt.Errorf("looking up %s in the archive: %w", m.ID, err)
	}
	seq, ok := seqs[m.ID]
	if !ok {
		return Message{}, false, nil
	}
	msgs, err := p.d.Archive.Since(ctx, m.Conv, seq-1, 1)
	if err != nil {
		return Message{}, false, fmt.Errorf("reading %s back from the archive: %w", m.ID, err)
	}
	if len(msgs) == 0 || msgs[0].ID != m.ID {
		return Message{}, false, fmt.Errorf("reading %s back from the archive: not found at its sequence %d", m.ID, seq)
	}
	return msgs[0], true, nil
}

// Staff carries out staff actions. Safe for concurrent use.
type Staff struct {
	rec    Recorder
	assign Assignments
	now    func() time.Time
}

// NewStaff returns staff actions that are recorded through rec (the
// pipeline) and reassign conversations in assign. now may be nil
// (time.Now).
func NewStaff(rec Recorder, assign Assignments, now func() time.Time) (*Staff, error) {
	if rec == nil || assign == nil {
		return nil, errors.New("relay: staff actions need a pipeline and assignments")
	}
	if now == nil {
		now = time.Now
	}
	return &Staff{rec: rec, assign: assign, now: now}, nil
}

// Act carries out a, and returns the id of its internal message once
// that is durable (spooled; archived and published shortly after).
//
// The record under a's id decides what a is. None: a is new. One for
// the same request (the same To, Text and By): a is a retry, answered
// with the same id and recorded nothing more. One for a different
// request: a is refused with ErrKeyReused and nothing changes.
//
// A transfer does not reassign the conversation itself: its record does.
// The archive writer, routing the transfer message (Router.Route), hands
// the conversation to a.To just before it archives the message, so the
// conversation never moves without its record, and a transfer whose
// record is durable always moves it, after a crash too (the writer
// routes it again from the spool).
func (s *Staff) Act(ctx context.Context, a StaffAction) (string, error) {
	if err := validateAction(a); err != nil {
		return "", err
	}
	account, client := a.Conv.Split()
	m := Message{
		ID: StaffID(a.Conv, a.Kind, a.Key), Account: account, Client: client, Conv: a.Conv,
		Direction: Internal, Kind: a.Kind, Text: a.Text, CreatedAt: s.now(),
		Attrs: map[string]string{AttrBy: a.By},
	}
	// When the lookup fails (the archive is down, say) a goes ahead as
	// new: the spool still takes it, and record's reading back, which
	// needs the archive only when the id was taken before, decides.
	prev, found, err := s.rec.Recorded(ctx, m)
	if err == nil && found {
		if !sameRequest(prev, a) {
			return "", reused(a)
		}
		return m.ID, nil
	}
	if a.Kind == KindTransfer {
		from, err := s.assign.Get(ctx, a.Conv)
		if err != nil {
			return "", fmt.Errorf("reading the assignment of %s: %w", a.Conv, err)
		}
		m.Attrs[AttrFrom], m.Attrs[AttrTo] = from, a.To
	}
	if err := s.record(ctx, m, a); err != nil {
		return "", err
	}
	return m.ID, nil
}

// record accepts m, the message of a, and checks that what is durable
// under its id is a's: another request with the same key may have made
// it durable first.
func (s *Staff) record(ctx context.Context, m Message, a StaffAction) error {
	if err := s.rec.Accept(ctx, m); err != nil {
		return fmt.Errorf("archiving the %s: %w", a.Kind, err)
	}
	got, found, err := s.rec.Recorded(ctx, m)
	switch {
	case err != nil:
		return fmt.Errorf("reading back the %s %s: %w", a.Kind, m.ID, err)
	case !found:
		return fmt.Errorf("the %s %s was accepted but is neither spooled nor archived; try again", a.Kind, m.ID)
	case !sameRequest(got, a):
		return reused(a)
	}
	return nil
}

// sameRequest reports whether m, the record under a's id, was made by
// the same request as a.
func sameRequest(m Message, a StaffAction) bool {
	if m.Direction != Internal || m.Kind != a.Kind || m.Attrs[AttrBy] != a.By || m.Text != a.Text {
		return false
	}
	return a.Kind != KindTransfer || m.Attrs[AttrTo] == a.To
}

func reused(a StaffAction) error {
	return fmt.Errorf("%w: idempotency key %q was already used for a different %s of %s", ErrKeyReused, a.Key, a.Kind, a.Conv)
}

func validateAction(a StaffAction) error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrBadAction, fmt.Sprintf(format, args...))
	}
	if !keyPattern.MatchString(a.Key) {
		return bad("key must be 1-100 letters, digits, '-', '_' or ':'")
	}
	if acct, c := a.Conv.Split(); acct == "" || c == "" {
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
	// Convs, when not nil, keeps only these conversations (none when
	// empty): the inbox filtered by client profile.
	Convs []ConversationID
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
