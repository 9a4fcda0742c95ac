package backup

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/zclconf/go-cty/cty"

	"github.com/switchover/switchover/internal/testing/sshlab"
	"github.com/switchover/switchover/plugins/sdk"
	"github.com/switchover/switchover/plugins/sdk/sdktest"
)

// One real restic repository, made in TestMain (restic init derives a key
// for seconds); each test works on a copy of it. It holds a fresh snapshot
// of host h1 and one of host "old" from 2020.
var (
	template string
	srcDir   string
)

const oldPw = "old-provider-repo-pw"

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "backup-plugin-")
	if err == nil {
		err = makeTemplate(dir)
	}
	if err != nil {
		// Never a silent skip: CI installs restic.
		fmt.Fprintf(os.Stderr, "cannot make the test repository: %v\n", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func makeTemplate(dir string) error {
	srcDir = filepath.Join(dir, "src")
	os.MkdirAll(filepath.Join(srcDir, "docs"), 0o755)
	big := make([]byte, 600_000)
	rand.Read(big)
	files := map[string][]byte{"docs/contract.txt": []byte("the contract\n"), "docs/notes.md": []byte("# notes\n"), "big.bin": big, "small.txt": []byte("x")}
	for name, b := range files {
		if err := os.WriteFile(filepath.Join(srcDir, name), b, 0o644); err != nil {
			return err
		}
	}
	template = filepath.Join(dir, "repo")
	for _, args := range [][]string{
		{"init"},
		{"backup", "--host", "h1", "."},
		{"backup", "--host", "old", "--time", "2020-01-01 00:00:00", "."},
	} {
		if err := restic(template, oldPw, srcDir, args...); err != nil {
			return err
		}
	}
	return nil
}

// restic runs restic as a person would, in dir.
func restic(repo, pw, dir string, args ...string) error {
	cmd := exec.Command("restic", append([]string{"-q"}, args...)...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "RESTIC_REPOSITORY="+repo, "RESTIC_PASSWORD="+pw, "RESTIC_CACHE_DIR="+filepath.Join(os.TempDir(), "switchover-test-restic-cache"))
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("restic %s: %v: %s", strings.Join(args, " "), err, out)
	}
	return nil
}

// repoCopy is a copy of the template for one test.
func repoCopy(t *testing.T) string {
	t.Helper()
	dst := filepath.Join(t.TempDir(), "repo")
	if out, err := exec.Command("cp", "-a", template, dst).CombinedOutput(); err != nil {
		t.Fatalf("%v %s", err, out)
	}
	return dst
}

func harness(t *testing.T, repo string, set map[string]cty.Value) *sdktest.Harness {
	t.Helper()
	cfg := map[string]cty.Value{"repository": cty.StringVal(repo), "password": cty.StringVal(oldPw), "cache_dir": cty.StringVal(t.TempDir())}
	for k, v := range set {
		cfg[k] = v
	}
	h := &sdktest.Harness{P: New("test")}
	if err := h.Configure(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
	return h
}

func strs(ss ...string) cty.Value {
	var vs []cty.Value
	for _, s := range ss {
		vs = append(vs, cty.StringVal(s))
	}
	return cty.ListVal(vs)
}

// A fresh backup passes, and the evidence is right: the restored files'
// SHA-256 are those of the files that were backed up.
func TestVerifyFreshBackup(t *testing.T) {
	t.Parallel()
	h := harness(t, repoCopy(t), nil)
	p, err := h.Plan(context.Background(), "restic_verify", map[string]cty.Value{
		"hosts": strs("h1"), "max_age": cty.StringVal("1h"), "read_data_subset": cty.StringVal("all"), "sample_files": cty.NumberIntVal(3)}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if p.Kind != sdk.NoChange || !strings.Contains(p.Summary, "1 backup sets of 1 hosts backed up within 1h0m0s, check passed (all data read), 3 files restored and verified") {
		t.Fatalf("plan: %v %s", p.Kind, p.Summary)
	}
	restored := p.Outputs["restored"].AsValueSlice()
	if len(restored) != 3 {
		t.Fatalf("%d files restored", len(restored))
	}
	for _, r := range restored {
		path := r.GetAttr("path").AsString()
		want, err := sdk.FileSHA256(filepath.Join(srcDir, strings.TrimPrefix(path, "/")))
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		if r.GetAttr("sha256").AsString() != want {
			t.Fatalf("%s: evidence sha256 %s, the backed-up file has %s", path, r.GetAttr("sha256").AsString(), want)
		}
	}
}

// The evidence is bad: each failure says what is wrong.
func TestVerifyFailsOnBadEvidence(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	// An old backup.
	_, err := harness(t, repoCopy(t), nil).Plan(ctx, "restic_verify", map[string]cty.Value{"hosts": strs("old"), "max_age": cty.StringVal("24h")}, nil)
	if err == nil || !strings.Contains(err.Error(), "the latest snapshot of old") || !strings.Contains(err.Error(), "more than max_age 24h0m0s") {
		t.Errorf("an old backup: %v", err)
	}
	// A host with no backup.
	_, err = harness(t, repoCopy(t), nil).Plan(ctx, "restic_verify", map[string]cty.Value{"hosts": strs("h9")}, nil)
	if err == nil || !strings.Contains(err.Error(), "has no snapshot of host h9") {
		t.Errorf("a missing host: %v", err)
	}
	// A deleted pack file: check fails and names the pack.
	repo := repoCopy(t)
	packs, _ := filepath.Glob(filepath.Join(repo, "data", "*", "*"))
	os.Remove(packs[0])
	_, err = harness(t, repo, nil).Plan(ctx, "restic_verify", map[string]cty.Value{"hosts": strs("h1"), "sample_files": cty.NumberIntVal(0)}, nil)
	if err == nil || !strings.Contains(err.Error(), "restic check of") || !strings.Contains(err.Error(), filepath.Base(packs[0])+": does not exist") {
		t.Errorf("a deleted pack: %v", err)
	}
	// A corrupted byte in a pack: a plain check passes it, the test
	// restore does not.
	repo = repoCopy(t)
	packs, _ = filepath.Glob(filepath.Join(repo, "data", "*", "*"))
	for _, p := range packs {
		if fi, _ := os.Stat(p); fi.Size() > 500_000 {
			f, _ := os.OpenFile(p, os.O_WRONLY, 0)
			f.WriteAt([]byte("XXXXXXXX"), 4000)
			f.Close()
		}
	}
	_, err = harness(t, repo, nil).Plan(ctx, "restic_verify", map[string]cty.Value{"hosts": strs("h1"), "files": strs("/big.bin")}, nil)
	if err == nil || !strings.Contains(err.Error(), "/big.bin") {
		t.Errorf("a corrupted pack: %v", err)
	}
}

// Rotation: afterwards the old password opens nothing, the new one opens
// the repository, and it is the only key. Killed after the add (the new
// key there, the old one too), the next run removes the old key.
func TestRotateKey(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	newPw := "new-provider-repo-pw"
	for _, crashed := range []bool{false, true} {
		repo := repoCopy(t)
		if crashed {
			f := filepath.Join(t.TempDir(), "pw")
			os.WriteFile(f, []byte(newPw), 0o600)
			if err := restic(repo, oldPw, t.TempDir(), "key", "add", "--new-password-file", f); err != nil {
				t.Fatal(err)
			}
		}
		h := harness(t, repo, nil)
		attrs := map[string]cty.Value{"new_password": cty.StringVal(newPw)}
		p, err := h.Plan(ctx, "restic_rotate_key", attrs, nil)
		if err != nil || p.Kind != sdk.Change {
			t.Fatalf("plan: %+v %v", p, err)
		}
		if crashed != !strings.Contains(p.Summary, "add a key") {
			t.Fatalf("crashed=%v: %s", crashed, p.Summary)
		}
		if _, err := h.Run(ctx, "restic_rotate_key", attrs); err != nil {
			t.Fatal(err)
		}
		if err := restic(repo, oldPw, t.TempDir(), "snapshots"); err == nil {
			t.Fatal("the old provider's password still opens the repository")
		}
		keys, opens, err := (&settings{repo: repo, restic: "restic", cacheDir: t.TempDir(), timeout: 60e9}).keys(ctx, newPw)
		if err != nil || !opens || len(keys) != 1 {
			t.Fatalf("after the rotation: %d keys, opens with the new password: %v (%v)", len(keys), opens, err)
		}
		// Then the plugin's password is set to the new one (as the README
		// says): the rotation is done, not an error.
		h = harness(t, repo, map[string]cty.Value{"password": cty.StringVal(newPw)})
		if p, err := h.Plan(ctx, "restic_rotate_key", attrs, nil); err != nil || p.Kind != sdk.NoChange {
			t.Fatalf("plan with the new password as the plugin's: %+v %v", p, err)
		}
	}
	// The old password given as the new one, while other keys remain: a
	// mistake, refused (nothing would be rotated).
	repo := repoCopy(t)
	f := filepath.Join(t.TempDir(), "pw")
	os.WriteFile(f, []byte(newPw), 0o600)
	if err := restic(repo, oldPw, t.TempDir(), "key", "add", "--new-password-file", f); err != nil {
		t.Fatal(err)
	}
	h := harness(t, repo, nil)
	if _, err := h.Plan(ctx, "restic_rotate_key", map[string]cty.Value{"new_password": cty.StringVal(oldPw)}, nil); err == nil || !strings.Contains(err.Error(), "current password and other keys remain") {
		t.Fatalf("new_password = the current password with another key: %v", err)
	}
}

// The same verification over sftp: through a real sshd lab host.
func TestVerifyOverSFTP(t *testing.T) {
	t.Parallel()
	lab := sshlab.Start(t, sshlab.Options{Hosts: 1})
	host := lab.Hosts[0]
	sftpCmd := fmt.Sprintf("ssh -i %s -p %d -o UserKnownHostsFile=%s -o StrictHostKeyChecking=yes -o BatchMode=yes root@127.0.0.1 -s sftp", lab.AdminKeyFile, host.Port, lab.KnownHosts)
	repo := "sftp:root@127.0.0.1:/srv/repo"
	cmd := exec.Command("restic", "-q", "-o", "sftp.command="+sftpCmd, "init")
	cmd.Env = append(os.Environ(), "RESTIC_REPOSITORY="+repo, "RESTIC_PASSWORD="+oldPw, "RESTIC_CACHE_DIR="+t.TempDir())
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("restic init over sftp: %v %s", err, out)
	}
	cmd = exec.Command("restic", "-q", "-o", "sftp.command="+sftpCmd, "backup", "--host", "nas", ".")
	cmd.Dir, cmd.Env = srcDir, append(os.Environ(), "RESTIC_REPOSITORY="+repo, "RESTIC_PASSWORD="+oldPw, "RESTIC_CACHE_DIR="+t.TempDir())
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("restic backup over sftp: %v %s", err, out)
	}
	h := harness(t, repo, map[string]cty.Value{"options": cty.MapVal(map[string]cty.Value{"sftp.command": cty.StringVal(sftpCmd)})})
	p, err := h.Plan(context.Background(), "restic_verify", map[string]cty.Value{"hosts": strs("nas"), "read_data_subset": cty.StringVal("50%"), "sample_files": cty.NumberIntVal(2)}, nil)
	if err != nil || p.Kind != sdk.NoChange || len(p.Outputs["restored"].AsValueSlice()) != 2 {
		t.Fatalf("verify over sftp: %+v %v", p, err)
	}
	if out := host.MustRun(t, "ls /srv/repo"); !strings.Contains(out, "keys") {
		t.Fatalf("the repository is not on the host: %q", out)
	}
	// Migrated to a new repository on the same host over sftp.
	newPw := "new-provider-repo-pw"
	attrs := map[string]cty.Value{"to": cty.StringVal("sftp:root@127.0.0.1:/srv/new"), "new_password": cty.StringVal(newPw), "sample_files": cty.NumberIntVal(1)}
	if _, err := h.Run(context.Background(), "restic_migrate", attrs); err != nil {
		t.Fatalf("migrate over sftp: %v", err)
	}
	if p, err := h.Plan(context.Background(), "restic_migrate", attrs, nil); err != nil || p.Kind != sdk.NoChange {
		t.Fatalf("a second plan of the migration over sftp: %+v %v", p, err)
	}
	if out := host.MustRun(t, "ls /srv/new"); !strings.Contains(out, "config") {
		t.Fatalf("the new repository is not on the host: %q", out)
	}
}

// The list for the handover, with what a retention policy keeps.
func TestSnapshots(t *testing.T) {
	t.Parallel()
	p, err := harness(t, repoCopy(t), nil).Plan(context.Background(), "restic_snapshots", map[string]cty.Value{"keep_last": cty.NumberIntVal(1)}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if n := len(p.Outputs["snapshots"].AsValueSlice()); n != 2 {
		t.Fatalf("%d snapshots", n)
	}
	if n := len(p.Outputs["latest"].AsValueSlice()); n != 2 {
		t.Fatalf("%d latest", n)
	}
	// keep_last 1 per host (restic groups by host and paths): both kept.
	if n := len(p.Outputs["kept_by_policy"].AsValueSlice()); n != 2 {
		t.Fatalf("kept: %d", n)
	}
}

// A host with two backup sets (host and paths, as restic groups them):
// /etc this morning, the data 9 days ago. Without paths every set must be
// fresh; paths selects the sets.
func TestFreshnessPerBackupSet(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	repo := repoCopy(t)
	etc := filepath.Join(t.TempDir(), "etc")
	os.MkdirAll(etc, 0o755)
	os.WriteFile(filepath.Join(etc, "hosts"), []byte("127.0.0.1 localhost\n"), 0o644)
	nineDays := time.Now().Add(-9 * 24 * time.Hour).Format("2006-01-02 15:04:05")
	if err := restic(repo, oldPw, srcDir, "backup", "--host", "h2", "--time", nineDays, srcDir); err != nil {
		t.Fatal(err)
	}
	if err := restic(repo, oldPw, etc, "backup", "--host", "h2", etc); err != nil {
		t.Fatal(err)
	}
	h := harness(t, repo, nil)
	verify := func(paths ...string) error {
		a := map[string]cty.Value{"hosts": strs("h2"), "sample_files": cty.NumberIntVal(1)}
		if paths != nil {
			a["paths"] = strs(paths...)
		}
		_, err := h.Plan(ctx, "restic_verify", a, nil)
		return err
	}
	if err := verify(); err == nil || !strings.Contains(err.Error(), "backup set "+srcDir) || !strings.Contains(err.Error(), "9d old") {
		t.Fatalf("every set, the data set 9 days old: %v", err)
	}
	if err := verify(srcDir); err == nil || !strings.Contains(err.Error(), "9d old") {
		t.Fatalf("paths = the data: %v", err)
	}
	if err := verify(etc); err != nil {
		t.Fatalf("paths = /etc, backed up now: %v", err)
	}
	if err := verify("/nowhere"); err == nil || !strings.Contains(err.Error(), "no backup set of /nowhere") {
		t.Fatalf("a path no set backs up: %v", err)
	}
}

// A rotation killed between adding the key and removing the old ones
// resumes whichever password the plugin is given: the old one, or the new
// (stored) one, which the rotation's checkpoint shows to be its own. With
// rotated_password, the old password stops working and nothing breaks.
func TestRotationResumesWithEitherPassword(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	newPw := "new-provider-repo-pw"
	for _, plugPw := range []string{oldPw, newPw} {
		repo := repoCopy(t)
		started := time.Now()
		if err := (&settings{repo: repo, restic: "restic", cacheDir: t.TempDir(), tmpDir: t.TempDir(), timeout: 60e9}).addKey(ctx, oldPw, newPw); err != nil {
			t.Fatal(err)
		}
		cp, _ := json.Marshal(rotation{Phase: "adding", Started: started})
		h := harness(t, repo, map[string]cty.Value{"password": cty.StringVal(plugPw)})
		attrs := map[string]cty.Value{"new_password": cty.StringVal(newPw)}
		p, err := h.Plan(ctx, "restic_rotate_key", attrs, cp)
		if err != nil || p.Kind != sdk.Change || strings.Contains(p.Summary, "add a key") {
			t.Fatalf("password %s: the resumed plan: %+v %v", plugPw, p, err)
		}
		if _, _, err := h.Apply(ctx, "restic_rotate_key", attrs, p, cp); err != nil {
			t.Fatalf("password %s: %v", plugPw, err)
		}
		if err := restic(repo, oldPw, t.TempDir(), "snapshots"); err == nil {
			t.Fatalf("password %s: the old password still opens the repository", plugPw)
		}
	}
	// Without the checkpoint, the stored password as the plugin's and as
	// new_password while other keys remain is still refused.
	repo := repoCopy(t)
	if err := (&settings{repo: repo, restic: "restic", cacheDir: t.TempDir(), tmpDir: t.TempDir(), timeout: 60e9}).addKey(ctx, oldPw, newPw); err != nil {
		t.Fatal(err)
	}
	h := harness(t, repo, map[string]cty.Value{"password": cty.StringVal(newPw)})
	if _, err := h.Plan(ctx, "restic_rotate_key", map[string]cty.Value{"new_password": cty.StringVal(newPw)}, nil); err == nil || !strings.Contains(err.Error(), "other keys remain") {
		t.Fatalf("no checkpoint: %v", err)
	}
	// rotated_password: the old password no longer opens, the plugin turns
	// to the rotated one.
	repo = repoCopy(t)
	h = harness(t, repo, map[string]cty.Value{"rotated_password": cty.StringVal(newPw)})
	if _, err := h.Run(ctx, "restic_rotate_key", map[string]cty.Value{"new_password": cty.StringVal(newPw)}); err != nil {
		t.Fatal(err)
	}
	h = harness(t, repo, map[string]cty.Value{"rotated_password": cty.StringVal(newPw)})
	// Several commands: each after the first uses the rotated password.
	if _, err := h.Plan(ctx, "restic_verify", map[string]cty.Value{"hosts": strs("h1"), "sample_files": cty.NumberIntVal(1)}, nil); err != nil {
		t.Fatalf("after the rotation, with the old password configured: %v", err)
	}
}

// restic's retry noise is dropped, its reason lines kept.
func TestResticErrorKeepsTheReason(t *testing.T) {
	r := &result{exit: 1, stderr: []byte(`Load(<data/1234abcd>, 0, 0) returned error, retrying after 552.330144ms: open /r/data/12/1234: no such file
Load(<data/1234abcd>, 0, 0) returned error, retrying after 1.080381816s: open /r/data/12/1234: no such file
Load(<data/1234abcd>, 0, 0) returned error, retrying after 1.31013006s: open /r/data/12/1234: no such file
Load(<data/1234abcd>, 0, 0) returned error, retrying after 1.582392691s: open /r/data/12/1234: no such file
ignoring error for /big.bin: id 1234abcd not found in repository
Fatal: There were 1 errors
`)}
	got := resticError(r)
	if strings.Contains(got, "retrying") || !strings.Contains(got, "id 1234abcd not found in repository") || !strings.Contains(got, "Fatal") {
		t.Fatalf("%q", got)
	}
}

// The plugin's temporary directory is its own (0700); one a killed run
// left is removed by the next; restored samples leave nothing behind.
func TestTemporaryFilesAreRemoved(t *testing.T) {
	t.Parallel()
	cache := filepath.Join(t.TempDir(), "cache", "restic")
	root := filepath.Join(filepath.Dir(cache), "restic-tmp")
	// A dead process's leftovers (pid 2^22 + 1 is above Linux's pid_max).
	left := filepath.Join(root, "4194305", "restore-1")
	os.MkdirAll(left, 0o700)
	os.WriteFile(filepath.Join(left, "secret.txt"), []byte("x"), 0o600)
	h := harness(t, repoCopy(t), map[string]cty.Value{"cache_dir": cty.StringVal(cache)})
	if _, err := os.Stat(left); !os.IsNotExist(err) {
		t.Fatalf("a killed run's restored files are still there: %v", err)
	}
	if fi, err := os.Stat(root); err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("the temporary directory: %v %v", fi.Mode(), err)
	}
	if _, err := h.Plan(context.Background(), "restic_verify", map[string]cty.Value{"hosts": strs("h1"), "sample_files": cty.NumberIntVal(2)}, nil); err != nil {
		t.Fatal(err)
	}
	entries, _ := os.ReadDir(filepath.Join(root, strconv.Itoa(os.Getpid())))
	if len(entries) != 0 {
		t.Fatalf("the verify left %d entries", len(entries))
	}
}

// restic_migrate: a new repository with a master key of its own holds a
// copy of every snapshot; the old provider's key file with its password
// opens nothing there; the old repository is untouched; a second plan is
// a no-op, and the deletion of the old one is left to a person.
func TestMigrate(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	repo := repoCopy(t)
	oldKeys, _ := filepath.Glob(filepath.Join(repo, "keys", "*"))
	to := filepath.Join(t.TempDir(), "new")
	newPw := "new-provider-repo-pw"
	// A killed init left a key file and no config: cleaned, not refused.
	os.MkdirAll(filepath.Join(to, "keys"), 0o700)
	os.WriteFile(filepath.Join(to, "keys", "0123abcd"), []byte("{}"), 0o600)
	h := harness(t, repo, nil)
	attrs := map[string]cty.Value{"to": cty.StringVal(to), "new_password": cty.StringVal(newPw), "read_data_subset": cty.StringVal("all"), "sample_files": cty.NumberIntVal(2)}
	p, err := h.Plan(ctx, "restic_migrate", attrs, nil)
	if err != nil || p.Kind != sdk.Change || !strings.Contains(p.Summary, "copy 2 of 2 snapshots") {
		t.Fatalf("plan: %+v %v", p, err)
	}
	r, err := h.Run(ctx, "restic_migrate", attrs)
	if err != nil || !strings.Contains(r.Summary, "holds the 2 snapshots") || len(r.Diagnostics) != 1 || r.Diagnostics[0].Code != sdk.CodeLeftForPerson {
		t.Fatalf("apply: %+v %v", r, err)
	}
	if p, err := h.Plan(ctx, "restic_migrate", attrs, nil); err != nil || p.Kind != sdk.NoChange {
		t.Fatalf("second plan: %+v %v", p, err)
	}
	if err := restic(to, newPw, t.TempDir(), "snapshots"); err != nil {
		t.Fatalf("the new password: %v", err)
	}
	// The old provider kept a copy of its key file: put it in the new
	// repository, with its password it opens nothing.
	b, _ := os.ReadFile(oldKeys[0])
	os.WriteFile(filepath.Join(to, "keys", filepath.Base(oldKeys[0])), b, 0o600)
	if err := restic(to, oldPw, t.TempDir(), "cat", "config"); err == nil {
		t.Fatal("the old provider's key file and password open the new repository")
	}
	os.Remove(filepath.Join(to, "keys", filepath.Base(oldKeys[0])))
	if err := restic(repo, oldPw, t.TempDir(), "snapshots"); err != nil {
		t.Fatalf("the old repository was changed: %v", err)
	}
	if _, err := h.Plan(ctx, "restic_migrate", map[string]cty.Value{"to": cty.StringVal(repo), "new_password": cty.StringVal(newPw)}, nil); err == nil {
		t.Fatal("a migration onto itself")
	}
}
