package cli

import (
	"bytes"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/switchover/switchover/internal/secrets"
	"github.com/switchover/switchover/internal/state"
	"github.com/switchover/switchover/internal/workspace"
)

// TestRedaction plants canaries as a sensitive variable, a sensitive()
// value and a generated secret(), hands them to a plugin that echoes them in
// every text it sends back (plan summary and details, log lines,
// checkpoints, an output it does not declare sensitive), and scans every
// byte switchover wrote: stdout, stderr, the saved plan and every file of
// the workspace. The identity and the audit chain are in scope too.
func TestRedaction(t *testing.T) {
	const varCanary = "canary-VAR-7f3a9c"
	const fnCanary = "canary-FN-2b8e41"
	f := newFixture(t, `
variable "admin_pw" {
  sensitive = true
}
step "test.echo" "from_var" {
  world  = local.world
  secret = var.admin_pw
}
step "test.echo" "from_fn" {
  world  = local.world
  secret = sensitive("`+fnCanary+`")
}
step "test.echo" "from_secret" {
  world  = local.world
  secret = secret("generated", { length = 30 })
}
step "core.noop" "uses_output" {
  message = step.from_var.outputs.said
}
step "core.assert" "fails_with_secret" {
  condition  = length(step.from_var.outputs.said) < 3
  message    = "too long: ${step.from_var.outputs.said}"
  on_failure = continue
}
`)
	t.Setenv("SWITCHOVER_VAR_admin_pw", varCanary)
	var written bytes.Buffer
	collect := func(code int, out, errs string) {
		written.WriteString(out)
		written.WriteString(errs)
	}
	planFile := filepath.Join(f.dir, "saved.plan")
	collect(f.run("plan", "-out", planFile, f.dir))
	collect(f.run("plan", "-json", f.dir))
	collect(f.run("apply", "-auto-approve", "-json", planFile))
	collect(f.run("apply", "-auto-approve", f.dir))
	collect(f.run("status", f.dir))
	collect(f.run("status", "-json", f.dir))
	collect(f.run("secrets", "list", f.dir))
	collect(f.run("audit", "show", f.dir))
	st := f.states()
	if st["step.from_secret"].Status != state.Done || st["step.uses_output"].Status != state.Done {
		t.Fatalf("the run did not complete: %+v %+v\n%s", st["step.from_secret"], st["step.uses_output"], written.String())
	}
	if s := st["step.fails_with_secret"]; s.Status != state.Failed {
		t.Fatalf("the assertion should fail (with a message holding the secret): %+v", s)
	}
	// The generated secret is a canary too.
	ws, _ := workspace.Open(f.dir)
	id, _ := ws.ExistingIdentity("")
	var generated string
	ws.State.View(func(s *state.Snapshot) {
		pt, err := secrets.Decrypt(s.Secrets["generated"].Current.Ciphertext, id)
		if err != nil {
			t.Fatal(err)
		}
		generated = string(pt)
	})
	ws.Close()
	canaries := []string{varCanary, fnCanary, generated}
	var files []string
	filepath.WalkDir(f.dir, func(p string, d fs.DirEntry, err error) error {
		// Everything but the runbook the test itself wrote the literal into.
		if err == nil && !d.IsDir() && filepath.Base(p) != "main.sw.hcl" {
			files = append(files, p)
		}
		return nil
	})
	for _, c := range canaries {
		if strings.Contains(written.String(), c) {
			i := strings.Index(written.String(), c)
			t.Errorf("a canary is in the output: ...%s...", strings.ReplaceAll(written.String()[max(0, i-80):i], c, "<CANARY>"))
		}
		for _, p := range files {
			b, _ := os.ReadFile(p)
			if bytes.Contains(b, []byte(c)) {
				t.Errorf("a canary is in %s", p)
			}
		}
	}
	if !strings.Contains(written.String(), "(sensitive value)") {
		t.Error("expected redaction markers in the output")
	}
	// The secret itself is still retrievable by its owner.
	code, out, errs := f.run("secrets", "show", "generated", f.dir)
	if code != ExitOK || strings.TrimSpace(out) != generated {
		t.Fatalf("secrets show: %d %q", code, errs)
	}
	// And refused without the identity.
	os.Rename(filepath.Join(workspace.Path(f.dir), secrets.IdentityFile), filepath.Join(t.TempDir(), "moved"))
	code, _, errs = f.run("secrets", "show", "generated", f.dir)
	if code != ExitError || !strings.Contains(errs, "cannot decrypt without an identity") {
		t.Fatalf("secrets show without identity: %d %s", code, errs)
	}
}
