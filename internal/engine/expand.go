package engine

import (
	"fmt"

	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"

	"github.com/switchover/switchover/internal/lang"
	"github.com/switchover/switchover/plugins/sdk"
)

// expansion is one walk's step instances: Build's (the configuration, kept
// in the Graph and never changed after), or a plan's, which starts from
// Build's and expands the steps fed by read-only steps from what those
// read now (like Terraform reading a data source while planning). The
// graph is shared; everything a walk finds lives here.
type expansion struct {
	g     *Graph
	mode  Mode
	scope lang.Scope // the graph's, with Steps = stepVals
	// stepVals are the steps' values as expansion saw them.
	stepVals map[string]cty.Value
	nodes    map[*StepNode]*nodeInstances
	// readPlans are the plans of read-only instances read while expanding
	// (the plan walk does not ask again).
	readPlans map[string]*InstancePlan
	instances []*Instance // the targeted nodes', in Order
	// gone are the recorded instances whose keys the fresh reads no longer
	// yield: planned as plans.Gone, recorded by apply.
	gone []*Instance
}

// nodeInstances are one node's instances in an expansion.
type nodeInstances struct {
	instances []*Instance
	// pendingReads: its for_each waits for read-only steps, read once
	// plugins are configured (expandReads).
	pendingReads bool
	// fromReads: expandReads expanded it, from what the reads found.
	fromReads bool
}

func newExpansion(g *Graph, mode Mode) *expansion {
	e := &expansion{g: g, mode: mode, scope: *g.scope, stepVals: map[string]cty.Value{}, nodes: map[*StepNode]*nodeInstances{}}
	e.scope.Steps = e.stepVals
	return e
}

// clone is a copy a walk may change without touching e.
func (e *expansion) clone() *expansion {
	c := newExpansion(e.g, ModePlan)
	for k, v := range e.stepVals {
		c.stepVals[k] = v
	}
	for n, ni := range e.nodes {
		cp := *ni
		c.nodes[n] = &cp
	}
	c.instances = e.instances
	return c
}

func (e *expansion) node(n *StepNode) *nodeInstances {
	ni := e.nodes[n]
	if ni == nil {
		ni = &nodeInstances{}
		e.nodes[n] = ni
	}
	return ni
}

// of is a node's instances in this expansion.
func (e *expansion) of(n *StepNode) []*Instance {
	if ni := e.nodes[n]; ni != nil {
		return ni.instances
	}
	return nil
}

// pending: some node waits for reads.
func (e *expansion) pending(n *StepNode) bool {
	ni := e.nodes[n]
	return ni != nil && ni.pendingReads
}

// outputsPlaceholder is a step instance's outputs before it has run:
// unknown values of the declared types.
func outputsPlaceholder(as *sdk.ActionSchema) cty.Value {
	m := map[string]cty.Value{}
	for _, o := range as.Outputs {
		v := cty.UnknownVal(o.Type)
		if o.Sensitive {
			v = v.Mark(lang.SensitiveMark)
		}
		m[o.Name] = v
	}
	return cty.ObjectVal(map[string]cty.Value{"outputs": cty.ObjectVal(m)})
}

// expandAll expands every node in order (Build).
func (e *expansion) expandAll() hcl.Diagnostics {
	var diags hcl.Diagnostics
	for _, n := range e.g.Order {
		diags = append(diags, e.expandNode(n, true)...)
	}
	e.collectInstances()
	return diags
}

// collectInstances lists the targeted nodes' instances, in order.
func (e *expansion) collectInstances() {
	e.instances = nil
	for _, n := range e.g.Order {
		if n.Targeted {
			e.instances = append(e.instances, e.of(n)...)
		}
	}
}

// expandNode makes a node's instances, with the step values known so far
// (e.stepVals), and records the node's own value there. In a plan, a
// for_each over the outputs of read-only steps (read only once plugins are
// configured) is left pending when mayDefer, for expandReads.
func (e *expansion) expandNode(n *StepNode, mayDefer bool) hcl.Diagnostics {
	var diags hcl.Diagnostics
	s := n.Step
	stepVals := e.stepVals
	base := e.scope.EvalContext(nil)
	placeholder := outputsPlaceholder(n.Schema)
	ni := &nodeInstances{}
	e.nodes[n] = ni
	if e.mode == ModePlan && mayDefer && e.g.opts.FreshReads && e.refersToReads(n) {
		// Expanded by expandReads, from what its reads find now.
		ni.pendingReads = true
		stepVals[s.Name] = cty.DynamicVal
		return nil
	}
	if s.ForEach == nil {
		in := &Instance{Node: n, Address: s.Address()}
		diags = append(diags, e.evalInstance(in, base, nil)...)
		ni.instances = []*Instance{in}
		stepVals[s.Name] = e.instanceValue(n, in.Address, placeholder)
		return diags
	}
	fe, d := s.ForEach.Value(base)
	diags = append(diags, d...)
	if !d.HasErrors() && fe.IsMarked() {
		diags = append(diags, errDiag(s.ForEach.Range().Ptr(), "Invalid for_each argument", "for_each cannot use a sensitive value: its keys become step addresses, which are shown and stored in clear."))
	}
	if diags.HasErrors() {
		stepVals[s.Name] = cty.DynamicVal
		return diags
	}
	var each []lang.Each
	known := fe.IsKnown()
	if known {
		// One iteration (a cty set is sorted on each) yields the
		// instances and says whether every key is known.
		each, d = forEachElems(fe, s.ForEach.Range())
		diags = append(diags, d...)
		for _, it := range each {
			if !it.Key.IsKnown() {
				known = false
			}
		}
	}
	if !known {
		stepVals[s.Name] = cty.DynamicVal
		return append(diags, e.unknownForEach(n, base, mayDefer)...)
	}
	vals := map[string]cty.Value{}
	for _, it := range each {
		k := it.Key.AsString()
		in := &Instance{Node: n, Key: it.Key, Address: fmt.Sprintf("%s[%q]", s.Address(), k)}
		diags = append(diags, e.evalInstance(in, base, &lang.Each{Key: it.Key, Value: it.Value})...)
		ni.instances = append(ni.instances, in)
		vals[k] = e.instanceValue(n, in.Address, placeholder)
	}
	stepVals[s.Name] = instancesValue(vals, placeholder.Type())
	return diags
}

// unknownForEach: a step whose for_each is not known yet. A plan defers
// it to its reads, or says why it cannot be planned; validation checks its
// body once, with each.key and each.value unknown.
func (e *expansion) unknownForEach(n *StepNode, base *hcl.EvalContext, mayDefer bool) hcl.Diagnostics {
	s := n.Step
	if e.mode == ModePlan {
		if mayDefer && e.readsOnly(s.ForEach) {
			e.node(n).pendingReads = true
			return nil
		}
		return hcl.Diagnostics{errDiag(s.ForEach.Range().Ptr(), "Invalid for_each argument", "for_each depends on values known only after apply (another step's outputs, or a variable without a value), so the instances of step %q cannot be determined now. Only the outputs of read-only steps (such as ad.find_accounts) are read while planning.", stepLabel(s))}
	}
	in := &Instance{Node: n, Address: s.Address() + "[*]", Key: cty.UnknownVal(cty.String)}
	e.node(n).instances = []*Instance{in}
	return e.evalInstance(in, base, &lang.Each{Key: cty.UnknownVal(cty.String), Value: cty.DynamicVal})
}

// refersToReads: one of the steps n's expressions refer to is read-only,
// or is itself expanded from reads.
func (e *expansion) refersToReads(n *StepNode) bool {
	for _, name := range n.refs {
		if m := e.g.Steps[name]; m != nil && m.Schema != nil && (m.Schema.ReadOnly || e.pending(m)) {
			return true
		}
	}
	return false
}

// readsOnly: every step the expression refers to is read-only, or itself
// waits for such reads (and at least one step is referred to).
func (e *expansion) readsOnly(expr hcl.Expression) bool {
	steps := 0
	for _, r := range lang.References(expr) {
		if r.Kind != "step" {
			continue
		}
		n := e.g.Steps[r.Name]
		if n == nil || !(n.Schema.ReadOnly || e.pending(n)) {
			return false
		}
		steps++
	}
	return steps > 0
}

// instanceValue is {outputs = ...} of an instance: its recorded outputs when
// it has finished, else the placeholder.
func (e *expansion) instanceValue(n *StepNode, addr string, placeholder cty.Value) cty.Value {
	if e.g.opts.KnownOutputs != nil {
		if outs, ok := e.g.opts.KnownOutputs(addr, n.Schema.Outputs); ok {
			return cty.ObjectVal(map[string]cty.Value{"outputs": outs})
		}
	}
	return placeholder
}

// instancesValue is the value of a step with for_each: a map when every
// instance has the same type, else an object (known outputs may differ in
// type from the placeholders).
func instancesValue(vals map[string]cty.Value, placeholderType cty.Type) cty.Value {
	if len(vals) == 0 {
		return cty.MapValEmpty(placeholderType)
	}
	var ty cty.Type
	same := true
	for _, v := range vals {
		if ty == cty.NilType {
			ty = v.Type()
		} else if !ty.Equals(v.Type()) {
			same = false
			break
		}
	}
	if same {
		return cty.MapVal(vals)
	}
	return cty.ObjectVal(vals)
}

func forEachElems(fe cty.Value, rng hcl.Range) ([]lang.Each, hcl.Diagnostics) {
	ty := fe.Type()
	if fe.IsNull() {
		return nil, hcl.Diagnostics{errDiag(rng.Ptr(), "Invalid for_each argument", "for_each is null; it takes a map or a set of strings.")}
	}
	switch {
	case ty.IsMapType() || ty.IsObjectType():
		var out []lang.Each
		for it := fe.ElementIterator(); it.Next(); {
			k, v := it.Element()
			out = append(out, lang.Each{Key: k, Value: v})
		}
		return out, nil
	case ty.IsSetType():
		if !ty.ElementType().Equals(cty.String) {
			return nil, hcl.Diagnostics{errDiag(rng.Ptr(), "Invalid for_each argument", "for_each takes a set of strings; this set holds %s.", ty.ElementType().FriendlyName())}
		}
		var out []lang.Each
		for it := fe.ElementIterator(); it.Next(); {
			_, v := it.Element()
			if v.IsNull() {
				return nil, hcl.Diagnostics{errDiag(rng.Ptr(), "Invalid for_each argument", "for_each sets cannot contain null.")}
			}
			out = append(out, lang.Each{Key: v, Value: v})
		}
		return out, nil
	case ty.IsListType() || ty.IsTupleType():
		return nil, hcl.Diagnostics{errDiag(rng.Ptr(), "Invalid for_each argument", "for_each takes a map or a set of strings, not a list: a list's positions would become instance keys and shift when it changes. Convert it with toset(...).")}
	}
	return nil, hcl.Diagnostics{errDiag(rng.Ptr(), "Invalid for_each argument", "for_each takes a map or a set of strings, not %s.", ty.FriendlyName())}
}

// evalInstance evaluates a new instance's when and attributes.
func (e *expansion) evalInstance(in *Instance, base *hcl.EvalContext, each *lang.Each) hcl.Diagnostics {
	if each != nil {
		in.each = each
	}
	attrs, when, diags := e.g.evalStepInstance(in.Node, base, each, e.g.opts.Secrets(in.Address))
	switch when {
	case whenUnknown:
		in.Deferred = "its `when` condition depends on values known only after earlier steps ran"
	case whenFalse:
		in.Disabled = true
	}
	in.Attrs = attrs
	return diags
}
