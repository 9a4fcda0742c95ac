package cli

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/switchover/switchover/internal/state"
	"github.com/switchover/switchover/internal/testing/pglab"
	"github.com/switchover/switchover/internal/workspace"
)

// pgLab is the package's PostgreSQL (started in TestMain).
var pgLab *pglab.Server

var pgDBs atomic.Int64

// pgBackend makes a database for one test, puts its connection string in
// an environment variable of the test's own, and returns the backend
// block that names it.
func pgBackend(t *testing.T, workspaceName string) string {
	t.Helper()
	n := pgDBs.Add(1)
	db := fmt.Sprintf("cli%d", n)
	if err := pgLab.CreateDatabase(db); err != nil {
		t.Fatal(err)
	}
	env := fmt.Sprintf("SWITCHOVER_TEST_PG_%d", n)
	os.Setenv(env, pgLab.URL(db))
	return fmt.Sprintf("backend \"pg\" {\n  workspace      = %q\n  connection_env = %q\n}\n", workspaceName, env)
}

// otherMachine is a second runbook directory with the same runbook (the
// next shift's laptop): its workspace holds only the identity, copied as a
// team shares it.
func otherMachine(t *testing.T, f *fixture) *fixture {
	t.Helper()
	g := &fixture{t: t, dir: t.TempDir(), pluginDir: f.pluginDir, world: f.world}
	src, _ := os.ReadFile(filepath.Join(f.dir, "main.sw.hcl"))
	os.WriteFile(filepath.Join(g.dir, "main.sw.hcl"), src, 0o644)
	if id, err := os.ReadFile(filepath.Join(workspace.Path(f.dir), "identity.age-key")); err == nil {
		os.MkdirAll(workspace.Path(g.dir), 0o700)
		os.WriteFile(filepath.Join(workspace.Path(g.dir), "identity.age-key"), id, 0o600)
	}
	return g
}

// An apply killed on one machine is resumed from another that shares the
// database: every password is set once (or again with the same value),
// every step is done, the audit trail verifies from both.
func TestPGKilledHereResumedThere(t *testing.T) {
	t.Parallel()
	f := newFixture(t, pgBackend(t, "acme")+crashRunbook)
	exe, _ := os.Executable()
	for round := 0; round < 3; round++ {
		cmd := exec.Command(exe, "apply", "-auto-approve", "-parallelism", "4", "-plugin-dir", f.pluginDir, f.dir)
		cmd.Env = append(os.Environ(), "SWITCHOVER_TEST_AS_MAIN=1")
		out := &watchWriter{mark: []byte(": started (attempt"), seen: make(chan struct{})}
		cmd.Stdout, cmd.Stderr = out, out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		go func() {
			<-out.seen
			time.AfterFunc(time.Duration(20+round*40)*time.Millisecond, func() { cmd.Process.Signal(syscall.SIGKILL) })
		}()
		cmd.Wait()
	}
	g := otherMachine(t, f)
	if code, out := g.apply(); code != ExitOK {
		t.Fatalf("the resumed apply on the other machine: exit %d\n%s", code, out)
	}
	checkCrashScenario(t, g)
	for _, dir := range []string{f.dir, g.dir} {
		if code, out, errs := g.run("audit", "verify", dir); code != ExitOK {
			t.Fatalf("audit verify in %s: %d\n%s%s", dir, code, out, errs)
		}
	}
}

// Two applies on two machines at once: one wins, the other names the
// holder and changes nothing; status on a third says who holds it.
func TestPGTwoAppliesRaceForTheLock(t *testing.T) {
	t.Parallel()
	f := newFixture(t, pgBackend(t, "acme")+`
step "test.sleepy" "slow" {
  world    = local.world
  name     = "slow"
  sleep_ms = 1500
}
`)
	g := otherMachine(t, f)
	var wg sync.WaitGroup
	codes := make([]int, 2)
	outs := make([]string, 2)
	for i, x := range []*fixture{f, g} {
		wg.Add(1)
		go func(i int, x *fixture) {
			defer wg.Done()
			codes[i], outs[i] = x.apply()
		}(i, x)
	}
	time.Sleep(700 * time.Millisecond)
	h := otherMachine(t, f)
	scode, status, serr := h.run("status", h.dir)
	wg.Wait()
	won, lost := 0, 0
	for i := range codes {
		switch {
		case codes[i] == ExitOK:
			won++
		case strings.Contains(outs[i], "locked by") && strings.Contains(outs[i], "apply"):
			lost++
		default:
			t.Fatalf("apply %d: exit %d\n%s", i, codes[i], outs[i])
		}
	}
	if won != 1 || lost != 1 || f.count("slept slow") != 1 {
		t.Fatalf("won %d, lost %d, ran %d times\n%s\n%s", won, lost, f.count("slept slow"), outs[0], outs[1])
	}
	if !strings.Contains(status+serr, "An apply is running") || !strings.Contains(status+serr, "apply on ") || !strings.Contains(status+serr, "last heard from") {
		t.Errorf("status during the apply does not name the holder (exit %d):\n%s%s", scode, status, serr)
	}
}

// A person's step confirmed from another machine; the apply there goes on.
func TestPGConfirmFromAnotherMachine(t *testing.T) {
	t.Parallel()
	f := newFixture(t, pgBackend(t, "acme")+`
step "core.manual" "dns" {
  instructions = "Move the DNS."
}
step "test.flaky" "after" {
  world      = local.world
  name       = "after"
  depends_on = [step.dns]
}
`)
	if code, out := f.apply(); code != ExitWaiting {
		t.Fatalf("apply: exit %d\n%s", code, out)
	}
	g := otherMachine(t, f)
	if code, out, errs := g.run("confirm", "step.dns", g.dir, "--by", "Eva (the next shift)"); code != ExitOK {
		t.Fatalf("confirm on the other machine: %d\n%s%s", code, out, errs)
	}
	if code, out := f.apply(); code != ExitOK || f.count("ok after") != 1 {
		t.Fatalf("apply after the confirmation: exit %d\n%s", code, out)
	}
	if st := g.states(); st["step.dns"].Status != state.Done || st["step.dns"].Confirm == nil || !strings.Contains(st["step.dns"].Confirm.By, "Eva") {
		t.Fatalf("step.dns as the other machine reads it: %+v", st["step.dns"])
	}
}

// state migrate: files to PostgreSQL and back, the audit chain intact.
func TestPGStateMigrate(t *testing.T) {
	t.Parallel()
	f := newFixture(t, `
step "test.flaky" "a" {
  world = local.world
  name  = "a"
}
`)
	if code, out := f.apply(); code != ExitOK {
		t.Fatalf("apply: %d\n%s", code, out)
	}
	before := f.states()
	// The same runbook, now with a backend block.
	src, _ := os.ReadFile(filepath.Join(f.dir, "main.sw.hcl"))
	os.WriteFile(filepath.Join(f.dir, "main.sw.hcl"), append(src, []byte(pgBackend(t, "acme"))...), 0o644)
	code, out, errs := f.run("state", "migrate", "-to", "pg", f.dir)
	if code != ExitOK || !strings.Contains(out, "the audit chain verifies") {
		t.Fatalf("migrate to pg: %d\n%s%s", code, out, errs)
	}
	if code, out, errs := f.run("state", "migrate", "-to", "pg", f.dir); code == ExitOK || !strings.Contains(errs, "already holds") {
		t.Fatalf("a second migrate must refuse: %d\n%s%s", code, out, errs)
	}
	g := otherMachine(t, f)
	if st := g.states(); len(st) != len(before) || st["step.a"].Status != state.Done {
		t.Fatalf("the state in PostgreSQL: %+v", st)
	}
	if code, out, errs := g.run("audit", "verify", g.dir); code != ExitOK {
		t.Fatalf("audit verify of the pg copy: %d\n%s%s", code, out, errs)
	}
	if code, out := g.apply(); code != ExitOK || f.count("try a") != 1 {
		t.Fatalf("apply on the pg state: %d\n%s", code, out)
	}
	// And back to files, in a directory without them.
	code, out, errs = g.run("state", "migrate", "-to", "file", g.dir)
	if code != ExitOK {
		t.Fatalf("migrate to files: %d\n%s%s", code, out, errs)
	}
	data, _ := os.ReadFile(filepath.Join(workspace.Path(g.dir), "audit.jsonl"))
	if !bytes.Contains(data, []byte("apply")) {
		t.Fatal("the audit trail did not come back to the file")
	}
}

// Bad input: no connection string, an unreachable database, a wrong
// password: one line, nothing written.
func TestPGBadInput(t *testing.T) {
	t.Parallel()
	f := newFixture(t, `
backend "pg" {
  workspace      = "acme"
  connection_env = "SWITCHOVER_TEST_PG_UNSET"
}
step "test.flaky" "a" {
  world = local.world
  name  = "a"
}
`)
	if code, out := f.apply(); code == ExitOK || !strings.Contains(out, "set SWITCHOVER_TEST_PG_UNSET") || f.count("try a") != 0 {
		t.Fatalf("no connection string: %d\n%s", code, out)
	}
	os.Setenv("SWITCHOVER_TEST_PG_BAD", strings.Replace(pgLab.URL("postgres"), pgLab.Password, "wrong-pw", 1))
	body, _ := os.ReadFile(filepath.Join(f.dir, "main.sw.hcl"))
	os.WriteFile(filepath.Join(f.dir, "main.sw.hcl"), bytes.Replace(body, []byte("SWITCHOVER_TEST_PG_UNSET"), []byte("SWITCHOVER_TEST_PG_BAD"), 1), 0o644)
	if code, out := f.apply(); code == ExitOK || !strings.Contains(out, "password authentication failed") || strings.Contains(out, "wrong-pw") || f.count("try a") != 0 {
		t.Fatalf("a wrong password: %d\n%s", code, out)
	}
}
