package ssh

import (
	"context"
	"fmt"
	"regexp"
	"sort"
	"strings"

	"github.com/zclconf/go-cty/cty"

	"github.com/switchover/switchover/plugins/sdk"
)

type sudoFile struct {
	path    string
	content string
}

type sudoChange struct {
	file    sudoFile
	removed []string // what goes, as a person reads it
	newText string
}

// sudoUser is what the host says of one user whose rights go.
type sudoUser struct {
	name    string
	uid     string
	primary string   // primary group name
	groups  []string // every group, the primary one included
}

type sudoPlan struct {
	files  []sudoChange
	groups map[string][]string // user -> groups to leave (supplementary)
	// cannot lists what grants rights that switchover does not remove
	// (a primary group with a grant, a grant sudo -l still shows).
	cannot []string
}

func (sp *sudoPlan) empty() bool { return len(sp.files) == 0 && len(sp.groups) == 0 }

func (sp *sudoPlan) describe() []string {
	var out []string
	for _, f := range sp.files {
		for _, l := range f.removed {
			out = append(out, fmt.Sprintf("remove from %s: %s", f.file.path, l))
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

// readSudoers reads /etc/sudoers, the files under /etc/sudoers.d, what the
// host knows of each user (uid, groups) and what `sudo -l -U` says of them.
func readSudoers(ctx context.Context, c *conn, users []string) ([]sudoFile, map[string]*sudoUser, map[string]string, error) {
	mark := "### switchover-" + nonce() + " "
	script := fmt.Sprintf(`for f in /etc/sudoers /etc/sudoers.d/*; do
  [ -f "$f" ] && [ ! -L "$f" ] || continue
  case "${f##*/}" in *~|*.*) [ "$f" = /etc/sudoers ] || continue ;; esac
  printf '%[1]sFILE %%s\n' "$f"; cat "$f"; printf '\n'
done
for u in "$@"; do
  e=$(getent passwd -- "$u") || continue
  printf '%[1]sUSER %%s\n' "$u"
  echo "$e" | cut -d: -f3
  getent group "$(echo "$e" | cut -d: -f4)" | cut -d: -f1
  id -Gn -- "$u" 2>/dev/null || true
  printf '%[1]sSUDOL %%s\n' "$u"
  sudo -n -l -U "$u" 2>&1 || true
done`, mark)
	args := ""
	for _, u := range users {
		args += " " + shellQuote(u)
	}
	out, err := c.runOK(ctx, "reading sudoers", "set --"+args+"\n"+script, nil)
	if err != nil {
		return nil, nil, nil, err
	}
	var files []sudoFile
	info := map[string]*sudoUser{}
	listed := map[string]string{}
	for _, chunk := range strings.Split(out, mark)[1:] {
		head, body, _ := strings.Cut(chunk, "\n")
		kind, name, _ := strings.Cut(head, " ")
		switch kind {
		case "FILE":
			files = append(files, sudoFile{path: name, content: strings.TrimSuffix(body, "\n")})
		case "USER":
			l := strings.Split(strings.TrimSpace(body), "\n")
			if len(l) >= 2 {
				su := &sudoUser{name: name, uid: strings.TrimSpace(l[0]), primary: strings.TrimSpace(l[1])}
				if len(l) >= 3 {
					su.groups = strings.Fields(l[2])
				}
				info[name] = su
			}
		case "SUDOL":
			listed[name] = body
		}
	}
	return files, info, listed, nil
}

// sudoersLine is one logical line (continuations joined).
type sudoersLine struct {
	text  string
	lines int // physical lines it spans
}

func logicalLines(content string) []sudoersLine {
	var out []sudoersLine
	var cur strings.Builder
	n := 0
	for _, l := range strings.Split(content, "\n") {
		n++
		if strings.HasSuffix(l, "\\") {
			cur.WriteString(strings.TrimSuffix(l, "\\"))
			continue
		}
		cur.WriteString(l)
		out = append(out, sudoersLine{text: cur.String(), lines: n})
		cur.Reset()
		n = 0
	}
	if cur.Len() > 0 {
		out = append(out, sudoersLine{text: cur.String(), lines: n})
	}
	return out
}

var aliasRE = regexp.MustCompile(`^\s*User_Alias\s+(.*)$`)

// userAliases parses User_Alias NAME = a, b : NAME2 = c lines of all files.
func userAliases(files []sudoFile) map[string][]string {
	out := map[string][]string{}
	for _, f := range files {
		for _, l := range logicalLines(f.content) {
			m := aliasRE.FindStringSubmatch(l.text)
			if m == nil {
				continue
			}
			for _, def := range strings.Split(m[1], ":") {
				name, members, ok := strings.Cut(def, "=")
				if !ok {
					continue
				}
				for _, x := range strings.Split(members, ",") {
					out[strings.TrimSpace(name)] = append(out[strings.TrimSpace(name)], strings.TrimSpace(x))
				}
			}
		}
	}
	return out
}

// sudoTarget decides which sudoers principals belong to the users and
// groups whose rights go.
type sudoTarget struct {
	direct  map[string]bool // principals to take out of user lists: name, #uid, %group of `groups`
	aliases map[string]bool // User_Alias names that (transitively) include a direct principal
	members map[string][]string
	info    map[string]*sudoUser
	users   []string
}

func newSudoTarget(files []sudoFile, info map[string]*sudoUser, users, groups []string) *sudoTarget {
	st := &sudoTarget{direct: map[string]bool{}, aliases: map[string]bool{}, members: userAliases(files), info: info, users: users}
	for _, u := range users {
		st.direct[u] = true
		if su := info[u]; su != nil && su.uid != "" {
			st.direct["#"+su.uid] = true
		}
	}
	for _, g := range groups {
		st.direct["%"+g] = true
	}
	for changed := true; changed; {
		changed = false
		for name, ms := range st.members {
			if st.aliases[name] {
				continue
			}
			for _, m := range ms {
				if st.direct[m] || st.aliases[m] {
					st.aliases[name], changed = true, true
					break
				}
			}
		}
	}
	return st
}

// userList splits the user list of a grant line ("a, b ALL = ...").
func userList(line string) (users []string, rest string, ok bool) {
	t := strings.TrimSpace(line)
	if t == "" || isComment(t) || strings.HasPrefix(t, "@") || strings.HasPrefix(t, "#include") || strings.HasPrefix(t, "Defaults") ||
		strings.HasSuffix(strings.Fields(t)[0], "_Alias") {
		return nil, "", false
	}
	// The user list ends at the first blank not inside it after a comma.
	i := 0
	for i < len(t) {
		j := strings.IndexAny(t[i:], " \t")
		if j < 0 {
			return nil, "", false
		}
		i += j
		if !strings.HasSuffix(strings.TrimRight(t[:i], " \t"), ",") && !strings.HasPrefix(strings.TrimLeft(t[i:], " \t"), ",") {
			break
		}
		i++
	}
	for _, u := range strings.Split(t[:i], ",") {
		users = append(users, strings.TrimSpace(u))
	}
	return users, strings.TrimSpace(t[i:]), true
}

func computeSudo(files []sudoFile, info map[string]*sudoUser, users, groups []string) *sudoPlan {
	st := newSudoTarget(files, info, users, groups)
	sp := &sudoPlan{groups: map[string][]string{}}
	granted := map[string]bool{} // %group principals that keep a grant
	for _, f := range files {
		ch := sudoChange{file: f}
		var kept []string
		for _, l := range logicalLines(f.content) {
			if m := aliasRE.FindStringSubmatch(l.text); m != nil {
				// Take the users out of an alias definition.
				var defs []string
				changed := false
				for _, def := range strings.Split(m[1], ":") {
					name, members, _ := strings.Cut(def, "=")
					var keep []string
					for _, x := range strings.Split(members, ",") {
						if st.direct[strings.TrimSpace(x)] {
							changed = true
							continue
						}
						keep = append(keep, strings.TrimSpace(x))
					}
					if len(keep) > 0 {
						defs = append(defs, strings.TrimSpace(name)+" = "+strings.Join(keep, ", "))
					} else {
						changed = true
					}
				}
				if changed {
					ch.removed = append(ch.removed, "alias "+strings.TrimSpace(l.text))
					if len(defs) > 0 {
						kept = append(kept, "User_Alias "+strings.Join(defs, " : "))
					}
					continue
				}
				kept = append(kept, l.text)
				continue
			}
			us, rest, ok := userList(l.text)
			if !ok {
				kept = append(kept, l.text)
				continue
			}
			var keep []string
			for _, u := range us {
				if st.direct[u] || st.aliases[u] && !stillNeeded(u, st) {
					continue
				}
				keep = append(keep, u)
				if strings.HasPrefix(u, "%") {
					granted[strings.TrimPrefix(u, "%")] = true
				}
			}
			if len(keep) == len(us) {
				kept = append(kept, l.text)
				continue
			}
			ch.removed = append(ch.removed, strings.TrimSpace(l.text))
			if len(keep) > 0 {
				kept = append(kept, strings.Join(keep, ", ")+" "+rest)
			}
		}
		if len(ch.removed) > 0 {
			ch.newText = strings.Join(kept, "\n")
			if ch.newText != "" && !strings.HasSuffix(ch.newText, "\n") {
				ch.newText += "\n"
			}
			sp.files = append(sp.files, ch)
		}
	}
	// Groups with a grant that the users are in: leave the supplementary
	// ones; a primary group cannot be left this way.
	for _, g := range adminGroups {
		granted[g] = true // Debian's and Red Hat's default sudoers
	}
	for _, u := range users {
		su := info[u]
		if su == nil {
			continue
		}
		for _, g := range su.groups {
			if !granted[g] {
				continue
			}
			if g == su.primary {
				sp.cannot = append(sp.cannot, fmt.Sprintf("%s's primary group %s has sudo rights: give %s another primary group by hand (usermod -g)", u, g, u))
				continue
			}
			sp.groups[u] = append(sp.groups[u], g)
		}
	}
	return sp
}

// stillNeeded: an alias used in a grant line is dropped from the line only
// when its definition is emptied; a definition that keeps members loses
// the users there instead. Aliases are rewritten in place, so a line that
// names one keeps it.
func stillNeeded(alias string, st *sudoTarget) bool {
	for _, m := range st.members[alias] {
		if !st.direct[m] && !st.aliases[m] {
			return true
		}
	}
	return false
}

// adminGroups grant sudo through Debian's and Red Hat's default sudoers.
var adminGroups = []string{"sudo", "admin", "wheel"}

// sudoRemains is what `sudo -l -U` still lists for the users.
func sudoRemains(users []string, listed map[string]string) []string {
	var out []string
	for _, u := range users {
		l := listed[u]
		if i := strings.Index(l, "may run the following commands"); i >= 0 {
			rules := strings.Fields(strings.ReplaceAll(l[i:], "\n", " "))
			out = append(out, fmt.Sprintf("sudo -l -U %s still lists: %s", u, abbreviate(strings.Join(rules[min(len(rules), 6):], " "))))
		}
	}
	return out
}

func (p *plugin) removeSudo() *sdk.Action {
	compute := func(ctx context.Context, c *conn, a sdk.Values) (*sudoPlan, map[string]string, error) {
		users, groups := a.Strings("users"), a.Strings("groups")
		if len(users) == 0 && len(groups) == 0 {
			return nil, nil, fmt.Errorf("set users or groups")
		}
		files, info, listed, err := readSudoers(ctx, c, users)
		if err != nil {
			return nil, nil, err
		}
		return computeSudo(files, info, users, groups), listed, nil
	}
	plan := func(ctx context.Context, c *conn, a sdk.Values, _ []byte) *sdk.PlanResponse {
		sp, listed, err := compute(ctx, c, a)
		if err != nil {
			return sdk.PlanError(err)
		}
		who := strings.Join(append(a.Strings("users"), a.Strings("groups")...), ", ")
		if sp.empty() {
			// Nothing left that switchover can remove: sudo itself has the
			// last word.
			if rest := append(sp.cannot, sudoRemains(a.Strings("users"), listed)...); len(rest) > 0 {
				r := sdk.Changef("sudo rights of %s on %s that switchover cannot remove: %s", who, c.t, strings.Join(rest, "; "))
				r.Details = rest
				return r
			}
			return sdk.NoChangef("no sudo rights of %s on %s (sudo -l -U agrees)", who, c.t)
		}
		d := sp.describe()
		r := sdk.Changef("remove %d sudo grant(s) of %s on %s", len(d), who, c.t)
		r.Details = append(d, sp.cannot...)
		return r
	}
	apply := func(ctx context.Context, c *conn, a sdk.Values, ev sdk.Events, _ *sdk.ApplyRequest) *sdk.ApplyResponse {
		sp, _, err := compute(ctx, c, a)
		if err != nil {
			return sdk.ApplyError(err)
		}
		for _, f := range sp.files {
			// Replaced only if it still holds what was read (compare and
			// swap), after visudo -c accepts the new file and the whole
			// configuration with it.
			if err := replaceFile(ctx, c, f.file.path, sha(f.file.content), f.newText, true); err != nil {
				return sdk.ApplyError(err)
			}
		}
		for u, gs := range sp.groups {
			for _, g := range gs {
				if _, err := c.runOK(ctx, "removing "+u+" from "+g, "gpasswd -d "+shellQuote(u)+" "+shellQuote(g)+" >/dev/null", nil); err != nil {
					return sdk.ApplyError(err)
				}
			}
		}
		for _, d := range sp.describe() {
			ev.Log(d)
		}
		if len(sp.cannot) > 0 {
			return sdk.ApplyError(fmt.Errorf("%s: removed %d sudo grant(s), but not: %s", c.t, len(sp.describe()), strings.Join(sp.cannot, "; ")))
		}
		return &sdk.ApplyResponse{Summary: fmt.Sprintf("removed %d sudo grant(s) on %s", len(sp.describe()), c.t)}
	}
	return p.action("remove_sudo",
		"Removes the sudo rights of users or groups: their grants in /etc/sudoers and /etc/sudoers.d (by name, #uid, %group and User_Alias; each new file checked with visudo -c before it replaces the old one, atomically) and the users' membership in groups that have a grant. Verified with sudo -l -U; what it cannot remove (a primary group) is reported.",
		[]sdk.Attribute{
			{Name: "users", Type: cty.List(cty.String), Description: "Users whose sudo rights go."},
			{Name: "groups", Type: cty.List(cty.String), Description: "Groups whose sudo rights go (their %group lines)."},
		}, nil, plan, apply)
}

// isComment: a sudoers comment; "#1001" at the start of a line is a uid,
// and #include / #includedir are directives.
func isComment(t string) bool {
	if !strings.HasPrefix(t, "#") {
		return false
	}
	if strings.HasPrefix(t, "#include") {
		return false
	}
	return len(t) < 2 || t[1] < '0' || t[1] > '9'
}

// groupMembers reads the members of groups.
func groupMembers(ctx context.Context, c *conn, groups []string) (map[string][]string, error) {
	out, err := c.runOK(ctx, "reading groups", "for g in "+strings.Join(groups, " ")+"; do getent group \"$g\" || true; done", nil)
	if err != nil {
		return nil, err
	}
	members := map[string][]string{}
	for _, l := range strings.Split(out, "\n") {
		f := strings.Split(strings.TrimSpace(l), ":")
		if len(f) == 4 && f[3] != "" {
			members[f[0]] = strings.Split(f[3], ",")
		}
	}
	return members, nil
}
