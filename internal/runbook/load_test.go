package runbook

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestLoadModel(t *testing.T) {
	rb, diags := LoadFiles("/rb", map[string][]byte{"/rb/main.sw.hcl": []byte(`
runbook "acme" {
  client       = "Acme"
  old_provider = "Old"
  new_provider = "New"
}
variable "servers" {
  type    = set(string)
  default = ["a"]
  sensitive = false
  validation {
    condition     = length(var.servers) > 0
    error_message = "at least one"
  }
}
plugin "ssh" {
  alias = "branch"
  user  = "root"
}
step "ssh.authorized_keys" "drop" {
  plugin     = ssh.branch
  for_each   = var.servers
  depends_on = [step.other]
  timeout    = "90s"
  on_failure = continue
  retry {
    attempts = 3
    backoff  = "2s"
  }
  host = each.value
}
output "o" { value = 1 }
`)})
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	if rb.Meta.Name != "acme" || rb.Meta.OldProvider != "Old" || rb.Meta.Client != "Acme" {
		t.Errorf("meta = %+v", rb.Meta)
	}
	s := rb.Steps[0]
	if s.Plugin != "ssh" || s.Action != "authorized_keys" || s.PluginKey != "ssh.branch" || s.OnFailure != Continue ||
		s.Timeout.Seconds() != 90 || s.Retry.Attempts != 3 || s.Retry.Backoff.Seconds() != 2 || len(s.DependsOn) != 1 {
		t.Errorf("step = %+v retry=%+v", s, s.Retry)
	}
	attrs, _ := s.Config.JustAttributes()
	if _, ok := attrs["host"]; !ok || len(attrs) != 1 {
		t.Errorf("action attributes = %v (meta-arguments must not be among them)", attrs)
	}
	if len(rb.Variables[0].Validations) != 1 || rb.Plugins[0].Key() != "ssh.branch" || len(rb.Outputs) != 1 {
		t.Errorf("model = %+v", rb)
	}
	if len(rb.Hash) != 64 {
		t.Errorf("hash = %q", rb.Hash)
	}
}

func TestHashChangesWithContent(t *testing.T) {
	a, _ := LoadFiles("/rb", map[string][]byte{"/rb/a.sw.hcl": []byte(`runbook "x" {}`)})
	b, _ := LoadFiles("/rb", map[string][]byte{"/rb/a.sw.hcl": []byte(`runbook "y" {}`)})
	if a.Hash == b.Hash {
		t.Fatal("different runbooks share a hash")
	}
}

// FuzzLoad: no input makes the loader panic; every error it reports has a
// summary, and every positioned one points into a file it read.
func FuzzLoad(f *testing.F) {
	seeds, _ := filepath.Glob("../engine/testdata/invalid/*.sw.hcl")
	more, _ := filepath.Glob("../../examples/*/*.sw.hcl")
	for _, p := range append(seeds, more...) {
		if b, err := os.ReadFile(p); err == nil {
			f.Add(b, false)
		}
	}
	f.Add([]byte(`{"step": {"core.noop": {"a": {"depends_on": ["step.b"]}}}}`), true)
	f.Fuzz(func(t *testing.T, src []byte, asJSON bool) {
		name := "/rb/f.sw.hcl"
		if asJSON {
			name = "/rb/f.sw.json"
		}
		rb, diags := LoadFiles("/rb", map[string][]byte{name: src})
		if rb == nil {
			t.Fatal("nil runbook")
		}
		for _, d := range diags {
			if strings.TrimSpace(d.Summary) == "" {
				t.Fatalf("diagnostic without summary: %+v", d)
			}
			if d.Subject != nil && d.Subject.Filename != name {
				t.Fatalf("diagnostic points at %q", d.Subject.Filename)
			}
		}
	})
}
