package relay

import (
	"context"
	"time"
)

// Archive is the append-only record of every message. The pipeline calls
// Insert before anything is delivered.
type Archive interface {
	// Insert commits msgs (all with Seq assigned) and returns only once
	// they are stored. Inserting an ID that is already archived must not
	// produce a second row.
	Insert(ctx context.Context, msgs []Message) error
	// Existing reports which of ids are archived, with their sequence.
	Existing(ctx context.Context, ids []string) (map[string]uint64, error)
	// Since returns up to limit messages of conv with Seq > after, in
	// sequence order.
	Since(ctx context.Context, conv ConversationID, after uint64, limit int) ([]Message, error)
	// MaxSeq returns the highest sequence archived for conv, 0 if none.
	MaxSeq(ctx context.Context, conv ConversationID) (uint64, error)
}

// Media is the content of a temporary media, fetched from WeChat and
// stored content-addressed.
type Media struct {
	SHA256      string // hex of the content hash; the storage key
	MessageID   string // the message that carried the media id
	MediaID     string
	ContentType string
	FileName    string
	Data        []byte
	FetchedAt   time.Time
}

// MediaStore keeps fetched media and knows which archived messages still
// lack theirs, so fetching survives restarts without a queue of its own.
type MediaStore interface {
	// PutMedia stores m and links it to m.MessageID. Idempotent.
	PutMedia(ctx context.Context, m Media) error
	// MissingMedia returns archived messages accepted after since whose
	// media has not been stored yet, oldest first, at most limit.
	MissingMedia(ctx context.Context, since time.Time, limit int) ([]Message, error)
}
