package console

import (
	"net/http"

	"github.com/wechat-relay/wechat-relay/relay"
)

// serveEmployees handles GET /api/employees: who may be transferred to
// and who is who, from the current directory.
func (s *Server) serveEmployees(w http.ResponseWriter, r *http.Request, emp *relay.Employee) {
	type wireEmployee struct {
		ID       string   `json:"id"`
		Name     string   `json:"name"`
		Role     Role     `json:"role"`
		Teams    []string `json:"teams"`
		Disabled bool     `json:"disabled,omitempty"`
	}
	emps := s.dir.Snapshot().Employees
	out := make([]wireEmployee, len(emps))
	for i, e := range emps {
		out[i] = wireEmployee{ID: e.ID, Name: e.Name, Role: e.Role, Teams: orEmpty(e.Teams), Disabled: e.Disabled}
	}
	writeJSON(w, http.StatusOK, map[string]any{"employees": out})
}

// serveCanned handles GET /api/canned-replies.
func (s *Server) serveCanned(w http.ResponseWriter, r *http.Request, emp *relay.Employee) {
	replies := s.cfg.CannedReplies
	if replies == nil {
		replies = []CannedReply{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"replies": replies})
}

// serveTeams handles GET /api/teams: every team and its members.
func (s *Server) serveTeams(w http.ResponseWriter, r *http.Request, emp *relay.Employee) {
	type wireTeam struct {
		ID      string   `json:"id"`
		Name    string   `json:"name"`
		Members []string `json:"members"`
	}
	snap := s.dir.Snapshot()
	out := make([]wireTeam, len(snap.Teams))
	for i, t := range snap.Teams {
		out[i] = wireTeam{ID: t.ID, Name: t.Name, Members: orEmpty(snap.Members(t.ID))}
	}
	writeJSON(w, http.StatusOK, map[string]any{"teams": out})
}
