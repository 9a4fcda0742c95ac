package engine

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/zclconf/go-cty/cty"

	"github.com/switchover/switchover/internal/plans"
	"github.com/switchover/switchover/plugins/core"
	"github.com/switchover/switchover/plugins/sdk"
	"github.com/switchover/switchover/plugins/sdk/sdktest"
)

// dirPlugin has a read-only action that "finds" accounts: what a later
// for_each goes over.
func dirPlugin(reads *atomic.Int32) sdk.Provider {
	found := cty.Object(map[string]cty.Type{"dn": cty.String})
	return sdktest.InProcess(&sdk.Plugin{Name: "dir", Actions: []*sdk.Action{{
		Name: "find", ReadOnly: true,
		Attributes: []sdk.Attribute{{Name: "prefix", Type: cty.String}},
		Outputs:    []sdk.Output{{Name: "accounts", Type: cty.Map(found)}},
		PlanFunc: func(ctx context.Context, req *sdk.PlanRequest) *sdk.PlanResponse {
			reads.Add(1)
			p := req.Attributes.String("prefix")
			r := sdk.NoChangef("found 2")
			r.Outputs = map[string]cty.Value{"accounts": cty.MapVal(map[string]cty.Value{
				p + "1": cty.ObjectVal(map[string]cty.Value{"dn": cty.StringVal("CN=" + p + "1")}),
				p + "2": cty.ObjectVal(map[string]cty.Value{"dn": cty.StringVal("CN=" + p + "2")}),
			})}
			return r
		},
		ApplyFunc: func(ctx context.Context, req *sdk.ApplyRequest, ev sdk.Events) *sdk.ApplyResponse {
			return &sdk.ApplyResponse{}
		},
	}}})
}

// A for_each over a read-only step's outputs is expanded while planning,
// with what the step read (read once); over another step's outputs it is
// still refused, with a message that says which steps can be read.
func TestForEachOverReadOnlyOutputs(t *testing.T) {
	var reads atomic.Int32
	host := inProcess{
		"core": func() sdk.Provider { return sdktest.InProcess(core.New("test")) },
		"dir":  func() sdk.Provider { return dirPlugin(&reads) },
	}
	dir := writeRunbook(t, map[string]string{"main.sw.hcl": `
runbook "r" {}
step "dir.find" "found" { prefix = "old" }
step "core.noop" "each" {
  for_each = step.found.outputs.accounts
  message  = "disable ${each.value.dn}"
}
step "core.noop" "then" {
  for_each = step.each
  message  = each.key
}
`})
	g := build(t, dir, Options{Mode: ModePlan, Plugins: host})
	if d := g.Configure(context.Background()); d.HasErrors() {
		t.Fatal(describe(d))
	}
	planned, diags := g.Plan(context.Background(), PlanOptions{Parallelism: 2}, &Run{Redactor: g.Redactor})
	ips := planned.Instances
	if diags.HasErrors() {
		t.Fatal(describe(diags))
	}
	var got []string
	for _, p := range ips {
		got = append(got, p.Instance.Address+"="+p.Action.String())
	}
	want := `step.found=no-change step.each["old1"]=change step.each["old2"]=change step.then["old1"]=change step.then["old2"]=change`
	if strings.Join(got, " ") != want {
		t.Fatalf("plan:\n%s\nwant\n%s", strings.Join(got, " "), want)
	}
	var old2 *Instance
	for _, p := range ips {
		if p.Instance.Address == `step.each["old2"]` {
			old2 = p.Instance
		}
	}
	if old2 == nil {
		t.Fatal(`the plan has no step.each["old2"]`)
	}
	if len(g.Steps["each"].Instances) != 0 {
		t.Fatal("the plan walk changed the graph: step.each has instances of its own")
	}
	if m := attr(old2, "message"); m != "disable CN=old2" {
		t.Fatalf("each.value: %q", m)
	}
	if reads.Load() != 1 {
		t.Fatalf("the read-only step was planned %d times, want once", reads.Load())
	}
	if ips[0].Action != plans.NoChange {
		t.Fatal(ips[0].Action)
	}

	// Over a step that is not read-only: refused at Build.
	dir = writeRunbook(t, map[string]string{"main.sw.hcl": `
runbook "r" {}
step "core.noop" "n" { message = "x" }
step "core.noop" "each" {
  for_each = toset([step.n.outputs.message])
  message  = each.key
}
`})
	_, d := Build(context.Background(), Options{Dir: dir, Mode: ModePlan, Plugins: host})
	if !d.HasErrors() || !strings.Contains(describe(d), "Only the outputs of read-only steps") {
		t.Fatalf("for_each over a changing step's outputs: %s", describe(d))
	}
}
