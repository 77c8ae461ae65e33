package relay

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"time"
)

// Archive is the append-only record of every message. The pipeline calls
// Insert before anything is delivered.
type Archive interface {
	// Insert commits msgs (all with Seq assigned) and returns only once
	// they are stored. Inserting an ID that is already archived must not
	// produce a second row.
	Insert(ctx context.Context, msgs []Message) error
	// Existing reports which of msgs are archived (by ID), with their
	// sequence. Implementations may restrict the search to the messages'
	// conversations and to a day either side of their AcceptedAt, since
	// a replay keeps its AcceptedAt and WeChat retries within seconds:
	// that keeps the lookup off a scan of every id ever archived.
	Existing(ctx context.Context, msgs []Message) (map[string]uint64, error)
	// Since returns up to limit messages of conv with Seq > after, in
	// sequence order.
	Since(ctx context.Context, conv ConversationID, after uint64, limit int) ([]Message, error)
	// MaxSeq returns the highest sequence archived for conv, 0 if none.
	MaxSeq(ctx context.Context, conv ConversationID) (uint64, error)
	// The pipeline seals every batch it inserts (see seal.go). Insert
	// stores each message's Hash and BatchID with it.
	SealStore
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

// ContentHash is the storage key of media content: hex SHA-256.
func ContentHash(data []byte) string {
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:])
}

// EncodeAttrs is the stored form of Message.Attrs in every archive
// backend: a JSON object with sorted keys, so the same map is always
// stored as the same bytes; "{}" when empty.
func EncodeAttrs(attrs map[string]string) (string, error) {
	if len(attrs) == 0 {
		return "{}", nil
	}
	b, err := json.Marshal(attrs) // encoding/json sorts map keys
	if err != nil {
		return "", fmt.Errorf("encoding attrs: %w", err)
	}
	return string(b), nil
}

// DecodeAttrs reads what EncodeAttrs wrote; empty attrs come back nil.
func DecodeAttrs(s string) (map[string]string, error) {
	if s == "" || s == "{}" {
		return nil, nil
	}
	var attrs map[string]string
	if err := json.Unmarshal([]byte(s), &attrs); err != nil {
		return nil, fmt.Errorf("decoding attrs: %w", err)
	}
	return attrs, nil
}
