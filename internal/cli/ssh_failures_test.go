package cli

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"

	"github.com/switchover/switchover/internal/audit"
	"github.com/switchover/switchover/internal/sshlab"
	"github.com/switchover/switchover/internal/state"
	"github.com/switchover/switchover/internal/workspace"
)

const dropKeys = `
step "ssh.authorized_keys" "drop" {
  for_each   = var.hosts
  port       = each.value
  user       = "root"
  remove     = { comment_matches = "oldmsp" }
  on_failure = continue
}
`

func rootKeys(t *testing.T, h *sshlab.Host) string {
	return h.MustRun(t, "cat /root/.ssh/authorized_keys")
}

func TestSSHWrongHostKeyIsRefusedAndNothingChanges(t *testing.T) {
	lab := sshlab.Start(t, sshlab.Options{Hosts: 1})
	h := lab.Hosts[0]
	_, other, _ := ed25519.GenerateKey(rand.Reader)
	signer, _ := ssh.NewSignerFromKey(other)
	os.WriteFile(lab.KnownHosts, []byte(fmt.Sprintf("[127.0.0.1]:%d %s", h.Port, ssh.MarshalAuthorizedKey(signer.PublicKey()))), 0o600)
	before := rootKeys(t, h)
	f := sshRunbook(t, lab, "", dropKeys)
	code, out := f.apply()
	if code != ExitError || !strings.Contains(out, "the host key of 127.0.0.1:"+fmt.Sprint(h.Port)+" CHANGED") ||
		!strings.Contains(out, ssh.FingerprintSHA256(h.HostKey)) || !strings.Contains(out, ssh.FingerprintSHA256(signer.PublicKey())) {
		t.Fatalf("exit %d\n%s", code, out)
	}
	if strings.Contains(out, "goroutine") || rootKeys(t, h) != before {
		t.Fatal("a stack trace, or the host changed")
	}
}

func TestSSHUnknownHostKeyAndTrustOnFirstUse(t *testing.T) {
	lab := sshlab.Start(t, sshlab.Options{Hosts: 1})
	h := lab.Hosts[0]
	os.WriteFile(lab.KnownHosts, nil, 0o600)
	f := sshRunbook(t, lab, "", dropKeys)
	code, out := f.apply()
	if code != ExitError || !strings.Contains(out, "is unknown (ssh-ed25519 "+ssh.FingerprintSHA256(h.HostKey)+")") || !strings.Contains(out, "trust_on_first_use") {
		t.Fatalf("without trust_on_first_use: exit %d\n%s", code, out)
	}
	f = sshRunbook(t, lab, "trust_on_first_use = true", dropKeys)
	mustApply(t, f)
	kh, _ := os.ReadFile(lab.KnownHosts)
	if !strings.Contains(string(kh), strings.TrimSpace(string(ssh.MarshalAuthorizedKey(h.HostKey)))) {
		t.Fatalf("known_hosts was not updated: %s", kh)
	}
	data, _ := os.ReadFile(filepath.Join(workspace.Path(f.dir), audit.FileName))
	if !strings.Contains(string(data), `"event":"plugin_warning"`) || !strings.Contains(string(data), "trusted the host key of 127.0.0.1:") || !strings.Contains(string(data), ssh.FingerprintSHA256(h.HostKey)) {
		t.Fatalf("the audit trail does not record the trusted key:\n%s", data)
	}
	// A standalone plan of a runbook never applied that trusts a key
	// records it too.
	os.WriteFile(lab.KnownHosts, nil, 0o600)
	f = sshRunbook(t, lab, "trust_on_first_use = true", dropKeys)
	if code, out, errs := f.run("plan", f.dir); code != ExitOK {
		t.Fatalf("plan: %d\n%s%s", code, out, errs)
	}
	data, _ = os.ReadFile(filepath.Join(workspace.Path(f.dir), audit.FileName))
	if !strings.Contains(string(data), "trusted the host key of 127.0.0.1:") {
		t.Fatalf("a plan's trusted key is not in the audit trail:\n%s", data)
	}
}

func TestSSHRefusedLoginUnreachableHostAndWrongSudoPassword(t *testing.T) {
	lab := sshlab.Start(t, sshlab.Options{Hosts: 1})
	h := lab.Hosts[0]
	// A key the host does not know.
	stranger := filepath.Join(t.TempDir(), "stranger")
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	block, _ := ssh.MarshalPrivateKey(priv, "")
	os.WriteFile(stranger, pemEncode(block), 0o600)
	f := newFixture(t, fmt.Sprintf(`
plugin "ssh" {
  host             = "127.0.0.1"
  port             = %d
  private_key_file = %q
  known_hosts      = %q
}
step "ssh.inventory" "x" {}
`, h.Port, stranger, lab.KnownHosts))
	code, out := f.apply()
	if code != ExitError || !strings.Contains(out, fmt.Sprintf("login refused: root@127.0.0.1:%d did not accept the publickey credentials", h.Port)) {
		t.Fatalf("refused login: %d\n%s", code, out)
	}
	// Nothing listens on this port.
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	f = sshRunbook(t, lab, "", fmt.Sprintf(`step "ssh.inventory" "x" { port = %d }`, port))
	code, out = f.apply()
	if code != ExitError || !strings.Contains(out, fmt.Sprintf("cannot reach 127.0.0.1:%d: connection refused", port)) {
		t.Fatalf("unreachable: %d\n%s", code, out)
	}
	// alice may use sudo with her password; a wrong one is refused, and the
	// new password never reaches sudo as a password attempt.
	f = newFixture(t, fmt.Sprintf(`
plugin "ssh" {
  host          = "127.0.0.1"
  port          = %d
  user          = "alice"
  password      = %q
  sudo_password = "not-her-password"
  known_hosts   = %q
}
step "ssh.rotate_password" "root" {
  account  = "root"
  password = secret("root")
}
`, h.Port, sshlab.AlicePassword, lab.KnownHosts))
	before := h.MustRun(t, "getent shadow root")
	code, out = f.apply()
	if code != ExitError || !strings.Contains(out, "sudo refused the password of alice") {
		t.Fatalf("wrong sudo password: %d\n%s", code, out)
	}
	if h.MustRun(t, "getent shadow root") != before {
		t.Fatal("root's password changed")
	}
	// With the right one it works.
	f = newFixture(t, fmt.Sprintf(`
plugin "ssh" {
  host          = "127.0.0.1"
  port          = %d
  user          = "alice"
  password      = %q
  sudo_password = %q
  known_hosts   = %q
}
step "ssh.rotate_password" "root" {
  account  = "root"
  password = secret("root")
}
`, h.Port, sshlab.AlicePassword, sshlab.AlicePassword, lab.KnownHosts))
	mustApply(t, f)
	if !login(t, h, "root", ssh.Password(secretValue(t, f.dir, "root"))) {
		t.Fatal("root cannot log in with the new password set through sudo")
	}
}

func TestSSHContinueOverAFleetWithOneHostDown(t *testing.T) {
	lab := sshlab.Start(t, sshlab.Options{Hosts: 3})
	down := lab.Hosts[1]
	f := sshRunbook(t, lab, `connect_timeout = "3s"`, dropKeys+`
step "core.noop" "after_all" {
  depends_on = [step.drop]
}
`)
	down.Stop()
	code, out := f.apply()
	if code != ExitError {
		t.Fatalf("exit %d\n%s", code, out)
	}
	st := f.states()
	for _, h := range lab.Hosts {
		s := st[fmt.Sprintf(`step.drop["%s"]`, h.Name)]
		if h == down {
			if s.Status != state.Failed || !strings.Contains(s.Error, fmt.Sprintf("cannot reach 127.0.0.1:%d: connection refused", h.Port)) {
				t.Fatalf("%s: %+v", h.Name, s)
			}
			continue
		}
		if s.Status != state.Done || login(t, h, "root", keyAuth(t, lab.OldMSPKeyFile)) {
			t.Fatalf("%s: %+v, or the old key still logs in", h.Name, s)
		}
	}
	if s := st["step.after_all"]; s == nil || s.Status != state.Skipped {
		t.Fatalf("after_all: %+v", s)
	}
}

func pemEncode(b *pem.Block) []byte { return pem.EncodeToMemory(b) }
