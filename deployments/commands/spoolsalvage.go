package commands

import (
	"flag"
	"fmt"
	"io"
	"path/filepath"

	"github.com/wechat-relay/wechat-relay/storage/spool"
)

// spoolSalvageCommand runs `wechat-relay spool-salvage -dir DIR`: it
// recovers a spool the relay refuses to start with ("spool: corrupt
// segment"), keeping every valid record and dropping the damaged bytes
// (spool.Salvage). The original of each damaged segment is kept beside
// it as <segment>.damaged. The relay must be stopped: the command takes
// the spool's directory lock and refuses while a relay holds it.
//
// Exit codes: 0 salvaged, or nothing to salvage; 1 error (nothing, or
// only the segments reported, changed); 2 bad flags.
func spoolSalvageCommand(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("spool-salvage", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dir := fs.String("dir", "", "the spool directory (<data_dir>/spool of the configuration)")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: wechat-relay spool-salvage -dir DIR\n\n"+
			"Keeps the valid records of damaged spool segments and drops the damaged bytes;\n"+
			"each original is kept as <segment>.damaged. Stop the relay first.\n\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *dir == "" || fs.NArg() > 0 {
		fs.Usage()
		return 2
	}
	rep, err := spool.Salvage(*dir, nil)
	printSalvaged(stdout, rep) // what changed, even if an error stopped it later
	if err != nil {
		fmt.Fprintf(stderr, "wechat-relay spool-salvage: %v\n", err)
		return 1
	}
	switch {
	case rep.Segments == 0:
		fmt.Fprintf(stdout, "spool %s: no segments, nothing to salvage\n", rep.Dir)
	case rep.Clean():
		fmt.Fprintf(stdout, "spool %s: %d segments checked, no damage, nothing to salvage, nothing changed; %d messages pending\n",
			rep.Dir, rep.Segments, rep.Pending)
	default:
		fmt.Fprintf(stdout, "spool %s: salvaged %d of %d segments; %d messages pending; the relay can start.\n"+
			"What the skipped bytes held is lost: messages accepted there are gone, a lost done record makes its messages pending again.\n",
			rep.Dir, len(rep.Salvaged), rep.Segments, rep.Pending)
	}
	return 0
}

// printSalvaged writes what Salvage kept and skipped in each segment it
// rewrote.
func printSalvaged(w io.Writer, rep spool.SalvageReport) {
	for _, sv := range rep.Salvaged {
		var lost int64
		for _, sk := range sv.Skipped {
			lost += sk.Length
		}
		fmt.Fprintf(w, "%s: kept %d records; skipped %d damaged bytes:\n", filepath.Base(sv.File), sv.Kept, lost)
		for _, sk := range sv.Skipped {
			fmt.Fprintf(w, "  skipped offset %d, %d bytes: %s\n", sk.Offset, sk.Length, sk.Reason)
		}
		fmt.Fprintf(w, "  original kept as %s\n", sv.Damaged)
	}
}
