// Package fsutil holds file helpers shared by switchover's packages.
package fsutil

import (
	"os"
	"path/filepath"
	"strings"
)

// WriteFileAtomic replaces path with data so that a crash leaves the old
// file or the new one, never a part of one: a temporary file in the same
// directory, fsync, rename.
func WriteFileAtomic(path string, data []byte, mode os.FileMode) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Chmod(mode); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
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
