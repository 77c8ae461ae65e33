package commands

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/wechat-relay/wechat-relay/configs"
	"github.com/wechat-relay/wechat-relay/relay/export"
)

// exportCommand runs `wechat-relay export` (eDiscovery): the messages of
// a conversation, a client, an employee or a search, with their delivery
// events, media, an HTML transcript and a manifest (export.Run), into a
// folder or, when -out ends in .zip, a zip file. Neither is overwritten:
// the folder must be empty or new, the zip new. A progress bar goes to
// stderr. Exit code 0 when written, 2 for bad flags, 3 on failure (a
// half-written zip or folder is left for inspection, and said so).
//
//	wechat-relay export [-config FILE] (-conv C | -client OPENID | -employee ID | -text T | ...) -out DIR|FILE.zip -by NAME
func exportCommand(ctx context.Context, args []string, stdout, stderr io.Writer, env func(string) string) int {
	fs := flag.NewFlagSet("export", flag.ContinueOnError)
	fs.SetOutput(stderr)
	configPath := fs.String("config", env("WR_CONFIG"), "configuration file naming the archive (none: the embedded demo archive)")
	sf := addSearchFlags(fs)
	out := fs.String("out", "", "where to write: a folder (new or empty), or FILE.zip (new)")
	by := fs.String("by", env("USER"), "who exports, for the manifest (default: $USER)")
	quiet := fs.Bool("quiet", false, "no progress bar")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: wechat-relay export [-config FILE] (-conv C | -client OPENID | -employee ID | -text T | -account A | -from/-to) -out DIR|FILE.zip -by NAME")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return searchUsage
	}
	if fs.NArg() > 0 {
		fs.Usage()
		return searchUsage
	}
	q, err := sf.query()
	if err != nil {
		fmt.Fprintf(stderr, "wechat-relay export: %v\n", err)
		return searchUsage
	}
	switch {
	case *out == "":
		err = fmt.Errorf("-out is required")
	case strings.TrimSpace(*by) == "":
		err = fmt.Errorf("-by is required (who exports, for the manifest)")
	case q.Account == "" && q.Client == "" && q.Employee == "" && q.Conv == "" && q.Text == "" && q.From.IsZero() && q.To.IsZero():
		err = fmt.Errorf("say what to export: -conv, -client, -employee, -text, -account or -from/-to")
	}
	if err != nil {
		fmt.Fprintf(stderr, "wechat-relay export: %v\n", err)
		return searchUsage
	}
	cfg, err := configs.Load(*configPath, env)
	if err != nil {
		fmt.Fprintf(stderr, "wechat-relay export: %v\n", err)
		return searchFailed
	}
	a, err := openForSearch(ctx, cfg)
	if err != nil {
		fmt.Fprintf(stderr, "wechat-relay export: %v\n", err)
		return searchFailed
	}
	defer a.Close()

	var sink export.Sink
	if strings.HasSuffix(strings.ToLower(*out), ".zip") {
		f, err := os.OpenFile(*out, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o640)
		if err != nil {
			fmt.Fprintf(stderr, "wechat-relay export: %v\n", err)
			return searchFailed
		}
		sink = export.NewZipSink(f)
	} else if sink, err = export.NewDirSink(*out); err != nil {
		fmt.Fprintf(stderr, "wechat-relay export: %v\n", err)
		return searchFailed
	}
	bar := &progressBar{w: stderr, quiet: *quiet}
	start := time.Now()
	man, err := export.Run(ctx, a, export.Request{Query: q, By: *by, Version: Version()}, sink, bar.update)
	bar.finish()
	if err != nil {
		fmt.Fprintf(stderr, "wechat-relay export: %v\n(the incomplete export at %s is not valid: remove it)\n", err, *out)
		return searchFailed
	}
	c := man.Counts
	fmt.Fprintf(stdout, "exported %d messages of %d conversations, %d delivery events, %d media files (%d not archived), covered by %d seals",
		c.Messages, c.Conversations, c.Events, c.Media, c.MediaMissing, c.Seals)
	if n := len(man.Unsealed); n > 0 {
		fmt.Fprintf(stdout, "; %d rows unsealed", n)
	}
	fmt.Fprintf(stdout, "\nto %s in %s (manifest.json lists the sha256 of every file)\n", *out, time.Since(start).Round(time.Millisecond))
	return searchFound
}

// progressBar draws export progress on stderr, one line at a time (no
// carriage returns: it reads well in a terminal and in a log alike), at
// most a line per second and at every change of phase.
type progressBar struct {
	w     io.Writer
	quiet bool
	last  time.Time
	phase string
	prog  export.Progress
}

func (b *progressBar) update(p export.Progress) {
	b.prog = p
	if b.quiet {
		return
	}
	if p.Phase == b.phase && time.Since(b.last) < time.Second {
		return
	}
	b.phase, b.last = p.Phase, time.Now()
	b.draw()
}

func (b *progressBar) draw() {
	p := b.prog
	switch p.Phase {
	case "rows":
		fmt.Fprintf(b.w, "export: rows  %s %d/%d\n", bar(p.Rows, p.RowsTotal), p.Rows, p.RowsTotal)
	case "media":
		fmt.Fprintf(b.w, "export: media %s %d/%d\n", bar(p.Media, p.MediaTotal), p.Media, p.MediaTotal)
	case "files":
		fmt.Fprintf(b.w, "export: writing files (%d rows, %d media)\n", p.Rows, p.MediaTotal)
	case "done":
		fmt.Fprintf(b.w, "export: done  %s %d rows, %d media\n", bar(1, 1), p.Rows, p.MediaTotal)
	}
}

func (b *progressBar) finish() {
	if !b.quiet && b.phase != "done" && b.prog.Phase != "" {
		b.draw()
	}
}

// bar is a 30-character bar of done out of total.
func bar(done, total int) string {
	const width = 30
	n := width
	if total > 0 {
		n = min(width, done*width/total)
	}
	return "[" + strings.Repeat("#", n) + strings.Repeat(".", width-n) + "]"
}
