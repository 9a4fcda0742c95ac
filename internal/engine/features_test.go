package engine

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/switchover/switchover/internal/plans"
	"github.com/switchover/switchover/internal/state"
)

func build(t *testing.T, dir string, opts Options) *Graph {
	t.Helper()
	opts.Dir = dir
	if opts.Plugins == nil {
		opts.Plugins = newHost(t)
	}
	g, diags := Build(context.Background(), opts)
	if diags.HasErrors() {
		t.Fatalf("unexpected errors:\n%s", describe(diags))
	}
	return g
}

func instance(t *testing.T, g *Graph, addr string) *Instance {
	t.Helper()
	for _, in := range g.Instances {
		if in.Address == addr {
			return in
		}
	}
	var have []string
	for _, in := range g.Instances {
		have = append(have, in.Address)
	}
	t.Fatalf("no instance %s; have %v", addr, have)
	return nil
}

func attr(in *Instance, name string) string {
	v, _ := in.Attrs.GetAttr(name).Unmark()
	if v.IsNull() || !v.IsKnown() {
		return "<" + v.GoString() + ">"
	}
	return v.AsString()
}

func TestVariableSourcesAndPrecedence(t *testing.T) {
	dir := writeRunbook(t, map[string]string{"main.sw.hcl": `
runbook "r" {}
variable "a" { type = string }
variable "b" { type = number }
variable "c" { type = list(string) }
variable "d" { default = "default-d" }
step "core.noop" "s" { message = "${var.a}/${var.b}/${join(",", var.c)}/${var.d}" }
`})
	file := filepath.Join(t.TempDir(), "vals.sw.vars")
	os.WriteFile(file, []byte("a = \"from-file\"\nb = 2\n"), 0o644)
	// The environment comes from the caller (cli reads the process's).
	env := []string{"SWITCHOVER_VAR_a=from-env", `SWITCHOVER_VAR_c=["x", "y"]`, "SWITCHOVER_VAR_undeclared=ignored", "PATH=/bin"}
	g := build(t, dir, Options{Mode: ModePlan, Environ: env, Vars: []VarInput{{File: file}, {Flag: "b=3"}}})
	// env < file < -var, in order; defaults when nothing is given.
	if got := attr(instance(t, g, "step.s"), "message"); got != "from-file/3/x,y/default-d" {
		t.Fatalf("message = %q", got)
	}
}

func TestBadVariableInputs(t *testing.T) {
	dir := writeRunbook(t, map[string]string{"main.sw.hcl": `
runbook "r" {}
variable "n" { type = number }
`})
	cases := map[string][]VarInput{
		`-var sets "m", but the runbook declares no such variable. Did you mean "n"?`: {{Flag: "m=1"}},
		`-var takes NAME=VALUE`:                    {{Flag: "n"}},
		`is not a valid number`:                    {{Flag: "n=[1"}},
		`does not fit variable "n" of type number`: {{Flag: `n="abc"`}},
	}
	for want, in := range cases {
		_, diags := Build(context.Background(), Options{Dir: dir, Plugins: newHost(t), Mode: ModePlan, Vars: in})
		if !diags.HasErrors() || !strings.Contains(describe(diags), want) {
			t.Errorf("%v: want %q in\n%s", in, want, describe(diags))
		}
	}
}

func TestForEachWhenLocalsFunctions(t *testing.T) {
	dir := writeRunbook(t, map[string]string{
		"main.sw.hcl": `
runbook "r" {}
variable "hosts" {
  default = { web1 = "10.0.0.1", db1 = "10.0.0.2" }
}
locals {
  suffix = upper(local.base)
  base   = "oldmsp"
}
step "core.noop" "per_host" {
  for_each = var.hosts
  when     = each.key != "db1"
  message  = "${each.key}=${each.value}-${local.suffix}"
}
step "core.noop" "per_name" {
  for_each = toset(["a", "b"])
  message  = format("%s:%s", each.key, trimspace(file("motd.txt")))
}
step "core.noop" "from_env" {
  message = env("SWITCHOVER_TEST_GREETING", "fallback")
}
step "core.noop" "after" {
  message = step.per_name["a"].outputs.message
}
`,
		"motd.txt": "  hello  \n",
	})
	g := build(t, dir, Options{Mode: ModePlan, Environ: []string{"SWITCHOVER_TEST_GREETING=hi"}})
	if got := attr(instance(t, g, `step.per_host["web1"]`), "message"); got != "web1=10.0.0.1-OLDMSP" {
		t.Errorf("web1 message = %q", got)
	}
	if !instance(t, g, `step.per_host["db1"]`).Disabled {
		t.Error("db1 should be disabled by when")
	}
	if got := attr(instance(t, g, `step.per_name["b"]`), "message"); got != "b:hello" {
		t.Errorf("per_name b = %q", got)
	}
	if got := attr(instance(t, g, "step.from_env"), "message"); got != "hi" {
		t.Errorf("env() = %q", got)
	}
	after := instance(t, g, "step.after")
	if after.Attrs.GetAttr("message").IsKnown() {
		t.Error("a step output must be unknown at plan time")
	}
	if got := g.Steps["after"].Deps; len(got) != 1 || got[0] != "per_name" {
		t.Errorf("implicit dependency = %v", got)
	}
	planned, diags := g.Plan(context.Background(), PlanOptions{Parallelism: 4}, nil)
	if diags.HasErrors() {
		t.Fatal(describe(diags))
	}
	c := Count(planned.Instances)
	if c.Change != 5 || c.Skipped != 1 {
		t.Errorf("counts = %+v; want 5 changes and 1 skipped", c)
	}
}

func TestEnvFunctionUnsetIsAnError(t *testing.T) {
	dir := writeRunbook(t, map[string]string{"main.sw.hcl": `
runbook "r" {}
step "core.noop" "a" { message = env("SWITCHOVER_TEST_SURELY_UNSET") }
`})
	_, diags := Build(context.Background(), Options{Dir: dir, Plugins: newHost(t), Mode: ModePlan})
	if !strings.Contains(describe(diags), `"SWITCHOVER_TEST_SURELY_UNSET" is not set`) {
		t.Fatalf("diags:\n%s", describe(diags))
	}
}

func TestJSONSyntaxAndPluginAlias(t *testing.T) {
	dir := writeRunbook(t, map[string]string{
		"a.sw.hcl": `
runbook "r" {}
plugin "core" { alias = "second" }
`,
		"b.sw.json": `{
  "step": {
    "core.noop": {
      "from_json": { "plugin": "core.second", "message": "${upper(\"json\")}", "depends_on": ["step.hcl_side"] }
    }
  }
}`,
		"c.sw.hcl": `step "core.noop" "hcl_side" {}`,
	})
	g := build(t, dir, Options{Mode: ModePlan})
	in := instance(t, g, "step.from_json")
	if attr(in, "message") != "JSON" {
		t.Errorf("message = %q", attr(in, "message"))
	}
	if in.Node.Plugin.Key != "core.second" {
		t.Errorf("plugin = %q", in.Node.Plugin.Key)
	}
	if d := g.Steps["from_json"].Deps; len(d) != 1 || d[0] != "hcl_side" {
		t.Errorf("deps = %v", d)
	}
}

func TestTargetsIncludeDependencies(t *testing.T) {
	dir := writeRunbook(t, map[string]string{"main.sw.hcl": `
runbook "r" {}
step "core.noop" "a" {}
step "core.noop" "b" { depends_on = [step.a] }
step "core.noop" "c" {}
`})
	g := build(t, dir, Options{Mode: ModePlan, Targets: []string{"step.b"}})
	var got []string
	for _, in := range g.Instances {
		got = append(got, in.Address)
	}
	if strings.Join(got, " ") != "step.a step.b" {
		t.Fatalf("targeted instances = %v", got)
	}
}

func TestSensitiveValuesAreRedactedFromPluginText(t *testing.T) {
	dir := writeRunbook(t, map[string]string{"main.sw.hcl": `
runbook "r" {}
variable "pw" {
  sensitive = true
  default   = "canary-Hunter2-xyz"
}
step "core.assert" "leaky" {
  condition = false
  message   = "the password is ${var.pw}"
}
step "core.manual" "leaky_manual" {
  instructions = "Tell them ${sensitive("canary-Other-abc")}"
}
`})
	g := build(t, dir, Options{Mode: ModePlan})
	planned, diags := g.Plan(context.Background(), PlanOptions{Parallelism: 2}, nil)
	all := describe(diags)
	for _, p := range planned.Instances {
		all += p.Summary + strings.Join(p.Details, "\n")
	}
	for _, canary := range []string{"canary-Hunter2-xyz", "canary-Other-abc"} {
		if strings.Contains(all, canary) {
			t.Errorf("%s leaked:\n%s", canary, all)
		}
	}
	if !strings.Contains(all, Redacted) {
		t.Errorf("expected the redaction marker in:\n%s", all)
	}
}

func TestValidateModeAllowsMissingValues(t *testing.T) {
	dir := writeRunbook(t, map[string]string{"main.sw.hcl": `
runbook "r" {}
variable "servers" { type = set(string) }
step "core.noop" "per" {
  for_each = var.servers
  message  = upper(each.key)
  mesage   = "typo is still found"
}
`})
	_, diags := Build(context.Background(), Options{Dir: dir, Plugins: newHost(t), Mode: ModeValidate})
	if got := describe(diags); !strings.Contains(got, `Unsupported argument`) || strings.Contains(got, "No value for required variable") {
		t.Fatalf("diags:\n%s", got)
	}
}

func TestPlanInstanceKinds(t *testing.T) {
	dir := writeRunbook(t, map[string]string{"main.sw.hcl": `
runbook "r" {}
step "core.noop" "n" {}
step "core.manual" "m" { instructions = "Call the registrar." }
step "core.assert" "a" {
  condition = true
  message   = "never shown"
}
`})
	g := build(t, dir, Options{Mode: ModePlan})
	// As recorded by an apply cut off after the plugin's checkpoint.
	st, err := state.OpenFile(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	m, _ := state.NewManager(st)
	defer m.Close()
	m.Append(&state.Record{Kind: state.KindStatus, Address: "step.n", Status: state.Running, Attempt: 1},
		&state.Record{Kind: state.KindCheckpoint, Address: "step.n", Data: []byte("applied")})
	planned, diags := g.Plan(context.Background(), PlanOptions{Parallelism: 3}, &Run{State: m, Redactor: g.Redactor})
	ips := planned.Instances
	if diags.HasErrors() {
		t.Fatal(describe(diags))
	}
	kinds := map[string]plans.Action{}
	for _, p := range ips {
		kinds[p.Instance.Address] = p.Action
	}
	want := map[string]plans.Action{"step.n": plans.NoChange, "step.m": plans.Manual, "step.a": plans.NoChange}
	for k, v := range want {
		if kinds[k] != v {
			t.Errorf("%s: %v, want %v", k, kinds[k], v)
		}
	}
}
