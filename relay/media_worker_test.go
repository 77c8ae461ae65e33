package relay

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"sync"
	"testing"
	"time"
)

type fakeMediaStore struct {
	mu      sync.Mutex
	stored  []Media
	missing []Message
}

func (s *fakeMediaStore) PutMedia(_ context.Context, m Media) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stored = append(s.stored, m)
	return nil
}

func (s *fakeMediaStore) MissingMedia(context.Context, time.Time, int) ([]Message, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Message(nil), s.missing...), nil
}

func (s *fakeMediaStore) all() []Media {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Media(nil), s.stored...)
}

type fakeFetcher struct {
	mu       sync.Mutex
	failures map[string]int // media id → failures before success
	gone     map[string]bool
	calls    map[string]int
}

func (f *fakeFetcher) FetchMedia(_ context.Context, _, mediaID string) (Media, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls[mediaID]++
	if f.gone[mediaID] {
		return Media{}, ErrMediaGone
	}
	if f.failures[mediaID] > 0 {
		f.failures[mediaID]--
		return Media{}, errors.New("system busy")
	}
	return Media{Data: []byte("bytes of " + mediaID), ContentType: "image/jpeg"}, nil
}

func (f *fakeFetcher) callCount(id string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls[id]
}

func TestMediaWorker(t *testing.T) {
	store := &fakeMediaStore{missing: []Message{{ID: "m-scan", Account: "acct", Kind: KindVoice, MediaID: "voice1"}}}
	fetch := &fakeFetcher{failures: map[string]int{"img1": 2}, gone: map[string]bool{"old": true}, calls: map[string]int{}}
	w := NewMediaWorker(MediaConfig{ScanInterval: 20 * time.Millisecond}, store, fetch, nil)
	w.retryK = time.Millisecond
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- w.Run(ctx) }()
	defer func() { cancel(); <-done }()

	w.Enqueue(Message{ID: "m-img", Account: "acct", Kind: KindImage, MediaID: "img1"})
	w.Enqueue(Message{ID: "m-old", Account: "acct", Kind: KindImage, MediaID: "old"})

	deadline := time.Now().Add(5 * time.Second)
	for len(store.all()) < 2 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	got := map[string]Media{}
	for _, m := range store.all() {
		got[m.MessageID] = m
	}
	img, ok := got["m-img"]
	if !ok {
		t.Fatalf("image not stored after transient failures: %+v", store.all())
	}
	sum := sha256.Sum256([]byte("bytes of img1"))
	if img.SHA256 != hex.EncodeToString(sum[:]) || img.MediaID != "img1" || img.FetchedAt.IsZero() {
		t.Fatalf("stored media %+v", img)
	}
	if fetch.callCount("img1") != 3 {
		t.Fatalf("img1 fetched %d times, want 3 (two failures, one success)", fetch.callCount("img1"))
	}
	if _, ok := got["m-scan"]; !ok {
		t.Fatal("media found by the archive scan was not fetched")
	}
	if _, ok := got["m-old"]; ok {
		t.Fatal("stored media WeChat no longer has")
	}
	// Gone media is tried once, not again by later scans or enqueues.
	w.Enqueue(Message{ID: "m-old", Account: "acct", Kind: KindImage, MediaID: "old"})
	time.Sleep(50 * time.Millisecond)
	if n := fetch.callCount("old"); n != 1 {
		t.Fatalf("gone media fetched %d times", n)
	}
}
