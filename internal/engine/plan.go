package engine

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"

	"github.com/switchover/switchover/internal/plans"
	"github.com/switchover/switchover/internal/runbook"
	"github.com/switchover/switchover/internal/state"

	"github.com/switchover/switchover/plugins/sdk"
)

// DefaultPlanTimeout bounds one instance's Plan call when the step sets no timeout.
const DefaultPlanTimeout = 5 * time.Minute

// timeout is the step's timeout, or def when it sets none.
func (n *StepNode) timeout(def time.Duration) time.Duration {
	if n.Step.Timeout == 0 {
		return def
	}
	return n.Step.Timeout
}

// InstancePlan is the plan of one step instance.
type InstancePlan struct {
	Instance *Instance
	// Action says what apply does with it: the plan model's one enum.
	Action  plans.Action
	Summary string
	Details []string
	Private []byte
	Error   string // why it failed to plan
	// Outputs a NoChange plan reported.
	Outputs map[string]cty.Value
	// NotBefore, with Wait: when the step goes on.
	NotBefore time.Time
	// Target is the system the plugin said the step works on (redacted).
	Target string
	// Notes are the plugin's warnings and what it left for a person.
	Notes []state.Note
}

// Entry is the instance's plan as the plan file and `plan -json` hold it.
func (p *InstancePlan) Entry() plans.Instance {
	n := p.Instance.Node.Step
	return plans.Instance{
		Address: p.Instance.Address, Step: n.Name, Key: p.Instance.KeyString(), Plugin: n.PluginKey,
		Action: n.Plugin + "." + n.Action, Kind: p.Action, Summary: p.Summary, Details: p.Details, Private: p.Private,
	}
}

// Planned is what one plan walk found: an instance plan per instance (the
// gone ones last), and the expansion they belong to (the instances fresh
// reads yielded). Apply walks it; the graph stays as Build made it.
type Planned struct {
	Instances []*InstancePlan
	exp       *expansion
}

// Saved is a saved plan's walk: the reads are read again (unless
// noRefresh), and the plan's entries must be exactly the instances they
// yield now, with the state of run (which apply has checked is the state
// the plan saw).
func (g *Graph) Saved(ctx context.Context, entries []plans.Instance, run *Run, noRefresh bool) (*Planned, hcl.Diagnostics, error) {
	e := g.built.clone()
	if d := e.expandReads(ctx, run, noRefresh); d.HasErrors() {
		return nil, d, nil
	}
	ips, err := e.fromEntries(entries, run)
	if err != nil {
		return nil, nil, err
	}
	return &Planned{Instances: ips, exp: e}, nil, nil
}

// fromEntries rebuilds the instance plans from a saved plan's entries.
func (e *expansion) fromEntries(entries []plans.Instance, run *Run) ([]*InstancePlan, error) {
	byAddr := make(map[string]plans.Instance, len(entries))
	for _, en := range entries {
		byAddr[en.Address] = en
	}
	all := append(append(make([]*Instance, 0, len(e.instances)+len(e.gone)), e.instances...), e.gone...)
	out := make([]*InstancePlan, 0, len(all))
	if len(entries) != len(all) {
		have := map[string]bool{}
		for _, in := range all {
			have[in.Address] = true
		}
		for _, en := range entries {
			if !have[en.Address] {
				return nil, fmt.Errorf("the plan has %s, which the runbook no longer yields (a step read while planning found other objects)", en.Address)
			}
		}
	}
	for _, in := range all {
		en, ok := byAddr[in.Address]
		if !ok {
			return nil, fmt.Errorf("the plan has no entry for %s (a step read while planning found other objects since, or the runbook changed)", in.Address)
		}
		if en.Kind == plans.Invalid {
			return nil, fmt.Errorf("the plan entry of %s has no action", in.Address)
		}
		if (en.Kind == plans.Gone) != in.Gone {
			return nil, fmt.Errorf("the plan says %s is %s, but a step read now finds otherwise", in.Address, en.Kind)
		}
		ip := &InstancePlan{Instance: in, Action: en.Kind, Summary: en.Summary, Details: en.Details, Private: en.Private}
		if rp := e.readPlans[in.Address]; rp != nil {
			// Read again at apply: what later steps see is what it reads now.
			ip.Outputs = rp.Outputs
		}
		if st := run.Instance(in.Address); st != nil && st.Status == state.Done {
			// Made by an older switchover, a plan may say change or
			// no-change for a done instance.
			switch ip.Action {
			case plans.NoChange:
				ip.Action = plans.Done
			case plans.Change:
				ip.Action = plans.Drift
			}
		}
		out = append(out, ip)
	}
	return out, nil
}

// actionOf is the plan action a plugin's answer means.
func actionOf(k sdk.PlanKind) plans.Action {
	switch k {
	case sdk.Change:
		return plans.Change
	case sdk.NoChange:
		return plans.NoChange
	case sdk.Manual:
		return plans.Manual
	case sdk.Wait:
		return plans.Wait
	}
	return plans.Failed
}

// Count tallies plans.
func Count(ips []*InstancePlan) plans.Counts {
	var c plans.Counts
	for _, p := range ips {
		c.Add(p.Action)
	}
	return c
}

// Configure sends each used plugin configuration its settings.
func (g *Graph) Configure(ctx context.Context) hcl.Diagnostics {
	var diags hcl.Diagnostics
	used := map[string]bool{}
	for _, n := range g.Order {
		// Every targeted step's plugin: one expanded from reads has its
		// instances only once the reads ran.
		if n.Targeted && n.Plugin != nil && (len(n.Instances) > 0 || g.built.pending(n)) {
			used[n.Plugin.Key] = true
		}
	}
	for _, key := range keys(used) {
		pc := g.Plugins[key]
		pd, err := pc.Instance.Configure(ctx, pc.Config)
		rng := pc.DeclRange()
		if err != nil {
			diags = append(diags, errDiag(rng, "Plugin failed", "%s.", g.Redactor.String(err.Error())))
			continue
		}
		diags = append(diags, g.pluginDiags(pd, pc.Attrs, rng, "plugin "+key)...)
	}
	return diags
}

// DeclRange is the plugin block's range, or nil when implicit.
func (pc *PluginConfig) DeclRange() *hcl.Range {
	if pc.Block == nil {
		return nil
	}
	return pc.Block.DeclRange.Ptr()
}

// pluginDiags converts a plugin's diagnostics, pointing at the attribute they
// name, and redacts them.
func (g *Graph) pluginDiags(ds sdk.Diagnostics, attrs hcl.Attributes, fallback *hcl.Range, who string) hcl.Diagnostics {
	var out hcl.Diagnostics
	for _, d := range ds {
		sev := hcl.DiagError
		if d.Severity == sdk.Warning {
			sev = hcl.DiagWarning
		}
		rng := fallback
		if a, ok := attrs[d.Attribute]; ok && d.Attribute != "" {
			rng = a.Expr.Range().Ptr()
		}
		detail := d.Detail
		if detail == "" {
			detail = "Reported by " + who + "."
		}
		out = append(out, &hcl.Diagnostic{Severity: sev, Summary: g.Redactor.String(d.Summary), Detail: g.Redactor.String(detail), Subject: rng})
	}
	return out
}

// PlanOptions configure Plan.
type PlanOptions struct {
	Parallelism int
	// NoRefresh: trust the state for instances it records as done, without
	// asking their plugins to look (-refresh=false). By default every
	// instance is observed: a done step whose change was undid shows as drift.
	NoRefresh bool
}

// Plan asks every instance's plugin to observe the world, up to parallelism
// at once. run (may be nil) gives the state: done instances are observed
// too (unless NoRefresh), and every instance gets its last checkpoint.
func (g *Graph) Plan(ctx context.Context, o PlanOptions, run *Run) (*Planned, hcl.Diagnostics) {
	parallelism := o.Parallelism
	if parallelism < 1 {
		parallelism = 1
	}
	e := g.built.clone()
	readDiags := e.expandReads(ctx, run, o.NoRefresh)
	out := make([]*InstancePlan, len(e.instances))
	diagsAt := make([]hcl.Diagnostics, len(e.instances))
	jobs := make(chan int)
	var wg sync.WaitGroup
	for w := 0; w < parallelism; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range jobs {
				if p, ok := e.readPlans[e.instances[i].Address]; ok {
					out[i] = p // read while expanding
					continue
				}
				out[i], diagsAt[i] = g.planInstance(ctx, e.instances[i], run, o.NoRefresh)
			}
		}()
	}
	for i := range e.instances {
		jobs <- i
	}
	close(jobs)
	wg.Wait()
	diags := readDiags
	for _, d := range diagsAt {
		diags = append(diags, d...)
	}
	for _, in := range e.gone {
		out = append(out, g.gonePlan(in, run))
	}
	return &Planned{Instances: out, exp: e}, diags
}

func (g *Graph) planInstance(ctx context.Context, in *Instance, run *Run, noRefresh bool) (*InstancePlan, hcl.Diagnostics) {
	st := run.Instance(in.Address)
	if st != nil && st.Status == state.Done {
		// A person's confirmation cannot be observed again; everything else is.
		if noRefresh || st.Confirm != nil || in.Deferred != "" {
			p := &InstancePlan{Instance: in, Action: plans.Done}
			p.Summary = "done (recorded " + st.FinishedAt.Local().Format("2006-01-02 15:04:05") + "; not looked at again)"
			if st.Confirm != nil {
				p.Summary = fmt.Sprintf("done: confirmed by %s (%s)", st.Confirm.By, st.Confirm.Time.Local().Format("2006-01-02 15:04"))
			}
			return p, nil
		}
		p, diags := g.observe(ctx, in, run)
		switch p.Action {
		case plans.NoChange:
			p.Action = plans.Done
			p.Summary = "done (recorded " + st.FinishedAt.Local().Format("2006-01-02 15:04:05") + "), and still so: " + p.Summary
		case plans.Change:
			p.Action = plans.Drift
			p.Summary = "drift: done before (recorded " + st.FinishedAt.Local().Format("2006-01-02 15:04:05") + "), but changed since: " + p.Summary
		}
		return p, diags
	}
	return g.observe(ctx, in, run)
}

// observe asks an instance's plugin what would change.
func (g *Graph) observe(ctx context.Context, in *Instance, run *Run) (*InstancePlan, hcl.Diagnostics) {
	p := &InstancePlan{Instance: in, Action: plans.Failed}
	switch {
	case in.Disabled:
		p.Action = plans.Skipped
		p.Summary = "skipped: its `when` condition is false"
		return p, nil
	case in.Deferred != "":
		p.Action = plans.Deferred
		p.Summary = "decided during apply: " + in.Deferred
		return p, nil
	}
	timeout := in.Node.timeout(DefaultPlanTimeout)
	cp, err := run.Checkpoint(in.Address)
	n := in.Node
	if err != nil {
		return p, hcl.Diagnostics{errDiag(n.Step.DeclRange.Ptr(), "Plan failed for "+in.Address, "%s.", err)}
	}
	start := time.Now()
	resp, err := g.planCall(ctx, in, in.Attrs, cp, timeout)
	if err != nil {
		msg := g.Redactor.String(err.Error())
		p.Error = msg
		return p, hcl.Diagnostics{errDiag(n.Step.DeclRange.Ptr(), "Plan failed for "+in.Address, "%s.", msg)}
	}
	diags := g.pluginDiags(resp.Diagnostics, n.Attrs, n.Step.DeclRange.Ptr(), fmt.Sprintf("%s.%s for %s", n.Step.Plugin, n.Step.Action, in.Address))
	if diags.HasErrors() {
		if ctx.Err() == nil && time.Since(start) >= timeout {
			diags = append(diags, errDiag(n.Step.DeclRange.Ptr(), "Step timeout", "The plan of %s ran into the step's timeout (%s).", in.Address, timeout))
		}
		p.Error = diagText(diags)
		for _, d := range diags {
			if d.Severity == hcl.DiagError && d.Summary != "" {
				d.Summary = d.Summary + " (" + in.Address + ")"
			}
		}
		return p, diags
	}
	p.Action = actionOf(resp.Kind)
	p.Summary = g.Redactor.String(resp.Summary)
	p.Details = g.Redactor.Strings(resp.Details)
	p.Private = resp.Private
	p.Outputs = typedOutputs(n.Schema, resp.Outputs)
	p.NotBefore, p.Target, p.Notes = resp.NotBefore, g.target(resp), g.notes(resp.Diagnostics)
	return p, diags
}

// BlockingFailures are the instances that failed to plan of the steps that
// halt on failure and of which no instance could be planned: with any of
// them, apply must not start. Where some instances of a step were planned,
// the failed ones fail alone at apply, the others are applied, and then
// the run halts.
func BlockingFailures(ips []*InstancePlan) []*InstancePlan {
	planned := map[*StepNode]bool{}
	for _, p := range ips {
		if p.Action != plans.Failed {
			planned[p.Instance.Node] = true
		}
	}
	var out []*InstancePlan
	for _, p := range ips {
		if p.Action == plans.Failed && p.Instance.Node.Step.OnFailure != runbook.Continue && !planned[p.Instance.Node] {
			out = append(out, p)
		}
	}
	return out
}
