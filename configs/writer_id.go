package configs

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/wechat-relay/wechat-relay/relay"
)

// writerIDFile holds, in the spool directory, the id this instance seals
// the archive under (relay.Config.Writer, see relay/seal.go).
const writerIDFile = "writer-id"

// WriterID returns the writer id kept in dir, the spool directory,
// creating it on the first start: the host name (what of it is allowed)
// and 8 random hex digits. The spool directory belongs to one instance
// (its lock keeps a second process out) and survives restarts, which is
// what a writer id must do: a restarted instance finds the batch a crash
// left unsealed under its own id, and no two instances share one.
func WriterID(dir string) (string, error) {
	path := filepath.Join(dir, writerIDFile)
	b, err := os.ReadFile(path)
	switch {
	case err == nil:
		id := strings.TrimSpace(string(b))
		if !relay.ValidWriter(id) {
			return "", fmt.Errorf("writer id in %s: %q is not a valid writer id (letters, digits, '.', '_', '-'; at most 64)", path, id)
		}
		return id, nil
	case !errors.Is(err, fs.ErrNotExist):
		return "", fmt.Errorf("reading the writer id: %w", err)
	}
	id := newWriterID()
	// Written whole or not at all: a temporary file, synced, renamed,
	// and the directory synced.
	tmp, err := os.CreateTemp(dir, writerIDFile+".*")
	if err != nil {
		return "", fmt.Errorf("creating the writer id: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.WriteString(id + "\n"); err != nil {
		tmp.Close()
		return "", fmt.Errorf("writing the writer id: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return "", fmt.Errorf("writing the writer id: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return "", fmt.Errorf("writing the writer id: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return "", fmt.Errorf("writing the writer id: %w", err)
	}
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
	return id, nil
}

// newWriterID is the host name up to its first dot, cut to what a
// writer id allows, and 8 random hex digits.
func newWriterID() string {
	host, _ := os.Hostname()
	host, _, _ = strings.Cut(host, ".")
	var b strings.Builder
	for _, r := range host {
		if b.Len() >= 40 {
			break
		}
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' {
			b.WriteRune(r)
		}
	}
	name := strings.Trim(b.String(), "-_")
	if name == "" {
		name = "relay"
	}
	suffix := make([]byte, 4)
	_, _ = rand.Read(suffix)
	return name + "-" + hex.EncodeToString(suffix)
}
