package cli

import (
	"context"
	"fmt"
	"github.com/switchover/switchover/internal/operation"
	"os"

	"github.com/hashicorp/hcl/v2"

	"github.com/switchover/switchover/internal/engine"
	"github.com/switchover/switchover/internal/pluginhost"
)

type validateOptions struct {
	Dir       string
	Vars      []engine.VarInput
	PluginDir string
	JSON      bool
}

func runValidate(ctx context.Context, env *Env, args []string) int {
	var o validateOptions
	fs := newFlags(env, "validate", "Checks the runbook in DIR (default: the current directory) without touching any remote system:\nsyntax, blocks and attributes against each plugin's schema, references, dependency cycles,\nvariable types and validations. Variables without a value are treated as unknown.", "[DIR]")
	addVarFlags(fs, &o.Vars)
	addPluginDirFlag(fs, &o.PluginDir)
	fs.BoolVar(&o.JSON, "json", false, "Print the result as JSON")
	pos, code, ok := parse(fs, args, 1)
	if !ok {
		return code
	}
	o.Dir = dirArg(pos)
	return validate(ctx, env, o)
}

func validate(ctx context.Context, env *Env, o validateOptions) int {
	host := pluginhost.New(pluginhost.Options{Dirs: operation.PluginDirs(o.PluginDir), WorkDir: o.Dir})
	defer host.Close()
	g, diags := engine.Build(ctx, engine.Options{Dir: o.Dir, Vars: o.Vars, Plugins: pluginhost.Factory{H: host}, Environ: os.Environ(), Mode: engine.ModeValidate})
	files := filesOf(g)
	errs, warns := counts(diags)
	if o.JSON {
		writeJSON(env.Stdout, map[string]any{
			"format_version": 1, "valid": errs == 0, "error_count": errs, "warning_count": warns,
			"diagnostics": toJSONDiags(files, diags),
		})
	} else {
		printDiags(env.Stderr, files, diags)
		if errs == 0 {
			fmt.Fprintf(env.Stdout, "The runbook is valid: %d steps, %d plugin configurations.\n", len(g.Steps), len(g.Plugins))
		}
	}
	if errs > 0 {
		return ExitError
	}
	return ExitOK
}

func filesOf(g *engine.Graph) map[string]*hcl.File {
	if g == nil || g.Runbook == nil {
		return nil
	}
	return g.Runbook.Files
}
