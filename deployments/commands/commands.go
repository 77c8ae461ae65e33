// Package commands is the wechat-relay command line: the table of
// commands (serve, check-config, sim, hash-password, verify, seal-key,
// spool-salvage, retention-report, search, export, journal-status,
// journal-reconcile, bench-ceiling, version), each with one signature, and Run, which main.go at the
// module root calls with the process's arguments, streams and
// environment. `wechat-relay help` lists the commands with their flags.
//
// The commands read the configuration through package configs and start
// the relay through deployments/system; the read-only ones (verify,
// search, export, retention-report) open the archive themselves, without
// migrating or writing anything.
package commands

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"
	"text/tabwriter"

	"github.com/wechat-relay/wechat-relay/configs"
	"github.com/wechat-relay/wechat-relay/deployments/system"
)

// version is set at build time with -ldflags
// "-X github.com/wechat-relay/wechat-relay/deployments/commands.version=...";
// Version falls back to the module's build information.
var version = "dev"

// cmdEnv is what every command is given.
type cmdEnv struct {
	// ctx ends on SIGINT or SIGTERM.
	ctx            context.Context
	args           []string // after the command's name
	stdin          io.Reader
	stdout, stderr io.Writer
	getenv         func(string) string
}

// command is one line of the table.
type command struct {
	name, usage string
	run         func(e cmdEnv) int
}

// commands is every command, in the order help lists them.
var commands = []command{
	{"serve", "run the relay (-config FILE; without one, embedded demo defaults)", serveCommand},
	{"check-config", "validate the configuration and print what is wrong (-config FILE)", checkConfigCommand},
	{"sim", "run the WeChat simulator (API, clients, phone page; -load for a load test)",
		func(e cmdEnv) int { return simCommand(e.ctx, e.args, e.stdout, e.stderr) }},
	{"hash-password", "print the bcrypt hash of a console password read from stdin",
		func(e cmdEnv) int { return hashPasswordCommand(e.args, e.stdin, e.stdout, e.stderr) }},
	{"verify", "check the archive's hashes and seals, the audit log's chains and the directory's signed versions (-config FILE, -json, -seal HASH, -audit-seal HASH, -public-key FILE, -allow-unsigned-before TIME); exit 0 only if intact",
		func(e cmdEnv) int { return verifyCommand(e.ctx, e.args, e.stdout, e.stderr, e.getenv) }},
	{"seal-key", "make the Ed25519 key pair that signs seals: private key to -out FILE (0600), public key and key id to stdout",
		func(e cmdEnv) int { return sealKeyCommand(e.args, e.stdout, e.stderr) }},
	{"spool-salvage", "keep the valid records of a spool the relay refuses as corrupt, drop the damaged bytes (-dir DIR; relay stopped)",
		func(e cmdEnv) int { return spoolSalvageCommand(e.args, e.stdout, e.stderr) }},
	{"retention-report", "what an operator MAY drop under the configured retention, legal holds excluded (-config FILE, -json)",
		func(e cmdEnv) int { return retentionReportCommand(e.ctx, e.args, e.stdout, e.stderr, e.getenv) }},
	{"search", "search the archive (-text, -client, -employee, -conv, -from, -to, ...; -json)",
		func(e cmdEnv) int { return searchCommand(e.ctx, e.args, e.stdout, e.stderr, e.getenv) }},
	{"export", "export messages, media, transcript and manifest (-conv|-client|-employee|-text ... -out DIR|FILE.zip -by NAME)",
		func(e cmdEnv) int { return exportCommand(e.ctx, e.args, e.stdout, e.stderr, e.getenv) }},
	{"report", "a report of the desk: volume, responsiveness, delivery or compliance (-from, -to, -tz, -team, -employee, -format csv|json)",
		func(e cmdEnv) int { return reportCommand(e.ctx, e.args, e.stdout, e.stderr, e.getenv) }},
	{"journal-status", "how far the journal to the firm's archive is behind: messages archived but not journaled, the oldest (-config FILE, -json)", journalStatusCommand},
	{"journal-reconcile", "list every message archived but not journaled, with its row id and hash (-config FILE, -json, -limit N); exit 1 if any", journalReconcileCommand},
	{"bench-ceiling", "serve the WeChat callback path alone, storing nothing: the ceiling `make bench-e2e` compares the relay with (-config FILE)", benchCeilingCommand},
	{"version", "print the version", func(e cmdEnv) int {
		fmt.Fprintln(e.stdout, "wechat-relay", Version())
		return 0
	}},
}

// Run runs the command args names (args without the program's name)
// and returns the process's exit code: 0 done, 1 failed, 2 bad usage,
// or what the command documents. Commands get a context that ends on
// SIGINT or SIGTERM.
func Run(args []string, stdout, stderr io.Writer, env func(string) string) int {
	if len(args) == 0 {
		usage(stderr)
		return 2
	}
	name := args[0]
	switch name {
	case "help", "-h", "--help":
		usage(stdout)
		return 0
	}
	for _, c := range commands {
		if c.name != name {
			continue
		}
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		defer stop()
		return c.run(cmdEnv{ctx: ctx, args: args[1:], stdin: os.Stdin, stdout: stdout, stderr: stderr, getenv: env})
	}
	fmt.Fprintf(stderr, "wechat-relay: unknown command %q\n\n", name)
	usage(stderr)
	return 2
}

// configFlags parses -config (default WR_CONFIG) for serve and
// check-config, and loads and validates the configuration. On failure it
// has said why and returns the exit code.
func configFlags(e cmdEnv, name string) (cfg *configs.Config, path string, code int) {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	configPath := fs.String("config", e.getenv("WR_CONFIG"), "configuration file (none: embedded demo defaults)")
	if err := fs.Parse(e.args); err != nil {
		return nil, "", 2
	}
	cfg, err := configs.Check(*configPath, e.getenv)
	if err != nil {
		fmt.Fprintf(e.stderr, "wechat-relay: configuration is not valid:\n%s\n", indent(err.Error()))
		return nil, "", 1
	}
	return cfg, *configPath, 0
}

func checkConfigCommand(e cmdEnv) int {
	if _, _, code := configFlags(e, "check-config"); code != 0 {
		return code
	}
	fmt.Fprintln(e.stdout, "configuration OK")
	return 0
}

func serveCommand(e cmdEnv) int {
	cfg, path, code := configFlags(e, "serve")
	if code != 0 {
		return code
	}
	if err := system.Serve(e.ctx, cfg, path == "", e.stdout, e.stderr, Version()); err != nil {
		fmt.Fprintf(e.stderr, "wechat-relay: %v\n", err)
		return 1
	}
	return 0
}

// Version is the version the CLI prints, logs and writes into
// export manifests, and hands to the console for its exports: the one
// set at build time, else the module's version and VCS revision.
func Version() string {
	if version != "dev" {
		return version
	}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return version
	}
	v := bi.Main.Version
	for _, s := range bi.Settings {
		if s.Key == "vcs.revision" {
			v += " " + s.Value
		}
	}
	return v
}

func usage(w io.Writer) {
	fmt.Fprint(w, "usage: wechat-relay <command> [flags]\n\ncommands:\n")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, c := range commands {
		fmt.Fprintf(tw, "  %s\t%s\n", c.name, c.usage)
	}
	tw.Flush()
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
