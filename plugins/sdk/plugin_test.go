package sdk

import (
	"context"
	"strings"
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

// An action of a plugin that takes settings never runs before Configure
// succeeded: the SDK answers for it, and once Configure failed it still
// does.
func TestActionsWaitForConfigure(t *testing.T) {
	ran := 0
	fail := true
	p := &Plugin{Name: "guarded",
		ConfigureFunc: func(ctx context.Context, cfg Values) Diagnostics {
			if fail {
				return Errorf("refused")
			}
			return nil
		},
		Actions: []*Action{{Name: "a",
			PlanFunc: func(ctx context.Context, req *PlanRequest) *PlanResponse { ran++; return Changef("x") },
			ApplyFunc: func(ctx context.Context, req *ApplyRequest, ev Events) *ApplyResponse {
				ran++
				return &ApplyResponse{}
			}}}}
	ctx := context.Background()
	check := func(when string, want bool) {
		t.Helper()
		r, err := p.Plan(ctx, &PlanRequest{Action: "a"})
		if err != nil {
			t.Fatal(err)
		}
		a, err := p.Apply(ctx, &ApplyRequest{Action: "a"}, nil)
		if err != nil {
			t.Fatal(err)
		}
		refused := strings.Contains(r.Diagnostics.Err().Error()+a.Diagnostics.Err().Error(), "the guarded plugin is not configured")
		if refused != want {
			t.Fatalf("%s: refused %v (plan %v, apply %v)", when, refused, r.Diagnostics.Err(), a.Diagnostics.Err())
		}
	}
	check("before Configure", true)
	if d, _ := p.Configure(ctx, cty.EmptyObjectVal); !d.HasErrors() {
		t.Fatal("configure should fail")
	}
	check("after a failed Configure", true)
	if ran != 0 {
		t.Fatalf("the action ran %d times unconfigured", ran)
	}
	fail = false
	if d, _ := p.Configure(ctx, cty.EmptyObjectVal); d.HasErrors() {
		t.Fatal(d.Err())
	}
	r, _ := p.Plan(ctx, &PlanRequest{Action: "a"})
	if r.Diagnostics.HasErrors() || ran != 1 {
		t.Fatalf("configured: %v, ran %d", r.Diagnostics.Err(), ran)
	}
}

// What a plan keeps for its apply comes back typed; nothing or another
// shape is not ok.
func TestPrivateOf(t *testing.T) {
	type planned struct {
		ID      string `json:"id"`
		Version int    `json:"v"`
	}
	r := Changef("x")
	SetPrivate(r, planned{ID: "u1", Version: 3})
	got, ok := PrivateOf[planned](&ApplyRequest{Private: r.Private})
	if !ok || got != (planned{ID: "u1", Version: 3}) {
		t.Fatalf("%+v %v", got, ok)
	}
	if _, ok := PrivateOf[planned](&ApplyRequest{}); ok {
		t.Fatal("no private data is not ok")
	}
	if _, ok := PrivateOf[planned](&ApplyRequest{Private: []byte(`["a list"]`)}); ok {
		t.Fatal("another shape is not ok")
	}
	var c Configured[*planned]
	c.Plugin = "x"
	if _, err := c.Get(); err == nil || !strings.Contains(err.Error(), "the x plugin is not configured") {
		t.Fatal(err)
	}
	c.Set(&planned{ID: "c"})
	if v, err := c.Get(); err != nil || v.ID != "c" {
		t.Fatal(v, err)
	}
}
