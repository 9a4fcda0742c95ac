package runbook

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Runbook files and directories others can change are refused (they would
// run with the caller's rights), and so is a symbolic link that leaves the
// runbook directory; the loud flag lets them through.
func TestRunbookFilesOthersCanChangeAreRefused(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("run as root (CI does): the test changes file owners")
	}
	const body = "runbook \"r\" {}\n"
	mk := func(t *testing.T) string {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, "main.sw.hcl"), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		return dir
	}
	secret := filepath.Join(t.TempDir(), "shadow")
	os.WriteFile(secret, []byte("root:$6$canary-hash:19000:0:99999:7:::\n"), 0o600)
	for name, c := range map[string]struct {
		setup func(dir string)
		want  string
	}{
		"dir 0777":             {func(dir string) { os.Chmod(dir, 0o777) }, "has mode 0777"},
		"file 0666":            {func(dir string) { os.Chmod(filepath.Join(dir, "main.sw.hcl"), 0o666) }, "has mode 0666"},
		"file of another user": {func(dir string) { os.Chown(filepath.Join(dir, "main.sw.hcl"), 65534, 65534) }, "owned by uid 65534"},
		"planted file": {func(dir string) {
			p := filepath.Join(dir, "planted.sw.hcl")
			os.WriteFile(p, []byte("locals {\n  x = 1\n}\n"), 0o644)
			os.Chown(p, 65534, 65534)
		}, "planted.sw.hcl is owned by uid 65534"},
		"link out": {func(dir string) { os.Symlink(secret, filepath.Join(dir, "evil.sw.hcl")) }, "outside the runbook directory"},
	} {
		t.Run(name, func(t *testing.T) {
			dir := mk(t)
			c.setup(dir)
			_, diags := Load(dir)
			if !diags.HasErrors() || !strings.Contains(diags.Error(), c.want) || strings.Contains(diags.Error(), "canary") {
				t.Fatalf("want %q, got %v", c.want, diags)
			}
			TrustUnsafeFiles = true
			defer func() { TrustUnsafeFiles = false }()
			if name == "link out" {
				return // its target is no runbook either way
			}
			if _, diags := Load(dir); diags.HasErrors() {
				t.Fatalf("with -%s: %v", TrustFlag, diags)
			}
		})
	}
	// A link within the runbook directory is fine.
	dir := mk(t)
	os.Rename(filepath.Join(dir, "main.sw.hcl"), filepath.Join(dir, "real.hcl.txt"))
	os.Symlink("real.hcl.txt", filepath.Join(dir, "main.sw.hcl"))
	if _, diags := Load(dir); diags.HasErrors() {
		t.Fatalf("a link within the directory: %v", diags)
	}
}
