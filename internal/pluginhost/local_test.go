package pluginhost

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/zclconf/go-cty/cty"

	"github.com/switchover/switchover/plugins/sdk"
)

// fragile is an in-process plugin (not built on sdk.Plugin, which
// recovers its actions' panics itself) whose Apply panics, and whose Plan
// fails when it is handed a marked value (the wire never carries marks).
func fragile() sdk.Provider { return fragileProvider{} }

type fragileProvider struct{}

func (fragileProvider) Schema(context.Context) (*sdk.Schema, error) {
	return &sdk.Schema{Name: "fragile", Version: "0", Actions: []sdk.ActionSchema{{Name: "act", Attributes: []sdk.Attribute{{Name: "word", Type: cty.String, Sensitive: true}}}}}, nil
}

func (fragileProvider) Configure(context.Context, cty.Value) (sdk.Diagnostics, error) {
	return nil, nil
}

func (fragileProvider) Plan(ctx context.Context, req *sdk.PlanRequest) (*sdk.PlanResponse, error) {
	if req.Attributes.Raw().ContainsMarked() {
		return nil, errors.New("handed a marked value")
	}
	return sdk.Changef("say %s", req.Attributes.String("word")), nil
}

func (fragileProvider) Apply(context.Context, *sdk.ApplyRequest, sdk.Events) (*sdk.ApplyResponse, error) {
	panic("disk on fire")
}

// A panic of a plugin inside switchover is that call's error, not the end
// of switchover, and the plugin answers the next call.
func TestInProcessPanicIsTheCallsError(t *testing.T) {
	h := New(Options{})
	defer h.Close()
	in, err := h.Start("fragile", "fragile")
	if err != nil {
		t.Fatal(err)
	}
	if in.client != nil {
		t.Fatal("fragile was started as a process")
	}
	ctx := context.Background()
	if _, err := in.Schema(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := in.Configure(ctx, cty.EmptyObjectVal); err != nil {
		t.Fatal(err)
	}
	word := cty.ObjectVal(map[string]cty.Value{"word": cty.StringVal("hello").Mark("sensitive")})
	_, err = in.Apply(ctx, &sdk.ApplyRequest{Action: "act", Address: "step.a", Attributes: sdk.NewValues(word)}, &recordEvents{})
	if err == nil || !strings.Contains(err.Error(), `plugin "fragile" (built in)`) || !strings.Contains(err.Error(), "Apply panicked: disk on fire") {
		t.Fatalf("Apply of a panicking plugin: %v", err)
	}
	plan, err := in.Plan(ctx, &sdk.PlanRequest{Action: "act", Address: "step.a", Attributes: sdk.NewValues(word)})
	if err != nil || plan.Diagnostics.HasErrors() || plan.Summary != "say hello" {
		t.Fatalf("Plan after the panic, of a marked value: %+v, %v", plan, err)
	}
}
