package sdk

import (
	"fmt"
	"math/big"
	"sort"
	"strings"
	"time"

	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/gocty"
)

// Values gives convenient access to an object of attribute values.
// Raw returns the underlying cty value for anything the helpers do not cover.
type Values struct {
	v cty.Value
}

// NewValues wraps an object value.
func NewValues(v cty.Value) Values { return Values{v: v} }

// Raw returns the object value.
func (vs Values) Raw() cty.Value { return vs.v }

// Get returns the named attribute (null when it is not set).
//
// Reading a name the schema does not declare is a programming error (a
// typo would otherwise read as "not set", silently): Get panics with the
// declared names, and the SDK turns that into an error of the call that
// names the plugin, so the first test run shows it.
func (vs Values) Get(name string) cty.Value {
	if vs.v == cty.NilVal || vs.v.IsNull() || !vs.v.IsKnown() || !vs.v.Type().IsObjectType() {
		return cty.NullVal(cty.DynamicPseudoType)
	}
	if !vs.v.Type().HasAttribute(name) {
		var names []string
		for n := range vs.v.Type().AttributeTypes() {
			names = append(names, n)
		}
		sort.Strings(names)
		panic(fmt.Sprintf("sdk: attribute %q is not declared in the schema (declared: %s)", name, strings.Join(names, ", ")))
	}
	return vs.v.GetAttr(name)
}

// Declares reports whether the schema declares the attribute (for code
// shared by several actions).
func (vs Values) Declares(name string) bool {
	return vs.v != cty.NilVal && !vs.v.IsNull() && vs.v.IsKnown() && vs.v.Type().IsObjectType() && vs.v.Type().HasAttribute(name)
}

// Duration returns a duration attribute written as a Go duration ("30s",
// "5m", "1h30m"); def when it is not set. A value that is not a duration,
// or is negative, is an error diagnostic about the attribute.
func (vs Values) Duration(name string, def time.Duration) (time.Duration, Diagnostics) {
	s := vs.String(name)
	if s == "" {
		return def, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return 0, AttributeErrorf(name, "Invalid duration", "%s is a duration such as \"10s\" or \"2m\", not %q", name, s)
	}
	return d, nil
}

// DurationType is the type of a duration attribute: a string that
// Values.Duration parses ("10s", "5m").
var DurationType = cty.String

// Has reports whether the attribute is set (not null).
func (vs Values) Has(name string) bool { return !vs.Get(name).IsNull() }

// IsKnown reports whether the attribute's value is wholly known now; it is
// not when it depends on a step that has not run yet.
func (vs Values) IsKnown(name string) bool { return vs.Get(name).IsWhollyKnown() }

// AllKnown reports whether every attribute is wholly known.
func (vs Values) AllKnown() bool { return vs.v == cty.NilVal || vs.v.IsWhollyKnown() }

// String returns a string attribute, "" when null or unknown.
func (vs Values) String(name string) string {
	v := vs.Get(name)
	if v.IsNull() || !v.IsKnown() || v.Type() != cty.String {
		return ""
	}
	return v.AsString()
}

// Bool returns a bool attribute, false when null or unknown.
func (vs Values) Bool(name string) bool {
	v := vs.Get(name)
	if v.IsNull() || !v.IsKnown() || v.Type() != cty.Bool {
		return false
	}
	return v.True()
}

// Int returns a number attribute as int64, 0 when null, unknown or not integral.
func (vs Values) Int(name string) int64 {
	v := vs.Get(name)
	if v.IsNull() || !v.IsKnown() || v.Type() != cty.Number {
		return 0
	}
	i, acc := v.AsBigFloat().Int64()
	if acc != big.Exact {
		return 0
	}
	return i
}

// Float returns a number attribute as float64 (fractions kept), 0 when
// null or unknown.
func (vs Values) Float(name string) float64 {
	v := vs.Get(name)
	if v.IsNull() || !v.IsKnown() || v.Type() != cty.Number {
		return 0
	}
	f, _ := v.AsBigFloat().Float64()
	return f
}

// Strings returns a list or set of strings, nil when null or unknown.
func (vs Values) Strings(name string) []string {
	v := vs.Get(name)
	if v.IsNull() || !v.IsWhollyKnown() {
		return nil
	}
	var out []string
	if err := gocty.FromCtyValue(v, &out); err != nil {
		return nil
	}
	return out
}

// StringMap returns a map of strings, nil when null or unknown.
func (vs Values) StringMap(name string) map[string]string {
	v := vs.Get(name)
	if v.IsNull() || !v.IsWhollyKnown() {
		return nil
	}
	var out map[string]string
	if err := gocty.FromCtyValue(v, &out); err != nil {
		return nil
	}
	return out
}

// StringList is a list of strings as a cty value (an empty list, not null,
// for none).
func StringList(ss []string) cty.Value {
	if len(ss) == 0 {
		return cty.ListValEmpty(cty.String)
	}
	vs := make([]cty.Value, len(ss))
	for i, s := range ss {
		vs[i] = cty.StringVal(s)
	}
	return cty.ListVal(vs)
}
