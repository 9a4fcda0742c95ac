// Package fsutil holds file helpers shared by switchover's packages.
package fsutil

import (
	"os"
	"path/filepath"
	"strings"

	"github.com/switchover/switchover/plugins/sdk"
)

// WriteFileAtomic replaces path with data so that a crash leaves the old
// file or the new one, never a part of one (the SDK's, which plugins use).
func WriteFileAtomic(path string, data []byte, mode os.FileMode) error {
	return sdk.WriteFileAtomic(path, data, mode)
}

// RemoveStaleTemps removes the temporary files WriteFileAtomic(path) left
// when it was killed mid-write (the caller holds whatever lock keeps
// another writer of path away).
func RemoveStaleTemps(path string) {
	dir, prefix := filepath.Dir(path), "."+filepath.Base(path)+"."
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), prefix) && e.Type().IsRegular() {
			os.Remove(filepath.Join(dir, e.Name()))
		}
	}
}
