package relay

// Role decides what an employee may see and do.
type Role string

// The roles. Agents see and answer their own conversations; supervisors
// see their teams' (or, with the all-teams grant, all) and manage them (transfer, resolve);
// compliance officers read all, search, read the audit log and review
// alerts, and never send nor manage; admins are supervisors who also
// change the directory and configuration.
//
// Sending is never a role's right: only the employee a conversation is
// assigned to may write to it, and conversations are assigned to agents
// only.
//
//	                      agent  supervisor  compliance  admin
//	read own / all convs  own    team (all)  all         all
//	live view of all      -      team (all)  yes         yes
//	transfer, resolve     own    team (all)  -           all
//	search, export        -      team (all)  yes         yes
//	audit log             -      -           yes         yes
//	alerts, review queue  -      yes (read)  yes         yes
//	legal holds           -      -           yes         yes
//	directory (admin)     -      -           -           yes
//
// A supervisor sees only the conversations of their teams' members, and
// so nothing in no team, unless granted all teams (Employee.AllTeams).
// Conversations nobody is known to hold are for compliance, admins and
// supervisors with the grant. Compliance and admins see all whatever
// their teams.
const (
	RoleAgent      Role = "agent"
	RoleSupervisor Role = "supervisor"
	RoleCompliance Role = "compliance"
	RoleAdmin      Role = "admin"
)

// Roles lists every role, least privileged first.
var Roles = []Role{RoleAgent, RoleSupervisor, RoleCompliance, RoleAdmin}

// Valid reports whether r is one of Roles.
func (r Role) Valid() bool {
	switch r {
	case RoleAgent, RoleSupervisor, RoleCompliance, RoleAdmin:
		return true
	}
	return false
}

// SeesAll reports whether the role reads conversations beyond its own
// (and so has each view written to the audit log): supervisors,
// compliance, admins. Team supervisors are narrowed further by
// DirectorySnapshot.Sees.
func (r Role) SeesAll() bool {
	return r == RoleSupervisor || r == RoleCompliance || r == RoleAdmin
}

// Manages reports whether the role transfers, resolves and reopens
// conversations beyond its own: supervisors and admins.
func (r Role) Manages() bool { return r == RoleSupervisor || r == RoleAdmin }

// ReadsAudit reports whether the role searches the audit log, reviews
// alerts and places legal holds: compliance and admins.
func (r Role) ReadsAudit() bool { return r == RoleCompliance || r == RoleAdmin }

// Configures reports whether the role changes the directory and
// configuration: admins.
func (r Role) Configures() bool { return r == RoleAdmin }
