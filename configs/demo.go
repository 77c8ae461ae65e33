package configs

import (
	"net"
	"sync"

	"golang.org/x/crypto/bcrypt"

	"github.com/wechat-relay/wechat-relay/console"
	"github.com/wechat-relay/wechat-relay/gateway"
)

// The embedded defaults: one demo Official Account, two agents in a team,
// a supervisor and an admin, with well-known demo secrets. They exist so that a first
// run needs no file at all; the relay says loudly that it uses them.
const (
	DemoAppID     = "wxd3m0000000000001"
	DemoAppSecret = "demo-app-secret-not-for-production"
	DemoToken     = "demotoken"
	DemoAESKey    = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"
)

var demoEmployeeTokens = map[string]string{
	"alice": "demo-alice-token-0001",
	"bob":   "demo-bob-token-00002",
	"sup":   "demo-supervisor-token-3",
	"ada":   "demo-admin-token-00004",
}

// DemoPasswords sign the demo employees in to the web console. Public,
// like every demo secret.
var DemoPasswords = map[string]string{
	"alice": "demo-alice",
	"bob":   "demo-bob",
	"sup":   "demo-sup",
	"ada":   "demo-admin",
}

// demoPasswordHashes are the bcrypt hashes of DemoPasswords, made once.
// The lowest cost: the passwords are published anyway.
var demoPasswordHashes = sync.OnceValue(func() map[string]string {
	out := map[string]string{}
	for id, pw := range DemoPasswords {
		h, err := bcrypt.GenerateFromPassword([]byte(pw), bcrypt.MinCost)
		if err != nil {
			panic(err) // only for a password over 72 bytes, which these are not
		}
		out[id] = string(h)
	}
	return out
})

// Demo is the configuration of the embedded defaults, used when no
// configuration file is given.
func Demo() Config {
	var c Config
	c.WeChat.Accounts = []AccountConfig{{
		ID: "demo", AppID: DemoAppID, Mode: gateway.ModeSafe,
		AppSecret: DemoAppSecret, Token: DemoToken, EncodingAESKey: DemoAESKey,
	}}
	c.Console.Teams = []console.Team{{ID: "wealth", Name: "财富管理 Wealth desk"}}
	c.Console.Employees = []EmployeeConfig{
		{ID: "alice", Name: "Alice Wang", Role: console.RoleAgent, Accounts: []string{"demo"}, Teams: []string{"wealth"}, Token: demoEmployeeTokens["alice"]},
		{ID: "bob", Name: "Bob Li", Role: console.RoleAgent, Accounts: []string{"demo"}, Teams: []string{"wealth"}, Token: demoEmployeeTokens["bob"]},
		{ID: "sup", Name: "Sue Zhang", Role: console.RoleSupervisor, AllTeams: true, Token: demoEmployeeTokens["sup"]},
		{ID: "ada", Name: "Ada Admin", Role: console.RoleAdmin, Token: demoEmployeeTokens["ada"]},
	}
	hashes := demoPasswordHashes()
	for i := range c.Console.Employees {
		c.Console.Employees[i].PasswordHash = hashes[c.Console.Employees[i].ID]
	}
	c.Console.CannedReplies = []console.CannedReply{
		{ID: "greeting", Title: "问候 Greeting", Text: "您好，我是您的专属顾问，请问有什么可以帮您？"},
		{ID: "callback", Title: "回电 Call back", Text: "好的，我稍后给您回电，请保持电话畅通。"},
		{ID: "thanks", Title: "感谢 Thanks", Text: "感谢您的耐心等待，祝您生活愉快！"},
	}
	c.Log.Format = "text"
	// Always open: a newcomer trying it at night should see replies, not
	// only the out-of-hours notice.
	c.Bot.Open, c.Bot.Close = "00:00", "00:00"
	return c
}

func splitHostPort(addr string) (string, string, error) { return net.SplitHostPort(addr) }
