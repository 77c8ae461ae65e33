package spool

// Err returns nil while the spool accepts records, else why it does not:
// closed, or failed for good after a write or fsync error (the process
// must reopen it). A readiness check: an instance whose spool refuses
// everything must not be sent callbacks.
func (s *Spool) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.usableLocked()
}

// Broken is closed when a write or fsync failed and the spool refuses
// everything until it is reopened: the process should stop (and be
// restarted, which replays what reached the disk) rather than stay up
// refusing every callback.
func (s *Spool) Broken() <-chan struct{} { return s.broken }
