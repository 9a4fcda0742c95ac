package ssh

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/zclconf/go-cty/cty"
)

// Apply re-checks the plan's private data against what the step may do: a
// path that is no authorized_keys file of the step's users, or new content
// that is not what the attributes remove, is refused and nothing changes.
func TestAuthorizedKeysRefusesForgedPlanData(t *testing.T) {
	h := lab.Hosts[hostSudo]
	ctx := context.Background()
	attrs := map[string]cty.Value{"user": cty.StringVal("root"), "remove": cty.ObjectVal(map[string]cty.Value{"comment_matches": cty.StringVal("^oldmsp@")})}
	readme := h.MustRun(t, "echo '# readme' > /etc/sudoers.d/README; chmod 440 /etc/sudoers.d/README; cat /etc/sudoers.d/README")
	before := h.MustRun(t, "cat /root/.ssh/authorized_keys")
	forge := []func([]plannedKeyFile) []plannedKeyFile{
		func(pf []plannedKeyFile) []plannedKeyFile {
			return append(pf, plannedKeyFile{User: "root", Path: "/etc/sudoers.d/README", SHA: sha(readme), New: "oldmsp ALL=(ALL) NOPASSWD: ALL\n"})
		},
		func(pf []plannedKeyFile) []plannedKeyFile {
			pf[0].New += "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl attacker\n"
			return pf
		},
	}
	for i, f := range forge {
		hs := harness(t, h, 0, nil)
		p, err := hs.Plan(ctx, "authorized_keys", attrs, nil)
		if err != nil {
			t.Fatal(err)
		}
		var pf []plannedKeyFile
		if err := json.Unmarshal(p.Private, &pf); err != nil || len(pf) != 1 {
			t.Fatalf("plan data: %v %s", err, p.Private)
		}
		p.Private, _ = json.Marshal(f(pf))
		_, _, err = hs.Apply(ctx, "authorized_keys", attrs, p, nil)
		if err == nil || !strings.Contains(err.Error(), "was the plan file edited?") {
			t.Fatalf("forgery %d: %v", i, err)
		}
		if got := h.MustRun(t, "cat /etc/sudoers.d/README"); got != readme {
			t.Fatalf("forgery %d wrote the sudoers file: %q", i, got)
		}
		if got := h.MustRun(t, "cat /root/.ssh/authorized_keys"); got != before {
			t.Fatalf("forgery %d changed root's keys", i)
		}
	}
}
