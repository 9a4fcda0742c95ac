package cli

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclwrite"
	"github.com/zclconf/go-cty/cty"

	"github.com/switchover/switchover/internal/fsutil"
	"github.com/switchover/switchover/internal/runbook"
	"github.com/switchover/switchover/runbooks"
)

func runInit(ctx context.Context, env *Env, args []string) int {
	var from string
	fs := newFlags(env, "init", "Makes a new runbook directory DIR from a curated runbook: its main.sw.hcl and README.md, and\nvariables.sw.vars listing every value to fill in, with where to find it.\nCurated: "+strings.Join(runbooks.Names(), ", ")+".", "DIR")
	fs.StringVar(&from, "from", "", "The curated runbook to start from ("+strings.Join(runbooks.Names(), ", ")+")")
	pos, code, ok := parse(fs, args, 1)
	if !ok {
		return code
	}
	fail := func(format string, a ...any) int {
		fmt.Fprintf(env.Stderr, "switchover init: "+format+"\n", a...)
		return ExitError
	}
	if len(pos) != 1 {
		return fail("name the new directory: switchover init DIR -from NAME")
	}
	if from == "" {
		return fail("give -from NAME, one of: %s", strings.Join(runbooks.Names(), ", "))
	}
	main, err := runbooks.File(from, "main.sw.hcl")
	if err != nil {
		return fail("there is no curated runbook %q: one of %s", from, strings.Join(runbooks.Names(), ", "))
	}
	readme, _ := runbooks.File(from, "README.md")
	dir := pos[0]
	if entries, err := os.ReadDir(dir); err == nil && len(entries) > 0 {
		return fail("%s exists and is not empty: nothing was written", dir)
	} else if err == nil {
		// An empty directory someone else made for you to fill.
		if err := runbook.CheckOwner(dir); err != nil {
			return fail("refusing %v", err)
		}
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fail("%v", err)
	}
	main, modules, err := vendorModules(main)
	if err != nil {
		return fail("the curated runbook %s: %v (a bug: please report it)", from, err)
	}
	if err := fsutil.WriteFileAtomic(filepath.Join(dir, "main.sw.hcl"), main, 0o644); err != nil {
		return fail("%v", err)
	}
	if err := fsutil.WriteFileAtomic(filepath.Join(dir, "README.md"), readme, 0o644); err != nil {
		return fail("%v", err)
	}
	for _, m := range modules {
		mdir := filepath.Join(dir, "modules", m)
		if err := os.MkdirAll(mdir, 0o755); err != nil {
			return fail("%v", err)
		}
		for _, file := range []string{"main.sw.hcl", "README.md"} {
			b, err := runbooks.File(m, file)
			if err == nil {
				err = fsutil.WriteFileAtomic(filepath.Join(mdir, file), b, 0o644)
			}
			if err != nil {
				return fail("%v", err)
			}
		}
	}
	rb, diags := runbook.Load(dir)
	if diags.HasErrors() {
		printDiags(env.Stderr, rb.Files, diags)
		return fail("the curated runbook %s does not load (a bug: please report it)", from)
	}
	vars := variablesFile(rb)
	if err := fsutil.WriteFileAtomic(filepath.Join(dir, "variables.sw.vars"), []byte(vars), 0o600); err != nil {
		return fail("%v", err)
	}
	if len(modules) > 0 {
		fmt.Fprintf(env.Stdout, "Copied the modules it uses into %s: %s.\n", filepath.Join(dir, "modules"), strings.Join(modules, ", "))
	}
	fmt.Fprintf(env.Stdout, "Made %s from %s: main.sw.hcl, README.md, variables.sw.vars (mode 0600).\nFill in variables.sw.vars (sensitive values go in SWITCHOVER_VAR_name instead), then:\n  switchover plan -var-file %s %s\n",
		dir, from, filepath.Join(dir, "variables.sw.vars"), dir)
	return ExitOK
}

// variablesFile lists a runbook's variables to fill in, with their
// descriptions: required ones as placeholders of their type, ones with a
// default commented out, sensitive ones as a note to use the environment.
func variablesFile(rb *runbook.Runbook) string {
	var b strings.Builder
	name := ""
	if rb.Meta != nil {
		name = rb.Meta.Name
	}
	fmt.Fprintf(&b, "# Values for the runbook %q. Fill in each; lines starting with # are comments.\n", name)
	vs := append([]*runbook.Variable(nil), rb.Variables...)
	sort.SliceStable(vs, func(i, j int) bool { return vs[i].DeclRange.Start.Line < vs[j].DeclRange.Start.Line })
	for _, v := range vs {
		b.WriteString("\n")
		if v.Description != "" {
			for _, l := range strings.Split(v.Description, "\n") {
				fmt.Fprintf(&b, "# %s\n", l)
			}
		}
		switch {
		case v.Sensitive:
			fmt.Fprintf(&b, "# Sensitive: set it in the environment, not here: export SWITCHOVER_VAR_%s=...\n# %s = %s\n", v.Name, v.Name, placeholder(v.Type))
		case v.Default != cty.NilVal:
			fmt.Fprintf(&b, "# Optional (it has a default).\n# %s = %s\n", v.Name, placeholder(v.Type))
		default:
			fmt.Fprintf(&b, "%s = %s\n", v.Name, placeholder(v.Type))
		}
	}
	return b.String()
}

// placeholder is an empty value of a type, to fill in.
func placeholder(t cty.Type) string {
	switch {
	case t == cty.Number:
		return "0"
	case t == cty.Bool:
		return "false"
	case t.IsListType(), t.IsSetType(), t.IsTupleType():
		return "[]"
	case t.IsMapType(), t.IsObjectType():
		return "{}"
	}
	return `""`
}

// vendorModules points a curated runbook's module blocks that use another
// curated runbook (source = "../NAME") at a copy in ./modules/NAME, so the
// new directory holds everything that runs; it returns the rewritten file
// and the curated runbooks to copy (those the modules use in turn included:
// their "../OTHER" resolves to modules/OTHER).
func vendorModules(src []byte) ([]byte, []string, error) {
	seen := map[string]bool{}
	var order []string
	var visit func(src []byte, rewrite bool) ([]byte, error)
	visit = func(src []byte, rewrite bool) ([]byte, error) {
		f, d := hclwrite.ParseConfig(src, "main.sw.hcl", hcl.InitialPos)
		if d.HasErrors() {
			return nil, d
		}
		for _, blk := range f.Body().Blocks() {
			if blk.Type() != "module" {
				continue
			}
			a := blk.Body().GetAttribute("source")
			if a == nil {
				continue
			}
			source := strings.Trim(strings.TrimSpace(string(a.Expr().BuildTokens(nil).Bytes())), `"`)
			name, ok := strings.CutPrefix(source, "../")
			if !ok || strings.Contains(name, "/") {
				continue
			}
			sub, err := runbooks.File(name, "main.sw.hcl")
			if err != nil {
				continue // not a curated runbook: left as it is
			}
			if rewrite {
				blk.Body().SetAttributeValue("source", cty.StringVal("./modules/"+name))
			}
			if !seen[name] {
				seen[name] = true
				order = append(order, name)
				if _, err := visit(sub, false); err != nil {
					return nil, err
				}
			}
		}
		return f.Bytes(), nil
	}
	out, err := visit(src, true)
	sort.Strings(order)
	return out, order, err
}
