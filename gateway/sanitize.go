package gateway

import (
	"bytes"
	"strconv"
	"unicode/utf8"
)

// WeChat passes user text through unchanged, including control
// characters such as U+0002 that XML 1.0 forbids; Go's encoding/xml
// rejects the whole document when it meets one. The relay must archive
// such messages anyway, so the parser reads a sanitised copy while
// relay.Message.Raw keeps the exact bytes.

const (
	cdataOpen   = "<![CDATA["
	cdataClose  = "]]>"
	replacement = "\uFFFD"
	// replacementRef stands in for a character reference to a forbidden
	// code point (&#2;) outside CDATA, where the decoder would expand it.
	replacementRef = "&#xFFFD;"
)

// isXMLChar reports whether r is allowed in an XML 1.0 document:
// #x9 | #xA | #xD | [#x20-#xD7FF] | [#xE000-#xFFFD] | [#x10000-#x10FFFF].
func isXMLChar(r rune) bool {
	switch {
	case r == 0x09 || r == 0x0A || r == 0x0D:
		return true
	case r >= 0x20 && r <= 0xD7FF:
		return true
	case r >= 0xE000 && r <= 0xFFFD:
		return true
	case r >= 0x10000 && r <= utf8.MaxRune:
		return true
	}
	return false
}

// sanitizeXML returns doc with every invalid UTF-8 sequence and every
// character XML 1.0 forbids replaced by U+FFFD, and every character
// reference to a forbidden code point in character data replaced by a
// reference to U+FFFD. When nothing needs replacing it returns doc
// itself; otherwise a new slice, so doc (the archived Raw) is never
// modified.
func sanitizeXML(doc []byte) []byte {
	if _, changed := scanXML(doc, false); !changed {
		return doc
	}
	out, _ := scanXML(doc, true)
	return out
}

// section is a part of a document where character references are not
// expanded, so a forbidden one there is harmless text.
type section struct{ open, close string }

var sections = []section{
	{cdataOpen, cdataClose},
	{"<!--", "-->"},
	{"<?", "?>"},
}

// scanXML walks doc and reports whether anything must be replaced. With
// build it also returns the sanitised document; without, it stops at the
// first replacement (the fast path: almost every callback is clean, and
// then no copy is made).
func scanXML(doc []byte, build bool) (out []byte, changed bool) {
	if build {
		out = make([]byte, 0, len(doc)+16)
	}
	closing := "" // terminator of the section being read; "" in character data
scan:
	for i := 0; i < len(doc); {
		switch {
		case closing == "" && doc[i] == '<':
			for _, s := range sections {
				if bytes.HasPrefix(doc[i:], []byte(s.open)) {
					out = appendIf(build, out, s.open)
					i += len(s.open)
					closing = s.close
					continue scan
				}
			}
		case closing == "" && doc[i] == '&':
			if n, forbidden := forbiddenCharRef(doc[i:]); forbidden {
				if !build {
					return nil, true
				}
				out, changed = append(out, replacementRef...), true
				i += n
				continue scan
			}
		case closing != "" && bytes.HasPrefix(doc[i:], []byte(closing)):
			out = appendIf(build, out, closing)
			i += len(closing)
			closing = ""
			continue scan
		}
		r, size := rune(doc[i]), 1
		if r >= utf8.RuneSelf {
			r, size = utf8.DecodeRune(doc[i:])
		}
		if (r == utf8.RuneError && size == 1) || !isXMLChar(r) {
			if !build {
				return nil, true
			}
			out, changed = append(out, replacement...), true
		} else if build {
			out = append(out, doc[i:i+size]...)
		}
		i += size
	}
	return out, changed
}

func appendIf(build bool, out []byte, s string) []byte {
	if build {
		return append(out, s...)
	}
	return out
}

// forbiddenCharRef reports whether b starts with a well-formed numeric
// character reference (&#NN; or &#xHH;) to a code point XML forbids, and
// its length. Malformed references are left for the parser to refuse.
func forbiddenCharRef(b []byte) (n int, forbidden bool) {
	if len(b) < 4 || b[0] != '&' || b[1] != '#' {
		return 0, false
	}
	end := bytes.IndexByte(b[:min(len(b), 16)], ';')
	if end < 3 {
		return 0, false
	}
	digits, base := string(b[2:end]), 10
	if digits[0] == 'x' {
		digits, base = digits[1:], 16
	}
	if digits == "" {
		return 0, false
	}
	v, err := strconv.ParseUint(digits, base, 32)
	if err != nil {
		// Too large to be a code point at all: equally forbidden.
		if ne, ok := err.(*strconv.NumError); ok && ne.Err == strconv.ErrRange {
			return end + 1, true
		}
		return 0, false
	}
	if v > utf8.MaxRune || !isXMLChar(rune(v)) {
		return end + 1, true
	}
	return 0, false
}
