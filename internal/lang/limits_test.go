package lang

import (
	"fmt"
	"testing"

	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/convert"
)

func bigTuple(n int) cty.Value {
	vals := make([]cty.Value, n)
	for i := range vals {
		vals[i] = cty.StringVal(fmt.Sprintf("name-%d", i))
	}
	return cty.TupleVal(vals)
}

func TestHomogeneous(t *testing.T) {
	v := Homogeneous(bigTuple(3))
	if !v.Type().Equals(cty.List(cty.String)) || v.LengthInt() != 3 {
		t.Fatalf("%#v", v)
	}
	mixed := cty.TupleVal([]cty.Value{cty.StringVal("a"), cty.NumberIntVal(1)})
	if !Homogeneous(mixed).RawEquals(mixed) {
		t.Fatal("a mixed tuple changed")
	}
	obj := Homogeneous(cty.ObjectVal(map[string]cty.Value{"a": cty.StringVal("x"), "b": cty.StringVal("y")}))
	if !obj.Type().Equals(cty.Map(cty.String)) {
		t.Fatalf("%#v", obj)
	}
}

// BenchmarkSetOfStrings: a set(string) variable of 65,536 names from a
// var file (a JSON tuple), converted as vars.go does. Without Homogeneous
// cty unifies the element types with a quadratic sort: 31 s on this VM.
func BenchmarkSetOfStrings65k(b *testing.B) {
	v := bigTuple(65536)
	for i := 0; i < b.N; i++ {
		if _, err := convert.Convert(Homogeneous(v), cty.Set(cty.String)); err != nil {
			b.Fatal(err)
		}
	}
}
