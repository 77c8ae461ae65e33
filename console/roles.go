package console

// What each role may do. Sending is never a role's right: only the
// employee a conversation is assigned to may write to it (mayWrite), and
// conversations are assigned to agents only.
//
//	                      agent  supervisor  compliance  admin
//	read own / all convs  own    all         all         all
//	live view of all      -      yes         yes         yes
//	transfer, resolve     own    all         -           all
//	search, export        -      yes         yes         yes
//	audit log             -      -           yes         yes
//	alerts, review queue  -      yes (read)  yes         yes
//	legal holds           -      -           yes         yes
//	configuration         -      -           -           yes

// SeesAll reports whether the role reads every conversation (and so has
// each view written to the audit log): supervisors, compliance, admins.
func (r Role) SeesAll() bool {
	return r == RoleSupervisor || r == RoleCompliance || r == RoleAdmin
}

// Manages reports whether the role transfers, resolves and reopens any
// conversation: supervisors and admins.
func (r Role) Manages() bool { return r == RoleSupervisor || r == RoleAdmin }

// ReadsAudit reports whether the role searches the audit log, reviews
// alerts and places legal holds: compliance and admins.
func (r Role) ReadsAudit() bool { return r == RoleCompliance || r == RoleAdmin }

// Configures reports whether the role changes configuration: admins.
func (r Role) Configures() bool { return r == RoleAdmin }
