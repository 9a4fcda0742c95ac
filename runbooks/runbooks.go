// Package runbooks holds the curated runbooks MSP engineers start from,
// embedded in the binary for `switchover init`. Each is a directory with a
// main.sw.hcl and a README.md (what it covers, its variables, what stays
// manual); a test validates every one and applies it to the lab.
package runbooks

import (
	"embed"
	"io/fs"
	"sort"
)

//go:embed */main.sw.hcl */README.md
var files embed.FS

// Names lists the curated runbooks.
func Names() []string {
	entries, _ := fs.ReadDir(files, ".")
	var out []string
	for _, e := range entries {
		if e.IsDir() {
			out = append(out, e.Name())
		}
	}
	sort.Strings(out)
	return out
}

// File reads one file of a curated runbook (main.sw.hcl, README.md).
func File(name, file string) ([]byte, error) {
	return files.ReadFile(name + "/" + file)
}
