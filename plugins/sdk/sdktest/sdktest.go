// Package sdktest helps a plugin author test a plugin's Configure, Plan,
// Apply and verify in process, without the CLI: attribute objects built
// from the schema, an Events that keeps checkpoints, and a Harness that
// runs plan -> apply -> verify the way switchover does.
package sdktest

import (
	"context"
	"fmt"
	"sync"

	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/convert"

	"github.com/switchover/switchover/plugins/sdk"
)

// Object builds the object value a plugin receives for attrs: every declared
// attribute, null unless set, converted to its declared type. It fails on
// a name the schema does not declare, as switchover's validate would.
func Object(attrs []sdk.Attribute, set map[string]cty.Value) (cty.Value, error) {
	m := make(map[string]cty.Value, len(attrs))
	for _, a := range attrs {
		m[a.Name] = cty.NullVal(a.Type)
	}
	for k, v := range set {
		var decl *sdk.Attribute
		for i := range attrs {
			if attrs[i].Name == k {
				decl = &attrs[i]
			}
		}
		if decl == nil {
			return cty.NilVal, fmt.Errorf("attribute %q is not declared", k)
		}
		cv, err := convert.Convert(v, decl.Type)
		if err != nil {
			return cty.NilVal, fmt.Errorf("attribute %q: %v", k, err)
		}
		m[k] = cv
	}
	return cty.ObjectVal(m), nil
}

// Events keeps the checkpoints and log lines of an Apply.
type Events struct {
	mu          sync.Mutex
	Checkpoints [][]byte
	Logs        []string
	// Secrets are the secrets kept (sdk.SecretKeeper), by name.
	Secrets map[string]string
}

// KeepSecret implements sdk.SecretKeeper.
func (e *Events) KeepSecret(ctx context.Context, name, value string) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.Secrets == nil {
		e.Secrets = map[string]string{}
	}
	e.Secrets[name] = value
	return nil
}

// Checkpoint implements sdk.Events.
func (e *Events) Checkpoint(ctx context.Context, data []byte) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.Checkpoints = append(e.Checkpoints, append([]byte(nil), data...))
	return nil
}

// Log implements sdk.Events.
func (e *Events) Log(msg string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.Logs = append(e.Logs, msg)
}

// Last is the last checkpoint, or nil.
func (e *Events) Last() []byte {
	e.mu.Lock()
	defer e.mu.Unlock()
	if len(e.Checkpoints) == 0 {
		return nil
	}
	return e.Checkpoints[len(e.Checkpoints)-1]
}

// Harness runs one plugin in process.
type Harness struct {
	P *sdk.Plugin
	// Secrets are the secrets every apply kept, by name (the latest).
	Secrets map[string]string
}

// Configure sends settings (by name) to the plugin.
func (h *Harness) Configure(ctx context.Context, set map[string]cty.Value) error {
	schema, err := h.P.Schema(ctx) // the SDK's own settings (consistency_wait) too
	if err != nil {
		return err
	}
	cfg, err := Object(schema.Config, set)
	if err != nil {
		return err
	}
	d, err := h.P.Configure(ctx, cfg)
	if err != nil {
		return err
	}
	return d.Err()
}

func (h *Harness) attrs(action string, set map[string]cty.Value) (sdk.Values, error) {
	for _, a := range h.P.Actions {
		if a.Name == action {
			v, err := Object(a.Attributes, set)
			return sdk.NewValues(v), err
		}
	}
	return sdk.Values{}, fmt.Errorf("plugin %q has no action %q", h.P.Name, action)
}

// Plan plans one instance; a plan with error diagnostics is an error.
func (h *Harness) Plan(ctx context.Context, action string, set map[string]cty.Value, checkpoint []byte) (*sdk.PlanResponse, error) {
	a, err := h.attrs(action, set)
	if err != nil {
		return nil, err
	}
	r, err := h.P.Plan(ctx, &sdk.PlanRequest{Action: action, Address: "step.test", Attributes: a, Checkpoint: checkpoint})
	if err != nil {
		return nil, err
	}
	return r, r.Diagnostics.Err()
}

// Apply applies a plan (its Private data) and returns the response and the
// events; a response with error diagnostics is returned with its error.
func (h *Harness) Apply(ctx context.Context, action string, set map[string]cty.Value, plan *sdk.PlanResponse, checkpoint []byte) (*sdk.ApplyResponse, *Events, error) {
	a, err := h.attrs(action, set)
	if err != nil {
		return nil, nil, err
	}
	ev := &Events{}
	req := &sdk.ApplyRequest{Action: action, Address: "step.test", Attributes: a, Checkpoint: checkpoint}
	if plan != nil {
		req.Private = plan.Private
	}
	r, err := h.P.Apply(ctx, req, ev)
	for k, v := range ev.Secrets {
		if h.Secrets == nil {
			h.Secrets = map[string]string{}
		}
		h.Secrets[k] = v
	}
	if err != nil {
		return nil, ev, err
	}
	return r, ev, r.Diagnostics.Err()
}

// Run is plan, apply and verify, as switchover does it: an instance is done
// only when the plugin, looking again, sees no change left.
func (h *Harness) Run(ctx context.Context, action string, set map[string]cty.Value) (*sdk.ApplyResponse, error) {
	p, err := h.Plan(ctx, action, set, nil)
	if err != nil {
		return nil, fmt.Errorf("plan: %w", err)
	}
	if p.Kind != sdk.Change {
		return &sdk.ApplyResponse{Summary: p.Summary, Outputs: p.Outputs}, nil
	}
	r, ev, err := h.Apply(ctx, action, set, p, nil)
	if err != nil {
		return r, fmt.Errorf("apply: %w", err)
	}
	// The plan the SDK made at the end of the apply, as switchover takes
	// it; else a Plan call.
	v := r.Verify
	if v == nil {
		if v, err = h.Plan(ctx, action, set, ev.Last()); err != nil {
			return r, fmt.Errorf("verify: %w", err)
		}
	}
	if v.Kind != sdk.NoChange {
		return r, fmt.Errorf("verify: the plugin still sees a change after apply: %s", v.Summary)
	}
	return r, nil
}

// Step is one apply of an instance as switchover makes it: plan with the
// checkpoint; if that is a change, apply and take the plan the SDK made
// after it. It returns the plan, the plan after the apply (the plan
// itself when it was no change) and the checkpoint to hand the next step.
func (h *Harness) Step(ctx context.Context, action string, set map[string]cty.Value, checkpoint []byte) (plan, after *sdk.PlanResponse, cp []byte, err error) {
	p, err := h.Plan(ctx, action, set, checkpoint)
	if err != nil || p.Kind != sdk.Change {
		return p, p, checkpoint, err
	}
	r, ev, err := h.Apply(ctx, action, set, p, checkpoint)
	if err != nil {
		return p, nil, checkpoint, fmt.Errorf("apply of %q: %w", p.Summary, err)
	}
	if ev.Last() != nil {
		checkpoint = ev.Last()
	}
	if r.Verify == nil {
		return p, nil, checkpoint, fmt.Errorf("apply of %q: no plan after it", p.Summary)
	}
	return p, r.Verify, checkpoint, nil
}

// InProcess wraps a plugin so that it behaves as across the wire, without
// the process: values reach it as they would after gRPC (no cty marks, such
// as switchover's sensitive mark). Hosts use it in tests.
func InProcess(p sdk.Provider) sdk.Provider { return inProcess{p} }

type inProcess struct{ p sdk.Provider }

func unmarked(v sdk.Values) sdk.Values {
	raw := v.Raw()
	if raw == cty.NilVal {
		return v
	}
	u, _ := raw.UnmarkDeep()
	return sdk.NewValues(u)
}

func (w inProcess) Schema(ctx context.Context) (*sdk.Schema, error) { return w.p.Schema(ctx) }

func (w inProcess) Configure(ctx context.Context, cfg cty.Value) (sdk.Diagnostics, error) {
	u, _ := cfg.UnmarkDeep()
	return w.p.Configure(ctx, u)
}

func (w inProcess) Plan(ctx context.Context, req *sdk.PlanRequest) (*sdk.PlanResponse, error) {
	r := *req
	r.Attributes = unmarked(req.Attributes)
	return w.p.Plan(ctx, &r)
}

func (w inProcess) Apply(ctx context.Context, req *sdk.ApplyRequest, ev sdk.Events) (*sdk.ApplyResponse, error) {
	r := *req
	r.Attributes = unmarked(req.Attributes)
	return w.p.Apply(ctx, &r, ev)
}
