package spool

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/wechat-relay/wechat-relay/relay"
)

func roundTrip(t *testing.T, m relay.Message) relay.Message {
	t.Helper()
	rec, err := decodeRecord(encodeAccept(&m))
	if err != nil {
		t.Fatalf("decoding accept record: %v", err)
	}
	if rec.typ != recAccept {
		t.Fatalf("record type %d, want %d", rec.typ, recAccept)
	}
	return rec.msg
}

// TestMessageCodecCoversAllFields fills every field of relay.Message with
// a non-zero value and checks that it survives the codec. It fails when
// relay.Message grows a field the codec does not carry.
func TestMessageCodecCoversAllFields(t *testing.T) {
	var m relay.Message
	v := reflect.ValueOf(&m).Elem()
	for i := range v.NumField() {
		f, sf := v.Field(i), v.Type().Field(i)
		switch {
		case f.Kind() == reflect.String:
			f.SetString(sf.Name + "-\xff\x00é") // invalid UTF-8 and NUL too
		case f.Kind() == reflect.Uint64:
			f.SetUint(uint64(1)<<63 + uint64(i))
		case f.Type() == reflect.TypeFor[map[string]string]():
			f.Set(reflect.ValueOf(map[string]string{"pic_url": "http://x/\xfe", "": "empty key", "k": ""}))
		case f.Type() == reflect.TypeFor[[]byte]():
			f.SetBytes([]byte("<xml>\x00\xff</xml>"))
		case f.Type() == reflect.TypeFor[time.Time]():
			f.Set(reflect.ValueOf(time.Date(2025, 3, 4, 5, 6, 7, 123456789+i, time.FixedZone("CST", 8*3600))))
		default:
			t.Fatalf("relay.Message.%s has type %s, unknown to this test: extend encodeAccept, decoder.message and this test", sf.Name, sf.Type)
		}
	}
	got := roundTrip(t, m)
	if !reflect.DeepEqual(got, m) {
		t.Fatalf("round trip changed the message:\n got %#v\nwant %#v", got, m)
	}
}

func TestMessageCodecRoundTrip(t *testing.T) {
	t.Parallel()
	base := time.Date(2024, 12, 31, 23, 59, 59, 999999999, time.UTC)
	tests := []struct {
		name string
		m    relay.Message
	}{
		{"zero", relay.Message{}},
		{"nil attrs and raw", relay.Message{ID: "a"}},
		{"empty attrs and raw", relay.Message{ID: "a", Attrs: map[string]string{}, Raw: []byte{}}},
		{"utc nanoseconds", relay.Message{ID: "a", CreatedAt: base, AcceptedAt: base.Add(-1)}},
		{"local", relay.Message{ID: "a", CreatedAt: time.Unix(1700000000, 42).Local(), AcceptedAt: time.Now().Round(0)}},
		{"fixed zone", relay.Message{ID: "a", CreatedAt: base.In(time.FixedZone("", -(3*3600 + 30*60)))}},
		{"odd offset", relay.Message{ID: "a", CreatedAt: base.In(time.FixedZone("LMT", 29143))}},
		{"before 1970", relay.Message{ID: "a", CreatedAt: time.Date(1900, 1, 1, 0, 0, 0, 1, time.UTC)}},
		{"big raw", relay.Message{ID: "a", Raw: []byte(strings.Repeat("x", 100000)), Text: strings.Repeat("文", 5000)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := roundTrip(t, tt.m); !reflect.DeepEqual(got, tt.m) {
				t.Fatalf("round trip:\n got %#v\nwant %#v", got, tt.m)
			}
		})
	}
}

// A named location comes back as a fixed zone: same instant, same
// offset, same abbreviation.
func TestTimeNamedLocation(t *testing.T) {
	t.Parallel()
	loc, err := time.LoadLocation("Asia/Shanghai")
	if err != nil {
		t.Skipf("no time zone database: %v", err)
	}
	want := time.Date(2025, 6, 1, 12, 0, 0, 5, loc)
	got := roundTrip(t, relay.Message{CreatedAt: want}).CreatedAt
	if !got.Equal(want) || got.String() != want.String() {
		t.Fatalf("got %v, want %v", got, want)
	}
}

func TestAssignDoneCodec(t *testing.T) {
	t.Parallel()
	seqs := []idSeq{{"a", 1}, {"", 0}, {"ü\xff", 1<<64 - 1}}
	rec, err := decodeRecord(encodeAssign(seqs))
	if err != nil || rec.typ != recAssign || !reflect.DeepEqual(rec.seqs, seqs) {
		t.Fatalf("assign: %+v, %v", rec, err)
	}
	ids := []string{"x", "", "y"}
	rec, err = decodeRecord(encodeDone(ids))
	if err != nil || rec.typ != recDone || !reflect.DeepEqual(rec.ids, ids) {
		t.Fatalf("done: %+v, %v", rec, err)
	}
}

func TestDecodeRecordRejects(t *testing.T) {
	t.Parallel()
	accept := encodeAccept(&relay.Message{ID: "id", Attrs: map[string]string{"a": "b"}, Raw: []byte("raw")})
	tests := []struct {
		name string
		p    []byte
	}{
		{"empty", nil},
		{"unknown type", []byte{9}},
		{"accept cut short", accept[:len(accept)-1]},
		{"accept trailing", append(append([]byte{}, accept...), 0)},
		{"done count too large", []byte{recDone, 0xff, 0xff, 0xff, 0xff, 0x0f}},
		{"assign count too large", []byte{recAssign, 100, 0, 0}},
		{"string past end", []byte{recDone, 1, 5, 'a'}},
		{"bad varint", []byte{recDone, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if _, err := decodeRecord(tt.p); !errors.Is(err, errDecode) {
				t.Fatalf("decodeRecord(%x) = %v, want errDecode", tt.p, err)
			}
		})
	}
}
