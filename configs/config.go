package configs

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/wechat-relay/wechat-relay/console"
	"github.com/wechat-relay/wechat-relay/gateway"
	"github.com/wechat-relay/wechat-relay/relay"
	"github.com/wechat-relay/wechat-relay/relay/journal"
)

// Config is the whole configuration of one relay process: the YAML file
// (see configs/relay.example.yaml, which documents every key), then
// WR_* environment overrides, then secrets, which only ever come from the
// environment or from files named by *_FILE variables.
type Config struct {
	// Listen is the address of the HTTP server: WeChat callbacks under
	// /wechat/, the console under /api/, /metrics, /healthz, /readyz.
	Listen string `yaml:"listen"`
	// DataDir holds the spool and, in embedded mode, the archive.
	DataDir string `yaml:"data_dir"`
	Log     struct {
		Level  string `yaml:"level"`  // debug, info, warn, error
		Format string `yaml:"format"` // json or text
	} `yaml:"log"`
	Storage struct {
		// ClickHouse: the production archive. Empty Addr selects the
		// embedded archive (SQLite in DataDir), for trials only.
		ClickHouse struct {
			Addr     string `yaml:"addr"`
			Database string `yaml:"database"`
			Username string `yaml:"username"`
			Password string `yaml:"-"` // WR_CLICKHOUSE_PASSWORD
			// Migrate applies schema migrations at start (nil: true).
			// False: the schema is only checked, and the relay's user
			// needs INSERT and SELECT only.
			Migrate *bool `yaml:"migrate"`
		} `yaml:"clickhouse"`
		// Redis: dedupe, sequence numbers, assignments, the shared access
		// token and the bus between instances. Empty Addr (and no
		// Sentinel) keeps them in memory, which is only correct for a
		// single instance. See redis.go here (checks) and
		// deployments/system/redis.go (the client).
		Redis struct {
			Addr   string `yaml:"addr"`
			DB     int    `yaml:"db"`
			Prefix string `yaml:"prefix"`
			// Username is the ACL user (empty: "default"); it is sent
			// with the password, so it needs WR_REDIS_PASSWORD.
			Username string `yaml:"username"` // or WR_REDIS_USERNAME
			Password string `yaml:"-"`        // WR_REDIS_PASSWORD
			// Sentinel: with MasterName set, the master's address is
			// asked of the sentinels in Addrs, and failovers are
			// followed; Addr must then be empty. Username and Password
			// are those of the sentinels themselves (their requirepass
			// or ACL user), not of the Redis servers.
			Sentinel struct {
				MasterName string   `yaml:"master_name"`
				Addrs      []string `yaml:"addrs"`
				Username   string   `yaml:"username"`
				Password   string   `yaml:"-"` // WR_REDIS_SENTINEL_PASSWORD
			} `yaml:"sentinel"`
		} `yaml:"redis"`
	} `yaml:"storage"`
	WeChat struct {
		APIBaseURL    string          `yaml:"api_base_url"`
		APITimeout    time.Duration   `yaml:"api_timeout"`
		MaxBodyBytes  int64           `yaml:"max_body_bytes"`
		TimestampSkew time.Duration   `yaml:"timestamp_skew"`
		Accounts      []AccountConfig `yaml:"accounts"`
	} `yaml:"wechat"`
	Pipeline relay.Config       `yaml:"pipeline"`
	Media    relay.MediaConfig  `yaml:"media"`
	Outbox   relay.OutboxConfig `yaml:"outbox"`
	Bot      relay.BotConfig    `yaml:"bot"`
	Console  struct {
		AllowedOrigins []string              `yaml:"allowed_origins"`
		Employees      []EmployeeConfig      `yaml:"employees"`
		Teams          []console.Team        `yaml:"teams"`
		CannedReplies  []console.CannedReply `yaml:"canned_replies"`
		// DirectoryRefresh is how often each instance reloads the
		// directory from the archive, to see changes admins made on
		// other instances (5s).
		DirectoryRefresh time.Duration `yaml:"directory_refresh"`
		// PasswordCost is the bcrypt cost of passwords set in the Admin
		// section (12).
		PasswordCost int `yaml:"password_cost"`
		// TrustedProxies: console.Config.TrustedProxies.
		TrustedProxies []string `yaml:"trusted_proxies"`
		// SocketRecheck: console.Config.SocketRecheck.
		SocketRecheck time.Duration `yaml:"socket_recheck"`
		SendQueue     int           `yaml:"send_queue"`
		PingInterval  time.Duration `yaml:"ping_interval"`
	} `yaml:"console"`
	// SSO is single sign-on for employees (sso.go).
	SSO SSOConfig `yaml:"sso"`
	// Lexicon rules, matched on inbound and outbound text (compliance.go).
	Lexicon []relay.LexiconRule `yaml:"lexicon"`
	// Retention per account ("*": every other account), e.g. 7y, 18m,
	// 90d: only for `wechat-relay retention-report`; the relay never
	// deletes.
	Retention map[string]string `yaml:"retention"`
	// Journal: every archived message, as an email, to the firm's own
	// archive over SMTP (relay/journal); off without journal.host. The
	// password: journal.password_file or WR_JOURNAL_PASSWORD (or _FILE).
	Journal journal.Config `yaml:"journal"`
	// ShutdownTimeout bounds a graceful stop (15s).
	ShutdownTimeout time.Duration `yaml:"shutdown_timeout"`
}

// AccountConfig is one Official Account. Its secrets come from
// WR_ACCOUNT_<ID>_APP_SECRET, _TOKEN and _ENCODING_AES_KEY (or the same
// names with _FILE).
type AccountConfig struct {
	ID    string       `yaml:"id"`
	AppID string       `yaml:"app_id"`
	Mode  gateway.Mode `yaml:"mode"`

	AppSecret      string `yaml:"-"`
	Token          string `yaml:"-"`
	EncodingAESKey string `yaml:"-"`
}

// EmployeeConfig is one console user. The token comes from
// WR_CONSOLE_TOKEN_<ID> (or _FILE); the bcrypt hash of the password from
// password_hash or WR_CONSOLE_PASSWORD_HASH_<ID> (or _FILE), which wins.
type EmployeeConfig struct {
	ID           string       `yaml:"id"`
	Name         string       `yaml:"name"`
	Role         console.Role `yaml:"role"`
	Accounts     []string     `yaml:"accounts"`
	Teams        []string     `yaml:"teams"`
	AllTeams     bool         `yaml:"all_teams"`
	PasswordHash string       `yaml:"password_hash"`
	Token        string       `yaml:"-"`
}

// Check loads the configuration and validates it: what check-config,
// serve and bench-ceiling start from. The error lists every problem.
func Check(path string, env func(string) string) (*Config, error) {
	c, err := Load(path, env)
	if err != nil {
		return nil, err
	}
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return c, nil
}

// Load reads path (none: the embedded defaults), applies the
// environment and fills defaults. It does not validate.
func Load(path string, env func(string) string) (*Config, error) {
	var c Config
	if path == "" {
		c = Demo()
	} else {
		data, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("reading config: %w", err)
		}
		dec := yaml.NewDecoder(strings.NewReader(string(data)))
		dec.KnownFields(true)
		if err := dec.Decode(&c); err != nil {
			return nil, fmt.Errorf("parsing %s: %w", path, err)
		}
	}
	if err := c.applyEnv(env); err != nil {
		return nil, err
	}
	c.Defaults()
	return &c, nil
}

func (c *Config) Defaults() {
	if c.Listen == "" {
		c.Listen = "127.0.0.1:8080"
	}
	if c.DataDir == "" {
		c.DataDir = "data"
	}
	if c.Log.Level == "" {
		c.Log.Level = "info"
	}
	if c.Log.Format == "" {
		c.Log.Format = "json"
	}
	if c.Storage.Redis.Prefix == "" {
		c.Storage.Redis.Prefix = "wr:"
	}
	if c.ShutdownTimeout <= 0 {
		c.ShutdownTimeout = 15 * time.Second
	}
}

// applyEnv overrides keys from WR_* variables and loads every secret.
func (c *Config) applyEnv(env func(string) string) error {
	var errs []error
	str := func(dst *string, name string) {
		if v := env(name); v != "" {
			*dst = v
		}
	}
	str(&c.Listen, "WR_LISTEN")
	str(&c.DataDir, "WR_DATA_DIR")
	str(&c.Log.Level, "WR_LOG_LEVEL")
	str(&c.Log.Format, "WR_LOG_FORMAT")
	str(&c.Storage.ClickHouse.Addr, "WR_CLICKHOUSE_ADDR")
	str(&c.Storage.ClickHouse.Database, "WR_CLICKHOUSE_DATABASE")
	str(&c.Storage.ClickHouse.Username, "WR_CLICKHOUSE_USERNAME")
	str(&c.Storage.Redis.Addr, "WR_REDIS_ADDR")
	str(&c.Storage.Redis.Prefix, "WR_REDIS_PREFIX")
	str(&c.Storage.Redis.Username, "WR_REDIS_USERNAME")
	str(&c.WeChat.APIBaseURL, "WR_WECHAT_API_BASE_URL")
	str(&c.Pipeline.SealKeyFile, "WR_SEAL_KEY_FILE")
	str(&c.Pipeline.TrustedKeysFile, "WR_TRUSTED_KEYS_FILE")
	if v := env("WR_REDIS_DB"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			errs = append(errs, fmt.Errorf("WR_REDIS_DB: %w", err))
		}
		c.Storage.Redis.DB = n
	}
	secret := func(dst *string, name string) {
		v, err := secretFromEnv(env, name)
		if err != nil {
			errs = append(errs, err)
		} else if v != "" {
			*dst = v
		}
	}
	secret(&c.Storage.ClickHouse.Password, "WR_CLICKHOUSE_PASSWORD")
	secret(&c.Storage.Redis.Password, "WR_REDIS_PASSWORD")
	secret(&c.Storage.Redis.Sentinel.Password, "WR_REDIS_SENTINEL_PASSWORD")
	secret(&c.SSO.OIDC.ClientSecret, "WR_OIDC_CLIENT_SECRET")
	secret(&c.Journal.Password, "WR_JOURNAL_PASSWORD")
	for i := range c.WeChat.Accounts {
		a := &c.WeChat.Accounts[i]
		p := accountEnvPrefix(a.ID)
		secret(&a.AppSecret, p+"APP_SECRET")
		secret(&a.Token, p+"TOKEN")
		secret(&a.EncodingAESKey, p+"ENCODING_AES_KEY")
	}
	for i := range c.Console.Employees {
		e := &c.Console.Employees[i]
		secret(&e.Token, console.TokenEnv(e.ID))
		secret(&e.PasswordHash, console.PasswordHashEnv(e.ID))
	}
	return errors.Join(errs...)
}

// secretFromEnv reads NAME, or the file that NAME_FILE points to (with
// surrounding whitespace trimmed). Setting both is an error.
func secretFromEnv(env func(string) string, name string) (string, error) {
	v, file := env(name), env(name+"_FILE")
	switch {
	case v != "" && file != "":
		return "", fmt.Errorf("both %s and %s_FILE are set; use one", name, name)
	case file != "":
		data, err := os.ReadFile(file)
		if err != nil {
			return "", fmt.Errorf("%s_FILE: %w", name, err)
		}
		return strings.TrimSpace(string(data)), nil
	}
	return v, nil
}

// accountEnvPrefix is WR_ACCOUNT_<ID>_ with the id in upper case.
func accountEnvPrefix(id string) string {
	return strings.Replace(console.TokenEnv(id), "WR_CONSOLE_TOKEN_", "WR_ACCOUNT_", 1) + "_"
}

// Validate reports every problem at once, in words an operator can act on.
func (c *Config) Validate() error {
	var errs []error
	if _, _, err := splitHostPort(c.Listen); err != nil {
		errs = append(errs, fmt.Errorf("listen: %w", err))
	}
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		errs = append(errs, fmt.Errorf("log.level %q is not one of debug, info, warn, error", c.Log.Level))
	}
	switch c.Log.Format {
	case "json", "text":
	default:
		errs = append(errs, fmt.Errorf("log.format %q is not one of json, text", c.Log.Format))
	}
	errs = append(errs, c.validateRedis()...)
	if len(c.WeChat.Accounts) == 0 {
		errs = append(errs, errors.New("wechat.accounts: at least one Official Account is required"))
	}
	if err := c.GatewayConfig().Validate(); err != nil {
		errs = append(errs, err)
	}
	cc := c.ConsoleConfig()
	if err := cc.Validate(); err != nil {
		errs = append(errs, err)
	}
	errs = append(errs, c.validateCompliance()...)
	errs = append(errs, c.validateSSO()...)
	if err := c.Journal.Validate(); err != nil {
		errs = append(errs, err)
	}
	// WeChat waits 5 s for an answer: a retry must be able to wait for an
	// attempt in flight, or take it over, and still answer in time.
	if p := c.Pipeline; p.ClaimLease < 0 || p.ClaimWait < 0 || p.ClaimLease >= 4*time.Second || p.ClaimWait >= 4*time.Second {
		errs = append(errs, fmt.Errorf("pipeline.claim_lease (%v) and pipeline.claim_wait (%v) must each be under 4s: WeChat retries a callback not answered in 5s", p.ClaimLease, p.ClaimWait))
	}
	if c.Pipeline.SealKeyFile != "" {
		// The relay refuses to start with it; say so before.
		if _, err := relay.LoadSealSigner(c.Pipeline.SealKeyFile); err != nil {
			errs = append(errs, fmt.Errorf("pipeline.seal_key_file: %w", err))
		}
	}
	if _, err := relay.LoadTrustedKeys(c.Pipeline.TrustedKeysFile); err != nil {
		errs = append(errs, fmt.Errorf("pipeline.trusted_keys_file: %w", err))
	}
	accounts := map[string]bool{}
	for _, a := range c.WeChat.Accounts {
		accounts[a.ID] = true
	}
	for _, e := range c.Console.Employees {
		for _, a := range e.Accounts {
			if !accounts[a] {
				errs = append(errs, fmt.Errorf("console.employees (%s): account %q is not in wechat.accounts", e.ID, a))
			}
		}
	}
	return errors.Join(errs...)
}

func (c *Config) GatewayConfig() gateway.Config {
	g := gateway.Config{
		MaxBodyBytes:  c.WeChat.MaxBodyBytes,
		TimestampSkew: c.WeChat.TimestampSkew,
		APIBaseURL:    c.WeChat.APIBaseURL,
		APITimeout:    c.WeChat.APITimeout,
	}
	for _, a := range c.WeChat.Accounts {
		g.Accounts = append(g.Accounts, gateway.Account{
			ID: a.ID, AppID: a.AppID, AppSecret: a.AppSecret, Token: a.Token,
			EncodingAESKey: a.EncodingAESKey, Mode: a.Mode,
		})
	}
	return g
}

func (c *Config) ConsoleConfig() console.Config {
	cc := console.Config{
		AllowedOrigins: c.Console.AllowedOrigins,
		SendQueue:      c.Console.SendQueue,
		PingInterval:   c.Console.PingInterval,
		CannedReplies:  c.Console.CannedReplies,
		Teams:          c.Console.Teams,
		PasswordCost:   c.Console.PasswordCost,
		TrustedProxies: c.Console.TrustedProxies,
		SocketRecheck:  c.Console.SocketRecheck,

		PasswordSignInOff: !c.PasswordSignIn(),
		SingleSignOn:      c.SSO.OIDC.Enabled(),
	}
	for _, e := range c.Console.Employees {
		cc.Employees = append(cc.Employees, console.Employee{ID: e.ID, Name: e.Name, Role: e.Role, Accounts: e.Accounts,
			Teams: e.Teams, AllTeams: e.AllTeams, Token: e.Token, PasswordHash: e.PasswordHash})
	}
	return cc
}

// directorySeed is the directory the configuration gives: its employees
// and teams, and the accounts it serves.
func (c *Config) DirectorySeed() relay.DirectorySeed {
	accts := make([]relay.AccountInfo, len(c.WeChat.Accounts))
	for i, a := range c.WeChat.Accounts {
		accts[i] = relay.AccountInfo{ID: a.ID}
	}
	return c.ConsoleConfig().Seed(accts)
}

func (c *Config) SpoolDir() string    { return filepath.Join(c.DataDir, "spool") }
func (c *Config) ArchivePath() string { return filepath.Join(c.DataDir, "archive.db") }
