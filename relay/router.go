package relay

import (
	"context"
	"fmt"
	"hash/fnv"
	"slices"
	"strings"
)

// ScenePrefix starts the QR scene strings that bind a client to an
// employee: a client who scans the code of scene "emp:alice" is served
// by alice.
const ScenePrefix = "emp:"

// Router decides which employee serves a conversation. A client who
// scans an employee's QR code is bound to that employee; any other first
// contact is auto-assigned to one of the account's employees.
type Router struct {
	assignments Assignments
	// roster returns the employees eligible for auto-assignment of an
	// account's clients, in the same order on every instance.
	roster func(account string) []string
	// active reports whether an assigned employee still serves clients;
	// nil: everyone does.
	active func(employee string) bool
}

// NewRouter returns a router over the given assignments. employees maps
// an account id to the employees that may be auto-assigned its clients.
func NewRouter(a Assignments, employees map[string][]string) *Router {
	fixed := map[string][]string{}
	for acct, emps := range employees {
		fixed[acct] = slices.Clone(emps)
	}
	return &Router{assignments: a, roster: func(account string) []string { return fixed[account] }}
}

// NewDirectoryRouter returns a router that assigns new clients to the
// enabled agents the directory has for the account at the time
// (DirectorySnapshot.AutoAssign), and binds QR scans to them.
//
// A conversation held by someone who no longer serves clients — not in
// the directory, disabled, or no longer an agent — goes to one of the
// account's enabled agents with the client's next message, so no client
// waits on someone who left.
func NewDirectoryRouter(a Assignments, d *Directory) *Router {
	return &Router{
		assignments: a,
		roster:      func(account string) []string { return d.Snapshot().AutoAssign(account) },
		active: func(id string) bool {
			e, ok := d.Snapshot().Employee(id)
			return ok && !e.Disabled && e.Role == RoleAgent
		},
	}
}

// Route returns the employee serving m's conversation, assigning one if
// needed. It returns "" when the account has no employees.
//
// A transfer (Staff.Act) is the state change it records: it hands the
// conversation to its AttrTo here, in the archive writer, just before
// the message is archived, and is filed under that employee.
func (r *Router) Route(ctx context.Context, m Message) (string, error) {
	return r.route(ctx, m, nil)
}

// BulkAssignments is an Assignments store that reads many conversations'
// assignments in one round trip (Redis HMGET); conversations without one
// map to "" or are absent.
type BulkAssignments interface {
	GetMany(ctx context.Context, convs []ConversationID) (map[ConversationID]string, error)
}

// RouteBatch routes msgs in order, as Route would one by one, and
// returns each one's employee. When the store is BulkAssignments it reads
// the assignments of all their conversations at once, so that a batch
// costs one round trip instead of one per message.
func (r *Router) RouteBatch(ctx context.Context, msgs []Message) ([]string, error) {
	var known map[ConversationID]string
	if bulk, ok := r.assignments.(BulkAssignments); ok && len(msgs) > 1 {
		seen := map[ConversationID]bool{}
		var convs []ConversationID
		for _, m := range msgs {
			if !seen[m.Conv] {
				seen[m.Conv] = true
				convs = append(convs, m.Conv)
			}
		}
		got, err := bulk.GetMany(ctx, convs)
		if err != nil {
			return nil, fmt.Errorf("looking up the assignments of %d conversations: %w", len(convs), err)
		}
		known = make(map[ConversationID]string, len(convs))
		for _, c := range convs {
			known[c] = got[c]
		}
	}
	out := make([]string, len(msgs))
	for i, m := range msgs {
		emp, err := r.route(ctx, m, known)
		if err != nil {
			return nil, err
		}
		out[i] = emp
	}
	return out, nil
}

// route is Route with the assignments known already (nil: none), which
// it keeps up to date with what it assigns.
func (r *Router) route(ctx context.Context, m Message, known map[ConversationID]string) (emp string, err error) {
	if known != nil {
		defer func() {
			if err == nil && emp != "" {
				known[m.Conv] = emp
			}
		}()
	}
	if to := m.Attrs[AttrTo]; m.Direction == Internal && m.Kind == KindTransfer && to != "" {
		if err := r.assignments.Set(ctx, m.Conv, to); err != nil {
			return "", fmt.Errorf("transferring %s to %s: %w", m.Conv, to, err)
		}
		return to, nil
	}
	if emp := r.sceneEmployee(m); emp != "" {
		if err := r.assignments.Set(ctx, m.Conv, emp); err != nil {
			return "", fmt.Errorf("binding %s to %s from QR scene: %w", m.Conv, emp, err)
		}
		return emp, nil
	}
	cur, ok := known[m.Conv]
	if !ok {
		if cur, err = r.assignments.Get(ctx, m.Conv); err != nil {
			return "", fmt.Errorf("looking up assignment of %s: %w", m.Conv, err)
		}
	}
	if cur != "" && (r.active == nil || r.active(cur)) {
		return cur, nil
	}
	emps := r.roster(m.Account)
	if len(emps) == 0 {
		return "", nil
	}
	// A hash rather than round-robin: every instance, and every replay,
	// proposes the same employee for the same conversation.
	h := fnv.New32a()
	h.Write([]byte(m.Conv))
	pick := emps[int(h.Sum32()%uint32(len(emps)))]
	if cur != "" {
		// Held by someone who left: every instance picks the same agent.
		if err := r.assignments.Set(ctx, m.Conv, pick); err != nil {
			return "", fmt.Errorf("reassigning %s from %s, who no longer serves clients: %w", m.Conv, cur, err)
		}
		return pick, nil
	}
	held, err := r.assignments.SetIfAbsent(ctx, m.Conv, pick)
	if err != nil {
		return "", fmt.Errorf("assigning %s: %w", m.Conv, err)
	}
	return held, nil
}

// sceneEmployee returns the employee named by a subscribe or SCAN event
// from an employee's parametric QR code, if it is one of the account's.
func (r *Router) sceneEmployee(m Message) string {
	if m.Kind != KindEvent {
		return ""
	}
	var scene string
	switch m.Event {
	case "subscribe":
		scene = strings.TrimPrefix(m.EventKey, "qrscene_")
	case "SCAN":
		scene = m.EventKey
	default:
		return ""
	}
	emp, ok := strings.CutPrefix(scene, ScenePrefix)
	if !ok || !slices.Contains(r.roster(m.Account), emp) {
		return ""
	}
	return emp
}
