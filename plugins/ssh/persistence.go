package ssh

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"path"
	"sort"
	"strings"

	"github.com/zclconf/go-cty/cty"
	"golang.org/x/crypto/ssh"

	"github.com/switchover/switchover/plugins/sdk"
)

// The Linux half of the persistence sweep (issue 28): the ways in and the
// jobs an outgoing admin leaves on a host without its own account, found
// and attributed; nothing is changed. The old provider's authorized keys
// are removable with ssh.authorized_keys (their fingerprints are the
// findings' values); the rest are open items with the command to run.

var hostFindingType = cty.Object(map[string]cty.Type{
	"kind": cty.String, "object": cty.String, "value": cty.String, "what": cty.String,
	"whose": cty.String, "removable": cty.Bool, "remedy": cty.String,
})

type hostFinding struct {
	Kind, Object, Value, What, Whose, Remedy string
	Removable                                bool
}

func (f *hostFinding) id() string {
	h := sha256.Sum256([]byte(f.Kind + "\x00" + f.Object + "\x00" + f.Value))
	return f.Kind + " " + path.Base(f.Object) + " " + hex.EncodeToString(h[:4])
}

// Remote-access agents by the names of their services.
var agentNames = []string{"screenconnect", "connectwise", "anydesk", "teamviewer", "rustdesk", "splashtop", "ninjarmm", "ninjaone",
	"datto", "kaseya", "atera", "n-able", "nable", "solarwinds", "meshagent", "tacticalagent", "zoho", "logmein", "bomgar", "beyondtrust", "gotoassist", "syncro", "pulseway", "level-agent", "action1"}

func (p *plugin) findPersistence() *sdk.Action {
	plan := func(ctx context.Context, c *conn, a sdk.Values, _ []byte) *sdk.PlanResponse {
		outs, sum, warn, err := sweepHost(ctx, c, a)
		if err != nil {
			return sdk.PlanError(err)
		}
		r := sdk.NoChangef("%s", sum)
		r.Outputs, r.Diagnostics = outs, warn
		return r
	}
	apply := func(ctx context.Context, c *conn, a sdk.Values, ev sdk.Events, _ *sdk.ApplyRequest) *sdk.ApplyResponse {
		outs, sum, warn, err := sweepHost(ctx, c, a)
		if err != nil {
			return sdk.ApplyError(err)
		}
		return &sdk.ApplyResponse{Summary: sum, Outputs: outs, Diagnostics: warn}
	}
	act := p.action("find_persistence",
		"Sweeps a host for ways in and jobs the old provider can leave without an account of its own, changing nothing: every account's authorized keys as sshd itself resolves them (sshd -T per account: AuthorizedKeysFile, AuthorizedKeysCommand, Match blocks) with their cert-authority, command= and from= options, TrustedUserCAKeys and AuthorizedPrincipalsFile, host-based authentication (hosts.equiv, shosts.equiv, .shosts, .rhosts); cron (system and users), systemd units and timers, at jobs and rc.local that name the old provider; accounts with UID 0 besides root and with empty passwords; sudo rules from sudoers and every include; remote-access agents (ScreenConnect, AnyDesk, TeamViewer, RMM agents) as services. The old provider's keys are removable with ssh.authorized_keys; the rest are open items with the command to run.",
		[]sdk.Attribute{
			{Name: "mentions", Type: cty.List(cty.String), Description: "Strings that name the old provider: its domain, hosts, key comments, tools (without them, jobs and units are not searched)."},
			{Name: "old_keys", Type: cty.List(cty.String), Description: "Fingerprints (SHA256:...) of the old provider's keys and CAs."},
		},
		[]sdk.Output{
			{Name: "findings", Type: cty.Map(hostFindingType), Description: "Everything found, by a stable key: kind, object, value, what, whose, removable, remedy."},
			{Name: "old_key_fingerprints", Type: cty.List(cty.String), Description: "The old provider's authorized keys: fingerprints for ssh.authorized_keys' remove."},
			{Name: "removable", Type: cty.Map(hostFindingType), Description: "The old provider's trusted CAs, cron and rc.local lines and units in /etc/systemd/system: for_each of ssh.remove_persistence."},
			{Name: "count", Type: cty.Number},
		}, plan, apply)
	act.ReadOnly = true
	return act
}

// hostSweep is one sweep of one host.
type hostSweep struct {
	c        *conn
	mentions []string
	oldKeys  map[string]bool
	found    []*hostFinding
}

func (s *hostSweep) mentioned(text string) string {
	l := strings.ToLower(text)
	for _, m := range s.mentions {
		if m != "" && strings.Contains(l, strings.ToLower(m)) {
			return m
		}
	}
	return ""
}

func (s *hostSweep) add(f *hostFinding) { s.found = append(s.found, f) }

func sweepHost(ctx context.Context, c *conn, a sdk.Values) (map[string]cty.Value, string, sdk.Diagnostics, error) {
	s := &hostSweep{c: c, mentions: a.Strings("mentions"), oldKeys: map[string]bool{}}
	for _, k := range a.Strings("old_keys") {
		s.oldKeys[k] = true
	}
	parts, err := s.gather(ctx)
	if err != nil {
		return nil, "", nil, err
	}
	files, err := s.sshdFiles(ctx, parts)
	if err != nil {
		return nil, "", nil, err
	}
	s.keys(files)
	s.lines(parts)
	return s.outputs()
}

// section splits a script's output at its marks into NAME -> body.
func sections(out, mark string) map[string]string {
	parts := map[string]string{}
	for _, chunk := range strings.Split(out, mark)[1:] {
		head, body, _ := strings.Cut(chunk, "\n")
		parts[head] += body
	}
	return parts
}

// gather reads, in one script: accounts, empty passwords, sshd's settings
// per account, equiv files, lines of cron, at, rc.local and units that
// mention the old provider, sudo rules, and the agents' services.
func (s *hostSweep) gather(ctx context.Context) (map[string]string, error) {
	mark := "### switchover-" + nonce() + " "
	out, err := s.c.runOK(ctx, "sweeping for persistence", s.gatherScript(mark), nil)
	if err != nil {
		return nil, err
	}
	return sections(out, mark), nil
}

// gatherScript is gather's script, its sections marked with mark.
func (s *hostSweep) gatherScript(mark string) string {
	var args []string
	for _, m := range s.mentions {
		if m != "" {
			args = append(args, shellQuote(m))
		}
	}
	script := "M=" + shellQuote(mark) + "\nset -- " + strings.Join(args, " ") + `
pat=$(mktemp); trap 'rm -f "$pat"' EXIT
for m in "$@"; do printf '%s\n' "$m"; done > "$pat"
grepm() { [ -s "$pat" ] && grep -HniF -f "$pat" "$@" 2>/dev/null; return 0; }
printf '%sPASSWD\n' "$M"; getent passwd
printf '%sEMPTY\n' "$M"; awk -F: '$2=="" {print $1}' /etc/shadow 2>/dev/null
getent passwd | while IFS=: read -r u x uid gid g home shell; do
  printf '%sSSHD %s %s\n' "$M" "$u" "$home"
  sshd -T -C "user=$u,host=localhost,addr=127.0.0.1" 2>/dev/null | grep -Ei '^(authorizedkeysfile|authorizedkeyscommand|authorizedkeyscommanduser|authorizedprincipalsfile|authorizedprincipalscommand|trustedusercakeys|hostbasedauthentication) '
  for f in "$home/.shosts" "$home/.rhosts"; do [ -s "$f" ] && printf '%sEQUIV\n%s\n' "$M" "$f"; done
done
for f in /etc/hosts.equiv /etc/ssh/shosts.equiv; do [ -s "$f" ] && printf '%sEQUIV\n%s\n' "$M" "$f"; done
printf '%sCRON\n' "$M"; grepm /etc/crontab /etc/cron.d/* /etc/cron.hourly/* /etc/cron.daily/* /etc/cron.weekly/* /etc/cron.monthly/* /var/spool/cron/crontabs/* /var/spool/cron/*
printf '%sAT\n' "$M"; grepm /var/spool/cron/atjobs/* /var/spool/at/*
printf '%sRCLOCAL\n' "$M"; grepm /etc/rc.local
printf '%sUNITS\n' "$M"; grepm /etc/systemd/system/*.service /etc/systemd/system/*.timer /etc/systemd/system/*/*.service /etc/systemd/system/*/*.timer /lib/systemd/system/*.service /lib/systemd/system/*.timer /usr/lib/systemd/system/*.service /usr/lib/systemd/system/*.timer
printf '%sSUDO\n' "$M"; for f in /etc/sudoers /etc/sudoers.d/*; do [ -f "$f" ] && grep -HnEv '^[[:space:]]*($|#|Defaults|@include|[A-Z_]+_Alias)' "$f"; done
printf '%sAGENTS\n' "$M"; for f in /etc/systemd/system/*.service /etc/systemd/system/*/*.service /lib/systemd/system/*.service /usr/lib/systemd/system/*.service /etc/init.d/*; do [ -e "$f" ] && echo "$f"; done
exit 0`
	return script
}

// SweepScripts are the two scripts ssh.find_persistence runs on a host,
// for a benchmark's floor that runs the same commands without switchover:
// the first, and the second as made from the first's output.
func SweepScripts(mentions []string) (first string, second func(out string) string) {
	s := &hostSweep{c: &conn{}, mentions: mentions, oldKeys: map[string]bool{}}
	mark := "### switchover-" + nonce() + " "
	return s.gatherScript(mark), func(out string) string {
		want := s.wanted(sections(out, mark))
		script, _ := readFilesScript(want, mark)
		return script
	}
}

// sshdFile is a file sshd reads for an account: its keys, CAs, principals.
type sshdFile struct {
	user, setting, path string
}

// sshdFiles resolves, per account, the files sshd reads, reports the
// commands and host-based authentication, and reads the files in a second
// script.
func (s *hostSweep) sshdFiles(ctx context.Context, parts map[string]string) (map[sshdFile]string, error) {
	return s.readFiles(ctx, s.wanted(parts))
}

// wanted are, per account, the files sshd reads (AuthorizedKeysFile with
// %h, %u, %U, %% expanded; relative to the home); the commands and
// host-based authentication are findings.
func (s *hostSweep) wanted(parts map[string]string) map[sshdFile]bool {
	uids := map[string]string{}
	for _, l := range strings.Split(parts["PASSWD"], "\n") {
		if f := strings.Split(l, ":"); len(f) >= 7 {
			uids[f[0]] = f[2]
		}
	}
	want := map[sshdFile]bool{}
	commands := map[string][]string{}
	for head, body := range parts {
		rest, ok := strings.CutPrefix(head, "SSHD ")
		if !ok {
			continue
		}
		user, home, _ := strings.Cut(rest, " ")
		expand := strings.NewReplacer("%%", "%", "%h", home, "%u", user, "%U", uids[user])
		for _, l := range strings.Split(body, "\n") {
			key, val, _ := strings.Cut(strings.TrimSpace(l), " ")
			switch key = strings.ToLower(key); key {
			case "authorizedkeysfile", "authorizedprincipalsfile", "trustedusercakeys":
				for _, p := range strings.Fields(val) {
					if p == "none" {
						continue
					}
					p = expand.Replace(p)
					if !strings.HasPrefix(p, "/") {
						p = home + "/" + p
					}
					want[sshdFile{user: user, setting: key, path: p}] = true
				}
			case "authorizedkeyscommand", "authorizedprincipalscommand":
				if val != "none" && val != "" {
					commands[key+" "+val] = append(commands[key+" "+val], user)
				}
			case "hostbasedauthentication":
				if val == "yes" {
					commands["hostbasedauthentication yes"] = append(commands["hostbasedauthentication yes"], user)
				}
			}
		}
	}
	for cmd, users := range commands {
		sort.Strings(users)
		s.add(&hostFinding{Kind: "sshd_setting", Object: "/etc/ssh/sshd_config", Value: cmd, Whose: "any",
			What:   fmt.Sprintf("sshd on %s: %s (for %s): a way in besides authorized_keys", s.c.t, cmd, strings.Join(users, ", ")),
			Remedy: "Check that the command or setting is the client's; else remove it from /etc/ssh/sshd_config (and its Match blocks) and reload sshd"})
	}
	return want
}

// readFiles reads each file once (a missing one is no file).
func (s *hostSweep) readFiles(ctx context.Context, want map[sshdFile]bool) (map[sshdFile]string, error) {
	mark := "### switchover-" + nonce() + " "
	script, paths := readFilesScript(want, mark)
	if len(paths) == 0 {
		return nil, nil
	}
	out, err := s.c.runOK(ctx, "reading the files sshd reads", script, nil)
	if err != nil {
		return nil, err
	}
	got := map[sshdFile]string{}
	for head, body := range sections(out, mark) {
		p, ok := strings.CutPrefix(head, "FILE ")
		if !ok {
			continue
		}
		for _, f := range paths[p] {
			got[f] = body
		}
	}
	return got, nil
}

// readFilesScript prints each file (once) after a mark; paths are the
// files by path.
func readFilesScript(want map[sshdFile]bool, mark string) (string, map[string][]sshdFile) {
	paths := map[string][]sshdFile{}
	for f := range want {
		paths[f.path] = append(paths[f.path], f)
	}
	var b strings.Builder
	b.WriteString("M=" + shellQuote(mark) + "\n")
	var list []string
	for p := range paths {
		list = append(list, p)
	}
	sort.Strings(list)
	for _, p := range list {
		fmt.Fprintf(&b, "if [ -f %[1]s ]; then printf '%%sFILE %%s\\n' \"$M\" %[1]s; cat %[1]s; echo; fi\n", shellQuote(p))
	}
	b.WriteString("exit 0")
	return b.String(), paths
}

// keys makes a finding of every key, CA and principal sshd takes, with its
// options; the old provider's (by fingerprint or a mention) are removable
// keys.
func (s *hostSweep) keys(files map[sshdFile]string) {
	seen := map[string]bool{}
	for f, content := range files {
		for _, kl := range parseKeyLines(strings.TrimRight(content, "\n")) {
			raw := strings.TrimSpace(kl.raw)
			if raw == "" || strings.HasPrefix(raw, "#") {
				continue
			}
			k := f.path + "\x00" + raw
			if seen[k] {
				continue
			}
			seen[k] = true
			s.keyLine(f, kl, raw)
		}
	}
}

func (s *hostSweep) keyLine(f sshdFile, kl keyLine, raw string) {
	whose := "any"
	if m := s.mentioned(raw); m != "" {
		whose = "old_provider"
	}
	if f.setting == "authorizedprincipalsfile" {
		s.add(&hostFinding{Kind: "authorized_principal", Object: f.path, Value: raw, Whose: whose,
			What:   fmt.Sprintf("%s on %s: a certificate naming principal %q logs in as %s", f.path, s.c.t, raw, f.user),
			Remedy: fmt.Sprintf("If the principal is not the client's, delete that line of %s", f.path)})
		return
	}
	if kl.key == nil {
		return
	}
	fp := ssh.FingerprintSHA256(kl.key)
	if s.oldKeys[fp] {
		whose = "old_provider"
	}
	var opts []string
	if _, _, o, _, err := ssh.ParseAuthorizedKey([]byte(raw)); err == nil {
		opts = o
	}
	desc := fmt.Sprintf("%s %s %q", kl.key.Type(), fp, kl.comment)
	if len(opts) > 0 {
		desc += " with " + strings.Join(opts, ",")
	}
	if f.setting == "trustedusercakeys" {
		s.add(&hostFinding{Kind: "trusted_ca", Object: f.path, Value: fp, Whose: whose, Removable: whose == "old_provider",
			What:   fmt.Sprintf("sshd on %s trusts a user CA (TrustedUserCAKeys %s): %s; every certificate it signs logs in", s.c.t, f.path, desc),
			Remedy: fmt.Sprintf("If the CA is not the client's, delete its line from %s and reload sshd", f.path)})
		return
	}
	kind, what := "authorized_key", fmt.Sprintf("%s logs in as %s on %s (%s)", desc, f.user, s.c.t, f.path)
	for _, o := range opts {
		if strings.EqualFold(o, "cert-authority") {
			kind, what = "cert_authority", fmt.Sprintf("%s on %s trusts a CA for %s: %s; every certificate it signs logs in as %s", f.path, s.c.t, f.user, desc, f.user)
		}
	}
	s.add(&hostFinding{Kind: kind, Object: f.path, Value: fp, Whose: whose, Removable: whose == "old_provider", What: what,
		Remedy: fmt.Sprintf("ssh.authorized_keys with user = %q and remove = { fingerprints = [%q] }, or delete the line from %s", f.user, fp, f.path)})
}

// lines makes findings of the jobs, accounts, rules and agents.
func (s *hostSweep) lines(parts map[string]string) {
	for _, job := range []struct{ section, kind, what, remedy string }{
		{"CRON", "cron", "a cron job", "Delete the line (crontab -e -u USER for a user's; the file for /etc/cron*)"},
		{"AT", "at_job", "an at job", "Remove the job (atrm)"},
		{"RCLOCAL", "rc_local", "a command at boot in rc.local", "Delete the line from /etc/rc.local"},
		{"UNITS", "systemd_unit", "a systemd unit", "systemctl disable --now UNIT (or ssh.service), then remove its file"},
	} {
		for _, l := range nonEmpty(parts[job.section]) {
			file, rest, _ := strings.Cut(l, ":")
			line, text, _ := strings.Cut(rest, ":")
			s.add(&hostFinding{Kind: job.kind, Object: file, Value: line + ":" + strings.TrimSpace(text), Whose: "old_provider", Removable: removableFile(job.kind, file),
				What:   fmt.Sprintf("%s on %s names %q: %s line %s: %s", job.what, s.c.t, s.mentioned(text), file, line, truncate(strings.TrimSpace(text), 160)),
				Remedy: job.remedy + " (" + file + ")"})
		}
	}
	for _, l := range nonEmpty(parts["PASSWD"]) {
		if f := strings.Split(l, ":"); len(f) >= 7 && f[2] == "0" && f[0] != "root" {
			s.add(&hostFinding{Kind: "uid0", Object: "/etc/passwd", Value: f[0], Whose: "any",
				What: fmt.Sprintf("%s on %s has UID 0: it is root under another name", f[0], s.c.t), Remedy: fmt.Sprintf("userdel %s (or give it its own UID), after checking what runs as it", f[0])})
		}
	}
	for _, u := range nonEmpty(parts["EMPTY"]) {
		s.add(&hostFinding{Kind: "empty_password", Object: "/etc/shadow", Value: u, Whose: "any",
			What: fmt.Sprintf("%s on %s has an empty password", u, s.c.t), Remedy: fmt.Sprintf("passwd -l %s (or set one)", u)})
	}
	for _, l := range nonEmpty(parts["SUDO"]) {
		file, rest, _ := strings.Cut(l, ":")
		line, text, _ := strings.Cut(rest, ":")
		whose := "any"
		if s.mentioned(text) != "" {
			whose = "old_provider"
		}
		s.add(&hostFinding{Kind: "sudo_rule", Object: file, Value: line + ":" + strings.TrimSpace(text), Whose: whose,
			What:   fmt.Sprintf("sudo on %s: %s (%s line %s)", s.c.t, strings.TrimSpace(text), file, line),
			Remedy: "If the rule is not the client's: ssh.remove_sudo with its users or groups, or visudo -f " + file})
	}
	s.agents(parts["AGENTS"])
}

func (s *hostSweep) agents(list string) {
	seen := map[string]bool{}
	for _, f := range nonEmpty(list) {
		name := strings.ToLower(path.Base(f))
		for _, a := range agentNames {
			if strings.Contains(name, a) && !seen[name] {
				seen[name] = true
				unit := strings.TrimSuffix(path.Base(f), ".service")
				s.add(&hostFinding{Kind: "remote_access_agent", Object: f, Value: unit, Whose: "any",
					What:   fmt.Sprintf("a remote-access agent on %s: %s (%s): whoever runs its console gets in", s.c.t, unit, f),
					Remedy: fmt.Sprintf("If it is not the client's or the new provider's: ssh.service with name = %q (and remove_package)", unit)})
			}
		}
	}
}

func nonEmpty(s string) []string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.TrimSpace(l) != "" {
			out = append(out, l)
		}
	}
	return out
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

func (s *hostSweep) outputs() (map[string]cty.Value, string, sdk.Diagnostics, error) {
	all, removable := map[string]cty.Value{}, map[string]cty.Value{}
	var fps []string
	left := map[string][]*hostFinding{}
	for _, f := range s.found {
		all[f.id()] = cty.ObjectVal(map[string]cty.Value{
			"kind": cty.StringVal(f.Kind), "object": cty.StringVal(f.Object), "value": cty.StringVal(f.Value), "what": cty.StringVal(f.What),
			"whose": cty.StringVal(f.Whose), "removable": cty.BoolVal(f.Removable), "remedy": cty.StringVal(f.Remedy),
		})
		switch {
		case f.Removable && removableKinds[f.Kind]:
			removable[f.id()] = all[f.id()]
		case f.Removable:
			fps = append(fps, f.Value)
		default:
			left[f.Kind] = append(left[f.Kind], f)
		}
	}
	sort.Strings(fps)
	outs := map[string]cty.Value{"findings": cty.MapValEmpty(hostFindingType), "old_key_fingerprints": sdk.StringList(fps), "count": cty.NumberIntVal(int64(len(s.found)))}
	outs["removable"] = cty.MapValEmpty(hostFindingType)
	if len(all) > 0 {
		outs["findings"] = cty.MapVal(all)
	}
	if len(removable) > 0 {
		outs["removable"] = cty.MapVal(removable)
	}
	var kinds []string
	for k := range left {
		kinds = append(kinds, k)
	}
	sort.Strings(kinds)
	var warn sdk.Diagnostics
	for _, k := range kinds {
		fs := left[k]
		sort.Slice(fs, func(i, j int) bool { return fs[i].What < fs[j].What })
		items := make([][2]string, len(fs))
		for i, f := range fs {
			items[i] = [2]string{f.What, f.Remedy}
		}
		warn = append(warn, sdk.LeftForPersonList(fmt.Sprintf("Persistence sweep of %s: %d %s to review", s.c.t, len(fs), strings.ReplaceAll(k, "_", " ")), items))
	}
	return outs, fmt.Sprintf("%d findings on %s, %d of the old provider's keys and %d other items to remove", len(s.found), s.c.t, len(fps), len(removable)), warn, nil
}
