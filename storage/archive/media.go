package archive

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/wechat-relay/wechat-relay/relay"
)

// linkSkew is how far a media link's day may precede the day of the
// message it links (clocks of two relay instances disagreeing). Links
// older than that are not consulted by MissingMedia, which keeps its
// NOT IN set to the recent links instead of every link ever written.
const linkSkew = 24 * time.Hour

// PutMedia stores m's content under its SHA-256 and links it to
// m.MessageID. The content is written only if that hash is not stored yet,
// and the link only if it is not there yet, so calling PutMedia again, or
// for another message with the same bytes, adds nothing but the new link.
//
// m.SHA256 may be empty (it is computed); if given, it must match Data:
// a content-addressed store cannot accept content under another name.
func (a *Archive) PutMedia(ctx context.Context, m relay.Media) error {
	if m.MessageID == "" {
		return errors.New("archive: put media: no message id")
	}
	sum := sha256.Sum256(m.Data)
	hash := hex.EncodeToString(sum[:])
	if m.SHA256 != "" && !strings.EqualFold(m.SHA256, hash) {
		return fmt.Errorf("archive: put media for message %s: SHA256 %s does not match the data (%s)", m.MessageID, m.SHA256, hash)
	}
	if len(m.Data) == 0 {
		// Stored all the same (an empty file is possible), but an empty
		// download more often means a fetcher bug, and storing it ends
		// the retries for this message: leave a trace.
		a.log.Warn("archive: storing empty media", "msg_id", m.MessageID, "media_id", m.MediaID)
	}
	now := time.Now()

	var have uint64
	if err := a.conn.QueryRow(ctx, `SELECT count() FROM media WHERE sha256 = ?`, hash).Scan(&have); err != nil {
		return fmt.Errorf("archive: put media %s: looking it up: %w", hash, err)
	}
	if have == 0 {
		fetched := m.FetchedAt
		if fetched.IsZero() {
			fetched = now
		}
		fetched = a.clampTime(fetched, m.MessageID, "fetched_at")
		data := m.Data
		if data == nil {
			data = []byte{}
		}
		if err := a.insertOne(ctx, `INSERT INTO media (sha256, content_type, size, data, fetched_at, day)`,
			hash, m.ContentType, uint64(len(data)), data, fetched, dayOf(fetched)); err != nil {
			return fmt.Errorf("archive: put media %s (%d bytes): %w", hash, len(m.Data), err)
		}
	}

	var linked uint64
	if err := a.conn.QueryRow(ctx, `SELECT count() FROM media_links WHERE message_id = ? AND sha256 = ?`,
		m.MessageID, hash).Scan(&linked); err != nil {
		return fmt.Errorf("archive: put media %s: looking up the link to %s: %w", hash, m.MessageID, err)
	}
	if linked == 0 {
		// linked_at is when the link was written, so a link is never
		// dated before the message it completes (see linkSkew).
		at := now.UTC().Truncate(time.Second)
		if err := a.insertOne(ctx, `INSERT INTO media_links (message_id, sha256, media_id, file_name, linked_at, day)`,
			m.MessageID, hash, m.MediaID, m.FileName, at, dayOf(at)); err != nil {
			return fmt.Errorf("archive: linking media %s to message %s: %w", hash, m.MessageID, err)
		}
	}
	return nil
}

// insertOne writes one row through a batch: an Exec of INSERT ... VALUES
// with bound values hangs against 18.16 over the native protocol.
func (a *Archive) insertOne(ctx context.Context, insert string, values ...any) error {
	batch, err := a.conn.PrepareBatch(ctx, insert)
	if err != nil {
		return fmt.Errorf("preparing batch: %w", err)
	}
	defer abortUnsent(batch)
	if err := batch.Append(values...); err != nil {
		return fmt.Errorf("appending row: %w", err)
	}
	if err := batch.Send(); err != nil {
		return fmt.Errorf("sending batch: %w", err)
	}
	return nil
}

// MissingMedia returns archived messages with a media id, accepted after
// since, that have no media link yet: oldest first (by acceptance), at
// most limit (limit <= 0: no limit). One message per id, as in Since.
//
// It scans the partitions from since's day on and the links of the same
// days (less linkSkew); callers pass a recent since (WeChat keeps
// temporary media for three days), which keeps both small.
func (a *Archive) MissingMedia(ctx context.Context, since time.Time, limit int) ([]relay.Message, error) {
	sinceMS := uint64(0)
	if ms := since.UnixMilli(); !since.IsZero() && ms > 0 {
		sinceMS = uint64(ms)
	}
	from := time.UnixMilli(int64(sinceMS))
	q := `SELECT ` + messageColumns + ` FROM (
		SELECT ` + messageColumns + ` FROM messages
		WHERE day >= toDate(?) AND accepted_ms > ? AND media_id != ''
		  AND id NOT IN (SELECT message_id FROM media_links WHERE day >= toDate(?))
		ORDER BY id, accepted_ms DESC
		LIMIT 1 BY id
	) ORDER BY accepted_ms, id`
	linksFrom := from.Add(-linkSkew)
	if linksFrom.Unix() < 0 {
		linksFrom = time.Unix(0, 0) // Date starts in 1970
	}
	args := []any{dateLiteral(from), sinceMS, dateLiteral(linksFrom)}
	if limit > 0 {
		q += ` LIMIT ?`
		args = append(args, limit)
	}
	msgs, err := a.queryMessages(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("archive: listing messages missing media since %s: %w", since.UTC().Format(time.RFC3339), err)
	}
	return msgs, nil
}
