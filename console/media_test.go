package console

import (
	"bytes"
	"fmt"
	"image/png"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/wechat-relay/wechat-relay/relay"
)

func TestMediaDownload(t *testing.T) {
	e := newConsoleEnv(t, Config{})
	img := at("acct:c-alice", 1, "alice", relay.Inbound, time.Now())
	img.ID, img.Kind, img.MediaID, img.Text = "in:acct:1001", relay.KindImage, "MEDIA_1", ""
	file := at("acct:c-alice", 2, "alice", relay.Inbound, time.Now())
	file.ID, file.Kind, file.MediaID, file.Text = "in:acct:1002", relay.KindFile, "MEDIA_2", ""
	e.history.add(img)
	e.history.add(file)
	const path = "/api/media/in:acct:1001"

	resp, body := e.raw(t, "GET", path, aliceTok, nil)
	if resp.StatusCode != http.StatusNotFound || !strings.Contains(string(body), "not fetched") {
		t.Fatalf("before the media is fetched: %d %s", resp.StatusCode, body)
	}
	picture := bytes.Repeat([]byte("\x89PNG\r\n\x1a\n picture "), 100)
	e.media.put(relay.Media{MessageID: img.ID, MediaID: "MEDIA_1", ContentType: "image/png", Data: picture})
	resp, body = e.raw(t, "GET", path, aliceTok, nil)
	if resp.StatusCode != http.StatusOK || !bytes.Equal(body, picture) || resp.Header.Get("Content-Type") != "image/png" ||
		!strings.HasPrefix(resp.Header.Get("Content-Disposition"), "inline") || !strings.Contains(resp.Header.Get("Content-Security-Policy"), "sandbox") {
		t.Fatalf("the assignee: %d %q %q, %d bytes", resp.StatusCode, resp.Header.Get("Content-Type"), resp.Header.Get("Content-Disposition"), len(body))
	}
	// Byte ranges, for players.
	resp, body = e.raw(t, "GET", path, aliceTok, map[string]string{"Range": "bytes=0-9"})
	if resp.StatusCode != http.StatusPartialContent || !bytes.Equal(body, picture[:10]) {
		t.Fatalf("range: %d %q", resp.StatusCode, body)
	}
	// Same read rule as the conversation.
	if resp, body := e.raw(t, "GET", path, bobTok, nil); resp.StatusCode != http.StatusForbidden {
		t.Fatalf("another agent: %d %s", resp.StatusCode, body)
	}
	if resp, _ := e.raw(t, "GET", path, "", nil); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("signed out: %d", resp.StatusCode)
	}
	before := len(e.audit.all())
	if resp, body := e.raw(t, "GET", path, supTok, nil); resp.StatusCode != http.StatusOK || !bytes.Equal(body, picture) {
		t.Fatalf("supervisor: %d", resp.StatusCode)
	}
	recs := e.audit.all()
	if len(recs) != before+1 || recs[len(recs)-1].Action != AuditDownloadMedia || recs[len(recs)-1].Target != img.ID {
		t.Fatalf("supervisor's download audited as %+v", recs)
	}

	// A file, even one claiming to be a web page, is an attachment that
	// no browser renders.
	e.media.put(relay.Media{MessageID: file.ID, MediaID: "MEDIA_2", ContentType: "text/html", FileName: "报告 \"终稿\".html", Data: []byte("<script>alert(1)</script>")})
	resp, _ = e.raw(t, "GET", "/api/media/in:acct:1002", aliceTok, nil)
	cd := resp.Header.Get("Content-Disposition")
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "application/octet-stream" || !strings.HasPrefix(cd, "attachment") || !strings.Contains(cd, "filename") {
		t.Fatalf("file: %d %q %q", resp.StatusCode, resp.Header.Get("Content-Type"), cd)
	}
	if resp, _ := e.raw(t, "GET", "/api/media/in:acct:nope", aliceTok, nil); resp.StatusCode != http.StatusNotFound {
		t.Fatalf("unknown message: %d", resp.StatusCode)
	}
}

func TestQRCodeEndpoint(t *testing.T) {
	e := newConsoleEnv(t, Config{})
	resp, body := e.raw(t, "GET", "/api/me/qrcode", aliceTok, nil)
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "image/png" || !strings.HasPrefix(resp.Header.Get("Content-Disposition"), "inline") {
		t.Fatalf("alice's QR code: %d %q %q", resp.StatusCode, resp.Header.Get("Content-Type"), resp.Header.Get("Content-Disposition"))
	}
	if _, err := png.Decode(bytes.NewReader(body)); err != nil {
		t.Fatalf("not a PNG: %v", err)
	}
	resp, _ = e.raw(t, "GET", "/api/me/qrcode?account=acct&download=1", aliceTok, nil)
	if cd := resp.Header.Get("Content-Disposition"); !strings.HasPrefix(cd, "attachment") || !strings.Contains(cd, "qrcode-acct-alice.png") {
		t.Fatalf("download: %q", cd)
	}
	for name, tc := range map[string]struct {
		path, tok string
		want      int
	}{
		"bob, two accounts, none named": {"/api/me/qrcode", bobTok, http.StatusBadRequest},
		"bob, acct2":                    {"/api/me/qrcode?account=acct2", bobTok, http.StatusOK},
		"alice, not her account":        {"/api/me/qrcode?account=acct2", aliceTok, http.StatusForbidden},
		"a supervisor":                  {"/api/me/qrcode", supTok, http.StatusForbidden},
		"signed out":                    {"/api/me/qrcode", "", http.StatusUnauthorized},
	} {
		if resp, body := e.raw(t, "GET", tc.path, tc.tok, nil); resp.StatusCode != tc.want {
			t.Errorf("%s: %d %s, want %d", name, resp.StatusCode, body, tc.want)
		}
	}
	e.qr.mu.Lock()
	defer e.qr.mu.Unlock()
	if got := strings.Join(e.qr.calls, ","); got != "acct emp:alice,acct emp:alice,acct2 emp:bob" {
		t.Fatalf("QR codes asked for: %s", got)
	}
}

// Every media answer — inline or attachment, whole or a range — tells
// the browser not to sniff it, not to frame it and not to keep it; and
// media a browser could run as a page of ours (SVG, HTML), whatever kind
// of message brought them and however their type is spelled or left
// out, go out as an inert attachment.
func TestMediaAnswersAreInert(t *testing.T) {
	e := newConsoleEnv(t, Config{})
	const svg = `<svg xmlns="http://www.w3.org/2000/svg"><script>alert(document.cookie)</script></svg>`
	const html = `<!DOCTYPE html><html><body><script>alert(1)</script></body></html>`
	for i, tc := range []struct {
		name   string
		kind   relay.Kind
		ct     string
		data   string
		inline bool // a picture, sound or film: shown in the console
	}{
		{"png image", relay.KindImage, "image/png", "\x89PNG\r\n\x1a\n picture", true},
		{"voice", relay.KindVoice, "audio/amr", "#!AMR\n sound", true},
		{"svg image", relay.KindImage, "image/svg+xml", svg, false},
		{"svg image, parameters and capitals", relay.KindImage, "Image/SVG+XML; charset=utf-8", svg, false},
		{"svg image, no type given", relay.KindImage, "", svg, false},
		{"svg image, a type that is not one", relay.KindImage, "image/", svg, false},
		{"html as an image", relay.KindImage, "text/html", html, false},
		{"html as a video, no type given", relay.KindVideo, "", html, false},
		{"svg file", relay.KindFile, "image/svg+xml", svg, false},
		{"html file", relay.KindFile, "text/html; charset=utf-8", html, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := at("acct:c-alice", uint64(i+1), "alice", relay.Inbound, time.Now())
			m.ID, m.Kind, m.MediaID, m.Text = fmt.Sprintf("in:acct:inert%d", i), tc.kind, fmt.Sprint("MEDIA_INERT_", i), ""
			e.history.add(m)
			e.media.put(relay.Media{MessageID: m.ID, MediaID: m.MediaID, ContentType: tc.ct, Data: []byte(tc.data)})
			for _, rng := range []string{"", "bytes=0-9"} {
				hdr := map[string]string{}
				if rng != "" {
					hdr["Range"] = rng
				}
				resp, _ := e.raw(t, "GET", "/api/media/"+m.ID, aliceTok, hdr)
				if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusPartialContent {
					t.Fatalf("range %q: %d", rng, resp.StatusCode)
				}
				h := resp.Header
				for name, want := range map[string]string{
					"X-Content-Type-Options": "nosniff", "X-Frame-Options": "DENY", "Cache-Control": "no-store",
				} {
					if got := h.Get(name); got != want {
						t.Errorf("range %q: %s = %q, want %q", rng, name, got, want)
					}
				}
				if csp := h.Get("Content-Security-Policy"); !strings.Contains(csp, "sandbox") || !strings.Contains(csp, "default-src 'none'") {
					t.Errorf("range %q: Content-Security-Policy %q, want a sandbox that loads nothing", rng, csp)
				}
				ct, cd := strings.ToLower(h.Get("Content-Type")), h.Get("Content-Disposition")
				if tc.inline {
					if !strings.HasPrefix(cd, "inline") || ct != tc.ct {
						t.Errorf("range %q: %q %q, want inline with its type %q", rng, ct, cd, tc.ct)
					}
					continue
				}
				if !strings.HasPrefix(cd, "attachment") {
					t.Errorf("range %q: Content-Disposition %q, want an attachment", rng, cd)
				}
				if strings.Contains(ct, "svg") || strings.Contains(ct, "html") || strings.Contains(ct, "xml") {
					t.Errorf("range %q: Content-Type %q, a type a browser runs", rng, ct)
				}
			}
		})
	}
}
