package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/switchover/switchover/runbooks"
)

// Every curated runbook: `switchover init` makes a directory that
// validates, with and without its variables file (placeholders of the
// right types); a sensitive variable is only named, never asked for in
// the file.
func TestInitFromEveryCuratedRunbook(t *testing.T) {
	t.Parallel()
	if len(runbooks.Names()) < 6 {
		t.Fatalf("curated runbooks: %v", runbooks.Names())
	}
	for _, name := range runbooks.Names() {
		f := newFixture(t, "")
		dir := filepath.Join(t.TempDir(), name)
		if code, out, errs := f.run("init", "-from", name, dir); code != ExitOK || !strings.Contains(out, "variables.sw.vars") {
			t.Fatalf("init -from %s: %d %s %s", name, code, out, errs)
		}
		if name == "full-switch" {
			// Its modules are copied in: the directory holds all that runs.
			for _, m := range []string{"ad-domain", "backups", "linux-servers", "m365-tenant", "saas-apps"} {
				if _, err := os.Stat(filepath.Join(dir, "modules", m, "main.sw.hcl")); err != nil {
					t.Fatalf("full-switch: module %s not copied: %v", m, err)
				}
			}
			if b, _ := os.ReadFile(filepath.Join(dir, "main.sw.hcl")); !strings.Contains(string(b), `source                  = "./modules/ad-domain"`) {
				t.Fatalf("full-switch: the module sources are not the copies:\n%s", b)
			}
		}
		vars := filepath.Join(dir, "variables.sw.vars")
		for _, args := range [][]string{{"validate", dir}, {"validate", "-var-file", vars, dir}} {
			if code, out, errs := f.run(args...); code != ExitOK {
				t.Fatalf("%s: %v: %d %s %s", name, args, code, out, errs)
			}
		}
		b, _ := os.ReadFile(vars)
		if strings.Contains(string(b), "\npassword = ") || strings.Contains(string(b), "\nclient_secret = ") || strings.Contains(string(b), "\nbind_password = ") {
			t.Fatalf("%s: a sensitive variable is asked for in the file:\n%s", name, b)
		}
	}
	f := newFixture(t, "")
	if code, _, errs := f.run("init", "-from", "nope", t.TempDir()+"/x"); code == ExitOK || !strings.Contains(errs, "one of ad-domain") {
		t.Fatalf("an unknown name: %s", errs)
	}
	if code, _, errs := f.run("init", "-from", "backups", f.dir); code == ExitOK || !strings.Contains(errs, "not empty") {
		t.Fatalf("a directory that is not empty: %s", errs)
	}
}

// The curated runbooks are in the canonical format.
func TestCuratedRunbooksAreFormatted(t *testing.T) {
	t.Parallel()
	f := newFixture(t, "")
	for _, name := range runbooks.Names() {
		if code, out, errs := f.run("fmt", "-check", filepath.Join("../../runbooks", name)); code != ExitOK {
			t.Errorf("runbooks/%s needs switchover fmt: %s %s", name, out, errs)
		}
	}
}

// init does not fill an empty directory that another user made (and can
// change afterwards).
func TestInitRefusesADirectoryOfAnotherUser(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "acme")
	os.Mkdir(dir, 0o755)
	os.Chown(dir, 65534, 65534)
	var out, errb strings.Builder
	code := Main([]string{"init", dir, "-from", "backups"}, &Env{Stdout: &out, Stderr: &errb, Stdin: strings.NewReader("")})
	if code == ExitOK || !strings.Contains(errb.String(), "owned by uid 65534") {
		t.Fatalf("init into another user's directory: %d %s", code, errb.String())
	}
	if ents, _ := os.ReadDir(dir); len(ents) > 0 {
		t.Fatal("init wrote into it")
	}
}
