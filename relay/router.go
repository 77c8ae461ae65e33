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
	cur, err := r.assignments.Get(ctx, m.Conv)
	if err != nil {
		return "", fmt.Errorf("looking up assignment of %s: %w", m.Conv, err)
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
	emp, err := r.assignments.SetIfAbsent(ctx, m.Conv, pick)
	if err != nil {
		return "", fmt.Errorf("assigning %s: %w", m.Conv, err)
	}
	return emp, nil
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
