package ssh

import (
	"bytes"
	"context"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/zclconf/go-cty/cty"
	"golang.org/x/crypto/ssh"

	"github.com/switchover/switchover/plugins/sdk"
	"github.com/switchover/switchover/plugins/sdk/window"
)

// accessTarget is a vendor's way in to a host, open only in its windows:
// its key in the account's authorized_keys with expiry-time (sshd refuses
// it after the end by itself), and optionally a sudo rule with NOTBEFORE
// and NOTAFTER (sudo refuses it outside the window by itself).
type accessTarget struct {
	c        *conn
	user     string
	key      ssh.PublicKey
	keyLine  string // the key as given: TYPE BASE64 [COMMENT]
	commands []string
	runas    string
}

// sudoersFile is where a window's sudo rule lives (one per account).
func (t *accessTarget) sudoersFile() string {
	return "/etc/sudoers.d/switchover-access-" + strings.ReplaceAll(t.user, ".", "_") // sudo skips names with a dot
}

func (p *plugin) accessWindow() *sdk.Action {
	attrs := withHost(
		sdk.Attribute{Name: "account", Type: cty.String, Required: true, Description: "The vendor's account on the host (it must exist; it gets no password from switchover)."},
		sdk.Attribute{Name: "public_key", Type: cty.String, Required: true, Description: "The vendor's public key: TYPE BASE64 [COMMENT], as in authorized_keys, without options."},
		sdk.Attribute{Name: "sudo_commands", Type: cty.List(cty.String), Description: "Commands the vendor may run with sudo in the window (absolute paths with arguments); ALL is an admin right."},
		sdk.Attribute{Name: "sudo_runas", Type: cty.String, Description: "Whom the sudo commands run as (default root)."},
	)
	return window.Action("access_window", "an account on a host (its key with expiry-time, a sudo rule with NOTBEFORE/NOTAFTER)", attrs,
		func(ctx context.Context, a sdk.Values) (window.Target, error) {
			user := a.String("account")
			if !accountName.MatchString(user) {
				return nil, fmt.Errorf("account %q is not a plain account name", user)
			}
			if user == "root" || user == p.s.user {
				return nil, fmt.Errorf("refusing a vendor window for %s: switchover logs in as it, or it is root", user)
			}
			key, comment, opts, _, err := ssh.ParseAuthorizedKey([]byte(a.String("public_key")))
			if err != nil || len(opts) > 0 {
				return nil, fmt.Errorf("public_key: want TYPE BASE64 [COMMENT] without options (%v)", err)
			}
			line := strings.TrimSpace(key.Type() + " " + base64Key(key) + " " + comment)
			for _, cmd := range a.Strings("sudo_commands") {
				if strings.ContainsAny(cmd, "\n,:\\=") || (cmd != "ALL" && !strings.HasPrefix(cmd, "/")) {
					return nil, fmt.Errorf("sudo_commands: %q is not an absolute path with arguments (or ALL)", cmd)
				}
			}
			runas := a.String("sudo_runas")
			if runas == "" {
				runas = "root"
			}
			if !accountName.MatchString(runas) {
				return nil, fmt.Errorf("sudo_runas %q is not an account name", runas)
			}
			c, err := p.connect(ctx, a)
			if err != nil {
				return nil, err
			}
			return &accessTarget{c: c, user: user, key: key, keyLine: line, commands: a.Strings("sudo_commands"), runas: runas}, nil
		})
}

func base64Key(k ssh.PublicKey) string {
	f := strings.Fields(string(ssh.MarshalAuthorizedKey(k)))
	return f[1]
}

func (t *accessTarget) Describe() string { return fmt.Sprintf("%s on %s", t.user, t.c.t) }

// keyFile reads the account's authorized_keys ("" if it has none yet).
func (t *accessTarget) keyFile(ctx context.Context) (keyFile, error) {
	files, err := listKeyFiles(ctx, t.c, t.user)
	if err != nil {
		return keyFile{}, err
	}
	if len(files) == 0 {
		return keyFile{user: t.user}, nil
	}
	return files[0], nil
}

// ours: the line holds the vendor's key (with any options).
func (t *accessTarget) ours(kl keyLine) bool {
	return kl.key != nil && bytes.Equal(kl.key.Marshal(), t.key.Marshal())
}

var expiryOption = regexp.MustCompile(`(?i)expiry-time="(\d{12,14})Z?"`)

func (t *accessTarget) State(ctx context.Context) (window.Access, error) {
	f, err := t.keyFile(ctx)
	if err != nil {
		return window.Access{}, err
	}
	var acc window.Access
	for _, kl := range parseKeyLines(f.content) {
		if !t.ours(kl) {
			continue
		}
		acc.Open = true
		if m := expiryOption.FindStringSubmatch(kl.raw); m != nil {
			layout := "200601021504"
			if len(m[1]) == 14 {
				layout = "20060102150405"
			}
			acc.Until, _ = time.Parse(layout, m[1])
		}
	}
	r, err := t.c.run(ctx, "test -e "+shellQuote(t.sudoersFile()), nil)
	if err != nil {
		return acc, err
	}
	if r.exit == 0 {
		acc.Open = true // a rule left without the key is open too: closed with it
	}
	return acc, nil
}

func utcStamp(t time.Time) string { return t.UTC().Format("20060102150405") + "Z" }

// Open writes the sudo rule (its own end inside) and then the key line
// with expiry-time: each carries the window's end, so a kill between the
// two leaves nothing open without an end.
func (t *accessTarget) Open(ctx context.Context, w window.Window, _ sdk.Events) error {
	if len(t.commands) > 0 {
		rule := fmt.Sprintf("# switchover: vendor access window %q, approved by %s\n%s ALL=(%s) NOTBEFORE=%s NOTAFTER=%s NOPASSWD: %s\n",
			w.Name, strings.ReplaceAll(w.ApprovedBy, "\n", " "), t.user, t.runas, utcStamp(w.Start), utcStamp(w.End), strings.Join(t.commands, ", "))
		if err := installSudoers(ctx, t.c, t.sudoersFile(), rule); err != nil {
			return err
		}
	}
	if err := ensureKeyFile(ctx, t.c, t.user); err != nil {
		return err
	}
	f, err := t.keyFile(ctx)
	if err != nil {
		return err
	}
	lines := t.without(f.content)
	lines = append(lines, fmt.Sprintf(`expiry-time="%s" %s`, utcStamp(w.End), t.keyLine))
	return replaceFile(ctx, t.c, f.path, sha(f.content), strings.Join(lines, "\n")+"\n", false)
}

// without is the file's lines but the vendor's key.
func (t *accessTarget) without(content string) []string {
	var out []string
	for _, kl := range parseKeyLines(strings.TrimRight(content, "\n")) {
		if !t.ours(kl) && (kl.raw != "" || len(out) > 0) {
			out = append(out, kl.raw)
		}
	}
	for len(out) > 0 && out[len(out)-1] == "" {
		out = out[:len(out)-1]
	}
	return out
}

// Close removes the key line and the sudo rule, and ends the account's
// processes (its sessions).
func (t *accessTarget) Close(ctx context.Context) (string, error) {
	f, err := t.keyFile(ctx)
	if err != nil {
		return "", err
	}
	if f.path != "" {
		lines := t.without(f.content)
		content := strings.Join(lines, "\n")
		if len(lines) > 0 {
			content += "\n"
		}
		if content != f.content {
			if err := replaceFile(ctx, t.c, f.path, sha(f.content), content, false); err != nil {
				return "", err
			}
		}
	}
	script := "set -- " + shellQuote(t.sudoersFile()) + " " + shellQuote(t.user) + "\nrm -f -- \"$1\"\npkill -KILL -u \"$2\" || true"
	if _, err := t.c.runOK(ctx, "closing the window of "+t.user, script, nil); err != nil {
		return "", err
	}
	return "", nil
}

// AdminRights: sudo ALL in the window's rule, UID 0, or membership of a
// group that grants sudo.
func (t *accessTarget) AdminRights(ctx context.Context) (string, error) {
	for _, c := range t.commands {
		if c == "ALL" {
			return "sudo_commands holds ALL", nil
		}
	}
	r, err := t.c.run(ctx, "set -- "+shellQuote(t.user)+"\nid -u -- \"$1\" && id -nG -- \"$1\"", nil)
	if err != nil {
		return "", err
	}
	if r.exit != 0 {
		return "", sdk.NotFound("account %q on %s", t.user, t.c.t)
	}
	lines := strings.SplitN(strings.TrimSpace(string(r.stdout)), "\n", 2)
	if lines[0] == "0" {
		return "UID 0", nil
	}
	if len(lines) == 2 {
		for _, g := range strings.Fields(lines[1]) {
			switch g {
			case "sudo", "wheel", "admin", "root":
				return "member of group " + g, nil
			}
		}
	}
	return "", nil
}

// ensureKeyFile makes ~/.ssh (0700) and an empty authorized_keys (0600),
// owned by the account, when they are missing.
func ensureKeyFile(ctx context.Context, c *conn, user string) error {
	script := "set -e\nset -- " + shellQuote(user) + `
home=$(getent passwd "$1" | cut -d: -f6)
[ -n "$home" ] || { echo "no such account: $1" >&2; exit 2; }
[ -L "$home/.ssh" ] && { echo "$home/.ssh is a symbolic link" >&2; exit 4; }
if [ ! -d "$home/.ssh" ]; then mkdir -m 700 "$home/.ssh"; chown "$1": "$home/.ssh"; fi
if [ ! -e "$home/.ssh/authorized_keys" ]; then install -m 600 -o "$1" -g "$(id -g "$1")" /dev/null "$home/.ssh/authorized_keys"; fi`
	_, err := c.runOK(ctx, "preparing the authorized_keys of "+user, script, nil)
	return err
}

// installSudoers puts a sudoers.d file in place: staged, checked with
// visudo, renamed over (a kill leaves the old file or none), and the
// whole configuration checked again (else the file is removed).
func installSudoers(ctx context.Context, c *conn, path, content string) error {
	script := "set -e\nset -- " + shellQuote(path) + `
t=$(mktemp /etc/sudoers.d/.switchover.XXXXXX)
trap 'rm -f "$t"' EXIT
cat > "$t"
chmod 0440 "$t"
visudo -c -q -f "$t" >&2 || { echo "the rule does not pass visudo -c" >&2; exit 4; }
mv -f "$t" "$1"
trap - EXIT
visudo -c -q >&2 || { rm -f "$1"; echo "sudoers does not pass visudo -c with $1; removed it" >&2; exit 5; }`
	_, err := c.runOK(ctx, "installing "+path, script, []byte(content))
	return err
}
