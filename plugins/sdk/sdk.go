// Package sdk is what a switchover plugin author imports.
//
// A plugin declares its configuration schema and its actions, each with typed
// attributes and outputs, and implements three calls:
//
//   - Configure receives the plugin block's settings (connection, credentials).
//   - Plan is read-only: it observes the real system and answers NoChange,
//     Change or Manual (a person must act), with a one-line summary and details.
//   - Apply makes the change. It may record checkpoints with Events.Checkpoint,
//     which returns only once switchover has made the checkpoint durable.
//
// Every action must be idempotent as seen from the world: Plan after a
// finished Apply answers NoChange. That is what makes an interrupted run safe
// to resume.
//
// Concurrency: switchover calls Plan and Apply of different step instances
// at the same time (up to -parallelism, 10 by default), on one configured
// plugin instance; Configure is called first and alone. Actions must be safe
// for that (share connections behind a mutex or a pool).
//
// Test a plugin without the CLI with package sdktest: it builds attribute
// objects from the schema and runs plan, apply and verify as switchover does.
//
// A plugin binary's main function is a single call to rpc.Serve (package
// plugins/sdk/rpc, which holds the gRPC plumbing authors never touch).
package sdk

import (
	"context"
	"fmt"
	"time"

	"github.com/zclconf/go-cty/cty"
)

// ProtocolVersion is the plugin protocol version this SDK speaks.
const ProtocolVersion = 1

// Attribute describes one attribute of a plugin's configuration or of an action.
type Attribute struct {
	Name        string
	Type        cty.Type
	Required    bool
	Sensitive   bool
	Description string
}

// Output describes one output of an action, available to later steps as
// step.NAME.outputs.OUTPUT.
type Output struct {
	Name        string
	Type        cty.Type
	Sensitive   bool
	Description string
}

// ActionSchema is the declared shape of one action.
type ActionSchema struct {
	Name        string
	Description string
	Attributes  []Attribute
	Outputs     []Output
	// ReadOnly: see Action.ReadOnly.
	ReadOnly bool
}

// Schema is the declared shape of a whole plugin.
type Schema struct {
	Name        string
	Version     string
	Description string
	Config      []Attribute
	Actions     []ActionSchema
}

// Action returns the named action's schema, or nil.
func (s *Schema) Action(name string) *ActionSchema {
	for i := range s.Actions {
		if s.Actions[i].Name == name {
			return &s.Actions[i]
		}
	}
	return nil
}

// PlanKind is a plan's verdict for one step instance.
type PlanKind int

const (
	// NoChange: the world already is as the step wants it.
	NoChange PlanKind = iota + 1
	// Change: applying the step will change the world.
	Change
	// Manual: a person has to act; switchover cannot do it.
	Manual
	// Wait: the step has started and goes on at NotBefore (the second
	// krbtgt reset, hours after the first). Apply leaves it waiting and
	// does not call the plugin until then; a later apply goes on.
	Wait
)

func (k PlanKind) String() string {
	switch k {
	case NoChange:
		return "no-change"
	case Change:
		return "change"
	case Manual:
		return "manual"
	case Wait:
		return "wait"
	}
	return fmt.Sprintf("PlanKind(%d)", int(k))
}

// PlanRequest asks a plugin to observe the world for one step instance.
type PlanRequest struct {
	Action  string
	Address string
	// Attributes are the step's attributes, of the action's declared types.
	// An attribute may be unknown when it depends on another step's outputs.
	Attributes Values
	// Checkpoint is the last checkpoint recorded for this instance (nil if none).
	Checkpoint []byte
}

// PlanResponse is the plugin's verdict.
type PlanResponse struct {
	Kind    PlanKind
	Summary string
	Details []string
	// Private is handed back in ApplyRequest.Private.
	Private     []byte
	Diagnostics Diagnostics
	// Outputs, with NoChange: the outputs the step has in the world as it is
	// (used when a resumed run finds the step already done).
	Outputs map[string]cty.Value
	// NotBefore, with Wait: when the step can go on.
	NotBefore time.Time
	// Target names the system the step works on ("127.0.0.1:22",
	// "ldaps://dc1.example.com", a tenant, a repository): the handover
	// checklist groups steps by it.
	Target string
	// TargetSensitive: Target holds a secret (a repository URL with its
	// password); switchover never shows or stores it. Better: name the
	// target without the secret (rest:https://user:***@host/, restic's
	// own spelling).
	TargetSensitive bool
}

// ApplyRequest asks a plugin to make the change for one step instance.
type ApplyRequest struct {
	Action     string
	Address    string
	Attributes Values
	Private    []byte
	Checkpoint []byte
}

// ApplyResponse is the result of Apply.
type ApplyResponse struct {
	Summary     string
	Outputs     map[string]cty.Value
	Diagnostics Diagnostics
	// Verify is the plan made right after a successful apply, with the
	// same attributes and the latest checkpoint: switchover's look again,
	// made in the plugin without another call. Plugin (the SDK) fills it;
	// a Provider that leaves it nil is asked with Plan.
	Verify *PlanResponse
	// VerifyReads is how many plans Verify took: more than one when the
	// target answered from a stale replica and the SDK looked again
	// (Plugin.Consistency). The audit trail records it.
	VerifyReads int
}

// Events lets Apply report progress to switchover.
type Events interface {
	// Checkpoint records data for this step instance. It returns only once
	// switchover has made it durable; a resumed run hands it back to Plan
	// and Apply.
	Checkpoint(ctx context.Context, data []byte) error
	// Log sends a progress line.
	Log(msg string)
}

// SecretKeeper is implemented by the Events switchover hands Apply: a
// secret the target made (not one switchover chose with secret(), such as
// a Temporary Access Pass Entra generates) goes into the workspace's
// secret store under name (in the step's module), sealed and durable
// before KeepSecret returns, and into the handover bundle; it never
// appears in clear anywhere else. Call it as soon as the target answers.
type SecretKeeper interface {
	KeepSecret(ctx context.Context, name, value string) error
}

// KeepSecret keeps value with ev's SecretKeeper; an error when ev has
// none (an old switchover).
func KeepSecret(ctx context.Context, ev Events, name, value string) error {
	k, ok := ev.(SecretKeeper)
	if !ok {
		return fmt.Errorf("this switchover cannot keep a secret a target made (%s): update it", name)
	}
	return k.KeepSecret(ctx, name, value)
}

// Provider is the Go interface that both ends of the wire speak: a plugin
// in-process (*Plugin) and a plugin in another process (the gRPC client).
type Provider interface {
	Schema(ctx context.Context) (*Schema, error)
	Configure(ctx context.Context, config cty.Value) (Diagnostics, error)
	Plan(ctx context.Context, req *PlanRequest) (*PlanResponse, error)
	Apply(ctx context.Context, req *ApplyRequest, ev Events) (*ApplyResponse, error)
}

// NoChangef is a PlanResponse saying nothing remains to do.
func NoChangef(format string, a ...any) *PlanResponse {
	return &PlanResponse{Kind: NoChange, Summary: fmt.Sprintf(format, a...)}
}

// Changef is a PlanResponse announcing a change.
func Changef(format string, a ...any) *PlanResponse {
	return &PlanResponse{Kind: Change, Summary: fmt.Sprintf(format, a...)}
}

// Waitf is a PlanResponse saying the step goes on at t.
func Waitf(t time.Time, format string, a ...any) *PlanResponse {
	return &PlanResponse{Kind: Wait, NotBefore: t, Summary: fmt.Sprintf(format, a...)}
}

// Manualf is a PlanResponse saying a person has to act.
func Manualf(format string, a ...any) *PlanResponse {
	return &PlanResponse{Kind: Manual, Summary: fmt.Sprintf(format, a...)}
}
