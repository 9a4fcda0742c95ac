package sshlab

import (
	"os"
	"strings"
	"testing"
)

func TestHostsAreIsolated(t *testing.T) {
	l := Start(t, Options{Hosts: 2})
	for _, h := range l.Hosts {
		if got := strings.TrimSpace(h.MustRun(t, "hostname; getent passwd oldmsp | cut -d: -f1")); got != h.Name+"\noldmsp" {
			t.Fatalf("%s: %q", h.Name, got)
		}
	}
	h1, h2 := l.Hosts[0], l.Hosts[1]
	h1.MustRun(t, "useradd only_on_one && mkdir -p /srv/lab-probe /tmp/lab-probe /opt/lab-probe")
	for _, d := range []string{"/srv/lab-probe", "/tmp/lab-probe", "/opt/lab-probe"} {
		if _, err := os.Stat(d); err == nil {
			t.Fatalf("%s made on host01 appeared on this machine", d)
		}
	}
	if _, err := h2.Run("getent passwd only_on_one"); err == nil {
		t.Fatal("an account made on host01 exists on host02")
	}
	b, _ := os.ReadFile("/etc/passwd")
	if strings.Contains(string(b), "only_on_one") || strings.Contains(string(b), "oldmsp:") {
		t.Fatal("the lab touched this machine's accounts")
	}
}
