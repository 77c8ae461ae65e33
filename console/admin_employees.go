package console

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/wechat-relay/wechat-relay/relay"
	"golang.org/x/crypto/bcrypt"
)

// The Admin section's changes to employees: create, update, and their
// credentials (admin.go has the routes and what every change shares).

type employeeBody struct {
	ID       string   `json:"id"`
	Name     string   `json:"name"`
	Role     Role     `json:"role"`
	Accounts []string `json:"accounts"`
	Teams    []string `json:"teams"`
	AllTeams bool     `json:"all_teams"`
	Disabled bool     `json:"disabled"`
	Password string   `json:"password"`
	Version  uint64   `json:"version"`
}

// serveCreateEmployee handles POST /api/admin/employees.
func (s *Server) serveCreateEmployee(w http.ResponseWriter, r *http.Request, emp *relay.Employee) {
	var b employeeBody
	if !decodeBody(w, r, &b, maxAdminBody, false) {
		return
	}
	e := relay.Employee{ID: b.ID, Name: b.Name, Role: b.Role, Accounts: b.Accounts, Teams: b.Teams, AllTeams: b.AllTeams, Disabled: b.Disabled}
	if b.Password != "" {
		hash, err := hashPassword(b.Password, s.cfg.PasswordCost)
		if err != nil {
			writeError(w, http.StatusBadRequest, err.Error())
			return
		}
		e.PasswordHash = hash
	}
	detail := fmt.Sprintf("created: name=%q role=%s teams=%v all_teams=%t accounts=%v disabled=%t password=%t",
		e.Name, e.Role, orEmpty(e.Teams), e.AllTeams, orEmpty(e.Accounts), e.Disabled, b.Password != "")
	got, err := s.dir.CreateEmployee(r.Context(), emp.ID, e, s.audited(r, emp, said(detail)))
	if err != nil {
		s.directoryError(w, err)
		return
	}
	writeJSON(w, http.StatusCreated, toAdminEmployee(got))
}

// serveUpdateEmployee handles PUT /api/admin/employees/{id}: name,
// role, accounts, teams, disabled. Credentials have their own routes.
func (s *Server) serveUpdateEmployee(w http.ResponseWriter, r *http.Request, emp *relay.Employee) {
	var b employeeBody
	if !decodeBody(w, r, &b, maxAdminBody, false) {
		return
	}
	id := r.PathValue("id")
	if b.ID != "" && b.ID != id {
		writeError(w, http.StatusBadRequest, "an employee's id cannot change")
		return
	}
	if b.Password != "" {
		writeError(w, http.StatusBadRequest, "set a password with POST /api/admin/employees/{id}/password")
		return
	}
	e := relay.Employee{ID: id, Name: b.Name, Role: b.Role, Accounts: b.Accounts, Teams: b.Teams, AllTeams: b.AllTeams, Disabled: b.Disabled}
	diff := func(before *relay.DirectorySnapshot, _ relay.DirectoryRecord) string {
		have, _ := before.Employee(id)
		return employeeDiff(have, e)
	}
	got, err := s.dir.UpdateEmployee(r.Context(), emp.ID, e, b.Version, s.audited(r, emp, diff))
	if err != nil {
		s.directoryError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, toAdminEmployee(got))
}

// employeeDiff says what a change does to an employee, for the audit log.
func employeeDiff(have, e relay.Employee) string {
	var parts []string
	add := func(field string, was, now any) {
		if fmt.Sprint(was) != fmt.Sprint(now) {
			parts = append(parts, fmt.Sprintf("%s %v→%v", field, was, now))
		}
	}
	add("name", strconv.Quote(have.Name), strconv.Quote(e.Name))
	add("role", have.Role, e.Role)
	add("teams", orEmpty(have.Teams), orEmpty(e.Teams))
	add("all_teams", have.AllTeams, e.AllTeams)
	add("accounts", orEmpty(have.Accounts), orEmpty(e.Accounts))
	add("disabled", have.Disabled, e.Disabled)
	if len(parts) == 0 {
		return "saved unchanged"
	}
	return strings.Join(parts, "; ")
}

// serveSetPassword handles POST /api/admin/employees/{id}/password.
func (s *Server) serveSetPassword(w http.ResponseWriter, r *http.Request, emp *relay.Employee) {
	var b struct {
		Password string `json:"password"`
		Version  uint64 `json:"version"`
	}
	if !decodeBody(w, r, &b, maxAdminBody, false) {
		return
	}
	hash, err := hashPassword(b.Password, s.cfg.PasswordCost)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	s.changeCredential(w, r, emp, "password set", func(e *relay.Employee) { e.PasswordHash = hash }, b.Version, "")
}

// serveNewToken handles POST /api/admin/employees/{id}/token: a new API
// token replaces the old one and is answered once; only its hash is kept.
func (s *Server) serveNewToken(w http.ResponseWriter, r *http.Request, emp *relay.Employee) {
	var b struct {
		Version uint64 `json:"version"`
	}
	if !decodeBody(w, r, &b, maxAdminBody, false) {
		return
	}
	raw := make([]byte, 24)
	rand.Read(raw)
	token := "wr_" + hex.EncodeToString(raw)
	sum := sha256.Sum256([]byte(token))
	s.changeCredential(w, r, emp, "new API token", func(e *relay.Employee) { e.TokenHash = hex.EncodeToString(sum[:]) }, b.Version, token)
}

// changeCredential sets a credential of the employee in the path and
// answers the employee (and token, when one was made).
func (s *Server) changeCredential(w http.ResponseWriter, r *http.Request, emp *relay.Employee, what string, set func(*relay.Employee), version uint64, token string) {
	id := r.PathValue("id")
	have, ok := s.dir.Snapshot().Employee(id)
	if !ok {
		writeError(w, http.StatusNotFound, "no employee "+strconv.Quote(id))
		return
	}
	e := relay.Employee{ID: id, Name: have.Name, Role: have.Role, Accounts: have.Accounts, Teams: have.Teams, AllTeams: have.AllTeams, Disabled: have.Disabled}
	set(&e)
	got, err := s.dir.UpdateEmployee(r.Context(), emp.ID, e, version, s.audited(r, emp, said(what)))
	if err != nil {
		s.directoryError(w, err)
		return
	}
	if token == "" {
		writeJSON(w, http.StatusOK, toAdminEmployee(got))
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"employee": toAdminEmployee(got), "token": token})
}

// hashPassword checks a new password and returns its bcrypt hash.
func hashPassword(pw string, cost int) (string, error) {
	switch n := utf8.RuneCountInString(pw); {
	case n < MinPasswordLen:
		return "", fmt.Errorf("the password must be at least %d characters", MinPasswordLen)
	case len(pw) > 72:
		return "", errors.New("the password must be at most 72 bytes (bcrypt ignores the rest)")
	}
	hash, err := bcrypt.GenerateFromPassword([]byte(pw), cost)
	if err != nil {
		return "", fmt.Errorf("hashing the password: %w", err)
	}
	return string(hash), nil
}
