package console

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/wechat-relay/wechat-relay/relay"
)

// Role decides what an employee may see (relay/roles.go says what each
// may do).
type Role = relay.Role

// The roles.
const (
	RoleAgent      = relay.RoleAgent
	RoleSupervisor = relay.RoleSupervisor
	RoleCompliance = relay.RoleCompliance
	RoleAdmin      = relay.RoleAdmin
)

// Employee is a person who signs in to the console.
type Employee struct {
	ID   string `yaml:"id"`
	Name string `yaml:"name"`
	Role Role   `yaml:"role"`
	// Accounts are the Official Accounts whose new clients may be
	// auto-assigned to this employee.
	Accounts []string `yaml:"accounts"`
	// Teams the employee belongs to (ids of console.teams); a supervisor
	// in teams sees only their members' conversations.
	Teams []string `yaml:"teams"`
	// AllTeams grants a supervisor every conversation, whatever their
	// teams. Without it a supervisor sees their teams' members'
	// conversations only, and nothing in no team. Supervisors only.
	AllTeams bool `yaml:"all_teams"`
	// Token authenticates API clients (Authorization: Bearer) and, for
	// reads and the WebSocket only, the wr_token cookie. A secret: set
	// it through the environment, never in a committed file. Optional
	// when PasswordHash is set.
	Token string `yaml:"token"`
	// PasswordHash is the bcrypt hash of the employee's console
	// password (wechat-relay hash-password makes one), for signing in
	// from a browser. Optional when Token is set. From the environment
	// (PasswordHashEnv) or the configuration file: a bcrypt hash is not
	// the password, but keep it out of public repositories all the same.
	PasswordHash string `yaml:"password_hash"`
}

// Team is a group of employees a supervisor may be limited to.
type Team struct {
	ID   string `yaml:"id"`
	Name string `yaml:"name"`
}

// CannedReply is a prepared answer employees insert into the composer.
type CannedReply struct {
	ID    string `yaml:"id" json:"id"`
	Title string `yaml:"title" json:"title"`
	Text  string `yaml:"text" json:"text"`
}

// Config configures the console. Zero values select the defaults in the
// comments.
type Config struct {
	// Employees and Teams are the directory the relay starts from; admins
	// change it at run time in the console (changes are archived and win
	// over this list).
	Employees []Employee `yaml:"employees"`
	Teams     []Team     `yaml:"teams"`
	// AllowedOrigins lists the origins (scheme://host[:port]) allowed to
	// open the WebSocket from a browser. Empty allows only the console's
	// own host.
	AllowedOrigins []string `yaml:"allowed_origins"`
	// SendQueue is the per-connection queue length (256); a connection
	// that falls this far behind is disconnected.
	SendQueue int `yaml:"send_queue"`
	// WriteTimeout bounds one frame write (10s).
	WriteTimeout time.Duration `yaml:"write_timeout"`
	// PingInterval is how often the server pings (25s); a connection
	// that has not answered within two intervals is closed.
	PingInterval time.Duration `yaml:"ping_interval"`
	// MaxFrameBytes caps a frame from the browser (64 KiB).
	MaxFrameBytes int64 `yaml:"max_frame_bytes"`
	// CannedReplies are offered to every employee.
	CannedReplies []CannedReply `yaml:"canned_replies"`
	// SessionIdle signs a browser out after this long without a request
	// (12h). Sessions also end SessionMaxAge after sign-in (7 days).
	SessionIdle   time.Duration `yaml:"session_idle"`
	SessionMaxAge time.Duration `yaml:"session_max_age"`
	// LoginAttempts failed sign-ins within LoginWindow lock the employee
	// id for LoginLockout (5, 15m, 15m).
	LoginAttempts int           `yaml:"login_attempts"`
	LoginWindow   time.Duration `yaml:"login_window"`
	LoginLockout  time.Duration `yaml:"login_lockout"`
	// LoginAddrAttempts failed sign-ins from one client address within
	// LoginWindow lock sign-ins from it for LoginLockout (30): random
	// employee ids do not get round the per-id lockout. LoginGlobalAttempts
	// failed sign-ins from anywhere lock every password sign-in for
	// LoginGlobalLockout (300, 1m): a spray from many addresses is
	// bounded too. Both are shared by every instance, as the per-id one.
	LoginAddrAttempts   int           `yaml:"login_addr_attempts"`
	LoginGlobalAttempts int           `yaml:"login_global_attempts"`
	LoginGlobalLockout  time.Duration `yaml:"login_global_lockout"`
	// TrustedProxies are the addresses or CIDR ranges of the proxies in
	// front of the relay whose X-Forwarded-For names the client (for the
	// per-address sign-in throttle). Empty: the peer address is the
	// client's — behind a proxy, every client then shares its address.
	TrustedProxies []string `yaml:"trusted_proxies"`
	// SocketRecheck is how often an open socket checks that the
	// credential it was opened with still signs its employee in (5s): a
	// sign-out, an expired session or a changed password or token on any
	// instance closes it within this long.
	SocketRecheck time.Duration `yaml:"socket_recheck"`
	// PasswordCost is the bcrypt cost of passwords set in the Admin
	// section (12).
	PasswordCost int `yaml:"password_cost"`
	// PasswordSignInOff refuses POST /api/login: employees sign in
	// through an identity provider (single sign-on) only; API tokens
	// still work.
	PasswordSignInOff bool `yaml:"-"`
	// SingleSignOn says an identity provider is configured: employees
	// then need neither a password nor a token in the configuration.
	SingleSignOn bool `yaml:"-"`
	// InboxHorizon bounds the inbox to conversations with a message in
	// this long (90 days); older ones stay in the archive.
	InboxHorizon time.Duration `yaml:"inbox_horizon"`
}

func (c Config) withDefaults() Config {
	if c.SendQueue <= 0 {
		c.SendQueue = 256
	}
	if c.WriteTimeout <= 0 {
		c.WriteTimeout = 10 * time.Second
	}
	if c.PingInterval <= 0 {
		c.PingInterval = 25 * time.Second
	}
	if c.MaxFrameBytes <= 0 {
		c.MaxFrameBytes = 64 << 10
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&c.SessionIdle, 12*time.Hour)
	def(&c.SessionMaxAge, 7*24*time.Hour)
	def(&c.LoginWindow, 15*time.Minute)
	def(&c.LoginLockout, 15*time.Minute)
	def(&c.InboxHorizon, 90*24*time.Hour)
	if c.LoginAttempts <= 0 {
		c.LoginAttempts = 5
	}
	if c.LoginAddrAttempts <= 0 {
		c.LoginAddrAttempts = 30
	}
	if c.LoginGlobalAttempts <= 0 {
		c.LoginGlobalAttempts = 300
	}
	def(&c.LoginGlobalLockout, time.Minute)
	def(&c.SocketRecheck, 5*time.Second)
	if c.PasswordCost <= 0 {
		c.PasswordCost = 12
	}
	return c
}

// Validate reports every problem in the configuration at once.
func (c Config) Validate() error {
	var errs []error
	if _, err := parseProxies(c.TrustedProxies); err != nil {
		errs = append(errs, err)
	}
	if c.PasswordSignInOff && !c.SingleSignOn {
		errs = append(errs, errors.New("password sign-in is switched off and no identity provider is configured: nobody could sign in to the web console"))
	}
	seen := map[string]bool{}
	for i, e := range c.Employees {
		where := fmt.Sprintf("console.employees[%d]", i)
		if e.ID == "" {
			errs = append(errs, fmt.Errorf("%s: id is required", where))
		}
		if seen[e.ID] {
			errs = append(errs, fmt.Errorf("%s: duplicate id %q", where, e.ID))
		}
		seen[e.ID] = true
		switch e.Role {
		case RoleAgent, RoleSupervisor, RoleCompliance, RoleAdmin:
		default:
			errs = append(errs, fmt.Errorf("%s (%s): role %q is not one of agent, supervisor, compliance, admin", where, e.ID, e.Role))
		}
		switch {
		case e.Token == "" && e.PasswordHash == "" && !c.SingleSignOn:
			errs = append(errs, fmt.Errorf("%s (%s): needs a password hash (set %s; `wechat-relay hash-password` makes one) or a token (set %s)",
				where, e.ID, PasswordHashEnv(e.ID), TokenEnv(e.ID)))
		case e.Token != "" && len(e.Token) < 16:
			errs = append(errs, fmt.Errorf("%s (%s): token must be at least 16 characters (set %s)", where, e.ID, TokenEnv(e.ID)))
		}
		if e.PasswordHash != "" {
			if _, err := bcrypt.Cost([]byte(e.PasswordHash)); err != nil {
				errs = append(errs, fmt.Errorf("%s (%s): password_hash is not a bcrypt hash (%v); make one with `wechat-relay hash-password`", where, e.ID, err))
			}
		}
		if len(e.ID) > 60 {
			errs = append(errs, fmt.Errorf("%s (%s): id longer than 60 characters (it goes into QR scene strings, at most 64)", where, e.ID))
		}
	}
	teams := map[string]bool{}
	for i, t := range c.Teams {
		where := fmt.Sprintf("console.teams[%d]", i)
		switch {
		case !relay.ValidDirectoryID(t.ID):
			errs = append(errs, fmt.Errorf("%s: id %q must be 1-60 letters, digits, '.', '_' or '-', starting with a letter or digit", where, t.ID))
		case teams[t.ID]:
			errs = append(errs, fmt.Errorf("%s: duplicate id %q", where, t.ID))
		}
		teams[t.ID] = true
	}
	for i, e := range c.Employees {
		for _, t := range e.Teams {
			if !teams[t] {
				errs = append(errs, fmt.Errorf("console.employees[%d] (%s): team %q is not in console.teams", i, e.ID, t))
			}
		}
		if e.AllTeams && e.Role != RoleSupervisor {
			errs = append(errs, fmt.Errorf("console.employees[%d] (%s): all_teams is a supervisor's grant, not a %s's", i, e.ID, e.Role))
		}
	}
	seenReply := map[string]bool{}
	for i, r := range c.CannedReplies {
		where := fmt.Sprintf("console.canned_replies[%d]", i)
		switch {
		case r.ID == "":
			errs = append(errs, fmt.Errorf("%s: id is required", where))
		case seenReply[r.ID]:
			errs = append(errs, fmt.Errorf("%s: duplicate id %q", where, r.ID))
		}
		seenReply[r.ID] = true
		if r.Text == "" {
			errs = append(errs, fmt.Errorf("%s (%s): text is required", where, r.ID))
		}
	}
	return errors.Join(errs...)
}

// Seed is the directory this configuration gives, for the accounts
// served. Tokens are kept as their SHA-256 only.
func (c Config) Seed(accounts []relay.AccountInfo) relay.DirectorySeed {
	seed := relay.DirectorySeed{Accounts: accounts}
	for _, e := range c.Employees {
		var tokenHash string
		if e.Token != "" {
			sum := sha256.Sum256([]byte(e.Token))
			tokenHash = hex.EncodeToString(sum[:])
		}
		seed.Employees = append(seed.Employees, relay.Employee{
			ID: e.ID, Name: e.Name, Role: e.Role, Accounts: e.Accounts, Teams: e.Teams, AllTeams: e.AllTeams,
			PasswordHash: e.PasswordHash, TokenHash: tokenHash,
		})
	}
	for _, t := range c.Teams {
		seed.Teams = append(seed.Teams, relay.Team{ID: t.ID, Name: t.Name})
	}
	return seed
}

// PasswordHashEnv names the environment variable that carries the bcrypt
// password hash of the employee with the given id:
// WR_CONSOLE_PASSWORD_HASH_ and the id as in TokenEnv.
func PasswordHashEnv(id string) string {
	return strings.Replace(TokenEnv(id), "WR_CONSOLE_TOKEN_", "WR_CONSOLE_PASSWORD_HASH_", 1)
}

// TokenEnv names the environment variable that carries the token of the
// employee with the given id: WR_CONSOLE_TOKEN_ and the id in upper case,
// other characters than letters and digits as underscores.
func TokenEnv(id string) string {
	return "WR_CONSOLE_TOKEN_" + strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z':
			return r - 'a' + 'A'
		case r >= 'A' && r <= 'Z', r >= '0' && r <= '9':
			return r
		}
		return '_'
	}, id)
}
