package ssh

import (
	"context"
	"strings"
	"testing"

	"github.com/zclconf/go-cty/cty"

	"github.com/switchover/switchover/internal/testing/sshlab"
)

// The sudo password goes only to sudo's own prompt. Where sudo asks, the
// command runs as root and its input is only its input; where a NOPASSWD
// rule lets the command run without asking, the password must not become
// the command's input (it was written to a 0644 file before).
func TestSudoPasswordNeverReachesTheCommandsInput(t *testing.T) {
	h := lab.Hosts[hostSudo]
	ctx := context.Background()
	alice := map[string]cty.Value{
		"user": cty.StringVal("alice"), "password": cty.StringVal(sshlab.AlicePassword),
		"private_key_file": cty.NullVal(cty.String), "sudo_password": cty.StringVal(sshlab.AlicePassword),
	}
	run := func(command, stdin string) {
		t.Helper()
		attrs := map[string]cty.Value{"command": cty.StringVal(command), "creates": cty.StringVal("/tmp/never")}
		if stdin != "" {
			attrs["stdin"] = cty.StringVal(stdin)
		}
		hs := harness(t, h, 0, alice)
		p, err := hs.Plan(ctx, "command", attrs, nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := hs.Apply(ctx, "command", attrs, p, nil); err != nil {
			t.Fatal(err)
		}
	}
	// sudo asks for alice's password.
	run("id -u > /tmp/uid; cat > /tmp/in1; chmod 644 /tmp/in1", "the input\n")
	if got := h.MustRun(t, "cat /tmp/uid"); got != "0\n" {
		t.Fatalf("the command ran as uid %q, not root", got)
	}
	if got := h.MustRun(t, "cat /tmp/in1"); got != "the input\n" {
		t.Fatalf("the command's input is %q", got)
	}
	// Now sudo lets sh run without a password (and `sudo -n true` still
	// asks, so the plugin still answers prompts).
	h.MustRun(t, "echo 'alice ALL=(ALL) NOPASSWD: /bin/sh, /usr/bin/sh' > /etc/sudoers.d/zz-alice-sh && chmod 440 /etc/sudoers.d/zz-alice-sh")
	defer h.MustRun(t, "rm -f /etc/sudoers.d/zz-alice-sh")
	run("cat > /tmp/in2; chmod 644 /tmp/in2", "")
	if got := h.MustRun(t, "cat /tmp/in2"); strings.Contains(got, sshlab.AlicePassword) || got != "" {
		t.Fatalf("the command read %q from its input: the sudo password leaked into it", got)
	}
	run("cat > /tmp/in3", "only this\n")
	if got := h.MustRun(t, "cat /tmp/in3"); got != "only this\n" {
		t.Fatalf("the command's input is %q", got)
	}
	// The script does not show on the host's command lines (ps, sudo's log).
	run("sleep 0.3 # secret-marker-in-the-script", "")
	if out := h.MustRun(t, "grep -c secret-marker /var/log/auth.log 2>/dev/null || true"); strings.TrimSpace(out) != "0" && strings.TrimSpace(out) != "" {
		t.Fatalf("the script shows in sudo's log (%s lines)", out)
	}
}
