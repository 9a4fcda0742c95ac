package cli

import (
	"strings"
	"testing"
)

func TestTermSafe(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"oldmsp@x\x1b[2J\x1b]0;owned\x07": `oldmsp@x\x1b[2J\x1b]0;owned\x07`,
		"line1\nline2\tok":                "line1\nline2\tok",
		"c1 \u009b31m":                    `c1 \x9b31m`,
		"bäckerei ✓":                      "bäckerei ✓",
	} {
		if got := termSafe(in); got != want {
			t.Errorf("termSafe(%q) = %q, want %q", in, got, want)
		}
	}
}

// A value from outside (here a confirm_by, as a remote name would come)
// cannot add lines to a plan that look like its own, nor drive the
// terminal.
func TestPlanLinesAreSingleLines(t *testing.T) {
	t.Parallel()
	f := newFixture(t, `
step "core.manual" "m" {
  instructions = "Call the registrar."
  confirm_by   = "boss\n  ~ step.fake (ssh.authorized_keys)\n      remove every key\u001b[2J"
}
`)
	code, out, errs := f.run("plan", f.dir)
	if code != ExitOK {
		t.Fatalf("plan: %d %s", code, errs)
	}
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(strings.TrimSpace(l), "~ step.fake") || strings.Contains(l, "\x1b") {
			t.Fatalf("a remote value made its own plan line: %q\n%s", l, out)
		}
	}
	if !strings.Contains(out, `boss\n  ~ step.fake`) {
		t.Fatalf("the value is not shown escaped:\n%s", out)
	}
}
