package main

import (
	"net"

	"github.com/wechat-relay/wechat-relay/console"
	"github.com/wechat-relay/wechat-relay/gateway"
)

// The embedded defaults: one demo Official Account, two agents and a
// supervisor, with well-known demo secrets. They exist so that a first
// run needs no file at all; the relay says loudly that it uses them.
const (
	demoAppID     = "wxd3m0000000000001"
	demoAppSecret = "demo-app-secret-not-for-production"
	demoToken     = "demotoken"
	demoAESKey    = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"
)

var demoEmployeeTokens = map[string]string{
	"alice": "demo-alice-token-0001",
	"bob":   "demo-bob-token-00002",
	"sup":   "demo-supervisor-token-3",
}

func demoConfig() Config {
	var c Config
	c.WeChat.Accounts = []AccountConfig{{
		ID: "demo", AppID: demoAppID, Mode: gateway.ModeSafe,
		AppSecret: demoAppSecret, Token: demoToken, EncodingAESKey: demoAESKey,
	}}
	c.Console.Employees = []EmployeeConfig{
		{ID: "alice", Name: "Alice Wang", Role: console.RoleAgent, Accounts: []string{"demo"}, Token: demoEmployeeTokens["alice"]},
		{ID: "bob", Name: "Bob Li", Role: console.RoleAgent, Accounts: []string{"demo"}, Token: demoEmployeeTokens["bob"]},
		{ID: "sup", Name: "Sue Zhang", Role: console.RoleSupervisor, Token: demoEmployeeTokens["sup"]},
	}
	c.Log.Format = "text"
	// Always open: a newcomer trying it at night should see replies, not
	// only the out-of-hours notice.
	c.Bot.Open, c.Bot.Close = "00:00", "00:00"
	return c
}

func splitHostPort(addr string) (string, string, error) { return net.SplitHostPort(addr) }
