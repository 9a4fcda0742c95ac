// Package version holds switchover's version: one place, set at build
// time with -ldflags "-X github.com/switchover/switchover/internal/version.Version=...".
package version

// Version is switchover's version; built-in plugins report it too.
var Version = "0.1.0-dev"
