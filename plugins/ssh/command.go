package ssh

import (
	"context"
	"fmt"
	"math/big"
	"strings"

	"github.com/zclconf/go-cty/cty"

	"github.com/switchover/switchover/plugins/sdk"
)

const ranMark = "ran"

func (p *plugin) command() *sdk.Action {
	// satisfied reports whether a guard says the work is done, and whether
	// there is a guard at all.
	satisfied := func(ctx context.Context, c *conn, a sdk.Values) (bool, bool, error) {
		if path := a.String("creates"); path != "" {
			r, err := c.run(ctx, "test -e "+shellQuote(path), nil)
			if err != nil {
				return false, true, err
			}
			if r.exit == 0 {
				return true, true, nil
			}
			if a.String("unless") == "" {
				return false, true, nil
			}
		}
		if u := a.String("unless"); u != "" {
			r, err := c.runScript(ctx, u, nil)
			if err != nil {
				return false, true, err
			}
			return r.exit == 0, true, nil
		}
		return false, false, nil
	}
	expected := func(a sdk.Values, code int) bool {
		v := a.Get("expected_exit_codes")
		if v.IsNull() {
			return code == 0
		}
		for it := v.ElementIterator(); it.Next(); {
			_, e := it.Element()
			if e.AsBigFloat().Cmp(big.NewFloat(float64(code))) == 0 {
				return true
			}
		}
		return false
	}
	plan := func(ctx context.Context, c *conn, a sdk.Values, cp []byte) *sdk.PlanResponse {
		done, guarded, err := satisfied(ctx, c, a)
		if err != nil {
			return sdk.PlanError(err)
		}
		switch {
		case done:
			return sdk.NoChangef("the guard says it is done on %s", c.t)
		case !guarded && string(cp) == ranMark:
			return sdk.NoChangef("ran once on %s (no unless or creates guard)", c.t)
		}
		what := firstLine(a.String("command"))
		if !a.IsKnown("command") {
			what = "(known after apply)"
		}
		r := sdk.Changef("run on %s: %s", c.t, what)
		if guarded && string(cp) == ranMark {
			r.Summary = fmt.Sprintf("the command ran on %s but its guard (unless/creates) still says it is not done", c.t)
		}
		return r
	}
	apply := func(ctx context.Context, c *conn, a sdk.Values, ev sdk.Events, _ *sdk.ApplyRequest) *sdk.ApplyResponse {
		var stdin []byte
		if a.Has("stdin") {
			stdin = []byte(a.String("stdin"))
		}
		r, err := c.runScript(ctx, a.String("command"), stdin)
		if err != nil {
			return sdk.ApplyError(err)
		}
		if !expected(a, r.exit) {
			msg := strings.TrimSpace(string(r.stderr))
			if msg == "" {
				msg = strings.TrimSpace(string(r.stdout))
			}
			return sdk.ApplyError(fmt.Errorf("%s: the command exited with %d: %s", c.t, r.exit, firstLine(msg)))
		}
		if err := ev.Checkpoint(ctx, []byte(ranMark)); err != nil {
			return sdk.ApplyError(err)
		}
		return &sdk.ApplyResponse{
			Summary: fmt.Sprintf("ran on %s (exit %d)", c.t, r.exit),
			Outputs: map[string]cty.Value{"stdout": cty.StringVal(string(r.stdout)), "exit_code": cty.NumberIntVal(int64(r.exit))},
		}
	}
	return p.action("command",
		"Runs a shell command as root (sent over the connection's input, never on a command line, so it does not show in ps or sudo's log), with an idempotency guard: unless (a command whose success means it is done) or creates (a path whose existence means it is done). Without a guard it runs once.",
		[]sdk.Attribute{
			{Name: "command", Type: cty.String, Required: true, Description: "The command (sh)."},
			{Name: "unless", Type: cty.String, Description: "Skip when this command succeeds; it must succeed after the command ran."},
			{Name: "creates", Type: cty.String, Description: "Skip when this path exists; it must exist after the command ran."},
			{Name: "expected_exit_codes", Type: cty.List(cty.Number), Description: "Exit codes that count as success (default [0])."},
			{Name: "stdin", Type: cty.String, Sensitive: true, Description: "Input for the command (sensitive: a secret can go here instead of into the command)."},
		},
		[]sdk.Output{
			{Name: "stdout", Type: cty.String, Description: "What the command printed."},
			{Name: "exit_code", Type: cty.Number, Description: "Its exit code."},
		}, plan, apply)
}

func (p *plugin) service() *sdk.Action {
	facts := func(ctx context.Context, c *conn, a sdk.Values) (active, enabled, installed bool, err error) {
		name, pkg := a.String("name"), a.String("remove_package")
		script := `command -v systemctl >/dev/null || { echo "no systemctl on this host" >&2; exit 9; }
systemctl is-active --quiet "$1" && echo active
systemctl is-enabled --quiet "$1" 2>/dev/null && echo enabled
if [ -n "$2" ]; then dpkg-query -W -f='${Status}\n' "$2" 2>/dev/null | grep -q 'install ok installed' && echo installed; fi
exit 0`
		out, err := c.runOK(ctx, "checking the service "+name, "set -- "+shellQuote(name)+" "+shellQuote(pkg)+"\n"+script, nil)
		if err != nil {
			return false, false, false, err
		}
		return strings.Contains(out, "active\n"), strings.Contains(out, "enabled\n"), pkg != "" && strings.Contains(out, "installed\n"), nil
	}
	plan := func(ctx context.Context, c *conn, a sdk.Values, _ []byte) *sdk.PlanResponse {
		active, enabled, installed, err := facts(ctx, c, a)
		if err != nil {
			return sdk.PlanError(err)
		}
		var todo []string
		if active {
			todo = append(todo, "stop")
		}
		if enabled {
			todo = append(todo, "disable")
		}
		if installed {
			todo = append(todo, "remove the package "+a.String("remove_package"))
		}
		if len(todo) == 0 {
			return sdk.NoChangef("%s on %s is stopped and disabled", a.String("name"), c.t)
		}
		return sdk.Changef("%s %s on %s", strings.Join(todo, ", "), a.String("name"), c.t)
	}
	apply := func(ctx context.Context, c *conn, a sdk.Values, ev sdk.Events, _ *sdk.ApplyRequest) *sdk.ApplyResponse {
		name, pkg := a.String("name"), a.String("remove_package")
		if _, err := c.runOK(ctx, "stopping "+name, "systemctl disable --now -- "+shellQuote(name), nil); err != nil {
			return sdk.ApplyError(err)
		}
		if pkg != "" {
			script := "if dpkg-query -W -f='${Status}' " + shellQuote(pkg) + " 2>/dev/null | grep -q 'install ok installed'; then DEBIAN_FRONTEND=noninteractive apt-get remove -y -q " + shellQuote(pkg) + " >&2; fi"
			if _, err := c.runOK(ctx, "removing "+pkg, script, nil); err != nil {
				return sdk.ApplyError(err)
			}
		}
		return &sdk.ApplyResponse{Summary: fmt.Sprintf("stopped and disabled %s on %s", name, c.t)}
	}
	return p.action("service",
		"Stops and disables a systemd service (such as the old provider's remote-management agent) and optionally removes its Debian package.",
		[]sdk.Attribute{
			{Name: "name", Type: cty.String, Required: true, Description: "The systemd unit."},
			{Name: "remove_package", Type: cty.String, Description: "A Debian package to remove too."},
		}, nil, plan, apply)
}
