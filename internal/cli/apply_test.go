package cli

import (
	"bytes"
	"compress/gzip"
	"github.com/switchover/switchover/internal/operation"
	"io"

	"filippo.io/age"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/switchover/switchover/internal/secrets"
	"github.com/switchover/switchover/internal/state"
	"github.com/switchover/switchover/internal/testing/testplugin"
	"github.com/switchover/switchover/internal/workspace"
)

// fixture is a runbook directory with the test plugin available.
type fixture struct {
	t         *testing.T
	dir       string
	world     string
	pluginDir string
	// extraArgs go to every apply that killAndResume runs (such as -var-file).
	extraArgs []string
}

func newFixture(t *testing.T, body string) *fixture {
	t.Helper()
	f := &fixture{t: t, dir: t.TempDir(), pluginDir: sharedPluginDir}
	f.world = filepath.Join(f.dir, "world.txt")
	src := "runbook \"test\" {}\nlocals { world = \"" + f.world + "\" }\n" + body
	if err := os.WriteFile(filepath.Join(f.dir, "main.sw.hcl"), []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	return f
}

// run runs switchover in-process and returns its exit code and output.
func (f *fixture) run(args ...string) (int, string, string) {
	f.t.Helper()
	var out, errb bytes.Buffer
	if args[0] == "apply" || args[0] == "plan" || args[0] == "validate" {
		args = append(args[:1:1], append([]string{"-plugin-dir", f.pluginDir}, args[1:]...)...)
	}
	code := Main(args, &Env{Stdout: &out, Stderr: &errb, Stdin: strings.NewReader("")})
	return code, out.String(), errb.String()
}

func (f *fixture) apply(extra ...string) (int, string) {
	f.t.Helper()
	code, out, errs := f.run(append([]string{"apply", "-auto-approve"}, append(extra, f.dir)...)...)
	return code, out + errs
}

func (f *fixture) states() map[string]*state.Instance {
	f.t.Helper()
	open, _, err := operation.StateOpener(f.dir) // files, or the runbook's backend
	if err != nil {
		f.t.Fatal(err)
	}
	b, err := open(workspace.Path(f.dir))
	if err != nil {
		f.t.Fatal(err)
	}
	defer b.Close()
	m, _ := state.NewManager(b)
	out := map[string]*state.Instance{}
	m.View(func(s *state.Snapshot) {
		for k, v := range s.Instances {
			c := *v
			out[k] = &c
		}
	})
	return out
}

func (f *fixture) count(line string) int {
	n := 0
	for _, l := range testplugin.Lines(f.world) {
		if l == line {
			n++
		}
	}
	return n
}

func TestApplyOrderOutputsAndSecondRunIsNoOp(t *testing.T) {
	t.Parallel()
	f := newFixture(t, `
step "test.account" "first" {
  world    = local.world
  account  = "alice"
  password = secret("alice")
}
step "test.account" "second" {
  world    = local.world
  account  = "${step.first.outputs.account}-admin"
  password = secret("alice-admin", { length = 20, symbols = 0 })
}
`)
	code, out := f.apply()
	if code != ExitOK {
		t.Fatalf("exit %d\n%s", code, out)
	}
	lines := testplugin.Lines(f.world)
	var order []string
	for _, l := range lines {
		if strings.HasPrefix(l, "set ") {
			order = append(order, strings.Fields(l)[1])
		}
	}
	if strings.Join(order, " ") != "alice alice-admin" {
		t.Fatalf("set order %v (the second step's account comes from the first's output)", order)
	}
	st := f.states()
	if st["step.first"].Status != state.Done || st["step.second"].Status != state.Done {
		t.Fatalf("states: %+v %+v", st["step.first"], st["step.second"])
	}
	// The secrets are stored, verified, and decrypt to what the world got.
	ws, _ := workspace.Open(f.dir)
	defer ws.Close()
	id, err := ws.ExistingIdentity("")
	if err != nil {
		t.Fatal(err)
	}
	ws.State.View(func(s *state.Snapshot) {
		for name, acct := range map[string]string{"alice": "alice", "alice-admin": "alice-admin"} {
			sec := s.Secrets[name]
			if sec == nil || sec.Current == nil || !sec.Current.Verified || sec.Pending != nil {
				t.Fatalf("secret %s = %+v", name, sec)
			}
			pt, err := secrets.Decrypt(sec.Current.Ciphertext, id)
			if err != nil {
				t.Fatal(err)
			}
			if want := fmt.Sprintf("set %s %s", acct, testplugin.Hash(string(pt))); f.count(want) != 1 {
				t.Errorf("the stored secret %s is not what %s was set to", name, acct)
			}
			if name == "alice-admin" && len(pt) != 20 {
				t.Errorf("alice-admin has %d characters, want 20", len(pt))
			}
		}
	})
	// A plan of an applied runbook is recorded in its audit trail.
	if code, _, errs := f.run("plan", f.dir); code != ExitOK {
		t.Fatal(errs)
	}
	if code, out, _ := f.run("audit", "show", f.dir); code != ExitOK || !strings.Contains(out, `"standalone":true`) {
		t.Fatalf("the plan is not in the audit trail:\n%s", out)
	}
	// A second apply changes nothing.
	before := len(testplugin.Lines(f.world))
	code, out = f.apply()
	if code != ExitOK || len(testplugin.Lines(f.world)) != before || !strings.Contains(out, "(and 2 done before)") {
		t.Fatalf("second apply: exit %d, world %d -> %d lines\n%s", code, before, len(testplugin.Lines(f.world)), out)
	}
}

func TestRetryFailureHaltAndContinue(t *testing.T) {
	t.Parallel()
	f := newFixture(t, `
step "test.flaky" "retried" {
  world      = local.world
  name       = "retried"
  fail_times = 2
  retry {
    attempts = 3
    backoff  = "10ms"
  }
}
step "test.flaky" "broken" {
  world      = local.world
  name       = "broken"
  fail_times = 9
  on_failure = continue
  retry {
    attempts = 2
  }
}
step "test.flaky" "after_broken" {
  world      = local.world
  name       = "after_broken"
  depends_on = [step.broken]
}
step "test.flaky" "after_after" {
  world      = local.world
  name       = "after_after"
  depends_on = [step.after_broken]
}
`)
	code, out := f.apply("-parallelism", "1")
	if code != ExitError {
		t.Fatalf("exit %d\n%s", code, out)
	}
	st := f.states()
	if s := st["step.retried"]; s.Status != state.Done || s.Attempts != 3 || f.count("try retried") != 3 {
		t.Errorf("retried: %+v, %d tries", s, f.count("try retried"))
	}
	if s := st["step.broken"]; s.Status != state.Failed || s.Attempts != 2 || !strings.Contains(s.Error, "broken failed on try 2") {
		t.Errorf("broken: %+v", s)
	}
	for _, a := range []string{"step.after_broken", "step.after_after"} {
		if s := st[a]; s == nil || s.Status != state.Skipped || !strings.Contains(s.Summary, "depends on step.broken, which failed") {
			t.Errorf("%s: %+v", a, s)
		}
	}
	if f.count("try after_broken") != 0 {
		t.Error("a dependent of a failed step ran")
	}
	if !strings.Contains(out, "step.broken: FAILED: broken failed on try 2") {
		t.Errorf("output:\n%s", out)
	}
}

func TestHaltStopsSchedulingNewSteps(t *testing.T) {
	f := newFixture(t, `
step "test.flaky" "broken" {
  world      = local.world
  name       = "broken"
  fail_times = 9
}
step "test.flaky" "independent" {
  world      = local.world
  name       = "independent"
  depends_on = [step.slow]
}
step "test.sleepy" "slow" {
  world    = local.world
  name     = "slow"
  sleep_ms = 300
}
`)
	code, out := f.apply("-parallelism", "2")
	if code != ExitError || !strings.Contains(out, "halted") {
		t.Fatalf("exit %d\n%s", code, out)
	}
	st := f.states()
	// The running step finished; nothing new started after the failure.
	if st["step.slow"].Status != state.Done || f.count("try independent") != 0 {
		t.Fatalf("slow %+v, independent tries %d", st["step.slow"], f.count("try independent"))
	}
}

func TestVerifyAfterApplyCatchesAStepWithoutEffect(t *testing.T) {
	t.Parallel()
	f := newFixture(t, `
step "test.liar" "disable_oldmsp" { world = local.world }
`)
	code, out := f.apply()
	s := f.states()["step.disable_oldmsp"]
	if code != ExitError || s.Status != state.Failed || !strings.Contains(s.Error, "did not take effect") {
		t.Fatalf("exit %d, state %+v\n%s", code, s, out)
	}
}

func TestTimeoutFailsTheStep(t *testing.T) {
	t.Parallel()
	f := newFixture(t, `
step "test.sleepy" "stuck" {
  world    = local.world
  name     = "stuck"
  sleep_ms = 60000
  timeout  = "300ms"
}
`)
	began := time.Now()
	code, out := f.apply()
	s := f.states()["step.stuck"]
	if code != ExitError || s.Status != state.Failed || !strings.Contains(s.Error, "timeout is 300ms") {
		t.Fatalf("exit %d, state %+v\n%s", code, s, out)
	}
	if d := time.Since(began); d > 15*time.Second {
		t.Fatalf("took %s", d)
	}
}

func TestManualStepWaitsWhileIndependentBranchesRun(t *testing.T) {
	t.Parallel()
	f := newFixture(t, `
step "core.manual" "registrar" {
  instructions = "Move the registrar account."
}
step "test.flaky" "after_registrar" {
  world      = local.world
  name       = "after_registrar"
  depends_on = [step.registrar]
}
step "test.flaky" "independent" {
  world = local.world
  name  = "independent"
}
`)
	code, out := f.apply()
	if code != ExitWaiting {
		t.Fatalf("exit %d\n%s", code, out)
	}
	if f.count("ok independent") != 1 || f.count("try after_registrar") != 0 {
		t.Fatalf("independent ran %d, after_registrar tried %d", f.count("ok independent"), f.count("try after_registrar"))
	}
	if s := f.states()["step.registrar"]; s.Status != state.Waiting {
		t.Fatalf("registrar %+v", s)
	}
	// A confirmation without a name counts for nothing.
	if code, _, errs := f.run("confirm", "step.registrar", f.dir); code != ExitError || !strings.Contains(errs, "--by NAME is required") {
		t.Fatalf("confirm without --by: %d %s", code, errs)
	}
	if code, out, errs := f.run("confirm", "step.registrar", f.dir, "--by", "Anna Keller", "--note", "moved"); code != ExitOK {
		t.Fatalf("confirm: %d %s %s", code, out, errs)
	}
	if code, _, errs := f.run("confirm", "step.registrar", f.dir, "--by", "Bob"); code != ExitError || !strings.Contains(errs, "already confirmed by Anna Keller") {
		t.Fatalf("second confirm: %d %s", code, errs)
	}
	code, out = f.apply()
	if code != ExitOK || f.count("ok after_registrar") != 1 {
		t.Fatalf("after confirm: exit %d\n%s", code, out)
	}
	s := f.states()["step.registrar"]
	if s.Status != state.Done || s.Confirm == nil || s.Confirm.By != "Anna Keller" || s.Confirm.Note != "moved" {
		t.Fatalf("registrar %+v %+v", s, s.Confirm)
	}
	code, status, _ := f.run("status", f.dir)
	if code != ExitOK || !strings.Contains(status, "confirmed by Anna Keller") {
		t.Fatalf("status:\n%s", status)
	}
}

func TestSecondApplyIsRefusedWithTheHolder(t *testing.T) {
	t.Parallel()
	f := newFixture(t, `
step "test.sleepy" "slow" {
  world    = local.world
  name     = "slow"
  sleep_ms = 1500
}
`)
	done := make(chan string)
	go func() {
		_, out := f.apply()
		done <- out
	}()
	// Wait until the first apply holds the lock.
	lock := filepath.Join(workspace.Path(f.dir), "lock.json")
	for i := 0; i < 200; i++ {
		if _, err := os.Stat(lock); err == nil {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	code, out := f.apply()
	if code != ExitError || !strings.Contains(out, "the state is locked by") || !strings.Contains(out, fmt.Sprintf("(pid %d)", os.Getpid())) {
		t.Fatalf("second apply: exit %d\n%s", code, out)
	}
	first := <-done
	if !strings.Contains(first, "1 done") || f.count("slept slow") != 1 {
		t.Fatalf("first apply:\n%s", first)
	}
}

func TestSavedPlanIsRefusedWhenSomethingChanged(t *testing.T) {
	t.Parallel()
	f := newFixture(t, `
variable "who" { default = "alice" }
variable "pw" {
  sensitive = true
  default   = "canary-Plan-Secret-1"
}
step "test.flaky" "a" {
  world = local.world
  name  = var.who
}
`)
	planFile := filepath.Join(t.TempDir(), "p.plan")
	if code, out, errs := f.run("plan", "-out", planFile, f.dir); code != ExitOK {
		t.Fatalf("plan: %s %s", out, errs)
	}
	// Another variable value.
	code, out, errs := f.run("apply", "-var", "who=bob", planFile)
	_ = out
	if code != ExitError || !strings.Contains(errs, `Variable "who" changed since the plan was made`) {
		t.Fatalf("changed variable: %d %s", code, errs)
	}
	code, _, errs = f.run("apply", "-var", "pw=other", planFile)
	if code != ExitError || !strings.Contains(errs, `Sensitive variable "pw" has another value`) {
		t.Fatalf("changed sensitive variable: %d %s", code, errs)
	}
	// The same values: applied exactly.
	code, out, errs = f.run("apply", planFile)
	if code != ExitOK || f.count("ok alice") != 1 {
		t.Fatalf("apply of the saved plan: %d %s %s", code, out, errs)
	}
	// Now the state changed since the plan.
	code, _, errs = f.run("apply", planFile)
	if code != ExitError || !strings.Contains(errs, "The state changed since the plan was made") {
		t.Fatalf("stale plan: %d %s", code, errs)
	}
	// And a changed runbook.
	if code, _, errs := f.run("plan", "-out", planFile, f.dir); code != ExitOK {
		t.Fatal(errs)
	}
	os.WriteFile(filepath.Join(f.dir, "extra.sw.hcl"), []byte("# a comment\n"), 0o644)
	code, _, errs = f.run("apply", planFile)
	if code != ExitError || !strings.Contains(errs, "The runbook changed since the plan was made") {
		t.Fatalf("changed runbook: %d %s", code, errs)
	}
}

// The new MSP can decrypt the secrets with its own key, without the
// workspace identity.
func TestSecretRecipients(t *testing.T) {
	t.Parallel()
	newMSP, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	f := newFixture(t, "")
	src, _ := os.ReadFile(filepath.Join(f.dir, "main.sw.hcl"))
	src = []byte(strings.Replace(string(src), `runbook "test" {}`, `runbook "test" {
  secret_recipients = ["`+newMSP.Recipient().String()+`"]
}`, 1) + `
step "test.account" "root" {
  world    = local.world
  account  = "root"
  password = secret("root")
}
`)
	os.WriteFile(filepath.Join(f.dir, "main.sw.hcl"), src, 0o644)
	if code, out := f.apply(); code != ExitOK {
		t.Fatalf("apply: %d\n%s", code, out)
	}
	keyFile := filepath.Join(t.TempDir(), "newmsp.key")
	os.WriteFile(keyFile, []byte(newMSP.String()+"\n"), 0o600)
	// Move the workspace identity away: only the new MSP's key is left.
	os.Rename(filepath.Join(workspace.Path(f.dir), secrets.IdentityFile), filepath.Join(t.TempDir(), "gone"))
	code, out, errs := f.run("secrets", "show", "root", f.dir, "-identity", keyFile)
	if code != ExitOK || f.count("set root "+testplugin.Hash(strings.TrimSpace(out))) != 1 {
		t.Fatalf("the new MSP cannot read the secret: %d %s", code, errs)
	}
	// A bad recipient is a diagnostic at its place.
	os.WriteFile(filepath.Join(f.dir, "main.sw.hcl"), []byte(strings.Replace(string(src), newMSP.Recipient().String(), "age1notakey", 1)), 0o644)
	code, _, errs = f.run("validate", f.dir)
	if code != ExitError || !strings.Contains(errs, "Invalid secret recipient") || !strings.Contains(errs, "main.sw.hcl:2:") {
		t.Fatalf("bad recipient: %d %s", code, errs)
	}
}

// An edited plan file is refused before any plugin sees it: the attack of
// the security review (ungzip, change an instance's private data, gzip
// again) and a plan made in another workspace.
func TestEditedPlanFileIsRefused(t *testing.T) {
	t.Parallel()
	f := newFixture(t, `
step "test.flaky" "a" {
  world = local.world
  name  = "alice"
}
`)
	planFile := filepath.Join(t.TempDir(), "p.plan")
	if code, out, errs := f.run("plan", "-out", planFile, f.dir); code != ExitOK {
		t.Fatalf("plan: %s %s", out, errs)
	}
	orig, err := os.ReadFile(planFile)
	if err != nil {
		t.Fatal(err)
	}
	// Split magic, MAC line, gzip; edit the JSON; put it back together.
	head, z, _ := bytes.Cut(orig, []byte("\n"))
	macLine, z, _ := bytes.Cut(z, []byte("\n"))
	zr, err := gzip.NewReader(bytes.NewReader(z))
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(zr)
	edited := bytes.Replace(raw, []byte(`"summary":"`), []byte(`"private":"b2xkbXNwIEFMTD0oQUxMKSBOT1BBU1NXRDogQUxMCg==","summary":"`), 1)
	if bytes.Equal(edited, raw) {
		t.Fatal("the edit did not apply")
	}
	var zb bytes.Buffer
	zw := gzip.NewWriter(&zb)
	zw.Write(edited)
	zw.Close()
	write := func(parts ...[]byte) {
		os.WriteFile(planFile, bytes.Join(parts, []byte("\n")), 0o600)
	}
	write(head, macLine, zb.Bytes())
	code, _, errs := f.run("apply", planFile)
	if code != ExitError || !strings.Contains(errs, "is not authentic") || f.count("ok alice") != 0 {
		t.Fatalf("edited plan: %d %s", code, errs)
	}
	// Without the MAC line.
	write(head, zb.Bytes())
	if code, _, errs := f.run("apply", planFile); code != ExitError || !strings.Contains(errs, "no valid authentication line") {
		t.Fatalf("plan without a MAC: %d %s", code, errs)
	}
	// Made in another workspace (another identity): the same runbook copied.
	other := newFixture(t, `
step "test.flaky" "a" {
  world = local.world
  name  = "alice"
}
`)
	otherPlan := filepath.Join(t.TempDir(), "other.plan")
	if code, _, errs := other.run("plan", "-out", otherPlan, other.dir); code != ExitOK {
		t.Fatal(errs)
	}
	os.RemoveAll(filepath.Join(other.dir, ".switchover"))
	if code, _, errs := other.run("apply", otherPlan); code != ExitError || !strings.Contains(errs, "is not authentic") {
		t.Fatalf("plan of another workspace: %d %s", code, errs)
	}
	// The untouched file applies.
	write(head, macLine, z)
	if code, out, errs := f.run("apply", planFile); code != ExitOK || f.count("ok alice") != 1 {
		t.Fatalf("authentic plan: %d %s %s", code, out, errs)
	}
}

// Runbook output blocks are evaluated after apply from what the steps
// recorded, shown (a sensitive one redacted), and kept in the state (a
// sensitive one sealed).
func TestRunbookOutputsAfterApply(t *testing.T) {
	t.Parallel()
	f := newFixture(t, `
variable "pin" {
  sensitive = true
  default   = "canary-Output-Pin-7"
}
step "test.account" "a" {
  world    = local.world
  account  = "alice"
  password = secret("alice")
}
output "who" { value = step.a.outputs.account }
output "pin" {
  value     = var.pin
  sensitive = true
}
`)
	code, out := f.apply()
	if code != ExitOK || !strings.Contains(out, "Outputs:") || !strings.Contains(out, `who = "alice"`) || !strings.Contains(out, "pin = (sensitive value)") || strings.Contains(out, "canary-Output") {
		t.Fatalf("exit %d\n%s", code, out)
	}
	log, _ := os.ReadFile(filepath.Join(workspace.Path(f.dir), "state.log"))
	if strings.Contains(string(log), "canary-Output") || !strings.Contains(string(log), `"k":"output"`) {
		t.Fatalf("outputs in the state log:\n%s", log)
	}
	code, st, _ := f.run("status", f.dir)
	if code != ExitOK || !strings.Contains(st, `who = "alice"`) || !strings.Contains(st, "pin = (sensitive value)") {
		t.Fatalf("status:\n%s", st)
	}
}

// One instance that cannot be planned fails alone: the step's other
// instances are applied, then the run halts (on_failure = halt), and what
// depends on the step does not run. A step none of whose instances can be
// planned stops the apply before anything changes.
func TestAnInstanceThatCannotBePlannedFailsAlone(t *testing.T) {
	t.Parallel()
	f := newFixture(t, `
step "test.flaky" "each" {
  for_each   = toset(["a", "b", "c"])
  world      = local.world
  name       = each.value
  plan_fails = each.value == "b"
}
step "test.flaky" "after" {
  world      = local.world
  name       = "after"
  depends_on = [step.each]
}
`)
	code, out := f.apply("-parallelism", "1")
	if code != ExitError {
		t.Fatalf("exit %d\n%s", code, out)
	}
	st := f.states()
	for _, a := range []string{`step.each["a"]`, `step.each["c"]`} {
		if s := st[a]; s == nil || s.Status != state.Done {
			t.Errorf("%s: %+v\n%s", a, s, out)
		}
	}
	if s := st[`step.each["b"]`]; s == nil || s.Status != state.Failed || !strings.Contains(s.Error, "cannot plan b") {
		t.Errorf(`step.each["b"]: %+v`, s)
	}
	if f.count("try after") != 0 {
		t.Errorf("a dependent of the failed step ran\n%s", out)
	}
	g := newFixture(t, `
step "test.flaky" "never" {
  world      = local.world
  name       = "never"
  plan_fails = true
}
step "test.flaky" "other" {
  world = local.world
  name  = "other"
}
`)
	if code, out := g.apply(); code != ExitError || g.count("try other") != 0 || !strings.Contains(out, "cannot plan never") {
		t.Fatalf("a step that cannot be planned at all: exit %d, %d tries of other\n%s", code, g.count("try other"), out)
	}
}
