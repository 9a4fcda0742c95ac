package rpc

import (
	"fmt"
	"github.com/switchover/switchover/plugins/sdk"
	"sync"
	"time"

	"github.com/zclconf/go-cty/cty"
	ctyjson "github.com/zclconf/go-cty/cty/json"
	ctymsgpack "github.com/zclconf/go-cty/cty/msgpack"

	pb "github.com/switchover/switchover/plugins/protocol/v1"
)

// This file converts between the SDK's Go types and the protocol's messages.

func encodeValue(v cty.Value) (*pb.DynamicValue, error) {
	if v == cty.NilVal {
		v = cty.EmptyObjectVal
	}
	v, _ = v.UnmarkDeep()
	ty := v.Type()
	tyJSON, err := ctyjson.MarshalType(ty)
	if err != nil {
		return nil, err
	}
	b, err := ctymsgpack.Marshal(v, ty)
	if err != nil {
		return nil, err
	}
	return &pb.DynamicValue{Msgpack: b, Type: tyJSON}, nil
}

// typeCache holds decoded types by their JSON: the same few types cross
// the wire for every instance of a step.
var typeCache sync.Map

func decodeCachedType(b []byte) (cty.Type, error) {
	if t, ok := typeCache.Load(string(b)); ok {
		return t.(cty.Type), nil
	}
	t, err := ctyjson.UnmarshalType(b)
	if err == nil {
		typeCache.Store(string(b), t)
	}
	return t, err
}

func decodeValue(dv *pb.DynamicValue) (cty.Value, error) {
	if dv == nil || len(dv.Type) == 0 {
		return cty.EmptyObjectVal, nil
	}
	ty, err := decodeCachedType(dv.Type)
	if err != nil {
		return cty.NilVal, fmt.Errorf("decoding value type: %w", err)
	}
	v, err := ctymsgpack.Unmarshal(dv.Msgpack, ty)
	if err != nil {
		return cty.NilVal, fmt.Errorf("decoding value: %w", err)
	}
	return v, nil
}

func encodeType(t cty.Type) []byte {
	b, err := ctyjson.MarshalType(t)
	if err != nil {
		// Only capsule types fail here, and a schema cannot hold them.
		panic(fmt.Sprintf("schema type %#v cannot be encoded: %v", t, err))
	}
	return b
}

func decodeType(b []byte) (cty.Type, error) {
	if len(b) == 0 {
		return cty.DynamicPseudoType, nil
	}
	return ctyjson.UnmarshalType(b)
}

func encodeAttrs(as []sdk.Attribute) []*pb.Attribute {
	out := make([]*pb.Attribute, 0, len(as))
	for _, a := range as {
		out = append(out, &pb.Attribute{Name: a.Name, Type: encodeType(a.Type), Required: a.Required, Sensitive: a.Sensitive, Description: a.Description})
	}
	return out
}

func decodeAttrs(as []*pb.Attribute) ([]sdk.Attribute, error) {
	out := make([]sdk.Attribute, 0, len(as))
	for _, a := range as {
		t, err := decodeType(a.Type)
		if err != nil {
			return nil, fmt.Errorf("attribute %q: %w", a.Name, err)
		}
		out = append(out, sdk.Attribute{Name: a.Name, Type: t, Required: a.Required, Sensitive: a.Sensitive, Description: a.Description})
	}
	return out, nil
}

func encodeSchema(s *sdk.Schema) *pb.GetSchemaResponse {
	r := &pb.GetSchemaResponse{Name: s.Name, Version: s.Version, Description: s.Description, Config: encodeAttrs(s.Config)}
	for _, a := range s.Actions {
		pa := &pb.ActionSchema{Name: a.Name, Description: a.Description, Attributes: encodeAttrs(a.Attributes), ReadOnly: a.ReadOnly}
		for _, o := range a.Outputs {
			pa.Outputs = append(pa.Outputs, &pb.Output{Name: o.Name, Type: encodeType(o.Type), Sensitive: o.Sensitive, Description: o.Description})
		}
		r.Actions = append(r.Actions, pa)
	}
	return r
}

func decodeSchema(r *pb.GetSchemaResponse) (*sdk.Schema, error) {
	cfg, err := decodeAttrs(r.Config)
	if err != nil {
		return nil, fmt.Errorf("config schema: %w", err)
	}
	s := &sdk.Schema{Name: r.Name, Version: r.Version, Description: r.Description, Config: cfg}
	for _, pa := range r.Actions {
		attrs, err := decodeAttrs(pa.Attributes)
		if err != nil {
			return nil, fmt.Errorf("action %q: %w", pa.Name, err)
		}
		a := sdk.ActionSchema{Name: pa.Name, Description: pa.Description, Attributes: attrs, ReadOnly: pa.ReadOnly}
		for _, o := range pa.Outputs {
			t, err := decodeType(o.Type)
			if err != nil {
				return nil, fmt.Errorf("action %q output %q: %w", pa.Name, o.Name, err)
			}
			a.Outputs = append(a.Outputs, sdk.Output{Name: o.Name, Type: t, Sensitive: o.Sensitive, Description: o.Description})
		}
		s.Actions = append(s.Actions, a)
	}
	return s, nil
}

func encodeDiags(ds sdk.Diagnostics) []*pb.Diagnostic {
	out := make([]*pb.Diagnostic, 0, len(ds))
	for _, d := range ds {
		sev := pb.Diagnostic_ERROR
		if d.Severity == sdk.Warning {
			sev = pb.Diagnostic_WARNING
		}
		out = append(out, &pb.Diagnostic{Severity: sev, Summary: d.Summary, Detail: d.Detail, Attribute: d.Attribute, Code: d.Code})
	}
	return out
}

func decodeDiags(ds []*pb.Diagnostic) sdk.Diagnostics {
	var out sdk.Diagnostics
	for _, d := range ds {
		sev := sdk.Error
		if d.Severity == pb.Diagnostic_WARNING {
			sev = sdk.Warning
		}
		out = append(out, sdk.Diagnostic{Severity: sev, Summary: d.Summary, Detail: d.Detail, Attribute: d.Attribute, Code: d.Code})
	}
	return out
}

func encodeOutputs(outs map[string]cty.Value) (*pb.DynamicValue, error) {
	if len(outs) == 0 {
		return nil, nil
	}
	return encodeValue(cty.ObjectVal(outs))
}

func decodeOutputs(dv *pb.DynamicValue) (map[string]cty.Value, error) {
	if dv == nil {
		return nil, nil
	}
	v, err := decodeValue(dv)
	if err != nil {
		return nil, err
	}
	if v.IsNull() || !v.Type().IsObjectType() {
		return nil, nil
	}
	return v.AsValueMap(), nil
}

func unixNano(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

var planKinds = map[sdk.PlanKind]pb.PlanAction{sdk.NoChange: pb.PlanAction_NO_CHANGE, sdk.Change: pb.PlanAction_CHANGE, sdk.Manual: pb.PlanAction_MANUAL, sdk.Wait: pb.PlanAction_WAIT}
