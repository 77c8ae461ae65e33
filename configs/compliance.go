package configs

import (
	"errors"
	"fmt"

	"github.com/wechat-relay/wechat-relay/relay"
)

// The compliance parts of the configuration: lexicon rules, retention
// per account, whether the relay migrates the ClickHouse schema.

// migrate reports whether the relay applies ClickHouse migrations at
// start (storage.clickhouse.migrate, default true).
func (c *Config) Migrate() bool {
	return c.Storage.ClickHouse.Migrate == nil || *c.Storage.ClickHouse.Migrate
}

// lexicon compiles the lexicon rules; nil when there are none.
func (c *Config) CompileLexicon() (*relay.Lexicon, error) {
	if len(c.Lexicon) == 0 {
		return nil, nil
	}
	return relay.NewLexicon(c.Lexicon)
}

// retentionPolicies parses retention: account (or "*") → period.
func (c *Config) RetentionPolicies() (map[string]relay.Retention, error) {
	out := map[string]relay.Retention{}
	var errs []error
	for acc, v := range c.Retention {
		r, err := relay.ParseRetention(v)
		if err != nil {
			errs = append(errs, fmt.Errorf("retention.%s: %w", acc, err))
			continue
		}
		out[acc] = r
	}
	return out, errors.Join(errs...)
}

// validateCompliance reports the problems of the compliance keys.
func (c *Config) validateCompliance() []error {
	var errs []error
	if _, err := c.CompileLexicon(); err != nil {
		errs = append(errs, err)
	}
	if _, err := c.RetentionPolicies(); err != nil {
		errs = append(errs, err)
	}
	accounts := map[string]bool{"*": true}
	for _, a := range c.WeChat.Accounts {
		accounts[a.ID] = true
	}
	for acc := range c.Retention {
		if !accounts[acc] {
			errs = append(errs, fmt.Errorf("retention: account %q is not in wechat.accounts (use \"*\" for every account)", acc))
		}
	}
	for i, r := range c.Lexicon {
		for _, acc := range r.Accounts {
			if !accounts[acc] || acc == "*" {
				errs = append(errs, fmt.Errorf("lexicon[%d] (%s): account %q is not in wechat.accounts", i, r.Name, acc))
			}
		}
	}
	return errs
}
