package cli

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"filippo.io/age"

	"github.com/switchover/switchover/internal/audit"
	"github.com/switchover/switchover/internal/state"
	"github.com/switchover/switchover/internal/testing/testplugin"
	"github.com/switchover/switchover/internal/workspace"
)

const interruptRunbook = `
step "test.sleepy" "slow" {
  for_each = toset(["a", "b", "c", "d"])
  world    = local.world
  name     = each.key
  sleep_ms = 1200
}
`

// startApply runs switchover apply in a child process and waits until the
// first steps run.
func startApply(t *testing.T, f *fixture) (*exec.Cmd, *bytes.Buffer) {
	t.Helper()
	exe, _ := os.Executable()
	cmd := exec.Command(exe, "apply", "-auto-approve", "-parallelism", "2", "-plugin-dir", f.pluginDir, f.dir)
	cmd.Env = append(os.Environ(), "SWITCHOVER_TEST_AS_MAIN=1")
	// Its own process group, so that Ctrl-C can be sent as a terminal does:
	// to switchover and its plugins at once.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 500; i++ {
		running := 0
		for _, in := range f.states() {
			if in.Status == state.Running {
				running++
			}
		}
		if running == 2 {
			return cmd, &out
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatal("the steps never started")
	return nil, nil
}

// ctrlC sends SIGINT to the process group, as a terminal does.
func ctrlC(cmd *exec.Cmd) { syscall.Kill(-cmd.Process.Pid, syscall.SIGINT) }

func exitCode(cmd *exec.Cmd) int {
	if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); ok && ws.Exited() {
		return ws.ExitStatus()
	}
	return -1
}

func TestCtrlCOnceFinishesRunningSteps(t *testing.T) {
	f := newFixture(t, interruptRunbook)
	cmd, out := startApply(t, f)
	ctrlC(cmd)
	cmd.Wait()
	if code := exitCode(cmd); code != ExitStopped {
		t.Fatalf("exit %d\n%s", code, out)
	}
	if !strings.Contains(out.String(), "finishing the running steps") || !strings.Contains(out.String(), "run `switchover apply` again to resume") {
		t.Fatalf("output:\n%s", out)
	}
	slept := 0
	for _, l := range testplugin.Lines(f.world) {
		if strings.HasPrefix(l, "slept ") {
			slept++
		}
	}
	st := f.states()
	done := 0
	for _, in := range st {
		if in.Status == state.Done {
			done++
		}
	}
	if slept != 2 || done != 2 || len(st) != 2 {
		t.Fatalf("%d slept, %d done, %d recorded: the two running steps must finish and nothing new start", slept, done, len(st))
	}
	// The next apply does the rest.
	code, o := f.apply()
	if code != ExitOK || !strings.Contains(o, "2 done, 0 failed") {
		t.Fatalf("resume: %d\n%s", code, o)
	}
}

func TestCtrlCTwiceCancelsRunningSteps(t *testing.T) {
	f := newFixture(t, interruptRunbook)
	cmd, out := startApply(t, f)
	began := time.Now()
	ctrlC(cmd)
	time.Sleep(100 * time.Millisecond)
	ctrlC(cmd)
	cmd.Wait()
	if d := time.Since(began); d > 1000*time.Millisecond {
		t.Fatalf("took %s to stop: the running steps were not cancelled\n%s", d, out)
	}
	if code := exitCode(cmd); code == ExitOK {
		t.Fatalf("exit 0 after a cancel\n%s", out)
	}
	for _, l := range testplugin.Lines(f.world) {
		if strings.HasPrefix(l, "slept ") {
			t.Fatalf("a cancelled step completed: %s", l)
		}
	}
	// Nothing is lost: the next apply finishes everything.
	code, o := f.apply()
	if code != ExitOK {
		t.Fatalf("resume: %d\n%s", code, o)
	}
}

// An apply whose lock is taken away (switchover unlock from another shell)
// stops instead of running on beside whoever takes the lock next; nothing
// is lost, and the next apply finishes the job.
func TestApplyStopsWhenItsLockIsTaken(t *testing.T) {
	f := newFixture(t, `
step "test.sleepy" "slow" {
  for_each = toset(["a", "b", "c"])
  world    = local.world
  name     = each.key
  sleep_ms = 30000
}
`)
	cmd, out := startApply(t, f)
	began := time.Now()
	if code, o, e := f.run("unlock", f.dir); code != ExitOK || !strings.Contains(o, "Removed the lock held by") {
		t.Fatalf("unlock: %d\n%s%s", code, o, e)
	}
	cmd.Wait()
	if d := time.Since(began); d > 10*time.Second {
		t.Fatalf("the apply ran on for %s after its lock was taken", d)
	}
	if code := exitCode(cmd); code != ExitError || !strings.Contains(out.String(), "removed or taken by another process") {
		t.Fatalf("exit %d\n%s", code, out)
	}
	for _, l := range testplugin.Lines(f.world) {
		if strings.HasPrefix(l, "slept ") {
			t.Fatalf("a step went on after the lock was lost: %s", l)
		}
	}
	trail, _ := os.ReadFile(filepath.Join(workspace.Path(f.dir), audit.FileName))
	if !strings.Contains(string(trail), `"event":"`+string(audit.EvUnlocked)+`"`) {
		t.Error("the unlock is not in the audit trail")
	}
	// The stopped session wrote nothing over the unlock's records.
	if code, o, e := f.run("audit", "verify", f.dir); code != ExitOK {
		t.Fatalf("audit verify: %d\n%s%s", code, o, e)
	}
	// The state says where it stopped: nothing is done, nothing is lost.
	for addr, in := range f.states() {
		if in.Status == state.Done {
			t.Errorf("%s is done though its step was stopped", addr)
		}
	}
}

// Killed mid-run, an apply leaves lines in the trail after the head it
// anchored: `audit verify` says so (not "tampered with"), and a bundle
// made right after it opens, with every part matching; the temporary file
// of a bundle write that was killed is gone after the next bundle.
func TestBundleAfterAKilledApply(t *testing.T) {
	f := newFixture(t, interruptRunbook)
	cmd, _ := startApply(t, f)
	syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	cmd.Wait()
	code, _, errs := f.run("audit", "verify", f.dir)
	if code == ExitOK || strings.Contains(errs, "tampered") || !strings.Contains(errs, "unbroken chain") {
		t.Fatalf("audit verify after a kill: %d %s", code, errs)
	}
	id, _ := age.GenerateX25519Identity()
	idFile := filepath.Join(t.TempDir(), "newmsp.key")
	os.WriteFile(idFile, []byte(id.String()+"\n"), 0o600)
	out := filepath.Join(t.TempDir(), "handover.bundle")
	stale := filepath.Join(filepath.Dir(out), ".handover.bundle.12345")
	os.WriteFile(stale, []byte("half a bundle"), 0o600)
	code, o, errs := f.run("handover", "bundle", "-recipient", id.Recipient().String(), "-out", out, f.dir)
	if code != ExitOK {
		t.Fatalf("bundle after a kill: %d %s %s", code, o, errs)
	}
	signer := regexp.MustCompile(`signed by  (SHA256:\S+)`).FindStringSubmatch(o)
	if code, o, errs := f.run("handover", "open", out, "-identity", idFile, "-signer", signer[1]); code != ExitOK {
		t.Fatalf("the bundle made after a kill does not open: %d %s %s", code, o, errs)
	}
	if _, err := os.Stat(stale); err == nil {
		t.Fatal("the temporary file of a killed bundle write is still there")
	}
}
