package runbook

import (
	"fmt"
	"path/filepath"
	"sort"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclparse"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"
)

// Module is a `module "NAME" { source = "../DIR"  INPUT = ... }` block:
// another runbook directory used inside this one, in its own namespace. Its
// variables take the block's inputs (evaluated in the using runbook), its
// steps are module.NAME.step.STEP, its plugin blocks configure plugin
// instances of its own, its locals and outputs are its own; its runbook
// block is ignored and its handover items join the runbook's.
type Module struct {
	// Path is NAME, or OUTER.NAME for a module used by a module.
	Path string
	// Source is the source attribute as written; Dir the directory it names.
	Source, Dir string
	DeclRange   hcl.Range
}

// Address is module.NAME (module.OUTER.module.NAME).
func (m *Module) Address() string { return ModuleAddress(m.Path) }

// ModuleAddress is the address of the module at path ("A.B":
// module.A.module.B).
func ModuleAddress(path string) string { return strings.TrimSuffix(modulePrefix(path), ".") }

// maxModuleDepth bounds nesting (a cycle is reported before it).
const maxModuleDepth = 8

type pendingModule struct {
	name, source string
	inputs       hcl.Attributes
	srcRange     hcl.Range
	declRange    hcl.Range
}

func (l *loader) module(blk *hcl.Block) {
	name := blk.Labels[0]
	if !l.validName(name, "module", blk.LabelRanges[0]) || !l.unique("module", "module", name, blk.DefRange) {
		return
	}
	attrs, d := blk.Body.JustAttributes()
	l.diags = append(l.diags, d...)
	src, ok := attrs["source"]
	if !ok {
		l.errf(blk.DefRange.Ptr(), "Missing module source", "A module block names the runbook directory it uses: source = \"../ad-domain\" (a path relative to this runbook's directory).")
		return
	}
	source, ok := l.literalString(src)
	if !ok {
		return
	}
	if !strings.HasPrefix(source, "./") && !strings.HasPrefix(source, "../") {
		l.errf(src.Expr.Range().Ptr(), "Invalid module source", "source is a directory relative to this runbook's, starting with ./ or ../ (such as \"../ad-domain\"); %q is not.", source)
		return
	}
	delete(attrs, "source")
	l.pending = append(l.pending, &pendingModule{name: name, source: source, inputs: attrs, srcRange: src.Expr.Range(), declRange: blk.DefRange})
}

// loadModules reads the modules met in this runbook (or module) and merges
// them in.
func (l *loader) loadModules() {
	for _, pm := range l.pending {
		l.loadModule(pm)
	}
}

func (l *loader) loadModule(pm *pendingModule) {
	path := l.name(pm.name)
	dir := filepath.Join(l.dir, pm.source)
	abs, err := filepath.Abs(dir)
	if err != nil {
		abs = dir
	}
	for i, c := range l.chain {
		if c == abs {
			var via []string
			for _, d := range l.chain[i:] {
				via = append(via, filepath.Base(d))
			}
			l.errf(pm.srcRange.Ptr(), "Module cycle", "Module %q uses %s, which uses it again (%s -> %s): a runbook cannot include itself.", path, pm.source, strings.Join(via, " -> "), filepath.Base(abs))
			return
		}
	}
	if len(l.chain) > maxModuleDepth {
		l.errf(pm.srcRange.Ptr(), "Modules nested too deeply", "Modules may be nested %d deep at most.", maxModuleDepth)
		return
	}
	files, d := readDir(dir, pm.srcRange.Ptr())
	if d.HasErrors() {
		l.diags = append(l.diags, d...)
		return
	}
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	sort.Strings(names)
	// A parser of its own: the same directory used twice is two modules,
	// whose expressions are rewritten each into its own namespace.
	p := hclparse.NewParser()
	var bodies []*hclsyntax.Body
	for _, n := range names {
		l.hash.Write([]byte("module " + path + "/" + filepath.Base(n)))
		l.hash.Write([]byte{0})
		l.hash.Write(files[n])
		l.hash.Write([]byte{0})
		if strings.HasSuffix(n, SuffixJSON) {
			l.errf(pm.srcRange.Ptr(), "JSON runbook file in a module", "%s: a module's files are written in the native syntax (*%s).", n, SuffixHCL)
			continue
		}
		if d := CheckLimits(files[n], n); d.HasErrors() {
			l.diags = append(l.diags, d...)
			continue
		}
		f, d := p.ParseHCL(files[n], n)
		l.diags = append(l.diags, d...)
		if f == nil || d.HasErrors() {
			continue
		}
		if _, seen := l.rb.Files[n]; !seen {
			l.rb.Files[n] = f
		}
		bodies = append(bodies, f.Body.(*hclsyntax.Body))
	}
	if len(bodies) < len(names) {
		return
	}
	rw := &rewriter{prefix: path, module: pm.source, vars: map[string]bool{}, locals: map[string]bool{}}
	for _, b := range bodies {
		rw.declare(b)
	}
	for _, b := range bodies {
		rw.body(b)
	}
	l.diags = append(l.diags, rw.diags...)
	if rw.diags.HasErrors() {
		return
	}
	child := &loader{rb: l.rb, seen: map[string]map[string]hcl.Range{}, prefix: path, dir: dir, chain: append(append([]string(nil), l.chain...), abs), hash: l.hash}
	l.rb.Modules = append(l.rb.Modules, &Module{Path: path, Source: pm.source, Dir: dir, DeclRange: pm.declRange})
	for _, b := range bodies {
		child.body(b)
	}
	child.loadModules()
	l.diags = append(l.diags, child.diags...)
	l.inputs(pm, path, child.vars)
}

// inputs turns a module's variables into values of the runbook: each takes
// the module block's input of its name, or its default.
func (l *loader) inputs(pm *pendingModule, path string, vars []*Variable) {
	declared := map[string]bool{}
	var names []string
	for _, v := range vars {
		declared[v.Name] = true
		names = append(names, v.Name)
		in, given := pm.inputs[v.Name]
		var expr hcl.Expression
		rng := v.DeclRange
		if given {
			expr, rng = in.Expr, in.Range
		} else if v.Default == cty.NilVal {
			l.errf(pm.declRange.Ptr(), "Missing module input", "Module %q (%s) needs a value for its variable %q (declared at %s): add %s = ... to the module block.", path, pm.source, v.Name, v.DeclRange, v.Name)
			continue
		}
		l.rb.Locals = append(l.rb.Locals, &Local{Name: path + "." + v.Name, Expr: expr, Var: v, Module: path, DeclRange: rng})
	}
	sort.Strings(names)
	var extra []string
	for n := range pm.inputs {
		if !declared[n] {
			extra = append(extra, n)
		}
	}
	sort.Strings(extra)
	for _, n := range extra {
		hint := ""
		if s := Nearest(n, names); s != "" {
			hint = fmt.Sprintf(" Did you mean %q?", s)
		}
		l.errf(pm.inputs[n].NameRange.Ptr(), "Unsupported module input", "Module %q (%s) has no variable %q; its variables are %s.%s", path, pm.source, n, strings.Join(names, ", "), hint)
	}
}

// rewriter moves a module's expressions into its namespace: var.X becomes
// the module variable's value, local.X and step.X the module's own.
type rewriter struct {
	prefix, module string
	vars, locals   map[string]bool
	diags          hcl.Diagnostics
}

func (r *rewriter) declare(b *hclsyntax.Body) {
	for _, blk := range b.Blocks {
		switch blk.Type {
		case "variable":
			if len(blk.Labels) == 1 {
				r.vars[blk.Labels[0]] = true
			}
		case "locals":
			for n := range blk.Body.Attributes {
				r.locals[n] = true
			}
		}
	}
}

func (r *rewriter) body(b *hclsyntax.Body) {
	for _, blk := range b.Blocks {
		if blk.Type == "variable" {
			continue // a validation refers to its own variable, evaluated on its own
		}
		_ = hclsyntax.VisitAll(blk.Body, func(n hclsyntax.Node) hcl.Diagnostics {
			if st, ok := n.(*hclsyntax.ScopeTraversalExpr); ok {
				st.Traversal = r.traversal(st.Traversal)
			}
			return nil
		})
	}
}

func (r *rewriter) traversal(tr hcl.Traversal) hcl.Traversal {
	if len(tr) < 2 {
		return tr
	}
	var name string
	switch t := tr[1].(type) {
	case hcl.TraverseAttr:
		name = t.Name
	case hcl.TraverseIndex:
		if t.Key.Type() != cty.String || !t.Key.IsKnown() || t.Key.IsNull() {
			return tr
		}
		name = t.Key.AsString()
	default:
		return tr
	}
	root := tr.RootName()
	switch root {
	case "var":
		if !r.vars[name] {
			r.undeclared(tr, "input variable", "variable", name, r.vars)
			return tr
		}
		root = "local"
	case "local":
		if !r.locals[name] {
			r.undeclared(tr, "local value", "local value", name, r.locals)
			return tr
		}
	case "step", "module":
	default:
		return tr
	}
	out := make(hcl.Traversal, 0, len(tr))
	out = append(out, hcl.TraverseRoot{Name: root, SrcRange: tr[0].SourceRange()})
	out = append(out, hcl.TraverseAttr{Name: r.prefix + "." + name, SrcRange: tr[1].SourceRange()})
	return append(out, tr[2:]...)
}

func (r *rewriter) undeclared(tr hcl.Traversal, what, kind, name string, known map[string]bool) {
	var names []string
	for n := range known {
		names = append(names, n)
	}
	sort.Strings(names)
	hint := ""
	if s := Nearest(name, names); s != "" {
		hint = fmt.Sprintf(" Did you mean %q?", s)
	}
	r.diags = append(r.diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Reference to undeclared " + what,
		Detail:  fmt.Sprintf("No %s %q is declared in this module (%s, used as module %q).%s", kind, name, r.module, r.prefix, hint),
		Subject: tr.SourceRange().Ptr()})
}
