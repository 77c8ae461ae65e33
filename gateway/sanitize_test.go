package gateway

import (
	"bytes"
	"encoding/xml"
	"testing"
	"unicode/utf8"
)

func TestSanitizeXML(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, in, want string
	}{
		{"clean", "<xml><a><![CDATA[hi]]></a></xml>", "<xml><a><![CDATA[hi]]></a></xml>"},
		{"control in CDATA", "<a><![CDATA[x\x02y]]></a>", "<a><![CDATA[x\uFFFDy]]></a>"},
		{"control in text", "<a>x\x00y</a>", "<a>x\uFFFDy</a>"},
		{"tab lf cr kept", "<a>\t\n\r</a>", "<a>\t\n\r</a>"},
		{"invalid utf-8", "<a>\xc3\x28</a>", "<a>\uFFFD(</a>"},
		{"truncated utf-8 at end", "<a>\xe4\xbd", "<a>\uFFFD\uFFFD"},
		{"noncharacters", "<a>\uFFFE\uFFFF</a>", "<a>\uFFFD\uFFFD</a>"},
		{"supplementary kept", "<a>\U0001F600</a>", "<a>\U0001F600</a>"},
		{"forbidden decimal ref", "<a>&#2;</a>", "<a>&#xFFFD;</a>"},
		{"forbidden hex ref", "<a>&#x1b;</a>", "<a>&#xFFFD;</a>"},
		{"out of range ref", "<a>&#x110000;</a>", "<a>&#xFFFD;</a>"},
		{"huge ref", "<a>&#99999999999;</a>", "<a>&#xFFFD;</a>"},
		{"allowed refs kept", "<a>&#65;&#x4E2D;&amp;</a>", "<a>&#65;&#x4E2D;&amp;</a>"},
		{"ref inside CDATA is text", "<a><![CDATA[&#2;]]></a>", "<a><![CDATA[&#2;]]></a>"},
		{"ref inside comment is text", "<a><!-- &#2; <![CDATA[ -->&#2;</a>", "<a><!-- &#2; <![CDATA[ -->&#xFFFD;</a>"},
		{"ref after CDATA", "<a><![CDATA[x]]>&#2;\x01</a>", "<a><![CDATA[x]]>&#xFFFD;\uFFFD</a>"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			in := []byte(tt.in)
			orig := bytes.Clone(in)
			got := sanitizeXML(in)
			if string(got) != tt.want {
				t.Errorf("sanitizeXML(%q) = %q, want %q", tt.in, got, tt.want)
			}
			if !bytes.Equal(in, orig) {
				t.Errorf("input modified")
			}
			if tt.in == tt.want && &got[0] != &in[0] {
				t.Errorf("clean input was copied")
			}
		})
	}
}

// FuzzSanitizeXML: the output is valid UTF-8 of allowed characters only,
// sanitising is idempotent, and clean input comes back unchanged.
func FuzzSanitizeXML(f *testing.F) {
	for _, s := range []string{"<xml/>", "<a><![CDATA[\x02]]></a>", "&#2;", "&#x;", "\xff", "<![CDATA[", "]]>&#0;"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		out := sanitizeXML(in)
		if !utf8.Valid(out) {
			t.Fatalf("output not valid UTF-8: %q", out)
		}
		for _, r := range string(out) {
			if !isXMLChar(r) {
				t.Fatalf("forbidden %U in output %q", r, out)
			}
		}
		if again := sanitizeXML(out); !bytes.Equal(again, out) {
			t.Fatalf("not idempotent: %q -> %q", out, again)
		}
		if _, changed := scanXML(in, false); !changed && !bytes.Equal(out, in) {
			t.Fatalf("clean input changed")
		}
		// Whatever the decoder makes of it, it must not meet a forbidden
		// character: any error is about structure.
		d := xml.NewDecoder(bytes.NewReader(out))
		for {
			if _, err := d.Token(); err != nil {
				if se, ok := err.(*xml.SyntaxError); ok && (bytes.Contains([]byte(se.Msg), []byte("illegal character")) || se.Msg == "invalid UTF-8") {
					t.Fatalf("decoder still meets a forbidden character: %v in %q", err, out)
				}
				break
			}
		}
	})
}
