// Package runbook reads a runbook directory into a model: blocks with their
// unevaluated expressions and source ranges. It evaluates nothing and does no
// I/O beyond reading the files.
package runbook

import (
	"strings"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/ext/typeexpr"
	"github.com/zclconf/go-cty/cty"
)

// Runbook is a parsed runbook directory.
type Runbook struct {
	Dir string
	// Files maps each file name to its parsed file, for diagnostics snippets.
	Files map[string]*hcl.File
	// Hash is the SHA-256 of every runbook file's name and content.
	Hash string

	Meta      *Meta
	Variables []*Variable
	Locals    []*Local
	Plugins   []*PluginBlock
	Steps     []*Step
	Outputs   []*Output
	// Modules are the module blocks, nested ones included, parents first.
	// Their contents are already merged into the lists above, under names
	// prefixed with the module's path.
	Modules []*Module
	// Handover lists what the new provider must do (handover { item ... }).
	Handover []*HandoverItem
	// Backend is where the state, its lock and the audit trail live (nil:
	// files in .switchover/).
	Backend *Backend
}

// Backend is a backend "TYPE" { ... } block: "pg" keeps the workspace in
// PostgreSQL, for a team.
type Backend struct {
	Type string
	// Workspace names this switchover's rows (a client and runbook).
	Workspace string
	// ConnectionEnv is the environment variable with the connection
	// string (never in the runbook: it holds a password).
	ConnectionEnv string
	DeclRange     hcl.Range
}

// HandoverItem is one task for the new provider in the checklist.
type HandoverItem struct {
	Title, Owner, Due, Detail string
	DeclRange                 hcl.Range
}

// Meta is the `runbook "NAME"` block.
type Meta struct {
	Name        string
	Client      string
	OldProvider string
	NewProvider string
	Description string
	// SecretRecipients: age or SSH public keys that every secret is also
	// encrypted to (such as the new MSP's key).
	SecretRecipients []string
	RecipientsRange  hcl.Range
	DeclRange        hcl.Range
}

// Variable is a `variable "NAME"` block.
type Variable struct {
	Name        string
	Type        cty.Type
	Defaults    *typeexpr.Defaults // optional attribute defaults of the type
	Default     cty.Value          // cty.NilVal when none
	Description string
	Sensitive   bool
	Validations []*Validation
	DeclRange   hcl.Range
}

// Validation is a variable's `validation` block.
type Validation struct {
	Condition    hcl.Expression
	ErrorMessage hcl.Expression
	DeclRange    hcl.Range
}

// Local is one attribute of a `locals` block, or a module's variable.
type Local struct {
	Name string
	// Expr is nil for a module variable that takes its default.
	Expr hcl.Expression
	// Var is set when this is a module's variable (Name "PATH.NAME"): its
	// value, the module block's input, has the variable's type, default,
	// sensitivity and validations.
	Var *Variable
	// Module is the module path ("" in the runbook itself).
	Module    string
	DeclRange hcl.Range
}

// PluginBlock is a `plugin "NAME"` block: one configured instance of a plugin.
type PluginBlock struct {
	Name  string
	Alias string
	// Module is the module path ("" in the runbook itself).
	Module    string
	Config    hcl.Body // decoded later against the plugin's schema
	DeclRange hcl.Range
	NameRange hcl.Range
}

// Key is NAME or NAME.ALIAS, how steps refer to this configuration; in a
// module it is prefixed with module.PATH. (one configuration per module).
func (p *PluginBlock) Key() string {
	k := p.Name
	if p.Alias != "" {
		k += "." + p.Alias
	}
	return modulePrefix(p.Module) + k
}

// modulePrefix is "" or "module.A.module.B." for module path "A.B".
func modulePrefix(path string) string {
	if path == "" {
		return ""
	}
	return "module." + strings.ReplaceAll(path, ".", ".module.") + "."
}

// OnFailure says what a failed step does to the rest of the run.
type OnFailure string

const (
	Halt     OnFailure = "halt"
	Continue OnFailure = "continue"
)

// Retry is a step's `retry` block.
type Retry struct {
	Attempts int
	Backoff  time.Duration
}

// Step is a `step "PLUGIN.ACTION" "NAME"` block.
type Step struct {
	// Name is unique in the runbook: the block's name, prefixed with the
	// module path in a module ("ad.disable").
	Name string
	// Module is the module path ("" in the runbook itself).
	Module string
	Plugin string
	Action string
	// PluginKey is the plugin configuration it uses: Plugin, or Plugin.ALIAS
	// when the step says `plugin = PLUGIN.ALIAS`.
	PluginKey   string
	PluginRange *hcl.Range

	DependsOn []hcl.Traversal
	ForEach   hcl.Expression // nil when absent
	When      hcl.Expression // nil when absent
	Timeout   time.Duration  // 0 when absent
	Retry     *Retry
	OnFailure OnFailure

	// Config is the rest of the body, decoded against the action's schema.
	Config hcl.Body

	DeclRange hcl.Range
	TypeRange hcl.Range
	NameRange hcl.Range
}

// LiteralAttr is the step's attribute name when it is a constant string
// ("" otherwise): for documents that read a runbook without evaluating it.
func (s *Step) LiteralAttr(name string) string {
	attrs, _ := s.Config.JustAttributes()
	a, ok := attrs[name]
	if !ok {
		return ""
	}
	v, d := a.Expr.Value(nil)
	if d.HasErrors() || v.IsNull() || !v.IsKnown() || v.Type() != cty.String {
		return ""
	}
	return v.AsString()
}

// Address is step.NAME, or module.A.step.NAME in module A.
func (s *Step) Address() string {
	if s.Module == "" {
		return "step." + s.Name
	}
	return modulePrefix(s.Module) + "step." + LocalName(s.Name, s.Module)
}

// LocalName is a name as its module wrote it: without the module's path.
func LocalName(name, module string) string {
	if module == "" {
		return name
	}
	return strings.TrimPrefix(name, module+".")
}

// ImplicitPlugin says whether the step uses its plugin without a plugin
// block (no alias): the configuration key is then the plugin's name.
func (s *Step) ImplicitPlugin() bool {
	return s.PluginKey == modulePrefix(s.Module)+s.Plugin
}

// PluginRef is the plugin configuration as the step names it: PLUGIN or
// PLUGIN.ALIAS, without its module's prefix.
func (s *Step) PluginRef() string {
	return strings.TrimPrefix(s.PluginKey, modulePrefix(s.Module))
}

// StepName is the step name (Step.Name) of a step or instance address:
// step.NAME["key"] -> NAME, module.A.module.B.step.NAME -> A.B.NAME. A
// bare NAME is taken as it is.
func StepName(addr string) string {
	if i := strings.IndexByte(addr, '['); i >= 0 {
		addr = addr[:i]
	}
	var path []string
	for strings.HasPrefix(addr, "module.") {
		rest := strings.TrimPrefix(addr, "module.")
		name, after, ok := strings.Cut(rest, ".")
		if !ok {
			return addr
		}
		path = append(path, name)
		addr = after
	}
	addr = strings.TrimPrefix(addr, "step.")
	return strings.Join(append(path, addr), ".")
}

// IsAddress says whether s looks like a step address (step.X or
// module.M.step.X) rather than a directory.
func IsAddress(s string) bool {
	return strings.HasPrefix(s, "step.") || strings.HasPrefix(s, "module.")
}

// Output is an `output "NAME"` block.
type Output struct {
	Name        string
	Value       hcl.Expression
	Description string
	Sensitive   bool
	DeclRange   hcl.Range
}
