package cli

import (
	"context"
	"errors"
	"fmt"
	"github.com/switchover/switchover/internal/audit"
	"github.com/switchover/switchover/internal/engine"
	"github.com/switchover/switchover/internal/operation"
	"github.com/switchover/switchover/internal/runbook"
	"github.com/zclconf/go-cty/cty"
	ctyjson "github.com/zclconf/go-cty/cty/json"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/switchover/switchover/internal/state"
	"github.com/switchover/switchover/internal/workspace"
)

// openExisting opens the workspace of a runbook that has been applied.
func openExisting(env *Env, verb, dir string) (*workspace.Workspace, bool) {
	if !operation.WorkspaceExists(dir) {
		fmt.Fprintf(env.Stderr, "switchover %s: %s has no state yet: nothing was applied there (the state lives in %s)\n", verb, dir, workspace.Path(dir))
		return nil, false
	}
	ws, err := operation.OpenWorkspace(dir)
	if err != nil {
		fmt.Fprintf(env.Stderr, "switchover %s: %v\n", verb, err)
		return nil, false
	}
	return ws, true
}

func runStatus(ctx context.Context, env *Env, args []string) int {
	var asJSON bool
	fs := newFlags(env, "status", "Shows the run recorded in DIR's state: each step instance's status, attempts, last error,\nand what waits for a person.", "[DIR]")
	fs.BoolVar(&asJSON, "json", false, "Print as JSON")
	pos, code, ok := parse(fs, args, 1)
	if !ok {
		return code
	}
	dir := dirArg(pos)
	ws, ok := openExisting(env, "status", dir)
	if !ok {
		return ExitError
	}
	defer func() { _ = ws.Close() }() // errors of a read-only or already-reported session
	var v statusView
	ws.State.View(func(s *state.Snapshot) {
		insts := s.SortedInstances()
		v.runID, v.outputs = s.RunID, s.RunOutputs
		v.insts = make([]*state.Instance, len(insts))
		for i, in := range insts {
			x := *in
			v.insts[i] = &x
		}
	})
	v.counts = map[string]int{} // by the status shown: due_later apart from waiting
	for _, in := range v.insts {
		v.counts[in.Shown()]++
	}
	if asJSON {
		statusJSON(env, v)
		return ExitOK
	}
	statusText(env, ws, dir, v)
	return ExitOK
}

// statusView is what status shows, read from the state.
type statusView struct {
	insts   []*state.Instance
	runID   string
	outputs map[string]*state.RunOutput
	counts  map[string]int
}

func statusJSON(env *Env, v statusView) {
	var list []map[string]any
	jsonCounts := map[state.Status]int{}
	for _, in := range v.insts {
		jsonCounts[in.Status]++
		m := map[string]any{"address": in.Address, "status": in.Status, "attempts": in.Attempts, "summary": in.Summary, "error": in.Error}
		if !in.StartedAt.IsZero() {
			m["started_at"] = in.StartedAt
		}
		if !in.FinishedAt.IsZero() {
			m["finished_at"] = in.FinishedAt
		}
		if !in.Until.IsZero() {
			m["until"] = in.Until // waits for this time, not for a person
			m["due_later"] = true
		}
		if len(in.Notes) > 0 {
			m["notes"] = in.Notes
		}
		if in.Confirm != nil {
			m["confirmed_by"], m["confirmed_at"], m["confirm_note"] = in.Confirm.By, in.Confirm.Time, in.Confirm.Note
		}
		list = append(list, m)
	}
	outs := map[string]any{}
	for name, o := range v.outputs {
		if o.Sealed != nil {
			outs[name] = map[string]any{"sensitive": true}
		} else {
			outs[name] = map[string]any{"value": o.Value}
		}
	}
	writeJSON(env.Stdout, map[string]any{"format_version": 1, "run": v.runID, "instances": list, "counts": jsonCounts, "due_later": v.counts["due_later"], "outputs": outs})
}

func statusText(env *Env, ws *workspace.Workspace, dir string, v statusView) {
	w := env.Stdout
	if holder, locked := lockHolder(ws); locked {
		beat := ""
		if !holder.Heartbeat.IsZero() {
			beat = fmt.Sprintf(", last heard from %s ago", time.Since(holder.Heartbeat).Round(time.Second))
		}
		fmt.Fprintf(w, "An apply is running or was cut off: %s %s on %s (pid %d) since %s%s.\n\n", holder.User, holder.Operation, holder.Host, holder.PID, holder.Since.Local().Format("2006-01-02 15:04:05"), beat)
	}
	if len(v.insts) == 0 {
		if v.runID != "" {
			fmt.Fprintf(w, "No step has started yet: the last apply (run %s) was cut off or stopped before its first step began (while planning or waiting for approval). Nothing was changed by it; run `switchover apply %s` again.\n", v.runID, dir)
		} else {
			fmt.Fprintf(w, "No apply has started a step here yet. Run `switchover apply %s`.\n", dir)
		}
		return
	}
	waiting, later := statusTable(w, v.insts)
	var parts []string
	for _, st := range []string{"done", "running", "failed", "waiting", "due_later", "skipped", "gone", "pending"} {
		if v.counts[st] > 0 {
			word := st
			switch st {
			case "waiting":
				word = "waiting for a person"
			case "due_later":
				word = "due later"
			}
			parts = append(parts, fmt.Sprintf("%d %s", v.counts[st], word))
		}
	}
	fmt.Fprintf(w, "\n%d step instances recorded: %s.\n", len(v.insts), strings.Join(parts, ", "))
	statusOutputs(w, v.outputs)
	if v.counts["running"] > 0 {
		fmt.Fprintln(w, "Steps marked running were cut off; the next apply asks their plugins to look again before anything is repeated.")
	}
	if len(later) > 0 {
		fmt.Fprintln(w, "\nStarted, and due again later (apply again after the time shown):")
		for _, in := range later {
			due := in.Until.Local().Format("2006-01-02 15:04 MST")
			if d := time.Until(in.Until); d > 0 {
				due += " (in " + d.Round(time.Minute).String() + ")"
			} else {
				due += " (due now)"
			}
			fmt.Fprintf(w, "  %s: %s\n    due: %s\n", in.Address, firstLine(termSafe(in.Summary)), due)
		}
	}
	if len(waiting) > 0 {
		fmt.Fprintln(w, "\nWaiting for a person (do it, then record it):")
		for _, in := range waiting {
			fmt.Fprintf(w, "  %s: %s\n    switchover confirm '%s' --by \"NAME\" --note \"what was done\"\n", in.Address, firstLine(in.Summary), in.Address)
		}
	}
}

// statusTable prints a line per instance; it returns those waiting for a
// person and those due later.
func statusTable(w io.Writer, insts []*state.Instance) (waiting, later []*state.Instance) {
	fmt.Fprintf(w, "%-50s %-9s %8s  %-19s  %s\n", "STEP", "STATUS", "ATTEMPTS", "UPDATED", "SUMMARY / ERROR")
	for _, in := range insts {
		text := termSafe(in.Summary)
		if in.Error != "" {
			text = "error: " + termSafe(in.Error)
		}
		if in.Confirm != nil && in.Status == state.Done {
			text = fmt.Sprintf("confirmed by %s at %s", in.Confirm.By, in.Confirm.Time.Local().Format("2006-01-02 15:04"))
			if in.Confirm.Note != "" {
				text += ": " + in.Confirm.Note
			}
		}
		fmt.Fprintf(w, "%-50s %-9s %8d  %-19s  %s\n", in.Address, in.Shown(), in.Attempts, stamp(in.UpdatedAt), firstLine(text))
		if in.WaitsForPerson() {
			waiting = append(waiting, in)
		}
		if in.DueLater() {
			later = append(later, in)
		}
	}
	return waiting, later
}

// statusOutputs prints the run's outputs as the last apply recorded them.
func statusOutputs(w io.Writer, outputs map[string]*state.RunOutput) {
	if len(outputs) == 0 {
		return
	}
	fmt.Fprintln(w, "\nOutputs (as the last apply recorded them):")
	names := make([]string, 0, len(outputs))
	for n := range outputs {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		o := engine.OutputValue{Name: n, Sensitive: outputs[n].Sealed != nil, Value: cty.NullVal(cty.DynamicPseudoType)}
		if v, err := ctyjson.Unmarshal(outputs[n].Value, cty.DynamicPseudoType); err == nil {
			o.Value = v
		}
		fmt.Fprintf(w, "  %s = %s\n", n, termSafe(showValue(o)))
	}
}

func lockHolder(ws *workspace.Workspace) (state.LockInfo, bool) {
	h, ok, err := ws.State.Backend().LockHolder()
	if err != nil {
		return state.LockInfo{User: "?", Host: "?", Operation: "(" + err.Error() + ")"}, true
	}
	return h, ok
}

func stamp(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.Local().Format("2006-01-02 15:04:05")
}

func firstLine(s string) string {
	first, _, _ := strings.Cut(s, "\n")
	return first
}

func runConfirm(ctx context.Context, env *Env, args []string) int {
	var by, note string
	fs := newFlags(env, "confirm", "Records that a person did a step that waits for a person: who, when, and a note. The next\napply continues past it. STEP is its address, such as step.registrar or 'step.keys[\"web1\"]'.", "STEP [DIR]")
	fs.StringVar(&by, "by", "", "Who did it (required): a name, not a role")
	fs.StringVar(&note, "note", "", "What was done, for the record")
	pos, code, ok := parse(fs, args, 2)
	if !ok {
		return code
	}
	if len(pos) == 0 {
		fmt.Fprintln(env.Stderr, "switchover confirm: name the step: switchover confirm STEP --by NAME")
		return ExitError
	}
	addr, dir := pos[0], "."
	if len(pos) == 2 {
		if !runbook.IsAddress(addr) && runbook.IsAddress(pos[1]) {
			addr, dir = pos[1], pos[0]
		} else {
			dir = pos[1]
		}
	}
	if !runbook.IsAddress(addr) {
		addr = "step." + addr
	}
	if strings.TrimSpace(by) == "" {
		fmt.Fprintln(env.Stderr, "switchover confirm: --by NAME is required: a confirmation counts only when someone signs it")
		return ExitError
	}
	ws, ok := openExisting(env, "confirm", dir)
	if !ok {
		return ExitError
	}
	defer func() { _ = ws.Close() }() // errors of a read-only or already-reported session
	if err := ws.Lock("confirm"); err != nil {
		fmt.Fprintf(env.Stderr, "switchover confirm: %v\n", err)
		return ExitError
	}
	if err := operation.Confirm(ws, addr, by, note); err != nil {
		fmt.Fprintf(env.Stderr, "switchover confirm: %v\n", err)
		return ExitError
	}
	fmt.Fprintf(env.Stdout, "Recorded: %s confirmed by %s. Run apply again to continue past it.\n", addr, by)
	return ExitOK
}

func runUnlock(ctx context.Context, env *Env, args []string) int {
	fs := newFlags(env, "unlock", "Removes the state lock of DIR, left by an apply that is gone (one on another host, or\none switchover could not detect as dead). Make sure no apply is running.", "[DIR]")
	pos, code, ok := parse(fs, args, 1)
	if !ok {
		return code
	}
	dir := dirArg(pos)
	ws, ok := openExisting(env, "unlock", dir)
	if !ok {
		return ExitError
	}
	defer func() { _ = ws.Close() }() // errors of a read-only or already-reported session
	holder, err := ws.ForceUnlock()
	if errors.Is(err, state.ErrNotLocked) {
		fmt.Fprintln(env.Stdout, "The state is not locked.")
		return ExitOK
	}
	if err != nil {
		fmt.Fprintf(env.Stderr, "switchover unlock: %v\n", err)
		return ExitError
	}
	if err := ws.Audit.Append(audit.EvUnlocked, "", map[string]any{"held_by": holder.User + "@" + holder.Host, "pid": holder.PID}); err != nil {
		fmt.Fprintf(env.Stderr, "switchover unlock: the lock is removed, but the audit trail could not be written: %v\n", err)
		return ExitError
	}
	fmt.Fprintf(env.Stdout, "Removed the lock held by %s %s on %s (pid %d) since %s.\n", holder.User, holder.Operation, holder.Host, holder.PID, stamp(holder.Since))
	return ExitOK
}
