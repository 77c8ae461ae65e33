// Command wechat-relay is the compliance relay for WeChat Official
// Accounts: it archives every message in ClickHouse before delivering it
// between clients on WeChat and employees in the web console.
//
// Its commands are in deployments/commands (`wechat-relay help` lists
// them); this file only hands them the process.
package main

import (
	"os"

	"github.com/wechat-relay/wechat-relay/deployments/commands"
)

func main() {
	os.Exit(commands.Run(os.Args[1:], os.Stdout, os.Stderr, os.Getenv))
}
