package sdk

import (
	"strings"
	"testing"
	"time"

	"github.com/zclconf/go-cty/cty"
)

func TestValuesReadingAnUndeclaredAttributeIsAnError(t *testing.T) {
	v := NewValues(cty.ObjectVal(map[string]cty.Value{"host": cty.StringVal("web1"), "port": cty.NullVal(cty.Number)}))
	if v.String("host") != "web1" || v.Has("port") || !v.Declares("port") || v.Declares("hots") {
		t.Fatal("declared attributes read wrong")
	}
	defer func() {
		r := recover()
		if r == nil || !strings.Contains(r.(string), `attribute "hots" is not declared`) || !strings.Contains(r.(string), "host, port") {
			t.Fatalf("recover() = %v", r)
		}
	}()
	v.String("hots")
}

func TestValuesDuration(t *testing.T) {
	v := NewValues(cty.ObjectVal(map[string]cty.Value{"a": cty.StringVal("1m30s"), "b": cty.NullVal(cty.String), "c": cty.StringVal("soon")}))
	if d, diags := v.Duration("a", 0); d != 90*time.Second || diags != nil {
		t.Fatal(d, diags)
	}
	if d, _ := v.Duration("b", 5*time.Second); d != 5*time.Second {
		t.Fatal(d)
	}
	if _, diags := v.Duration("c", 0); !diags.HasErrors() || diags[0].Attribute != "c" {
		t.Fatal(diags)
	}
}
