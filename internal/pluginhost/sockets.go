package pluginhost

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// socketBase is where plugin sockets live: one private directory per user,
// and in it one directory per switchover process (run-PID). go-plugin
// removes a plugin's socket directory when it stops the plugin; a killed
// switchover cannot, so every start removes the directories of processes
// that are gone (before, hundreds of /tmp/plugin* stayed after kill tests).
func socketBase() string {
	return filepath.Join(os.TempDir(), fmt.Sprintf("switchover-plugins-%d", os.Geteuid()))
}

// socketDir makes this process's socket directory, after sweeping those of
// dead processes. "" when it cannot (go-plugin then uses the default).
func socketDir() string {
	base := socketBase()
	if err := os.Mkdir(base, 0o700); err != nil && !errors.Is(err, os.ErrExist) {
		return ""
	}
	fi, err := os.Lstat(base)
	if err != nil || !fi.IsDir() || fi.Mode().Perm()&0o077 != 0 {
		return ""
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); !ok || int(st.Uid) != os.Geteuid() {
		return ""
	}
	SweepSockets(base)
	dir := filepath.Join(base, "run-"+strconv.Itoa(os.Getpid()))
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return ""
	}
	return dir
}

// SweepSockets removes the run-PID directories under base whose process
// is gone.
func SweepSockets(base string) {
	ents, err := os.ReadDir(base)
	if err != nil {
		return
	}
	for _, e := range ents {
		pid, err := strconv.Atoi(strings.TrimPrefix(e.Name(), "run-"))
		if err != nil || !strings.HasPrefix(e.Name(), "run-") || pid == os.Getpid() {
			continue
		}
		if errors.Is(syscall.Kill(pid, 0), syscall.ESRCH) {
			os.RemoveAll(filepath.Join(base, e.Name()))
		}
	}
}
