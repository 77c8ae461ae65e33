package commands

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"
	"unicode/utf8"

	"github.com/wechat-relay/wechat-relay/configs"
	"github.com/wechat-relay/wechat-relay/deployments/system"
	"github.com/wechat-relay/wechat-relay/relay"
	"github.com/wechat-relay/wechat-relay/relay/export"
)

// Exit codes of `wechat-relay search` and `wechat-relay export`.
const (
	searchFound   = 0 // search: something matched; export: written
	searchNothing = 1 // search: nothing matched
	searchUsage   = 2 // bad flags
	searchFailed  = 3 // the archive could not be read, or the export not written
)

// searchArchive is the archive as search and export read it.
type searchArchive interface {
	export.Source
	Close() error
}

// openForSearch opens the configured archive for reading, as verify
// does.
func openForSearch(ctx context.Context, cfg *configs.Config) (searchArchive, error) {
	a, _, err := system.OpenReadOnly(ctx, cfg)
	return a, err
}

// searchFlags are the filters search and export share.
type searchFlags struct {
	account, client, employee, conv, direction, kind, from, to, text *string
}

func addSearchFlags(fs *flag.FlagSet) searchFlags {
	return searchFlags{
		account:   fs.String("account", "", "account id"),
		client:    fs.String("client", "", "client openid"),
		employee:  fs.String("employee", "", "employee id"),
		conv:      fs.String("conv", "", "conversation id (account:openid)"),
		direction: fs.String("direction", "", "in, out or internal"),
		kind:      fs.String("kind", "", "message kind (text, image, voice, video, file, event, note, ...)"),
		from:      fs.String("from", "", "accepted at or after: a date (2026-11-01, UTC) or an RFC 3339 time"),
		to:        fs.String("to", "", "accepted before: a date (up to the end of that day, UTC) or an RFC 3339 time"),
		text:      fs.String("text", "", "case-insensitive substring of the text (Chinese included)"),
	}
}

func (f searchFlags) query() (relay.SearchQuery, error) {
	q := relay.SearchQuery{
		Account: *f.account, Client: *f.client, Employee: *f.employee, Conv: relay.ConversationID(*f.conv),
		Direction: relay.Direction(*f.direction), Kind: relay.Kind(*f.kind), Text: *f.text,
	}
	var err error
	if q.From, err = relay.ParseSearchTime(*f.from, false); err != nil {
		return q, fmt.Errorf("-from: %w", err)
	}
	if q.To, err = relay.ParseSearchTime(*f.to, true); err != nil {
		return q, fmt.Errorf("-to: %w", err)
	}
	return q, q.Validate()
}

// searchCommand runs `wechat-relay search`: one page of the archive's
// messages matching the filters, newest first, as a table or (-json) as
// JSON lines. Exit code 0 when something matched, 1 when nothing did,
// 2 for bad flags, 3 when the archive cannot be read.
//
//	wechat-relay search [-config FILE] [-text T] [-client OPENID] [-employee ID] [-conv C]
//	    [-account A] [-direction in|out|internal] [-kind K] [-from DATE] [-to DATE]
//	    [-limit N] [-offset N | -cursor C] [-json]
func searchCommand(ctx context.Context, args []string, stdout, stderr io.Writer, env func(string) string) int {
	fs := flag.NewFlagSet("search", flag.ContinueOnError)
	fs.SetOutput(stderr)
	configPath := fs.String("config", env("WR_CONFIG"), "configuration file naming the archive (none: the embedded demo archive)")
	sf := addSearchFlags(fs)
	limit := fs.Int("limit", relay.DefaultSearchLimit, fmt.Sprintf("messages per page (at most %d)", relay.MaxSearchLimit))
	offset := fs.Int("offset", 0, "skip this many matches")
	cursor := fs.String("cursor", "", "continue after a previous page (printed at its end)")
	asJSON := fs.Bool("json", false, "print JSON lines, one message each")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: wechat-relay search [-config FILE] [filters] [-limit N] [-offset N | -cursor C] [-json]")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return searchUsage
	}
	if fs.NArg() > 0 {
		fs.Usage()
		return searchUsage
	}
	q, err := sf.query()
	if err == nil {
		q.Limit, q.Offset, q.Cursor, q.WithTotal = *limit, *offset, *cursor, *cursor == ""
		err = q.Validate()
	}
	if err != nil {
		fmt.Fprintf(stderr, "wechat-relay search: %v\n", err)
		return searchUsage
	}
	cfg, err := configs.Load(*configPath, env)
	if err != nil {
		fmt.Fprintf(stderr, "wechat-relay search: %v\n", err)
		return searchFailed
	}
	a, err := openForSearch(ctx, cfg)
	if err != nil {
		fmt.Fprintf(stderr, "wechat-relay search: %v\n", err)
		return searchFailed
	}
	defer a.Close()
	start := time.Now()
	page, err := a.Search(ctx, q)
	if err != nil {
		fmt.Fprintf(stderr, "wechat-relay search: %v\n", err)
		if errors.Is(err, relay.ErrBadCursor) {
			return searchUsage
		}
		return searchFailed
	}
	took := time.Since(start)
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetEscapeHTML(false)
		for _, m := range page.Messages {
			enc.Encode(searchLine{
				ID: m.ID, Account: m.Account, Client: m.Client, Conv: string(m.Conv), Seq: m.Seq,
				Direction: string(m.Direction), Kind: string(m.Kind), Event: m.Event, Text: m.Text, MediaID: m.MediaID,
				Attrs: m.Attrs, Employee: m.Employee, CreatedAt: m.CreatedAt, AcceptedAt: m.AcceptedAt,
				Hash: m.Hash, BatchID: m.BatchID,
			})
		}
	} else {
		printSearchTable(stdout, page.Messages)
	}
	summary := fmt.Sprintf("%d messages", len(page.Messages))
	if page.Total >= 0 {
		summary += fmt.Sprintf(" of %d", page.Total)
	}
	summary += fmt.Sprintf(" (%s)", took.Round(time.Millisecond))
	if page.Next != "" {
		summary += "; next page: -cursor " + page.Next
	}
	if *asJSON {
		fmt.Fprintln(stderr, summary)
	} else {
		fmt.Fprintln(stdout, summary)
	}
	if len(page.Messages) == 0 {
		return searchNothing
	}
	return searchFound
}

// searchLine is one line of `search -json`.
type searchLine struct {
	ID         string            `json:"id"`
	Account    string            `json:"account"`
	Client     string            `json:"client"`
	Conv       string            `json:"conv"`
	Seq        uint64            `json:"seq"`
	Direction  string            `json:"direction"`
	Kind       string            `json:"kind"`
	Event      string            `json:"event,omitempty"`
	Text       string            `json:"text"`
	MediaID    string            `json:"media_id,omitempty"`
	Attrs      map[string]string `json:"attrs,omitempty"`
	Employee   string            `json:"employee"`
	CreatedAt  time.Time         `json:"created_at"`
	AcceptedAt time.Time         `json:"accepted_at"`
	Hash       string            `json:"hash"`
	BatchID    string            `json:"batch_id"`
}

func printSearchTable(w io.Writer, msgs []relay.Message) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ACCEPTED (UTC)\tCONVERSATION\tSEQ\tDIR\tKIND\tEMPLOYEE\tTEXT")
	for _, m := range msgs {
		text := m.Text
		switch {
		case m.Kind == relay.KindEvent:
			text = "[" + m.Event + "] " + m.EventKey
		case text == "" && m.MediaID != "":
			text = "[" + string(m.Kind) + " " + m.MediaID + "]"
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\t%s\t%s\n", m.AcceptedAt.UTC().Format("2006-01-02 15:04:05"), m.Conv, m.Seq,
			m.Direction, m.Kind, m.Employee, clip(text, 60))
	}
	tw.Flush()
}

// clip shortens s to n runes on one line.
func clip(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return string(r[:n-1]) + "…"
}
