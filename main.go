// Command wechat-relay is the compliance relay for WeChat Official
// Accounts: it archives every message in ClickHouse before delivering it
// between clients on WeChat and employees in the web console.
//
//	wechat-relay serve [-config FILE]         run the relay
//	wechat-relay check-config [-config FILE]  validate the configuration
//	wechat-relay sim [flags]                  run the WeChat simulator
//	wechat-relay hash-password < password     bcrypt hash for an employee's password_hash
//	wechat-relay search [flags]               search the archive
//	wechat-relay export [flags]               export for eDiscovery (folder or zip)
//	wechat-relay seal-key -out FILE           make the key pair that signs seals
//	wechat-relay spool-salvage -dir DIR       keep the valid records of a damaged spool
//	wechat-relay version                      print the version
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr, os.Getenv))
}

func run(args []string, stdout, stderr io.Writer, env func(string) string) int {
	if len(args) == 0 {
		usage(stderr)
		return 2
	}
	cmd, args := args[0], args[1:]
	fs := flag.NewFlagSet(cmd, flag.ContinueOnError)
	fs.SetOutput(stderr)
	configPath := fs.String("config", env("WR_CONFIG"), "configuration file (none: embedded demo defaults)")
	switch cmd {
	case "serve", "check-config":
		if err := fs.Parse(args); err != nil {
			return 2
		}
	case "version":
		fmt.Fprintln(stdout, "wechat-relay", version)
		return 0
	case "sim":
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		defer stop()
		return simCommand(ctx, args, stdout, stderr)
	case "hash-password":
		return hashPasswordCommand(args, os.Stdin, stdout, stderr)
	case "verify":
		return verifyCommand(args, stdout, stderr, env)
	case "seal-key":
		return sealKeyCommand(args, stdout, stderr)
	case "spool-salvage":
		return spoolSalvageCommand(args, stdout, stderr)
	case "retention-report":
		return retentionReportCommand(args, stdout, stderr, env)
	case "search":
		return searchCommand(args, stdout, stderr, env)
	case "export":
		return exportCommand(args, stdout, stderr, env)
	case "help", "-h", "--help":
		usage(stdout)
		return 0
	default:
		fmt.Fprintf(stderr, "wechat-relay: unknown command %q\n\n", cmd)
		usage(stderr)
		return 2
	}

	cfg, err := loadConfig(*configPath, env)
	if err == nil {
		err = cfg.Validate()
	}
	if err != nil {
		fmt.Fprintf(stderr, "wechat-relay: configuration is not valid:\n%s\n", indent(err.Error()))
		return 1
	}
	if cmd == "check-config" {
		fmt.Fprintln(stdout, "configuration OK")
		return 0
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := serve(ctx, cfg, *configPath == "", stdout, stderr); err != nil {
		fmt.Fprintf(stderr, "wechat-relay: %v\n", err)
		return 1
	}
	return 0
}

func usage(w io.Writer) {
	fmt.Fprint(w, `usage: wechat-relay <command> [flags]

commands:
  serve          run the relay (-config FILE; without one, embedded demo defaults)
  check-config   validate the configuration and print what is wrong
  sim            run the WeChat simulator (API, clients, phone page; -load for a load test)
  hash-password  print the bcrypt hash of a console password read from stdin
  verify         check the archive's hashes and seals, and the audit log's chains (-config FILE, -json, -seal HASH, -audit-seal HASH, -public-key FILE, -allow-unsigned-before TIME); exit 0 only if intact
  seal-key       make the Ed25519 key pair that signs seals: private key to -out FILE (0600), public key and key id to stdout
  spool-salvage  keep the valid records of a spool the relay refuses as corrupt, drop the damaged bytes (-dir DIR; relay stopped)
  retention-report  what an operator MAY drop under the configured retention, legal holds excluded (-config FILE, -json)
  search         search the archive (-text, -client, -employee, -conv, -from, -to, ...; -json)
  export         export messages, media, transcript and manifest (-conv|-client|-employee|-text ... -out DIR|FILE.zip -by NAME)
  version        print the version
`)
}

func indent(s string) string {
	out := "  "
	for _, r := range s {
		out += string(r)
		if r == '\n' {
			out += "  "
		}
	}
	return out
}
