package pluginhost

import (
	"bytes"
	"context"
	"fmt"

	"github.com/zclconf/go-cty/cty"

	"github.com/switchover/switchover/plugins/sdk"
)

// local runs a built-in plugin inside switchover (RegisterInProcess). It
// hands the plugin what the wire would: values without marks (the
// engine's sensitivity marks are its own), byte slices of its own, and a
// panic becomes the call's error, as a crash of a plugin process would.
type local struct{ p sdk.Provider }

func (l local) Schema(ctx context.Context) (s *sdk.Schema, err error) {
	defer recovered("GetSchema", &err)
	return l.p.Schema(ctx)
}

func (l local) Configure(ctx context.Context, config cty.Value) (d sdk.Diagnostics, err error) {
	defer recovered("Configure", &err)
	return l.p.Configure(ctx, unmarked(config))
}

func (l local) Plan(ctx context.Context, req *sdk.PlanRequest) (r *sdk.PlanResponse, err error) {
	defer recovered("Plan", &err)
	in := *req
	in.Attributes, in.Checkpoint = sdk.NewValues(unmarked(req.Attributes.Raw())), bytes.Clone(req.Checkpoint)
	r, err = l.p.Plan(ctx, &in)
	if r != nil {
		r.Outputs = unmarkedMap(r.Outputs)
	}
	return r, err
}

func (l local) Apply(ctx context.Context, req *sdk.ApplyRequest, ev sdk.Events) (r *sdk.ApplyResponse, err error) {
	defer recovered("Apply", &err)
	in := *req
	in.Attributes = sdk.NewValues(unmarked(req.Attributes.Raw()))
	in.Private, in.Checkpoint = bytes.Clone(req.Private), bytes.Clone(req.Checkpoint)
	r, err = l.p.Apply(ctx, &in, ev)
	if r != nil {
		r.Outputs = unmarkedMap(r.Outputs)
		if r.Verify != nil {
			r.Verify.Outputs = unmarkedMap(r.Verify.Outputs)
		}
	}
	return r, err
}

func recovered(call string, err *error) {
	if r := recover(); r != nil {
		*err = fmt.Errorf("%s panicked: %v", call, r)
	}
}

func unmarked(v cty.Value) cty.Value {
	if v == cty.NilVal {
		return v
	}
	v, _ = v.UnmarkDeep()
	return v
}

func unmarkedMap(m map[string]cty.Value) map[string]cty.Value {
	for k, v := range m {
		m[k] = unmarked(v)
	}
	return m
}
