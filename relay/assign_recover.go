package relay

import (
	"context"
	"fmt"
	"log/slog"
)

// AssignmentHistory is what the archive tells of a conversation's past
// owners: its messages, each filed under the employee who held the
// conversation when it was archived, and its transfers (Archive).
type AssignmentHistory interface {
	MaxSeq(ctx context.Context, conv ConversationID) (uint64, error)
	Since(ctx context.Context, conv ConversationID, after uint64, limit int) ([]Message, error)
}

// recoverWindow is how many of a conversation's newest messages are read
// for its owner when the assignment store has none.
const recoverWindow = 100

// RecoveredAssignments is an Assignments store that never lets lost state
// pass for "nobody's": when the store has no assignment for a
// conversation the archive has messages of (Redis flushed or restarted
// empty, or a restart with assignments in memory), it rebuilds it from
// the archive — the newest transfer's new assignee, or the employee the
// newest message was filed under — and puts it back in the store, before
// answering. Routing then keeps the client with that employee instead of
// picking one by hash, and the console's access rules see the owner
// instead of nobody. A conversation whose owner the archive does not
// establish either stays nobody's: seen by compliance, admins and
// supervisors granted all teams only (DirectorySnapshot.Sees).
type RecoveredAssignments struct {
	store   Assignments
	archive AssignmentHistory
	log     *slog.Logger
}

var (
	_ Assignments     = (*RecoveredAssignments)(nil)
	_ BulkAssignments = (*RecoveredAssignments)(nil)
)

// NewRecoveredAssignments returns store, rebuilt from archive where it
// has lost an assignment. log may be nil.
func NewRecoveredAssignments(store Assignments, archive AssignmentHistory, log *slog.Logger) *RecoveredAssignments {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &RecoveredAssignments{store: store, archive: archive, log: log}
}

// Get returns the employee assigned to conv, rebuilt from the archive
// when the store has none; "" when neither knows one.
func (a *RecoveredAssignments) Get(ctx context.Context, conv ConversationID) (string, error) {
	emp, err := a.store.Get(ctx, conv)
	if err != nil || emp != "" {
		return emp, err
	}
	return a.recover(ctx, conv)
}

// GetMany is Get for many conversations, in one round trip to the store
// when it is BulkAssignments; those it has none for are rebuilt one by
// one.
func (a *RecoveredAssignments) GetMany(ctx context.Context, convs []ConversationID) (map[ConversationID]string, error) {
	out := make(map[ConversationID]string, len(convs))
	if bulk, ok := a.store.(BulkAssignments); ok {
		got, err := bulk.GetMany(ctx, convs)
		if err != nil {
			return nil, err
		}
		for c, emp := range got {
			out[c] = emp
		}
	} else {
		for _, c := range convs {
			emp, err := a.store.Get(ctx, c)
			if err != nil {
				return nil, err
			}
			out[c] = emp
		}
	}
	for _, c := range convs {
		if out[c] != "" {
			continue
		}
		emp, err := a.recover(ctx, c)
		if err != nil {
			return nil, err
		}
		out[c] = emp
	}
	return out, nil
}

// Set assigns conv to employee.
func (a *RecoveredAssignments) Set(ctx context.Context, conv ConversationID, employee string) error {
	return a.store.Set(ctx, conv, employee)
}

// SetIfAbsent assigns conv to employee unless it is held — in the store,
// or, when the store lost it, in the archive — and returns the holder.
func (a *RecoveredAssignments) SetIfAbsent(ctx context.Context, conv ConversationID, employee string) (string, error) {
	if held, err := a.Get(ctx, conv); err != nil || held != "" {
		return held, err
	}
	return a.store.SetIfAbsent(ctx, conv, employee)
}

// recover reads conv's owner from the archive and, when there is one,
// puts it back in the store (unless someone assigned it meanwhile) and
// returns the holder. An archive that cannot be read is an error: the
// caller must not go on as if nobody held the conversation.
func (a *RecoveredAssignments) recover(ctx context.Context, conv ConversationID) (string, error) {
	top, err := a.archive.MaxSeq(ctx, conv)
	if err != nil {
		return "", fmt.Errorf("reading the archive for the owner of %s, whose assignment is missing: %w", conv, err)
	}
	if top == 0 {
		return "", nil // a new conversation: nothing was lost
	}
	msgs, err := a.archive.Since(ctx, conv, top-min(top, recoverWindow), recoverWindow)
	if err != nil {
		return "", fmt.Errorf("reading the archive for the owner of %s, whose assignment is missing: %w", conv, err)
	}
	owner := archivedOwner(msgs)
	if owner == "" {
		return "", nil
	}
	held, err := a.store.SetIfAbsent(ctx, conv, owner)
	if err != nil {
		return "", fmt.Errorf("putting back the assignment of %s to %s: %w", conv, owner, err)
	}
	a.log.Warn("assignment missing from the store; rebuilt from the archive", "conv", conv, "employee", held)
	return held, nil
}

// archivedOwner returns who held the conversation after msgs (in
// sequence order): the new assignee of the newest transfer, or the
// employee the newest message was filed under, whichever comes last; ""
// when none says.
func archivedOwner(msgs []Message) string {
	for i := len(msgs) - 1; i >= 0; i-- {
		m := msgs[i]
		if to := m.Attrs[AttrTo]; m.Direction == Internal && m.Kind == KindTransfer && to != "" {
			return to
		}
		if m.Employee != "" {
			return m.Employee
		}
	}
	return ""
}
