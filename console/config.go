package console

import (
	"errors"
	"fmt"
	"strings"
	"time"
)

// Role decides what an employee may see.
type Role string

// The roles. Agents see their own conversations; supervisors see all.
const (
	RoleAgent      Role = "agent"
	RoleSupervisor Role = "supervisor"
)

// Employee is a person who signs in to the console.
type Employee struct {
	ID   string `yaml:"id"`
	Name string `yaml:"name"`
	Role Role   `yaml:"role"`
	// Accounts are the Official Accounts whose new clients may be
	// auto-assigned to this employee.
	Accounts []string `yaml:"accounts"`
	// Token authenticates API and WebSocket requests (Authorization:
	// Bearer, or the wr_token cookie). A secret: set it through the
	// environment, never in a committed file.
	Token string `yaml:"token"`
}

// Config configures the console. Zero values select the defaults in the
// comments.
type Config struct {
	Employees []Employee `yaml:"employees"`
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
	return c
}

// Validate reports every problem in the configuration at once.
func (c Config) Validate() error {
	var errs []error
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
		case RoleAgent, RoleSupervisor:
		default:
			errs = append(errs, fmt.Errorf("%s (%s): role %q is not one of agent, supervisor", where, e.ID, e.Role))
		}
		if len(e.Token) < 16 {
			errs = append(errs, fmt.Errorf("%s (%s): token must be at least 16 characters (set %s)", where, e.ID, TokenEnv(e.ID)))
		}
	}
	return errors.Join(errs...)
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
