package gateway

import (
	"encoding/base64"
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"strings"
	"time"
)

// Mode is the message encryption mode configured for an Official Account
// in the WeChat admin console (消息加解密方式).
type Mode string

// The three modes WeChat offers. Plain callbacks are covered by no
// signature over the body, so safe mode is recommended.
const (
	// ModePlain (明文模式): XML in the clear, signature over token,
	// timestamp and nonce only.
	ModePlain Mode = "plain"
	// ModeCompatible (兼容模式): WeChat sends both; the handler accepts
	// encrypted and plain callbacks.
	ModeCompatible Mode = "compatible"
	// ModeSafe (安全模式): every callback is encrypted and carries
	// msg_signature over the ciphertext; plain callbacks are refused.
	ModeSafe Mode = "safe"
)

// Defaults applied to zero Config fields.
const (
	DefaultMaxBodyBytes  = 256 << 10
	DefaultTimestampSkew = 5 * time.Minute
	DefaultAPIBaseURL    = "https://api.weixin.qq.com"
	DefaultAPITimeout    = 10 * time.Second
)

// Account is one Official Account the relay serves.
type Account struct {
	// ID is a short stable id, used in the callback path /wechat/{ID}
	// and as relay.Message.Account. It must not change once messages
	// are archived under it.
	ID string
	// AppID and AppSecret identify the account to the WeChat API.
	AppID, AppSecret string
	// Token is the callback token configured in the WeChat console; it
	// keys every callback signature.
	Token string
	// EncodingAESKey is the 43-character key for compatible and safe
	// mode.
	EncodingAESKey string
	// Mode is the encryption mode; the zero value means ModeSafe.
	Mode Mode
}

// mode returns the effective mode: the zero value is safe mode, so a
// forgotten setting fails closed.
func (a Account) mode() Mode {
	if a.Mode == "" {
		return ModeSafe
	}
	return a.Mode
}

// Config configures the WeChat edge. The zero value of every field but
// Accounts is a usable default.
type Config struct {
	Accounts []Account
	// MaxBodyBytes bounds a callback body; zero means 256 KiB. Larger
	// bodies are refused with 413.
	MaxBodyBytes int64
	// TimestampSkew bounds how far a callback's timestamp may be from
	// the local clock; zero means 5 minutes. Callbacks further off are
	// refused.
	TimestampSkew time.Duration
	// APIBaseURL is where WeChat API calls go; zero means
	// https://api.weixin.qq.com. The simulator and egress proxies
	// override it.
	APIBaseURL string
	// APITimeout bounds each WeChat API request; zero means 10 s.
	APITimeout time.Duration
}

// withDefaults returns c with zero fields replaced by their defaults.
func (c Config) withDefaults() Config {
	if c.MaxBodyBytes == 0 {
		c.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if c.TimestampSkew == 0 {
		c.TimestampSkew = DefaultTimestampSkew
	}
	if c.APIBaseURL == "" {
		c.APIBaseURL = DefaultAPIBaseURL
	}
	c.APIBaseURL = strings.TrimRight(c.APIBaseURL, "/")
	if c.APITimeout == 0 {
		c.APITimeout = DefaultAPITimeout
	}
	return c
}

// accountIDPattern keeps ids safe in a URL path and unambiguous in a
// relay.ConversationID, which joins account and openid with a colon.
var accountIDPattern = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)

// Validate reports every problem of c at once, so check-config can list
// them all. It never includes secret values in its messages.
func (c Config) Validate() error {
	var errs []error
	if len(c.Accounts) == 0 {
		errs = append(errs, errors.New("gateway: no accounts configured"))
	}
	seen := make(map[string]int, len(c.Accounts))
	for i, a := range c.Accounts {
		where := fmt.Sprintf("gateway: account #%d (id %q)", i+1, a.ID)
		if !accountIDPattern.MatchString(a.ID) {
			errs = append(errs, fmt.Errorf("%s: id must be 1-64 characters of A-Z, a-z, 0-9, '_' or '-'", where))
		}
		if j, dup := seen[a.ID]; dup {
			errs = append(errs, fmt.Errorf("%s: duplicate id, also used by account #%d", where, j+1))
		} else {
			seen[a.ID] = i
		}
		if a.AppID == "" {
			errs = append(errs, fmt.Errorf("%s: AppID is missing", where))
		}
		if a.AppSecret == "" {
			errs = append(errs, fmt.Errorf("%s: AppSecret is missing", where))
		}
		if a.Token == "" {
			errs = append(errs, fmt.Errorf("%s: Token is missing", where))
		} else if strings.TrimSpace(a.Token) != a.Token {
			errs = append(errs, fmt.Errorf("%s: Token has leading or trailing white space", where))
		}
		switch m := a.mode(); m {
		case ModePlain:
			if a.EncodingAESKey != "" {
				if err := checkAESKey(a.EncodingAESKey); err != nil {
					errs = append(errs, fmt.Errorf("%s: %w", where, err))
				}
			}
		case ModeCompatible, ModeSafe:
			if a.EncodingAESKey == "" {
				errs = append(errs, fmt.Errorf("%s: EncodingAESKey is required in %s mode", where, m))
			} else if err := checkAESKey(a.EncodingAESKey); err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", where, err))
			}
		default:
			errs = append(errs, fmt.Errorf("%s: unknown mode %q (want %q, %q or %q)", where, a.Mode, ModePlain, ModeCompatible, ModeSafe))
		}
	}
	if c.MaxBodyBytes < 0 {
		errs = append(errs, fmt.Errorf("gateway: MaxBodyBytes must not be negative, got %d", c.MaxBodyBytes))
	}
	if c.TimestampSkew < 0 {
		errs = append(errs, fmt.Errorf("gateway: TimestampSkew must not be negative, got %s", c.TimestampSkew))
	}
	if c.APITimeout < 0 {
		errs = append(errs, fmt.Errorf("gateway: APITimeout must not be negative, got %s", c.APITimeout))
	}
	if c.APIBaseURL != "" {
		u, err := url.Parse(c.APIBaseURL)
		switch {
		case err != nil:
			errs = append(errs, fmt.Errorf("gateway: APIBaseURL: %w", err))
		case u.Scheme != "http" && u.Scheme != "https", u.Host == "":
			errs = append(errs, fmt.Errorf("gateway: APIBaseURL %q must be an absolute http or https URL", c.APIBaseURL))
		case u.RawQuery != "" || u.Fragment != "":
			errs = append(errs, fmt.Errorf("gateway: APIBaseURL %q must not have a query or fragment", c.APIBaseURL))
		}
	}
	return errors.Join(errs...)
}

// checkAESKey checks the shape of an EncodingAESKey without saying
// anything about its value.
func checkAESKey(k string) error {
	_, err := decodeAESKey(k)
	return err
}

// decodeAESKey turns the 43-character EncodingAESKey into the 32-byte
// AES-256 key: base64 of the key with "=" appended.
func decodeAESKey(k string) ([]byte, error) {
	if len(k) != 43 {
		return nil, fmt.Errorf("EncodingAESKey must be 43 characters, got %d", len(k))
	}
	key, err := base64.StdEncoding.DecodeString(k + "=")
	if err != nil {
		return nil, errors.New("EncodingAESKey is not valid base64")
	}
	if len(key) != 32 {
		return nil, fmt.Errorf("EncodingAESKey must decode to 32 bytes, got %d", len(key))
	}
	return key, nil
}
