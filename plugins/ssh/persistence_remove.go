package ssh

import (
	"context"
	"fmt"
	"path"
	"strings"

	"github.com/zclconf/go-cty/cty"
	"golang.org/x/crypto/ssh"

	"github.com/switchover/switchover/plugins/sdk"
)

// removableKinds are the findings ssh.remove_persistence removes: one line
// of a file (a trusted CA, a cron job, a command in rc.local), written back
// as a compare-and-swap like every file the plugin changes, or a systemd
// unit the old provider put in /etc/systemd/system.
var removableKinds = map[string]bool{"trusted_ca": true, "cron": true, "rc_local": true, "systemd_unit": true}

// removableFile: only what an admin writes (not a package's unit in /lib).
func removableFile(kind, file string) bool {
	switch kind {
	case "systemd_unit":
		return strings.HasPrefix(file, "/etc/systemd/system/")
	case "cron":
		return strings.HasPrefix(file, "/etc/cron") || strings.HasPrefix(file, "/var/spool/cron/")
	case "rc_local":
		return file == "/etc/rc.local"
	case "trusted_ca":
		return strings.HasPrefix(file, "/")
	}
	return false
}

// lineOf finds the line a finding names in content: a CA by its
// fingerprint, a job by its text (the value is "LINE:TEXT" as found).
func lineOf(kind, value, content string) (int, bool) {
	lines := strings.Split(content, "\n")
	if kind == "trusted_ca" {
		for i, kl := range parseKeyLines(content) {
			if kl.key != nil && ssh.FingerprintSHA256(kl.key) == value {
				return i, true
			}
		}
		return 0, false
	}
	_, text, _ := strings.Cut(value, ":")
	for i, l := range lines {
		if strings.TrimSpace(l) == text {
			return i, true
		}
	}
	return 0, false
}

func (p *plugin) removePersistence() *sdk.Action {
	read := func(ctx context.Context, c *conn, file string) (string, bool, error) {
		r, err := c.run(ctx, "set -- "+shellQuote(file)+"\n[ -f \"$1\" ] || exit 3\ncat -- \"$1\"", nil)
		if err != nil {
			return "", false, err
		}
		if r.exit == 3 {
			return "", false, nil
		}
		if r.exit != 0 {
			return "", false, fmt.Errorf("%s: reading %s: %s", c.t, file, firstLine(string(r.stderr)))
		}
		return string(r.stdout), true, nil
	}
	check := func(a sdk.Values) error {
		kind, file := a.String("kind"), a.String("object")
		if !removableKinds[kind] || !removableFile(kind, file) {
			return fmt.Errorf("%s in %s is not something switchover removes (removable: a trusted CA line, a cron line, an rc.local line, a unit in /etc/systemd/system); the sweep lists it for a person", kind, file)
		}
		return nil
	}
	plan := func(ctx context.Context, c *conn, a sdk.Values, _ []byte) *sdk.PlanResponse {
		if err := check(a); err != nil {
			return sdk.PlanError(err)
		}
		kind, file, value := a.String("kind"), a.String("object"), a.String("value")
		content, ok, err := read(ctx, c, file)
		if err != nil {
			return sdk.PlanError(err)
		}
		if !ok {
			return sdk.NoChangef("%s on %s is gone", file, c.t)
		}
		if kind == "systemd_unit" {
			return sdk.Changef("disable and remove the unit %s on %s", path.Base(file), c.t)
		}
		i, found := lineOf(kind, value, content)
		if !found {
			return sdk.NoChangef("%s on %s no longer holds it", file, c.t)
		}
		r := sdk.Changef("remove line %d of %s on %s", i+1, file, c.t)
		r.Details = []string{strings.Split(content, "\n")[i]}
		return r
	}
	apply := func(ctx context.Context, c *conn, a sdk.Values, _ sdk.Events, _ *sdk.ApplyRequest) *sdk.ApplyResponse {
		if err := check(a); err != nil {
			return sdk.ApplyError(err)
		}
		kind, file, value := a.String("kind"), a.String("object"), a.String("value")
		if kind == "systemd_unit" {
			unit := path.Base(file)
			script := "set -- " + shellQuote(unit) + " " + shellQuote(file) + `
command -v systemctl >/dev/null && systemctl disable --now "$1" >/dev/null 2>&1
rm -f -- "$2"
command -v systemctl >/dev/null && systemctl daemon-reload >/dev/null 2>&1
exit 0`
			if _, err := c.runOK(ctx, "removing "+unit, script, nil); err != nil {
				return sdk.ApplyError(err)
			}
			return &sdk.ApplyResponse{Summary: fmt.Sprintf("disabled and removed %s on %s", unit, c.t)}
		}
		content, ok, err := read(ctx, c, file)
		if err != nil {
			return sdk.ApplyError(err)
		}
		i, found := lineOf(kind, value, content)
		if !ok || !found {
			return &sdk.ApplyResponse{Summary: fmt.Sprintf("%s on %s no longer holds it", file, c.t)}
		}
		lines := strings.Split(content, "\n")
		next := strings.Join(append(append([]string{}, lines[:i]...), lines[i+1:]...), "\n")
		if err := replaceFile(ctx, c, file, sha(content), next, false); err != nil {
			return sdk.ApplyError(err)
		}
		return &sdk.ApplyResponse{Summary: fmt.Sprintf("removed line %d of %s on %s", i+1, file, c.t)}
	}
	return p.action("remove_persistence",
		"Removes one finding of ssh.find_persistence that is the old provider's: a line of TrustedUserCAKeys' file, a cron line, an rc.local line (each file written back whole, as a compare-and-swap, like every file the plugin changes), or a unit it put in /etc/systemd/system (disabled, removed). Everything else the sweep lists for a person.",
		[]sdk.Attribute{
			{Name: "kind", Type: cty.String, Required: true, Description: "trusted_ca, cron, rc_local or systemd_unit (the finding's kind)."},
			{Name: "object", Type: cty.String, Required: true, Description: "The file (the finding's object)."},
			{Name: "value", Type: cty.String, Required: true, Description: "The finding's value: the CA's fingerprint, or LINE:TEXT of the job."},
		}, nil, plan, apply)
}
