package cli

import (
	"context"
	"fmt"
	"github.com/switchover/switchover/internal/operation"
	"strings"

	"github.com/hashicorp/hcl/v2/ext/typeexpr"

	"github.com/switchover/switchover/internal/pluginhost"
	"github.com/switchover/switchover/plugins/sdk"
)

func runPlugins(ctx context.Context, env *Env, args []string) int {
	var dir string
	var asJSON bool
	fs := newFlags(env, "plugins", "Lists the plugins switchover can run (built in, and found in the plugin directories),\ntheir actions, and each attribute's type and documentation. With NAME, only that plugin.", "[NAME]")
	addPluginDirFlag(fs, &dir)
	fs.BoolVar(&asJSON, "json", false, "Print as JSON")
	pos, code, ok := parse(fs, args, 1)
	if !ok {
		return code
	}
	host := pluginhost.New(pluginhost.Options{Dirs: operation.PluginDirs(dir)})
	defer host.Close()
	found := host.List()
	if len(pos) == 1 {
		f, err := host.Locate(pos[0])
		if err != nil {
			fmt.Fprintf(env.Stderr, "switchover plugins: %v\n", err)
			return ExitError
		}
		found = []pluginhost.Found{f}
	}
	var out []map[string]any
	status := ExitOK
	for _, f := range found {
		in, err := host.Start(f.Name, f.Name)
		var s *sdk.Schema
		if err == nil {
			s, err = in.Schema(ctx)
		}
		if err != nil {
			fmt.Fprintf(env.Stderr, "switchover plugins: %v\n", err)
			status = ExitError
			continue
		}
		if asJSON {
			out = append(out, schemaJSON(f, s))
			continue
		}
		printSchema(env, f, s)
	}
	if asJSON {
		writeJSON(env.Stdout, map[string]any{"format_version": 1, "plugins": out})
	}
	return status
}

func where(f pluginhost.Found) string {
	if f.Builtin {
		return "built in"
	}
	return f.Path
}

func printSchema(env *Env, f pluginhost.Found, s *sdk.Schema) {
	w := env.Stdout
	fmt.Fprintf(w, "%s %s (%s)\n", s.Name, s.Version, where(f))
	if s.Description != "" {
		fmt.Fprintf(w, "  %s\n", s.Description)
	}
	if len(s.Config) > 0 {
		fmt.Fprintf(w, "\n  plugin %q { ... } settings:\n", s.Name)
		printAttrs(w, s.Config)
	}
	for _, a := range s.Actions {
		fmt.Fprintf(w, "\n  step \"%s.%s\" \"NAME\"\n", s.Name, a.Name)
		if a.Description != "" {
			fmt.Fprintf(w, "    %s\n", a.Description)
		}
		printAttrs(w, a.Attributes)
		for _, o := range a.Outputs {
			fmt.Fprintf(w, "    output %-18s %-14s %s%s\n", o.Name, typeexpr.TypeString(o.Type), o.Description, sensitiveNote(o.Sensitive))
		}
	}
	fmt.Fprintln(w)
}

func printAttrs(w interface{ Write([]byte) (int, error) }, as []sdk.Attribute) {
	for _, a := range as {
		req := "optional"
		if a.Required {
			req = "required"
		}
		fmt.Fprintf(w, "    %-25s %-14s %-9s %s%s\n", a.Name, typeexpr.TypeString(a.Type), req, a.Description, sensitiveNote(a.Sensitive))
	}
}

func sensitiveNote(b bool) string {
	if b {
		return " (sensitive)"
	}
	return ""
}

func schemaJSON(f pluginhost.Found, s *sdk.Schema) map[string]any {
	attrs := func(as []sdk.Attribute) []map[string]any {
		out := []map[string]any{}
		for _, a := range as {
			out = append(out, map[string]any{"name": a.Name, "type": typeexpr.TypeString(a.Type), "required": a.Required, "sensitive": a.Sensitive, "description": a.Description})
		}
		return out
	}
	var actions []map[string]any
	for _, a := range s.Actions {
		outs := []map[string]any{}
		for _, o := range a.Outputs {
			outs = append(outs, map[string]any{"name": o.Name, "type": typeexpr.TypeString(o.Type), "sensitive": o.Sensitive, "description": o.Description})
		}
		actions = append(actions, map[string]any{"name": a.Name, "description": a.Description, "attributes": attrs(a.Attributes), "outputs": outs})
	}
	return map[string]any{"name": s.Name, "version": s.Version, "location": strings.TrimSpace(where(f)), "description": s.Description, "config": attrs(s.Config), "actions": actions}
}
