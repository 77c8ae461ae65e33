package spool

import (
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/wechat-relay/wechat-relay/relay"
)

// Record types: the first byte of every payload. A new encoding of a
// record gets a new type byte rather than changing an old one, so files
// written by an older binary stay readable.
const (
	recAccept byte = 1 // one relay.Message, encoded by appendMessage
	recAssign byte = 2 // uvarint count, then count × (id, uvarint seq)
	recDone   byte = 3 // uvarint count, then count × id
	// recPlaced is recAccept for a message with a place in its
	// conversation's line: uvarint Ticket, then what recAccept holds.
	// Decoded, it is a recAccept record.
	recPlaced byte = 4
)

// Time location kinds, see appendTime.
const (
	locUTC   byte = 0
	locLocal byte = 1
	locFixed byte = 2
)

// knownRecordType reports whether a payload starting with t can decode.
func knownRecordType(t byte) bool {
	return t == recAccept || t == recAssign || t == recDone || t == recPlaced
}

// record is one decoded log record.
type record struct {
	typ  byte
	msg  relay.Message // recAccept
	seqs []idSeq       // recAssign
	ids  []string      // recDone
}

type idSeq struct {
	id  string
	seq uint64
}

// errDecode marks a record whose checksum is right but whose payload does
// not decode: not a torn write, so never silently truncated.
var errDecode = errors.New("undecodable record")

// encodeAccept returns the payload of an Accept record for m.
//
// The encoding is hand-written rather than JSON or gob because it must
// give back every field exactly: JSON replaces invalid UTF-8 in strings,
// gob turns empty maps and slices into nil. TestMessageCodecCoversAllFields
// fails when relay.Message grows a field this codec does not carry.
func encodeAccept(m *relay.Message) []byte {
	b := make([]byte, 0, 128+len(m.Raw)+len(m.Text))
	if m.Ticket != 0 {
		b = append(b, recPlaced)
		b = binary.AppendUvarint(b, m.Ticket)
	} else {
		b = append(b, recAccept)
	}
	b = appendString(b, m.ID)
	b = appendString(b, m.Account)
	b = appendString(b, m.Client)
	b = appendString(b, string(m.Conv))
	b = binary.AppendUvarint(b, m.Seq)
	b = appendString(b, string(m.Direction))
	b = appendString(b, string(m.Kind))
	b = appendString(b, m.WxMsgID)
	b = appendString(b, m.Event)
	b = appendString(b, m.EventKey)
	b = appendString(b, m.Text)
	b = appendString(b, m.MediaID)
	// nil and empty are kept apart: count+1, with 0 meaning nil.
	if m.Attrs == nil {
		b = append(b, 0)
	} else {
		b = binary.AppendUvarint(b, uint64(len(m.Attrs))+1)
		for _, k := range slices.Sorted(maps.Keys(m.Attrs)) {
			b = appendString(b, k)
			b = appendString(b, m.Attrs[k])
		}
	}
	if m.Raw == nil {
		b = append(b, 0)
	} else {
		b = binary.AppendUvarint(b, uint64(len(m.Raw))+1)
		b = append(b, m.Raw...)
	}
	b = appendTime(b, m.CreatedAt)
	b = appendTime(b, m.AcceptedAt)
	b = appendString(b, m.Employee)
	// The sealing fields are set when a message is archived, never while
	// it is spooled: written only when set, so that records stay what
	// older binaries read.
	if m.Hash != "" || m.BatchID != "" {
		b = appendString(b, m.Hash)
		b = appendString(b, m.BatchID)
	}
	return b
}

// encodeAssign returns the payload of an Assign record.
func encodeAssign(seqs []idSeq) []byte {
	n := 1 + binary.MaxVarintLen64
	for _, s := range seqs {
		n += len(s.id) + 2*binary.MaxVarintLen64
	}
	b := make([]byte, 0, n)
	b = append(b, recAssign)
	b = binary.AppendUvarint(b, uint64(len(seqs)))
	for _, s := range seqs {
		b = appendString(b, s.id)
		b = binary.AppendUvarint(b, s.seq)
	}
	return b
}

// encodeDone returns the payload of a Done record.
func encodeDone(ids []string) []byte {
	n := 1 + binary.MaxVarintLen64
	for _, id := range ids {
		n += len(id) + binary.MaxVarintLen64
	}
	b := make([]byte, 0, n)
	b = append(b, recDone)
	b = binary.AppendUvarint(b, uint64(len(ids)))
	for _, id := range ids {
		b = appendString(b, id)
	}
	return b
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// appendTime keeps the instant to the nanosecond and the zone as UTC,
// Local, or a fixed zone with the same name and offset. A named
// location such as Asia/Shanghai comes back as a fixed zone (same
// abbreviation, same offset): the instant and what it prints are
// unchanged. The monotonic clock reading is not kept; it means nothing
// after a restart.
func appendTime(b []byte, t time.Time) []byte {
	b = binary.AppendVarint(b, t.Unix())
	b = binary.AppendUvarint(b, uint64(t.Nanosecond()))
	switch loc := t.Location(); loc {
	case time.UTC:
		return append(b, locUTC)
	case time.Local:
		return append(b, locLocal)
	default:
		name, offset := t.Zone()
		b = append(b, locFixed)
		b = appendString(b, name)
		return binary.AppendVarint(b, int64(offset))
	}
}

// decodeRecord decodes one payload. It never panics and never allocates
// more than a small multiple of len(p), whatever p holds.
func decodeRecord(p []byte) (record, error) {
	if len(p) == 0 {
		return record{}, fmt.Errorf("%w: empty payload", errDecode)
	}
	d := decoder{b: p[1:]}
	r := record{typ: p[0]}
	switch r.typ {
	case recAccept:
		r.msg = d.message()
	case recPlaced:
		ticket := d.uvarint()
		r.msg = d.message()
		r.msg.Ticket = ticket
		if ticket == 0 && d.err == nil {
			d.err = errors.New("placed message with ticket 0")
		}
		r.typ = recAccept
	case recAssign:
		n := d.count(2) // an id length and a seq: at least two bytes each
		r.seqs = make([]idSeq, 0, n)
		for range n {
			id := d.str()
			r.seqs = append(r.seqs, idSeq{id: id, seq: d.uvarint()})
		}
	case recDone:
		n := d.count(1)
		r.ids = make([]string, 0, n)
		for range n {
			r.ids = append(r.ids, d.str())
		}
	default:
		return record{}, fmt.Errorf("%w: unknown record type %d", errDecode, r.typ)
	}
	if d.err != nil {
		return record{}, fmt.Errorf("%w: type %d: %v", errDecode, r.typ, d.err)
	}
	if len(d.b) != 0 {
		return record{}, fmt.Errorf("%w: type %d: %d trailing bytes", errDecode, r.typ, len(d.b))
	}
	return r, nil
}

// decoder reads from b; the first error sticks and turns every later
// read into a zero value, so callers check err once at the end.
type decoder struct {
	b   []byte
	err error
}

func (d *decoder) fail(format string, args ...any) {
	if d.err == nil {
		d.err = fmt.Errorf(format, args...)
	}
	d.b = nil
}

func (d *decoder) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail("bad uvarint")
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) varint() int64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.fail("bad varint")
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) readByte() byte {
	if d.err != nil {
		return 0
	}
	if len(d.b) == 0 {
		d.fail("short payload")
		return 0
	}
	c := d.b[0]
	d.b = d.b[1:]
	return c
}

// bytes returns the next n bytes, without copying.
func (d *decoder) take(n uint64) []byte {
	if d.err != nil {
		return nil
	}
	if n > uint64(len(d.b)) {
		d.fail("length %d exceeds the %d bytes left", n, len(d.b))
		return nil
	}
	v := d.b[:n:n]
	d.b = d.b[n:]
	return v
}

func (d *decoder) str() string { return string(d.take(d.uvarint())) }

// count reads an element count and checks it against what is left, given
// that each element takes at least minSize bytes, so a corrupt count
// cannot make the caller allocate much.
func (d *decoder) count(minSize int) int {
	n := d.uvarint()
	if d.err != nil {
		return 0
	}
	if n > uint64(len(d.b)/minSize) {
		d.fail("count %d exceeds what %d bytes can hold", n, len(d.b))
		return 0
	}
	return int(n)
}

func (d *decoder) time() time.Time {
	sec := d.varint()
	nsec := d.uvarint()
	kind := d.readByte()
	if d.err != nil {
		return time.Time{}
	}
	if nsec >= 1e9 {
		d.fail("nanoseconds %d out of range", nsec)
		return time.Time{}
	}
	t := time.Unix(sec, int64(nsec))
	switch kind {
	case locUTC:
		return t.UTC()
	case locLocal:
		return t
	case locFixed:
		name := d.str()
		offset := d.varint()
		// Real offsets are within ±26 hours; anything beyond is corruption.
		if d.err == nil && (offset < -26*3600 || offset > 26*3600) {
			d.fail("zone offset %d out of range", offset)
		}
		if d.err != nil {
			return time.Time{}
		}
		return t.In(time.FixedZone(name, int(offset)))
	default:
		d.fail("unknown location kind %d", kind)
		return time.Time{}
	}
}

func (d *decoder) message() relay.Message {
	var m relay.Message
	m.ID = d.str()
	m.Account = d.str()
	m.Client = d.str()
	m.Conv = relay.ConversationID(d.str())
	m.Seq = d.uvarint()
	m.Direction = relay.Direction(d.str())
	m.Kind = relay.Kind(d.str())
	m.WxMsgID = d.str()
	m.Event = d.str()
	m.EventKey = d.str()
	m.Text = d.str()
	m.MediaID = d.str()
	if n := d.uvarint(); n > 0 && d.err == nil {
		n--
		if n > uint64(len(d.b)/2) { // a key and a value: two bytes at least
			d.fail("attribute count %d exceeds what %d bytes can hold", n, len(d.b))
		} else {
			m.Attrs = make(map[string]string, n)
			for range n {
				k := d.str()
				m.Attrs[k] = d.str()
			}
		}
	}
	if n := d.uvarint(); n > 0 && d.err == nil {
		m.Raw = append([]byte{}, d.take(n-1)...)
	}
	m.CreatedAt = d.time()
	m.AcceptedAt = d.time()
	m.Employee = d.str()
	if len(d.b) > 0 && d.err == nil {
		m.Hash = d.str()
		m.BatchID = d.str()
	}
	return m
}
