package console

import (
	"context"
	"net/http"

	"github.com/wechat-relay/wechat-relay/relay"
)

// Assignments tells who serves a conversation.
type Assignments interface {
	Get(ctx context.Context, conv relay.ConversationID) (string, error)
}

// access decides who may read, write and manage a conversation, from the
// current directory and assignments. The Server asks it before every
// answer about a conversation, the Hub before every live frame and
// resume: REST and the WebSocket keep the same rules because they share
// it.
type access struct {
	dir    *relay.Directory
	assign Assignments
}

// mayRead reports whether emp may read conv: agents the conversations
// assigned to them; compliance, admins and supervisors granted all teams
// all; other supervisors their teams' members' (relay.DirectorySnapshot.Sees).
func (a *access) mayRead(ctx context.Context, emp *relay.Employee, conv relay.ConversationID) (bool, error) {
	if emp.Role.SeesAll() && !emp.TeamScoped() {
		return true, nil
	}
	owner, err := a.assign.Get(ctx, conv)
	if err != nil {
		return false, err
	}
	return a.sees(emp, owner), nil
}

// mayManage reports whether emp may transfer, resolve or reopen conv:
// supervisors and admins what they may read, and the employee it is
// assigned to.
func (a *access) mayManage(ctx context.Context, emp *relay.Employee, conv relay.ConversationID) (bool, error) {
	if emp.Role.Manages() {
		return a.mayRead(ctx, emp, conv)
	}
	return a.mayWrite(ctx, emp, conv)
}

// mayWrite reports whether emp may write to conv: only the employee it
// is assigned to. Supervisors watch read-only.
func (a *access) mayWrite(ctx context.Context, emp *relay.Employee, conv relay.ConversationID) (bool, error) {
	owner, err := a.assign.Get(ctx, conv)
	if err != nil {
		return false, err
	}
	return owner == emp.ID, nil
}

// sees reports whether emp may read what owner holds ("" for nobody).
func (a *access) sees(emp *relay.Employee, owner string) bool {
	return a.dir.Snapshot().Sees(*emp, owner)
}

// authorizeRead answers 403 (or 503) unless emp may read conv, and
// reports whether the request may go on.
func (a *access) authorizeRead(w http.ResponseWriter, r *http.Request, emp *relay.Employee, conv relay.ConversationID) bool {
	return authorize(w, r, emp, conv, a.mayRead, "this conversation is not assigned to you")
}

// authorizeWrite answers 403 (or 503) unless emp may write to conv.
func (a *access) authorizeWrite(w http.ResponseWriter, r *http.Request, emp *relay.Employee, conv relay.ConversationID) bool {
	return authorize(w, r, emp, conv, a.mayWrite, "only the employee this conversation is assigned to may write in it")
}

// authorizeManage answers 403 (or 503) unless emp may manage conv.
func (a *access) authorizeManage(w http.ResponseWriter, r *http.Request, emp *relay.Employee, conv relay.ConversationID) bool {
	return authorize(w, r, emp, conv, a.mayManage, "only the employee this conversation is assigned to, or a supervisor, may do this")
}

func authorize(w http.ResponseWriter, r *http.Request, emp *relay.Employee, conv relay.ConversationID,
	may func(context.Context, *relay.Employee, relay.ConversationID) (bool, error), refusal string) bool {
	ok, err := may(r.Context(), emp, conv)
	switch {
	case err != nil:
		writeError(w, http.StatusServiceUnavailable, "cannot check access right now")
		return false
	case !ok:
		writeError(w, http.StatusForbidden, refusal)
		return false
	}
	return true
}
