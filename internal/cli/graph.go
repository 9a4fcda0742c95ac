package cli

import (
	"context"
	"fmt"
	"github.com/switchover/switchover/internal/operation"
	"os"
	"sort"
	"strings"

	"github.com/switchover/switchover/internal/engine"
	"github.com/switchover/switchover/internal/pluginhost"
	"github.com/switchover/switchover/internal/runbook"
)

func runGraph(ctx context.Context, env *Env, args []string) int {
	var o validateOptions
	fs := newFlags(env, "graph", "Prints the steps of the runbook in DIR and their dependencies in DOT format\n(render with: switchover graph | dot -Tsvg > graph.svg).", "[DIR]")
	addVarFlags(fs, &o.Vars)
	addPluginDirFlag(fs, &o.PluginDir)
	pos, code, ok := parse(fs, args, 1)
	if !ok {
		return code
	}
	o.Dir = dirArg(pos)
	host := pluginhost.New(pluginhost.Options{Dirs: operation.PluginDirs(o.PluginDir), WorkDir: o.Dir})
	defer host.Close()
	g, diags := engine.Build(ctx, engine.Options{Dir: o.Dir, Vars: o.Vars, Plugins: pluginhost.Factory{H: host}, Environ: os.Environ(), Mode: engine.ModeValidate})
	if diags.HasErrors() {
		printDiags(env.Stderr, filesOf(g), diags)
		return ExitError
	}
	var b strings.Builder
	b.WriteString("digraph switchover {\n  rankdir = \"LR\";\n  node [shape = box];\n")
	// The steps of each module in a box of its own (the runbook's first).
	var modules []string
	byModule := map[string][]*engine.StepNode{}
	for _, n := range g.Order {
		m := n.Step.Module
		if _, seen := byModule[m]; !seen {
			modules = append(modules, m)
		}
		byModule[m] = append(byModule[m], n)
	}
	sort.SliceStable(modules, func(i, j int) bool { return modules[i] == "" && modules[j] != "" })
	for _, m := range modules {
		indent := "  "
		if m != "" {
			addr := runbook.ModuleAddress(m)
			fmt.Fprintf(&b, "  subgraph %q {\n    label = %q;\n", "cluster_"+addr, addr)
			indent = "    "
		}
		for _, n := range byModule[m] {
			s := n.Step
			label := fmt.Sprintf("%s\\n%s.%s", s.Address(), s.Plugin, s.Action)
			if s.ForEach != nil {
				label += fmt.Sprintf("\\n(%d instances)", len(n.Instances))
			}
			fmt.Fprintf(&b, "%s%q [label = %q];\n", indent, s.Address(), label)
		}
		if m != "" {
			b.WriteString("  }\n")
		}
	}
	for _, n := range g.Order {
		for _, d := range n.Deps {
			fmt.Fprintf(&b, "  %q -> %q;\n", g.Steps[d].Step.Address(), n.Step.Address())
		}
	}
	b.WriteString("}\n")
	fmt.Fprint(env.Stdout, strings.ReplaceAll(b.String(), `\\n`, `\n`))
	return ExitOK
}
