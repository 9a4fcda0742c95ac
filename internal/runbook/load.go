package runbook

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/ext/typeexpr"
	"github.com/hashicorp/hcl/v2/hclparse"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/convert"
)

// File name suffixes of runbook files.
const (
	SuffixHCL  = ".sw.hcl"
	SuffixJSON = ".sw.json"
)

// IsRunbookFile reports whether name is a runbook file name.
func IsRunbookFile(name string) bool {
	return strings.HasSuffix(name, SuffixHCL) || strings.HasSuffix(name, SuffixJSON)
}

// Load reads every runbook file in dir, and the modules it uses.
func Load(dir string) (*Runbook, hcl.Diagnostics) {
	files, diags := readDir(dir, nil)
	if diags.HasErrors() {
		return nil, diags
	}
	return LoadFiles(dir, files)
}

// readDir reads the runbook files of dir; from (when not nil) is the module
// block that uses dir, for diagnostics.
func readDir(dir string, from *hcl.Range) (map[string][]byte, hcl.Diagnostics) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, hcl.Diagnostics{{
			Severity: hcl.DiagError,
			Summary:  "Cannot read runbook directory",
			Detail:   fmt.Sprintf("%s: %v.", dir, unwrapPathError(err)),
			Subject:  from,
		}}
	}
	if err := checkDirSafe(dir); err != nil {
		return nil, hcl.Diagnostics{{Severity: hcl.DiagError, Summary: "Runbook directory others can change", Detail: err.Error(), Subject: from}}
	}
	files := map[string][]byte{}
	for _, e := range ents {
		if e.IsDir() || !IsRunbookFile(e.Name()) {
			continue
		}
		p := filepath.Join(dir, e.Name())
		if err := checkFileSafe(dir, p, e); err != nil {
			return nil, hcl.Diagnostics{{Severity: hcl.DiagError, Summary: "Runbook file others can change", Detail: err.Error(), Subject: from}}
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return nil, hcl.Diagnostics{{Severity: hcl.DiagError, Summary: "Cannot read runbook file", Detail: fmt.Sprintf("%s: %v.", p, unwrapPathError(err)), Subject: from}}
		}
		files[p] = b
	}
	if len(files) == 0 {
		return nil, hcl.Diagnostics{{
			Severity: hcl.DiagError,
			Summary:  "No runbook files",
			Detail:   fmt.Sprintf("The directory %s holds no *%s or *%s file.", dir, SuffixHCL, SuffixJSON),
			Subject:  from,
		}}
	}
	return files, nil
}

func unwrapPathError(err error) error {
	if pe, ok := err.(*os.PathError); ok {
		return pe.Err
	}
	return err
}

// LoadFiles parses the given files (name -> content) as one runbook in dir.
func LoadFiles(dir string, files map[string][]byte) (*Runbook, hcl.Diagnostics) {
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	sort.Strings(names)

	h := sha256.New()
	p := hclparse.NewParser()
	var diags hcl.Diagnostics
	var bodies []hcl.Body
	for _, n := range names {
		h.Write([]byte(filepath.Base(n)))
		h.Write([]byte{0})
		h.Write(files[n])
		h.Write([]byte{0})
		var f *hcl.File
		var d hcl.Diagnostics
		if d := CheckLimits(files[n], n); d.HasErrors() {
			diags = append(diags, d...)
			continue
		}
		if strings.HasSuffix(n, SuffixJSON) {
			f, d = p.ParseJSON(files[n], n)
		} else {
			f, d = p.ParseHCL(files[n], n)
		}
		diags = append(diags, d...)
		if f != nil && f.Body != nil {
			bodies = append(bodies, f.Body)
		}
	}
	rb := &Runbook{Dir: dir, Files: p.Files()}
	if diags.HasErrors() {
		rb.Hash = hex.EncodeToString(h.Sum(nil))
		return rb, diags
	}
	l := &loader{rb: rb, seen: map[string]map[string]hcl.Range{}, dir: dir, hash: h}
	if abs, err := filepath.Abs(dir); err == nil {
		l.chain = []string{abs}
	}
	for _, b := range bodies {
		l.body(b)
	}
	l.loadModules()
	rb.Hash = hex.EncodeToString(h.Sum(nil))
	if rb.Meta == nil {
		l.diags = append(l.diags, &hcl.Diagnostic{
			Severity: hcl.DiagError,
			Summary:  "Missing runbook block",
			Detail:   `Every runbook needs one block runbook "NAME" { old_provider = "...", new_provider = "..." } that says whose switch it is.`,
			Subject:  firstFileRange(rb, names),
		})
	}
	return rb, append(diags, l.diags...)
}

func firstFileRange(rb *Runbook, names []string) *hcl.Range {
	if len(names) == 0 {
		return nil
	}
	return &hcl.Range{Filename: names[0], Start: hcl.InitialPos, End: hcl.InitialPos}
}

var fileSchema = &hcl.BodySchema{Blocks: []hcl.BlockHeaderSchema{
	{Type: "runbook", LabelNames: []string{"name"}},
	{Type: "variable", LabelNames: []string{"name"}},
	{Type: "locals"},
	{Type: "plugin", LabelNames: []string{"name"}},
	{Type: "step", LabelNames: []string{"type", "name"}},
	{Type: "output", LabelNames: []string{"name"}},
	{Type: "handover"},
	{Type: "module", LabelNames: []string{"name"}},
	{Type: "backend", LabelNames: []string{"type"}},
}}

type loader struct {
	rb    *Runbook
	diags hcl.Diagnostics
	seen  map[string]map[string]hcl.Range

	// In a module: its path ("A.B"), its variables (which become locals of
	// the runbook, see Local.Var), the absolute directories from the
	// runbook down to it (for cycles).
	prefix string
	vars   []*Variable
	dir    string
	chain  []string
	// pending are the module blocks met, loaded once the bodies are read.
	pending []*pendingModule
	hash    hash.Hash
}

// name is a declared name as the runbook knows it: prefixed in a module.
func (l *loader) name(n string) string {
	if l.prefix == "" {
		return n
	}
	return l.prefix + "." + n
}

func (l *loader) errf(rng *hcl.Range, summary, format string, a ...any) {
	l.diags = append(l.diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: summary, Detail: fmt.Sprintf(format, a...), Subject: rng})
}

// unique records name in its kind and reports a duplicate.
func (l *loader) unique(kind, what, name string, rng hcl.Range) bool {
	m := l.seen[kind]
	if m == nil {
		m = map[string]hcl.Range{}
		l.seen[kind] = m
	}
	if prev, dup := m[name]; dup {
		l.errf(&rng, "Duplicate "+what, "%s %q was already declared at %s. Each name can be declared once per runbook.", strings.ToUpper(what[:1])+what[1:], name, prev)
		return false
	}
	m[name] = rng
	return true
}

func (l *loader) validName(name, what string, rng hcl.Range) bool {
	if !hclsyntax.ValidIdentifier(name) {
		l.errf(&rng, "Invalid "+what+" name", "%q is not a valid name: use letters, digits, underscores and dashes, starting with a letter or underscore.", name)
		return false
	}
	return true
}

func (l *loader) body(b hcl.Body) {
	content, d := b.Content(fileSchema)
	l.diags = append(l.diags, d...)
	for _, blk := range content.Blocks {
		switch blk.Type {
		case "runbook":
			l.runbookBlock(blk)
		case "variable":
			l.variable(blk)
		case "locals":
			l.locals(blk)
		case "plugin":
			l.plugin(blk)
		case "step":
			l.step(blk)
		case "output":
			l.output(blk)
		case "handover":
			l.handover(blk)
		case "module":
			l.module(blk)
		case "backend":
			l.backend(blk)
		}
	}
}

var backendSchema = &hcl.BodySchema{Attributes: []hcl.AttributeSchema{{Name: "workspace", Required: true}, {Name: "connection_env"}}}

// backend is the backend "pg" block (constants only: it is read before
// variables have values, by every command that opens the state).
func (l *loader) backend(blk *hcl.Block) {
	if l.prefix != "" {
		l.errf(&blk.DefRange, "Backend in a module", "Only the runbook itself says where its state lives; remove the backend block from the module.")
		return
	}
	if l.rb.Backend != nil {
		l.errf(&blk.DefRange, "Duplicate backend block", "The backend was already declared at %s.", l.rb.Backend.DeclRange)
		return
	}
	if t := blk.Labels[0]; t != "pg" {
		l.errf(&blk.LabelRanges[0], "Unknown backend", "backend %q: the backends are \"pg\" (PostgreSQL); without a backend block the state is in files in .switchover/.", t)
		return
	}
	content, d := blk.Body.Content(backendSchema)
	l.diags = append(l.diags, d...)
	b := &Backend{Type: blk.Labels[0], ConnectionEnv: "SWITCHOVER_PG_URL", DeclRange: blk.DefRange}
	if a, ok := content.Attributes["workspace"]; ok {
		b.Workspace, _ = l.literalString(a)
	}
	if a, ok := content.Attributes["connection_env"]; ok {
		b.ConnectionEnv, _ = l.literalString(a)
	}
	l.rb.Backend = b
}

// literalString evaluates a constant string attribute.
func (l *loader) literalString(attr *hcl.Attribute) (string, bool) {
	v, d := attr.Expr.Value(nil)
	if d.HasErrors() {
		l.diags = append(l.diags, constantOnly(attr, d)...)
		return "", false
	}
	v, err := convert.Convert(v, cty.String)
	if err != nil || v.IsNull() {
		l.errf(attr.Expr.Range().Ptr(), "Incorrect attribute value type", "%s must be a string.", attr.Name)
		return "", false
	}
	return v.AsString(), true
}

func (l *loader) literalBool(attr *hcl.Attribute) (bool, bool) {
	v, d := attr.Expr.Value(nil)
	if d.HasErrors() {
		l.diags = append(l.diags, constantOnly(attr, d)...)
		return false, false
	}
	v, err := convert.Convert(v, cty.Bool)
	if err != nil || v.IsNull() {
		l.errf(attr.Expr.Range().Ptr(), "Incorrect attribute value type", "%s must be true or false.", attr.Name)
		return false, false
	}
	return v.True(), true
}

// constantOnly rewrites "Variables not allowed" style errors to say that the
// attribute takes a constant.
func constantOnly(attr *hcl.Attribute, d hcl.Diagnostics) hcl.Diagnostics {
	for _, x := range d {
		if x.Summary == "Variables not allowed" || x.Summary == "Function calls not allowed" {
			x.Detail = fmt.Sprintf("%s takes a constant value here; it cannot refer to variables or call functions.", attr.Name)
		}
	}
	return d
}

var handoverSchema = &hcl.BodySchema{Blocks: []hcl.BlockHeaderSchema{{Type: "item", LabelNames: []string{"title"}}}}

var handoverItemSchema = &hcl.BodySchema{Attributes: []hcl.AttributeSchema{{Name: "owner"}, {Name: "due"}, {Name: "detail"}}}

// handover reads `handover { item "TITLE" { owner, due, detail } }`: what
// the new provider must do in its first days, for the checklist.
func (l *loader) handover(blk *hcl.Block) {
	c, d := blk.Body.Content(handoverSchema)
	l.diags = append(l.diags, d...)
	for _, ib := range c.Blocks {
		it := &HandoverItem{Title: ib.Labels[0], DeclRange: ib.DefRange}
		if strings.TrimSpace(it.Title) == "" {
			l.errf(ib.LabelRanges[0].Ptr(), "Empty handover item", "A handover item's title says what is to be done.")
		}
		ic, d := ib.Body.Content(handoverItemSchema)
		l.diags = append(l.diags, d...)
		for name, dst := range map[string]*string{"owner": &it.Owner, "due": &it.Due, "detail": &it.Detail} {
			if a, ok := ic.Attributes[name]; ok {
				*dst, _ = l.literalString(a)
			}
		}
		l.rb.Handover = append(l.rb.Handover, it)
	}
}

var runbookSchema = &hcl.BodySchema{Attributes: []hcl.AttributeSchema{
	{Name: "client"}, {Name: "old_provider"}, {Name: "new_provider"}, {Name: "description"}, {Name: "secret_recipients"},
}}

func (l *loader) runbookBlock(blk *hcl.Block) {
	if l.prefix != "" {
		return // a module's own runbook block: the runbook that uses it says whose switch it is
	}
	if l.rb.Meta != nil {
		l.errf(blk.DefRange.Ptr(), "Duplicate runbook block", "A runbook has one runbook block; another was declared at %s.", l.rb.Meta.DeclRange)
		return
	}
	m := &Meta{Name: blk.Labels[0], DeclRange: blk.DefRange}
	l.rb.Meta = m
	c, d := blk.Body.Content(runbookSchema)
	l.diags = append(l.diags, d...)
	for name, dst := range map[string]*string{"client": &m.Client, "old_provider": &m.OldProvider, "new_provider": &m.NewProvider, "description": &m.Description} {
		if a, ok := c.Attributes[name]; ok {
			*dst, _ = l.literalString(a)
		}
	}
	if a, ok := c.Attributes["secret_recipients"]; ok {
		m.RecipientsRange = a.Expr.Range()
		v, d := a.Expr.Value(nil)
		if d.HasErrors() {
			l.diags = append(l.diags, constantOnly(a, d)...)
			return
		}
		v, err := convert.Convert(v, cty.List(cty.String))
		if err != nil || v.IsNull() {
			l.errf(a.Expr.Range().Ptr(), "Incorrect attribute value type", "secret_recipients is a list of age (age1...) or SSH (ssh-ed25519 ...) public keys.")
			return
		}
		for it := v.ElementIterator(); it.Next(); {
			_, e := it.Element()
			if !e.IsNull() {
				m.SecretRecipients = append(m.SecretRecipients, e.AsString())
			}
		}
	}
}

var variableSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{{Name: "type"}, {Name: "default"}, {Name: "description"}, {Name: "sensitive"}},
	Blocks:     []hcl.BlockHeaderSchema{{Type: "validation"}},
}

var validationSchema = &hcl.BodySchema{Attributes: []hcl.AttributeSchema{
	{Name: "condition", Required: true}, {Name: "error_message", Required: true},
}}

func (l *loader) variable(blk *hcl.Block) {
	name := blk.Labels[0]
	if !l.validName(name, "variable", blk.LabelRanges[0]) || !l.unique("variable", "variable", name, blk.DefRange) {
		return
	}
	v := &Variable{Name: name, Type: cty.DynamicPseudoType, DeclRange: blk.DefRange}
	c, d := blk.Body.Content(variableSchema)
	l.diags = append(l.diags, d...)
	if a, ok := c.Attributes["type"]; ok {
		ty, defs, d := typeexpr.TypeConstraintWithDefaults(a.Expr)
		l.diags = append(l.diags, d...)
		if !d.HasErrors() {
			v.Type, v.Defaults = ty, defs
		}
	}
	if a, ok := c.Attributes["description"]; ok {
		v.Description, _ = l.literalString(a)
	}
	if a, ok := c.Attributes["sensitive"]; ok {
		v.Sensitive, _ = l.literalBool(a)
	}
	if a, ok := c.Attributes["default"]; ok {
		val, d := a.Expr.Value(nil)
		if d.HasErrors() {
			l.diags = append(l.diags, constantOnly(a, d)...)
		} else {
			if v.Defaults != nil {
				val = v.Defaults.Apply(val)
			}
			conv, err := convert.Convert(val, v.Type)
			if err != nil {
				l.errf(a.Expr.Range().Ptr(), "Invalid default value for variable", "The default of variable %q does not fit its type %s: %s.", name, typeexpr.TypeString(v.Type), err)
			} else {
				v.Default = conv
			}
		}
	}
	for _, vb := range c.Blocks {
		vc, d := vb.Body.Content(validationSchema)
		l.diags = append(l.diags, d...)
		if d.HasErrors() {
			continue
		}
		val := &Validation{Condition: vc.Attributes["condition"].Expr, ErrorMessage: vc.Attributes["error_message"].Expr, DeclRange: vb.DefRange}
		for _, tr := range val.Condition.Variables() {
			if tr.RootName() == "var" {
				if ref, ok := tr.SimpleSplit().Rel[0].(hcl.TraverseAttr); ok && ref.Name == name {
					continue
				}
			}
			l.errf(tr.SourceRange().Ptr(), "Invalid reference in variable validation", "The condition of variable %q can refer only to var.%s itself.", name, name)
		}
		v.Validations = append(v.Validations, val)
	}
	if l.prefix != "" {
		l.vars = append(l.vars, v)
		return
	}
	l.rb.Variables = append(l.rb.Variables, v)
}

func (l *loader) locals(blk *hcl.Block) {
	attrs, d := blk.Body.JustAttributes()
	l.diags = append(l.diags, d...)
	names := make([]string, 0, len(attrs))
	for n := range attrs {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		a := attrs[n]
		if !l.unique("local", "local value", n, a.Range) {
			continue
		}
		l.rb.Locals = append(l.rb.Locals, &Local{Name: l.name(n), Expr: a.Expr, Module: l.prefix, DeclRange: a.Range})
	}
}

var pluginSchema = &hcl.BodySchema{Attributes: []hcl.AttributeSchema{{Name: "alias"}}}

func (l *loader) plugin(blk *hcl.Block) {
	name := blk.Labels[0]
	if !l.validName(name, "plugin", blk.LabelRanges[0]) {
		return
	}
	c, rest, d := blk.Body.PartialContent(pluginSchema)
	l.diags = append(l.diags, d...)
	p := &PluginBlock{Name: name, Module: l.prefix, Config: rest, DeclRange: blk.DefRange, NameRange: blk.LabelRanges[0]}
	if a, ok := c.Attributes["alias"]; ok {
		alias, ok := l.literalString(a)
		if !ok {
			return
		}
		if !l.validName(alias, "plugin alias", a.Expr.Range()) {
			return
		}
		p.Alias = alias
	}
	if !l.unique("plugin", "plugin configuration", p.Key(), blk.DefRange) {
		return
	}
	l.rb.Plugins = append(l.rb.Plugins, p)
}

var stepMetaSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{
		{Name: "depends_on"}, {Name: "for_each"}, {Name: "when"}, {Name: "timeout"}, {Name: "on_failure"}, {Name: "plugin"},
	},
	Blocks: []hcl.BlockHeaderSchema{{Type: "retry"}},
}

// MetaArguments are the step attributes switchover itself decodes.
var MetaArguments = []string{"depends_on", "for_each", "when", "timeout", "on_failure", "plugin", "retry"}

var retrySchema = &hcl.BodySchema{Attributes: []hcl.AttributeSchema{{Name: "attempts", Required: true}, {Name: "backoff"}}}

func (l *loader) step(blk *hcl.Block) {
	typ, name := blk.Labels[0], blk.Labels[1]
	plug, action, ok := strings.Cut(typ, ".")
	if !ok || !hclsyntax.ValidIdentifier(plug) || !hclsyntax.ValidIdentifier(action) {
		l.errf(blk.LabelRanges[0].Ptr(), "Invalid step type", "A step's first label is PLUGIN.ACTION, such as \"core.manual\" or \"ssh.authorized_keys\"; %q is not.", typ)
		return
	}
	if !l.validName(name, "step", blk.LabelRanges[1]) || !l.unique("step", "step", name, blk.DefRange) {
		return
	}
	s := &Step{Name: l.name(name), Module: l.prefix, Plugin: plug, Action: action, PluginKey: modulePrefix(l.prefix) + plug, OnFailure: Halt,
		DeclRange: blk.DefRange, TypeRange: blk.LabelRanges[0], NameRange: blk.LabelRanges[1]}
	c, rest, d := blk.Body.PartialContent(stepMetaSchema)
	l.diags = append(l.diags, d...)
	s.Config = rest
	if a, ok := c.Attributes["depends_on"]; ok {
		exprs, d := hcl.ExprList(a.Expr)
		l.diags = append(l.diags, d...)
		for _, e := range exprs {
			tr, d := hcl.AbsTraversalForExpr(e)
			if !d.HasErrors() && tr.RootName() == "module" && len(tr) == 2 {
				s.DependsOn = append(s.DependsOn, tr) // every step of the module
				continue
			}
			if d.HasErrors() || tr.RootName() != "step" || len(tr) < 2 {
				l.errf(e.Range().Ptr(), "Invalid depends_on reference", "depends_on lists steps and modules, such as [step.drop_keys, module.ad]; this is not a reference to a step or a module.")
				continue
			}
			s.DependsOn = append(s.DependsOn, tr)
		}
	}
	if a, ok := c.Attributes["for_each"]; ok {
		s.ForEach = a.Expr
	}
	if a, ok := c.Attributes["when"]; ok {
		s.When = a.Expr
	}
	if a, ok := c.Attributes["timeout"]; ok {
		if str, ok := l.literalString(a); ok {
			dur, err := time.ParseDuration(str)
			if err != nil || dur <= 0 {
				l.errf(a.Expr.Range().Ptr(), "Invalid timeout", "timeout is a positive duration such as \"30s\", \"5m\" or \"1h30m\"; %q is not.", str)
			}
			s.Timeout = dur
		}
	}
	if a, ok := c.Attributes["on_failure"]; ok {
		word := hcl.ExprAsKeyword(a.Expr)
		if word == "" {
			word, _ = l.literalString(a)
		}
		switch OnFailure(word) {
		case Halt, Continue:
			s.OnFailure = OnFailure(word)
		default:
			l.errf(a.Expr.Range().Ptr(), "Invalid on_failure", "on_failure is halt (schedule nothing new when this step fails) or continue (go on with steps that do not depend on it); %q is neither.", word)
		}
	}
	if a, ok := c.Attributes["plugin"]; ok {
		tr, d := hcl.AbsTraversalForExpr(a.Expr)
		rng := a.Expr.Range()
		s.PluginRange = &rng
		if d.HasErrors() || len(tr) != 2 {
			l.errf(&rng, "Invalid plugin reference", "plugin names a plugin configuration as PLUGIN.ALIAS, such as ssh.branch_office.")
		} else if tr.RootName() != plug {
			l.errf(&rng, "Plugin reference of another plugin", "Step %q runs %s.%s, so its plugin must be a configuration of plugin %q, not of %q.", name, plug, action, plug, tr.RootName())
		} else {
			s.PluginKey = modulePrefix(l.prefix) + plug + "." + tr[1].(hcl.TraverseAttr).Name
		}
	}
	for _, rb := range c.Blocks {
		if s.Retry != nil {
			l.errf(rb.DefRange.Ptr(), "Duplicate retry block", "A step has at most one retry block.")
			continue
		}
		rc, d := rb.Body.Content(retrySchema)
		l.diags = append(l.diags, d...)
		r := &Retry{Attempts: 1}
		if a, ok := rc.Attributes["attempts"]; ok {
			v, d := a.Expr.Value(nil)
			n, err := convert.Convert(v, cty.Number)
			if d.HasErrors() || err != nil || n.IsNull() || !n.AsBigFloat().IsInt() || n.AsBigFloat().Sign() <= 0 {
				l.errf(a.Expr.Range().Ptr(), "Invalid retry attempts", "attempts is a whole number of at least 1 (the total number of tries).")
			} else {
				i, _ := n.AsBigFloat().Int64()
				r.Attempts = int(i)
			}
		}
		if a, ok := rc.Attributes["backoff"]; ok {
			if str, ok := l.literalString(a); ok {
				dur, err := time.ParseDuration(str)
				if err != nil || dur < 0 {
					l.errf(a.Expr.Range().Ptr(), "Invalid retry backoff", "backoff is a duration such as \"5s\"; %q is not.", str)
				}
				r.Backoff = dur
			}
		}
		s.Retry = r
	}
	l.rb.Steps = append(l.rb.Steps, s)
}

var outputSchema = &hcl.BodySchema{Attributes: []hcl.AttributeSchema{
	{Name: "value", Required: true}, {Name: "description"}, {Name: "sensitive"},
}}

func (l *loader) output(blk *hcl.Block) {
	name := blk.Labels[0]
	if !l.validName(name, "output", blk.LabelRanges[0]) || !l.unique("output", "output", name, blk.DefRange) {
		return
	}
	c, d := blk.Body.Content(outputSchema)
	l.diags = append(l.diags, d...)
	if d.HasErrors() {
		return
	}
	o := &Output{Name: l.name(name), Value: c.Attributes["value"].Expr, DeclRange: blk.DefRange}
	if a, ok := c.Attributes["description"]; ok {
		o.Description, _ = l.literalString(a)
	}
	if a, ok := c.Attributes["sensitive"]; ok {
		o.Sensitive, _ = l.literalBool(a)
	}
	l.rb.Outputs = append(l.rb.Outputs, o)
}

// ReadBackend reads only the backend block of the runbook in dir (nil
// when it has none): the commands that open the state read it before, or
// without, the whole runbook.
func ReadBackend(dir string) (*Backend, hcl.Diagnostics) {
	files, diags := readDir(dir, nil)
	if diags.HasErrors() {
		return nil, diags
	}
	l := &loader{rb: &Runbook{Dir: dir}}
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	sort.Strings(names)
	p := hclparse.NewParser()
	for _, n := range names {
		var f *hcl.File
		var d hcl.Diagnostics
		if strings.HasSuffix(n, SuffixJSON) {
			f, d = p.ParseJSON(files[n], n)
		} else {
			f, d = p.ParseHCL(files[n], n)
		}
		if d.HasErrors() {
			return nil, d
		}
		c, _, d := f.Body.PartialContent(&hcl.BodySchema{Blocks: []hcl.BlockHeaderSchema{{Type: "backend", LabelNames: []string{"type"}}}})
		l.diags = append(l.diags, d...)
		for _, blk := range c.Blocks {
			l.backend(blk)
		}
	}
	return l.rb.Backend, l.diags
}
