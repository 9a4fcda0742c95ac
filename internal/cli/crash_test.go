package cli

import (
	"bytes"
	"fmt"
	"github.com/switchover/switchover/internal/operation"
	"math/rand"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/switchover/switchover/internal/audit"
	"github.com/switchover/switchover/internal/secrets"
	"github.com/switchover/switchover/internal/state"
	"github.com/switchover/switchover/internal/testing/testplugin"
)

const crashRunbook = `
variable "accounts" {
  default = ["root", "admin", "backup", "svc-rmm", "oldmsp", "scanner", "nas", "web", "db", "mail"]
}
step "core.noop" "pre" {
  for_each = toset([for i in range(20) : "n${i}"])
  message  = each.key
}
step "test.account" "rotate" {
  for_each   = toset(var.accounts)
  depends_on = [step.pre]
  world      = local.world
  account    = each.key
  password   = secret("pw-${each.key}", { length = 24 })
  delay_ms   = 4
}
step "core.noop" "post" {
  for_each = toset(var.accounts)
  message  = step.rotate[each.key].outputs.account
}
`

// TestCrashAndResume kills `switchover apply` with SIGKILL at random moments,
// at least 50 times, resuming after each kill, then checks that every
// password was set exactly once and that every stored secret is the value
// the plugin last received for its account.
func TestCrashAndResume(t *testing.T) {
	seed := time.Now().UnixNano()
	rng := rand.New(rand.NewSource(seed))
	t.Logf("seed %d", seed)
	kills, scenarios, midStep := 0, 0, 0
	for kills < 50 {
		scenarios++
		f := newFixture(t, crashRunbook)
		k, m := killAndResume(t, f, 12, func() time.Duration { return time.Duration(rng.Intn(150)) * time.Millisecond })
		kills, midStep = kills+k, midStep+m
		checkCrashScenario(t, f)
	}
	t.Logf("%d kills over %d scenarios; %d kills left a step running", kills, scenarios, midStep)
	if midStep < 5 {
		t.Fatalf("only %d of %d kills hit a step in progress: the kill times miss the apply", midStep, kills)
	}
}

// killAndResume runs `switchover apply` on f in a child process until it
// finishes by itself: the first `rounds` runs are killed with SIGKILL after
// delay(). Even rounds count the delay from the process start (kills during
// start-up and planning), odd ones from the first step that started, so
// that kills land in the middle of steps however slow the machine is
// (counted from the start only, a loaded machine planned past every kill).
// It returns the kills, and how many left a step running.
func killAndResume(t *testing.T, f *fixture, rounds int, delay func() time.Duration) (kills, midStep int) {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	for round := 0; ; round++ {
		args := append([]string{"apply", "-auto-approve", "-parallelism", "4", "-plugin-dir", f.pluginDir}, f.extraArgs...)
		cmd := exec.Command(exe, append(args, f.dir)...)
		cmd.Env = append(os.Environ(), "SWITCHOVER_TEST_AS_MAIN=1")
		out := &watchWriter{mark: []byte(": started (attempt"), seen: make(chan struct{})}
		cmd.Stdout, cmd.Stderr = out, out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		if round < rounds {
			d := delay()
			kill := func() { cmd.Process.Signal(syscall.SIGKILL) }
			if round%2 == 0 {
				time.AfterFunc(d, kill)
			} else {
				go func() {
					<-out.seen
					time.AfterFunc(d, kill)
				}()
			}
		}
		err := cmd.Wait()
		if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			kills++
			for _, in := range f.states() {
				if in.Status == state.Running {
					midStep++
					break
				}
			}
			continue
		}
		if err != nil {
			t.Fatalf("round %d: apply failed: %v\n%s", round, err, out.String())
		}
		return kills, midStep
	}
}

func checkCrashScenario(t *testing.T, f *fixture) {
	t.Helper()
	st := f.states()
	if len(st) != 40 {
		t.Fatalf("%d instances in the state, want 40", len(st))
	}
	for addr, in := range st {
		if in.Status != state.Done {
			t.Fatalf("%s is %s after the final apply", addr, in.Status)
		}
	}
	sets := map[string][]string{}
	recv := map[string]string{}
	for _, l := range testplugin.Lines(f.world) {
		fs := strings.Fields(l)
		switch fs[0] {
		case "set":
			sets[fs[1]] = append(sets[fs[1]], fs[2])
		case "recv":
			recv[fs[1]] = fs[2]
		}
	}
	ws, err := operation.OpenWorkspace(f.dir)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	id, err := ws.ExistingIdentity("")
	if err != nil {
		t.Fatal(err)
	}
	ws.State.View(func(s *state.Snapshot) {
		if len(s.Secrets) != 10 {
			t.Fatalf("%d secrets, want 10", len(s.Secrets))
		}
		for name, sec := range s.Secrets {
			acct := strings.TrimPrefix(name, "pw-")
			if len(sets[acct]) != 1 {
				t.Errorf("%s: password set %d times, want exactly once", acct, len(sets[acct]))
			}
			if sec.Current == nil || !sec.Current.Verified || sec.Pending != nil {
				t.Errorf("%s: secret not verified: %+v", name, sec)
				continue
			}
			pt, err := secrets.Decrypt(sec.Current.Ciphertext, id)
			if err != nil {
				t.Fatal(err)
			}
			if h := testplugin.Hash(string(pt)); h != recv[acct] || len(sets[acct]) == 0 || h != sets[acct][len(sets[acct])-1] {
				t.Errorf("%s: the stored secret is not the password the plugin last received and set", acct)
			}
		}
	})
	// The audit trail survived the kills with its chain intact.
	_, data, err := operation.ReadTrail(f.dir) // files, or the runbook's backend
	if err != nil {
		t.Fatal(err)
	}
	var seq int64
	var hash string
	ws.State.View(func(s *state.Snapshot) { seq, hash = s.AuditSeq, s.AuditHash })
	if _, problems := audit.Verify(data, seq, hash); len(problems) > 0 {
		t.Errorf("audit trail after kills: %v", problems)
	}
	_ = fmt.Sprint()
}

// watchWriter collects a child's output and closes seen when mark appears.
type watchWriter struct {
	mu   sync.Mutex
	buf  bytes.Buffer
	mark []byte
	seen chan struct{}
	once sync.Once
}

func (w *watchWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf.Write(p)
	if bytes.Contains(w.buf.Bytes(), w.mark) {
		w.once.Do(func() { close(w.seen) })
	}
	return len(p), nil
}

func (w *watchWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}

// killAfter starts `switchover apply` and kills it with SIGKILL after d (if
// it still runs then); it reports whether the kill hit.
func (f *fixture) killAfter(d time.Duration) bool {
	f.t.Helper()
	exe, err := os.Executable()
	if err != nil {
		f.t.Fatal(err)
	}
	args := append([]string{"apply", "-auto-approve", "-parallelism", "4", "-plugin-dir", f.pluginDir}, f.extraArgs...)
	cmd := exec.Command(exe, append(args, f.dir)...)
	cmd.Env = append(os.Environ(), "SWITCHOVER_TEST_AS_MAIN=1")
	if err := cmd.Start(); err != nil {
		f.t.Fatal(err)
	}
	timer := time.AfterFunc(d, func() { cmd.Process.Signal(syscall.SIGKILL) })
	cmd.Wait()
	timer.Stop()
	ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus)
	return ok && ws.Signaled()
}
