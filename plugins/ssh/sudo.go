package sshplugin

import (
	"context"
	"fmt"
	"sort"
	"strings"

	"github.com/zclconf/go-cty/cty"

	"github.com/switchover/switchover/plugins/sdk"
)

// adminGroups grant sudo through Debian's and Red Hat's default sudoers.
var adminGroups = []string{"sudo", "admin", "wheel"}

type sudoFile struct {
	path    string
	content string
}

type sudoChange struct {
	file    sudoFile
	removed []string
	newText string
}

type sudoPlan struct {
	files  []sudoChange
	groups map[string][]string // user -> admin groups to leave
}

func (sp *sudoPlan) empty() bool { return len(sp.files) == 0 && len(sp.groups) == 0 }

func (sp *sudoPlan) describe() []string {
	var out []string
	for _, f := range sp.files {
		for _, l := range f.removed {
			out = append(out, fmt.Sprintf("remove from %s: %s", f.file.path, strings.TrimSpace(l)))
		}
	}
	users := make([]string, 0, len(sp.groups))
	for u := range sp.groups {
		users = append(users, u)
	}
	sort.Strings(users)
	for _, u := range users {
		out = append(out, fmt.Sprintf("remove %s from the group(s) %s", u, strings.Join(sp.groups[u], ", ")))
	}
	return out
}

func readSudoers(ctx context.Context, c *conn) ([]sudoFile, map[string][]string, error) {
	mark := "### switchover-" + nonce() + " "
	script := fmt.Sprintf(`for f in /etc/sudoers.d/*; do
  [ -f "$f" ] || continue
  printf '%s%%s\n' "$f"; cat "$f"; printf '\n'
done
printf '%sGROUPS\n'
for g in %s; do getent group "$g" || true; done`, mark, mark, strings.Join(adminGroups, " "))
	out, err := c.runOK(ctx, "reading /etc/sudoers.d", script, nil)
	if err != nil {
		return nil, nil, err
	}
	var files []sudoFile
	members := map[string][]string{}
	for _, chunk := range strings.Split(out, mark)[1:] {
		head, body, _ := strings.Cut(chunk, "\n")
		if head == "GROUPS" {
			for _, l := range strings.Split(body, "\n") {
				f := strings.Split(strings.TrimSpace(l), ":")
				if len(f) == 4 && f[3] != "" {
					members[f[0]] = strings.Split(f[3], ",")
				}
			}
			continue
		}
		files = append(files, sudoFile{path: head, content: strings.TrimSuffix(body, "\n")})
	}
	return files, members, nil
}

// grants reports whether a sudoers line grants to one of the principals
// (user names, or %group).
func grants(line string, principals map[string]bool) bool {
	t := strings.TrimSpace(line)
	if t == "" || strings.HasPrefix(t, "#") || strings.HasPrefix(t, "Defaults") || strings.HasPrefix(t, "@") {
		return false
	}
	who := strings.Fields(t)[0]
	for _, w := range strings.Split(who, ",") {
		if principals[w] {
			return true
		}
	}
	return false
}

func computeSudo(files []sudoFile, members map[string][]string, users, groups []string) *sudoPlan {
	principals := map[string]bool{}
	for _, u := range users {
		principals[u] = true
	}
	for _, g := range groups {
		principals["%"+g] = true
	}
	sp := &sudoPlan{groups: map[string][]string{}}
	for _, f := range files {
		ch := sudoChange{file: f}
		var kept []string
		for _, l := range strings.Split(f.content, "\n") {
			if grants(l, principals) {
				ch.removed = append(ch.removed, l)
				continue
			}
			kept = append(kept, l)
		}
		if len(ch.removed) > 0 {
			ch.newText = strings.Join(kept, "\n")
			if ch.newText != "" && !strings.HasSuffix(ch.newText, "\n") {
				ch.newText += "\n"
			}
			sp.files = append(sp.files, ch)
		}
	}
	for _, u := range users {
		for _, g := range adminGroups {
			for _, m := range members[g] {
				if m == u {
					sp.groups[u] = append(sp.groups[u], g)
				}
			}
		}
	}
	return sp
}

func (p *plugin) removeSudo() *sdk.Action {
	compute := func(ctx context.Context, c *conn, a sdk.Values) (*sudoPlan, error) {
		users, groups := a.Strings("users"), a.Strings("groups")
		if len(users) == 0 && len(groups) == 0 {
			return nil, fmt.Errorf("set users or groups")
		}
		files, members, err := readSudoers(ctx, c)
		if err != nil {
			return nil, err
		}
		return computeSudo(files, members, users, groups), nil
	}
	plan := func(ctx context.Context, c *conn, a sdk.Values, _ []byte) *sdk.PlanResponse {
		sp, err := compute(ctx, c, a)
		if err != nil {
			return errPlan(err)
		}
		if sp.empty() {
			return sdk.NoChangef("no sudo rights of %s on %s in /etc/sudoers.d or admin groups", strings.Join(append(a.Strings("users"), a.Strings("groups")...), ", "), c.t)
		}
		d := sp.describe()
		r := sdk.Changef("remove %d sudo grant(s) on %s", len(d), c.t)
		r.Details = d
		return r
	}
	apply := func(ctx context.Context, c *conn, a sdk.Values, ev sdk.Events, _ *sdk.ApplyRequest) *sdk.ApplyResponse {
		sp, err := compute(ctx, c, a)
		if err != nil {
			return errApply(err)
		}
		for _, f := range sp.files {
			// Replaced only if it still holds what was read (compare and
			// swap), after visudo -c accepts the new file and the whole
			// configuration with it.
			if err := replaceFile(ctx, c, f.file.path, sha(f.file.content), f.newText, true); err != nil {
				return errApply(err)
			}
		}
		for u, gs := range sp.groups {
			for _, g := range gs {
				if _, err := c.runOK(ctx, "removing "+u+" from "+g, "gpasswd -d "+shellQuote(u)+" "+shellQuote(g)+" >/dev/null", nil); err != nil {
					return errApply(err)
				}
			}
		}
		for _, d := range sp.describe() {
			ev.Log(d)
		}
		return &sdk.ApplyResponse{Summary: fmt.Sprintf("removed %d sudo grant(s) on %s", len(sp.describe()), c.t)}
	}
	return p.action("remove_sudo",
		"Removes the sudo rights of users or groups: their lines in the files under /etc/sudoers.d (each new file checked with visudo -c before it replaces the old one, atomically) and the users' membership in the admin groups sudo, admin and wheel.",
		[]sdk.Attribute{
			{Name: "users", Type: cty.List(cty.String), Description: "Users whose sudo rights go."},
			{Name: "groups", Type: cty.List(cty.String), Description: "Groups whose sudo rights go (their %group lines)."},
		}, nil, plan, apply)
}
