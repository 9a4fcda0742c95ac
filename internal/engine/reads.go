package engine

import (
	"context"

	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"

	"github.com/switchover/switchover/internal/lang"
	"github.com/switchover/switchover/internal/plans"
)

// ExpandReads expands the steps whose for_each is over the outputs of
// read-only steps (ad.find_accounts, ssh.inventory): it plans those
// read-only instances (they change nothing, and answer with their outputs)
// and expands the waiting steps with what they read, like Terraform reads
// a data source while planning. Plugins must be configured. Plan calls it;
// an apply of a saved plan calls it before PlansFrom, and a read that
// changed since the plan then shows as instances the plan does not have.
func (g *Graph) ExpandReads(ctx context.Context, run *Run, noRefresh bool) hcl.Diagnostics {
	var diags hcl.Diagnostics
	pending := false
	for _, n := range g.Order {
		if n.pendingReads {
			pending = true
		}
	}
	if !pending {
		return nil
	}
	if g.readPlans == nil {
		g.readPlans = map[string]*InstancePlan{}
	}
	for _, n := range g.Order {
		switch {
		case n.pendingReads:
			d := g.expandNode(n, ModePlan, false)
			diags = append(diags, d...)
		case n.Schema.ReadOnly && g.feedsPending(n):
			d := g.read(ctx, n, run, noRefresh)
			diags = append(diags, d...)
		}
	}
	g.collectInstances()
	return diags
}

// feedsPending: a step waiting for reads refers to n.
func (g *Graph) feedsPending(n *StepNode) bool {
	for _, m := range g.Order {
		if !m.pendingReads {
			continue
		}
		for _, d := range m.Deps {
			if d == n.Step.Name {
				return true
			}
		}
	}
	return false
}

// read plans a read-only node's instances and makes what they read the
// node's value for the expansions after it.
func (g *Graph) read(ctx context.Context, n *StepNode, run *Run, noRefresh bool) hcl.Diagnostics {
	var diags hcl.Diagnostics
	placeholder := outputsPlaceholder(n.Schema)
	vals := map[string]cty.Value{}
	for _, in := range n.Instances {
		if in.Deferred != "" || !in.Attrs.IsWhollyKnown() {
			diags = append(diags, errDiag(n.Step.DeclRange.Ptr(), "Cannot read a step while planning", "%s is read while planning (a later for_each uses its outputs), but its attributes are known only after apply.", in.Address))
			return diags
		}
		p, d := g.planInstance(ctx, in, run, noRefresh)
		diags = append(diags, d...)
		g.readPlans[in.Address] = p
		if p.Action != plans.NoChange && p.Action != plans.Done {
			if !d.HasErrors() {
				diags = append(diags, errDiag(n.Step.DeclRange.Ptr(), "A read-only step wants a change", "%s.%s is declared read-only, but its plan for %s is %s: %s.", n.Step.Plugin, n.Step.Action, in.Address, p.Action, p.Summary))
			}
			return diags
		}
		v := g.instanceValue(in.Address, placeholder)
		if p.Outputs != nil {
			v = cty.ObjectVal(map[string]cty.Value{"outputs": outputsObject(n, p.Outputs)})
		}
		if in.Key == cty.NilVal {
			g.stepVals[n.Step.Name] = v
			return diags
		}
		vals[in.Key.AsString()] = v
	}
	g.stepVals[n.Step.Name] = instancesValue(vals, placeholder.Type())
	return diags
}

// outputsObject is a plugin's outputs as the object later steps see: every
// declared output, null where the plugin gave none.
func outputsObject(n *StepNode, outs map[string]cty.Value) cty.Value {
	m := map[string]cty.Value{}
	for _, o := range n.Schema.Outputs {
		v, ok := outs[o.Name]
		if !ok {
			v = cty.NullVal(o.Type)
		}
		if o.Sensitive {
			v = v.Mark(lang.SensitiveMark)
		}
		m[o.Name] = v
	}
	return cty.ObjectVal(m)
}
