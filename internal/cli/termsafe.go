package cli

import (
	"fmt"
	"strings"
)

// termSafe escapes control characters in text that comes from a remote
// system or a plugin (a key comment, a command's error), so that it cannot
// drive the terminal (clear the screen, hide lines, set the title): ESC
// becomes \x1b. Newlines and tabs stay.
func termSafe(s string) string {
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
