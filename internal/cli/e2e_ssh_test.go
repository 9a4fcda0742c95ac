package cli

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/switchover/switchover/internal/secrets"
	"github.com/switchover/switchover/internal/state"
	"github.com/switchover/switchover/internal/testing/sshlab"
	"github.com/switchover/switchover/internal/workspace"
)

// sshRunbook is a runbook whose ssh plugin logs in to the lab as root with
// the admin key; hosts is a map name => "127.0.0.1" / port pairs.
func sshRunbook(t *testing.T, lab *sshlab.Lab, pluginExtra, body string) *fixture {
	t.Helper()
	var hosts []string
	for _, h := range lab.Hosts {
		hosts = append(hosts, fmt.Sprintf("%s = %d", h.Name, h.Port))
	}
	return newFixture(t, fmt.Sprintf(`
variable "hosts" {
  default = { %s }
}
plugin "ssh" {
  host             = "127.0.0.1"
  user             = "root"
  private_key_file = %q
  known_hosts      = %q
  %s
}
%s`, strings.Join(hosts, ", "), lab.AdminKeyFile, lab.KnownHosts, pluginExtra, body))
}

func secretValue(t *testing.T, dir, name string) string {
	t.Helper()
	ws, err := workspace.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	id, err := ws.ExistingIdentity("")
	if err != nil {
		t.Fatal(err)
	}
	var v string
	ws.State.View(func(s *state.Snapshot) {
		sec := s.Secrets[name]
		if sec == nil || sec.Current == nil {
			t.Fatalf("no current secret %q", name)
		}
		pt, err := secrets.Decrypt(sec.Current.Ciphertext, id)
		if err != nil {
			t.Fatal(err)
		}
		v = string(pt)
	})
	return v
}

func mustApply(t *testing.T, f *fixture) string {
	t.Helper()
	code, out := f.apply()
	if code != ExitOK {
		t.Fatalf("apply: exit %d\n%s", code, out)
	}
	return out
}

func TestSSHRemoveSudoCommandInventoryExport(t *testing.T) {
	t.Parallel()
	lab := sshlab.Start(t, sshlab.Options{Hosts: 1})
	h := lab.Hosts[0]
	h.MustRun(t, `mkdir -p /srv/share/sub && echo one > /srv/share/a.txt && echo two > /srv/share/sub/b.txt && ln -s /etc/shadow /srv/share/shadow-link && usermod -aG sudo oldmsp`)
	export := t.TempDir()
	f := sshRunbook(t, lab, "", fmt.Sprintf(`
step "ssh.inventory" "before" {
  port = var.hosts.host01
}
step "core.assert" "saw_oldmsp" {
  condition = contains([for k in step.before.outputs.authorized_keys : k.comment], "oldmsp@lab") && contains([for a in step.before.outputs.accounts : a.name], "oldmsp")
  message   = "the inventory does not show the old provider's key and account"
}
step "ssh.remove_sudo" "oldmsp" {
  port       = var.hosts.host01
  users      = ["oldmsp"]
  depends_on = [step.saw_oldmsp]
}
step "ssh.command" "marker" {
  port    = var.hosts.host01
  command = "echo handed-over >> /etc/handover-marker"
  creates = "/etc/handover-marker"
}
step "ssh.export" "share" {
  port        = var.hosts.host01
  paths       = ["/srv/share"]
  destination = %q
}
`, export))
	code, planOut, _ := f.run("plan", f.dir)
	if code != ExitOK || !strings.Contains(planOut, "remove from /etc/sudoers.d/oldmsp: oldmsp ALL=(ALL) NOPASSWD: ALL") || !strings.Contains(planOut, "remove oldmsp from the group(s) sudo") ||
		!strings.Contains(planOut, "fetch 2 of 2 files") || !strings.Contains(planOut, "skip /srv/share/shadow-link (symbolic link, not followed)") {
		t.Fatalf("plan:\n%s", planOut)
	}
	mustApply(t, f)
	// A second plan finds nothing left to do.
	if code, out, _ := f.run("plan", "-detailed-exitcode", f.dir); code != ExitOK {
		t.Fatalf("second plan: %d\n%s", code, out)
	}
	// sudo itself says oldmsp may no longer run anything; alice keeps hers.
	if out, _ := h.Run("sudo -l -U oldmsp"); !strings.Contains(out, "is not allowed to run sudo") {
		t.Fatalf("oldmsp still has sudo rights:\n%s", out)
	}
	if out, _ := h.Run("sudo -l -U alice"); !strings.Contains(out, "(ALL) ALL") {
		t.Fatalf("alice lost her sudo rights:\n%s", out)
	}
	if got := h.MustRun(t, "cat /etc/handover-marker; stat -c %a /etc/sudoers.d/oldmsp"); got != "handed-over\n440\n" {
		t.Fatalf("marker/mode: %q", got)
	}
	dir := filepath.Join(export, strings.ReplaceAll(h.Addr(), ":", "_"))
	sums, _ := os.ReadFile(filepath.Join(dir, "SHA256SUMS"))
	a, _ := os.ReadFile(filepath.Join(dir, "srv/share/a.txt"))
	if string(a) != "one\n" || !strings.Contains(string(sums), "srv/share/sub/b.txt") || strings.Contains(string(sums), "shadow") {
		t.Fatalf("export: a=%q sums=%q", a, sums)
	}
	if _, err := os.Lstat(filepath.Join(dir, "srv/share/shadow-link")); err == nil {
		t.Fatal("the symbolic link was exported")
	}
	// A changed file on the host: only it is fetched again, by a fresh run.
	h.MustRun(t, "echo three > /srv/share/sub/b.txt && touch -d '2001-01-01' /srv/share/sub/b.txt")
	f2 := sshRunbook(t, lab, "", fmt.Sprintf(`
step "ssh.export" "share" {
  port        = var.hosts.host01
  paths       = ["/srv/share"]
  destination = %q
}
step "ssh.command" "marker" {
  port    = var.hosts.host01
  command = "echo handed-over >> /etc/handover-marker"
  creates = "/etc/handover-marker"
}`, export))
	code, out, _ := f2.run("plan", f2.dir)
	if code != ExitOK || !strings.Contains(out, "fetch 1 of 2 files") || !strings.Contains(out, "the guard says it is done") {
		t.Fatalf("re-plan:\n%s", out)
	}
	mustApply(t, f2)
	if b, _ := os.ReadFile(filepath.Join(dir, "srv/share/sub/b.txt")); string(b) != "three\n" {
		t.Fatalf("b.txt = %q", b)
	}
}
