package ssh

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/zclconf/go-cty/cty"
	"golang.org/x/crypto/ssh"

	"github.com/switchover/switchover/plugins/sdk"
)

var (
	accountType = cty.Object(map[string]cty.Type{"name": cty.String, "uid": cty.Number, "home": cty.String, "shell": cty.String})
	keyType     = cty.Object(map[string]cty.Type{"user": cty.String, "type": cty.String, "fingerprint": cty.String, "comment": cty.String})
)

func listOf(t cty.Type, vs []cty.Value) cty.Value {
	if len(vs) == 0 {
		return cty.ListValEmpty(t)
	}
	return cty.ListVal(vs)
}

// gatherInventory reads the facts a new provider needs at handover.
func gatherInventory(ctx context.Context, c *conn) (map[string]cty.Value, error) {
	mark := "### switchover-" + nonce() + " "
	script := fmt.Sprintf(`printf '%[1]sHOSTNAME\n'; hostname
printf '%[1]sOS\n'; cat /etc/os-release 2>/dev/null
printf '%[1]sPASSWD\n'; getent passwd
printf '%[1]sSHELLS\n'; cat /etc/shells 2>/dev/null
printf '%[1]sSERVICES\n'; command -v systemctl >/dev/null && systemctl list-unit-files --type=service --state=enabled --no-legend --no-pager 2>/dev/null | awk '{print $1}'
printf '%[1]sLISTEN\n'; if command -v ss >/dev/null; then ss -Hltnu 2>/dev/null | awk '{print $1" "$5}'; else cat /proc/net/tcp /proc/net/tcp6 2>/dev/null | awk '$4=="0A"{print "tcp "$2}'; fi
exit 0`, mark)
	out, err := c.runOK(ctx, "reading the inventory", script, nil)
	if err != nil {
		return nil, err
	}
	parts := map[string]string{}
	for _, chunk := range strings.Split(out, mark)[1:] {
		head, body, _ := strings.Cut(chunk, "\n")
		parts[head] = body
	}
	os := map[string]cty.Value{}
	for _, l := range strings.Split(parts["OS"], "\n") {
		if k, v, ok := strings.Cut(l, "="); ok && k != "" {
			if uq, err := strconv.Unquote(v); err == nil {
				v = uq
			}
			os[k] = cty.StringVal(v)
		}
	}
	osVal := cty.MapValEmpty(cty.String)
	if len(os) > 0 {
		osVal = cty.MapVal(os)
	}
	var accounts []cty.Value
	shells := loginShells(parts["SHELLS"])
	for _, l := range strings.Split(parts["PASSWD"], "\n") {
		f := strings.Split(l, ":")
		if len(f) < 7 || !isLoginShell(f[6], shells) {
			continue
		}
		uid, _ := strconv.Atoi(f[2])
		accounts = append(accounts, cty.ObjectVal(map[string]cty.Value{"name": cty.StringVal(f[0]), "uid": cty.NumberIntVal(int64(uid)), "home": cty.StringVal(f[5]), "shell": cty.StringVal(f[6])}))
	}
	files, err := listKeyFiles(ctx, c, "")
	if err != nil {
		return nil, err
	}
	var keys []cty.Value
	for _, f := range files {
		for _, kl := range parseKeyLines(f.content) {
			if kl.key == nil {
				continue
			}
			keys = append(keys, cty.ObjectVal(map[string]cty.Value{"user": cty.StringVal(f.user), "type": cty.StringVal(kl.key.Type()),
				"fingerprint": cty.StringVal(ssh.FingerprintSHA256(kl.key)), "comment": cty.StringVal(kl.comment)}))
		}
	}
	sfiles, _, _, err := readSudoers(ctx, c, nil)
	if err != nil {
		return nil, err
	}
	members, err := groupMembers(ctx, c, adminGroups)
	if err != nil {
		return nil, err
	}
	var sudo []string
	for _, f := range sfiles {
		for _, l := range strings.Split(f.content, "\n") {
			t := strings.TrimSpace(l)
			if t != "" && !isComment(t) && !strings.HasPrefix(t, "Defaults") {
				sudo = append(sudo, f.path+": "+t)
			}
		}
	}
	for _, g := range adminGroups {
		if len(members[g]) > 0 {
			sudo = append(sudo, fmt.Sprintf("group %s: %s", g, strings.Join(members[g], ", ")))
		}
	}
	lines := func(s string) []string {
		var out []string
		for _, l := range strings.Split(s, "\n") {
			if l = strings.TrimSpace(l); l != "" {
				out = append(out, l)
			}
		}
		sort.Strings(out)
		return out
	}
	return map[string]cty.Value{
		"hostname":        cty.StringVal(strings.TrimSpace(parts["HOSTNAME"])),
		"os_release":      osVal,
		"accounts":        listOf(accountType, accounts),
		"authorized_keys": listOf(keyType, keys),
		"sudo":            sdk.StringList(sudo),
		"services":        sdk.StringList(lines(parts["SERVICES"])),
		"listening":       sdk.StringList(lines(parts["LISTEN"])),
	}, nil
}

func (p *plugin) inventory() *sdk.Action {
	plan := func(ctx context.Context, c *conn, a sdk.Values, _ []byte) *sdk.PlanResponse {
		outs, err := gatherInventory(ctx, c)
		if err != nil {
			return sdk.PlanError(err)
		}
		r := sdk.NoChangef("read the inventory of %s: %d accounts with a login shell, %d authorized keys, %d sudo grants",
			c.t, outs["accounts"].LengthInt(), outs["authorized_keys"].LengthInt(), outs["sudo"].LengthInt())
		r.Outputs = outs
		return r
	}
	apply := func(ctx context.Context, c *conn, a sdk.Values, ev sdk.Events, _ *sdk.ApplyRequest) *sdk.ApplyResponse {
		outs, err := gatherInventory(ctx, c)
		if err != nil {
			return sdk.ApplyError(err)
		}
		return &sdk.ApplyResponse{Summary: "read the inventory of " + c.t.String(), Outputs: outs}
	}
	a := p.action("inventory",
		"Reads facts for the handover, changing nothing: OS release, accounts with a login shell, sudo rights, authorized keys (fingerprint and comment), enabled services, listening ports. They are the step's outputs.",
		nil,
		[]sdk.Output{
			{Name: "hostname", Type: cty.String},
			{Name: "os_release", Type: cty.Map(cty.String), Description: "/etc/os-release."},
			{Name: "accounts", Type: cty.List(accountType), Description: "Accounts with a login shell."},
			{Name: "authorized_keys", Type: cty.List(keyType)},
			{Name: "sudo", Type: cty.List(cty.String), Description: "Grants in /etc/sudoers.d and members of admin groups."},
			{Name: "services", Type: cty.List(cty.String), Description: "Enabled systemd services."},
			{Name: "listening", Type: cty.List(cty.String), Description: "Listening sockets: PROTO ADDRESS:PORT."},
		}, plan, apply)
	a.ReadOnly = true // read while planning: for_each may go over its outputs
	return a
}

// loginShells parses /etc/shells; nil when the host has none.
func loginShells(content string) map[string]bool {
	var m map[string]bool
	for _, l := range strings.Split(content, "\n") {
		l = strings.TrimSpace(l)
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		if m == nil {
			m = map[string]bool{}
		}
		m[l] = true
	}
	return m
}

// isLoginShell: a shell listed in /etc/shells (as login, su and ftp decide
// it); /bin/sync and nologin are not. Without /etc/shells, anything but an
// empty or no-login shell counts.
func isLoginShell(shell string, shells map[string]bool) bool {
	if shell == "" || nologin(shell) {
		return false
	}
	if shells == nil {
		return true
	}
	return shells[shell]
}
