package engine

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"

	"github.com/switchover/switchover/internal/lang"
	"github.com/switchover/switchover/internal/runbook"
	"github.com/switchover/switchover/internal/secrets"
)

// writeTree writes files (slash path -> content) under a fresh directory.
func writeTree(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// servers is a module: a runbook of its own, usable alone.
const serversModule = `
runbook "servers" {}
variable "site" { type = string }
variable "greeting" {
  type    = string
  default = "hello"
}
variable "token" {
  type      = string
  sensitive = true
  default   = "module-default-token"
}
variable "count" {
  type = number
  default = 1
  validation {
    condition     = var.count > 0
    error_message = "count must be positive."
  }
}
locals {
  label = "${var.greeting} ${var.site}"
}
plugin "core" {}
step "core.noop" "first" {
  message = local.label
}
step "core.noop" "second" {
  message    = "after ${step.first.outputs.message} (${var.count})"
  depends_on = [step.first]
}
step "core.noop" "secret" {
  message = var.token
}
step "core.noop" "password" {
  message = secret("admin")
}
output "label" { value = local.label }
handover {
  item "Check the servers" { owner = "new provider" }
}
`

func TestModulesComposeRunbooksInTheirOwnNamespace(t *testing.T) {
	dir := writeTree(t, map[string]string{
		"servers/main.sw.hcl": serversModule,
		"full/main.sw.hcl": `
runbook "full" {}
variable "site" { default = "bakery" }
variable "token" {
  sensitive = true
  default   = "root-token-canary"
}
locals {
  other = "office"
}
module "north" {
  source = "../servers"
  site   = var.site
  token  = var.token
}
module "south" {
  source   = "../servers"
  site     = local.other
  greeting = "hi"
  count    = 2
}
step "core.noop" "first" { message = "the runbook's own first" }
step "core.noop" "last" {
  depends_on = [step.first, module.north]
  message    = "done"
}
`})
	var mu sync.Mutex
	asked := map[string]string{} // secret name -> the step instance that asked
	g := build(t, filepath.Join(dir, "full"), Options{Mode: ModePlan, Secrets: func(addr string) lang.SecretResolver {
		return func(name string, _ secrets.Options) (cty.Value, error) {
			mu.Lock()
			defer mu.Unlock()
			asked[name] = addr
			return cty.UnknownVal(cty.String), nil
		}
	}})
	// Each module's secrets are its own: the same secret("admin") in two
	// modules is two passwords.
	if asked["north/admin"] != "module.north.step.password" || asked["south/admin"] != "module.south.step.password" || asked["admin"] != "" {
		t.Errorf("secrets asked for: %v", asked)
	}
	// The runbook's own secret("north/admin") would be module north's:
	// refused, at the line that asks for it.
	os.WriteFile(filepath.Join(dir, "full", "collide.sw.hcl"), []byte(`
step "core.noop" "mine" {
  message = secret("north/admin")
}
`), 0o644)
	_, d := Build(context.Background(), Options{Dir: filepath.Join(dir, "full"), Plugins: newHost(t), Mode: ModePlan, Secrets: func(addr string) lang.SecretResolver {
		return func(name string, _ secrets.Options) (cty.Value, error) { return cty.UnknownVal(cty.String), nil }
	}})
	if got := describe(d); !strings.Contains(got, `"north/admin" is where module.north keeps its secret("admin")`) || !strings.Contains(got, "3:") {
		t.Errorf("a root secret in a module's namespace: %s", got)
	}
	os.Remove(filepath.Join(dir, "full", "collide.sw.hcl"))
	for addr, want := range map[string]string{
		"module.north.step.first":  "hello bakery",
		"module.south.step.first":  "hi office",
		"step.first":               "the runbook's own first",
		"module.south.step.second": "UnknownVal", // from step.first's outputs: its own module's
	} {
		if got := attr(instance(t, g, addr), "message"); got != want && !(want == "UnknownVal" && strings.Contains(got, want)) {
			t.Errorf("%s: message = %q, want %q", addr, got, want)
		}
	}
	// A module's step depends on its own module's step, nothing else.
	if deps := g.Steps["south.second"].Deps; len(deps) != 1 || deps[0] != "south.first" {
		t.Errorf("south.second depends on %v", deps)
	}
	// depends_on = [module.north]: every step of the module.
	if deps := strings.Join(g.Steps["last"].Deps, ","); deps != "first,north.first,north.password,north.second,north.secret" {
		t.Errorf("last depends on %s", deps)
	}
	// The sensitive input stays sensitive inside the module.
	sec := instance(t, g, "module.north.step.secret").Attrs.GetAttr("message")
	if !sec.HasMark(lang.SensitiveMark) {
		t.Error("a sensitive module variable's value is not marked sensitive")
	}
	if !instance(t, g, "module.south.step.secret").Attrs.GetAttr("message").HasMark(lang.SensitiveMark) {
		t.Error("a sensitive module variable's default is not marked sensitive")
	}
	// Each module configures its own plugin instance.
	if g.Steps["north.first"].Plugin == g.Steps["south.first"].Plugin {
		t.Error("two modules share one plugin configuration")
	}
	if got := g.Steps["north.first"].Plugin.Key; got != "module.north.core" {
		t.Errorf("plugin key %q", got)
	}
	var outs, items []string
	for _, o := range g.Runbook.Outputs {
		outs = append(outs, o.Name)
	}
	for _, it := range g.Runbook.Handover {
		items = append(items, it.Title)
	}
	if strings.Join(outs, ",") != "north.label,south.label" || len(items) != 2 {
		t.Errorf("outputs %v, handover items %v", outs, items)
	}
	if len(g.Runbook.Modules) != 2 || g.Runbook.Modules[0].Address() != "module.north" {
		t.Errorf("modules %+v", g.Runbook.Modules)
	}

	// -target takes a module step's address and brings its dependencies.
	g = build(t, filepath.Join(dir, "full"), Options{Mode: ModePlan, Targets: []string{"module.south.step.second"}})
	var got []string
	for _, in := range g.Instances {
		got = append(got, in.Address)
	}
	if strings.Join(got, " ") != "module.south.step.first module.south.step.second" {
		t.Errorf("targeted instances %v", got)
	}

	// The runbook's hash covers its modules' files.
	before := g.Runbook.Hash
	os.WriteFile(filepath.Join(dir, "servers", "main.sw.hcl"), []byte(serversModule+"\n# changed\n"), 0o644)
	g = build(t, filepath.Join(dir, "full"), Options{Mode: ModePlan})
	if g.Runbook.Hash == before {
		t.Error("changing a module's file does not change the runbook's hash")
	}
}

func TestNestedModules(t *testing.T) {
	dir := writeTree(t, map[string]string{
		"leaf/main.sw.hcl": `
runbook "leaf" {}
variable "who" {}
step "core.noop" "s" { message = "leaf ${var.who}" }
`,
		"mid/main.sw.hcl": `
runbook "mid" {}
variable "who" {}
module "inner" {
  source = "../leaf"
  who    = "${var.who} via mid"
}
step "core.noop" "after_inner" {
  depends_on = [module.inner]
}
`,
		"top/main.sw.hcl": `
runbook "top" {}
module "outer" {
  source = "../mid"
  who    = "top"
}
`})
	g := build(t, filepath.Join(dir, "top"), Options{Mode: ModePlan})
	if got := attr(instance(t, g, "module.outer.module.inner.step.s"), "message"); got != "leaf top via mid" {
		t.Errorf("message %q", got)
	}
	if deps := g.Steps["outer.after_inner"].Deps; len(deps) != 1 || deps[0] != "outer.inner.s" {
		t.Errorf("module.outer.step.after_inner depends on %v", deps)
	}
	if n := runbook.StepName("module.outer.module.inner.step.s[\"k\"]"); n != "outer.inner.s" {
		t.Errorf("StepName = %q", n)
	}
}

// Each mistake in a module or a module block is one error at its place.
func TestModuleMistakes(t *testing.T) {
	cases := []struct {
		name  string
		files map[string]string
		file  string // where the error points
		line  int
		want  string
	}{
		{"missing input", map[string]string{"m/main.sw.hcl": serversModule, "r/main.sw.hcl": `runbook "r" {}
module "a" {
  source = "../m"
}`}, "r/main.sw.hcl", 2, `Missing module input: Module "a" (../m) needs a value for its variable "site"`},
		{"unknown input", map[string]string{"m/main.sw.hcl": serversModule, "r/main.sw.hcl": `runbook "r" {}
module "a" {
  source = "../m"
  site   = "x"
  sites  = "y"
}`}, "r/main.sw.hcl", 5, `Unsupported module input: Module "a" (../m) has no variable "sites"; its variables are count, greeting, site, token. Did you mean "site"?`},
		{"undeclared variable in the module", map[string]string{"m/main.sw.hcl": `runbook "m" {}
variable "site" {}
step "core.noop" "s" {
  message = var.stie
}`, "r/main.sw.hcl": `runbook "r" {}
module "a" {
  source = "../m"
  site   = "x"
}`}, "m/main.sw.hcl", 4, `Reference to undeclared input variable: No variable "stie" is declared in this module (../m, used as module "a"). Did you mean "site"?`},
		{"undeclared step in the module", map[string]string{"m/main.sw.hcl": `runbook "m" {}
step "core.noop" "first" {}
step "core.noop" "s" {
  message = step.frist.outputs.message
}`, "r/main.sw.hcl": `runbook "r" {}
step "core.noop" "frist" {}
module "a" {
  source = "../m"
}`}, "m/main.sw.hcl", 4, `Reference to undeclared step: Step "module.a.step.s" refers to step "frist", which is not declared. Did you mean "first"?`},
		{"cycle", map[string]string{"r/main.sw.hcl": `runbook "r" {}
module "self" {
  source = "../r"
}`}, "r/main.sw.hcl", 3, `Module cycle`},
		{"absolute source", map[string]string{"r/main.sw.hcl": `runbook "r" {}
module "a" {
  source = "/etc"
}`}, "r/main.sw.hcl", 3, `Invalid module source`},
		{"missing directory", map[string]string{"r/main.sw.hcl": `runbook "r" {}
module "a" {
  source = "../nowhere"
}`}, "r/main.sw.hcl", 3, `Cannot read runbook directory`},
		{"validation", map[string]string{"m/main.sw.hcl": serversModule, "r/main.sw.hcl": `runbook "r" {}
module "a" {
  source = "../m"
  site   = "x"
  count  = 0
}`}, "m/main.sw.hcl", 17, `count must be positive. (The value is module.a's input at`},
		{"wrong type", map[string]string{"m/main.sw.hcl": serversModule, "r/main.sw.hcl": `runbook "r" {}
module "a" {
  source = "../m"
  site   = "x"
  count  = "many"
}`}, "r/main.sw.hcl", 5, `Invalid value for module input: The value given to variable "count" of module.a does not fit its type number`},
		{"depends on an undeclared module", map[string]string{"m/main.sw.hcl": serversModule, "r/main.sw.hcl": `runbook "r" {}
module "north" {
  source = "../m"
  site   = "x"
}
step "core.noop" "s" {
  depends_on = [module.nort]
}`}, "r/main.sw.hcl", 7, `Reference to undeclared module: Step "s" depends on module "nort", which is not declared here. Did you mean "north"?`},
		{"input from a step", map[string]string{"m/main.sw.hcl": serversModule, "r/main.sw.hcl": `runbook "r" {}
step "core.noop" "s" {}
module "a" {
  source = "../m"
  site   = step.s.outputs.message
}`}, "r/main.sw.hcl", 5, `Invalid reference in module input`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := writeTree(t, c.files)
			_, diags := Build(context.Background(), Options{Dir: filepath.Join(dir, "r"), Plugins: newHost(t), Mode: ModePlan})
			var errs hcl.Diagnostics
			for _, d := range diags {
				if d.Severity == hcl.DiagError {
					errs = append(errs, d)
				}
			}
			if len(errs) != 1 {
				t.Fatalf("want one error, got:\n%s", describe(diags))
			}
			e := errs[0]
			if got := e.Summary + ": " + e.Detail; !strings.Contains(got, c.want) {
				t.Errorf("error %q, want %q", got, c.want)
			}
			if e.Subject == nil || !strings.HasSuffix(filepath.ToSlash(e.Subject.Filename), c.file) || e.Subject.Start.Line != c.line {
				t.Errorf("error at %v, want %s:%d", e.Subject, c.file, c.line)
			}
		})
	}
}
