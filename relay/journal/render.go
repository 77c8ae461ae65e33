package journal

import (
	"bytes"
	"fmt"
	"mime"
	"path"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/wneessen/go-mail"

	"github.com/wechat-relay/wechat-relay/relay"
)

// The headers every journal email carries, so that the receiving archive
// can be reconciled with ours row by row: the row id and hash are what
// `wechat-relay verify` checks on this side.
const (
	hdrAccount      = "X-WeChat-Relay-Account"
	hdrConversation = "X-WeChat-Relay-Conversation"
	hdrClient       = "X-WeChat-Relay-Client"
	hdrEmployee     = "X-WeChat-Relay-Employee"
	hdrDirection    = "X-WeChat-Relay-Direction"
	hdrKind         = "X-WeChat-Relay-Kind"
	hdrSeq          = "X-WeChat-Relay-Seq"
	hdrRowID        = "X-WeChat-Relay-Row-Id"
	hdrRowHash      = "X-WeChat-Relay-Row-Hash"
	hdrBatch        = "X-WeChat-Relay-Batch"
	hdrAccepted     = "X-WeChat-Relay-Accepted"
	hdrMedia        = "X-WeChat-Relay-Media"
	hdrDay          = "X-WeChat-Relay-Transcript-Day"
	hdrRows         = "X-WeChat-Relay-Rows"
	hdrRowsHash     = "X-WeChat-Relay-Rows-Hash"
)

// email is one journal email and the ledger entry it becomes once the
// server accepted it.
type email struct {
	entry relay.JournalEntry // without At and Answer until sent
	msg   *mail.Msg
}

// newMsg starts an email with the headers every journal email has.
func newMsg(key, domain string, date time.Time) *mail.Msg {
	m := mail.NewMsg(mail.WithNoDefaultUserAgent(), mail.WithCharset(mail.CharsetUTF8), mail.WithEncoding(mail.EncodingQP))
	m.SetGenHeader(mail.HeaderMessageID, MessageID(key, domain))
	m.SetDateWithValue(date)
	// Never answered by an autoresponder (RFC 3834).
	m.SetGenHeader(mail.Header("Auto-Submitted"), "auto-generated")
	m.SetGenHeader(mail.Header("X-Mailer"), "wechat-relay journal")
	return m
}

// parties returns the From and To addresses of m: the client, the
// employee it is filed under, or the account when it has none.
func parties(m relay.Message, domain string) (from, to string) {
	staff := accountAddress(m.Account, domain)
	if m.Employee != "" {
		staff = staffAddress(m.Employee, domain)
	}
	switch m.Direction {
	case relay.Outbound:
		return staff, clientAddress(m.Client, domain)
	case relay.Internal:
		return staff, accountAddress(m.Account, domain)
	}
	return clientAddress(m.Client, domain), staff
}

// renderMessage renders the archived message m as an email: m's text
// (or what its kind says) as the body, then a block of the record's
// fields; its media, when fetched, and the callback's exact bytes as
// attachments. media is nil when m has none or it was not fetched.
func renderMessage(m relay.Message, media *relay.Media, domain string) (email, error) {
	date := m.CreatedAt
	if date.IsZero() {
		date = m.AcceptedAt
	}
	msg := newMsg(m.ID, domain, date)
	from, to := parties(m, domain)
	if err := msg.From(from); err != nil {
		return email{}, fmt.Errorf("journal: message %s: from %s: %w", m.ID, from, err)
	}
	if err := msg.To(to); err != nil {
		return email{}, fmt.Errorf("journal: message %s: to %s: %w", m.ID, to, err)
	}
	msg.Subject(subject(m))
	for _, h := range [][2]string{
		{hdrAccount, m.Account}, {hdrConversation, string(m.Conv)}, {hdrClient, m.Client},
		{hdrEmployee, m.Employee}, {hdrDirection, string(m.Direction)}, {hdrKind, string(m.Kind)},
		{hdrSeq, strconv.FormatUint(m.Seq, 10)}, {hdrRowID, m.ID}, {hdrRowHash, m.Hash},
		{hdrBatch, m.BatchID}, {hdrAccepted, m.AcceptedAt.UTC().Format(time.RFC3339Nano)},
	} {
		if h[1] != "" {
			msg.SetGenHeader(mail.Header(h[0]), h[1])
		}
	}
	msg.SetBodyString(mail.TypeTextPlain, body(m))
	if m.Kind.HasMedia() && m.MediaID != "" {
		if media == nil {
			msg.SetGenHeader(mail.Header(hdrMedia), "missing")
		} else {
			msg.SetGenHeader(mail.Header(hdrMedia), media.SHA256)
			ct := media.ContentType
			if ct == "" {
				ct = "application/octet-stream"
			}
			if err := msg.AttachReader(mediaName(m, *media), bytes.NewReader(media.Data),
				mail.WithFileContentType(mail.ContentType(ct))); err != nil {
				return email{}, fmt.Errorf("journal: message %s: attaching its media: %w", m.ID, err)
			}
		}
	}
	if len(m.Raw) > 0 {
		if err := msg.AttachReader("wechat-callback.xml", bytes.NewReader(m.Raw),
			mail.WithFileContentType(mail.ContentType("application/xml"))); err != nil {
			return email{}, fmt.Errorf("journal: message %s: attaching its callback: %w", m.ID, err)
		}
	}
	return email{
		entry: relay.JournalEntry{Key: m.ID, Kind: relay.JournalMessage, Conv: m.Conv, MessageID: MessageID(m.ID, domain), Hash: m.Hash},
		msg:   msg,
	}, nil
}

// subject says what the message is, with the start of its text.
func subject(m relay.Message) string {
	who := map[relay.Direction]string{relay.Inbound: "from client", relay.Outbound: "to client", relay.Internal: "staff note"}[m.Direction]
	s := fmt.Sprintf("WeChat %s %s %s", m.Account, who, m.Client)
	if m.Kind != relay.KindText {
		s += " [" + string(m.Kind) + "]"
	}
	if t := excerpt(m.Text, 60); t != "" {
		s += ": " + t
	}
	return s
}

// excerpt is the first n characters of s on one line.
func excerpt(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if r := []rune(s); len(r) > n {
		return string(r[:n]) + "…"
	}
	return s
}

// body is the text part: the message's text, or its event, then every
// field of the record, so that the email alone says all the archive
// does.
func body(m relay.Message) string {
	var b strings.Builder
	switch {
	case m.Text != "":
		b.WriteString(m.Text)
	case m.Kind == relay.KindEvent:
		fmt.Fprintf(&b, "[event %s %s]", m.Event, m.EventKey)
	default:
		fmt.Fprintf(&b, "[%s]", m.Kind)
	}
	b.WriteString("\n\n-- \n")
	field := func(name, v string) {
		if v != "" {
			fmt.Fprintf(&b, "%s: %s\n", name, v)
		}
	}
	field("Account", m.Account)
	field("Conversation", string(m.Conv))
	field("Client", m.Client)
	field("Employee", m.Employee)
	field("Direction", string(m.Direction))
	field("Kind", string(m.Kind))
	field("Event", m.Event)
	field("Event key", m.EventKey)
	field("WeChat MsgId", m.WxMsgID)
	field("Media id", m.MediaID)
	keys := make([]string, 0, len(m.Attrs))
	for k := range m.Attrs {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		field("Attr "+k, m.Attrs[k])
	}
	field("Sequence", strconv.FormatUint(m.Seq, 10))
	if !m.CreatedAt.IsZero() {
		field("Created", m.CreatedAt.UTC().Format(time.RFC3339))
	}
	field("Accepted", m.AcceptedAt.UTC().Format(time.RFC3339Nano))
	field("Archive row", m.ID)
	field("Archive hash", m.Hash)
	field("Seal batch", m.BatchID)
	return b.String()
}

// mediaName is the attachment's file name: WeChat's, or the kind and the
// content hash with an extension for its type.
func mediaName(m relay.Message, media relay.Media) string {
	if n := path.Base(strings.ReplaceAll(media.FileName, "\\", "/")); media.FileName != "" && n != "." && n != "/" {
		return n
	}
	if name := m.Attrs["file_name"]; name != "" {
		return path.Base(name)
	}
	ext := ""
	if exts, _ := mime.ExtensionsByType(media.ContentType); len(exts) > 0 {
		ext = exts[0]
	}
	hash := media.SHA256
	if len(hash) > 16 {
		hash = hash[:16]
	}
	return string(m.Kind) + "-" + hash + ext
}
