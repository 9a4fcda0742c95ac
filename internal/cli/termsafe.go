package cli

import "github.com/switchover/switchover/internal/termtext"

// termSafe escapes control characters in text that comes from a remote
// system or a plugin (termtext.Safe).
func termSafe(s string) string { return termtext.Safe(s) }
