//go:build !(linux || darwin || freebsd || netbsd || openbsd || dragonfly)

package spool

// dirLock is a no-op where flock is not available: the operator must
// make sure one directory belongs to one spool.
type dirLock struct{}

func lockDir(string) (*dirLock, error) { return &dirLock{}, nil }

func (*dirLock) release() error { return nil }
