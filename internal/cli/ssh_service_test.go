package cli

import (
	"strings"
	"testing"

	"github.com/switchover/switchover/internal/sshlab"
)

// systemd cannot run inside the lab's namespaces, so this test puts a
// stand-in systemctl (state in files under /etc/systemd-standin) first in
// the lab host's PATH. It checks the action's plan, apply, verify and the
// second run's no-op against that stand-in; not against systemd.
const standinSystemctl = `#!/bin/sh
d=/etc/systemd-standin; mkdir -p $d
args=""; for a in "$@"; do case "$a" in --quiet|--) ;; *) args="$args $a" ;; esac; done
set -- $args
case "$1" in
  is-active)  [ -e $d/$2.active ] ;;
  is-enabled) [ -e $d/$2.enabled ] ;;
  disable)    [ "$2" = "--now" ] && { rm -f $d/$3.active $d/$3.enabled; echo "$3" >> $d/log; } ;;
  *) exit 1 ;;
esac
`

func TestSSHServiceAgainstAStandInSystemctl(t *testing.T) {
	lab := sshlab.Start(t, sshlab.Options{Hosts: 1})
	h := lab.Hosts[0]
	h.MustRun(t, "cat > /usr/local/sbin/systemctl <<'EOF'\n"+standinSystemctl+"EOF\nchmod 755 /usr/local/sbin/systemctl && mkdir -p /etc/systemd-standin && touch /etc/systemd-standin/rmm-agent.active /etc/systemd-standin/rmm-agent.enabled")
	f := sshRunbook(t, lab, "", `
step "ssh.service" "rmm" {
  port = var.hosts.host01
  name = "rmm-agent"
}
`)
	code, out, _ := f.run("plan", f.dir)
	if code != ExitOK || !strings.Contains(out, "stop, disable rmm-agent on 127.0.0.1:") {
		t.Fatalf("plan:\n%s", out)
	}
	mustApply(t, f)
	if got := h.MustRun(t, "ls /etc/systemd-standin; cat /etc/systemd-standin/log"); got != "log\nrmm-agent\n" {
		t.Fatalf("stand-in state: %q", got)
	}
	code, out, _ = f.run("plan", f.dir)
	if code != ExitOK || !strings.Contains(out, "done (recorded") {
		t.Fatalf("second plan:\n%s", out)
	}
}
