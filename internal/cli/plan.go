package cli

import (
	"context"
	"fmt"
	"github.com/switchover/switchover/internal/audit"
	"github.com/switchover/switchover/internal/version"
	"io"
	"path/filepath"
	"strings"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"
	ctyjson "github.com/zclconf/go-cty/cty/json"

	"github.com/switchover/switchover/internal/engine"
	"github.com/switchover/switchover/internal/lang"
	"github.com/switchover/switchover/internal/plans"
	"github.com/switchover/switchover/internal/workspace"
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
	sess, diags, err := openSession(ctx, env, sessionOptions{Dir: o.Dir, Vars: o.Vars, PluginDir: o.PluginDir, Targets: o.Targets, NeedWorkspace: o.Out != "", Refresh: o.Refresh}, o.JSON)
	defer sess.close(env)
	fail := func(diags hcl.Diagnostics) int {
		if o.JSON {
			writeJSON(env.Stdout, map[string]any{"format_version": 1, "errored": true, "diagnostics": toJSONDiags(sess.files(), diags)})
		} else {
			printDiags(env.Stderr, sess.files(), diags)
		}
		return ExitError
	}
	if err != nil {
		return fail(hcl.Diagnostics{{Severity: hcl.DiagError, Summary: "Cannot open the workspace", Detail: err.Error()}})
	}
	if diags.HasErrors() {
		return fail(diags)
	}
	g := sess.g
	if d := g.Configure(ctx); d.HasErrors() {
		return fail(append(diags, d...))
	} else {
		diags = append(diags, d...)
	}
	ips, d := g.Plan(ctx, engine.PlanOptions{Parallelism: o.Parallelism, NoRefresh: !o.Refresh}, sess.run)
	diags = append(diags, d...)
	c := engine.Count(ips)
	if o.JSON {
		writeJSON(env.Stdout, planJSON(g, ips, c, sess.files(), diags))
	} else {
		renderPlan(env.Stdout, g, ips, c)
		printDiags(env.Stderr, sess.files(), diags)
	}
	if diags.HasErrors() {
		return ExitError
	}
	recordPlan(env, sess, c, diags, o.JSON)
	if o.Out != "" {
		sp := savedPlan(g, ips, o.Targets)
		sp.StateSerial = sess.stateSerial()
		// The plan file is authenticated with a key derived from the
		// workspace identity (made here on a first plan).
		id, created, err := sess.ws.Identity()
		if err != nil {
			fmt.Fprintf(env.Stderr, "switchover plan: cannot save the plan: workspace identity: %v\n", err)
			return ExitError
		}
		if created && sess.ws.Audit != nil {
			if err := sess.ws.Audit.Append(audit.EvIdentityCreated, "", map[string]any{"recipient": id.Recipient().String()}); err != nil {
				fmt.Fprintf(env.Stderr, "switchover plan: writing the audit trail: %v\n", err)
				return ExitError
			}
		}
		if err := plans.Write(o.Out, sp, workspace.PlanKey(id)); err != nil {
			fmt.Fprintf(env.Stderr, "switchover plan: cannot save the plan: %v\n", err)
			return ExitError
		}
		if !o.JSON {
			fmt.Fprintf(env.Stdout, "\nSaved the plan to %s. Apply exactly this plan with: switchover apply %s\n", o.Out, o.Out)
		}
	}
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

func savedPlan(g *engine.Graph, ips []*engine.InstancePlan, targets []string) *plans.Plan {
	p := &plans.Plan{
		FormatVersion:     plans.FormatVersion,
		SwitchoverVersion: version.Version,
		CreatedAt:         time.Now().UTC(),
		Runbook:           plans.RunbookRef{Name: g.Runbook.Meta.Name, Dir: absDir(g.Runbook.Dir), Hash: g.Runbook.Hash},
		Variables:         map[string]plans.Variable{},
		Targets:           targets,
	}
	for name, v := range g.Vars {
		p.Variables[name] = planVariable(v)
	}
	for _, ip := range ips {
		p.Instances = append(p.Instances, ip.Entry())
	}
	return p
}

// planVariable stores a value, or for a sensitive one (marked anywhere
// inside) only its salted hash.
func planVariable(v cty.Value) plans.Variable {
	sensitive := v.HasMark(lang.SensitiveMark) || v.ContainsMarked()
	clear, _ := v.UnmarkDeep()
	b, err := ctyJSON(clear)
	if err != nil {
		b = []byte(`null`)
	}
	if sensitive {
		return plans.Variable{Sensitive: true, Hash: plans.HashSecret(b)}
	}
	return plans.Variable{Value: b}
}

func absDir(d string) string {
	if a, err := filepath.Abs(d); err == nil {
		return a
	}
	return d
}

func ctyJSON(v cty.Value) ([]byte, error) { return ctyjson.Marshal(v, cty.DynamicPseudoType) }

// recordPlan writes the plan into the audit trail of a runbook that has a
// workspace. It needs the lock only for a moment; while an apply holds it,
// the plan stays read-only and says so.
func recordPlan(env *Env, sess *session, c plans.Counts, diags hcl.Diagnostics, quiet bool) {
	var warnings hcl.Diagnostics
	for _, d := range diags {
		if d.Severity == hcl.DiagWarning {
			warnings = append(warnings, d)
		}
	}
	if sess.ws == nil && len(warnings) > 0 {
		// Something a plugin did that the trail must hold (a host key
		// trusted on first use): make the workspace to record it.
		ws, err := openWorkspace(sess.g.Runbook.Dir)
		if err != nil {
			fmt.Fprintf(env.Stderr, "Note: the plugins' warnings are not recorded in an audit trail: %v\n", err)
			return
		}
		sess.ws = ws
	}
	if sess.ws == nil {
		return
	}
	if err := sess.ws.Lock("plan"); err != nil {
		if !quiet {
			fmt.Fprintf(env.Stderr, "Note: this plan is not recorded in the audit trail: %v\n", err)
		}
		return
	}
	for _, w := range warnings {
		if err := sess.ws.Audit.Append(audit.EvPluginWarning, "", map[string]any{"summary": w.Summary, "detail": w.Detail}); err != nil {
			fmt.Fprintf(env.Stderr, "switchover plan: writing the audit trail: %v\n", err)
		}
	}
	if err := sess.ws.Audit.Append(audit.EvPlan, "", map[string]any{"change": c.Change, "manual": c.Manual, "no_change": c.NoChange,
		"skipped": c.Skipped, "runbook_hash": sess.g.Runbook.Hash, "standalone": true}); err != nil {
		fmt.Fprintf(env.Stderr, "switchover plan: writing the audit trail: %v\n", err)
	}
}
