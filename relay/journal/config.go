package journal

import (
	"errors"
	"fmt"
	"net/mail"
	"os"
	"regexp"
	"strings"
	"time"
)

// Config is the journal's configuration (the journal: section). Zero
// values select the defaults in the comments; the journal is off unless
// Host is set.
type Config struct {
	// Host and Port of the firm's SMTP server (port 587).
	Host string `yaml:"host"`
	Port int    `yaml:"port"`
	// StartTLS must stay true (the default): journal emails carry client
	// conversations and are never sent in clear. The connection fails
	// unless the server offers STARTTLS and its certificate verifies.
	StartTLS *bool `yaml:"starttls"`
	// CAFile: PEM certificates trusted for the server besides the
	// system's (a firm's internal CA).
	CAFile string `yaml:"ca_file"`
	// Username for SMTP AUTH; the password is Password, read from
	// PasswordFile or WR_JOURNAL_PASSWORD (or _FILE).
	Username     string `yaml:"username"`
	Password     string `yaml:"-"`
	PasswordFile string `yaml:"password_file"`
	// From is the envelope sender (MAIL FROM), To the journal address
	// (RCPT TO): the address the firm's archive ingests.
	From string `yaml:"from"`
	To   string `yaml:"journal_address"`
	// Domain of the stable addresses in From and To:
	// <openid>@clients.<domain>, <employee>@staff.<domain>,
	// <account>@accounts.<domain>; the Message-ID's right side too.
	Domain string `yaml:"domain"`
	// Transcripts: also send, for each conversation and UTC day, one
	// email with the day's messages, once the day is over and
	// TranscriptDelay has passed (false).
	Transcripts     bool          `yaml:"transcripts"`
	TranscriptDelay time.Duration `yaml:"transcript_delay"` // (1h)
	// Since: only messages accepted after this day (YYYY-MM-DD, UTC) are
	// journaled (empty: the whole archive).
	Since string `yaml:"since"`
	// BatchSize: emails per SMTP connection and ledger insert (50).
	BatchSize int `yaml:"batch_size"`
	// Timeout of each SMTP step: connecting, each command, the data
	// (30s).
	Timeout time.Duration `yaml:"timeout"`
	// PollInterval: how often the archive is asked for what to journal
	// when the last round found nothing (5s).
	PollInterval time.Duration `yaml:"poll_interval"`
	// MaxBackoff caps the wait between failed rounds, which doubles from
	// PollInterval (10m).
	MaxBackoff time.Duration `yaml:"max_backoff"`
	// MediaWait: how long a message whose media has not been fetched yet
	// is held back, with everything after it, before it is journaled
	// without its media (15m).
	MediaWait time.Duration `yaml:"media_wait"`
}

// Enabled reports whether the journal is configured.
func (c Config) Enabled() bool { return c.Host != "" }

// WithDefaults returns c with its zero values filled in.
func (c Config) WithDefaults() Config {
	if c.Port == 0 {
		c.Port = 587
	}
	if c.StartTLS == nil {
		t := true
		c.StartTLS = &t
	}
	if c.BatchSize <= 0 {
		c.BatchSize = 50
	}
	if c.Timeout <= 0 {
		c.Timeout = 30 * time.Second
	}
	if c.PollInterval <= 0 {
		c.PollInterval = 5 * time.Second
	}
	if c.MaxBackoff <= 0 {
		c.MaxBackoff = 10 * time.Minute
	}
	if c.MediaWait <= 0 {
		c.MediaWait = 15 * time.Minute
	}
	if c.TranscriptDelay <= 0 {
		c.TranscriptDelay = time.Hour
	}
	return c
}

// LoadPassword reads PasswordFile into Password, unless Password is set
// already (from the environment).
func (c *Config) LoadPassword() error {
	if c.Password != "" || c.PasswordFile == "" {
		return nil
	}
	data, err := os.ReadFile(c.PasswordFile)
	if err != nil {
		return fmt.Errorf("journal.password_file: %w", err)
	}
	c.Password = strings.TrimSpace(string(data))
	return nil
}

// domainRE is a DNS name: labels of letters, digits and hyphens.
var domainRE = regexp.MustCompile(`^(?i:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)(?:\.(?i:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?))+$`)

// Validate reports every problem of an enabled journal's configuration;
// a disabled one has none.
func (c Config) Validate() error {
	if !c.Enabled() {
		return nil
	}
	c = c.WithDefaults()
	var errs []error
	if c.Port < 1 || c.Port > 65535 {
		errs = append(errs, fmt.Errorf("journal.port %d is not a TCP port", c.Port))
	}
	if !*c.StartTLS {
		errs = append(errs, errors.New("journal.starttls: must be true: journal emails carry client conversations and are never sent in clear"))
	}
	if c.CAFile != "" {
		if _, err := loadCAs(c.CAFile); err != nil {
			errs = append(errs, fmt.Errorf("journal.ca_file: %w", err))
		}
	}
	if c.Username == "" {
		errs = append(errs, errors.New("journal.username: required (the journal authenticates to the SMTP server)"))
	}
	if err := c.LoadPassword(); err != nil {
		errs = append(errs, err)
	} else if c.Password == "" {
		errs = append(errs, errors.New("journal: no password: set journal.password_file or WR_JOURNAL_PASSWORD (or WR_JOURNAL_PASSWORD_FILE)"))
	}
	for key, addr := range map[string]string{"journal.from": c.From, "journal.journal_address": c.To} {
		if a, err := mail.ParseAddress(addr); err != nil || a.Name != "" || a.Address != addr {
			errs = append(errs, fmt.Errorf("%s %q: want a bare address such as journal@example.com", key, addr))
		}
	}
	if !domainRE.MatchString(c.Domain) {
		errs = append(errs, fmt.Errorf("journal.domain %q: want a DNS name such as wechat.example.com", c.Domain))
	}
	if c.Since != "" {
		if _, err := time.Parse("2006-01-02", c.Since); err != nil {
			errs = append(errs, fmt.Errorf("journal.since %q: want a day as YYYY-MM-DD", c.Since))
		}
	}
	return errors.Join(errs...)
}

// Start is the Since day as a time: journaling takes the messages
// accepted after it (zero when Since is empty).
func (c Config) Start() time.Time {
	t, _ := time.Parse("2006-01-02", c.Since)
	return t
}
