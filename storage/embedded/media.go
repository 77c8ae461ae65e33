package embedded

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/wechat-relay/wechat-relay/relay"
)

// PutMedia stores m's content under its SHA-256 and links it to
// m.MessageID, in one transaction. Content already stored under that hash
// is kept, and a link already there is kept, so calling PutMedia again,
// or for another message with the same bytes, adds at most the new link.
//
// m.SHA256 may be empty (it is computed); if given, it must match Data:
// a content-addressed store cannot accept content under another name.
func (a *Archive) PutMedia(ctx context.Context, m relay.Media) error {
	if m.MessageID == "" {
		return errors.New("embedded: put media: no message id")
	}
	sum := sha256.Sum256(m.Data)
	hash := hex.EncodeToString(sum[:])
	if m.SHA256 != "" && !strings.EqualFold(m.SHA256, hash) {
		return fmt.Errorf("embedded: put media for message %s: SHA256 %s does not match the data (%s)", m.MessageID, m.SHA256, hash)
	}
	now := time.Now()
	fetched := m.FetchedAt
	if fetched.IsZero() {
		fetched = now
	}
	data := m.Data
	if data == nil {
		data = []byte{} // a nil []byte binds as NULL
	}
	err := a.write(ctx, func(tx *sql.Tx) error {
		var have bool
		if err := tx.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM media WHERE sha256 = ?)`, hash).Scan(&have); err != nil {
			return fmt.Errorf("looking it up: %w", err)
		}
		if !have {
			if _, err := tx.ExecContext(ctx,
				`INSERT INTO media (sha256, content_type, size, data, fetched_ms) VALUES (?, ?, ?, ?, ?)`,
				hash, m.ContentType, int64(len(data)), data, fetched.UnixMilli()); err != nil {
				return fmt.Errorf("storing %d bytes: %w", len(data), err)
			}
		}
		if _, err := tx.ExecContext(ctx,
			`INSERT INTO media_links (message_id, sha256, media_id, file_name, linked_ms) VALUES (?, ?, ?, ?, ?)
			ON CONFLICT (message_id, sha256) DO NOTHING`,
			m.MessageID, hash, m.MediaID, m.FileName, now.UnixMilli()); err != nil {
			return fmt.Errorf("linking it to message %s: %w", m.MessageID, err)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("embedded: put media %s: %w", hash, err)
	}
	return nil
}

// MissingMedia returns archived messages that carry media (Kind.HasMedia()
// and a MediaID), accepted after since, with no media linked yet: oldest
// first (by acceptance, then id), at most limit (limit <= 0: no limit).
func (a *Archive) MissingMedia(ctx context.Context, since time.Time, limit int) ([]relay.Message, error) {
	msgs, err := a.queryMessages(ctx, `SELECT `+messageColumns+` FROM messages AS m
		WHERE m.has_media = 1 AND m.accepted_ms > ?
		  AND NOT EXISTS (SELECT 1 FROM media_links AS l WHERE l.message_id = m.id)
		ORDER BY m.accepted_ms, m.id
		LIMIT ?`,
		since.UnixMilli(), sqlLimit(limit))
	if err != nil {
		return nil, fmt.Errorf("embedded: listing messages missing media since %s: %w", since.UTC().Format(time.RFC3339), err)
	}
	return msgs, nil
}
