package cli

import (
	"bytes"
	"fmt"
	"math/rand"
	"net"
	"net/url"
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
	makeRepo(t, template, oldPw, src, "h1")
	seed := time.Now().UnixNano()
	rng := rand.New(rand.NewSource(seed))
	for scenario := 0; scenario < 2; scenario++ {
		repo := filepath.Join(t.TempDir(), "repo")
		if out, err := exec.Command("cp", "-a", template, repo).CombinedOutput(); err != nil {
			t.Fatalf("%v %s", err, out)
		}
		f := newFixture(t, fmt.Sprintf(`
plugin "backup" {
  repository       = %q
  password         = %q
  rotated_password = secret("restic")
}
step "backup.restic_rotate_key" "key" {
  new_password = secret("restic")
}
# After the rotation, in the same run and in every resumed one: the
# plugin turns to the rotated password.
step "backup.restic_verify" "after" {
  hosts        = ["h1"]
  sample_files = 1
  depends_on   = [step.key]
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

// makeRepo makes a restic repository with a snapshot of src for each host.
func makeRepo(t *testing.T, repo, pw, src string, hosts ...string) {
	t.Helper()
	if err := resticAs(repo, pw, src, "init"); err != nil {
		t.Fatal(err)
	}
	for _, h := range hosts {
		if err := resticAs(repo, pw, src, "backup", "--host", h, "."); err != nil {
			t.Fatal(err)
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

// TestBackupMigrationKilledAndResumed kills `switchover apply` at ten
// random instants while it rotates a repository's key and migrates it to a
// new repository with a master key of its own, resumes it, and checks: the
// stored password opens the new repository, which holds a copy of every
// snapshot with the same files; the old provider's key file with its
// password opens nothing there; the old repository is still readable.
func TestBackupMigrationKilledAndResumed(t *testing.T) {
	t.Parallel()
	const oldPw = "old-provider-repo-pw"
	src := t.TempDir()
	for i := 0; i < 4; i++ {
		b := make([]byte, 1<<20)
		rand.New(rand.NewSource(int64(i))).Read(b)
		os.WriteFile(filepath.Join(src, fmt.Sprintf("data%d.bin", i)), b, 0o644)
	}
	repo := filepath.Join(t.TempDir(), "repo")
	makeRepo(t, repo, oldPw, src, "h1", "h2")
	oldKeys, _ := filepath.Glob(filepath.Join(repo, "keys", "*"))
	oldKey, _ := os.ReadFile(oldKeys[0])
	to := filepath.Join(t.TempDir(), "new")
	f := newFixture(t, fmt.Sprintf(`
plugin "backup" {
  repository       = %q
  password         = %q
  rotated_password = secret("restic")
}
step "backup.restic_rotate_key" "key" {
  new_password = secret("restic")
}
step "backup.restic_migrate" "move" {
  to           = %q
  new_password = secret("restic")
  sample_files = 2
  depends_on   = [step.key]
}
`, repo, oldPw, to))
	seed := time.Now().UnixNano()
	rng := rand.New(rand.NewSource(seed))
	kills, mid := killAndResume(t, f, 10, func() time.Duration { return time.Duration(100+rng.Intn(2500)) * time.Millisecond })
	t.Logf("seed %d: %d kills, %d mid-step", seed, kills, mid)
	pw := secretValue(t, f.dir, "restic")
	for _, host := range []string{"h1", "h2"} {
		out := t.TempDir()
		if err := resticAs(to, pw, src, "restore", "latest", "--host", host, "--target", out); err != nil {
			t.Fatalf("seed %d: the new repository with the stored password: %v", seed, err)
		}
		for i := 0; i < 4; i++ {
			a, _ := os.ReadFile(filepath.Join(src, fmt.Sprintf("data%d.bin", i)))
			b, _ := os.ReadFile(filepath.Join(out, fmt.Sprintf("data%d.bin", i))) // restic restores a single path's content at the target
			if !bytes.Equal(a, b) {
				var found []string
				filepath.Walk(out, func(p string, _ os.FileInfo, _ error) error { found = append(found, p); return nil })
				t.Fatalf("seed %d: data%d.bin of %s differs in the new repository (%d and %d bytes; restored: %v)", seed, i, host, len(a), len(b), found)
			}
		}
	}
	// The old provider's copy of its key file, with its password.
	os.WriteFile(filepath.Join(to, "keys", filepath.Base(oldKeys[0])), oldKey, 0o600)
	if err := resticAs(to, oldPw, src, "cat", "config"); err == nil {
		t.Fatalf("seed %d: the old key file and password open the new repository", seed)
	}
	os.Remove(filepath.Join(to, "keys", filepath.Base(oldKeys[0])))
	if err := resticAs(repo, pw, src, "snapshots"); err != nil {
		t.Fatalf("seed %d: the old repository: %v", seed, err)
	}
	if code, out := f.apply(); code != ExitOK {
		t.Fatalf("seed %d: a second apply: exit %d\n%s", seed, code, out)
	}
}

// The example runbook runbooks/backups on a real repository: the
// backups are verified, the key is rotated, the backups are moved to a
// repository with a master key of its own, and the run waits for the
// person who updates the backup clients.
func TestBackupExampleRunbook(t *testing.T) {
	t.Parallel()
	const oldPw = "old-provider-repo-pw"
	src := t.TempDir()
	os.WriteFile(filepath.Join(src, "file.txt"), []byte("data\n"), 0o644)
	repo := filepath.Join(t.TempDir(), "repo")
	makeRepo(t, repo, oldPw, src, "office-nas")
	body, err := os.ReadFile("../../runbooks/backups/main.sw.hcl")
	if err != nil {
		t.Fatal(err)
	}
	f := newFixture(t, "")
	os.WriteFile(filepath.Join(f.dir, "main.sw.hcl"), body, 0o644)
	to := filepath.Join(t.TempDir(), "new")
	vars := fmt.Sprintf(`{"repository": %q, "password": %q, "hosts": ["office-nas"], "new_repository": %q}`, repo, oldPw, to)
	os.WriteFile(filepath.Join(f.dir, "vars.json"), []byte(vars), 0o600)
	code, out := f.apply("-var-file", filepath.Join(f.dir, "vars.json"))
	if code != ExitWaiting || !strings.Contains(out, "1 backup sets of 1 hosts backed up within 26h0m0s, check passed (5% of the data read), 1 files restored and verified") {
		t.Fatalf("apply: exit %d\n%s", code, out)
	}
	if err := resticAs(repo, secretValue(t, f.dir, "restic/office"), src, "snapshots"); err != nil {
		t.Fatalf("the new password: %v", err)
	}
	if err := resticAs(to, secretValue(t, f.dir, "restic/office"), src, "restore", "latest", "--target", t.TempDir()); err != nil {
		t.Fatalf("the new repository: %v", err)
	}
	_, md, _ := f.run("handover", f.dir)
	if !strings.Contains(md, "Delete the old repository") || !strings.Contains(md, "old master key") {
		t.Fatalf("the checklist does not say the old repository shares the old master key:\n%s", md)
	}
	if err := resticAs(repo, oldPw, src, "snapshots"); err == nil {
		t.Fatal("the old password still opens the repository")
	}
}

// restServer starts Debian's rclone as a restic REST server with basic
// auth on loopback and returns its address; the test's end stops it. A
// port taken between choosing it and rclone's bind is chosen again.
func restServer(t *testing.T, user, pass string, extra ...string) string {
	t.Helper()
	for try := 0; try < 5; try++ {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		ln.Close()
		cmd := exec.Command("rclone", append([]string{"serve", "restic", "--addr", addr, "--user", user, "--pass", pass, "--config", os.DevNull, t.TempDir()}, extra...)...)
		var log bytes.Buffer
		cmd.Stdout, cmd.Stderr = &log, &log
		if err := cmd.Start(); err != nil {
			t.Fatalf("rclone (CI installs it): %v", err)
		}
		exited := make(chan struct{})
		go func() { cmd.Wait(); close(exited) }()
		for i := 0; i < 200; i++ {
			select {
			case <-exited:
				i = 200 // it did not bind (the port was taken): again
				continue
			default:
			}
			if c, err := net.Dial("tcp", addr); err == nil {
				c.Close()
				t.Cleanup(func() { cmd.Process.Kill(); <-exited })
				return addr
			}
			time.Sleep(50 * time.Millisecond)
		}
		cmd.Process.Kill()
		<-exited
		t.Logf("rclone serve restic on %s did not start: %s", addr, log.String())
	}
	t.Fatal("rclone serve restic did not start")
	return ""
}

// A repository behind a REST server with credentials, migrated to one that
// takes no deletion (append-only): restic takes the credentials
// only in the URL, so the URL is a secret. Given through a sensitive
// variable, its password appears in no file of the workspace (state,
// audit trail, saved plan, checklists), in no output of plan, apply,
// status or handover, in none of its escaped forms; the repository is
// shown as restic shows it (rest:http://USER:***@host/).
func TestBackupRESTRepositoryPasswordStaysSecret(t *testing.T) {
	t.Parallel()
	const restPw = "Canary+Rest7f3e9a1b" // '+' is escaped in the URL
	addr := restServer(t, "backupuser", restPw)
	repo := "rest:http://backupuser:" + url.QueryEscape(restPw) + "@" + addr + "/office"
	const repoPw = "old-provider-repo-pw"
	src := t.TempDir()
	os.WriteFile(filepath.Join(src, "file.txt"), []byte("data\n"), 0o644)
	makeRepo(t, repo, repoPw, src, "office-nas")
	f := newFixture(t, `
variable "repository" { sensitive = true }
variable "new_repository" { sensitive = true }
variable "password" { sensitive = true }
plugin "backup" {
  repository       = var.repository
  password         = var.password
  rotated_password = secret("restic/office")
}
step "backup.restic_snapshots" "before" {}
step "backup.restic_verify" "backups" {
  hosts        = ["office-nas"]
  max_age      = "26h"
  sample_files = 2
}
step "backup.restic_rotate_key" "key" {
  new_password = secret("restic/office")
  depends_on   = [step.backups]
}
step "backup.restic_migrate" "move" {
  to           = var.new_repository
  new_password = secret("restic/office")
  sample_files = 1
  depends_on   = [step.key]
}
`)
	// The new repository on a server that takes no deletion (append-only),
	// with the same credentials.
	newRepo := "rest:http://backupuser:" + url.QueryEscape(restPw) + "@" + restServer(t, "backupuser", restPw, "--append-only") + "/office-new"
	vars := filepath.Join(t.TempDir(), "vars.json") // outside the workspace: it is the input
	os.WriteFile(vars, []byte(fmt.Sprintf(`{"repository": %q, "password": %q, "new_repository": %q}`, repo, repoPw, newRepo)), 0o600)
	var outputs strings.Builder
	run := func(args ...string) int {
		code, out, errs := f.run(args...)
		outputs.WriteString(out + errs)
		return code
	}
	planFile := filepath.Join(f.dir, "plan.bin")
	if code := run("plan", "-var-file", vars, "-out", planFile, f.dir); code != ExitOK {
		t.Fatalf("plan: %d\n%s", code, outputs.String())
	}
	run("plan", "-json", "-var-file", vars, f.dir)
	if code := run("apply", "-auto-approve", "-var-file", vars, f.dir); code != ExitOK {
		t.Fatalf("apply: %d\n%s", code, outputs.String())
	}
	run("apply", "-auto-approve", "-json", "-var-file", vars, f.dir)
	run("status", f.dir)
	run("status", "-json", f.dir)
	for _, format := range []string{"markdown", "html", "json"} {
		if code := run("handover", "-format", format, "-out", filepath.Join(f.dir, "checklist."+format), f.dir); code != ExitOK {
			t.Fatalf("handover -format %s: %d\n%s", format, code, outputs.String())
		}
	}
	run("handover", f.dir)
	if err := resticAs(repo, secretValue(t, f.dir, "restic/office"), src, "snapshots"); err != nil {
		t.Fatalf("the new password does not open the repository: %v", err)
	}
	if err := resticAs(newRepo, secretValue(t, f.dir, "restic/office"), src, "restore", "latest", "--target", t.TempDir()); err != nil {
		t.Fatalf("the migrated repository on the REST server: %v", err)
	}
	forms := []string{restPw, url.QueryEscape(restPw), url.PathEscape(restPw), strings.ReplaceAll(restPw, "+", `\u002b`), strings.ReplaceAll(restPw, "+", " ")}
	check := func(where, text string) {
		for _, form := range forms {
			if strings.Contains(text, form) {
				t.Errorf("the REST password (as %q) is in %s", form, where)
			}
		}
	}
	check("the output", outputs.String())
	files := 0
	filepath.Walk(f.dir, func(p string, fi os.FileInfo, err error) error {
		if err == nil && fi.Mode().IsRegular() {
			b, _ := os.ReadFile(p)
			check(p, string(b))
			files++
		}
		return nil
	})
	if files < 6 {
		t.Fatalf("only %d files in the workspace: was anything written?", files)
	}
	md, _ := os.ReadFile(filepath.Join(f.dir, "checklist.markdown"))
	if want := "restic repository rest:http://backupuser:***@" + addr + "/office"; !strings.Contains(string(md), want) {
		t.Errorf("the checklist does not name the repository as %q:\n%s", want, md)
	}
}
