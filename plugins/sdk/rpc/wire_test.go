package rpc

import (
	"reflect"
	"testing"

	"github.com/zclconf/go-cty/cty"

	"github.com/switchover/switchover/plugins/sdk"
)

func TestSchemaRoundTrip(t *testing.T) {
	in := &sdk.Schema{Name: "ssh", Version: "1", Description: "hosts",
		Config: []sdk.Attribute{{Name: "host", Type: cty.String, Required: true}, {Name: "password", Type: cty.String, Sensitive: true}},
		Actions: []sdk.ActionSchema{{Name: "authorized_keys", ReadOnly: true, Attributes: []sdk.Attribute{{Name: "remove", Type: cty.List(cty.String)}, {Name: "timeout", Type: sdk.DurationType}},
			Outputs: []sdk.Output{{Name: "removed", Type: cty.Number}, {Name: "new_password", Type: cty.String, Sensitive: true}}}},
	}
	out, err := decodeSchema(encodeSchema(in))
	if err != nil {
		t.Fatal(err)
	}
	if out.Name != in.Name || len(out.Actions) != 1 || !out.Config[1].Sensitive || !out.Actions[0].Outputs[1].Sensitive ||
		!out.Actions[0].Attributes[0].Type.Equals(cty.List(cty.String)) || !out.Actions[0].Outputs[0].Type.Equals(cty.Number) {
		t.Fatalf("schema after the wire = %+v", out)
	}
}

func TestValuesKeepUnknownsAndNulls(t *testing.T) {
	v := cty.ObjectVal(map[string]cty.Value{
		"name":  cty.StringVal("oldmsp"),
		"later": cty.UnknownVal(cty.String),
		"none":  cty.NullVal(cty.Number),
		"keys":  cty.SetVal([]cty.Value{cty.StringVal("a"), cty.StringVal("b")}),
	})
	dv, err := encodeValue(v)
	if err != nil {
		t.Fatal(err)
	}
	back, err := decodeValue(dv)
	if err != nil {
		t.Fatal(err)
	}
	if !back.RawEquals(v) {
		t.Fatalf("value after the wire = %#v, want %#v", back, v)
	}
}

func TestDiagnosticsKeepCodeAndAttribute(t *testing.T) {
	in := sdk.Diagnostics{
		{Severity: sdk.Error, Summary: "changed", Detail: "since plan", Attribute: "path", Code: sdk.CodeConflict},
		{Severity: sdk.Warning, Summary: "trusted on first use"},
	}
	out := decodeDiags(encodeDiags(in))
	if !reflect.DeepEqual(in, out) {
		t.Fatalf("diagnostics after the wire = %+v", out)
	}
	if !out.HasCode(sdk.CodeConflict) {
		t.Fatal("the conflict code is lost")
	}
}
