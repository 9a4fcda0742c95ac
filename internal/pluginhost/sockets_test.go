package pluginhost

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
)

// The socket directory of a switchover that was killed is removed at the
// next start; a live process's is kept.
func TestSweepSocketsOfDeadProcesses(t *testing.T) {
	base := t.TempDir()
	c := exec.Command("true")
	if err := c.Run(); err != nil {
		t.Fatal(err)
	}
	dead := filepath.Join(base, "run-"+strconv.Itoa(c.Process.Pid))
	live := filepath.Join(base, "run-"+strconv.Itoa(os.Getppid()))
	for _, d := range []string{dead, live} {
		os.MkdirAll(filepath.Join(d, "host-1"), 0o700)
		os.WriteFile(filepath.Join(d, "host-1", "plugin123"), nil, 0o600)
	}
	SweepSockets(base)
	if _, err := os.Stat(dead); !os.IsNotExist(err) {
		t.Fatalf("the dead process's sockets stayed: %v", err)
	}
	if _, err := os.Stat(live); err != nil {
		t.Fatalf("a live process's sockets were removed: %v", err)
	}
}
