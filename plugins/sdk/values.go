package sdk

import (
	"math/big"

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

// Get returns the named attribute, or a null value when it is absent.
func (vs Values) Get(name string) cty.Value {
	if vs.v == cty.NilVal || vs.v.IsNull() || !vs.v.IsKnown() || !vs.v.Type().IsObjectType() {
		return cty.NullVal(cty.DynamicPseudoType)
	}
	if !vs.v.Type().HasAttribute(name) {
		return cty.NullVal(cty.DynamicPseudoType)
	}
	return vs.v.GetAttr(name)
}

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
