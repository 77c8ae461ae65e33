package export

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"hash"
	"io"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/wechat-relay/wechat-relay/relay"
)

// Source is the archive as an export reads it. Both archives in
// storage implement it.
type Source interface {
	relay.Searcher
	relay.MediaReader
	// MessageEvents returns every delivery event of the messages, one
	// per event id, ordered by message id then At.
	MessageEvents(ctx context.Context, messageIDs []string) ([]relay.DeliveryEvent, error)
	// SealsByID returns the stored seals with these ids, one per id;
	// unknown ids are absent.
	SealsByID(ctx context.Context, ids []string) ([]relay.Seal, error)
}

// Request says what to export and records who asked.
type Request struct {
	Query   relay.SearchQuery
	By      string    // who exports (an employee id, an operator's name)
	Version string    // the relay's version, for the manifest
	Now     time.Time // when; zero: time.Now()
}

// Progress is how far an export is.
type Progress struct {
	Phase      string `json:"phase"` // "rows", "media", "files", "done"
	Rows       int    `json:"rows"`
	RowsTotal  int    `json:"rows_total"`
	Media      int    `json:"media"`
	MediaTotal int    `json:"media_total"`
}

// pageSize is the page size an export reads with.
const pageSize = relay.MaxSearchLimit

// Run writes the messages req.Query selects into sink and closes it.
// progress, if not nil, is called as the export goes (from the calling
// goroutine). The manifest is returned too.
func Run(ctx context.Context, src Source, req Request, sink Sink, progress func(Progress)) (man *Manifest, err error) {
	defer func() {
		if cerr := sink.Close(); cerr != nil && err == nil {
			err = fmt.Errorf("relay: export: closing the output: %w", cerr)
		}
	}()
	if progress == nil {
		progress = func(Progress) {}
	}
	now := req.Now
	if now.IsZero() {
		now = time.Now()
	}
	q := req.Query
	q.Cursor, q.Offset, q.Limit = "", 0, pageSize
	if err := q.Validate(); err != nil {
		return nil, err
	}
	x := &run{ctx: ctx, src: src, sink: sink, progress: progress, prog: Progress{Phase: "rows"}}

	msgs, err := x.readMessages(q)
	if err != nil {
		return nil, err
	}
	events, err := x.readEvents(msgs)
	if err != nil {
		return nil, err
	}
	profiles, err := x.readProfiles(msgs)
	if err != nil {
		return nil, err
	}
	x.man = &Manifest{
		Format: Format, ExportedBy: req.By, ExportedAt: now.UTC(),
		Query: req.Query, QueryText: req.Query.String(), Version: req.Version,
		Files: []File{}, Seals: []Seal{}, Unsealed: []string{},
	}
	media, err := x.writeMedia(msgs)
	if err != nil {
		return nil, err
	}
	if err := x.addSeals(msgs, events); err != nil {
		return nil, err
	}
	x.phase("files")
	if err := x.writeMessages(msgs, media); err != nil {
		return nil, err
	}
	if err := x.writeEvents(events); err != nil {
		return nil, err
	}
	if err := x.writeProfiles(profiles); err != nil {
		return nil, err
	}
	x.count(msgs, events)
	if err := x.put("transcript.html", func(w io.Writer) error {
		return writeTranscript(w, x.man, msgs, events, media, latestProfiles(profiles))
	}); err != nil {
		return nil, err
	}
	if err := x.writeManifest(); err != nil {
		return nil, err
	}
	x.phase("done")
	return x.man, nil
}

// run is one export under way.
type run struct {
	ctx      context.Context
	src      Source
	sink     Sink
	man      *Manifest
	prog     Progress
	progress func(Progress)
}

func (x *run) phase(p string) {
	x.prog.Phase = p
	x.progress(x.prog)
}

// readMessages reads every message q selects, page by page, ordered by
// conversation, then sequence, then id.
func (x *run) readMessages(q relay.SearchQuery) ([]relay.Message, error) {
	var msgs []relay.Message
	for first := true; ; first = false {
		q.WithTotal = first
		page, err := x.src.Search(x.ctx, q)
		if err != nil {
			return nil, fmt.Errorf("relay: export: reading messages: %w", err)
		}
		if first {
			x.prog.RowsTotal = page.Total
		}
		msgs = append(msgs, page.Messages...)
		x.prog.Rows = len(msgs)
		x.prog.RowsTotal = max(x.prog.RowsTotal, x.prog.Rows)
		x.progress(x.prog)
		if page.Next == "" {
			break
		}
		q.Cursor = page.Next
	}
	slices.SortFunc(msgs, func(a, b relay.Message) int {
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
	return msgs, nil
}

// readEvents reads the delivery events of the outbound messages.
func (x *run) readEvents(msgs []relay.Message) ([]relay.DeliveryEvent, error) {
	var outIDs []string
	for _, m := range msgs {
		if m.Direction == relay.Outbound {
			outIDs = append(outIDs, m.ID)
		}
	}
	if len(outIDs) == 0 {
		return nil, nil
	}
	events, err := x.src.MessageEvents(x.ctx, outIDs)
	if err != nil {
		return nil, fmt.Errorf("relay: export: reading delivery events: %w", err)
	}
	return events, nil
}

// put writes the file name through write and lists it, with its hash
// and size, in the manifest.
func (x *run) put(name string, write func(w io.Writer) error) error {
	w, err := x.sink.Create(name)
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
	x.man.Files = append(x.man.Files, File{Name: name, SHA256: hex.EncodeToString(hw.h.Sum(nil)), Size: hw.n})
	return nil
}

// mediaFiles says, by message id, where each message's media went.
type mediaFiles struct {
	file        map[string]string // file name in the export
	sum         map[string]string // sha256 of the content
	contentType map[string]string
}

// writeMedia writes the archived media of msgs, one file per content.
func (x *run) writeMedia(msgs []relay.Message) (mediaFiles, error) {
	mf := mediaFiles{file: map[string]string{}, sum: map[string]string{}, contentType: map[string]string{}}
	var withMedia []int
	for i, m := range msgs {
		if m.MediaID != "" || m.Kind.HasMedia() {
			withMedia = append(withMedia, i)
		}
	}
	x.prog.MediaTotal = len(withMedia)
	x.phase("media")
	written := map[string]string{} // sha256 -> file name
	for _, i := range withMedia {
		if err := x.ctx.Err(); err != nil {
			return mf, err
		}
		m := msgs[i]
		_, md, ok, err := x.src.MessageMedia(x.ctx, m.ID)
		if err != nil {
			return mf, fmt.Errorf("relay: export: reading the media of %s: %w", m.ID, err)
		}
		x.prog.Media++
		if !ok {
			x.man.Counts.MediaMissing++
			x.progress(x.prog)
			continue
		}
		sum := relay.ContentHash(md.Data)
		name, done := written[sum]
		if !done {
			name = "media/" + sum + mediaExt(md, m.Kind)
			data := md.Data
			if err := x.put(name, func(w io.Writer) error { _, err := w.Write(data); return err }); err != nil {
				return mf, err
			}
			written[sum] = name
			x.man.Counts.Media++
		}
		mf.file[m.ID], mf.sum[m.ID], mf.contentType[m.ID] = name, sum, md.ContentType
		x.progress(x.prog)
	}
	return mf, nil
}

// addSeals lists in the manifest the seals covering the rows, and the
// rows no stored seal covers.
func (x *run) addSeals(msgs []relay.Message, events []relay.DeliveryEvent) error {
	man := x.man
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
	if len(batchRows) == 0 {
		return nil
	}
	batchIDs := make([]string, 0, len(batchRows))
	for id := range batchRows {
		batchIDs = append(batchIDs, id)
	}
	sort.Strings(batchIDs)
	seals, err := x.src.SealsByID(x.ctx, batchIDs)
	if err != nil {
		return fmt.Errorf("relay: export: reading seals: %w", err)
	}
	found := map[string]bool{}
	for _, s := range seals {
		if found[s.ID] {
			continue
		}
		found[s.ID] = true
		man.Seals = append(man.Seals, Seal{
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
	return nil
}

// writeMessages writes messages.jsonl and messages.csv.
func (x *run) writeMessages(msgs []relay.Message, media mediaFiles) error {
	rows := make([]Message, len(msgs))
	for i, m := range msgs {
		rows[i] = newMessage(m, media.file[m.ID], media.sum[m.ID])
	}
	if err := x.put("messages.jsonl", func(w io.Writer) error { return writeJSONLines(w, rows) }); err != nil {
		return err
	}
	return x.put("messages.csv", func(w io.Writer) error { return writeMessagesCSV(w, rows) })
}

// writeEvents writes events.jsonl and events.csv.
func (x *run) writeEvents(events []relay.DeliveryEvent) error {
	rows := make([]Event, len(events))
	for i, e := range events {
		rows[i] = newEvent(e)
	}
	if err := x.put("events.jsonl", func(w io.Writer) error { return writeJSONLines(w, rows) }); err != nil {
		return err
	}
	return x.put("events.csv", func(w io.Writer) error { return writeEventsCSV(w, rows) })
}

// count fills in the manifest's counts of rows, conversations and seals.
func (x *run) count(msgs []relay.Message, events []relay.DeliveryEvent) {
	convs := map[relay.ConversationID]bool{}
	for _, m := range msgs {
		convs[m.Conv] = true
	}
	c := &x.man.Counts
	c.Messages, c.Conversations, c.Events, c.Seals = len(msgs), len(convs), len(events), len(x.man.Seals)
}

// writeManifest writes manifest.json, the one file not listed in it.
func (x *run) writeManifest() error {
	w, err := x.sink.Create("manifest.json")
	if err != nil {
		return fmt.Errorf("relay: export: creating manifest.json: %w", err)
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	if err := enc.Encode(x.man); err != nil {
		return fmt.Errorf("relay: export: writing manifest.json: %w", err)
	}
	return nil
}

// hashWriter hashes and counts what goes through it.
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
