package engine

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/zclconf/go-cty/cty"

	"github.com/switchover/switchover/internal/plans"
	"github.com/switchover/switchover/internal/state"
	"github.com/switchover/switchover/plugins/sdk"
	"github.com/switchover/switchover/plugins/sdk/sdktest"
)

// tenant is a directory that changes under the runbook: accounts are
// added and deleted between plans, and between plan and apply.
type tenant struct {
	mu       sync.Mutex
	accounts map[string]bool // name -> enabled
	applies  map[string]int  // disable calls per account
}

func (t *tenant) set(name string, enabled bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.accounts[name] = enabled
}

func (t *tenant) remove(name string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.accounts, name)
}

func (t *tenant) enabled(name string) (bool, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	e, ok := t.accounts[name]
	return e, ok
}

// plugin: find (read-only; lists every account, enabled or not, with the
// warning a real plugin gives about one of them) and disable (GoneIsDone;
// a deleted account answers NotFound).
func (t *tenant) plugin() sdk.Provider {
	return sdktest.InProcess(&sdk.Plugin{Name: "dir", Actions: []*sdk.Action{
		sdk.ReadOnlyAction("find", "", nil, []sdk.Output{{Name: "accounts", Type: cty.Map(cty.String)}},
			func(ctx context.Context, a sdk.Values) (map[string]cty.Value, string, sdk.Diagnostics, error) {
				t.mu.Lock()
				defer t.mu.Unlock()
				m := map[string]cty.Value{}
				var names []string
				for n := range t.accounts {
					m[n] = cty.StringVal("CN=" + n)
					names = append(names, n)
				}
				sort.Strings(names)
				var warn sdk.Diagnostics
				if t.accounts["tech2"] {
					warn = append(warn, sdk.LeftForPerson("tech2 is privileged through its primary group", "Change its primary group by hand."))
				}
				outs := map[string]cty.Value{"accounts": cty.MapValEmpty(cty.String)}
				if len(m) > 0 {
					outs["accounts"] = cty.MapVal(m)
				}
				return outs, fmt.Sprintf("found %s", strings.Join(names, ", ")), warn, nil
			}),
		{
			Name: "disable", GoneIsDone: true,
			Attributes: []sdk.Attribute{{Name: "account", Type: cty.String, Required: true}},
			PlanFunc: func(ctx context.Context, req *sdk.PlanRequest) *sdk.PlanResponse {
				name := req.Attributes.String("account")
				enabled, ok := t.enabled(name)
				switch {
				case !ok:
					return sdk.PlanError(sdk.NotFound("account %s", name))
				case enabled:
					return sdk.Changef("disable %s", name)
				}
				return sdk.NoChangef("%s is disabled", name)
			},
			ApplyFunc: func(ctx context.Context, req *sdk.ApplyRequest, ev sdk.Events) *sdk.ApplyResponse {
				name := req.Attributes.String("account")
				t.mu.Lock()
				defer t.mu.Unlock()
				t.applies[name]++
				if _, ok := t.accounts[name]; !ok {
					return sdk.ApplyError(sdk.NotFound("account %s", name))
				}
				t.accounts[name] = false
				return &sdk.ApplyResponse{Summary: "disabled " + name}
			},
		},
	}})
}

type freshRun struct {
	t      *testing.T
	dir    string
	host   inProcess
	state  *state.Manager
	tenant *tenant
}

func (r *freshRun) graph(refresh bool) *Graph {
	r.t.Helper()
	run := &Run{State: r.state}
	g := build(r.t, r.dir, Options{Mode: ModePlan, Plugins: r.host, FreshReads: refresh,
		KnownOutputs: func(addr string, schema []sdk.Output) (cty.Value, bool) { return run.Outputs(addr, schema) }})
	run.Redactor = g.Redactor
	if d := g.Configure(context.Background()); d.HasErrors() {
		r.t.Fatal(describe(d))
	}
	return g
}

// plan returns "address=kind" of every instance, sorted, and the plans.
func (r *freshRun) plan(refresh bool) (*Graph, *Planned, string) {
	r.t.Helper()
	g := r.graph(refresh)
	ips, diags := g.Plan(context.Background(), PlanOptions{Parallelism: 4, NoRefresh: !refresh}, &Run{State: r.state, Redactor: g.Redactor})
	if diags.HasErrors() {
		r.t.Fatal(describe(diags))
	}
	var got []string
	for _, p := range ips.Instances {
		got = append(got, p.Instance.Address+"="+p.Action.String())
	}
	sort.Strings(got)
	return g, ips, strings.Join(got, " ")
}

func (r *freshRun) apply(g *Graph, ips *Planned) ApplyResult {
	r.t.Helper()
	res := g.Apply(context.Background(), ips, ApplyOptions{Parallelism: 4, Run: &Run{State: r.state, Redactor: g.Redactor}})
	if res.Failed > 0 || res.WriteError != nil {
		r.t.Fatalf("apply: %+v", res)
	}
	return res
}

// Reads are fresh on every plan: an account added after a clean apply is
// a new instance (the plan is not clean, apply disables it); one deleted
// after it was disabled is gone (shown, recorded, not an error); one
// deleted between plan and apply is done ("already gone"); the plan after
// each apply is clean. -refresh=false keeps the recorded read.
func TestReadsAreFreshOnEveryPlan(t *testing.T) {
	tn := &tenant{accounts: map[string]bool{"tech1": true, "tech2": true}, applies: map[string]int{}}
	dir := writeRunbook(t, map[string]string{"main.sw.hcl": `
runbook "r" {}
step "dir.find" "found" {}
step "dir.disable" "off" {
  for_each = step.found.outputs.accounts
  account  = each.key
}
`})
	st, err := state.OpenFile(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	m, err := state.NewManager(st)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	r := &freshRun{t: t, dir: dir, host: inProcess{"dir": tn.plugin}, state: m, tenant: tn}

	g, ips, got := r.plan(true)
	if want := `step.found=no-change step.off["tech1"]=change step.off["tech2"]=change`; got != want {
		t.Fatalf("first plan:\n%s\nwant\n%s", got, want)
	}
	r.apply(g, ips)
	if e, _ := tn.enabled("tech1"); e {
		t.Fatal("tech1 is still enabled")
	}
	// The warning of the read reached the state, as an open item.
	if in := m.Instance("step.found"); len(in.Notes) != 1 || in.Notes[0].Kind != state.NoteLeftForPerson {
		t.Fatalf("notes of step.found: %+v", in.Notes)
	}
	if _, _, got = r.plan(true); got != `step.found=done step.off["tech1"]=done step.off["tech2"]=done` {
		t.Fatalf("plan after a clean apply: %s", got)
	}

	// The old provider adds an account after the run finished.
	tn.set("tech4", true)
	g, ips, got = r.plan(true)
	if want := `step.found=done step.off["tech1"]=done step.off["tech2"]=done step.off["tech4"]=change`; got != want {
		t.Fatalf("plan after a late account:\n%s\nwant\n%s", got, want)
	}
	if c := Count(ips.Instances); c.Change != 1 {
		t.Fatalf("counts: %+v", c)
	}
	// -refresh=false trusts the recorded read (and so does not see it).
	if _, _, got = r.plan(false); strings.Contains(got, "tech4") {
		t.Fatalf("-refresh=false read again: %s", got)
	}
	r.apply(g, ips)
	if e, _ := tn.enabled("tech4"); e {
		t.Fatal("the late account tech4 is still enabled")
	}
	// The recorded read is this one (what apply evaluated later steps with).
	if outs, _ := (&Run{State: m}).Outputs("step.found", nil); outs.GetAttr("accounts").AsValueMap()["tech4"] == cty.NilVal {
		t.Fatalf("recorded read: %#v", outs)
	}

	// tech1 is deleted after it was disabled: gone, not an error.
	tn.remove("tech1")
	g, ips, got = r.plan(true)
	if want := `step.found=done step.off["tech1"]=gone step.off["tech2"]=done step.off["tech4"]=done`; got != want {
		t.Fatalf("plan after a deletion:\n%s\nwant\n%s", got, want)
	}
	if c := Count(ips.Instances); c.Change != 0 || c.Gone != 1 {
		t.Fatalf("a gone object is no change: %+v", c)
	}
	// A saved plan keeps what its read found: rebuilt from its entries at
	// apply (the read again finds the same), it has the gone instance; when
	// the read moved since, it is refused.
	var entries []plans.Instance
	for _, p := range ips.Instances {
		entries = append(entries, p.Entry())
	}
	// One graph, two walks: the graph is configuration, each walk's reads
	// are its own.
	g2 := r.graph(true)
	saved, d, err := g2.Saved(context.Background(), entries, &Run{State: m, Redactor: g2.Redactor}, false)
	if d.HasErrors() {
		t.Fatal(describe(d))
	}
	if err != nil || Count(saved.Instances).Gone != 1 {
		t.Fatalf("saved plan with a gone instance: %v", err)
	}
	tn.set("tech9", true)
	if _, _, err := g2.Saved(context.Background(), entries, &Run{State: m, Redactor: g2.Redactor}, false); err == nil || !strings.Contains(err.Error(), "tech9") {
		t.Fatalf("a saved plan whose read moved since: %v", err)
	}
	tn.remove("tech9")
	res := r.apply(g, ips)
	if res.Gone != 1 {
		t.Fatalf("apply: %+v", res)
	}
	if in := m.Instance(`step.off["tech1"]`); in.Status != state.Gone {
		t.Fatalf("tech1 recorded as %s", in.Status)
	}
	if _, _, got = r.plan(true); got != `step.found=done step.off["tech2"]=done step.off["tech4"]=done` {
		t.Fatalf("plan after the gone object was recorded: %s", got)
	}

	// tech5 appears, is planned, and is deleted before apply reaches it.
	tn.set("tech5", true)
	g, ips, _ = r.plan(true)
	tn.remove("tech5")
	r.apply(g, ips)
	in := m.Instance(`step.off["tech5"]`)
	if in.Status != state.Done || !strings.Contains(in.Summary, "already gone") || !strings.Contains(in.Summary, "account tech5") {
		t.Fatalf("tech5 deleted between plan and apply: %s %q", in.Status, in.Summary)
	}
	// Then the next plan sees it gone, and after that apply all is clean.
	g, ips, got = r.plan(true)
	if !strings.Contains(got, `step.off["tech5"]=gone`) {
		t.Fatalf("plan: %s", got)
	}
	r.apply(g, ips)
	_, ips, _ = r.plan(true)
	if c := Count(ips.Instances); c.Change != 0 || c.Gone != 0 || c.Failed != 0 {
		t.Fatalf("final plan not clean: %+v", c)
	}
	// A disable of an account that is not there, outside a read: done.
	if tn.applies["tech5"] != 1 {
		t.Fatalf("tech5 applies: %d", tn.applies["tech5"])
	}
}

// Outputs keep the types the action declares through the state: a plugin
// that builds a map as an object (as JSON decoding would) is recorded as
// the declared map, and read back as one.
func TestOutputsKeepTheirDeclaredTypes(t *testing.T) {
	p := sdktest.InProcess(&sdk.Plugin{Name: "typed", Actions: []*sdk.Action{
		sdk.ReadOnlyAction("emit", "", nil, []sdk.Output{{Name: "tags", Type: cty.Map(cty.String)}, {Name: "n", Type: cty.Number}},
			func(ctx context.Context, a sdk.Values) (map[string]cty.Value, string, sdk.Diagnostics, error) {
				return map[string]cty.Value{"tags": cty.ObjectVal(map[string]cty.Value{"a": cty.StringVal("x"), "b": cty.StringVal("y")})}, "emitted", nil, nil
			}),
	}})
	dir := writeRunbook(t, map[string]string{"main.sw.hcl": "runbook \"r\" {}\nstep \"typed.emit\" \"e\" {}\n"})
	st, _ := state.OpenFile(t.TempDir())
	m, _ := state.NewManager(st)
	defer m.Close()
	g := build(t, dir, Options{Mode: ModePlan, Plugins: inProcess{"typed": func() sdk.Provider { return p }}})
	g.Configure(context.Background())
	run := &Run{State: m, Redactor: g.Redactor}
	ips, d := g.Plan(context.Background(), PlanOptions{Parallelism: 1}, run)
	if d.HasErrors() {
		t.Fatal(describe(d))
	}
	if res := g.Apply(context.Background(), ips, ApplyOptions{Parallelism: 1, Run: run}); res.Done != 1 {
		t.Fatalf("%+v", res)
	}
	outs, _ := run.Outputs("step.e", g.Steps["e"].Schema.Outputs)
	if ty := outs.GetAttr("tags").Type(); !ty.Equals(cty.Map(cty.String)) {
		t.Fatalf("tags came back as %s", ty.FriendlyName())
	}
	if n := outs.GetAttr("n"); !n.IsNull() || !n.Type().Equals(cty.Number) {
		t.Fatalf("an output not given came back as %#v", n)
	}
}
