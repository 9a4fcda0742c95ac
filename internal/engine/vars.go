package engine

import (
	"fmt"
	"os"
	"sort"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/ext/typeexpr"
	"github.com/hashicorp/hcl/v2/hclparse"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/convert"

	"github.com/switchover/switchover/internal/lang"
	"github.com/switchover/switchover/internal/runbook"
)

// EnvVarPrefix is the prefix of environment variables that set runbook variables.
const EnvVarPrefix = "SWITCHOVER_VAR_"

// VarInput is one source of variable values, in the order given on the
// command line: a later one overrides an earlier one. Environment variables
// come first, whatever the order.
type VarInput struct {
	// Flag is a NAME=VALUE from -var; File is a path from -var-file.
	Flag string
	File string
}

// rawValue is a variable value before it is converted to its type.
type rawValue struct {
	raw    string         // from -var or the environment
	expr   hcl.Expression // from a var file
	source string
}

func collectRaw(inputs []VarInput, environ []string, declared map[string]*runbook.Variable) (map[string]rawValue, hcl.Diagnostics) {
	var diags hcl.Diagnostics
	out := map[string]rawValue{}
	env := append([]string(nil), environ...)
	sort.Strings(env)
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		name, ok := strings.CutPrefix(k, EnvVarPrefix)
		if !ok || declared[name] == nil {
			continue // the environment is ambient: ignore what the runbook does not declare
		}
		out[name] = rawValue{raw: v, source: "environment variable " + k}
	}
	for _, in := range inputs {
		if in.File != "" {
			vals, d := readVarFile(in.File)
			diags = append(diags, d...)
			for name, a := range vals {
				if declared[name] == nil {
					diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Value for undeclared variable",
						Detail: fmt.Sprintf("The runbook declares no variable %q.%s", name, suggest(name, declared)), Subject: a.NameRange.Ptr()})
					continue
				}
				out[name] = rawValue{expr: a.Expr, source: "file " + in.File}
			}
			continue
		}
		name, val, ok := strings.Cut(in.Flag, "=")
		name = strings.TrimSpace(name)
		if !ok || name == "" {
			diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Invalid -var option",
				Detail: fmt.Sprintf("-var takes NAME=VALUE, such as -var 'servers=[\"web1\"]'; %q has no '='.", in.Flag)})
			continue
		}
		if declared[name] == nil {
			diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Value for undeclared variable",
				Detail: fmt.Sprintf("-var sets %q, but the runbook declares no such variable.%s", name, suggest(name, declared))})
			continue
		}
		out[name] = rawValue{raw: val, source: "-var " + name}
	}
	return out, diags
}

func readVarFile(path string) (hcl.Attributes, hcl.Diagnostics) {
	b, err := os.ReadFile(path)
	if err != nil {
		if pe, ok := err.(*os.PathError); ok {
			err = pe.Err
		}
		return nil, hcl.Diagnostics{{Severity: hcl.DiagError, Summary: "Cannot read variable file", Detail: fmt.Sprintf("%s: %v.", path, err)}}
	}
	p := hclparse.NewParser()
	var f *hcl.File
	var d hcl.Diagnostics
	if strings.HasSuffix(path, ".json") {
		f, d = p.ParseJSON(b, path)
	} else {
		f, d = p.ParseHCL(b, path)
	}
	if d.HasErrors() {
		return nil, d
	}
	attrs, d2 := f.Body.JustAttributes()
	return attrs, append(d, d2...)
}

func suggest(name string, declared map[string]*runbook.Variable) string {
	var names []string
	for n := range declared {
		names = append(names, n)
	}
	if s := runbook.Nearest(name, names); s != "" {
		return fmt.Sprintf(" Did you mean %q?", s)
	}
	return ""
}

// resolveVariables computes every variable's value. With allowMissing (for
// validate), a variable without a value is unknown instead of an error.
func resolveVariables(rb *runbook.Runbook, inputs []VarInput, environ []string, allowMissing bool, funcs *lang.Scope) (map[string]cty.Value, hcl.Diagnostics) {
	declared := map[string]*runbook.Variable{}
	for _, v := range rb.Variables {
		declared[v.Name] = v
	}
	raws, diags := collectRaw(inputs, environ, declared)
	out := map[string]cty.Value{}
	for _, v := range rb.Variables {
		val, d := variableValue(v, raws, allowMissing)
		diags = append(diags, d...)
		if d.HasErrors() {
			val = cty.UnknownVal(v.Type)
		}
		if v.Sensitive {
			val = val.Mark(lang.SensitiveMark)
		}
		out[v.Name] = val
	}
	if diags.HasErrors() {
		return out, diags
	}
	for _, v := range rb.Variables {
		diags = append(diags, validate(v, out[v.Name], funcs)...)
	}
	return out, diags
}

// validate checks a variable's validation blocks, which see only the
// variable itself (as var.NAME).
func validate(v *runbook.Variable, val cty.Value, funcs *lang.Scope) hcl.Diagnostics {
	var diags hcl.Diagnostics
	for _, vd := range v.Validations {
		ctx := (&lang.Scope{Vars: map[string]cty.Value{v.Name: val}, Funcs: funcs.Funcs}).EvalContext(nil)
		ok, d := vd.Condition.Value(ctx)
		diags = append(diags, d...)
		if d.HasErrors() {
			continue
		}
		ok, _ = ok.Unmark()
		if !ok.IsKnown() {
			continue
		}
		ok, err := convert.Convert(ok, cty.Bool)
		if err != nil || ok.IsNull() {
			diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Invalid validation condition",
				Detail: "A validation condition must be true or false.", Subject: vd.Condition.Range().Ptr()})
			continue
		}
		if ok.True() {
			continue
		}
		msg, d := vd.ErrorMessage.Value(ctx)
		text := fmt.Sprintf("The value of variable %q failed its validation.", v.Name)
		if !d.HasErrors() {
			if m, err := convert.Convert(msg, cty.String); err == nil && m.IsKnown() && !m.IsNull() {
				if um, marks := m.Unmark(); len(marks) == 0 {
					text = um.AsString()
				}
			}
		}
		diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Invalid value for variable",
			Detail: text, Subject: vd.Condition.Range().Ptr(), Context: vd.DeclRange.Ptr()})
	}
	return diags
}

func variableValue(v *runbook.Variable, raws map[string]rawValue, allowMissing bool) (cty.Value, hcl.Diagnostics) {
	r, given := raws[v.Name]
	if !given {
		if v.Default != cty.NilVal {
			return v.Default, nil
		}
		if allowMissing {
			return cty.UnknownVal(v.Type), nil
		}
		return cty.NilVal, hcl.Diagnostics{{Severity: hcl.DiagError, Summary: "No value for required variable",
			Detail:  fmt.Sprintf("Variable %q has no default. Give it a value with -var '%s=...', in a -var-file, or in the environment variable %s%s.", v.Name, v.Name, EnvVarPrefix, v.Name),
			Subject: v.DeclRange.Ptr()}}
	}
	var val cty.Value
	if r.expr != nil {
		var d hcl.Diagnostics
		val, d = r.expr.Value(nil)
		if d.HasErrors() {
			return cty.NilVal, d
		}
	} else if v.Type == cty.String || v.Type == cty.DynamicPseudoType {
		val = cty.StringVal(r.raw)
	} else {
		expr, d := hclsyntax.ParseExpression([]byte(r.raw), r.source, hcl.InitialPos)
		if !d.HasErrors() {
			val, d = expr.Value(nil)
		}
		if d.HasErrors() {
			return cty.NilVal, hcl.Diagnostics{{Severity: hcl.DiagError, Summary: "Invalid value for variable",
				Detail:  fmt.Sprintf("The value from %s is not a valid %s (write it as in a runbook, such as [\"a\", \"b\"] or {k = \"v\"}): %s", r.source, typeexpr.TypeString(v.Type), d[0].Summary),
				Subject: v.DeclRange.Ptr()}}
		}
	}
	if v.Defaults != nil {
		val = v.Defaults.Apply(val)
	}
	conv, err := convert.Convert(lang.Homogeneous(val), v.Type)
	if err != nil {
		var subject *hcl.Range
		if r.expr != nil {
			subject = r.expr.Range().Ptr()
		} else {
			subject = v.DeclRange.Ptr()
		}
		return cty.NilVal, hcl.Diagnostics{{Severity: hcl.DiagError, Summary: "Invalid value for variable",
			Detail:  fmt.Sprintf("The value from %s does not fit variable %q of type %s: %s.", r.source, v.Name, typeexpr.TypeString(v.Type), err),
			Subject: subject}}
	}
	return conv, nil
}
