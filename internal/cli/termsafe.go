package cli

import "github.com/switchover/switchover/internal/termtext"

// termSafe escapes control characters in text that comes from a remote
// system or a plugin (termtext.Safe).
func termSafe(s string) string { return termtext.Safe(s) }

// termLine is termSafe for one line: newlines escaped too (termtext.Line).
func termLine(s string) string { return termtext.Line(s) }
