// Package termtext makes text that comes from a remote system or a plugin
// safe to print on a terminal.
package termtext

import (
	"fmt"
	"strings"
)

// Safe escapes control characters (a key comment, a command's error, a
// plugin's notice), so that the text cannot drive the terminal (clear the
// screen, hide lines, set the title, hide a link): ESC becomes \x1b.
// Newlines and tabs stay.
func Safe(s string) string {
	if strings.IndexFunc(s, unsafeRune) < 0 {
		return s
	}
	var b strings.Builder
	for _, r := range s {
		if unsafeRune(r) {
			fmt.Fprintf(&b, "\\x%02x", r)
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

func unsafeRune(r rune) bool {
	return r < 0x20 && r != '\n' && r != '\t' || r == 0x7f || r >= 0x80 && r < 0xa0
}

// Line is Safe for text that must stay on one line (a plan line, a
// progress line, a table cell): newlines and tabs are escaped too, so that
// a remote name cannot add lines that look like the program's own.
func Line(s string) string {
	s = Safe(s)
	if !strings.ContainsAny(s, "\n\t") {
		return s
	}
	return strings.NewReplacer("\n", `\n`, "\t", `\t`).Replace(s)
}
