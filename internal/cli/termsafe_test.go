package cli

import "testing"

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
