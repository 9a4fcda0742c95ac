package cli

import (
	"strings"
	"testing"
)

// One line of HCL must not exhaust memory or the stack, a panic inside a
// function is one plain sentence, and evaluation errors never show a
// sensitive value (however short).
func TestHostileExpressionsGetClearErrors(t *testing.T) {
	t.Parallel()
	cases := map[string]string{
		`file("/dev/zero")`:                                 "is not a regular file",
		`format("%999999999s", "x")`:                        "more than the 10000 allowed",
		`indent(999999999, "a\nb")`:                         "indent of more than 1000 spaces",
		`setproduct(range(1000), range(1000), range(1000))`: "more than 100000 elements",
		`log(-1, 10)`:                                       "log cannot compute a result",
		strings.Repeat("(", 100000) + "1" + strings.Repeat(")", 100000): "Expression nested too deeply",
	}
	for expr, want := range cases {
		f := newFixture(t, "locals { v = "+expr+" }\noutput \"o\" { value = local.v }\n")
		code, out, errs := f.run("validate", f.dir)
		if code != ExitError || !strings.Contains(errs, want) || strings.Contains(errs, "goroutine") {
			t.Errorf("%.40s: exit %d, want %q\n%s%.2000s", expr, code, want, out, errs)
		}
		if strings.Contains(expr, "((((") {
			if code, _, errs := f.run("fmt", "-check", f.dir); code != ExitError || !strings.Contains(errs, want) {
				t.Errorf("fmt of deep nesting: %d %.300s", code, errs)
			}
		}
	}
	f := newFixture(t, `
variable "pw" {
  sensitive = true
  default   = "Canary\"Pw\\9"
}
variable "pin" {
  sensitive = true
  default   = "7q1"
}
locals {
  a = tonumber(var.pw)
  b = tobool(var.pin)
  c = parseint(var.pw, 10)
  d = timeadd(var.pw, "1h")
  e = file(var.pw)
  f = env(var.pin)
}
`)
	code, out, errs := f.run("validate", "-json", f.dir)
	code2, out2, errs2 := f.run("validate", f.dir)
	// The temporary directory's name is random digits: not searched.
	all := strings.ReplaceAll(out+errs+out2+errs2, f.dir, "DIR")
	if code != ExitError || code2 != ExitError || strings.Contains(all, "Canary") || strings.Contains(all, "7q1") {
		t.Fatalf("a sensitive value in an error:\n%s", all)
	}
}
