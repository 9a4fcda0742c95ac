package ssh

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/zclconf/go-cty/cty"
	"golang.org/x/crypto/ssh"

	"github.com/switchover/switchover/plugins/sdk"
)

type shadowEntry struct {
	hash   string // the password field
	expire string // days since 1970-01-01, "" for never
}

func readShadow(ctx context.Context, c *conn, account string) (*shadowEntry, error) {
	r, err := c.run(ctx, "getent shadow -- "+shellQuote(account), nil)
	if err != nil {
		return nil, err
	}
	if r.exit == 2 {
		return nil, sdk.NotFound("account %q on %s", account, c.t)
	}
	if r.exit != 0 {
		return nil, fmt.Errorf("%s: reading the shadow entry of %s failed: %s", c.t, account, firstLine(string(r.stderr)))
	}
	return parseShadow(c, account, string(r.stdout))
}

func parseShadow(c *conn, account, line string) (*shadowEntry, error) {
	f := strings.Split(strings.TrimSpace(line), ":")
	if len(f) < 8 {
		return nil, fmt.Errorf("%s: no shadow entry for %s", c.t, account)
	}
	return &shadowEntry{hash: f[1], expire: f[7]}, nil
}

// sshdScript prints the effective sshd settings for the account.
func sshdScript(c *conn, account string) string {
	return fmt.Sprintf("sshd -T -f %s -C user=%s,host=localhost,addr=127.0.0.1 2>/dev/null", shellQuote(c.p.s.sshdConfig), shellQuote(account))
}

func parsePasswordLogin(out, account string) bool {
	vals := map[string]string{}
	for _, l := range strings.Split(out, "\n") {
		k, v, _ := strings.Cut(strings.TrimSpace(l), " ")
		vals[k] = v
	}
	if vals["passwordauthentication"] != "yes" {
		return false
	}
	return account != "root" || vals["permitrootlogin"] == "yes"
}

// rootPasswordLogins asks sshd (sshd -T) whether root may log in with a
// password: PermitRootLogin prohibit-password refuses it exactly like a
// wrong password. Asked once per host.
func rootPasswordLogins(ctx context.Context, c *conn) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.rootPw == nil {
		r, err := c.run(ctx, sshdScript(c, "root"), nil)
		allowed := err == nil && r.exit == 0 && parsePasswordLogin(string(r.stdout), "root")
		c.rootPw = &allowed
	}
	return *c.rootPw
}

// tryLogin makes a fresh connection as account with password. offered
// says whether the server takes passwords at all (when the login fails).
func tryLogin(ctx context.Context, c *conn, account, password string) (ok, offered bool, err error) {
	cl, jump, err := c.p.dial(ctx, c.t, &loginAs{user: account, methods: []ssh.AuthMethod{ssh.Password(password)}})
	var le *loginError
	if errors.As(err, &le) {
		return false, strings.Contains(le.msg, "password"), nil
	}
	if err != nil {
		return false, false, err
	}
	cl.Close()
	if jump != nil {
		jump.Close()
	}
	return true, true, nil
}

type passwordCheckpoint struct {
	Before string `json:"before,omitempty"` // SHA-256 of the shadow password field
	After  string `json:"after,omitempty"`
}

func (p *plugin) rotatePassword() *sdk.Action {
	plan := func(ctx context.Context, c *conn, a sdk.Values, cp []byte) *sdk.PlanResponse {
		acct := a.String("account")
		if !a.IsKnown("password") {
			if _, err := readShadow(ctx, c, acct); err != nil {
				return sdk.PlanError(err)
			}
			return sdk.Changef("set the password of %s on %s (to a new secret)", acct, c.t)
		}
		verifyLogin := !a.Has("verify_login") || a.Bool("verify_login")
		var ck passwordCheckpoint
		json.Unmarshal(cp, &ck)
		if verifyLogin {
			// The verification that counts: a fresh login with the password.
			ok, offered, err := tryLogin(ctx, c, acct, a.String("password"))
			if err != nil {
				return sdk.PlanError(err)
			}
			if ok {
				return sdk.NoChangef("%s on %s has this password: a fresh login with it works", acct, c.t)
			}
			// A refused login proves nothing where sshd does not take
			// passwords for this account (no password method; or root
			// with PermitRootLogin prohibit-password, which only sshd -T
			// tells): there the shadow entry decides.
			if offered && (acct != "root" || rootPasswordLogins(ctx, c)) {
				sh, err := readShadow(ctx, c, acct)
				if err != nil {
					return sdk.PlanError(err)
				}
				if ck.After != "" && ck.After == sha(sh.hash) {
					return sdk.Changef("the password of %s on %s was set, but a login with it is refused (is the account locked or expired?)", acct, c.t)
				}
				return sdk.Changef("set the password of %s on %s", acct, c.t)
			}
		}
		sh, err := readShadow(ctx, c, acct)
		if err != nil {
			return sdk.PlanError(err)
		}
		if ck.After != "" && ck.After == sha(sh.hash) {
			return sdk.NoChangef("%s on %s has the shadow entry this step set (checked by the shadow entry: sshd does not take password logins for it)", acct, c.t)
		}
		return sdk.Changef("set the password of %s on %s", acct, c.t)
	}
	apply := func(ctx context.Context, c *conn, a sdk.Values, ev sdk.Events, _ *sdk.ApplyRequest) *sdk.ApplyResponse {
		acct := a.String("account")
		// One command: the shadow entry before, chpasswd (the password goes
		// over stdin, never on a command line), the entry after.
		mark := "### switchover-" + nonce()
		script := "set -e\ngetent shadow \"$1\"\necho " + shellQuote(mark) + "\nchpasswd\ngetent shadow \"$1\""
		out, err := c.runOK(ctx, "chpasswd for "+acct, "set -- "+shellQuote(acct)+"\n"+script, []byte(acct+":"+a.String("password")+"\n"))
		if err != nil {
			return sdk.ApplyError(err)
		}
		b4, af, _ := strings.Cut(out, mark+"\n")
		before, err := parseShadow(c, acct, b4)
		if err != nil {
			return sdk.ApplyError(err)
		}
		after, err := parseShadow(c, acct, af)
		if err != nil {
			return sdk.ApplyError(err)
		}
		if after.hash == before.hash {
			return sdk.ApplyError(fmt.Errorf("%s: chpasswd left the shadow entry of %s unchanged", c.t, acct))
		}
		ck := passwordCheckpoint{Before: sha(before.hash), After: sha(after.hash)}
		b, _ := json.Marshal(ck)
		if err := ev.Checkpoint(ctx, b); err != nil {
			return sdk.ApplyError(err)
		}
		return &sdk.ApplyResponse{Summary: fmt.Sprintf("set the password of %s on %s", acct, c.t)}
	}
	return p.action("rotate_password",
		"Sets a local account's password (chpasswd as root) to a value switchover generated and stored, such as secret(\"root@web1\"). Verified with a fresh login with the new password where sshd allows password logins, else by the changed shadow entry.",
		[]sdk.Attribute{
			{Name: "account", Type: cty.String, Required: true, Description: "The local account."},
			{Name: "password", Type: cty.String, Required: true, Sensitive: true, Description: "The new password, normally secret(\"NAME\")."},
			{Name: "verify_login", Type: cty.Bool, Description: "Verify with a fresh password login where allowed (default true)."},
		}, nil, plan, apply)
}

// accountFacts is what lock_account checks.
type accountFacts struct {
	shell   string
	shadow  *shadowEntry
	keys    keyChange
	hasKeys bool
}

func nologin(shell string) bool {
	switch shell {
	case "/usr/sbin/nologin", "/sbin/nologin", "/bin/false", "/usr/bin/false":
		return true
	}
	return false
}

func today() int { return int(time.Now().Unix() / 86400) }

func readAccount(ctx context.Context, c *conn, acct string) (*accountFacts, error) {
	r, err := c.run(ctx, "getent passwd -- "+shellQuote(acct), nil)
	switch {
	case err != nil:
		return nil, err
	case r.exit == 2:
		return nil, sdk.NotFound("account %q on %s", acct, c.t)
	case r.exit != 0:
		return nil, fmt.Errorf("%s: reading the account %s failed: %s", c.t, acct, firstLine(strings.TrimSpace(string(r.stderr))))
	}
	out := string(r.stdout)
	f := strings.Split(strings.TrimSpace(out), ":")
	if len(f) < 7 {
		return nil, fmt.Errorf("%s: unexpected passwd entry for %s", c.t, acct)
	}
	sh, err := readShadow(ctx, c, acct)
	if err != nil {
		return nil, err
	}
	files, err := listKeyFiles(ctx, c, acct)
	if err != nil {
		return nil, err
	}
	af := &accountFacts{shell: f[6], shadow: sh}
	if ch := computeKeyChanges(files, &keyMatcher{all: true}); len(ch) > 0 {
		af.keys, af.hasKeys = ch[0], true
	}
	return af, nil
}

func (af *accountFacts) todo() []string {
	var out []string
	if !strings.HasPrefix(af.shadow.hash, "!") {
		out = append(out, "lock the password")
	}
	if e, err := strconv.Atoi(af.shadow.expire); err != nil || e > today() {
		out = append(out, "expire the account")
	}
	if !nologin(af.shell) {
		out = append(out, fmt.Sprintf("set the shell %s to nologin", af.shell))
	}
	if af.hasKeys {
		out = append(out, fmt.Sprintf("remove %d keys from %s", len(af.keys.removed), af.keys.file.path))
	}
	return out
}

func (p *plugin) lockAccount() *sdk.Action {
	check := func(c *conn, acct string) error {
		if acct == c.p.s.user {
			return fmt.Errorf("refusing to lock %s: switchover logs in to %s as that user", acct, c.t)
		}
		return nil
	}
	plan := func(ctx context.Context, c *conn, a sdk.Values, _ []byte) *sdk.PlanResponse {
		acct := a.String("account")
		if err := check(c, acct); err != nil {
			return sdk.PlanError(err)
		}
		af, err := readAccount(ctx, c, acct)
		if err != nil {
			return sdk.PlanError(err)
		}
		todo := af.todo()
		if len(todo) == 0 {
			return sdk.NoChangef("%s on %s is locked, expired, has no login shell and no keys", acct, c.t)
		}
		r := sdk.Changef("lock %s on %s: %s", acct, c.t, strings.Join(todo, ", "))
		if af.hasKeys {
			for _, kl := range af.keys.removed {
				r.Details = append(r.Details, "remove key "+describeKey(kl))
			}
		}
		return r
	}
	apply := func(ctx context.Context, c *conn, a sdk.Values, ev sdk.Events, _ *sdk.ApplyRequest) *sdk.ApplyResponse {
		acct := a.String("account")
		if err := check(c, acct); err != nil {
			return sdk.ApplyError(err)
		}
		script := `set -e
nl=$(command -v nologin || echo /usr/sbin/nologin)
usermod -L -e 1 -s "$nl" -- "$1"`
		if !a.Has("kill_sessions") || a.Bool("kill_sessions") {
			script += "\npkill -KILL -u \"$1\" || true"
		}
		if _, err := c.runOK(ctx, "locking "+acct, "set -- "+shellQuote(acct)+"\n"+script, nil); err != nil {
			return sdk.ApplyError(err)
		}
		af, err := readAccount(ctx, c, acct)
		if err != nil {
			return sdk.ApplyError(err)
		}
		if af.hasKeys {
			// Replaced only if it still holds what was read (compare and swap).
			if err := replaceFile(ctx, c, af.keys.file.path, sha(af.keys.file.content), af.keys.newContent, false); err != nil {
				return sdk.ApplyError(err)
			}
		}
		return &sdk.ApplyResponse{Summary: fmt.Sprintf("locked %s on %s", acct, c.t)}
	}
	return goneIsDone(p.action("lock_account",
		"Locks a local account so that neither a password nor a key logs in: locks the password, expires the account (with PAM a locked password alone does not stop a key login), sets a no-login shell, removes its keys and ends its sessions.",
		[]sdk.Attribute{
			{Name: "account", Type: cty.String, Required: true, Description: "The local account, such as the old provider's."},
			{Name: "kill_sessions", Type: cty.Bool, Description: "End the account's running processes and sessions (default true)."},
		}, nil, plan, apply))
}

// goneIsDone marks an action that locks or removes: an account (or its
// files) that is not there is done.
func goneIsDone(a *sdk.Action) *sdk.Action {
	a.GoneIsDone = true
	return a
}
