package gateway

import (
	"strings"
	"testing"
	"time"
)

func TestConfigValidate(t *testing.T) {
	t.Parallel()
	good := func() Config { return testConfig() }
	tests := []struct {
		name   string
		mutate func(c *Config)
		want   []string // substrings of the error; none means valid
	}{
		{"valid", func(c *Config) {}, nil},
		{"zero mode means safe and needs a key", func(c *Config) {
			c.Accounts[0].Mode = ""
		}, []string{`"plain"`, "EncodingAESKey is required in safe mode"}},
		{"zero mode with key is valid", func(c *Config) {
			c.Accounts[0].Mode, c.Accounts[0].EncodingAESKey = "", safeAccount.EncodingAESKey
		}, nil},
		{"no accounts", func(c *Config) { c.Accounts = nil }, []string{"no accounts"}},
		{"duplicate id", func(c *Config) {
			c.Accounts[1].ID = "plain"
		}, []string{"duplicate id", "account #1"}},
		{"bad id", func(c *Config) { c.Accounts[0].ID = "a:b" }, []string{"id must be"}},
		{"empty id", func(c *Config) { c.Accounts[0].ID = "" }, []string{"id must be"}},
		{"missing token", func(c *Config) { c.Accounts[2].Token = "" }, []string{`"safe"`, "Token is missing"}},
		{"token with spaces", func(c *Config) { c.Accounts[2].Token = "tok " }, []string{"white space"}},
		{"missing appid and secret", func(c *Config) {
			c.Accounts[0].AppID, c.Accounts[0].AppSecret = "", ""
		}, []string{"AppID is missing", "AppSecret is missing"}},
		{"short key", func(c *Config) { c.Accounts[2].EncodingAESKey = "abc" }, []string{"43 characters, got 3"}},
		{"key not base64", func(c *Config) {
			c.Accounts[2].EncodingAESKey = strings.Repeat("!", 43)
		}, []string{"not valid base64"}},
		{"compatible without key", func(c *Config) { c.Accounts[1].EncodingAESKey = "" }, []string{"required in compatible mode"}},
		{"plain with a bad key", func(c *Config) { c.Accounts[0].EncodingAESKey = "short" }, []string{"43 characters"}},
		{"unknown mode", func(c *Config) { c.Accounts[0].Mode = "secure" }, []string{`unknown mode "secure"`}},
		{"negative limits", func(c *Config) {
			c.MaxBodyBytes, c.TimestampSkew, c.APITimeout = -1, -time.Second, -time.Second
		}, []string{"MaxBodyBytes", "TimestampSkew", "APITimeout"}},
		{"relative base url", func(c *Config) { c.APIBaseURL = "api.example.com" }, []string{"absolute http or https"}},
		{"base url with query", func(c *Config) { c.APIBaseURL = "http://127.0.0.1:1/?x=1" }, []string{"query"}},
		{"base url ok", func(c *Config) { c.APIBaseURL = "http://127.0.0.1:8081/wx/" }, nil},
		{"several problems at once", func(c *Config) {
			c.Accounts[0].Token, c.Accounts[2].Mode = "", "x"
		}, []string{"Token is missing", `unknown mode "x"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := good()
			c.Accounts = append([]Account(nil), c.Accounts...)
			tt.mutate(&c)
			err := c.Validate()
			if len(tt.want) == 0 {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Validate() = nil, want error with %q", tt.want)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
			for _, a := range c.Accounts {
				for _, secret := range []string{a.AppSecret, a.EncodingAESKey} {
					if len(secret) > 5 && strings.Contains(err.Error(), secret) {
						t.Errorf("error reveals a secret: %v", err)
					}
				}
			}
		})
	}
}

func TestConfigDefaults(t *testing.T) {
	t.Parallel()
	c := Config{}.withDefaults()
	if c.MaxBodyBytes != 256<<10 || c.TimestampSkew != 5*time.Minute || c.APIBaseURL != "https://api.weixin.qq.com" || c.APITimeout != 10*time.Second {
		t.Fatalf("defaults = %+v", c)
	}
	c = Config{APIBaseURL: "http://127.0.0.1:9/base/"}.withDefaults()
	if c.APIBaseURL != "http://127.0.0.1:9/base" {
		t.Fatalf("trailing slash kept: %q", c.APIBaseURL)
	}
}
