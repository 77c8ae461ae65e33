package gateway

import (
	"bytes"
	"errors"
	"fmt"
	"maps"
	"strings"
	"testing"
	"time"

	"github.com/wechat-relay/wechat-relay/relay"
)

const (
	fxOpenID = "oABCD1234efgh5678ijkl9012mnop"
	fxCreate = 1700000000
)

// fx builds a callback plaintext as WeChat sends it: the common header,
// then the type-specific elements.
func fx(msgType, rest string) []byte {
	return []byte(fmt.Sprintf(`<xml>
<ToUserName><![CDATA[gh_0123456789ab]]></ToUserName>
<FromUserName><![CDATA[%s]]></FromUserName>
<CreateTime>%d</CreateTime>
<MsgType><![CDATA[%s]]></MsgType>
%s
</xml>`, fxOpenID, fxCreate, msgType, rest))
}

func evID(event, key string) string {
	return relay.InboundID("acct", fxOpenID, "", fxCreate, event, key)
}

func msgID(id string) string {
	return relay.InboundID("acct", fxOpenID, id, fxCreate, "", "")
}

func TestParseMessage(t *testing.T) {
	t.Parallel()
	type want struct {
		id       string
		kind     relay.Kind
		wxMsgID  string
		event    string
		eventKey string
		text     string
		mediaID  string
		attrs    map[string]string
	}
	tests := []struct {
		name string
		xml  []byte
		want want
	}{
		{"text", fx("text", `<Content><![CDATA[你好，我想咨询一下基金赎回的流程]]></Content>
<MsgId>23845739281937465</MsgId>`), want{
			id: msgID("23845739281937465"), kind: relay.KindText, wxMsgID: "23845739281937465",
			text: "你好，我想咨询一下基金赎回的流程",
		}},
		{"text with max int64 MsgId", fx("text", `<Content><![CDATA[hi]]></Content>
<MsgId>9223372036854775807</MsgId>`), want{
			id: msgID("9223372036854775807"), kind: relay.KindText, wxMsgID: "9223372036854775807", text: "hi",
		}},
		{"text with MsgId beyond int64", fx("text", `<Content><![CDATA[hi]]></Content>
<MsgId>18446744073709551615</MsgId>`), want{
			id: msgID("18446744073709551615"), kind: relay.KindText, wxMsgID: "18446744073709551615", text: "hi",
		}},
		{"text keeps spaces and newlines", fx("text", "<Content><![CDATA[  line one\nline two  ]]></Content>\n<MsgId>1</MsgId>"), want{
			id: msgID("1"), kind: relay.KindText, wxMsgID: "1", text: "  line one\nline two  ",
		}},
		{"text with entities outside CDATA", fx("text", `<Content>a &lt;b&gt; &amp; c</Content><MsgId>2</MsgId>`), want{
			id: msgID("2"), kind: relay.KindText, wxMsgID: "2", text: "a <b> & c",
		}},
		{"image", fx("image", `<PicUrl><![CDATA[http://mmbiz.qpic.cn/mmbiz_jpg/abc/0]]></PicUrl>
<MsgId>23845739281937466</MsgId>
<MediaId><![CDATA[MEDIA_IMG_1]]></MediaId>`), want{
			id: msgID("23845739281937466"), kind: relay.KindImage, wxMsgID: "23845739281937466", mediaID: "MEDIA_IMG_1",
			attrs: map[string]string{"pic_url": "http://mmbiz.qpic.cn/mmbiz_jpg/abc/0"},
		}},
		{"voice with recognition", fx("voice", `<MediaId><![CDATA[MEDIA_VOICE]]></MediaId>
<Format><![CDATA[amr]]></Format>
<Recognition><![CDATA[腾讯微信团队]]></Recognition>
<MsgId>1234567890123456</MsgId>`), want{
			id: msgID("1234567890123456"), kind: relay.KindVoice, wxMsgID: "1234567890123456", mediaID: "MEDIA_VOICE",
			attrs: map[string]string{"format": "amr", "recognition": "腾讯微信团队"},
		}},
		{"video", fx("video", `<MediaId><![CDATA[MEDIA_VIDEO]]></MediaId>
<ThumbMediaId><![CDATA[THUMB_1]]></ThumbMediaId>
<MsgId>1234567890123457</MsgId>`), want{
			id: msgID("1234567890123457"), kind: relay.KindVideo, wxMsgID: "1234567890123457", mediaID: "MEDIA_VIDEO",
			attrs: map[string]string{"thumb_media_id": "THUMB_1"},
		}},
		{"shortvideo", fx("shortvideo", `<MediaId><![CDATA[MEDIA_SV]]></MediaId>
<ThumbMediaId><![CDATA[THUMB_2]]></ThumbMediaId>
<MsgId>1234567890123458</MsgId>`), want{
			id: msgID("1234567890123458"), kind: relay.KindShortVideo, wxMsgID: "1234567890123458", mediaID: "MEDIA_SV",
			attrs: map[string]string{"thumb_media_id": "THUMB_2"},
		}},
		{"location keeps the exact coordinates", fx("location", `<Location_X>23.134521</Location_X>
<Location_Y>113.358803</Location_Y>
<Scale>20</Scale>
<Label><![CDATA[广州市天河区珠江新城]]></Label>
<MsgId>1234567890123459</MsgId>`), want{
			id: msgID("1234567890123459"), kind: relay.KindLocation, wxMsgID: "1234567890123459",
			attrs: map[string]string{"location_x": "23.134521", "location_y": "113.358803", "scale": "20", "label": "广州市天河区珠江新城"},
		}},
		{"link", fx("link", `<Title><![CDATA[公众平台官网链接]]></Title>
<Description><![CDATA[公众平台官网链接描述]]></Description>
<Url><![CDATA[https://mp.weixin.qq.com/s?__biz=x&mid=1]]></Url>
<MsgId>1234567890123460</MsgId>`), want{
			id: msgID("1234567890123460"), kind: relay.KindLink, wxMsgID: "1234567890123460",
			attrs: map[string]string{"title": "公众平台官网链接", "description": "公众平台官网链接描述", "url": "https://mp.weixin.qq.com/s?__biz=x&mid=1"},
		}},
		{"file", fx("file", `<Title><![CDATA[季度报告.pdf]]></Title>
<Description><![CDATA[1.2 MB]]></Description>
<FileKey><![CDATA[filekey_abc]]></FileKey>
<FileMd5><![CDATA[5f4dcc3b5aa765d61d8327deb882cf99]]></FileMd5>
<FileTotalLen><![CDATA[1258291]]></FileTotalLen>
<MediaId><![CDATA[MEDIA_FILE]]></MediaId>
<MsgId>1234567890123461</MsgId>`), want{
			id: msgID("1234567890123461"), kind: relay.KindFile, wxMsgID: "1234567890123461", mediaID: "MEDIA_FILE",
			attrs: map[string]string{"title": "季度报告.pdf", "description": "1.2 MB", "file_name": "季度报告.pdf",
				"file_key": "filekey_abc", "file_md5": "5f4dcc3b5aa765d61d8327deb882cf99", "file_total_len": "1258291"},
		}},
		{"subscribe", fx("event", `<Event><![CDATA[subscribe]]></Event>`), want{
			id: evID("subscribe", ""), kind: relay.KindEvent, event: "subscribe",
		}},
		{"subscribe from a parametric QR code", fx("event", `<Event><![CDATA[subscribe]]></Event>
<EventKey><![CDATA[qrscene_emp-007]]></EventKey>
<Ticket><![CDATA[gQHi8DoAAAAAAAAAASxodHRwOi8vd2VpeGluLnFxLmNvbS9xL2FCM2MAAAA=]]></Ticket>`), want{
			id: evID("subscribe", "qrscene_emp-007"), kind: relay.KindEvent, event: "subscribe", eventKey: "qrscene_emp-007",
			attrs: map[string]string{"ticket": "gQHi8DoAAAAAAAAAASxodHRwOi8vd2VpeGluLnFxLmNvbS9xL2FCM2MAAAA="},
		}},
		{"unsubscribe", fx("event", `<Event><![CDATA[unsubscribe]]></Event>
<EventKey><![CDATA[]]></EventKey>`), want{
			id: evID("unsubscribe", ""), kind: relay.KindEvent, event: "unsubscribe",
		}},
		{"SCAN", fx("event", `<Event><![CDATA[SCAN]]></Event>
<EventKey><![CDATA[emp-007]]></EventKey>
<Ticket><![CDATA[TICKET_2]]></Ticket>`), want{
			id: evID("SCAN", "emp-007"), kind: relay.KindEvent, event: "SCAN", eventKey: "emp-007",
			attrs: map[string]string{"ticket": "TICKET_2"},
		}},
		{"LOCATION", fx("event", `<Event><![CDATA[LOCATION]]></Event>
<Latitude>23.137466</Latitude>
<Longitude>113.352425</Longitude>
<Precision>119.385040</Precision>`), want{
			id: evID("LOCATION", ""), kind: relay.KindEvent, event: "LOCATION",
			attrs: map[string]string{"latitude": "23.137466", "longitude": "113.352425", "precision": "119.385040"},
		}},
		{"CLICK", fx("event", `<Event><![CDATA[CLICK]]></Event>
<EventKey><![CDATA[MENU_CONTACT_ADVISOR]]></EventKey>`), want{
			id: evID("CLICK", "MENU_CONTACT_ADVISOR"), kind: relay.KindEvent, event: "CLICK", eventKey: "MENU_CONTACT_ADVISOR",
		}},
		{"VIEW", fx("event", `<Event><![CDATA[VIEW]]></Event>
<EventKey><![CDATA[https://www.example.com/funds]]></EventKey>
<MenuId>208379533</MenuId>`), want{
			id: evID("VIEW", "https://www.example.com/funds"), kind: relay.KindEvent, event: "VIEW", eventKey: "https://www.example.com/funds",
			attrs: map[string]string{"menu_id": "208379533"},
		}},
		{"kf_create_session", fx("event", `<Event><![CDATA[kf_create_session]]></Event>
<KfAccount><![CDATA[test1@test]]></KfAccount>`), want{
			id: evID("kf_create_session", ""), kind: relay.KindEvent, event: "kf_create_session",
			attrs: map[string]string{"kf_account": "test1@test"},
		}},
		{"kf_close_session", fx("event", `<Event><![CDATA[kf_close_session]]></Event>
<KfAccount><![CDATA[test1@test]]></KfAccount>
<CloseType><![CDATA[KF]]></CloseType>`), want{
			id: evID("kf_close_session", ""), kind: relay.KindEvent, event: "kf_close_session",
			attrs: map[string]string{"kf_account": "test1@test", "close_type": "KF"},
		}},
		{"kf_switch_session", fx("event", `<Event><![CDATA[kf_switch_session]]></Event>
<FromKfAccount><![CDATA[test1@test]]></FromKfAccount>
<ToKfAccount><![CDATA[test2@test]]></ToKfAccount>`), want{
			id: evID("kf_switch_session", ""), kind: relay.KindEvent, event: "kf_switch_session",
			attrs: map[string]string{"from_kf_account": "test1@test", "to_kf_account": "test2@test"},
		}},
		{"TEMPLATESENDJOBFINISH", fx("event", `<Event><![CDATA[TEMPLATESENDJOBFINISH]]></Event>
<MsgID>200163836</MsgID>
<Status><![CDATA[failed:user block]]></Status>`), want{
			id: evID("TEMPLATESENDJOBFINISH", ""), kind: relay.KindEvent, event: "TEMPLATESENDJOBFINISH",
			attrs: map[string]string{"msg_id": "200163836", "status": "failed:user block"},
		}},
		{"unknown message type is kept", fx("miniprogrampage", `<Title><![CDATA[小程序]]></Title>
<MsgId>77</MsgId>`), want{
			id: msgID("77"), kind: relay.Kind("miniprogrampage"), wxMsgID: "77",
			attrs: map[string]string{"title": "小程序"},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			m, err := parseMessage("acct", tt.xml)
			if err != nil {
				t.Fatalf("parseMessage: %v", err)
			}
			w := tt.want
			if m.ID != w.id {
				t.Errorf("ID = %q, want %q", m.ID, w.id)
			}
			if m.Account != "acct" || m.Client != fxOpenID || m.Conv != relay.Conversation("acct", fxOpenID) || m.Direction != relay.Inbound {
				t.Errorf("account/client/conv/direction = %q %q %q %q", m.Account, m.Client, m.Conv, m.Direction)
			}
			if m.Kind != w.kind || m.WxMsgID != w.wxMsgID || m.Event != w.event || m.EventKey != w.eventKey {
				t.Errorf("kind/wxmsgid/event/key = %q %q %q %q, want %q %q %q %q",
					m.Kind, m.WxMsgID, m.Event, m.EventKey, w.kind, w.wxMsgID, w.event, w.eventKey)
			}
			if m.Text != w.text {
				t.Errorf("Text = %q, want %q", m.Text, w.text)
			}
			if m.MediaID != w.mediaID {
				t.Errorf("MediaID = %q, want %q", m.MediaID, w.mediaID)
			}
			if !maps.Equal(m.Attrs, w.attrs) {
				t.Errorf("Attrs = %v, want %v", m.Attrs, w.attrs)
			}
			if !bytes.Equal(m.Raw, tt.xml) {
				t.Errorf("Raw differs from the input")
			}
			if !m.CreatedAt.Equal(time.Unix(fxCreate, 0)) {
				t.Errorf("CreatedAt = %v", m.CreatedAt)
			}
			if m.Seq != 0 || !m.AcceptedAt.IsZero() || m.Employee != "" {
				t.Errorf("relay-owned fields set: %+v", m)
			}
		})
	}
}

func TestParseMessageEventIDsDiffer(t *testing.T) {
	t.Parallel()
	// Retries of one event map to one ID; distinct events do not collide.
	a1, _ := parseMessage("acct", fx("event", `<Event><![CDATA[CLICK]]></Event><EventKey><![CDATA[A]]></EventKey>`))
	a2, _ := parseMessage("acct", fx("event", `<Event><![CDATA[CLICK]]></Event><EventKey><![CDATA[A]]></EventKey>`))
	b, _ := parseMessage("acct", fx("event", `<Event><![CDATA[CLICK]]></Event><EventKey><![CDATA[B]]></EventKey>`))
	if a1.ID == "" || a1.ID != a2.ID || a1.ID == b.ID {
		t.Fatalf("ids %q %q %q", a1.ID, a2.ID, b.ID)
	}
	// A message without MsgId is keyed by its content.
	n1, err := parseMessage("acct", fx("text", `<Content><![CDATA[one]]></Content>`))
	if err != nil {
		t.Fatal(err)
	}
	n2, _ := parseMessage("acct", fx("text", `<Content><![CDATA[two]]></Content>`))
	n1b, _ := parseMessage("acct", fx("text", `<Content><![CDATA[one]]></Content>`))
	if n1.ID == n2.ID || n1.ID != n1b.ID || n1.WxMsgID != "" {
		t.Fatalf("ids without MsgId: %q %q %q", n1.ID, n2.ID, n1b.ID)
	}
}

func TestParseMessageIllegalCharacters(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		content  string // inside CDATA
		wantText string
	}{
		{"STX", "hello\x02world", "hello\uFFFDworld"},
		{"several controls", "\x00a\x01b\x1bc\x7f", "\uFFFDa\uFFFDb\uFFFDc\x7f"},
		{"invalid UTF-8", "ok\xff\xfe!", "ok\uFFFD\uFFFD!"},
		{"U+FFFE", "x\uFFFEy", "x\uFFFDy"},
		{"tab newline kept", "a\tb\nc", "a\tb\nc"},
		{"emoji kept", "基金 📈", "基金 📈"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			raw := fx("text", "<Content><![CDATA["+tt.content+"]]></Content><MsgId>5</MsgId>")
			orig := bytes.Clone(raw)
			m, err := parseMessage("acct", raw)
			if err != nil {
				t.Fatalf("parseMessage: %v", err)
			}
			if m.Text != tt.wantText {
				t.Errorf("Text = %q, want %q", m.Text, tt.wantText)
			}
			if !bytes.Equal(m.Raw, orig) || !bytes.Equal(raw, orig) {
				t.Errorf("Raw or input modified")
			}
		})
	}
	// A reference to a forbidden character outside CDATA is sanitised too.
	m, err := parseMessage("acct", fx("text", "<Content>a&#2;b&#x1F;c&#65;</Content><MsgId>6</MsgId>"))
	if err != nil {
		t.Fatalf("char refs: %v", err)
	}
	if m.Text != "a\uFFFDb\uFFFDcA" {
		t.Errorf("Text = %q", m.Text)
	}
}

func TestParseMessageMalformed(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		xml  string
	}{
		{"empty", ""},
		{"not xml", "hello"},
		{"truncated", "<xml><ToUserName><![CDATA[gh]]></ToUserName><FromUser"},
		{"wrong root", "<doc><FromUserName>o</FromUserName><CreateTime>1</CreateTime><MsgType>text</MsgType></doc>"},
		{"no FromUserName", "<xml><CreateTime>1</CreateTime><MsgType>text</MsgType><MsgId>1</MsgId></xml>"},
		{"no MsgType", "<xml><FromUserName>o</FromUserName><CreateTime>1</CreateTime><MsgId>1</MsgId></xml>"},
		{"odd MsgType", "<xml><FromUserName>o</FromUserName><CreateTime>1</CreateTime><MsgType>te xt</MsgType></xml>"},
		{"no CreateTime", "<xml><FromUserName>o</FromUserName><MsgType>text</MsgType><MsgId>1</MsgId></xml>"},
		{"bad CreateTime", "<xml><FromUserName>o</FromUserName><CreateTime>soon</CreateTime><MsgType>text</MsgType></xml>"},
		{"float MsgId", "<xml><FromUserName>o</FromUserName><CreateTime>1</CreateTime><MsgType>text</MsgType><MsgId>2.3845739281937465e16</MsgId></xml>"},
		{"negative MsgId", "<xml><FromUserName>o</FromUserName><CreateTime>1</CreateTime><MsgType>text</MsgType><MsgId>-1</MsgId></xml>"},
		{"event without Event", "<xml><FromUserName>o</FromUserName><CreateTime>1</CreateTime><MsgType>event</MsgType></xml>"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := parseMessage("acct", []byte(tt.xml))
			if !errors.Is(err, errMalformed) {
				t.Fatalf("err = %v, want errMalformed", err)
			}
			if tt.xml != "" && len(tt.xml) > 20 && strings.Contains(err.Error(), tt.xml) {
				t.Errorf("error quotes the body: %v", err)
			}
		})
	}
}

// A callback with a DTD gets nothing from it: no external entity is
// read (XXE) and no entity is expanded (billion laughs); the reference
// is an error, and the message is refused as malformed.
func TestParseMessageIgnoresDTDs(t *testing.T) {
	t.Parallel()
	doctype := func(decl, content string) []byte {
		return []byte(`<?xml version="1.0"?>
<!DOCTYPE xml [` + decl + `]>
<xml><ToUserName>gh</ToUserName><FromUserName>` + fxOpenID + `</FromUserName><CreateTime>1</CreateTime>
<MsgType>text</MsgType><Content>` + content + `</Content><MsgId>1</MsgId></xml>`)
	}
	tests := []struct {
		name string
		xml  []byte
	}{
		{"external entity", doctype(`<!ENTITY xxe SYSTEM "file:///etc/passwd">`, "&xxe;")},
		{"external parameter entity", doctype(`<!ENTITY % p SYSTEM "http://127.0.0.1:1/evil.dtd"> %p;`, "&e;")},
		{"billion laughs", doctype(`<!ENTITY a "lol"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;"><!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;">`, "&c;")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := parseMessage("acct", tt.xml)
			if !errors.Is(err, errMalformed) {
				t.Fatalf("parsed %q (err %v): a DTD's entity must not be expanded", m.Text, err)
			}
		})
	}
}
