package export

import (
	"archive/zip"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"
)

// Sink receives the files of an export. Create returns a writer valid
// until the next Create or Close.
type Sink interface {
	Create(name string) (io.Writer, error)
	Close() error
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
