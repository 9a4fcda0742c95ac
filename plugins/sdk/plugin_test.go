package sdk

import (
	"context"
	"testing"

	"github.com/zclconf/go-cty/cty"
)

type nopEvents struct{ fail bool }

func (e nopEvents) Checkpoint(ctx context.Context, data []byte) error {
	if e.fail {
		return context.Canceled
	}
	return nil
}
func (nopEvents) Log(string) {}

// TestApplyCarriesTheVerifyingPlan: after a successful Apply, Plugin asks
// the action's own Plan again, with the last checkpoint the apply made
// durable, and returns that plan with the result; after a failed apply, or
// a plan that fails, it leaves the look to switchover.
func TestApplyCarriesTheVerifyingPlan(t *testing.T) {
	var seen [][]byte
	failPlan := false
	a := &Action{
		Name: "set",
		PlanFunc: func(ctx context.Context, req *PlanRequest) *PlanResponse {
			seen = append(seen, req.Checkpoint)
			if failPlan {
				return PlanError(context.DeadlineExceeded)
			}
			if string(req.Checkpoint) == "second" {
				return NoChangef("set")
			}
			return Changef("will set")
		},
		ApplyFunc: func(ctx context.Context, req *ApplyRequest, ev Events) *ApplyResponse {
			if !req.Attributes.Bool("ok") {
				return &ApplyResponse{Diagnostics: Errorf("refused")}
			}
			for _, cp := range []string{"first", "second"} {
				if err := ev.Checkpoint(ctx, []byte(cp)); err != nil {
					return &ApplyResponse{Diagnostics: Errorf("%v", err)}
				}
			}
			return &ApplyResponse{Summary: "done"}
		},
	}
	p := &Plugin{Name: "t", Actions: []*Action{a}}
	attrs := func(ok bool) Values { return NewValues(cty.ObjectVal(map[string]cty.Value{"ok": cty.BoolVal(ok)})) }
	ctx := context.Background()

	resp, err := p.Apply(ctx, &ApplyRequest{Action: "set", Attributes: attrs(true), Checkpoint: []byte("before")}, nopEvents{})
	if err != nil {
		t.Fatal(err)
	}
	if resp.Verify == nil || resp.Verify.Kind != NoChange {
		t.Fatalf("verify = %+v, want the plan with the last checkpoint (no change)", resp.Verify)
	}
	if len(seen) != 1 || string(seen[0]) != "second" {
		t.Fatalf("plan saw checkpoints %q, want the last one made durable", seen)
	}

	seen = nil
	resp, _ = p.Apply(ctx, &ApplyRequest{Action: "set", Attributes: attrs(false)}, nopEvents{})
	if resp.Verify != nil || len(seen) != 0 {
		t.Fatalf("after a failed apply: verify %+v, %d plans; want none", resp.Verify, len(seen))
	}

	// A checkpoint switchover refused fails the apply: nothing to verify.
	seen = nil
	resp, _ = p.Apply(ctx, &ApplyRequest{Action: "set", Attributes: attrs(true), Checkpoint: []byte("before")}, nopEvents{fail: true})
	if resp.Verify != nil {
		t.Fatalf("after a refused checkpoint: verify %+v, want none (the apply failed)", resp.Verify)
	}

	failPlan = true
	resp, _ = p.Apply(ctx, &ApplyRequest{Action: "set", Attributes: attrs(true)}, nopEvents{})
	if resp.Verify != nil {
		t.Fatalf("a verifying plan that failed was kept: %+v", resp.Verify)
	}
}
