package relay

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"hash"
	"math"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Tamper evidence: sealed batches, a Merkle root per batch, seals chained
// per writer.
//
// Several relay instances archive at once, so a hash chain per
// conversation would need coordination between them. Instead each writer
// — one relay instance, named by a stable writer id — keeps chains of its
// own, one per stream (StreamMessages for the pipeline's batches,
// StreamEvents for delivery events). Every row it archives carries the
// hash of its content (MessageHash, EventHash) and the id of the batch it
// was written in; once the rows of a batch are stored, the writer stores
// a Seal naming every row of the batch (id, conversation, hash), the
// Merkle root of their hashes, and the hash of the previous seal of the
// same chain. `wechat-relay verify` recomputes all of it from the archive
// (package relay/verify).
//
// # Canonical encoding, version 1
//
// A hash is the lowercase hex SHA-256 of an encoding that is a sequence
// of fields. Every field is a byte string written as its length, an
// unsigned 64-bit big-endian integer, followed by its bytes. Numbers are
// written as byte strings of their decimal ASCII form (no sign for
// unsigned values, a leading '-' for negative signed ones, no leading
// zeros), booleans as "0" or "1", times as decimal epoch seconds or
// milliseconds as noted. Because every field carries its length, two
// different rows never encode to the same bytes. The first field names
// the kind of record and the version, so a message, an event and a seal
// never share an encoding either.
//
// A message (MessageHash) is the fields, in this order:
//
//	"wechat-relay/message/v1"
//	id, account, client, conv
//	seq                (decimal)
//	direction, kind, wx_msg_id, event, event_key, text, media_id
//	number of attrs    (decimal), then for each attr in ascending byte
//	                   order of its key: key, value
//	raw                (the callback body, byte for byte; nil is empty)
//	created_at         (decimal epoch seconds of CreatedAt, clamped to
//	                   0 .. 4294967295, what a ClickHouse DateTime holds;
//	                   the zero time is 0)
//	accepted_ms        (decimal epoch milliseconds of AcceptedAt, 0 for
//	                   the zero time or anything before 1970)
//	employee
//	interaction        ("1" or "0": the interaction column as archived,
//	                   Message.IsInteraction when the row was written)
//
// A delivery event (EventHash):
//
//	"wechat-relay/event/v1"
//	id, message_id, account, conv, state
//	errcode            (signed decimal)
//	errmsg
//	at_ms              (decimal epoch milliseconds of At, 0 before 1970)
//
// A seal (Seal.ComputeHash):
//
//	"wechat-relay/seal/v1"
//	id, writer, stream
//	number             (decimal)
//	prev, root
//	count              (decimal, the number of leaves)
//	first_ms, last_ms, at_ms (decimal epoch milliseconds)
//	recovered          ("1" or "0")
//	then for each leaf, in the seal's order: id, conv, hash
//
// # Merkle root
//
// MerkleRoot is the Merkle Tree Hash of RFC 6962 (section 2.1) over the
// leaves' hashes, each leaf's data being the 32 bytes its hex names: the
// root of no leaves is SHA-256 of nothing; of one leaf d, SHA-256(0x00 ||
// d); of n > 1 leaves, SHA-256(0x01 || MTH(first k) || MTH(rest)) where k
// is the largest power of two smaller than n. Said level by level: leaves
// are paired left to right, and an odd node at the end of a level is
// carried up unchanged, never paired with a copy of itself. The leaves of
// a seal are its rows sorted by id (byte order).

// Streams of a writer: each is a chain of its own.
const (
	StreamMessages = "messages" // the pipeline's batches of messages
	StreamEvents   = "events"   // delivery events of outbound messages
)

// Encoding tags, the first field of each canonical encoding.
const (
	messageTag = "wechat-relay/message/v1"
	eventTag   = "wechat-relay/event/v1"
	sealTag    = "wechat-relay/seal/v1"
)

// writerPattern is what a writer id may look like: it is part of every
// batch id, where '/' separates writer, stream and number.
var writerPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)

// ValidWriter reports whether id can name a writer: 1 to 64 ASCII
// letters, digits, '.', '_' or '-', starting with a letter or digit.
func ValidWriter(id string) bool { return writerPattern.MatchString(id) }

// BatchID is the id of seal number n of writer's stream, and the batch
// id of the rows it covers: writer "/" stream "/" n as 20 digits, so that
// ids of one chain sort as their numbers do.
func BatchID(writer, stream string, n uint64) string {
	return fmt.Sprintf("%s/%s/%020d", writer, stream, n)
}

// ParseBatchID splits a batch id made by BatchID.
func ParseBatchID(id string) (writer, stream string, n uint64, ok bool) {
	i := strings.LastIndexByte(id, '/')
	if i < 0 || len(id)-i-1 != 20 {
		return "", "", 0, false
	}
	n, err := strconv.ParseUint(id[i+1:], 10, 64)
	if err != nil {
		return "", "", 0, false
	}
	writer, stream, ok = strings.Cut(id[:i], "/")
	if !ok || writer == "" || stream == "" {
		return "", "", 0, false
	}
	return writer, stream, n, true
}

// encoder writes length-prefixed fields into a hash.
type encoder struct{ h hash.Hash }

func newEncoder(tag string) encoder {
	e := encoder{sha256.New()}
	e.str(tag)
	return e
}

func (e encoder) bytes(b []byte) {
	var n [8]byte
	binary.BigEndian.PutUint64(n[:], uint64(len(b)))
	e.h.Write(n[:])
	e.h.Write(b)
}

func (e encoder) str(s string) {
	var n [8]byte
	binary.BigEndian.PutUint64(n[:], uint64(len(s)))
	e.h.Write(n[:])
	e.h.Write([]byte(s))
}

func (e encoder) uint(v uint64) { e.str(strconv.FormatUint(v, 10)) }
func (e encoder) int(v int64)   { e.str(strconv.FormatInt(v, 10)) }

func (e encoder) bool(b bool) {
	if b {
		e.str("1")
	} else {
		e.str("0")
	}
}

func (e encoder) sum() string { return hex.EncodeToString(e.h.Sum(nil)) }

// archivedSeconds is t as the archive keeps CreatedAt: epoch seconds in
// the range of a ClickHouse DateTime, 0 for the zero time.
func archivedSeconds(t time.Time) uint64 {
	if t.IsZero() {
		return 0
	}
	return uint64(min(max(t.Unix(), 0), math.MaxUint32))
}

// archivedMillis is t as the archive keeps AcceptedAt and At: epoch
// milliseconds, 0 for the zero time and anything before 1970.
func archivedMillis(t time.Time) uint64 {
	if ms := t.UnixMilli(); !t.IsZero() && ms > 0 {
		return uint64(ms)
	}
	return 0
}

// MessageHash is the hash of m as the archive keeps it (see the
// canonical encoding above), with interaction m.IsInteraction(): what a
// writer stores in the row's hash column and in its seal.
func MessageHash(m Message) string { return messageHash(m, m.IsInteraction()) }

// messageHash hashes m with the given value of the interaction column.
func messageHash(m Message, interaction bool) string {
	e := newEncoder(messageTag)
	e.str(m.ID)
	e.str(m.Account)
	e.str(m.Client)
	e.str(string(m.Conv))
	e.uint(m.Seq)
	e.str(string(m.Direction))
	e.str(string(m.Kind))
	e.str(m.WxMsgID)
	e.str(m.Event)
	e.str(m.EventKey)
	e.str(m.Text)
	e.str(m.MediaID)
	keys := make([]string, 0, len(m.Attrs))
	for k := range m.Attrs {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	e.uint(uint64(len(keys)))
	for _, k := range keys {
		e.str(k)
		e.str(m.Attrs[k])
	}
	e.bytes(m.Raw)
	e.uint(archivedSeconds(m.CreatedAt))
	e.uint(archivedMillis(m.AcceptedAt))
	e.str(m.Employee)
	e.bool(interaction)
	return e.sum()
}

// EventHash is the hash of ev as the archive keeps it.
func EventHash(ev DeliveryEvent) string {
	e := newEncoder(eventTag)
	e.str(ev.ID)
	e.str(ev.MessageID)
	e.str(ev.Account)
	e.str(string(ev.Conv))
	e.str(string(ev.State))
	e.int(int64(ev.ErrCode))
	e.str(ev.ErrMsg)
	e.uint(archivedMillis(ev.At))
	return e.sum()
}

// MerkleRoot is the RFC 6962 Merkle Tree Hash of hashes (hex SHA-256
// values), in the order given, as lowercase hex. A value that is not 64
// hex digits (a forged or damaged one) is taken as its own bytes, so the
// root is defined for anything, and differs from the root of the genuine
// value.
func MerkleRoot(hashes []string) string {
	if len(hashes) == 0 {
		sum := sha256.Sum256(nil)
		return hex.EncodeToString(sum[:])
	}
	level := make([][]byte, len(hashes))
	for i, h := range hashes {
		d, err := hex.DecodeString(h)
		if err != nil || len(d) != sha256.Size {
			d = []byte(h)
		}
		sum := sha256.Sum256(append([]byte{0}, d...))
		level[i] = sum[:]
	}
	for len(level) > 1 {
		next := level[:0:0]
		for i := 0; i+1 < len(level); i += 2 {
			buf := make([]byte, 0, 1+2*sha256.Size)
			buf = append(append(append(buf, 1), level[i]...), level[i+1]...)
			sum := sha256.Sum256(buf)
			next = append(next, sum[:])
		}
		if len(level)%2 == 1 {
			next = append(next, level[len(level)-1]) // carried up, not paired
		}
		level = next
	}
	return hex.EncodeToString(level[0])
}

// Leaf is one row a seal covers.
type Leaf struct {
	ID   string // message or event id
	Conv ConversationID
	Hash string // MessageHash or EventHash of the row
}

// Seal closes one batch of a writer's stream: it lists the rows written
// in the batch, and chains to the writer's previous seal of the stream.
type Seal struct {
	ID     string // BatchID(Writer, Stream, Number): the batch id of its rows
	Writer string
	Stream string // StreamMessages or StreamEvents
	Number uint64 // 1, 2, ... within the writer's stream
	Prev   string // Hash of seal Number-1 of the stream; "" for number 1
	Root   string // MerkleRoot of the leaves' hashes, in leaf order
	Count  int    // len(Leaves)
	// First and Last are the earliest and latest AcceptedAt (events: At)
	// of the rows, to the millisecond.
	First, Last time.Time
	At          time.Time // when the seal was made, to the millisecond
	// Recovered marks a seal written after a crash (or a failed write)
	// from the rows found in the archive, rather than by the call that
	// wrote the rows.
	Recovered bool
	Leaves    []Leaf // sorted by ID
	Hash      string // ComputeHash of the fields above
	// KeyID and Signature sign Hash with the writer's seal key
	// (seal_sign.go); both empty for an unsigned seal. They are not
	// part of the hash.
	KeyID     string
	Signature string
}

// ComputeHash is the hash of s's fields other than Hash, in the
// canonical encoding.
func (s Seal) ComputeHash() string {
	e := newEncoder(sealTag)
	e.str(s.ID)
	e.str(s.Writer)
	e.str(s.Stream)
	e.uint(s.Number)
	e.str(s.Prev)
	e.str(s.Root)
	e.int(int64(s.Count))
	e.uint(archivedMillis(s.First))
	e.uint(archivedMillis(s.Last))
	e.uint(archivedMillis(s.At))
	e.bool(s.Recovered)
	for _, l := range s.Leaves {
		e.str(l.ID)
		e.str(string(l.Conv))
		e.str(l.Hash)
	}
	return e.sum()
}

// Flaw returns what is wrong inside s — its count, Merkle root or hash
// does not match the rows it lists — or "" for an intact seal.
func (s Seal) Flaw() string {
	switch {
	case s.Count != len(s.Leaves):
		return fmt.Sprintf("its count %d is not the %d rows it lists", s.Count, len(s.Leaves))
	case s.Root != MerkleRoot(s.leafHashes()):
		return "its Merkle root does not match the rows it lists"
	case s.Hash != s.ComputeHash():
		return "its content does not match its hash"
	}
	return ""
}

// SealKey is a seal's place: its chain and number.
type SealKey struct {
	Writer, Stream string
	Number         uint64
}

// leafHashes returns the hashes of s's leaves in order.
func (s Seal) leafHashes() []string {
	out := make([]string, len(s.Leaves))
	for i, l := range s.Leaves {
		out[i] = l.Hash
	}
	return out
}

// newSeal makes seal number n of writer's stream over leaves, chained to
// prev (the hash of seal n-1, "" for n 1). Times are kept to the
// millisecond, as the archive keeps them.
func newSeal(writer, stream string, n uint64, prev string, leaves []Leaf, first, last, at time.Time, recovered bool) Seal {
	leaves = slices.Clone(leaves)
	slices.SortFunc(leaves, func(a, b Leaf) int {
		if c := strings.Compare(a.ID, b.ID); c != 0 {
			return c
		}
		return strings.Compare(a.Hash, b.Hash)
	})
	s := Seal{
		ID: BatchID(writer, stream, n), Writer: writer, Stream: stream, Number: n, Prev: prev,
		Count: len(leaves), First: millis(first), Last: millis(last), At: millis(at),
		Recovered: recovered, Leaves: leaves,
	}
	s.Root = MerkleRoot(s.leafHashes())
	s.Hash = s.ComputeHash()
	return s
}

// millis is t truncated to the millisecond, in UTC; zero stays zero.
func millis(t time.Time) time.Time {
	if t.IsZero() {
		return t
	}
	return t.Truncate(time.Millisecond).UTC()
}

// StoredRow is one physical row of the archive, a message or a delivery
// event, as recovery and verification read it, with the sealing columns
// (Hash, BatchID) as stored.
type StoredRow struct {
	Message *Message // a row of messages, or nil
	// Interaction is a message row's stored interaction column.
	Interaction bool
	Event       *DeliveryEvent // a row of events, or nil
}

// ID is the row's message or event id.
func (r StoredRow) ID() string {
	if r.Message != nil {
		return r.Message.ID
	}
	return r.Event.ID
}

// Conv is the row's conversation.
func (r StoredRow) Conv() ConversationID {
	if r.Message != nil {
		return r.Message.Conv
	}
	return r.Event.Conv
}

// BatchID is the row's stored batch id.
func (r StoredRow) BatchID() string {
	if r.Message != nil {
		return r.Message.BatchID
	}
	return r.Event.BatchID
}

// StoredHash is the row's stored hash column.
func (r StoredRow) StoredHash() string {
	if r.Message != nil {
		return r.Message.Hash
	}
	return r.Event.Hash
}

// ComputeHash recomputes the row's hash from its stored content.
func (r StoredRow) ComputeHash() string {
	if r.Message != nil {
		return messageHash(*r.Message, r.Interaction)
	}
	return EventHash(*r.Event)
}

// Table names the row's table: "messages" or "events".
func (r StoredRow) Table() string {
	if r.Message != nil {
		return StreamMessages
	}
	return StreamEvents
}

// time is the row's AcceptedAt (events: At).
func (r StoredRow) time() time.Time {
	if r.Message != nil {
		return r.Message.AcceptedAt
	}
	return r.Event.At
}

// SealStore is the archive as a sealing writer needs it. Both archives
// in storage implement it, as part of Archive.
type SealStore interface {
	// InsertSeal stores s. Idempotent by s.ID: storing the same seal
	// again adds nothing a reader would see as a second seal.
	InsertSeal(ctx context.Context, s Seal) error
	// LatestSeal returns the stored seal of writer's stream with the
	// highest number; ok is false if there is none.
	LatestSeal(ctx context.Context, writer, stream string) (s Seal, ok bool, err error)
	// BatchRows returns every stored row (messages and events, physical
	// copies included) whose batch id is batchID.
	BatchRows(ctx context.Context, batchID string) ([]StoredRow, error)
	// SettleInserts returns once no insert of rows of batchID can still
	// commit: an insert whose answer was lost may be running yet (the
	// store hung or killed mid-answer, the caller's context ended), and
	// would land after a retry had read the batch as missing rows — one
	// row stored twice. A store whose insert is done when it returns has
	// nothing to do.
	SettleInserts(ctx context.Context, batchID string) error
}
