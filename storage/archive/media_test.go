package archive

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"testing"
	"time"

	"github.com/wechat-relay/wechat-relay/relay"
)

func mediaMessage(conv relay.ConversationID, seq uint64, accepted time.Time, mediaID string) relay.Message {
	m := testMessage(conv, seq, accepted)
	m.Kind = relay.KindImage
	m.Text = ""
	m.MediaID = mediaID
	m.Attrs = map[string]string{"pic_url": "http://mmbiz.qpic.cn/" + mediaID}
	return m
}

func TestPutMediaContentAddressed(t *testing.T) {
	t.Parallel()
	a := openTest(t)
	ctx := testCtx(t)
	conv := relay.Conversation("acc", "o_media")
	now := time.Now()
	img := []byte("\x89PNG\r\n\x1a\n\x00\x02 not really an image \xff")
	sum := sha256.Sum256(img)
	hash := hex.EncodeToString(sum[:])

	m1 := relay.Media{MessageID: "in:acc:1", MediaID: "mid1", ContentType: "image/png", FileName: "a.png", Data: img, FetchedAt: now}
	m2 := relay.Media{SHA256: strings.ToUpper(hash), MessageID: "in:acc:2", MediaID: "mid2", ContentType: "image/png", Data: img}
	for i, m := range []relay.Media{m1, m1, m2, m2, m1} {
		if err := a.PutMedia(ctx, m); err != nil {
			t.Fatalf("PutMedia #%d: %v", i, err)
		}
	}
	if n := count(t, a, `SELECT count() FROM media`); n != 1 {
		t.Errorf("media rows = %d, want 1 (same bytes twice)", n)
	}
	if n := count(t, a, `SELECT count() FROM media_links`); n != 2 {
		t.Errorf("media_links rows = %d, want 2", n)
	}
	var (
		gotHash, ctype string
		size           uint64
		data           []byte
	)
	if err := a.conn.QueryRow(ctx, `SELECT sha256, content_type, size, data FROM media`).Scan(&gotHash, &ctype, &size, &data); err != nil {
		t.Fatal(err)
	}
	if gotHash != hash || ctype != "image/png" || size != uint64(len(img)) || string(data) != string(img) {
		t.Errorf("media row = %s %s %d %q; want %s image/png %d %q", gotHash, ctype, size, data, hash, len(img), img)
	}
	var fileName, mediaID string
	if err := a.conn.QueryRow(ctx, `SELECT file_name, media_id FROM media_links WHERE message_id = 'in:acc:1'`).Scan(&fileName, &mediaID); err != nil {
		t.Fatal(err)
	}
	if fileName != "a.png" || mediaID != "mid1" {
		t.Errorf("link = %q %q", fileName, mediaID)
	}

	// A wrong hash is refused: the store is content-addressed.
	bad := m1
	bad.SHA256 = strings.Repeat("0", 64)
	if err := a.PutMedia(ctx, bad); err == nil {
		t.Error("PutMedia with a mismatched SHA256 succeeded")
	}
	if err := a.PutMedia(ctx, relay.Media{Data: img}); err == nil {
		t.Error("PutMedia without a message id succeeded")
	}
	_ = conv
}

func TestMissingMedia(t *testing.T) {
	t.Parallel()
	a := openTest(t)
	ctx := testCtx(t)
	conv := relay.Conversation("acc", "o_missing")
	now := time.Now().Truncate(time.Millisecond)

	if got, err := a.MissingMedia(ctx, time.Time{}, 10); err != nil || len(got) != 0 {
		t.Fatalf("MissingMedia(empty archive) = %v, %v", ids(got), err)
	}

	old := mediaMessage(conv, 1, now.Add(-96*time.Hour), "m_old") // before since
	text := testMessage(conv, 2, now.Add(-3*time.Hour))           // no media
	img1 := mediaMessage(conv, 3, now.Add(-2*time.Hour), "m_img1")
	voice := mediaMessage(conv, 4, now.Add(-time.Hour), "m_voice")
	voice.Kind = relay.KindVoice
	img2 := mediaMessage(conv, 5, now.Add(-time.Minute), "m_img2")
	// Inserted newest first, and twice (a replay): results are oldest
	// first, once each.
	batch := []relay.Message{img2, voice, img1, text, old}
	for range 2 {
		if err := a.Insert(ctx, batch); err != nil {
			t.Fatalf("Insert: %v", err)
		}
	}
	since := now.Add(-72 * time.Hour)

	got, err := a.MissingMedia(ctx, since, 10)
	if err != nil {
		t.Fatalf("MissingMedia: %v", err)
	}
	sameMessages(t, "before PutMedia", got, []relay.Message{img1, voice, img2})
	got, err = a.MissingMedia(ctx, since, 2)
	if err != nil {
		t.Fatalf("MissingMedia: %v", err)
	}
	sameMessages(t, "limit 2", got, []relay.Message{img1, voice})
	got, err = a.MissingMedia(ctx, time.Time{}, 0)
	if err != nil {
		t.Fatalf("MissingMedia: %v", err)
	}
	sameMessages(t, "since the beginning", got, []relay.Message{old, img1, voice, img2})

	for _, m := range []relay.Message{img1, img2} {
		if err := a.PutMedia(ctx, relay.Media{MessageID: m.ID, MediaID: m.MediaID, ContentType: "image/jpeg", Data: []byte("jpeg " + m.MediaID), FetchedAt: now}); err != nil {
			t.Fatalf("PutMedia: %v", err)
		}
	}
	got, err = a.MissingMedia(ctx, since, 10)
	if err != nil {
		t.Fatalf("MissingMedia: %v", err)
	}
	sameMessages(t, "after PutMedia", got, []relay.Message{voice})

	if err := a.PutMedia(ctx, relay.Media{MessageID: voice.ID, MediaID: voice.MediaID, ContentType: "audio/amr", Data: []byte("#!AMR\n")}); err != nil {
		t.Fatalf("PutMedia: %v", err)
	}
	got, err = a.MissingMedia(ctx, since, 10)
	if err != nil || len(got) != 0 {
		t.Errorf("MissingMedia after all fetched = %v, %v; want none", ids(got), err)
	}
}
