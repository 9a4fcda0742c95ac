package main

import (
	"crypto/rand"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// benchBackup: restic_verify over a repository of sizeMB with a 1/20 read
// data subset and 20 test-restored files, against a shell script of
// snapshots, check and one restore --verify (the floor).
func benchBackup(bin string, sizeMB, runs int) {
	dir, err := os.MkdirTemp("", "bench-backup-")
	if err != nil {
		fail(err)
	}
	defer os.RemoveAll(dir)
	src := filepath.Join(dir, "src")
	os.MkdirAll(src, 0o755)
	const files = 200
	chunk := make([]byte, sizeMB*1024*1024/files)
	var names []string
	for i := 0; i < files; i++ {
		rand.Read(chunk)
		name := fmt.Sprintf("f%03d.bin", i)
		if err := os.WriteFile(filepath.Join(src, name), chunk, 0o644); err != nil {
			fail(err)
		}
		if i%10 == 0 {
			names = append(names, "/src/"+name)
		}
	}
	repo := filepath.Join(dir, "repo")
	env := append(os.Environ(), "RESTIC_REPOSITORY="+repo, "RESTIC_PASSWORD=bench-pw", "RESTIC_CACHE_DIR="+filepath.Join(dir, "cache"))
	for _, args := range [][]string{{"init"}, {"backup", "--host", "h1", "src"}} {
		cmd := exec.Command("restic", append([]string{"-q"}, args...)...)
		cmd.Dir, cmd.Env = dir, env
		if out, err := cmd.CombinedOutput(); err != nil {
			fail(fmt.Errorf("restic %s: %v %s", args[0], err, out))
		}
	}
	rb := filepath.Join(dir, "rb")
	os.MkdirAll(rb, 0o755)
	quoted := make([]string, len(names))
	for i, n := range names {
		quoted[i] = fmt.Sprintf("%q", n)
	}
	os.WriteFile(filepath.Join(rb, "main.sw.hcl"), []byte(fmt.Sprintf(`runbook "bench-backup" {}
plugin "backup" {
  repository = %q
  password   = "bench-pw"
  cache_dir  = %q
}
step "backup.restic_verify" "v" {
  hosts            = ["h1"]
  read_data_subset = "1/20"
  files            = [%s]
}
`, repo, filepath.Join(dir, "cache"), strings.Join(quoted, ", "))), 0o644)
	// The floor: what a careful person's script does, snapshots, check
	// with the same subset, one restore of the files, verified by restic.
	script := fmt.Sprintf(`set -e
restic --no-lock --json snapshots >/dev/null
restic check --read-data-subset=1/20 >/dev/null
t=$(mktemp -d)
restic restore latest --verify --target "$t" %s >/dev/null
rm -rf "$t"
`, "--include "+strings.Join(names, " --include "))
	os.WriteFile(filepath.Join(dir, "floor.sh"), []byte(script), 0o755)
	measure := func(name string, cmd func() *exec.Cmd) (best, worst time.Duration) {
		for r := 0; r < runs; r++ {
			c := cmd()
			start := time.Now()
			if out, err := c.CombinedOutput(); err != nil {
				fail(fmt.Errorf("%s: %v\n%s", name, err, out))
			}
			d := time.Since(start)
			if best == 0 || d < best {
				best = d
			}
			worst = max(worst, d)
		}
		return
	}
	sb, sw := measure("switchover", func() *exec.Cmd {
		os.RemoveAll(filepath.Join(rb, ".switchover"))
		return exec.Command(bin, "apply", "-auto-approve", rb)
	})
	fb, fw := measure("floor", func() *exec.Cmd {
		c := exec.Command("sh", filepath.Join(dir, "floor.sh"))
		c.Env = env
		return c
	})
	fmt.Printf("restic_verify of a %d MB repository: check reading 1/20 of the packs (the same group in every run), %d files test-restored (restore --verify);\nbest and worst of %d runs, %d CPUs\n\n", sizeMB, len(names), runs, numCPU())
	fmt.Printf("%-44s %8s %8s\n", "what", "best s", "worst s")
	fmt.Printf("%-44s %8.2f %8.2f\n", "switchover apply (plan + verify)", sb.Seconds(), sw.Seconds())
	fmt.Printf("%-44s %8.2f %8.2f\n", "floor: sh, snapshots + check + 1 restore", fb.Seconds(), fw.Seconds())
	fmt.Printf("\nswitchover / floor: %.2fx (goal: within 2x)\n", sb.Seconds()/fb.Seconds())
}
