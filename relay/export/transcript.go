package export

import (
	"html/template"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/wechat-relay/wechat-relay/relay"
)

// transcript.html: one page, our own HTML and CSS, no script, nothing
// fetched from elsewhere. Media are referenced by their relative path in
// the export (media/<sha256><ext>), so the page shows them inline once
// the zip is unpacked, or straight from an export folder.

type transcriptMessage struct {
	relay.Message
	Side       string // "in", "out", "internal"
	Time       string
	MediaFile  string
	MediaType  string // "image", "audio", "video", "file"
	Delivery   string
	Label      string // what an event or a staff action says
	AttrsShown []string
}

type transcriptConv struct {
	Conv     relay.ConversationID
	Account  string
	Client   string
	Profile  *relay.ClientProfile // the newest archived version, if any
	Messages []transcriptMessage
}

type transcriptPage struct {
	M     *Manifest
	Convs []transcriptConv
}

var transcriptTemplate = template.Must(template.New("transcript").Parse(`<!DOCTYPE html>
<html lang="zh-CN">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>wechat-relay export — {{.M.QueryText}}</title>
<style>
body { margin: 0; background: #ededed; color: #191919;
  font-family: -apple-system, "PingFang SC", "Hiragino Sans GB", "Microsoft YaHei", "Noto Sans CJK SC", "Source Han Sans SC", "WenQuanYi Micro Hei", sans-serif; }
header { background: #2e2e2e; color: #fff; padding: 16px 24px; }
header h1 { margin: 0 0 6px; font-size: 18px; }
header p { margin: 2px 0; font-size: 13px; color: #ccc; }
section.conv { max-width: 820px; margin: 24px auto; background: #f5f5f5; border-radius: 8px; overflow: hidden; box-shadow: 0 1px 3px rgba(0,0,0,.15); }
section.conv h2 { margin: 0; padding: 12px 16px; font-size: 15px; background: #fff; border-bottom: 1px solid #ddd; }
.msg { display: flex; flex-direction: column; margin: 12px 16px; }
.msg.out { align-items: flex-end; }
.msg.in { align-items: flex-start; }
.msg.internal { align-items: center; }
.meta { font-size: 11px; color: #888; margin: 0 4px 3px; }
.bubble { max-width: 70%; padding: 9px 12px; border-radius: 6px; background: #fff; white-space: pre-wrap; word-break: break-word; line-height: 1.5; }
.out .bubble { background: #95ec69; }
.internal .bubble { background: #fff7d6; border: 1px dashed #d9b400; font-size: 13px; }
.event .bubble { background: transparent; color: #888; font-size: 12px; }
.bubble img, .bubble video { max-width: 100%; max-height: 360px; display: block; border-radius: 4px; }
.attrs { font-size: 11px; color: #666; margin-top: 4px; }
.delivery { font-size: 11px; color: #888; margin: 2px 4px 0; }
.missing { color: #b00; font-size: 12px; }
.profile { padding: 8px 16px; font-size: 13px; background: #fafafa; border-bottom: 1px solid #ddd; white-space: pre-wrap; }
.tag { display: inline-block; padding: 0 6px; border-radius: 3px; background: #e7f3ec; color: #07603a; }
footer { text-align: center; font-size: 12px; color: #888; padding: 24px; }
</style>
</head>
<body>
<header>
<h1>会话记录导出 · Conversation export</h1>
<p>Query: {{.M.QueryText}}</p>
<p>Exported by {{.M.ExportedBy}} at {{.M.ExportedAt.Format "2006-01-02 15:04:05 MST"}} · relay {{.M.Version}}</p>
<p>{{.M.Counts.Messages}} messages in {{.M.Counts.Conversations}} conversations · {{.M.Counts.Events}} delivery events · {{.M.Counts.Media}} media files · {{.M.Counts.Seals}} seals</p>
</header>
{{range .Convs}}
<section class="conv">
<h2>{{with .Profile}}{{if .Name}}{{.Name}} · {{end}}{{end}}{{.Conv}} <small>(account {{.Account}}, client {{.Client}})</small></h2>
{{with .Profile}}<div class="profile">客户资料 client profile v{{.Version}} ({{.By}}){{if .Remark}} · 备注 remark: {{.Remark}}{{end}}{{if .Tags}} · 标签 tags:{{range .Tags}} <span class="tag">{{.}}</span>{{end}}{{end}}{{if .Note}}<br>{{.Note}}{{end}}</div>{{end}}
{{range .Messages}}
<div class="msg {{.Side}}{{if eq (print .Kind) "event"}} event{{end}}" id="{{.ID}}">
<div class="meta">#{{.Seq}} · {{.Time}}{{if .Employee}} · {{.Employee}}{{end}} · {{.Kind}}</div>
<div class="bubble">
{{- if .Label}}{{.Label}}{{end -}}
{{- if .MediaFile}}
{{- if eq .MediaType "image"}}<img src="{{.MediaFile}}" alt="{{.MediaFile}}">
{{- else if eq .MediaType "audio"}}<audio controls src="{{.MediaFile}}"></audio> <a href="{{.MediaFile}}">{{.MediaFile}}</a>
{{- else if eq .MediaType "video"}}<video controls src="{{.MediaFile}}"></video>
{{- else}}<a href="{{.MediaFile}}">📎 {{index .Attrs "file_name"}} {{.MediaFile}}</a>{{end}}
{{- else if .MediaID}}<span class="missing">media not archived ({{.MediaID}})</span>
{{- end -}}
{{- if .Text}}{{if or .Label .MediaFile}}
{{end}}{{.Text}}{{end -}}
{{- if .AttrsShown}}<div class="attrs">{{range .AttrsShown}}{{.}} {{end}}</div>{{end -}}
</div>
{{if .Delivery}}<div class="delivery">{{.Delivery}}</div>{{end}}
</div>
{{end}}
</section>
{{end}}
<footer>wechat-relay · manifest.json lists the sha256 of every file and the seals covering these messages</footer>
</body>
</html>
`))

func writeTranscript(w io.Writer, man *Manifest, msgs []relay.Message, events []relay.DeliveryEvent, media mediaFiles, profiles map[relay.ConversationID]relay.ClientProfile) error {
	latest := map[string]relay.DeliveryEvent{}
	for _, e := range events {
		if l, ok := latest[e.MessageID]; !ok || !e.At.Before(l.At) {
			latest[e.MessageID] = e
		}
	}
	cst := time.FixedZone("CST", 8*3600)
	page := transcriptPage{M: man}
	for _, m := range msgs {
		if n := len(page.Convs); n == 0 || page.Convs[n-1].Conv != m.Conv {
			tc := transcriptConv{Conv: m.Conv, Account: m.Account, Client: m.Client}
			if p, ok := profiles[m.Conv]; ok {
				tc.Profile = &p
			}
			page.Convs = append(page.Convs, tc)
		}
		tm := transcriptMessage{Message: m, Side: string(m.Direction), MediaFile: media.file[m.ID]}
		if !m.AcceptedAt.IsZero() {
			tm.Time = m.AcceptedAt.In(cst).Format("2006-01-02 15:04:05")
		}
		switch ct := media.contentType[m.ID]; {
		case strings.HasPrefix(ct, "image/") || (ct == "" && m.Kind == relay.KindImage):
			tm.MediaType = "image"
		case strings.HasPrefix(ct, "audio/") || m.Kind == relay.KindVoice:
			tm.MediaType = "audio"
		case strings.HasPrefix(ct, "video/") || m.Kind == relay.KindVideo || m.Kind == relay.KindShortVideo:
			tm.MediaType = "video"
		default:
			tm.MediaType = "file"
		}
		switch m.Kind {
		case relay.KindEvent:
			tm.Label = "[" + m.Event + "]"
			if m.EventKey != "" {
				tm.Label += " " + m.EventKey
			}
		case relay.KindTransfer:
			tm.Label = "转接 transfer: " + m.Attrs[relay.AttrFrom] + " → " + m.Attrs[relay.AttrTo]
		case relay.KindResolve:
			tm.Label = "已解决 resolved"
		case relay.KindReopen:
			tm.Label = "重新打开 reopened"
		case relay.KindNote:
			tm.Label = "备注 note:"
		case relay.KindLocation:
			tm.Label = "📍 " + m.Attrs["label"] + " (" + m.Attrs["location_x"] + ", " + m.Attrs["location_y"] + ")"
		case relay.KindLink:
			tm.Label = "🔗 " + m.Attrs["title"] + " " + m.Attrs["url"]
		}
		if e, ok := latest[m.ID]; ok {
			tm.Delivery = "delivery: " + string(e.State)
			if e.ErrCode != 0 {
				tm.Delivery += " (errcode " + strconv.Itoa(e.ErrCode) + " " + e.ErrMsg + ")"
			}
		}
		c := &page.Convs[len(page.Convs)-1]
		c.Messages = append(c.Messages, tm)
	}
	return transcriptTemplate.Execute(w, page)
}
