package cli

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"

	"github.com/switchover/switchover/internal/sshlab"
)

func TestSSHJumpHostPassphraseAndAgent(t *testing.T) {
	lab := sshlab.Start(t, sshlab.Options{Hosts: 2})
	jump, target := lab.Hosts[0], lab.Hosts[1]
	// A passphrase-protected copy of the admin key.
	enc := filepath.Join(t.TempDir(), "admin_enc")
	b, _ := os.ReadFile(lab.AdminKeyFile)
	os.WriteFile(enc, b, 0o600)
	if out, err := exec.Command("ssh-keygen", "-p", "-q", "-P", "", "-N", "correct horse", "-f", enc).CombinedOutput(); err != nil {
		t.Fatalf("ssh-keygen: %v %s", err, out)
	}
	body := fmt.Sprintf(`
plugin "ssh" {
  host             = "127.0.0.1"
  port             = %d
  private_key_file = %q
  passphrase       = "correct horse"
  known_hosts      = %q
  jump_host        = "root@127.0.0.1:%d"
}
step "ssh.inventory" "via_jump" {}
step "core.assert" "is_target" {
  condition = step.via_jump.outputs.hostname == %q
  message   = "the inventory came from ${step.via_jump.outputs.hostname}"
}
`, target.Port, enc, lab.KnownHosts, jump.Port, target.Name)
	mustApply(t, newFixture(t, body))
	// Without the passphrase: a clear error.
	code, out := newFixture(t, strings.Replace(body, `passphrase       = "correct horse"`, "", 1)).apply()
	if code != ExitError || !strings.Contains(out, "is encrypted: set passphrase") {
		t.Fatalf("missing passphrase: %d\n%s", code, out)
	}
	// The key from an ssh-agent.
	agent := exec.Command("ssh-agent", "-D", "-a", filepath.Join(t.TempDir(), "agent.sock"))
	sock := agent.Args[3]
	if err := agent.Start(); err != nil {
		t.Fatal(err)
	}
	defer agent.Process.Kill()
	for i := 0; i < 100; i++ {
		if _, err := os.Stat(sock); err == nil {
			break
		}
		exec.Command("sleep", "0.02").Run()
	}
	add := exec.Command("ssh-add", lab.AdminKeyFile)
	add.Env = append(os.Environ(), "SSH_AUTH_SOCK="+sock)
	if out, err := add.CombinedOutput(); err != nil {
		t.Fatalf("ssh-add: %v %s", err, out)
	}
	t.Setenv("SSH_AUTH_SOCK", sock)
	defer func() {
		// With the jump host down, the target is out of reach, and the
		// error says it was the jump host.
		jump.Stop()
		code, out := newFixture(t, body).apply()
		if code != ExitError || !strings.Contains(out, fmt.Sprintf("jump host 127.0.0.1:%d: cannot reach 127.0.0.1:%d", jump.Port, jump.Port)) {
			t.Fatalf("jump host down: %d\n%s", code, out)
		}
	}()
	mustApply(t, newFixture(t, fmt.Sprintf(`
plugin "ssh" {
  host        = "127.0.0.1"
  port        = %d
  use_agent   = true
  known_hosts = %q
}
step "ssh.inventory" "via_agent" {}
`, target.Port, lab.KnownHosts)))
}

// Where sshd takes no passwords, a rotation is verified by the shadow
// entry, and the new password is still what the store holds.
func TestSSHRotateWithoutPasswordLogins(t *testing.T) {
	lab := sshlab.Start(t, sshlab.Options{Hosts: 1, NoPasswordAuth: true})
	h := lab.Hosts[0]
	f := sshRunbook(t, lab, "", `
step "ssh.rotate_password" "root" {
  port     = var.hosts.host01
  account  = "root"
  password = secret("root")
}
`)
	out := mustApply(t, f)
	if !strings.Contains(out, "step.root: done") {
		t.Fatalf("apply:\n%s", out)
	}
	if login(t, h, "root", ssh.Password(secretValue(t, f.dir, "root"))) {
		t.Fatal("a password login worked although sshd takes none")
	}
	// Check the new hash against the stored password with the host's own
	// tools: the shadow entry verifies it.
	pw := secretValue(t, f.dir, "root")
	hash := strings.TrimSpace(h.MustRun(t, "getent shadow root | cut -d: -f2"))
	q := func(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }
	check := fmt.Sprintf(`perl -e 'print crypt($ARGV[0], $ARGV[1]) eq $ARGV[1] ? "True\n" : "False\n"' %s %s`, q(pw), q(hash))
	if got := strings.TrimSpace(h.MustRun(t, check)); got != "True" {
		t.Fatalf("the shadow entry does not match the stored password (%q)", got)
	}
}
