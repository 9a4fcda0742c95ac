package lang

import (
	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/function"
)

// Scope holds what an expression can refer to.
type Scope struct {
	Vars   map[string]cty.Value
	Locals map[string]cty.Value
	// Steps maps a step name to its value: an object {outputs = {...}}, or
	// for a step with for_each a map from key to such an object.
	Steps map[string]cty.Value
	Funcs map[string]function.Function
}

// Each is the each.key / each.value of a for_each instance.
type Each struct {
	Key   cty.Value
	Value cty.Value
}

// EvalContext builds the HCL evaluation context; each may be nil.
func (s *Scope) EvalContext(each *Each) *hcl.EvalContext {
	vars := map[string]cty.Value{
		"var":   objectOrEmpty(s.Vars),
		"local": objectOrEmpty(s.Locals),
		"step":  objectOrEmpty(s.Steps),
	}
	if each != nil {
		vars["each"] = cty.ObjectVal(map[string]cty.Value{"key": each.Key, "value": each.Value})
	}
	return &hcl.EvalContext{Variables: vars, Functions: s.Funcs}
}

func objectOrEmpty(m map[string]cty.Value) cty.Value {
	if len(m) == 0 {
		return cty.EmptyObjectVal
	}
	return cty.ObjectVal(m)
}

// Ref is one reference an expression makes.
type Ref struct {
	// Kind is var, local, step or each.
	Kind  string
	Name  string
	Range hcl.Range
}

// References lists what the expressions refer to. Unknown roots (a typo such
// as vars.x) come back with their root as Kind, for the caller to report.
func References(exprs ...hcl.Expression) []Ref {
	var out []Ref
	for _, e := range exprs {
		if e == nil {
			continue
		}
		for _, tr := range e.Variables() {
			r := Ref{Kind: tr.RootName(), Range: tr.SourceRange()}
			if len(tr) > 1 {
				switch t := tr[1].(type) {
				case hcl.TraverseAttr:
					r.Name = t.Name
				case hcl.TraverseIndex:
					if t.Key.Type() == cty.String && t.Key.IsKnown() {
						r.Name = t.Key.AsString()
					}
				}
			}
			out = append(out, r)
		}
	}
	return out
}
