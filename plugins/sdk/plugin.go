package sdk

import (
	"context"
	"fmt"
	"os"
	"runtime/debug"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/convert"
)

// Plugin is a plugin implemented in Go. Fill it in and pass it to rpc.Serve.
type Plugin struct {
	Name        string
	Version     string
	Description string
	// Config is the schema of the runbook's `plugin "NAME" { ... }` block.
	Config []Attribute
	// ConfigureFunc receives the plugin block's settings. Optional.
	ConfigureFunc func(ctx context.Context, config Values) Diagnostics
	// TargetFunc names the system a step works on (a host, a domain, a
	// tenant, a repository) when its plan did not; the handover checklist
	// groups steps by it. Optional.
	TargetFunc func(action string, attrs Values) string
	Actions    []*Action
	// Consistency is how long the target may answer reads from a stale
	// replica after a write (Microsoft Graph: seconds, sometimes a
	// minute). The plan that verifies an apply is made again, with
	// backoff, for up to this long before a change is called
	// ineffective. Zero: the target reads its own writes (one look). With
	// it, the plugin block takes `consistency_wait = "90s"`.
	Consistency time.Duration

	consistencyWait atomic.Int64 // the plugin block's consistency_wait + 1 (0: not set)
	// configured: ConfigureFunc succeeded. No action of a plugin with one
	// runs before: the guard every action would otherwise begin with.
	configured atomic.Bool
}

// ConsistencyAttribute is the plugin block setting of a plugin with
// Consistency.
const ConsistencyAttribute = "consistency_wait"

// settle is how long a verify may look again.
func (p *Plugin) settle() time.Duration {
	if d := p.consistencyWait.Load(); d > 0 {
		return time.Duration(d - 1)
	}
	return p.Consistency
}

// Action is one action of a plugin.
type Action struct {
	Name        string
	Description string
	Attributes  []Attribute
	Outputs     []Output
	// ReadOnly: the action never changes anything (its plan answers
	// NoChange with its outputs). switchover reads it while planning, so
	// that later steps can expand for_each over its outputs.
	ReadOnly bool
	// GoneIsDone: the action removes or disables an object, so an object
	// that does not exist (its plan or apply returned NotFound) is done:
	// the plan says NoChange ("already gone"), the apply succeeds.
	GoneIsDone bool
	// PlanFunc must not change anything.
	PlanFunc  func(ctx context.Context, req *PlanRequest) *PlanResponse
	ApplyFunc func(ctx context.Context, req *ApplyRequest, ev Events) *ApplyResponse
}

var _ Provider = (*Plugin)(nil)

func (p *Plugin) action(name string) *Action {
	for _, a := range p.Actions {
		if a.Name == name {
			return a
		}
	}
	return nil
}

// Schema implements Provider.
func (p *Plugin) Schema(ctx context.Context) (*Schema, error) {
	s := &Schema{Name: p.Name, Version: p.Version, Description: p.Description, Config: p.Config}
	if p.Consistency > 0 {
		s.Config = append(append([]Attribute(nil), p.Config...), Attribute{Name: ConsistencyAttribute, Type: cty.String,
			Description: fmt.Sprintf("How long to look again after a write before calling it ineffective: the target answers reads from replicas that may lag (a Go duration; default %s).", p.Consistency)})
	}
	for _, a := range p.Actions {
		s.Actions = append(s.Actions, ActionSchema{Name: a.Name, Description: a.Description, Attributes: a.Attributes, Outputs: a.Outputs, ReadOnly: a.ReadOnly})
	}
	sort.Slice(s.Actions, func(i, j int) bool { return s.Actions[i].Name < s.Actions[j].Name })
	return s, nil
}

// Configure implements Provider.
func (p *Plugin) Configure(ctx context.Context, config cty.Value) (diags Diagnostics, err error) {
	if p.Consistency > 0 {
		if vals := NewValues(config); vals.Declares(ConsistencyAttribute) {
			d, diags := vals.Duration(ConsistencyAttribute, p.Consistency)
			if diags.HasErrors() || d > time.Hour {
				return AttributeErrorf(ConsistencyAttribute, "Invalid consistency_wait", "consistency_wait is a duration up to 1h (such as \"90s\"), not %q.", vals.String(ConsistencyAttribute)), nil
			}
			p.consistencyWait.Store(int64(d) + 1)
		}
	}
	if p.ConfigureFunc == nil {
		return nil, nil
	}
	defer recoverInto(p.Name, "Configure", &err)
	diags = p.ConfigureFunc(ctx, NewValues(config))
	p.configured.Store(!diags.HasErrors())
	return diags, nil
}

// notConfigured is the error of an action called before Configure
// succeeded (nil once it has).
func (p *Plugin) notConfigured() Diagnostics {
	if p.ConfigureFunc == nil || p.configured.Load() {
		return nil
	}
	return Errorf("the %s plugin is not configured", p.Name)
}

// Plan implements Provider.
func (p *Plugin) Plan(ctx context.Context, req *PlanRequest) (resp *PlanResponse, err error) {
	a := p.action(req.Action)
	if a == nil || a.PlanFunc == nil {
		return nil, fmt.Errorf("plugin %q has no action %q", p.Name, req.Action)
	}
	if d := p.notConfigured(); d != nil {
		return &PlanResponse{Diagnostics: d}, nil
	}
	defer recoverInto(p.Name, req.Action, &err)
	resp = a.PlanFunc(ctx, req)
	if resp == nil {
		return nil, fmt.Errorf("plugin %q action %q returned no plan", p.Name, req.Action)
	}
	if gone := resp.Diagnostics.notFoundSummary(); gone != "" && a.GoneIsDone {
		resp = &PlanResponse{Kind: NoChange, Summary: "already gone: " + gone, Target: resp.Target, Diagnostics: resp.Diagnostics.warnings()}
	}
	if resp.Kind == 0 && !resp.Diagnostics.HasErrors() {
		return nil, fmt.Errorf("plugin %q action %q returned a plan without a kind", p.Name, req.Action)
	}
	if resp.Target == "" && p.TargetFunc != nil && req.Attributes.AllKnown() {
		resp.Target = p.TargetFunc(req.Action, req.Attributes)
	}
	return resp, nil
}

// Apply implements Provider.
func (p *Plugin) Apply(ctx context.Context, req *ApplyRequest, ev Events) (resp *ApplyResponse, err error) {
	a := p.action(req.Action)
	if a == nil || a.ApplyFunc == nil {
		return nil, fmt.Errorf("plugin %q has no action %q", p.Name, req.Action)
	}
	if d := p.notConfigured(); d != nil {
		return &ApplyResponse{Diagnostics: d}, nil
	}
	defer recoverInto(p.Name, req.Action, &err)
	cp := &lastCheckpoint{Events: ev, data: req.Checkpoint}
	resp = a.ApplyFunc(ctx, req, cp)
	if resp == nil {
		return nil, fmt.Errorf("plugin %q action %q returned no result", p.Name, req.Action)
	}
	if gone := resp.Diagnostics.notFoundSummary(); gone != "" && a.GoneIsDone {
		// Deleted since the plan: nothing is left to remove or disable.
		resp = &ApplyResponse{Summary: "already gone: " + gone, Diagnostics: resp.Diagnostics.warnings()}
	}
	if err := checkOutputs(a, resp.Outputs); err != nil {
		return nil, err
	}
	if !resp.Diagnostics.HasErrors() && ctx.Err() == nil {
		// Look again here, as switchover would with Plan: one call less
		// per step. A plan that fails (it may have run out of the apply's
		// time) is left to switchover's own call, with a timeout of its own.
		resp.Verify, resp.VerifyReads = p.verify(ctx, &PlanRequest{Action: req.Action, Address: req.Address, Attributes: req.Attributes}, cp)
	}
	return resp, nil
}

// verify plans again after an apply; while the plan still sees the change
// to make, it looks again with backoff for up to settle (a target that
// answers from stale replicas), and says how many plans it made.
func (p *Plugin) verify(ctx context.Context, req *PlanRequest, cp *lastCheckpoint) (*PlanResponse, int) {
	deadline := time.Now().Add(p.settle())
	wait := 200 * time.Millisecond
	for reads := 1; ; reads++ {
		req.Checkpoint = cp.latest()
		v, err := p.Plan(ctx, req)
		if err != nil || v.Diagnostics.HasErrors() {
			return nil, reads
		}
		if v.Kind != Change || time.Now().Add(wait).After(deadline) {
			return v, reads
		}
		select {
		case <-ctx.Done():
			return v, reads
		case <-time.After(wait):
		}
		wait = min(wait*2, 5*time.Second)
	}
}

// lastCheckpoint passes events on and keeps the last checkpoint made
// durable, for the plan that verifies the apply.
type lastCheckpoint struct {
	Events
	mu   sync.Mutex
	data []byte
}

// KeepSecret passes a kept secret on.
func (e *lastCheckpoint) KeepSecret(ctx context.Context, name, value string) error {
	return KeepSecret(ctx, e.Events, name, value)
}

func (e *lastCheckpoint) Checkpoint(ctx context.Context, data []byte) error {
	if err := e.Events.Checkpoint(ctx, data); err != nil {
		return err
	}
	e.mu.Lock()
	e.data = append([]byte(nil), data...)
	e.mu.Unlock()
	return nil
}

func (e *lastCheckpoint) latest() []byte {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.data
}

func checkOutputs(a *Action, outs map[string]cty.Value) error {
	for name, v := range outs {
		var decl *Output
		for i := range a.Outputs {
			if a.Outputs[i].Name == name {
				decl = &a.Outputs[i]
			}
		}
		if decl == nil {
			return fmt.Errorf("action %q returned undeclared output %q", a.Name, name)
		}
		if _, err := convert.Convert(v, decl.Type); err != nil {
			return fmt.Errorf("action %q output %q: %v", a.Name, name, err)
		}
	}
	return nil
}

// recoverInto turns a panic in plugin code into an error that names the
// plugin, so that one bad plugin call fails one step, not the whole process.
func recoverInto(plugin, call string, err *error) {
	if r := recover(); r != nil {
		// The stack goes to the plugin's stderr (switchover's debug log), not
		// into the error a user reads.
		fmt.Fprintf(os.Stderr, "plugin %q panicked in %s: %v\n%s", plugin, call, r, debug.Stack())
		*err = fmt.Errorf("plugin %q panicked in %s: %v", plugin, call, r)
	}
}

// ReadFunc observes and returns outputs, a one-line summary and warnings.
type ReadFunc func(ctx context.Context, attrs Values) (outputs map[string]cty.Value, summary string, warnings Diagnostics, err error)

// ReadOnlyAction is an action that changes nothing (ReadOnly): its plan and
// its apply both read, the plan answering NoChange with the outputs.
func ReadOnlyAction(name, description string, attrs []Attribute, outputs []Output, read ReadFunc) *Action {
	return &Action{
		Name: name, Description: description, Attributes: attrs, Outputs: outputs, ReadOnly: true,
		PlanFunc: func(ctx context.Context, req *PlanRequest) *PlanResponse {
			if !req.Attributes.AllKnown() {
				return Changef("read during apply: some attributes are known only after earlier steps ran")
			}
			outs, sum, warn, err := read(ctx, req.Attributes)
			if err != nil {
				return PlanError(err)
			}
			r := NoChangef("%s", sum)
			r.Outputs, r.Diagnostics = outs, warn
			return r
		},
		ApplyFunc: func(ctx context.Context, req *ApplyRequest, ev Events) *ApplyResponse {
			outs, sum, warn, err := read(ctx, req.Attributes)
			if err != nil {
				return ApplyError(err)
			}
			return &ApplyResponse{Summary: sum, Outputs: outs, Diagnostics: warn}
		},
	}
}
