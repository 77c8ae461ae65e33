package console

import (
	"context"
	"errors"
	"net/http"
	"strconv"

	"github.com/wechat-relay/wechat-relay/relay"
)

// Client profiles (relay/profile.go): what employees know of a client
// the Official Account does not tell them.
//
//	GET    /api/clients/{account}/{openid}/profile          the current profile (version 0: none yet)
//	PUT    /api/clients/{account}/{openid}/profile          {"name","remark","tags","note","version"}: a new version
//	GET    /api/clients/{account}/{openid}/profile/history  every version, newest first, with what each changed
//	GET    /api/tags/{account}                              the account's tag vocabulary
//	POST   /api/tags/{account}                              {"tag"}: add a tag (supervisors, admins)
//	DELETE /api/tags/{account}/{tag}                        remove a tag (supervisors, admins)
//
// A profile is read and changed by whoever may read the client's
// conversation (access.mayRead: the agent it is assigned to, the
// supervisors who see that agent, admins); compliance officers read it
// only. Every change is archived as a new signed version after its audit
// record (client_profile, client_tags); a supervisor's, compliance
// officer's or admin's view is audited like a conversation's.

// Audit actions of profile views (changes use relay.AuditClientProfile
// and relay.AuditClientTags).
const (
	AuditViewProfile        = "view_profile"         // GET .../profile
	AuditViewProfileHistory = "view_profile_history" // GET .../profile/history
)

// WireProfile is what the inbox and search results show of a client's
// profile.
type WireProfile struct {
	Name   string   `json:"name,omitempty"`
	Remark string   `json:"remark,omitempty"`
	Tags   []string `json:"tags,omitempty"`
}

// wireProfile is p for a list, nil when p says nothing.
func wireProfile(p relay.ClientProfile) *WireProfile {
	if p.Version == 0 || (p.Name == "" && p.Remark == "" && len(p.Tags) == 0) {
		return nil
	}
	return &WireProfile{Name: p.Name, Remark: p.Remark, Tags: p.Tags}
}

// profileVersion is one version of a profile in the history: the
// version, and what it changed from the one before.
type profileVersion struct {
	relay.ClientProfile
	Change string `json:"change"`
}

// routeProfiles adds the profile API to Handler's routes (with
// Deps.Profiles).
func (s *Server) routeProfiles(route func(pattern string, allowed func(Role) bool, serve func(http.ResponseWriter, *http.Request, *relay.Employee))) {
	if s.profiles == nil {
		return
	}
	editsProfiles := func(r Role) bool { return r != RoleCompliance }
	route("GET /api/clients/{account}/{openid}/profile", nil, s.serveProfile)
	route("PUT /api/clients/{account}/{openid}/profile", editsProfiles, s.servePutProfile)
	route("GET /api/clients/{account}/{openid}/profile/history", nil, s.serveProfileHistory)
	route("GET /api/tags/{account}", nil, s.serveTags)
	route("POST /api/tags/{account}", Role.Manages, s.serveAddTag)
	route("DELETE /api/tags/{account}/{tag}", Role.Manages, s.serveRemoveTag)
}

// profileClient reads the client of a profile route and checks that emp
// may read their conversation; when not, it has answered.
func (s *Server) profileClient(w http.ResponseWriter, r *http.Request, emp *relay.Employee) (account, openid string, ok bool) {
	account, openid = r.PathValue("account"), r.PathValue("openid")
	if !s.knownAccount(w, account) {
		return "", "", false
	}
	if openid == "" {
		writeError(w, http.StatusBadRequest, "openid is required")
		return "", "", false
	}
	return account, openid, s.authorizeRead(w, r, emp, relay.Conversation(account, openid))
}

// knownAccount answers 404 unless account is one of the directory's.
func (s *Server) knownAccount(w http.ResponseWriter, account string) bool {
	if _, ok := s.dir.Snapshot().Account(account); !ok {
		writeError(w, http.StatusNotFound, "no account "+strconv.Quote(account))
		return false
	}
	return true
}

func (s *Server) serveProfile(w http.ResponseWriter, r *http.Request, emp *relay.Employee) {
	account, openid, ok := s.profileClient(w, r, emp)
	if !ok || !s.auditView(w, r, emp, AuditViewProfile, relay.Conversation(account, openid), openid) {
		return
	}
	p, err := s.profiles.Get(r.Context(), account, openid)
	if err != nil {
		s.log.Warn("reading a client profile", "conv", relay.Conversation(account, openid), "err", err)
		writeError(w, http.StatusServiceUnavailable, "archive unavailable")
		return
	}
	writeJSON(w, http.StatusOK, p)
}

func (s *Server) servePutProfile(w http.ResponseWriter, r *http.Request, emp *relay.Employee) {
	var body struct {
		Name    string   `json:"name"`
		Remark  string   `json:"remark"`
		Tags    []string `json:"tags"`
		Note    string   `json:"note"`
		Version *uint64  `json:"version"`
	}
	if !decodeBody(w, r, &body, 32<<10, false) {
		return
	}
	if body.Version == nil {
		writeError(w, http.StatusBadRequest, "version is required: the version of the profile this edits (0 for none)")
		return
	}
	account, openid, ok := s.profileClient(w, r, emp)
	if !ok {
		return
	}
	p := relay.ClientProfile{Account: account, OpenID: openid, Name: body.Name, Remark: body.Remark, Tags: body.Tags,
		Note: body.Note, By: emp.ID, At: s.now()}
	audit := &changeAudit{s: s, r: r, emp: emp, action: relay.AuditClientProfile, conv: relay.Conversation(account, openid), target: openid}
	saved, err := s.profiles.Save(r.Context(), p, *body.Version, func(before *relay.ClientProfile, after relay.ClientProfile) error {
		return audit.record(relay.ProfileAuditDetail(relay.ProfileChange(before, after), after))
	})
	switch {
	case errors.Is(err, relay.ErrProfileInvalid):
		writeError(w, http.StatusBadRequest, err.Error())
	case errors.Is(err, relay.ErrProfileConflict):
		writeError(w, http.StatusConflict, err.Error())
	case err != nil:
		audit.refuse(w, "client profile", err)
	default:
		writeJSON(w, http.StatusOK, saved)
	}
}

// changeAudit writes the audit record of a change of a signed record
// (record, called by the relay once the version is sealed) and remembers
// whether it did: a change that failed before was refused by the audit
// trail, one that failed after by the archive.
type changeAudit struct {
	s       *Server
	r       *http.Request
	emp     *relay.Employee
	action  string
	conv    relay.ConversationID
	target  string
	written bool
}

func (a *changeAudit) record(detail string) error {
	if err := a.s.record(a.r, a.emp, a.action, a.conv, a.target, detail); err != nil {
		return err
	}
	a.written = true
	return nil
}

// refuse answers a change of what that failed with err: 503, saying
// whether the audit trail or the archive failed.
func (a *changeAudit) refuse(w http.ResponseWriter, what string, err error) {
	if !a.written {
		a.s.log.Error("writing the audit trail of a "+what+"; refused", "employee", a.emp.ID, "err", err)
		writeError(w, http.StatusServiceUnavailable, "the audit trail cannot be written right now, so this cannot be done")
		return
	}
	a.s.log.Warn("archiving a "+what, "employee", a.emp.ID, "err", err)
	writeError(w, http.StatusServiceUnavailable, "the "+what+" could not be archived; try again")
}

func (s *Server) serveProfileHistory(w http.ResponseWriter, r *http.Request, emp *relay.Employee) {
	account, openid, ok := s.profileClient(w, r, emp)
	if !ok || !s.auditView(w, r, emp, AuditViewProfileHistory, relay.Conversation(account, openid), openid) {
		return
	}
	hist, err := s.profiles.History(r.Context(), account, openid)
	if err != nil {
		s.log.Warn("reading a client profile's history", "conv", relay.Conversation(account, openid), "err", err)
		writeError(w, http.StatusServiceUnavailable, "archive unavailable")
		return
	}
	out := make([]profileVersion, 0, len(hist))
	var before *relay.ClientProfile
	for i := range hist {
		out = append(out, profileVersion{ClientProfile: hist[i], Change: relay.ProfileChange(before, hist[i])})
		if hist[i].Refused == "" {
			before = &hist[i]
		}
	}
	for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
		out[i], out[j] = out[j], out[i]
	}
	writeJSON(w, http.StatusOK, map[string]any{"versions": out})
}

func (s *Server) serveTags(w http.ResponseWriter, r *http.Request, emp *relay.Employee) {
	account := r.PathValue("account")
	if !s.knownAccount(w, account) {
		return
	}
	ts, err := s.profiles.Tags(r.Context(), account)
	if err != nil {
		s.log.Warn("reading an account's tags", "account", account, "err", err)
		writeError(w, http.StatusServiceUnavailable, "archive unavailable")
		return
	}
	writeJSON(w, http.StatusOK, ts)
}

func (s *Server) serveAddTag(w http.ResponseWriter, r *http.Request, emp *relay.Employee) {
	var body struct {
		Tag string `json:"tag"`
	}
	if !decodeBody(w, r, &body, 4<<10, false) {
		return
	}
	if err := relay.ValidateTag(body.Tag); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	s.changeTags(w, r, emp, "added "+strconv.Quote(body.Tag), func(ctx context.Context, account string, audit func(relay.TagSet) error) (relay.TagSet, error) {
		return s.profiles.AddTag(ctx, account, body.Tag, emp.ID, s.now(), audit)
	})
}

func (s *Server) serveRemoveTag(w http.ResponseWriter, r *http.Request, emp *relay.Employee) {
	tag := r.PathValue("tag")
	s.changeTags(w, r, emp, "removed "+strconv.Quote(tag), func(ctx context.Context, account string, audit func(relay.TagSet) error) (relay.TagSet, error) {
		return s.profiles.RemoveTag(ctx, account, tag, emp.ID, s.now(), audit)
	})
}

// changeTags changes the vocabulary of the route's account by change,
// whose client_tags audit record says what.
func (s *Server) changeTags(w http.ResponseWriter, r *http.Request, emp *relay.Employee, what string,
	change func(ctx context.Context, account string, audit func(relay.TagSet) error) (relay.TagSet, error)) {
	account := r.PathValue("account")
	if !s.knownAccount(w, account) {
		return
	}
	audit := &changeAudit{s: s, r: r, emp: emp, action: relay.AuditClientTags, target: account}
	ts, err := change(r.Context(), account, func(t relay.TagSet) error { return audit.record(relay.TagSetAuditDetail(what, t)) })
	switch {
	case errors.Is(err, relay.ErrTagInvalid):
		writeError(w, http.StatusBadRequest, err.Error())
	case errors.Is(err, relay.ErrTagNotFound):
		writeError(w, http.StatusNotFound, err.Error())
	case err != nil:
		audit.refuse(w, "tag list", err)
	default:
		writeJSON(w, http.StatusOK, ts)
	}
}

// clientProfiles returns the profiles of convs for a list (the inbox,
// search results); an archive that cannot be read leaves them out.
func (s *Server) clientProfiles(ctx context.Context, convs []relay.ConversationID) map[relay.ConversationID]*WireProfile {
	out := map[relay.ConversationID]*WireProfile{}
	if s.profiles == nil || len(convs) == 0 {
		return out
	}
	cur, err := s.profiles.Current(ctx, relay.ProfileQuery{Convs: convs})
	if err != nil {
		s.log.Warn("reading client profiles for a list", "err", err)
		return out
	}
	for c, p := range cur {
		if wp := wireProfile(p); wp != nil {
			out[c] = wp
		}
	}
	return out
}
