package cli

import (
	"fmt"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestBackupKeyRotationKilledAndResumed kills `switchover apply` with
// SIGKILL at random moments while it rotates a real restic repository's
// key, resumes it, and then checks what the new provider relies on: the
// password in the secret store opens the repository, it is the only key,
// and the old provider's password opens nothing.
func TestBackupKeyRotationKilledAndResumed(t *testing.T) {
	t.Parallel()
	const oldPw = "old-provider-repo-pw"
	src := t.TempDir()
	os.WriteFile(filepath.Join(src, "file.txt"), []byte("data\n"), 0o644)
	template := filepath.Join(t.TempDir(), "repo")
	for _, args := range [][]string{{"init"}, {"backup", "--host", "h1", "."}} {
		if err := resticAs(template, oldPw, src, args...); err != nil {
			t.Fatal(err)
		}
	}
	seed := time.Now().UnixNano()
	rng := rand.New(rand.NewSource(seed))
	for scenario := 0; scenario < 2; scenario++ {
		repo := filepath.Join(t.TempDir(), "repo")
		if out, err := exec.Command("cp", "-a", template, repo).CombinedOutput(); err != nil {
			t.Fatalf("%v %s", err, out)
		}
		f := newFixture(t, fmt.Sprintf(`
plugin "backup" {
  repository = %q
  password   = %q
}
step "backup.restic_rotate_key" "key" {
  new_password = secret("restic")
}
`, repo, oldPw))
		kills, mid := killAndResume(t, f, 2, func() time.Duration { return time.Duration(200+rng.Intn(2000)) * time.Millisecond })
		t.Logf("seed %d, scenario %d: %d kills, %d mid-step", seed, scenario, kills, mid)
		pw := secretValue(t, f.dir, "restic")
		if err := resticAs(repo, pw, src, "snapshots"); err != nil {
			t.Fatalf("seed %d: the stored password does not open the repository: %v", seed, err)
		}
		if err := resticAs(repo, oldPw, src, "snapshots"); err == nil {
			t.Fatalf("seed %d: the old provider's password still opens the repository", seed)
		}
		keys, _ := filepath.Glob(filepath.Join(repo, "keys", "*"))
		if len(keys) != 1 {
			t.Fatalf("seed %d: %d keys in the repository, want 1", seed, len(keys))
		}
	}
}

func resticAs(repo, pw, dir string, args ...string) error {
	cmd := exec.Command("restic", append([]string{"-q"}, args...)...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "RESTIC_REPOSITORY="+repo, "RESTIC_PASSWORD="+pw, "RESTIC_CACHE_DIR="+filepath.Join(os.TempDir(), "switchover-test-restic-cache"))
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("restic %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// The example runbook runbooks/backups on a real repository: the
// backups are verified, the key is rotated, and the run waits for the
// person who updates the backup clients.
func TestBackupExampleRunbook(t *testing.T) {
	t.Parallel()
	const oldPw = "old-provider-repo-pw"
	src := t.TempDir()
	os.WriteFile(filepath.Join(src, "file.txt"), []byte("data\n"), 0o644)
	repo := filepath.Join(t.TempDir(), "repo")
	for _, args := range [][]string{{"init"}, {"backup", "--host", "office-nas", "."}} {
		if err := resticAs(repo, oldPw, src, args...); err != nil {
			t.Fatal(err)
		}
	}
	body, err := os.ReadFile("../../runbooks/backups/main.sw.hcl")
	if err != nil {
		t.Fatal(err)
	}
	f := newFixture(t, "")
	os.WriteFile(filepath.Join(f.dir, "main.sw.hcl"), body, 0o644)
	vars := fmt.Sprintf(`{"repository": %q, "password": %q, "hosts": ["office-nas"]}`, repo, oldPw)
	os.WriteFile(filepath.Join(f.dir, "vars.json"), []byte(vars), 0o600)
	code, out := f.apply("-var-file", filepath.Join(f.dir, "vars.json"))
	if code != ExitWaiting || !strings.Contains(out, "1 hosts backed up within 26h0m0s, check passed (5% of the data read), 1 files restored and matched") {
		t.Fatalf("apply: exit %d\n%s", code, out)
	}
	if err := resticAs(repo, secretValue(t, f.dir, "restic/office"), src, "snapshots"); err != nil {
		t.Fatalf("the new password: %v", err)
	}
	if err := resticAs(repo, oldPw, src, "snapshots"); err == nil {
		t.Fatal("the old password still opens the repository")
	}
}
