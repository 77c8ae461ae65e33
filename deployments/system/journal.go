package system

import (
	"fmt"

	"github.com/wechat-relay/wechat-relay/console"
	"github.com/wechat-relay/wechat-relay/relay"
	"github.com/wechat-relay/wechat-relay/relay/journal"
)

// buildJournal sets up the journal worker when the configuration has a
// journal (journal.host): it takes turns with the other instances
// through the dedupe store (Redis, or memory with one instance) under
// the writer's id. It returns what the console shows admins, nil
// without a journal.
func (s *Relay) buildJournal(turns relay.Dedupe, writer string) (console.JournalStatus, error) {
	if !s.cfg.Journal.Enabled() {
		return nil, nil
	}
	w, err := journal.New(s.cfg.Journal, s.archive, turns, writer, s.log.With("component", "journal"), s.reg)
	if err != nil {
		return nil, fmt.Errorf("setting up the journal: %w", err)
	}
	s.journal = w
	return w, nil
}
