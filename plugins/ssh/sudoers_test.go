package ssh

import (
	"context"
	"strings"
	"testing"

	"github.com/zclconf/go-cty/cty"
)

// Pure: which lines and alias members go, which stay.
func TestComputeSudo(t *testing.T) {
	files := []sudoFile{{path: "/etc/sudoers", content: "Defaults env_reset\n#1001 ALL=(ALL) ALL\n# a comment about oldmsp\nroot ALL=(ALL) ALL\nUser_Alias OLD = oldmsp, bob : GONE = oldmsp\nOLD, GONE ALL=(ALL) ALL\nalice,oldmsp ALL=(ALL) ALL\n%admins ALL=(ALL) ALL\n#includedir /etc/sudoers.d"}}
	info := map[string]*sudoUser{"oldmsp": {name: "oldmsp", uid: "1001", primary: "oldmsp", groups: []string{"oldmsp", "admins"}}}
	sp := computeSudo(files, info, []string{"oldmsp"}, nil)
	want := "Defaults env_reset\n# a comment about oldmsp\nroot ALL=(ALL) ALL\nUser_Alias OLD = bob\nOLD ALL=(ALL) ALL\nalice ALL=(ALL) ALL\n%admins ALL=(ALL) ALL\n#includedir /etc/sudoers.d\n"
	if len(sp.files) != 1 || sp.files[0].newText != want {
		t.Fatalf("new sudoers:\n%s\nwant:\n%s", sp.files[0].newText, want)
	}
	if strings.Join(sp.groups["oldmsp"], ",") != "admins" {
		t.Fatalf("groups to leave: %v", sp.groups)
	}
	info["oldmsp"].primary = "admins"
	if sp := computeSudo(files, info, []string{"oldmsp"}, nil); len(sp.cannot) != 1 || len(sp.groups) != 0 {
		t.Fatalf("a primary group with a grant must be reported, not left: %+v", sp)
	}
}

// On a real host: grants by User_Alias, #uid, %group, in /etc/sudoers
// itself, go; sudo -l -U says so; others keep theirs; a primary group with
// a grant is reported as what switchover cannot remove.
func TestRemoveSudoEveryKindOfGrant(t *testing.T) {
	h := lab.Hosts[hostSudo]
	ctx := context.Background()
	h.MustRun(t, `set -e
cp /etc/sudoers /etc/sudoers.orig
id bob >/dev/null 2>&1 || useradd -m bob
groupadd -f helpdesk; usermod -aG helpdesk oldmsp
uid=$(id -u oldmsp)
cat > /etc/sudoers.d/zz-grants <<GRANTS
User_Alias OLDMSP = oldmsp, bob
OLDMSP ALL=(ALL) NOPASSWD: /usr/bin/id
#$uid ALL=(ALL) NOPASSWD: /bin/ls
%helpdesk ALL=(ALL) NOPASSWD: /bin/cat
GRANTS
chmod 440 /etc/sudoers.d/zz-grants
echo 'oldmsp ALL=(ALL) NOPASSWD: /bin/true' >> /etc/sudoers
visudo -c -q`)
	defer h.MustRun(t, "mv /etc/sudoers.orig /etc/sudoers; rm -f /etc/sudoers.d/zz-grants")
	if out := h.MustRun(t, "sudo -n -l -U oldmsp"); !strings.Contains(out, "/usr/bin/id") || !strings.Contains(out, "/bin/ls") || !strings.Contains(out, "/bin/cat") || !strings.Contains(out, "/bin/true") {
		t.Fatalf("setup: oldmsp's rights:\n%s", out)
	}
	attrs := map[string]cty.Value{"users": cty.ListVal([]cty.Value{cty.StringVal("oldmsp")})}
	if _, err := harness(t, h, 0, nil).Run(ctx, "remove_sudo", attrs); err != nil {
		t.Fatal(err)
	}
	if out := h.MustRun(t, "sudo -n -l -U oldmsp"); !strings.Contains(out, "is not allowed to run sudo") {
		t.Fatalf("oldmsp still has sudo rights:\n%s", out)
	}
	if out := h.MustRun(t, "sudo -n -l -U bob; visudo -c -q && echo valid"); !strings.Contains(out, "/usr/bin/id") || !strings.Contains(out, "valid") {
		t.Fatalf("bob lost his rights or sudoers is broken:\n%s", out)
	}
	// A primary group with a grant: reported, not silently kept.
	h.MustRun(t, "groupadd -f wheel; id carol >/dev/null 2>&1 || useradd -m -g wheel carol; echo '%wheel ALL=(ALL) NOPASSWD: /bin/true' > /etc/sudoers.d/zz-wheel; chmod 440 /etc/sudoers.d/zz-wheel")
	defer h.MustRun(t, "rm -f /etc/sudoers.d/zz-wheel")
	attrs = map[string]cty.Value{"users": cty.ListVal([]cty.Value{cty.StringVal("carol")})}
	_, err := harness(t, h, 0, nil).Run(ctx, "remove_sudo", attrs)
	if err == nil || !strings.Contains(err.Error(), "primary group wheel") {
		t.Fatalf("carol: %v", err)
	}
}

func TestLoginShellsFromEtcShells(t *testing.T) {
	shells := loginShells("# /etc/shells\n/bin/sh\n/bin/bash\n/usr/bin/bash\n")
	for shell, want := range map[string]bool{"/bin/bash": true, "/bin/sync": false, "/usr/sbin/nologin": false, "": false, "/bin/sh": true} {
		if got := isLoginShell(shell, shells); got != want {
			t.Errorf("%q: %v", shell, got)
		}
	}
}
