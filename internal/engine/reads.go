package engine

import (
	"context"
	"fmt"
	"sort"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"

	"github.com/switchover/switchover/internal/lang"
	"github.com/switchover/switchover/internal/plans"
	"github.com/switchover/switchover/internal/state"
)

// expandReads reads the read-only steps (ad.find_accounts, ssh.inventory)
// that other steps refer to, and expands those steps with what was read,
// like Terraform reads a data source while planning. Read-only steps are
// read on every plan, done or not (with Options.FreshReads): an account
// added since the last apply is a new instance, and an instance whose key
// the read no longer yields is gone. Plugins must be configured. A plan
// walk calls it on its own expansion; so does an apply of a saved plan,
// and a read that changed since the plan then shows as instances the plan
// does not have.
func (e *expansion) expandReads(ctx context.Context, run *Run, noRefresh bool) hcl.Diagnostics {
	var diags hcl.Diagnostics
	pending := map[*StepNode]bool{}
	for _, n := range e.g.Order {
		if e.pending(n) {
			pending[n] = true
		}
	}
	if len(pending) == 0 {
		return nil
	}
	e.readPlans = map[string]*InstancePlan{}
	failed := map[string]bool{} // steps whose read failed, and what depends on them
	for _, n := range e.g.Order {
		if pending[n] {
			if dependsOnFailed(n, failed) {
				failed[n.Step.Name] = true
				e.stepVals[n.Step.Name] = cty.DynamicVal
				continue
			}
			diags = append(diags, e.expandNode(n, false)...)
			e.node(n).fromReads = true
		}
		if n.Schema.ReadOnly && e.feedsPending(n, pending) {
			d := e.read(ctx, n, run, noRefresh)
			diags = append(diags, d...)
			if d.HasErrors() {
				failed[n.Step.Name] = true
			}
		}
	}
	e.collectInstances()
	e.gone = e.goneInstances(run)
	return diags
}

func dependsOnFailed(n *StepNode, failed map[string]bool) bool {
	for _, r := range n.refs {
		if failed[r] {
			return true
		}
	}
	return false
}

// feedsPending: a step expanded from reads refers to n.
func (e *expansion) feedsPending(n *StepNode, pending map[*StepNode]bool) bool {
	for _, m := range e.g.Order {
		if pending[m] && contains(m.refs, n.Step.Name) {
			return true
		}
	}
	return false
}

// feedsForEach: a step expanded from reads has a for_each that refers to n.
func (e *expansion) feedsForEach(n *StepNode) bool {
	for _, m := range e.g.Order {
		ni := e.nodes[m]
		if ni == nil || !ni.pendingReads || m.Step.ForEach == nil {
			continue
		}
		for _, r := range lang.References(m.Step.ForEach) {
			if r.Kind == "step" && r.Name == n.Step.Name {
				return true
			}
		}
	}
	return false
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// read plans a read-only node's instances and makes what they read the
// node's value for the expansions after it. An instance that cannot be
// read yet (its attributes wait for earlier steps) leaves the value
// unknown: an error only when a for_each needs it.
func (e *expansion) read(ctx context.Context, n *StepNode, run *Run, noRefresh bool) hcl.Diagnostics {
	var diags hcl.Diagnostics
	g := e.g
	placeholder := outputsPlaceholder(n.Schema)
	vals := map[string]cty.Value{}
	for _, in := range e.of(n) {
		if in.Deferred != "" || !in.Attrs.IsWhollyKnown() {
			if e.feedsForEach(n) {
				diags = append(diags, errDiag(n.Step.DeclRange.Ptr(), "Cannot read a step while planning", "%s is read while planning (a later for_each uses its outputs), but its attributes are known only after apply.", in.Address))
			}
			e.stepVals[n.Step.Name] = placeholderValue(n, placeholder)
			return diags
		}
		p, d := g.planInstance(ctx, in, run, noRefresh)
		diags = append(diags, d...)
		e.readPlans[in.Address] = p
		if p.Action != plans.NoChange && p.Action != plans.Done {
			if !d.HasErrors() {
				diags = append(diags, errDiag(n.Step.DeclRange.Ptr(), "A read-only step wants a change", "%s.%s is declared read-only, but its plan for %s is %s: %s.", n.Step.Plugin, n.Step.Action, in.Address, p.Action, p.Summary))
			}
			return diags
		}
		v := placeholder
		if p.Outputs != nil {
			v = cty.ObjectVal(map[string]cty.Value{"outputs": outputsObject(n, p.Outputs)})
		} else if g.opts.KnownOutputs != nil {
			// Not looked at again (-refresh=false, or a confirmed step): as
			// the state recorded it.
			if outs, ok := g.opts.KnownOutputs(in.Address, n.Schema.Outputs); ok {
				v = cty.ObjectVal(map[string]cty.Value{"outputs": outs})
			}
		}
		if in.Key == cty.NilVal {
			e.stepVals[n.Step.Name] = v
			return diags
		}
		vals[in.Key.AsString()] = v
	}
	e.stepVals[n.Step.Name] = instancesValue(vals, placeholder.Type())
	return diags
}

// placeholderValue is a node's value before it ran: its outputs unknown.
func placeholderValue(n *StepNode, placeholder cty.Value) cty.Value {
	if n.Step.ForEach == nil {
		return placeholder
	}
	return cty.DynamicVal
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

// goneInstances are the recorded instances of the steps expanded from
// reads whose keys the reads no longer yield (the object was deleted, or
// no longer matches): shown as gone, recorded by apply, never an error.
// One recorded as gone already is not listed again.
func (e *expansion) goneInstances(run *Run) []*Instance {
	if run == nil || run.State == nil {
		return nil
	}
	var out []*Instance
	for _, n := range e.g.Order {
		ni := e.nodes[n]
		if ni == nil || !ni.fromReads || !n.Targeted || n.Step.ForEach == nil {
			continue
		}
		have := make(map[string]bool, len(ni.instances))
		for _, in := range ni.instances {
			have[in.Address] = true
		}
		prefix := n.Step.Address() + "["
		var gone []*Instance
		run.State.View(func(s *state.Snapshot) {
			for addr, st := range s.Instances {
				if !strings.HasPrefix(addr, prefix) || have[addr] || st.Status == state.Gone {
					continue
				}
				key, ok := instanceKey(addr[len(n.Step.Address()):])
				if !ok {
					continue
				}
				gone = append(gone, &Instance{Node: n, Key: cty.StringVal(key), Address: addr, Gone: true})
			}
		})
		sort.Slice(gone, func(i, j int) bool { return gone[i].Address < gone[j].Address })
		out = append(out, gone...)
	}
	return out
}

// instanceKey parses `["key"]`.
func instanceKey(s string) (string, bool) {
	var k string
	if len(s) < 4 || s[0] != '[' || s[len(s)-1] != ']' {
		return "", false
	}
	if _, err := fmt.Sscanf(s[1:len(s)-1], "%q", &k); err != nil {
		return "", false
	}
	return k, true
}

// gonePlan is the plan of an instance whose object is gone.
func (g *Graph) gonePlan(in *Instance, run *Run) *InstancePlan {
	st := run.Instance(in.Address)
	was := "never applied"
	if st != nil {
		was = "it was " + string(st.Status)
		if st.Status == state.Done {
			was = "it was done " + st.FinishedAt.Local().Format("2006-01-02 15:04:05")
		}
	}
	feeds := make([]string, 0, len(in.Node.refs))
	for _, r := range in.Node.refs {
		if m := g.Steps[r]; m != nil && m.Schema.ReadOnly {
			feeds = append(feeds, m.Step.Address())
		}
	}
	by := "the steps it is expanded from"
	if len(feeds) > 0 {
		by = strings.Join(feeds, ", ")
	}
	return &InstancePlan{Instance: in, Action: plans.Gone,
		Summary: fmt.Sprintf("gone: %s no longer finds it (%s); recorded as gone, nothing to do", by, was)}
}
