package lang

import (
	"fmt"
	"math/big"
	"regexp"
	"strconv"
	"strings"

	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/function"
)

// Limits on what one expression may ask for: a runbook line must not be
// able to exhaust memory (format("%999999999s"), indent(999999999, ...), a
// setproduct of 67 million elements, file("/dev/zero")).
const (
	MaxFormatWidth  = 10000
	MaxIndent       = 1000
	MaxProduct      = 100000
	MaxFileSize     = 8 << 20
	maxResultString = 16 << 20
)

var formatVerb = regexp.MustCompile(`%[-+# 0]*(\d*)(?:\.(\d*))?`)

func checkFormat(args []cty.Value) error {
	if len(args) == 0 || !args[0].IsKnown() || args[0].IsNull() || args[0].Type() != cty.String {
		return nil
	}
	for _, m := range formatVerb.FindAllStringSubmatch(args[0].AsString(), -1) {
		for _, n := range m[1:] {
			if w, err := strconv.Atoi(n); n != "" && (err != nil || w > MaxFormatWidth) {
				return fmt.Errorf("a width or precision of %s is more than the %d allowed", n, MaxFormatWidth)
			}
		}
	}
	return nil
}

func checkIndent(args []cty.Value) error {
	if len(args) == 0 || !args[0].IsKnown() || args[0].IsNull() || args[0].Type() != cty.Number {
		return nil
	}
	if args[0].AsBigFloat().Cmp(big.NewFloat(MaxIndent)) > 0 {
		return fmt.Errorf("indent of more than %d spaces", MaxIndent)
	}
	return nil
}

func checkProduct(args []cty.Value) error {
	n := 1
	for _, a := range args {
		if !a.IsKnown() || a.IsNull() || !a.CanIterateElements() {
			return nil
		}
		n *= max(a.LengthInt(), 1)
		if n > MaxProduct {
			return fmt.Errorf("the product would have more than %d elements", MaxProduct)
		}
	}
	return nil
}

// guard wraps a function: check (optional) runs first, a result string over
// 16 MiB is refused, and a panic inside the implementation (cty reports it
// with a stack trace) becomes one plain sentence.
func guard(name string, f function.Function, check func([]cty.Value) error) function.Function {
	params := f.Params()
	return function.New(&function.Spec{
		Description: f.Description(),
		Params:      params,
		VarParam:    f.VarParam(),
		Type:        func(args []cty.Value) (cty.Type, error) { return f.ReturnTypeForValues(args) },
		Impl: func(args []cty.Value, _ cty.Type) (cty.Value, error) {
			if check != nil {
				if err := check(args); err != nil {
					return cty.NilVal, err
				}
			}
			v, err := f.Call(args)
			if err != nil {
				if msg, ok := strings.CutPrefix(err.Error(), "panic in function implementation: "); ok {
					first, _, _ := strings.Cut(msg, "\n")
					return cty.NilVal, fmt.Errorf("%s cannot compute a result for these arguments (%s)", name, first)
				}
				return cty.NilVal, err
			}
			if u, _ := v.Unmark(); u.IsKnown() && !u.IsNull() && u.Type() == cty.String && len(u.AsString()) > maxResultString {
				return cty.NilVal, fmt.Errorf("the result would be longer than %d MiB", maxResultString>>20)
			}
			return v, nil
		},
	})
}

// guardAll wraps every function of a table.
func guardAll(fs map[string]function.Function) map[string]function.Function {
	checks := map[string]func([]cty.Value) error{
		"format": checkFormat, "formatlist": checkFormat, "indent": checkIndent, "setproduct": checkProduct,
	}
	for name, f := range fs {
		fs[name] = guard(name, f, checks[name])
	}
	// Conversions of big tuples: element types unified in linear time.
	for _, name := range []string{"toset", "tolist", "tomap"} {
		inner := fs[name]
		fs[name] = function.New(&function.Spec{
			Description: inner.Description(),
			Params:      inner.Params(),
			Type: func(args []cty.Value) (cty.Type, error) {
				return inner.ReturnTypeForValues([]cty.Value{Homogeneous(args[0])})
			},
			Impl: func(args []cty.Value, _ cty.Type) (cty.Value, error) {
				return inner.Call([]cty.Value{Homogeneous(args[0])})
			},
		})
	}
	return fs
}

// Homogeneous turns a tuple whose elements all have one type into a list,
// and an object whose attributes all have one type into a map (elements
// first), so that converting it costs linear time: cty's conversion of a
// tuple unifies its element types with a quadratic sort (65,536 strings
// took 31 s). Anything else is returned as it is.
func Homogeneous(v cty.Value) cty.Value {
	if !v.IsKnown() || v.IsNull() || v.IsMarked() {
		return v
	}
	ty := v.Type()
	if !ty.IsTupleType() && !ty.IsObjectType() {
		return v
	}
	n := v.LengthInt()
	if n == 0 {
		return v
	}
	elems := make([]cty.Value, 0, n)
	m := make(map[string]cty.Value, n)
	var et cty.Type
	for it := v.ElementIterator(); it.Next(); {
		k, e := it.Element()
		e = Homogeneous(e)
		if e.IsMarked() || !e.Type().IsPrimitiveType() && !e.Type().IsCollectionType() {
			return v
		}
		if et == cty.NilType {
			et = e.Type()
		} else if !et.Equals(e.Type()) {
			return v
		}
		elems = append(elems, e)
		if ty.IsObjectType() {
			m[k.AsString()] = e
		}
	}
	if ty.IsTupleType() {
		return cty.ListVal(elems)
	}
	return cty.MapVal(m)
}
