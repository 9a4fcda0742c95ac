package ssh

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/zclconf/go-cty/cty"
	"golang.org/x/crypto/ssh"

	"github.com/switchover/switchover/internal/testing/sshlab"
	"github.com/switchover/switchover/plugins/sdk"
)

// The actions against real sshd hosts, as a user checks them: the key no
// longer logs in, the new password does, sudo says the grant is gone. The
// runbook-level runs (resume after a kill, drift, a fleet with a host down)
// are in internal/cli.

func str(s string) cty.Value { return cty.StringVal(s) }

func TestAuthorizedKeysRemovesTheOldProvidersKeysOnly(t *testing.T) {
	ctx := context.Background()
	h := lab.Hosts[hostKeys]
	// Something unrelated in root's file that must survive.
	h.MustRun(t, `printf '# managed by hand\n' >> /root/.ssh/authorized_keys`)
	hs := harness(t, h, 0, nil)
	attrs := map[string]cty.Value{"all_users": cty.True, "remove": cty.ObjectVal(map[string]cty.Value{"comment_matches": str("^oldmsp@")})}
	p, err := hs.Plan(ctx, "authorized_keys", attrs, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := "remove 1 of 2 keys from /root/.ssh/authorized_keys: oldmsp@lab (ssh-ed25519 " + ssh.FingerprintSHA256(lab.OldMSPPub) + ")"
	if p.Kind != sdk.Change || !strings.HasPrefix(p.Summary, "remove 2 keys from 2 authorized_keys files on 127.0.0.1:") || !strings.Contains(strings.Join(p.Details, "\n"), want) {
		t.Fatalf("plan: %v %q %q", p.Kind, p.Summary, p.Details)
	}
	if !sshlab.LoginWorks(t, h, "root", sshlab.KeyAuth(t, lab.OldMSPKeyFile)) {
		t.Fatal("the plan removed a key")
	}
	if _, err := hs.Run(ctx, "authorized_keys", attrs); err != nil {
		t.Fatal(err)
	}
	if sshlab.LoginWorks(t, h, "root", sshlab.KeyAuth(t, lab.OldMSPKeyFile)) || sshlab.LoginWorks(t, h, "oldmsp", sshlab.KeyAuth(t, lab.OldMSPKeyFile)) {
		t.Fatal("the old provider's key still logs in")
	}
	if !adminLogsIn(t, h) {
		t.Fatal("the admin key was removed too")
	}
	got := h.MustRun(t, `stat -c '%U %a' /root/.ssh/authorized_keys /home/oldmsp/.ssh/authorized_keys; grep -c 'managed by hand' /root/.ssh/authorized_keys`)
	if got != "root 600\noldmsp 600\n1\n" {
		t.Fatalf("owner, mode or unrelated lines changed: %q", got)
	}
	if p, err := hs.Plan(ctx, "authorized_keys", attrs, nil); err != nil || p.Kind != sdk.NoChange {
		t.Fatalf("second plan: %+v, %v", p, err)
	}
}

func TestAuthorizedKeysKeepOnly(t *testing.T) {
	h := lab.Hosts[hostKeep]
	adminPub, _ := os.ReadFile(lab.AdminKeyFile + ".pub")
	attrs := map[string]cty.Value{"user": str("root"), "keep_only": cty.ListVal([]cty.Value{str(strings.TrimSpace(string(adminPub)))})}
	if _, err := harness(t, h, 0, nil).Run(context.Background(), "authorized_keys", attrs); err != nil {
		t.Fatal(err)
	}
	if sshlab.LoginWorks(t, h, "root", sshlab.KeyAuth(t, lab.OldMSPKeyFile)) || !adminLogsIn(t, h) {
		t.Fatal("keep_only did not keep exactly the admin key")
	}
	if got := strings.Count(h.MustRun(t, "cat /root/.ssh/authorized_keys"), "ssh-ed25519"); got != 1 {
		t.Fatalf("%d keys left, want 1", got)
	}
}

func TestRotatePasswordsAndLockAccount(t *testing.T) {
	ctx := context.Background()
	h := lab.Hosts[hostRotate]
	hs := harness(t, h, 0, nil)
	newPw := map[string]string{"root": "Rotated-Root-Pw-28-characters", "alice": "Rotated-Alice-Pw-1"}
	for acct, pw := range newPw {
		if _, err := hs.Run(ctx, "rotate_password", map[string]cty.Value{"account": str(acct), "password": str(pw)}); err != nil {
			t.Fatalf("%s: %v", acct, err)
		}
	}
	if _, err := hs.Run(ctx, "lock_account", map[string]cty.Value{"account": str("oldmsp")}); err != nil {
		t.Fatal(err)
	}
	// The verification logged in with the new passwords (before the
	// test's own logins below).
	authLog, _ := os.ReadFile(filepath.Join(h.Dir, "sshd.log"))
	for acct := range newPw {
		if !strings.Contains(string(authLog), "Accepted password for "+acct+" ") {
			t.Fatalf("no password login of %s in the sshd log: the step was not verified by a login", acct)
		}
	}
	for acct, pw := range newPw {
		if !sshlab.LoginWorks(t, h, acct, ssh.Password(pw)) {
			t.Fatalf("%s cannot log in with the new password", acct)
		}
	}
	if sshlab.LoginWorks(t, h, "root", ssh.Password(sshlab.RootPassword)) || sshlab.LoginWorks(t, h, "alice", ssh.Password(sshlab.AlicePassword)) {
		t.Fatal("an old password still logs in")
	}
	if sshlab.LoginWorks(t, h, "oldmsp", ssh.Password(sshlab.OldMSPPassword)) || sshlab.LoginWorks(t, h, "oldmsp", sshlab.KeyAuth(t, lab.OldMSPKeyFile)) {
		t.Fatal("the locked account still logs in")
	}
	got := h.MustRun(t, `getent shadow oldmsp | cut -d: -f2 | cut -c1; getent shadow oldmsp | cut -d: -f8; getent passwd oldmsp | cut -d: -f7`)
	if got != "!\n1\n/usr/sbin/nologin\n" {
		t.Fatalf("oldmsp is not locked, expired and without a shell: %q", got)
	}
	// Nothing left to do, and looking changes nothing.
	before := h.MustRun(t, "getent shadow root")
	for acct, pw := range newPw {
		if p, err := hs.Plan(ctx, "rotate_password", map[string]cty.Value{"account": str(acct), "password": str(pw)}, nil); err != nil || p.Kind != sdk.NoChange {
			t.Fatalf("second plan of %s: %+v, %v", acct, p, err)
		}
	}
	if h.MustRun(t, "getent shadow root") != before {
		t.Fatal("a plan changed the shadow entry")
	}
}

// Where sshd takes no passwords, a rotation is verified by the shadow
// entry, which the host's own crypt() must match with the new password.
func TestRotateWithoutPasswordLogins(t *testing.T) {
	nopw := sshlab.Start(t, sshlab.Options{Hosts: 1, NoPasswordAuth: true})
	h := nopw.Hosts[0]
	hs, err := configuredIn(t, nopw, h, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	pw := "Rotated-Without-Login-1"
	if _, err := hs.Run(context.Background(), "rotate_password", map[string]cty.Value{"account": str("root"), "password": str(pw)}); err != nil {
		t.Fatal(err)
	}
	if sshlab.LoginWorks(t, h, "root", ssh.Password(pw)) {
		t.Fatal("a password login worked although sshd takes none")
	}
	hash := strings.TrimSpace(h.MustRun(t, "getent shadow root | cut -d: -f2"))
	q := func(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }
	check := fmt.Sprintf(`perl -e 'print crypt($ARGV[0], $ARGV[1]) eq $ARGV[1] ? "True\n" : "False\n"' %s %s`, q(pw), q(hash))
	if got := strings.TrimSpace(h.MustRun(t, check)); got != "True" {
		t.Fatalf("the shadow entry does not match the new password (%q)", got)
	}
}

// systemd cannot run inside the lab's namespaces, so this test puts a
// stand-in systemctl (state in files under /etc/systemd-standin) first in
// the host's PATH. It checks the action's plan, apply, verify and the
// second plan against that stand-in; not against systemd.
const standinSystemctl = `#!/bin/sh
d=/etc/systemd-standin; mkdir -p $d
args=""; for a in "$@"; do case "$a" in --quiet|--) ;; *) args="$args $a" ;; esac; done
set -- $args
case "$1" in
  is-active)  [ -e $d/$2.active ] ;;
  is-enabled) [ -e $d/$2.enabled ] ;;
  disable)    [ "$2" = "--now" ] && { rm -f $d/$3.active $d/$3.enabled; echo "$3" >> $d/log; } ;;
  *) exit 1 ;;
esac
`

func TestServiceAgainstAStandInSystemctl(t *testing.T) {
	ctx := context.Background()
	h := lab.Hosts[hostService]
	h.MustRun(t, "cat > /usr/local/sbin/systemctl <<'EOF'\n"+standinSystemctl+"EOF\nchmod 755 /usr/local/sbin/systemctl && mkdir -p /etc/systemd-standin && touch /etc/systemd-standin/rmm-agent.active /etc/systemd-standin/rmm-agent.enabled")
	hs := harness(t, h, 0, nil)
	attrs := map[string]cty.Value{"name": str("rmm-agent")}
	p, err := hs.Plan(ctx, "service", attrs, nil)
	if err != nil || p.Kind != sdk.Change || !strings.Contains(p.Summary, "stop, disable rmm-agent on 127.0.0.1:") {
		t.Fatalf("plan: %+v, %v", p, err)
	}
	if _, err := hs.Run(ctx, "service", attrs); err != nil {
		t.Fatal(err)
	}
	if got := h.MustRun(t, "ls /etc/systemd-standin; cat /etc/systemd-standin/log"); got != "log\nrmm-agent\n" {
		t.Fatalf("stand-in state: %q", got)
	}
	if p, err := hs.Plan(ctx, "service", attrs, nil); err != nil || p.Kind != sdk.NoChange {
		t.Fatalf("second plan: %+v, %v", p, err)
	}
}

func TestJumpHostPassphraseAndAgent(t *testing.T) {
	ctx := context.Background()
	jump, target := lab.Hosts[hostJump], lab.Hosts[hostTarget]
	// A passphrase-protected copy of the admin key.
	enc := filepath.Join(t.TempDir(), "admin_enc")
	b, _ := os.ReadFile(lab.AdminKeyFile)
	os.WriteFile(enc, b, 0o600)
	if out, err := exec.Command("ssh-keygen", "-p", "-q", "-P", "", "-N", "correct horse", "-f", enc).CombinedOutput(); err != nil {
		t.Fatalf("ssh-keygen: %v %s", err, out)
	}
	viaJump := map[string]cty.Value{"private_key_file": str(enc), "passphrase": str("correct horse"), "jump_host": str(fmt.Sprintf("root@127.0.0.1:%d", jump.Port))}
	r, err := harness(t, target, 0, viaJump).Run(ctx, "inventory", nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := r.Outputs["hostname"]; got.IsNull() || got.AsString() != target.Name {
		t.Fatalf("the inventory came from %#v, not %s", got, target.Name)
	}
	// Without the passphrase: a clear error, at Configure or at the first call.
	noPass := map[string]cty.Value{"private_key_file": str(enc)}
	hs, err := configured(t, target, 0, noPass)
	if err == nil {
		_, err = hs.Plan(ctx, "inventory", nil, nil)
	}
	if err == nil || !strings.Contains(err.Error(), "is encrypted: set passphrase") {
		t.Fatalf("missing passphrase: %v", err)
	}
	// The key from an ssh-agent.
	sock := filepath.Join(t.TempDir(), "agent.sock")
	agent := exec.Command("ssh-agent", "-D", "-a", sock)
	if err := agent.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { agent.Process.Kill(); agent.Wait() }()
	for i := 0; i < 250; i++ {
		if _, err := os.Stat(sock); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	add := exec.Command("ssh-add", lab.AdminKeyFile)
	add.Env = append(os.Environ(), "SSH_AUTH_SOCK="+sock)
	if out, err := add.CombinedOutput(); err != nil {
		t.Fatalf("ssh-add: %v %s", err, out)
	}
	t.Setenv("SSH_AUTH_SOCK", sock)
	if _, err := harness(t, target, 0, map[string]cty.Value{"private_key_file": cty.NullVal(cty.String), "use_agent": cty.True}).Run(ctx, "inventory", nil); err != nil {
		t.Fatalf("with the agent: %v", err)
	}
	// With the jump host down the target is out of reach, and the error
	// says it was the jump host.
	jump.Stop()
	_, err = harness(t, target, 0, viaJump).Plan(ctx, "inventory", nil, nil)
	if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("jump host 127.0.0.1:%d: cannot reach 127.0.0.1:%d", jump.Port, jump.Port)) {
		t.Fatalf("jump host down: %v", err)
	}
}

// A changed host key, a refused login, a host nobody listens on and a wrong
// sudo password: each is one sentence that says which, and nothing changes.
func TestRefusalsAreOneSentenceAndChangeNothing(t *testing.T) {
	ctx := context.Background()
	h := lab.Hosts[hostAuth]
	before := h.MustRun(t, "cat /root/.ssh/authorized_keys; getent shadow root")
	drop := map[string]cty.Value{"user": str("root"), "remove": cty.ObjectVal(map[string]cty.Value{"comment_matches": str("oldmsp")})}

	// The host key in known_hosts is another one.
	_, other, _ := ed25519.GenerateKey(rand.Reader)
	signer, _ := ssh.NewSignerFromKey(other)
	kh := filepath.Join(t.TempDir(), "known_hosts")
	os.WriteFile(kh, []byte(fmt.Sprintf("[127.0.0.1]:%d %s", h.Port, ssh.MarshalAuthorizedKey(signer.PublicKey()))), 0o600)
	_, err := harness(t, h, 0, map[string]cty.Value{"known_hosts": str(kh)}).Plan(ctx, "authorized_keys", drop, nil)
	if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("the host key of 127.0.0.1:%d CHANGED", h.Port)) ||
		!strings.Contains(err.Error(), ssh.FingerprintSHA256(h.HostKey)) || !strings.Contains(err.Error(), ssh.FingerprintSHA256(signer.PublicKey())) {
		t.Fatalf("changed host key: %v", err)
	}

	// A key the host does not know.
	stranger := filepath.Join(t.TempDir(), "stranger")
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	block, _ := ssh.MarshalPrivateKey(priv, "")
	os.WriteFile(stranger, pem.EncodeToMemory(block), 0o600)
	_, err = harness(t, h, 0, map[string]cty.Value{"private_key_file": str(stranger)}).Plan(ctx, "inventory", nil, nil)
	if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("login refused: root@127.0.0.1:%d did not accept the publickey credentials", h.Port)) {
		t.Fatalf("refused login: %v", err)
	}

	// Nothing listens on this port.
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	_, err = harness(t, h, 0, map[string]cty.Value{"port": cty.NumberIntVal(int64(port))}).Plan(ctx, "inventory", nil, nil)
	if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("cannot reach 127.0.0.1:%d: connection refused", port)) {
		t.Fatalf("unreachable: %v", err)
	}
	if strings.Contains(err.Error(), "goroutine ") || strings.Contains(err.Error(), "\n") {
		t.Fatalf("not one line: %q", err)
	}

	// alice may use sudo with her password; a wrong one is refused, and
	// the new password never reaches sudo as a password attempt.
	asAlice := func(sudoPw string) map[string]cty.Value {
		return map[string]cty.Value{"user": str("alice"), "password": str(sshlab.AlicePassword), "sudo_password": str(sudoPw), "private_key_file": cty.NullVal(cty.String)}
	}
	rotate := map[string]cty.Value{"account": str("root"), "password": str("Set-Through-Sudo-1")}
	_, err = harness(t, h, 0, asAlice("not-her-password")).Run(ctx, "rotate_password", rotate)
	if err == nil || !strings.Contains(err.Error(), "sudo refused the password of alice") {
		t.Fatalf("wrong sudo password: %v", err)
	}
	if h.MustRun(t, "cat /root/.ssh/authorized_keys; getent shadow root") != before {
		t.Fatal("a refused run changed the host")
	}
	// With the right one it works.
	if _, err := harness(t, h, 0, asAlice(sshlab.AlicePassword)).Run(ctx, "rotate_password", rotate); err != nil {
		t.Fatal(err)
	}
	if !sshlab.LoginWorks(t, h, "root", ssh.Password("Set-Through-Sudo-1")) {
		t.Fatal("root cannot log in with the new password set through sudo")
	}
}

// An account that is not on the host: locking it or removing its keys is
// done (already gone); rotating its password, or exporting a path that is
// not there, is one line naming it.
func TestMissingAccountIsGone(t *testing.T) {
	ctx := context.Background()
	hs := harness(t, lab.Hosts[hostRotate], 0, nil)
	for action, set := range map[string]map[string]cty.Value{
		"lock_account":    {"account": str("nosuch-oldmsp")},
		"authorized_keys": {"user": str("nosuch-oldmsp"), "remove": cty.ObjectVal(map[string]cty.Value{"comment_matches": str("oldmsp")})},
	} {
		p, err := hs.Plan(ctx, action, set, nil)
		if err != nil || p.Kind != sdk.NoChange || !strings.Contains(p.Summary, `already gone: account "nosuch-oldmsp"`) {
			t.Errorf("%s of a missing account: %v %v", action, p, err)
		}
	}
	_, err := hs.Plan(ctx, "rotate_password", map[string]cty.Value{"account": str("nosuch-oldmsp"), "password": str("Some-New-Pw-123")}, nil)
	if err == nil || !strings.Contains(err.Error(), `account "nosuch-oldmsp"`) || !strings.Contains(err.Error(), "does not exist") {
		t.Fatalf("rotate_password of a missing account: %v", err)
	}
	// A file to export that is not there: one line naming it.
	_, err = hs.Plan(ctx, "export", map[string]cty.Value{"paths": cty.ListVal([]cty.Value{str("/srv/no-such-dir")}), "destination": str(t.TempDir())}, nil)
	if err == nil || !strings.Contains(err.Error(), "/srv/no-such-dir (to export) does not exist") || strings.Contains(err.Error(), "\n") {
		t.Fatalf("export of a missing path: %v", err)
	}
}
