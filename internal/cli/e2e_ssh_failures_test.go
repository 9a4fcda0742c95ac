package cli

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"

	"github.com/switchover/switchover/internal/audit"
	"github.com/switchover/switchover/internal/state"
	"github.com/switchover/switchover/internal/testing/sshlab"
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

func TestSSHUnknownHostKeyAndTrustOnFirstUse(t *testing.T) {
	t.Parallel()
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

func TestSSHContinueOverAFleetWithOneHostDown(t *testing.T) {
	t.Parallel()
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
		if s.Status != state.Done || sshlab.LoginWorks(t, h, "root", sshlab.KeyAuth(t, lab.OldMSPKeyFile)) {
			t.Fatalf("%s: %+v, or the old key still logs in", h.Name, s)
		}
	}
	if s := st["step.after_all"]; s == nil || s.Status != state.Skipped {
		t.Fatalf("after_all: %+v", s)
	}
}
