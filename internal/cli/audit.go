package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"github.com/switchover/switchover/internal/operation"
	"path/filepath"

	"github.com/switchover/switchover/internal/audit"
	"github.com/switchover/switchover/internal/workspace"
)

func runAudit(ctx context.Context, env *Env, args []string) int {
	usage := "Usage: switchover audit verify [DIR]\n       switchover audit show [DIR] [-json]\n"
	if len(args) == 0 || (args[0] != "verify" && args[0] != "show") {
		if len(args) > 0 && (args[0] == "-h" || args[0] == "--help" || args[0] == "-help") {
			fmt.Fprint(env.Stdout, usage+"\nverify: checks the hash chain and the head recorded in the state; names every changed,\ndeleted, inserted or reordered line.\nshow: prints the trail.\n")
			return ExitOK
		}
		fmt.Fprint(env.Stderr, usage)
		return ExitError
	}
	verb := args[0]
	var asJSON bool
	fs := newFlags(env, "audit "+verb, "Verifies or shows the audit trail of DIR.", "[DIR]")
	if verb == "show" {
		fs.BoolVar(&asJSON, "json", false, "Print the entries as JSON lines")
	}
	pos, code, ok := parse(fs, args[1:], 1)
	if !ok {
		return code
	}
	dir := dirArg(pos)
	if !operation.WorkspaceExists(dir) {
		fmt.Fprintf(env.Stderr, "switchover audit: %s has no state yet: nothing was applied there\n", dir)
		return ExitError
	}
	snap, data, err := operation.ReadTrail(dir)
	if err != nil {
		fmt.Fprintf(env.Stderr, "switchover audit: %v\n", err)
		return ExitError
	}
	path := filepath.Join(workspace.Path(dir), audit.FileName)
	entries, problems := audit.Verify(data, snap.AuditSeq, snap.AuditHash)
	if verb == "show" {
		for _, e := range entries {
			if asJSON {
				b, _ := json.Marshal(e)
				fmt.Fprintln(env.Stdout, string(b))
				continue
			}
			fields := ""
			if len(e.Fields) > 0 {
				b, _ := json.Marshal(e.Fields)
				fields = " " + string(b)
			}
			fmt.Fprintln(env.Stdout, termLine(fmt.Sprintf("%6d %s %-16s %-18s %s%s", e.Seq, e.Time.Local().Format("2006-01-02 15:04:05"), e.Actor, e.Event, e.Address, fields)))
		}
		if len(problems) > 0 {
			fmt.Fprintf(env.Stderr, "Warning: the audit trail does not verify (%d problems); run `switchover audit verify`.\n", len(problems))
		}
		return ExitOK
	}
	if audit.OnlyPastHead(problems) {
		// Not tampering: a run that was cut off wrote lines it could not
		// anchor in the state; the next command that takes the lock
		// records them (unanchored_lines_found).
		fmt.Fprintf(env.Stderr, "The audit trail %s has an unbroken chain, but its last %d line(s) come after the head recorded in the state: a run that was cut off (or one still running) wrote them before it could anchor them. The next apply, confirm or handover bundle records them. Until then they are not vouched for:\n", path, len(problems))
		for _, p := range problems {
			fmt.Fprintf(env.Stderr, "  %s\n", p)
		}
		return ExitError
	}
	if len(problems) > 0 {
		fmt.Fprintf(env.Stderr, "The audit trail %s has been tampered with or damaged:\n", path)
		for _, p := range problems {
			fmt.Fprintf(env.Stderr, "  %s\n", p)
		}
		return ExitError
	}
	last := "(empty)"
	if len(entries) > 0 {
		last = audit.LineHash(data)
	}
	fmt.Fprintf(env.Stdout, "The audit trail verifies: %d entries, unbroken chain, ending at the head recorded in the state.\nHead: seq %d, sha256 %s\n", len(entries), len(entries), last)
	return ExitOK
}
