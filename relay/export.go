package relay

import (
	"archive/zip"
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/csv"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"mime"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Export (eDiscovery): the messages a SearchQuery selects — a
// conversation, a client, an employee, a search — written out as a
// folder or a zip that a regulator can read without the relay:
//
//	messages.jsonl   one JSON object per message, every field (raw as base64)
//	messages.csv     the same, one row per message (raw as base64, attrs as JSON)
//	events.jsonl     the delivery events of the exported outbound messages
//	events.csv       the same as CSV
//	media/<sha256><ext>  every archived media of the messages, byte for byte
//	transcript.html  a readable, chat-like transcript, media inline
//	manifest.json    counts, the sha256 of every other file, the seals
//	                 covering the exported rows, who exported, when, the
//	                 query and the relay's version
//
// Messages are ordered by conversation, then sequence. The whole result
// is held in memory while the files are written (media one at a time):
// exports of millions of rows should be split by date range.

// ExportSource is the archive as an export reads it. Both archives in
// storage implement it.
type ExportSource interface {
	Searcher
	MediaReader
	// MessageEvents returns every delivery event of the messages, one
	// per event id, ordered by message id then At.
	MessageEvents(ctx context.Context, messageIDs []string) ([]DeliveryEvent, error)
	// SealsByID returns the stored seals with these ids, one per id;
	// unknown ids are absent.
	SealsByID(ctx context.Context, ids []string) ([]Seal, error)
}

// ExportSink receives the files of an export. Create returns a writer
// valid until the next Create or Close.
type ExportSink interface {
	Create(name string) (io.Writer, error)
	Close() error
}

// ExportRequest says what to export and records who asked.
type ExportRequest struct {
	Query   SearchQuery
	By      string    // who exports (an employee id, an operator's name)
	Version string    // the relay's version, for the manifest
	Now     time.Time // when; zero: time.Now()
}

// ExportProgress is how far an export is.
type ExportProgress struct {
	Phase      string `json:"phase"` // "rows", "media", "files", "done"
	Rows       int    `json:"rows"`
	RowsTotal  int    `json:"rows_total"`
	Media      int    `json:"media"`
	MediaTotal int    `json:"media_total"`
}

// ExportManifest is manifest.json.
type ExportManifest struct {
	Format     string         `json:"format"` // "wechat-relay-export/v1"
	ExportedBy string         `json:"exported_by"`
	ExportedAt time.Time      `json:"exported_at"`
	Query      SearchQuery    `json:"query"`
	QueryText  string         `json:"query_text"`
	Version    string         `json:"relay_version"`
	Counts     ExportCounts   `json:"counts"`
	Files      []ExportedFile `json:"files"`
	Seals      []ExportedSeal `json:"seals"`
	// Unsealed lists exported rows (messages and events) that carry no
	// batch id, or whose batch id names no stored seal.
	Unsealed []string `json:"unsealed"`
}

// ExportCounts counts what an export holds.
type ExportCounts struct {
	Messages      int `json:"messages"`
	Conversations int `json:"conversations"`
	Events        int `json:"events"`
	Media         int `json:"media"`         // media files written
	MediaMissing  int `json:"media_missing"` // media messages whose content is not archived
	Seals         int `json:"seals"`
}

// ExportedFile is one file of an export, with its hash.
type ExportedFile struct {
	Name   string `json:"name"`
	SHA256 string `json:"sha256"`
	Size   int64  `json:"size"`
}

// ExportedSeal is a seal covering exported rows.
type ExportedSeal struct {
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

// ExportedMessage is one line of messages.jsonl.
type ExportedMessage struct {
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

// ExportedEvent is one line of events.jsonl.
type ExportedEvent struct {
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

func exportTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339Nano)
}

// exportPage is the page size an export reads with.
const exportPage = MaxSearchLimit

// Export writes the messages req.Query selects into sink and closes it.
// progress, if not nil, is called as the export goes (from the calling
// goroutine). The manifest is returned too.
func Export(ctx context.Context, src ExportSource, req ExportRequest, sink ExportSink, progress func(ExportProgress)) (man *ExportManifest, err error) {
	defer func() {
		if cerr := sink.Close(); cerr != nil && err == nil {
			err = fmt.Errorf("relay: export: closing the output: %w", cerr)
		}
	}()
	if progress == nil {
		progress = func(ExportProgress) {}
	}
	now := req.Now
	if now.IsZero() {
		now = time.Now()
	}
	q := req.Query
	q.Cursor, q.Offset, q.Limit = "", 0, exportPage
	if err := q.Validate(); err != nil {
		return nil, err
	}
	prog := ExportProgress{Phase: "rows"}

	// 1. The rows.
	var msgs []Message
	for first := true; ; first = false {
		q.WithTotal = first
		page, err := src.Search(ctx, q)
		if err != nil {
			return nil, fmt.Errorf("relay: export: reading messages: %w", err)
		}
		if first {
			prog.RowsTotal = page.Total
		}
		msgs = append(msgs, page.Messages...)
		prog.Rows = len(msgs)
		prog.RowsTotal = max(prog.RowsTotal, prog.Rows)
		progress(prog)
		if page.Next == "" {
			break
		}
		q.Cursor = page.Next
	}
	slices.SortFunc(msgs, func(a, b Message) int {
		if c := strings.Compare(string(a.Conv), string(b.Conv)); c != 0 {
			return c
		}
		if a.Seq != b.Seq {
			if a.Seq < b.Seq {
				return -1
			}
			return 1
		}
		return strings.Compare(a.ID, b.ID)
	})

	// 2. Delivery events of outbound messages.
	var outIDs []string
	for _, m := range msgs {
		if m.Direction == Outbound {
			outIDs = append(outIDs, m.ID)
		}
	}
	var events []DeliveryEvent
	if len(outIDs) > 0 {
		if events, err = src.MessageEvents(ctx, outIDs); err != nil {
			return nil, fmt.Errorf("relay: export: reading delivery events: %w", err)
		}
	}

	man = &ExportManifest{
		Format: "wechat-relay-export/v1", ExportedBy: req.By, ExportedAt: now.UTC(),
		Query: req.Query, QueryText: req.Query.String(), Version: req.Version,
		Files: []ExportedFile{}, Seals: []ExportedSeal{}, Unsealed: []string{},
	}
	put := func(name string, write func(w io.Writer) error) error {
		w, err := sink.Create(name)
		if err != nil {
			return fmt.Errorf("relay: export: creating %s: %w", name, err)
		}
		hw := &hashWriter{w: w, h: sha256.New()}
		bw := bufio.NewWriterSize(hw, 64<<10)
		if err := write(bw); err != nil {
			return fmt.Errorf("relay: export: writing %s: %w", name, err)
		}
		if err := bw.Flush(); err != nil {
			return fmt.Errorf("relay: export: writing %s: %w", name, err)
		}
		man.Files = append(man.Files, ExportedFile{Name: name, SHA256: hex.EncodeToString(hw.h.Sum(nil)), Size: hw.n})
		return nil
	}

	// 3. Media, one file per content.
	var withMedia []int
	for i, m := range msgs {
		if m.MediaID != "" || m.Kind.HasMedia() {
			withMedia = append(withMedia, i)
		}
	}
	prog.Phase, prog.MediaTotal = "media", len(withMedia)
	progress(prog)
	mediaFile := map[string]string{} // message id -> file name
	mediaSum := map[string]string{}  // message id -> sha256
	mediaType := map[string]string{} // message id -> content type
	written := map[string]string{}   // sha256 -> file name
	for _, i := range withMedia {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		m := msgs[i]
		_, md, ok, err := src.MessageMedia(ctx, m.ID)
		if err != nil {
			return nil, fmt.Errorf("relay: export: reading the media of %s: %w", m.ID, err)
		}
		prog.Media++
		if !ok {
			man.Counts.MediaMissing++
			progress(prog)
			continue
		}
		sum := ContentHash(md.Data)
		name, done := written[sum]
		if !done {
			name = "media/" + sum + mediaExt(md, m.Kind)
			data := md.Data
			if err := put(name, func(w io.Writer) error { _, err := w.Write(data); return err }); err != nil {
				return nil, err
			}
			written[sum] = name
			man.Counts.Media++
		}
		mediaFile[m.ID], mediaSum[m.ID], mediaType[m.ID] = name, sum, md.ContentType
		progress(prog)
	}

	// 4. The seals covering the rows.
	batchRows := map[string]int{}
	for _, m := range msgs {
		if m.BatchID != "" {
			batchRows[m.BatchID]++
		} else {
			man.Unsealed = append(man.Unsealed, m.ID)
		}
	}
	for _, e := range events {
		if e.BatchID != "" {
			batchRows[e.BatchID]++
		} else {
			man.Unsealed = append(man.Unsealed, e.ID)
		}
	}
	batchIDs := make([]string, 0, len(batchRows))
	for id := range batchRows {
		batchIDs = append(batchIDs, id)
	}
	sort.Strings(batchIDs)
	if len(batchIDs) > 0 {
		seals, err := src.SealsByID(ctx, batchIDs)
		if err != nil {
			return nil, fmt.Errorf("relay: export: reading seals: %w", err)
		}
		found := map[string]bool{}
		for _, s := range seals {
			if found[s.ID] {
				continue
			}
			found[s.ID] = true
			man.Seals = append(man.Seals, ExportedSeal{
				ID: s.ID, Hash: s.Hash, Root: s.Root, Prev: s.Prev, Writer: s.Writer, Stream: s.Stream,
				Number: s.Number, Count: s.Count, Rows: batchRows[s.ID], KeyID: s.KeyID, Signature: s.Signature,
			})
		}
		sort.Slice(man.Seals, func(i, j int) bool { return man.Seals[i].ID < man.Seals[j].ID })
		for _, m := range msgs {
			if m.BatchID != "" && !found[m.BatchID] {
				man.Unsealed = append(man.Unsealed, m.ID)
			}
		}
		for _, e := range events {
			if e.BatchID != "" && !found[e.BatchID] {
				man.Unsealed = append(man.Unsealed, e.ID)
			}
		}
	}

	// 5. The files.
	prog.Phase = "files"
	progress(prog)
	exported := make([]ExportedMessage, len(msgs))
	convs := map[ConversationID]bool{}
	for i, m := range msgs {
		convs[m.Conv] = true
		raw := m.Raw
		if raw == nil {
			raw = []byte{}
		}
		attrs := m.Attrs
		if attrs == nil {
			attrs = map[string]string{}
		}
		exported[i] = ExportedMessage{
			ID: m.ID, Account: m.Account, Client: m.Client, Conv: string(m.Conv), Seq: m.Seq,
			Direction: string(m.Direction), Kind: string(m.Kind), WxMsgID: m.WxMsgID, Event: m.Event, EventKey: m.EventKey,
			Text: m.Text, MediaID: m.MediaID, Attrs: attrs, Raw: raw,
			CreatedAt: exportTime(m.CreatedAt), AcceptedAt: exportTime(m.AcceptedAt), Employee: m.Employee,
			Hash: m.Hash, BatchID: m.BatchID, MediaFile: mediaFile[m.ID], MediaSHA256: mediaSum[m.ID],
		}
	}
	if err := put("messages.jsonl", func(w io.Writer) error {
		enc := json.NewEncoder(w)
		enc.SetEscapeHTML(false)
		for _, e := range exported {
			if err := enc.Encode(e); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		return nil, err
	}
	if err := put("messages.csv", func(w io.Writer) error { return writeMessagesCSV(w, exported) }); err != nil {
		return nil, err
	}
	evs := make([]ExportedEvent, len(events))
	for i, e := range events {
		evs[i] = ExportedEvent{
			ID: e.ID, MessageID: e.MessageID, Account: e.Account, Conv: string(e.Conv), State: string(e.State),
			ErrCode: e.ErrCode, ErrMsg: e.ErrMsg, At: exportTime(e.At), Hash: e.Hash, BatchID: e.BatchID,
		}
	}
	if err := put("events.jsonl", func(w io.Writer) error {
		enc := json.NewEncoder(w)
		enc.SetEscapeHTML(false)
		for _, e := range evs {
			if err := enc.Encode(e); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		return nil, err
	}
	if err := put("events.csv", func(w io.Writer) error { return writeEventsCSV(w, evs) }); err != nil {
		return nil, err
	}
	man.Counts.Messages, man.Counts.Conversations, man.Counts.Events, man.Counts.Seals = len(msgs), len(convs), len(events), len(man.Seals)
	if err := put("transcript.html", func(w io.Writer) error {
		return writeTranscript(w, man, msgs, events, mediaFile, mediaType)
	}); err != nil {
		return nil, err
	}

	w, err := sink.Create("manifest.json")
	if err != nil {
		return nil, fmt.Errorf("relay: export: creating manifest.json: %w", err)
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	if err := enc.Encode(man); err != nil {
		return nil, fmt.Errorf("relay: export: writing manifest.json: %w", err)
	}
	prog.Phase = "done"
	progress(prog)
	return man, nil
}

type hashWriter struct {
	w io.Writer
	h hash.Hash
	n int64
}

func (w *hashWriter) Write(p []byte) (int, error) {
	n, err := w.w.Write(p)
	w.h.Write(p[:n])
	w.n += int64(n)
	return n, err
}

// mediaExt is the file extension of md: from its file name, else its
// content type, else the message kind.
func mediaExt(md Media, kind Kind) string {
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
	case KindImage:
		return ".jpg"
	case KindVoice:
		return ".amr"
	case KindVideo, KindShortVideo:
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

// messageCSVHeader is the header row of messages.csv.
var messageCSVHeader = []string{
	"id", "account", "client", "conv", "seq", "direction", "kind", "wx_msg_id", "event", "event_key",
	"text", "media_id", "attrs", "raw_base64", "created_at", "accepted_at", "employee", "hash", "batch_id",
	"media_file", "media_sha256",
}

func writeMessagesCSV(w io.Writer, msgs []ExportedMessage) error {
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
		if err := cw.Write([]string{
			m.ID, m.Account, m.Client, m.Conv, strconv.FormatUint(m.Seq, 10), m.Direction, m.Kind, m.WxMsgID, m.Event, m.EventKey,
			m.Text, m.MediaID, string(attrs), rawB64, m.CreatedAt, m.AcceptedAt, m.Employee, m.Hash, m.BatchID,
			m.MediaFile, m.MediaSHA256,
		}); err != nil {
			return err
		}
	}
	cw.Flush()
	return cw.Error()
}

func writeEventsCSV(w io.Writer, evs []ExportedEvent) error {
	cw := csv.NewWriter(w)
	if err := cw.Write([]string{"id", "message_id", "account", "conv", "state", "errcode", "errmsg", "at", "hash", "batch_id"}); err != nil {
		return err
	}
	for _, e := range evs {
		if err := cw.Write([]string{e.ID, e.MessageID, e.Account, e.Conv, e.State, strconv.Itoa(e.ErrCode), e.ErrMsg, e.At, e.Hash, e.BatchID}); err != nil {
			return err
		}
	}
	cw.Flush()
	return cw.Error()
}

// DirSink writes an export into a directory, created if missing; it
// must be empty, so that an export never mixes with another.
type DirSink struct {
	dir string
	f   *os.File
}

// NewDirSink prepares dir.
func NewDirSink(dir string) (*DirSink, error) {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("relay: export: creating %s: %w", dir, err)
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("relay: export: reading %s: %w", dir, err)
	}
	if len(ents) > 0 {
		return nil, fmt.Errorf("relay: export: %s is not empty", dir)
	}
	return &DirSink{dir: dir}, nil
}

// Create creates the file name (slash-separated) in the directory.
func (s *DirSink) Create(name string) (io.Writer, error) {
	if err := s.closeFile(); err != nil {
		return nil, err
	}
	p := filepath.Join(s.dir, filepath.FromSlash(name))
	if err := os.MkdirAll(filepath.Dir(p), 0o750); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(p, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o640)
	if err != nil {
		return nil, err
	}
	s.f = f
	return f, nil
}

func (s *DirSink) closeFile() error {
	if s.f == nil {
		return nil
	}
	f := s.f
	s.f = nil
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// Close closes the last file.
func (s *DirSink) Close() error { return s.closeFile() }

// ZipSink writes an export as a zip archive into w.
type ZipSink struct {
	zw     *zip.Writer
	closer io.Closer
}

// NewZipSink writes a zip into w; Close finishes the zip and, if w is
// an io.Closer, closes it.
func NewZipSink(w io.Writer) *ZipSink {
	s := &ZipSink{zw: zip.NewWriter(w)}
	if c, ok := w.(io.Closer); ok {
		s.closer = c
	}
	return s
}

// Create starts the entry name.
func (s *ZipSink) Create(name string) (io.Writer, error) {
	return s.zw.CreateHeader(&zip.FileHeader{Name: name, Method: zip.Deflate, Modified: time.Now()})
}

// Close writes the zip's directory.
func (s *ZipSink) Close() error {
	err := s.zw.Close()
	if s.closer != nil {
		if f, ok := s.closer.(*os.File); ok && err == nil {
			err = f.Sync()
		}
		err = errors.Join(err, s.closer.Close())
	}
	return err
}
