// Package engine turns a runbook into a graph of step instances and runs the
// plan walk over it (and, later, apply).
package engine

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/ext/typeexpr"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/convert"
	"github.com/zclconf/go-cty/cty/function"

	"github.com/switchover/switchover/internal/dag"
	"github.com/switchover/switchover/internal/lang"
	"github.com/switchover/switchover/internal/runbook"
	"github.com/switchover/switchover/internal/secrets"
	"github.com/switchover/switchover/plugins/sdk"
)

// Factory starts plugins by name; key names the configuration (a plugin
// block's alias), one process each. pluginhost.Factory is the real one;
// tests use plugins in process.
type Factory interface {
	Start(name, key string) (Provider, error)
}

// Provider is one started plugin as the engine calls it: the host side of
// the plugin boundary, owned here. pluginhost's instances (over gRPC) and
// sdktest's in-process plugins satisfy it; a plugin's author writes an
// sdk.Plugin and never sees it. Every Plan call goes through planCall,
// and a conflict comes back as one error, *sdk.ConflictError.
type Provider interface {
	Schema(ctx context.Context) (*sdk.Schema, error)
	Configure(ctx context.Context, config cty.Value) (sdk.Diagnostics, error)
	Plan(ctx context.Context, req *sdk.PlanRequest) (*sdk.PlanResponse, error)
	Apply(ctx context.Context, req *sdk.ApplyRequest, ev sdk.Events) (*sdk.ApplyResponse, error)
}

// Mode says how much Build may assume.
type Mode int

const (
	// ModeValidate: a variable without a value is unknown, not an error, and
	// a for_each that is not known yet is checked as one sample instance.
	ModeValidate Mode = iota
	// ModePlan: every variable needs a value and every instance is expanded.
	ModePlan
)

// Options configure Build.
type Options struct {
	Dir  string
	Vars []VarInput
	// Environ is the process environment (read by cli, never here): the
	// SWITCHOVER_VAR_* values and what env() returns.
	Environ []string
	Plugins Factory
	Mode    Mode
	Targets []string // step names (with or without "step.")
	// Secrets returns the secret() resolver for one step instance
	// (default: every secret unknown, generated at apply).
	Secrets func(address string) lang.SecretResolver
	// KnownOutputs returns the recorded outputs of a finished instance.
	KnownOutputs func(address string, schema []sdk.Output) (cty.Value, bool)
	// FreshReads (plan and apply, unless -refresh=false): read-only steps
	// are data sources, read again on every plan. A step that refers to
	// one is expanded by ExpandReads from that fresh read, never from the
	// outputs the state recorded.
	FreshReads bool
	// Redactor to use (default: a new one).
	Redactor *Redactor
}

// Graph is a runbook with its values resolved and its steps expanded as
// far as they can be before plugins are configured: the configuration,
// never changed once Build returns (as Terraform's graph is). A plan walk
// and an apply walk keep what they find (fresh reads, plans, outcomes) in
// their own state: Plan's Planned, Apply's applyWalk.
type Graph struct {
	Runbook   *runbook.Runbook
	Vars      map[string]cty.Value
	Locals    map[string]cty.Value
	Plugins   map[string]*PluginConfig
	Steps     map[string]*StepNode
	Order     []*StepNode // dependencies first
	Instances []*Instance // in Order; a step fed by reads has its instances per plan
	Redactor  *Redactor
	DAG       *dag.Graph

	scope *lang.Scope
	opts  Options
	// built is Build's expansion; each walk starts from a copy.
	built *expansion
}

// PluginConfig is one configured plugin instance (a plugin block, or the
// implicit unconfigured one a step uses when there is no block).
type PluginConfig struct {
	Key      string
	Name     string
	Block    *runbook.PluginBlock // nil when implicit
	Attrs    hcl.Attributes
	Schema   *sdk.Schema
	Config   cty.Value
	Instance Provider
}

// StepNode is a step with its action schema and decoded attributes.
type StepNode struct {
	Step   *runbook.Step
	Plugin *PluginConfig
	Schema *sdk.ActionSchema
	Attrs  hcl.Attributes
	Deps   []string
	// refs are the steps its expressions (for_each, when, attributes)
	// refer to: Deps without depends_on.
	refs []string
	// Instances are Build's (none for a step expanded from fresh reads:
	// each plan has its own, Planned).
	Instances []*Instance
	Targeted  bool
}

// Instance is one expanded step instance.
type Instance struct {
	Node    *StepNode
	Key     cty.Value // cty.NilVal without for_each
	Address string
	Attrs   cty.Value // object of the action's attributes (with sensitive marks)
	// Disabled: `when` is false.
	Disabled bool
	// Deferred says why the plugin cannot plan it yet (empty when it can).
	Deferred string
	// Gone: recorded in the state, but the reads it is expanded from no
	// longer yield its key.
	Gone bool

	each *lang.Each
}

// KeyString is the instance key as text ("" without for_each).
func (in *Instance) KeyString() string {
	if in.Key == cty.NilVal || !in.Key.IsKnown() {
		return ""
	}
	return in.Key.AsString()
}

func errDiag(rng *hcl.Range, summary, format string, a ...any) *hcl.Diagnostic {
	return &hcl.Diagnostic{Severity: hcl.DiagError, Summary: summary, Detail: fmt.Sprintf(format, a...), Subject: rng}
}

// Build reads, checks and expands a runbook. Plugins are started (to read
// their schemas) but not configured. Every diagnostic is redacted.
func Build(ctx context.Context, opts Options) (*Graph, hcl.Diagnostics) {
	if opts.Redactor == nil {
		opts.Redactor = NewRedactor()
	}
	g, diags := buildGraph(ctx, opts)
	return g, opts.Redactor.Diags(diags)
}

func buildGraph(ctx context.Context, opts Options) (*Graph, hcl.Diagnostics) {
	rb, diags := runbook.Load(opts.Dir)
	if diags.HasErrors() {
		return &Graph{Runbook: rb, Redactor: opts.Redactor}, diags
	}
	if opts.Secrets == nil {
		opts.Secrets = func(string) lang.SecretResolver { return lang.UnknownSecrets }
	}
	g := &Graph{Runbook: rb, Plugins: map[string]*PluginConfig{}, Steps: map[string]*StepNode{}, Redactor: opts.Redactor, opts: opts}
	g.scope = &lang.Scope{Funcs: lang.Functions(rb.Dir, opts.Environ)}
	for _, r := range rb.Meta.SecretRecipients {
		if _, err := secrets.ParseRecipient(r); err != nil {
			diags = append(diags, errDiag(rb.Meta.RecipientsRange.Ptr(), "Invalid secret recipient", "%q is not an age (age1...) or SSH (ssh-ed25519, ssh-rsa) public key: %v.", r, err))
		}
	}
	vars, d := resolveVariables(rb, opts.Vars, opts.Environ, opts.Mode == ModeValidate, g.scope)
	diags = append(diags, d...)
	g.Vars, g.scope.Vars = vars, vars
	for _, v := range vars {
		g.Redactor.AddValue(v)
	}
	b := &builder{g: g}
	g.Locals, d = b.evalLocals()
	diags = append(diags, d...)
	g.scope.Locals = g.Locals
	diags = append(diags, b.loadPlugins(ctx, opts.Plugins)...)
	diags = append(diags, b.decodeSteps()...)
	if diags.HasErrors() {
		return g, diags
	}
	diags = append(diags, b.order(opts.Targets)...)
	if diags.HasErrors() {
		return g, diags
	}
	e := newExpansion(g, opts.Mode)
	diags = append(diags, e.expandAll()...)
	g.built = e
	g.Instances = e.instances
	for _, n := range g.Order {
		n.Instances = e.of(n)
	}
	return g, diags
}

// builder resolves a runbook into a Graph (Build): locals, plugins, steps
// and their order. Once it is done, the graph is not changed again.
type builder struct{ g *Graph }

// --- locals ---

// localDeps checks the references of the local values: the locals each
// one refers to.
func (b *builder) localDeps(byName map[string]*runbook.Local) (map[string][]string, hcl.Diagnostics) {
	g := b.g
	var diags hcl.Diagnostics
	deps := map[string][]string{}
	for _, l := range g.Runbook.Locals {
		for _, r := range lang.References(l.Expr) {
			switch r.Kind {
			case "local":
				if byName[r.Name] == nil {
					diags = append(diags, errDiag(r.Range.Ptr(), "Reference to undeclared local value", "No local value %q is declared.%s", r.Name, didYouMean(r.Name, keys(byName))))
				} else {
					deps[l.Name] = append(deps[l.Name], r.Name)
				}
			case "var":
				diags = append(diags, b.checkVarRef(r)...)
			default:
				if l.Var != nil {
					diags = append(diags, errDiag(r.Range.Ptr(), "Invalid reference in module input", "A module input (here %s of module.%s) can refer to var.NAME and local.NAME, not to %s: the module's variables are known before any step runs.", l.Var.Name, l.Module, r.Kind))
					continue
				}
				diags = append(diags, errDiag(r.Range.Ptr(), "Invalid reference in local value", "A local value can refer to var.NAME and local.NAME, not to %s.", r.Kind))
			}
		}
	}
	return deps, diags
}

func (b *builder) evalLocals() (map[string]cty.Value, hcl.Diagnostics) {
	g := b.g
	byName := map[string]*runbook.Local{}
	for _, l := range g.Runbook.Locals {
		byName[l.Name] = l
	}
	// Check references first.
	deps, diags := b.localDeps(byName)
	out := map[string]cty.Value{}
	unknown := func() map[string]cty.Value {
		// Declared, not known: what refers to them is not reported again.
		for n := range byName {
			out[n] = cty.DynamicVal
		}
		return out
	}
	if diags.HasErrors() {
		return unknown(), diags
	}
	dg := dag.New()
	for _, l := range g.Runbook.Locals {
		dg.Add(l.Name)
		for _, d := range deps[l.Name] {
			dg.Connect(l.Name, d)
		}
	}
	for _, c := range dg.Cycles() {
		l := byName[c[0]]
		diags = append(diags, errDiag(l.DeclRange.Ptr(), "Cycle in local values", "These local values refer to each other: %s.", cyclePath("local.", c)))
	}
	if diags.HasErrors() {
		return unknown(), diags
	}
	for _, name := range dg.TopoOrder() {
		l := byName[name]
		g.scope.Locals = out
		if l.Var != nil {
			v, d := b.moduleVar(l)
			diags = append(diags, d...)
			out[name] = v
			continue
		}
		v, d := l.Expr.Value(g.scope.EvalContext(nil))
		diags = append(diags, d...)
		if d.HasErrors() {
			v = cty.DynamicVal
		}
		out[name] = v
	}
	return out, diags
}

// moduleVar is the value of a module's variable: the module block's input
// (evaluated in the runbook that uses the module) or the default, of the
// variable's type, sensitive when declared so, validated.
func (b *builder) moduleVar(l *runbook.Local) (cty.Value, hcl.Diagnostics) {
	g := b.g
	v := l.Var
	val := v.Default
	if l.Expr != nil {
		var d hcl.Diagnostics
		val, d = l.Expr.Value(g.scope.EvalContext(nil))
		if d.HasErrors() {
			return cty.UnknownVal(v.Type), d
		}
		if v.Defaults != nil {
			val = v.Defaults.Apply(val)
		}
		conv, err := convert.Convert(lang.Homogeneous(val), v.Type)
		if err != nil {
			return cty.UnknownVal(v.Type), hcl.Diagnostics{errDiag(l.Expr.Range().Ptr(), "Invalid value for module input",
				"The value given to variable %q of module.%s does not fit its type %s: %s.", v.Name, l.Module, typeexpr.TypeString(v.Type), err)}
		}
		val = conv
	}
	if v.Sensitive {
		val = val.Mark(lang.SensitiveMark)
		g.Redactor.AddValue(val)
	}
	diags := validate(v, val, g.scope)
	if l.Expr != nil {
		for _, d := range diags {
			d.Detail += fmt.Sprintf(" (The value is module.%s's input at %s.)", l.Module, l.Expr.Range())
		}
	}
	return val, diags
}

func cyclePath(prefix string, c []string) string {
	parts := make([]string, 0, len(c)+1)
	for _, n := range c {
		parts = append(parts, prefix+n)
	}
	parts = append(parts, prefix+c[0])
	return strings.Join(parts, " -> ")
}

func keys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func didYouMean(name string, candidates []string) string {
	if s := runbook.Nearest(name, candidates); s != "" {
		return fmt.Sprintf(" Did you mean %q?", s)
	}
	return ""
}

func (b *builder) checkVarRef(r lang.Ref) hcl.Diagnostics {
	g := b.g
	if _, ok := g.Vars[r.Name]; ok {
		return nil
	}
	return hcl.Diagnostics{errDiag(r.Range.Ptr(), "Reference to undeclared input variable", "No variable %q is declared. Declare it with variable %q { ... }.%s", r.Name, r.Name, didYouMean(r.Name, keys(g.Vars)))}
}

func (b *builder) checkLocalRef(r lang.Ref) hcl.Diagnostics {
	g := b.g
	if _, ok := g.Locals[r.Name]; ok {
		return nil
	}
	return hcl.Diagnostics{errDiag(r.Range.Ptr(), "Reference to undeclared local value", "No local value %q is declared.%s", r.Name, didYouMean(r.Name, keys(g.Locals)))}
}

// --- plugins ---

func attrSchema(attrs []sdk.Attribute) *hcl.BodySchema {
	s := &hcl.BodySchema{}
	for _, a := range attrs {
		s.Attributes = append(s.Attributes, hcl.AttributeSchema{Name: a.Name, Required: a.Required})
	}
	return s
}

// pluginUse is a plugin configuration the runbook needs: the plugin's
// name, and where it is named (for diagnostics).
type pluginUse struct {
	name string
	rng  hcl.Range
}

// neededPlugins are the plugin configurations of the runbook's blocks and
// of the steps that use a plugin without a block, in the order met.
func (b *builder) neededPlugins() (map[string]pluginUse, []string, hcl.Diagnostics) {
	g := b.g
	var diags hcl.Diagnostics
	needed := map[string]pluginUse{}
	var order []string
	for _, p := range g.Runbook.Plugins {
		if _, ok := needed[p.Key()]; !ok {
			order = append(order, p.Key())
		}
		needed[p.Key()] = pluginUse{p.Name, p.NameRange}
	}
	for _, s := range g.Runbook.Steps {
		if _, ok := needed[s.PluginKey]; ok {
			continue
		}
		if !s.ImplicitPlugin() {
			rng := s.DeclRange
			if s.PluginRange != nil {
				rng = *s.PluginRange
			}
			diags = append(diags, errDiag(&rng, "Reference to undeclared plugin configuration",
				"Step %q uses plugin = %s, but no plugin %q block has alias = %q.", stepLabel(s), s.PluginRef(), s.Plugin, strings.TrimPrefix(s.PluginRef(), s.Plugin+".")))
			continue
		}
		needed[s.PluginKey] = pluginUse{s.Plugin, s.TypeRange}
		order = append(order, s.PluginKey)
	}
	return needed, order, diags
}

func (b *builder) loadPlugins(ctx context.Context, host Factory) hcl.Diagnostics {
	g := b.g
	needed, order, diags := b.neededPlugins()
	blocks := map[string]*runbook.PluginBlock{}
	for _, p := range g.Runbook.Plugins {
		blocks[p.Key()] = p
	}
	failed := map[string]bool{}
	for _, key := range order {
		u := needed[key]
		if failed[u.name] {
			continue
		}
		in, err := host.Start(u.name, key)
		var schema *sdk.Schema
		if err == nil {
			schema, err = in.Schema(ctx)
		}
		if err != nil {
			failed[u.name] = true
			summary := "Plugin failed"
			var nf interface{ PluginNotFound() bool }
			if errors.As(err, &nf) && nf.PluginNotFound() {
				summary = "Unknown plugin"
			}
			diags = append(diags, errDiag(&u.rng, summary, "%s.", err))
			continue
		}
		pc := &PluginConfig{Key: key, Name: u.name, Block: blocks[key], Schema: schema, Instance: in}
		diags = append(diags, b.decodePluginConfig(pc)...)
		g.Plugins[key] = pc
	}
	return diags
}

func (b *builder) decodePluginConfig(pc *PluginConfig) hcl.Diagnostics {
	g := b.g
	var diags hcl.Diagnostics
	if pc.Block == nil {
		var req []string
		for _, a := range pc.Schema.Config {
			if a.Required {
				req = append(req, a.Name)
			}
		}
		if len(req) > 0 {
			// Reported by the steps that use it, which know their range.
			pc.Config = cty.DynamicVal
			return nil
		}
		pc.Config = nullObject(pc.Schema.Config)
		return nil
	}
	content, d := pc.Block.Config.Content(attrSchema(pc.Schema.Config))
	diags = append(diags, d...)
	pc.Attrs = content.Attributes
	for _, a := range content.Attributes {
		for _, r := range lang.References(a.Expr) {
			switch r.Kind {
			case "var":
				diags = append(diags, b.checkVarRef(r)...)
			case "local":
				diags = append(diags, b.checkLocalRef(r)...)
			default:
				diags = append(diags, errDiag(r.Range.Ptr(), "Invalid reference in plugin configuration", "A plugin block can refer to var.NAME and local.NAME, not to %s.", r.Kind))
			}
		}
	}
	if diags.HasErrors() {
		pc.Config = cty.DynamicVal
		return diags
	}
	// secret("NAME") here is what a step stored under NAME (null until
	// then), such as the password a rotation set: the runbook keeps
	// working after its own rotation.
	ctx := g.scope.EvalContext(nil).NewChild()
	ctx.Functions = map[string]function.Function{"secret": lang.StoredSecretFunc(g.moduleSecrets(pc.Block.Module, g.opts.Secrets("plugin."+pc.Key)))}
	v, d := g.evalAttrs(pc.Schema.Config, content.Attributes, ctx)
	pc.Config = v
	return append(diags, d...)
}

func nullObject(attrs []sdk.Attribute) cty.Value {
	m := map[string]cty.Value{}
	for _, a := range attrs {
		m[a.Name] = cty.NullVal(a.Type)
	}
	return cty.ObjectVal(m)
}

// evalAttrs evaluates attributes against their schema into one object:
// absent ones are null, sensitive ones are marked.
func (g *Graph) evalAttrs(schema []sdk.Attribute, attrs hcl.Attributes, ctx *hcl.EvalContext) (cty.Value, hcl.Diagnostics) {
	var diags hcl.Diagnostics
	m := make(map[string]cty.Value, len(schema))
	for _, sa := range schema {
		a, ok := attrs[sa.Name]
		if !ok {
			m[sa.Name] = cty.NullVal(sa.Type)
			continue
		}
		v, d := a.Expr.Value(ctx)
		diags = append(diags, d...)
		if d.HasErrors() {
			m[sa.Name] = cty.UnknownVal(sa.Type)
			continue
		}
		conv, err := convert.Convert(v, sa.Type)
		if err != nil {
			diags = append(diags, errDiag(a.Expr.Range().Ptr(), "Incorrect attribute value type", "Attribute %q takes %s: %s.", sa.Name, typeName(sa.Type), err))
			m[sa.Name] = cty.UnknownVal(sa.Type)
			continue
		}
		if sa.Required && conv.IsNull() {
			diags = append(diags, errDiag(a.Expr.Range().Ptr(), "Missing required argument value", "Attribute %q is required and cannot be null.", sa.Name))
		}
		if sa.Sensitive {
			conv = conv.Mark(lang.SensitiveMark)
		}
		g.Redactor.AddValue(conv)
		m[sa.Name] = conv
	}
	return cty.ObjectVal(m), diags
}

func typeName(t cty.Type) string {
	switch {
	case t == cty.String:
		return "a string"
	case t == cty.Number:
		return "a number"
	case t == cty.Bool:
		return "true or false"
	}
	return t.FriendlyName()
}

// --- steps ---

func (b *builder) decodeSteps() hcl.Diagnostics {
	g := b.g
	var diags hcl.Diagnostics
	for _, s := range g.Runbook.Steps {
		node := &StepNode{Step: s}
		g.Steps[s.Name] = node
		pc := g.Plugins[s.PluginKey]
		if pc == nil {
			continue // reported when the plugin failed to start
		}
		node.Plugin = pc
		d, ok := stepSchema(node, pc)
		diags = append(diags, d...)
		if !ok {
			continue
		}
		content, d := s.Config.Content(attrSchema(node.Schema.Attributes))
		diags = append(diags, d...)
		node.Attrs = content.Attributes
		exprs := []hcl.Expression{s.ForEach, s.When}
		for _, a := range content.Attributes {
			exprs = append(exprs, a.Expr)
		}
		deps, d := b.stepRefs(s, exprs)
		diags = append(diags, d...)
		node.refs = keys(deps)
		for _, tr := range s.DependsOn {
			if tr.RootName() == "module" {
				names, d := b.moduleSteps(tr, s)
				diags = append(diags, d...)
				for _, n := range names {
					deps[n] = true
				}
				continue
			}
			name, _ := stepNameOf(tr)
			r := lang.Ref{Kind: "step", Name: name, Range: tr.SourceRange()}
			diags = append(diags, b.checkStepRef(r, s)...)
			deps[name] = true
		}
		node.Deps = keys(deps)
	}
	return append(diags, b.checkOutputRefs()...)
}

// stepSchema finds the action of a step in its plugin's schema (false: it
// has none), and checks the plugin's settings and attribute names.
func stepSchema(node *StepNode, pc *PluginConfig) (hcl.Diagnostics, bool) {
	var diags hcl.Diagnostics
	s := node.Step
	if pc.Block == nil && pc.Config == cty.DynamicVal {
		var req []string
		for _, a := range pc.Schema.Config {
			if a.Required {
				req = append(req, a.Name)
			}
		}
		diags = append(diags, errDiag(s.TypeRange.Ptr(), "Missing plugin configuration",
			"Step %q uses plugin %q, which needs settings (%s): add a plugin %q { ... } block.", stepLabel(s), s.Plugin, strings.Join(req, ", "), s.Plugin))
	}
	node.Schema = pc.Schema.Action(s.Action)
	if node.Schema == nil {
		var names []string
		for _, a := range pc.Schema.Actions {
			names = append(names, a.Name)
		}
		return append(diags, errDiag(s.TypeRange.Ptr(), "Unknown action",
			"Plugin %q has no action %q; its actions are %s.%s", s.Plugin, s.Action, strings.Join(names, ", "), didYouMean(s.Action, names))), false
	}
	for _, a := range node.Schema.Attributes {
		for _, m := range runbook.MetaArguments {
			if a.Name == m {
				diags = append(diags, errDiag(s.TypeRange.Ptr(), "Plugin schema conflict", "Action %s.%s declares attribute %q, which is a step meta-argument; the plugin must rename it.", s.Plugin, s.Action, a.Name))
			}
		}
	}
	return diags, true
}

// stepRefs checks what a step's expressions refer to: the steps it uses.
func (b *builder) stepRefs(s *runbook.Step, exprs []hcl.Expression) (map[string]bool, hcl.Diagnostics) {
	var diags hcl.Diagnostics
	deps := map[string]bool{}
	for _, r := range lang.References(exprs...) {
		switch r.Kind {
		case "var":
			diags = append(diags, b.checkVarRef(r)...)
		case "local":
			diags = append(diags, b.checkLocalRef(r)...)
		case "each":
			if s.ForEach == nil {
				diags = append(diags, errDiag(r.Range.Ptr(), "Reference to each without for_each", "each.key and each.value exist only in a step with for_each."))
			}
		case "step":
			if r.Name == "" {
				diags = append(diags, errDiag(r.Range.Ptr(), "Invalid step reference", "Refer to a step as step.NAME.outputs.OUTPUT."))
			} else {
				deps[r.Name] = true
			}
			diags = append(diags, b.checkStepRef(r, s)...)
		default:
			diags = append(diags, errDiag(r.Range.Ptr(), "Unknown reference", "%q is not something a step can refer to; use var.NAME, local.NAME, step.NAME or each.key / each.value.%s",
				r.Kind, didYouMean(r.Kind, []string{"var", "local", "step", "each"})))
		}
	}
	return deps, diags
}

// checkOutputRefs checks what output blocks refer to.
func (b *builder) checkOutputRefs() hcl.Diagnostics {
	g := b.g
	var diags hcl.Diagnostics
	for _, o := range g.Runbook.Outputs {
		for _, r := range lang.References(o.Value) {
			switch r.Kind {
			case "var":
				diags = append(diags, b.checkVarRef(r)...)
			case "local":
				diags = append(diags, b.checkLocalRef(r)...)
			case "step":
				if g.Steps[r.Name] == nil {
					diags = append(diags, errDiag(r.Range.Ptr(), "Reference to undeclared step", "Output %q refers to step %q, which is not declared.%s", o.Name, r.Name, didYouMean(r.Name, keys(g.Steps))))
				}
			default:
				diags = append(diags, errDiag(r.Range.Ptr(), "Unknown reference", "An output can refer to var.NAME, local.NAME and step.NAME, not to %q.", r.Kind))
			}
		}
	}
	return diags
}

func stepNameOf(tr hcl.Traversal) (string, bool) {
	if len(tr) < 2 {
		return "", false
	}
	if a, ok := tr[1].(hcl.TraverseAttr); ok {
		return a.Name, true
	}
	return "", false
}

// moduleSteps are the steps of the module a depends_on entry names
// (module.NAME: its steps, those of the modules it uses included).
func (b *builder) moduleSteps(tr hcl.Traversal, from *runbook.Step) ([]string, hcl.Diagnostics) {
	g := b.g
	path, _ := stepNameOf(tr)
	var names []string
	for _, s := range g.Runbook.Steps {
		if s.Module == path || strings.HasPrefix(s.Module, path+".") {
			names = append(names, s.Name)
		}
	}
	if len(names) > 0 {
		return names, nil
	}
	// Modules declared where the step is (the runbook, or its module).
	var known []string
	for _, m := range g.Runbook.Modules {
		if m.Path == path {
			return nil, nil // a module without steps
		}
		if parent, name := splitPath(m.Path); parent == from.Module {
			known = append(known, name)
		}
	}
	_, name := splitPath(path)
	return nil, hcl.Diagnostics{errDiag(tr.SourceRange().Ptr(), "Reference to undeclared module", "Step %q depends on module %q, which is not declared here.%s", stepLabel(from), name, didYouMean(name, known))}
}

// moduleSecrets names a module's secrets after it: secret("restic/office")
// in module backups is the secret backups/restic/office, so that two
// modules (two domains from the same runbook) never share a password.
// A name the runbook itself gives that a module's secret already has
// ("m/x" is module m's secret("x")) is refused: two steps would share
// one password without anyone saying so.
func (g *Graph) moduleSecrets(module string, resolve lang.SecretResolver) lang.SecretResolver {
	if module == "" {
		return func(name string, opts secrets.Options) (cty.Value, error) {
			for _, m := range g.Runbook.Modules {
				if strings.HasPrefix(name, m.Path+"/") {
					return cty.NilVal, fmt.Errorf("the secret name %q is where module.%s keeps its secret(%q): name this one otherwise (such as %q)",
						name, m.Path, strings.TrimPrefix(name, m.Path+"/"), "root-"+name)
				}
			}
			return resolve(name, opts)
		}
	}
	return func(name string, opts secrets.Options) (cty.Value, error) {
		return resolve(module+"/"+name, opts)
	}
}

// splitPath splits a module path "A.B" into its parent "A" and name "B".
func splitPath(path string) (parent, name string) {
	if i := strings.LastIndexByte(path, '.'); i >= 0 {
		return path[:i], path[i+1:]
	}
	return "", path
}

func (b *builder) checkStepRef(r lang.Ref, from *runbook.Step) hcl.Diagnostics {
	g := b.g
	if r.Name == "" {
		return nil
	}
	for _, s := range g.Runbook.Steps {
		if s.Name == r.Name {
			return nil
		}
	}
	// The steps declared where it is (the runbook, or its module), as
	// written there.
	var names []string
	for _, s := range g.Runbook.Steps {
		if s.Module == from.Module {
			names = append(names, runbook.LocalName(s.Name, s.Module))
		}
	}
	name := runbook.LocalName(r.Name, from.Module)
	return hcl.Diagnostics{errDiag(r.Range.Ptr(), "Reference to undeclared step", "Step %q refers to step %q, which is not declared.%s", stepLabel(from), name, didYouMean(name, names))}
}

// stepLabel names a step in a message: its name in the runbook itself, its
// address in a module.
func stepLabel(s *runbook.Step) string {
	if s.Module == "" {
		return s.Name
	}
	return s.Address()
}

// order builds the dependency graph, reports cycles and marks targets.
func (b *builder) order(targets []string) hcl.Diagnostics {
	g := b.g
	var diags hcl.Diagnostics
	dg := dag.New()
	for _, s := range g.Runbook.Steps {
		dg.Add(s.Name)
	}
	for _, s := range g.Runbook.Steps {
		for _, d := range g.Steps[s.Name].Deps {
			dg.Connect(s.Name, d)
		}
	}
	g.DAG = dg
	for _, c := range dg.Cycles() {
		first := g.Steps[c[0]].Step
		addrs := make([]string, len(c))
		for i, n := range c {
			addrs[i] = g.Steps[n].Step.Address()
		}
		diags = append(diags, errDiag(first.DeclRange.Ptr(), "Dependency cycle", "These steps depend on each other, so none of them can start: %s. Break the cycle by removing a reference or a depends_on entry.", cyclePath("", addrs)))
	}
	if diags.HasErrors() {
		return diags
	}
	var roots []string
	for _, t := range targets {
		name := runbook.StepName(t)
		if g.Steps[name] == nil {
			diags = append(diags, errDiag(nil, "Unknown target", "-target %s names no step of this runbook.%s", t, didYouMean(name, keys(g.Steps))))
			continue
		}
		roots = append(roots, name)
	}
	closure := dg.Closure(roots)
	for _, name := range dg.TopoOrder() {
		n := g.Steps[name]
		n.Targeted = len(targets) == 0 || closure[name]
		g.Order = append(g.Order, n)
	}
	return diags
}

// whenValue is what a step's `when` condition says.
type whenValue int

const (
	whenTrue    whenValue = iota // or no condition
	whenFalse                    // the instance is skipped
	whenUnknown                  // decided once earlier steps ran
)

// evalStepInstance is the one evaluator of a step instance, used by plan
// (with the outputs known then) and by apply (with the recorded outputs of
// the steps it depends on): its when condition, then its attributes, with
// each.key/each.value and secret() in scope.
func (g *Graph) evalStepInstance(n *StepNode, base *hcl.EvalContext, each *lang.Each, resolve lang.SecretResolver) (cty.Value, whenValue, hcl.Diagnostics) {
	var diags hcl.Diagnostics
	ctx := base.NewChild()
	ctx.Functions = map[string]function.Function{"secret": lang.SecretFunc(g.moduleSecrets(n.Step.Module, resolve))}
	if each != nil {
		ctx.Variables = map[string]cty.Value{"each": cty.ObjectVal(map[string]cty.Value{"key": each.Key, "value": each.Value})}
	}
	when := whenTrue
	if n.Step.When != nil {
		w, d := n.Step.When.Value(ctx)
		diags = append(diags, d...)
		if !d.HasErrors() {
			w, _ = w.Unmark()
			if !w.IsKnown() {
				when = whenUnknown
			} else if bw, err := convert.Convert(w, cty.Bool); err != nil || bw.IsNull() {
				diags = append(diags, errDiag(n.Step.When.Range().Ptr(), "Invalid when condition", "when must be true or false."))
			} else if bw.False() {
				when = whenFalse
			}
		}
	}
	attrs, d := g.evalAttrs(n.Schema.Attributes, n.Attrs, ctx)
	return attrs, when, append(diags, d...)
}
