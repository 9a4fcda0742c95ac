package runbook

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
)

// TrustUnsafeFiles turns the checks of CheckDirSafe and the runbook files
// off (the flag -trust-runbook-files-others-can-write).
var TrustUnsafeFiles bool

// TrustFlag is the flag that sets TrustUnsafeFiles, loudly named.
const TrustFlag = "trust-runbook-files-others-can-write"

// checkDirSafe refuses a runbook (or module) directory that another user
// could have written a file into: switchover runs what a runbook says
// with the caller's rights, often root with domain admin credentials.
func checkDirSafe(dir string) error {
	fi, err := os.Stat(dir)
	if err != nil {
		return err
	}
	return checkOwner(dir, fi)
}

// checkFileSafe refuses a runbook file others could change, and a symbolic
// link that leaves the runbook directory (its target is never read).
func checkFileSafe(dir, path string, e os.DirEntry) error {
	if TrustUnsafeFiles {
		return nil
	}
	if e.Type()&os.ModeSymlink != 0 {
		real, err := filepath.EvalSymlinks(path)
		if err != nil {
			return fmt.Errorf("%s is a symbolic link that cannot be followed: %v", path, unwrapPathError(err))
		}
		realDir, err := filepath.EvalSymlinks(dir)
		if err != nil {
			return err
		}
		if rel, err := filepath.Rel(realDir, real); err != nil || rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator)) {
			return fmt.Errorf("%s is a symbolic link to a file outside the runbook directory: refused (copy the file in)", path)
		}
	}
	fi, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("%s: %v", path, unwrapPathError(err))
	}
	return checkOwner(path, fi)
}

// checkOwner: owned by root or the caller, and writable by neither group
// nor others.
func checkOwner(path string, fi os.FileInfo) error {
	if TrustUnsafeFiles {
		return nil
	}
	uid := os.Geteuid()
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && st.Uid != 0 && int(st.Uid) != uid {
		return fmt.Errorf("%s is owned by uid %d, neither you (uid %d) nor root: another user could have planted or changed it, and switchover would run it with your rights. Check it and fix its owner, or pass -%s", path, st.Uid, uid, TrustFlag)
	}
	if fi.Mode().Perm()&0o022 != 0 {
		return fmt.Errorf("%s has mode %04o: group or others can change it, and switchover would run what they write with your rights. Check it, then chmod go-w %s, or pass -%s", path, fi.Mode().Perm(), path, TrustFlag)
	}
	return nil
}

// CheckOwner is checkOwner for a directory a command writes runbook files
// into (init).
func CheckOwner(path string) error {
	fi, err := os.Stat(path)
	if err != nil {
		return err
	}
	return checkOwner(path, fi)
}
