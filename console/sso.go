package console

import (
	"errors"
	"fmt"
	"net/http"
	"slices"
	"sort"
	"strings"

	"github.com/wechat-relay/wechat-relay/relay"
)

// Single sign-on, the console's side: what an identity provider's
// SignIn does (the directory decides who may sign in; the provider only
// says who someone is, and what their groups grant), which ways of
// signing in the page offers, and ending a session at the provider too.
// The providers themselves live in their own packages (console/oidc).

// errPasswordSignInOff answers POST /api/login when Config.PasswordSignInOff.
const errPasswordSignInOff = "password sign-in is switched off for this console: sign in with SSO (your organisation's sign-in)"

// SSOStartPath is where a browser starts signing in through the provider
// named name.
func SSOStartPath(name string) string { return "/api/sso/" + name + "/login" }

// serveSignInOptions handles GET /api/sign-in, which needs no sign-in:
// whether the password form is offered, and the identity providers'
// buttons.
func (s *Server) serveSignInOptions(w http.ResponseWriter, r *http.Request) {
	type provider struct {
		Name string `json:"name"`
		URL  string `json:"url"`
	}
	providers := []provider{}
	if s.sessions != nil {
		for _, idp := range s.idps {
			providers = append(providers, provider{Name: idp.Name(), URL: SSOStartPath(idp.Name())})
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"password":  s.sessions != nil && !s.cfg.PasswordSignInOff,
		"providers": providers,
	})
}

// signInFunc is the SignInFunc handed to the identity provider via.
func (s *Server) signInFunc(auth *authenticator, via string) SignInFunc {
	return func(w http.ResponseWriter, r *http.Request, id Identity) error {
		if !auth.dir.Loaded() {
			return fmt.Errorf("%w: %w", ErrSignInUnavailable, errDirectoryNotLoaded)
		}
		have, ok := auth.dir.Snapshot().Employee(id.Employee)
		switch {
		case !ok:
			s.refuseSSO(r, via, id, "unknown employee")
			return ErrSignInUnknown
		case have.Disabled:
			s.refuseSSO(r, via, id, "disabled in the directory")
			return ErrSignInDisabled
		}
		if id.Grants != nil {
			if err := s.applyGrants(r, via, have, *id.Grants); err != nil {
				return err
			}
		}
		// As the directory stands now (the grants applied, or an admin's
		// change meanwhile): still enabled?
		emp := auth.employee(id.Employee)
		if emp == nil {
			s.refuseSSO(r, via, id, "disabled in the directory")
			return ErrSignInDisabled
		}
		detail := via
		if id.Detail != "" {
			detail += "; " + id.Detail
		}
		if _, err := s.startSession(w, r, emp, via, detail); err != nil {
			return fmt.Errorf("%w: %w", ErrSignInUnavailable, err)
		}
		return nil
	}
}

// refuseSSO logs and audits an identity provider's sign-in the
// directory refuses.
func (s *Server) refuseSSO(r *http.Request, via string, id Identity, why string) {
	s.log.Warn("single sign-on refused", "via", via, "id", id.Employee, "why", why, "detail", id.Detail, "remote", remoteAddr(r))
	// The id is the identity provider's claim, not something typed: it
	// is recorded as given.
	if err := s.record(r, &relay.Employee{ID: id.Employee}, AuditSignInFailed, "", "", via+": "+why+"; "+id.Detail); err != nil {
		s.log.Error("writing the audit trail of a refused single sign-on", "err", err)
	}
}

// applyGrants changes the directory entry have to what g grants, as an
// admin's change is made: checked, audited (sso_grant) and archived
// before it counts. Nothing to change: nothing written.
func (s *Server) applyGrants(r *http.Request, via string, have relay.Employee, g Grants) error {
	e := relay.Employee{ID: have.ID, Name: have.Name, Role: have.Role, Accounts: have.Accounts,
		Teams: slices.Clone(have.Teams), AllTeams: have.AllTeams, Disabled: have.Disabled}
	if g.Role != "" {
		e.Role = g.Role
		if e.Role != RoleSupervisor {
			e.AllTeams = false // a supervisor's grant only
		}
	}
	snap := s.dir.Snapshot()
	names := make([]string, 0, len(g.Teams))
	for t := range g.Teams {
		names = append(names, t)
	}
	sort.Strings(names)
	for _, t := range names {
		in := slices.Contains(e.Teams, t)
		switch {
		case g.Teams[t] && !in:
			if _, ok := snap.Team(t); !ok {
				s.log.Warn("single sign-on: the group mapping names a team the directory does not have; left out", "via", via, "team", t, "employee", e.ID)
				continue
			}
			e.Teams = append(e.Teams, t)
		case !g.Teams[t] && in:
			e.Teams = slices.DeleteFunc(e.Teams, func(x string) bool { return x == t })
		}
	}
	diff := employeeDiff(have, e)
	if diff == "saved unchanged" {
		return nil
	}
	emp := have
	audit := func(_ *relay.DirectorySnapshot, rec relay.DirectoryRecord) error {
		detail := fmt.Sprintf("%s groups [%s]: %s", via, strings.Join(g.Groups, " "), diff)
		return s.record(r, &emp, relay.AuditSSOGrant, "", relay.DirectoryAuditTarget(rec.Kind, rec.ID),
			relay.DirectoryAuditDetail(detail, rec))
	}
	_, err := s.dir.UpdateEmployee(r.Context(), "sso:"+via, e, have.Version, audit)
	switch {
	case err == nil:
		s.log.Info("single sign-on changed the directory", "via", via, "employee", e.ID, "change", diff)
		return nil
	case errors.Is(err, relay.ErrDirectoryInvalid):
		s.log.Warn("single sign-on: the directory refuses the groups' grants; sign-in refused", "via", via, "employee", e.ID, "change", diff, "err", err)
		return fmt.Errorf("%w: %w", ErrSignInGrants, err)
	default:
		s.log.Warn("single sign-on: changing the directory", "via", via, "employee", e.ID, "change", diff, "err", err)
		return fmt.Errorf("%w: %w", ErrSignInUnavailable, err)
	}
}

// endSessionURL is where a browser ends its session at the identity
// provider via, "" when it cannot (or via is not a provider).
func (s *Server) endSessionURL(via string) string {
	for _, idp := range s.idps {
		if se, ok := idp.(SessionEnder); ok && idp.Name() == via {
			return se.EndSessionURL()
		}
	}
	return ""
}
