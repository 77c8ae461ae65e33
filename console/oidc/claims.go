package oidc

import (
	"fmt"
	"slices"
	"strings"

	"github.com/wechat-relay/wechat-relay/console"
)

// identity is the employee a verified ID token names, and what its
// groups grant; reason names a refusal.
func (p *Provider) identity(issuer, subject string, claims map[string]any) (id console.Identity, reason string, err error) {
	v, _ := claims[p.cfg.Claim].(string)
	if v == "" {
		return id, "claim", fmt.Errorf("the ID token of subject %q has no claim %q (is its scope asked for?)", subject, p.cfg.Claim)
	}
	if verified, ok := claims["email_verified"].(bool); ok && !verified && p.cfg.Claim == "email" {
		return id, "claim", fmt.Errorf("the email %q of subject %q is not verified", v, subject)
	}
	employee := v
	if p.cfg.Domain != "" {
		local, domain, ok := strings.Cut(v, "@")
		if !ok || !strings.EqualFold(domain, p.cfg.Domain) || local == "" {
			return id, "claim", fmt.Errorf("claim %q is %q, not an address at %s", p.cfg.Claim, v, p.cfg.Domain)
		}
		employee = local
	}
	id = console.Identity{
		Employee: employee,
		Detail:   fmt.Sprintf("issuer=%s subject=%s %s=%s", issuer, subject, p.cfg.Claim, v),
	}
	if len(p.cfg.Roles) == 0 && len(p.cfg.Teams) == 0 {
		return id, "", nil
	}
	groups := stringList(claims[p.cfg.GroupsClaim])
	g := console.Grants{Teams: map[string]bool{}, Groups: groups}
	if len(p.cfg.Roles) > 0 {
		for _, m := range p.cfg.Roles {
			if slices.Contains(groups, m.Group) {
				g.Role = m.Role
				break
			}
		}
		if g.Role == "" {
			return id, "no_role", fmt.Errorf("%s is in none of the groups that give a role here (claim %q: %q)", employee, p.cfg.GroupsClaim, groups)
		}
	}
	for _, m := range p.cfg.Teams {
		g.Teams[m.Team] = g.Teams[m.Team] || slices.Contains(groups, m.Group)
	}
	id.Grants = &g
	return id, "", nil
}

// stringList reads a claim that lists strings; a single string is a
// list of one (some providers send one group so).
func stringList(v any) []string {
	switch v := v.(type) {
	case string:
		return []string{v}
	case []any:
		out := make([]string, 0, len(v))
		for _, x := range v {
			if s, ok := x.(string); ok {
				out = append(out, s)
			}
		}
		return out
	}
	return nil
}
