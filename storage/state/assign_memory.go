package state

import (
	"context"
	"fmt"
	"sync"

	"github.com/wechat-relay/wechat-relay/relay"
)

var _ relay.Assignments = (*MemoryAssignments)(nil)

// MemoryAssignments is a relay.Assignments for a single process. It is
// lost on restart; routing then assigns conversations afresh.
type MemoryAssignments struct {
	mu sync.Mutex
	m  map[relay.ConversationID]string
}

// NewMemoryAssignments returns an empty table.
func NewMemoryAssignments() *MemoryAssignments {
	return &MemoryAssignments{m: make(map[relay.ConversationID]string)}
}

// Get returns the employee assigned to conv, "" if none.
func (a *MemoryAssignments) Get(ctx context.Context, conv relay.ConversationID) (string, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.m[conv], nil
}

// Set assigns conv to employee; an empty employee removes the assignment.
func (a *MemoryAssignments) Set(ctx context.Context, conv relay.ConversationID, employee string) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if employee == "" {
		delete(a.m, conv)
	} else {
		a.m[conv] = employee
	}
	return nil
}

// SetIfAbsent assigns conv to employee unless it is held, and returns the
// holder.
func (a *MemoryAssignments) SetIfAbsent(ctx context.Context, conv relay.ConversationID, employee string) (string, error) {
	if employee == "" {
		return "", fmt.Errorf("state: assign %s: empty employee", conv)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if cur, ok := a.m[conv]; ok {
		return cur, nil
	}
	a.m[conv] = employee
	return employee, nil
}
