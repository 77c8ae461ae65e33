package system

import (
	"context"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"

	"github.com/wechat-relay/wechat-relay/configs"
	"github.com/wechat-relay/wechat-relay/storage/spool"
)

// A relay that cannot be built says why and closes what it had opened,
// rather than panicking on the way out.
func TestBuildFailureClosesWhatItOpened(t *testing.T) {
	cfg := configs.Demo()
	cfg.DataDir = t.TempDir()
	cfg.Pipeline.SealKeyFile = filepath.Join(t.TempDir(), "no-such-key.pem")
	cfg.Defaults()
	s, err := build(context.Background(), &cfg, slog.New(slog.NewTextHandler(io.Discard, nil)), "test")
	if err == nil || s != nil || !strings.Contains(err.Error(), "no-such-key.pem") {
		t.Fatalf("build with a missing seal key = %v, %v; want an error naming the file", s, err)
	}
	// The spool was closed: it opens again.
	sp, err := spool.Open(spool.Options{Dir: cfg.SpoolDir()})
	if err != nil {
		t.Fatalf("the spool was left open: %v", err)
	}
	sp.Close()
}
