package cli

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/switchover/switchover/internal/audit"
	"github.com/switchover/switchover/internal/testing/sshlab"
	"github.com/switchover/switchover/internal/workspace"
)

func auditEvents(t *testing.T, dir, event string) int {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(workspace.Path(dir), audit.FileName))
	if err != nil {
		t.Fatal(err)
	}
	return strings.Count(string(b), `"event":"`+event+`"`)
}

// After a finished run someone puts the old provider's key back: plan must
// look at the host, show the drift and exit 2; apply must take it away
// again (a new attempt, audited). -refresh=false trusts the state.
func TestSSHDriftAfterAFinishedRunIsSeenAndFixed(t *testing.T) {
	t.Parallel()
	lab := sshlab.Start(t, sshlab.Options{Hosts: 1})
	h := lab.Hosts[0]
	f := sshRunbook(t, lab, "", fmt.Sprintf(`
step "ssh.authorized_keys" "drop_oldmsp" {
  port   = %d
  user   = "root"
  remove = { comment_matches = "^oldmsp@" }
}
`, h.Port))
	mustApply(t, f)
	if code, out, errs := f.run("plan", "-detailed-exitcode", f.dir); code != ExitOK || !strings.Contains(out, "still so") {
		t.Fatalf("plan after the run: %d\n%s%s", code, out, errs)
	}
	// The key comes back, with a comment that would clear the screen.
	oldKey, _ := os.ReadFile(lab.OldMSPKeyFile + ".pub")
	h.MustRun(t, "cat >> /root/.ssh/authorized_keys <<'EOF'\n"+strings.TrimSpace(string(oldKey))+"-\x1b[2J\nEOF")
	code, out, errs := f.run("plan", "-detailed-exitcode", f.dir)
	if code != ExitChanges || !strings.Contains(out, "~ step.drop_oldmsp") || !strings.Contains(out, "drift: done before") {
		t.Fatalf("plan after the key came back: %d\n%s%s", code, out, errs)
	}
	if strings.Contains(out, "\x1b[2J") || !strings.Contains(out, `-\x1b[2J`) {
		t.Fatalf("a terminal escape from the host reached the terminal:\n%q", out)
	}
	if code, out, _ := f.run("plan", "-detailed-exitcode", "-refresh=false", f.dir); code != ExitOK || !strings.Contains(out, "not looked at again") {
		t.Fatalf("plan -refresh=false: %d\n%s", code, out)
	}
	mustApply(t, f)
	if sshlab.LoginWorks(t, h, "root", sshlab.KeyAuth(t, lab.OldMSPKeyFile)) {
		t.Fatal("the key that came back still logs in after apply")
	}
	if s := f.states()["step.drop_oldmsp"]; s.Attempts != 2 {
		t.Fatalf("attempts %d, want 2", s.Attempts)
	}
	if auditEvents(t, f.dir, "drift_found") != 1 {
		t.Fatal("the drift is not in the audit trail")
	}
}

// lock_account strips oldmsp's keys; an authorized_keys step planned
// before it then finds oldmsp's file changed. In both orders, one apply
// must finish (the engine plans the conflicting instance again), and so
// must a saved plan after another process changed the file.
func TestSSHARunDoesNotTripOverItsOwnChanges(t *testing.T) {
	t.Parallel()
	lab := sshlab.Start(t, sshlab.Options{Hosts: 3})
	for i, order := range []string{"lock_first", "keys_first"} {
		h := lab.Hosts[i]
		t.Run(order, func(t *testing.T) {
			lockDeps, keysDeps := "", "depends_on = [step.lock]"
			if order == "keys_first" {
				lockDeps, keysDeps = "depends_on = [step.keys]", ""
			}
			f := sshRunbook(t, lab, "", fmt.Sprintf(`
step "ssh.lock_account" "lock" {
  port    = %[1]d
  account = "oldmsp"
  %[2]s
}
step "ssh.authorized_keys" "keys" {
  port      = %[1]d
  all_users = true
  remove    = { comment_matches = "^oldmsp@" }
  %[3]s
}
`, h.Port, lockDeps, keysDeps))
			out := mustApply(t, f)
			if sshlab.LoginWorks(t, h, "root", sshlab.KeyAuth(t, lab.OldMSPKeyFile)) || sshlab.LoginWorks(t, h, "oldmsp", sshlab.KeyAuth(t, lab.OldMSPKeyFile)) {
				t.Fatalf("the old key still logs in\n%s", out)
			}
			if order == "lock_first" && auditEvents(t, f.dir, "step_replanned") != 1 {
				t.Fatalf("want one step_replanned in the audit trail\n%s", out)
			}
		})
	}
	t.Run("another_process", func(t *testing.T) {
		h := lab.Hosts[2]
		h.MustRun(t, "cat /home/oldmsp/.ssh/authorized_keys >> /root/.ssh/authorized_keys 2>/dev/null; true")
		oldKey, _ := os.ReadFile(lab.OldMSPKeyFile + ".pub")
		h.MustRun(t, "cat >> /root/.ssh/authorized_keys <<'EOF'\n"+string(oldKey)+"EOF")
		f := sshRunbook(t, lab, "", fmt.Sprintf(`
step "ssh.authorized_keys" "keys" {
  port   = %d
  user   = "root"
  remove = { comment_matches = "^oldmsp@" }
}
`, h.Port))
		planFile := filepath.Join(t.TempDir(), "plan.bin")
		if code, out, errs := f.run("plan", "-out", planFile, f.dir); code != ExitOK {
			t.Fatalf("plan: %d\n%s%s", code, out, errs)
		}
		h.MustRun(t, "echo '# added by someone else meanwhile' >> /root/.ssh/authorized_keys")
		code, out, errs := f.run("apply", planFile)
		if code != ExitOK {
			t.Fatalf("apply of the saved plan: %d\n%s%s", code, out, errs)
		}
		got := h.MustRun(t, "cat /root/.ssh/authorized_keys")
		if strings.Contains(got, "oldmsp@") || !strings.Contains(got, "added by someone else") {
			t.Fatalf("root's keys now:\n%s", got)
		}
	})
}
