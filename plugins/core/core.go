// Package core is the built-in `core` plugin: steps that need no remote system.
package core

import (
	"context"
	"strings"

	"github.com/zclconf/go-cty/cty"

	"github.com/switchover/switchover/plugins/sdk"
)

// doneMark is the checkpoint core actions record once applied; Plan after
// Apply sees it and answers NoChange, which is what verify-after-apply checks.
var doneMark = []byte("applied")

// New returns the core plugin.
func New(version string) *sdk.Plugin {
	return &sdk.Plugin{
		Name:        "core",
		Version:     version,
		Description: "Built-in steps: tasks for a person, assertions, and a no-op for tests and benchmarks.",
		Actions:     []*sdk.Action{manual(), assertAction(), noop()},
	}
}

func manual() *sdk.Action {
	return &sdk.Action{
		Name:        "manual",
		Description: "A task for a person. The run stops at this step until someone confirms it with `switchover confirm`.",
		Attributes: []sdk.Attribute{
			{Name: "instructions", Type: cty.String, Required: true, Description: "What the person must do, in full sentences."},
			{Name: "confirm_by", Type: cty.String, Description: "Who must confirm it (a role or a name), shown in the plan and the handover checklist."},
		},
		PlanFunc: func(ctx context.Context, req *sdk.PlanRequest) *sdk.PlanResponse {
			instr := req.Attributes.String("instructions")
			first, rest, _ := strings.Cut(strings.TrimSpace(instr), "\n")
			r := sdk.Manualf("%s", first)
			if rest != "" {
				r.Details = append(r.Details, strings.Split(strings.TrimSpace(rest), "\n")...)
			}
			if by := req.Attributes.String("confirm_by"); by != "" {
				r.Details = append(r.Details, "to be confirmed by: "+by)
			}
			return r
		},
		ApplyFunc: func(ctx context.Context, req *sdk.ApplyRequest, ev sdk.Events) *sdk.ApplyResponse {
			// The engine records the confirmation; nothing to do here.
			return &sdk.ApplyResponse{Summary: "confirmed"}
		},
	}
}

func assertAction() *sdk.Action {
	check := func(attrs sdk.Values) (known bool, ok bool) {
		c := attrs.Get("condition")
		if !c.IsKnown() {
			return false, false
		}
		return true, !c.IsNull() && c.True()
	}
	fail := func(attrs sdk.Values) sdk.Diagnostics {
		return sdk.AttributeErrorf("condition", "Assertion failed", "%s", attrs.String("message"))
	}
	return &sdk.Action{
		Name:        "assert",
		Description: "Checks a condition; a false condition fails the plan (or, when it is known only after earlier steps ran, the apply) with the message.",
		Attributes: []sdk.Attribute{
			{Name: "condition", Type: cty.Bool, Required: true, Description: "Must be true."},
			{Name: "message", Type: cty.String, Required: true, Description: "Why the run must stop when the condition is false."},
		},
		PlanFunc: func(ctx context.Context, req *sdk.PlanRequest) *sdk.PlanResponse {
			known, ok := check(req.Attributes)
			switch {
			case !known:
				return sdk.Changef("condition is known only after earlier steps ran; checked during apply")
			case !ok:
				return &sdk.PlanResponse{Diagnostics: fail(req.Attributes)}
			}
			return sdk.NoChangef("assertion holds")
		},
		ApplyFunc: func(ctx context.Context, req *sdk.ApplyRequest, ev sdk.Events) *sdk.ApplyResponse {
			if _, ok := check(req.Attributes); !ok {
				return &sdk.ApplyResponse{Diagnostics: fail(req.Attributes)}
			}
			return &sdk.ApplyResponse{Summary: "assertion holds"}
		},
	}
}

func noop() *sdk.Action {
	return &sdk.Action{
		Name:        "noop",
		Description: "Does nothing but record a checkpoint; for tests and benchmarks. Plans as a change until applied.",
		Attributes: []sdk.Attribute{
			{Name: "message", Type: cty.String, Description: "Echoed as the output `message`."},
			{Name: "secret", Type: cty.String, Sensitive: true, Description: "A sensitive value, echoed as the sensitive output `secret` (for redaction tests)."},
		},
		Outputs: []sdk.Output{
			{Name: "message", Type: cty.String, Description: "The message attribute."},
			{Name: "secret", Type: cty.String, Sensitive: true, Description: "The secret attribute."},
		},
		PlanFunc: func(ctx context.Context, req *sdk.PlanRequest) *sdk.PlanResponse {
			if string(req.Checkpoint) == string(doneMark) {
				r := sdk.NoChangef("already applied")
				r.Outputs = noopOutputs(req.Attributes)
				return r
			}
			return sdk.Changef("nothing (no-op)")
		},
		ApplyFunc: func(ctx context.Context, req *sdk.ApplyRequest, ev sdk.Events) *sdk.ApplyResponse {
			if err := ev.Checkpoint(ctx, doneMark); err != nil {
				return &sdk.ApplyResponse{Diagnostics: sdk.Errorf("checkpoint: %v", err)}
			}
			return &sdk.ApplyResponse{Summary: "did nothing", Outputs: noopOutputs(req.Attributes)}
		},
	}
}

func noopOutputs(attrs sdk.Values) map[string]cty.Value {
	return map[string]cty.Value{"message": orNull(attrs.Get("message")), "secret": orNull(attrs.Get("secret"))}
}

func orNull(v cty.Value) cty.Value {
	if v.IsNull() {
		return cty.NullVal(cty.String)
	}
	return v
}
