package engine

import (
	"fmt"

	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"
	ctyjson "github.com/zclconf/go-cty/cty/json"

	"github.com/switchover/switchover/internal/lang"
	"github.com/switchover/switchover/internal/secrets"
	"github.com/switchover/switchover/internal/state"
)

// OutputValue is one evaluated runbook output.
type OutputValue struct {
	Name      string
	Value     cty.Value // unmarked; null when not known (a step it needs did not finish)
	Sensitive bool
}

// EvalOutputs evaluates the runbook's output blocks against the recorded
// outputs of the finished steps. An output that refers to a step that did
// not finish is null, with a warning.
// p is the plan the apply walked (nil: Build's instances).
func (g *Graph) EvalOutputs(run *Run, p *Planned) ([]OutputValue, hcl.Diagnostics) {
	var diags hcl.Diagnostics
	e := g.built
	if p != nil {
		e = p.exp
	}
	steps := map[string]cty.Value{}
	for name, n := range g.Steps {
		if n.Schema == nil {
			continue
		}
		steps[name] = g.recordedStepValue(n, run, e)
	}
	scope := *g.scope
	scope.Steps = steps
	ctx := scope.EvalContext(nil)
	var out []OutputValue
	for _, o := range g.Runbook.Outputs {
		v, d := o.Value.Value(ctx)
		ov := OutputValue{Name: o.Name, Sensitive: o.Sensitive}
		if d.HasErrors() || !v.IsWhollyKnown() {
			for _, x := range d {
				x.Severity = hcl.DiagWarning
			}
			diags = append(diags, d...)
			if !d.HasErrors() {
				diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagWarning, Summary: "Output not known yet",
					Detail: fmt.Sprintf("Output %q needs steps that have not finished; it is recorded as null.", o.Name), Subject: o.DeclRange.Ptr()})
			}
			ov.Value = cty.NullVal(cty.DynamicPseudoType)
			out = append(out, ov)
			continue
		}
		if v.ContainsMarked() || v.HasMark(lang.SensitiveMark) {
			ov.Sensitive = true
		}
		ov.Value, _ = v.UnmarkDeep()
		if ov.Sensitive {
			g.Redactor.AddValue(ov.Value.Mark(lang.SensitiveMark))
		}
		out = append(out, ov)
	}
	return out, g.Redactor.Diags(diags)
}

// recordedStepValue is {outputs = ...} of a step from the state (a map by
// key with for_each), its instances those of the walk's expansion e.
func (g *Graph) recordedStepValue(n *StepNode, run *Run, e *expansion) cty.Value {
	value := func(addr string) cty.Value {
		if v, ok := run.Outputs(addr, n.Schema.Outputs); ok {
			return cty.ObjectVal(map[string]cty.Value{"outputs": v})
		}
		return cty.ObjectVal(map[string]cty.Value{"outputs": cty.NullVal(cty.DynamicPseudoType)})
	}
	if n.Step.ForEach == nil {
		return value(n.Step.Address())
	}
	vals := map[string]cty.Value{}
	for _, in := range e.of(n) {
		vals[in.KeyString()] = value(in.Address)
	}
	return instancesValue(vals, cty.DynamicPseudoType)
}

// RecordOutputs keeps the outputs in the state, a sensitive one sealed.
func (r *Run) RecordOutputs(outs []OutputValue) error {
	var recs []*state.Record
	for _, o := range outs {
		b, err := ctyjson.Marshal(o.Value, cty.DynamicPseudoType)
		if err != nil {
			return fmt.Errorf("output %q: %v", o.Name, err)
		}
		rec := &state.Record{Kind: state.KindOutput, Name: o.Name}
		if o.Sensitive && !o.Value.IsNull() {
			if rec.SealedOutputs, err = secrets.Encrypt(b, r.Recipients...); err != nil {
				return err
			}
		} else if stored, sealed, err := r.seal(b); err != nil {
			return err
		} else if sealed {
			rec.SealedOutputs = stored
		} else {
			rec.Outputs = b
		}
		recs = append(recs, rec)
	}
	if len(recs) == 0 {
		return nil
	}
	return r.State.Append(recs...)
}
