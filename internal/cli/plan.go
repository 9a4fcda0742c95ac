package cli

import (
	"context"
	"fmt"
	"github.com/switchover/switchover/internal/operation"
	"io"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"
	ctyjson "github.com/zclconf/go-cty/cty/json"

	"github.com/switchover/switchover/internal/engine"
	"github.com/switchover/switchover/internal/plans"
)

type planOptions struct {
	Dir              string
	Vars             []engine.VarInput
	PluginDir        string
	Out              string
	JSON             bool
	DetailedExitCode bool
	Targets          []string
	Parallelism      int
	Refresh          bool
}

func runPlan(ctx context.Context, env *Env, args []string) int {
	var o planOptions
	var targets listFlag
	fs := newFlags(env, "plan", "Asks every step instance's plugin to observe the real system, in parallel, and shows what\napply would change, what is already done and what needs a person. Changes nothing.", "[DIR]")
	addVarFlags(fs, &o.Vars)
	addPluginDirFlag(fs, &o.PluginDir)
	fs.StringVar(&o.Out, "out", "", "Save the plan to FILE for `switchover apply FILE`")
	fs.BoolVar(&o.JSON, "json", false, "Print the plan as JSON")
	fs.BoolVar(&o.DetailedExitCode, "detailed-exitcode", false, "Exit 2 when the plan has changes or steps for a person, 0 when it has none, 1 on error")
	fs.Var(&targets, "target", "Plan only step.NAME and the steps it depends on (repeatable)")
	fs.IntVar(&o.Parallelism, "parallelism", 10, "How many step instances are observed at once")
	fs.BoolVar(&o.Refresh, "refresh", true, "Observe steps the state records as done too (false: trust the state for them, faster)")
	pos, code, ok := parse(fs, args, 1)
	if !ok {
		return code
	}
	o.Dir, o.Targets = dirArg(pos), targets
	if o.Parallelism < 1 {
		fmt.Fprintln(env.Stderr, "switchover plan: -parallelism must be at least 1")
		return ExitError
	}
	return plan(ctx, env, o)
}

func plan(ctx context.Context, env *Env, o planOptions) int {
	sess, diags, err := operation.Open(ctx, operation.SessionOptions{Dir: o.Dir, Vars: o.Vars, PluginDir: o.PluginDir, Targets: o.Targets, NeedWorkspace: o.Out != "", Refresh: o.Refresh, Notices: env.Stderr, Quiet: o.JSON})
	defer closeSession(env, sess)
	fail := func(diags hcl.Diagnostics) int {
		if o.JSON {
			writeJSON(env.Stdout, map[string]any{"format_version": 1, "errored": true, "diagnostics": toJSONDiags(sess.Files(), diags)})
		} else {
			printDiags(env.Stderr, sess.Files(), diags)
		}
		return ExitError
	}
	if err != nil {
		return fail(hcl.Diagnostics{{Severity: hcl.DiagError, Summary: "Cannot open the workspace", Detail: err.Error()}})
	}
	if diags.HasErrors() {
		return fail(diags)
	}
	g := sess.Graph
	p := operation.Plan(sess, operation.PlanOptions{Parallelism: o.Parallelism, Refresh: o.Refresh})
	diags = append(diags, p.Diags...)
	if p.Unconfigured {
		return fail(diags)
	}
	if o.JSON {
		writeJSON(env.Stdout, planJSON(g, p.Instances, p.Counts, sess.Files(), diags))
	} else {
		renderPlan(env.Stdout, g, p.Instances, p.Counts)
		printDiags(env.Stderr, sess.Files(), diags)
	}
	if diags.HasErrors() {
		return ExitError
	}
	notes, err := operation.RecordPlan(sess, p)
	for _, n := range notes {
		if !o.JSON {
			fmt.Fprintln(env.Stderr, n)
		}
	}
	if err != nil {
		fmt.Fprintf(env.Stderr, "switchover plan: writing the audit trail: %v\n", err)
	}
	if o.Out != "" {
		if err := operation.SavePlan(sess, p, o.Out, o.Targets); err != nil {
			fmt.Fprintf(env.Stderr, "switchover plan: %v\n", err)
			return ExitError
		}
		if !o.JSON {
			fmt.Fprintf(env.Stdout, "\nSaved the plan to %s. Apply exactly this plan with: switchover apply %s\n", o.Out, o.Out)
		}
	}
	c := p.Counts
	if o.DetailedExitCode && (c.Change > 0 || c.Manual > 0 || c.Wait > 0) {
		return ExitChanges
	}
	return ExitOK
}

func renderPlan(w io.Writer, g *engine.Graph, ips []*engine.InstancePlan, c plans.Counts) {
	m := g.Runbook.Meta
	if m != nil {
		fmt.Fprintf(w, "Runbook %q", m.Name)
		if m.OldProvider != "" || m.NewProvider != "" {
			fmt.Fprintf(w, ": %s -> %s", orDash(m.OldProvider), orDash(m.NewProvider))
		}
		if m.Client != "" {
			fmt.Fprintf(w, " for %s", m.Client)
		}
		fmt.Fprintln(w)
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Symbols: ~ will change, ! needs a person, = already done, > due later, - skipped or gone")
	fmt.Fprintln(w)
	var b strings.Builder
	for _, p := range ips {
		if p.Action == plans.Failed {
			continue
		}
		sym := p.Action.Symbol()
		n := p.Instance.Node.Step
		// One line each: a remote name cannot add lines to the plan.
		fmt.Fprintf(&b, "  %s %s (%s.%s)\n      %s\n", sym, termLine(p.Instance.Address), n.Plugin, n.Action, termLine(p.Summary))
		for _, d := range p.Details {
			fmt.Fprintf(&b, "        %s\n", termLine(d))
		}
	}
	io.WriteString(w, b.String())
	fmt.Fprintf(w, "\nPlan: %d to change, %d for a person, %d already done, %d skipped", c.Change, c.Manual, c.NoChange, c.Skipped)
	if c.Wait > 0 {
		fmt.Fprintf(w, ", %d due later", c.Wait)
	}
	if c.Gone > 0 {
		fmt.Fprintf(w, ", %d gone (no longer found: recorded by the next apply)", c.Gone)
	}
	if c.Failed > 0 {
		fmt.Fprintf(w, ", %d failed to plan", c.Failed)
	}
	fmt.Fprintln(w, ".")
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func planJSON(g *engine.Graph, ips []*engine.InstancePlan, c plans.Counts, files map[string]*hcl.File, diags hcl.Diagnostics) map[string]any {
	inst := make([]plans.Instance, 0, len(ips))
	for _, p := range ips {
		inst = append(inst, p.Entry().Public())
	}
	return map[string]any{
		"format_version": 1,
		"runbook":        g.Runbook.Meta.Name,
		"runbook_hash":   g.Runbook.Hash,
		"errored":        diags.HasErrors(),
		"instances":      inst,
		"counts":         c,
		"diagnostics":    toJSONDiags(files, diags),
	}
}

func ctyJSON(v cty.Value) ([]byte, error) { return ctyjson.Marshal(v, cty.DynamicPseudoType) }
