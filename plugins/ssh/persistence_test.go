package ssh

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"strings"
	"testing"

	"github.com/zclconf/go-cty/cty"
	"golang.org/x/crypto/ssh"
)

// The Linux items of issue 28 planted on a lab host as an outgoing admin
// would: a user CA sshd trusts, a cert-authority key, a client's key with
// command= and from=, a cron job, a tunnel unit and its timer, rc.local,
// an AnyDesk service, a UID 0 account, an empty password. Each is found as
// sshd and the host resolve it, and attributed; the old provider's keys
// come out as fingerprints that ssh.authorized_keys then removes.
func TestPersistenceSweepOfAHost(t *testing.T) {
	ctx := context.Background()
	h := lab.Hosts[hostPersist]
	newKey := func(comment string) (string, string) {
		pub, _, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		pk, _ := ssh.NewPublicKey(pub)
		return strings.TrimSpace(string(ssh.MarshalAuthorizedKey(pk))) + " " + comment, ssh.FingerprintSHA256(pk)
	}
	ca, caFP := newKey("user-ca@oldmsp.example")
	certKey, certFP := newKey("oldmsp-ca")
	clientKey, _ := newKey("backup@client.example")
	h.MustRun(t, `set -e
printf '%s\n' '`+ca+`' > /etc/ssh/trusted_user_ca_keys
cat >> /home/alice/.ssh/authorized_keys 2>/dev/null || { mkdir -p /home/alice/.ssh; }
printf '%s\n%s\n' 'cert-authority,principals="alice" `+certKey+`' 'command="/usr/local/bin/backup",from="10.9.9.9" `+clientKey+`' >> /home/alice/.ssh/authorized_keys
chown -R alice: /home/alice/.ssh
echo '*/5 * * * * root curl -s https://rmm.oldmsp.example/ping >/dev/null' > /etc/cron.d/monitor
mkdir -p /etc/systemd/system
printf '[Service]\nExecStart=/usr/bin/ssh -N -R 2222:localhost:22 tunnel@jump.oldmsp.example\n' > /etc/systemd/system/remote-support.service
printf '[Timer]\nOnBootSec=5min\nUnit=remote-support.service\n' > /etc/systemd/system/remote-support.timer
printf '[Service]\nExecStart=/usr/bin/anydesk --service\n' > /etc/systemd/system/anydesk.service
printf '#!/bin/sh\n/opt/oldmsp/agent --start\nexit 0\n' > /etc/rc.local
id toor >/dev/null 2>&1 || useradd -o -u 0 -M -s /bin/sh toor
id guest2 >/dev/null 2>&1 || useradd -M -s /bin/sh guest2; passwd -d guest2 >/dev/null`)
	hs := harness(t, h, 0, nil)
	attrs := map[string]cty.Value{
		"mentions": cty.ListVal([]cty.Value{cty.StringVal("oldmsp.example"), cty.StringVal("/opt/oldmsp")}),
		"old_keys": cty.ListVal([]cty.Value{cty.StringVal(ssh.FingerprintSHA256(lab.OldMSPPub))}),
	}
	p, err := hs.Plan(ctx, "find_persistence", attrs, nil)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{} // kind value -> whose
	for _, f := range p.Outputs["findings"].AsValueMap() {
		got[f.GetAttr("kind").AsString()+" "+f.GetAttr("value").AsString()] = f.GetAttr("whose").AsString()
	}
	has := func(prefix, whose string) {
		t.Helper()
		for k, w := range got {
			if strings.HasPrefix(k, prefix) && w == whose {
				return
			}
		}
		t.Errorf("no finding %q of %s in:\n%v", prefix, whose, got)
	}
	has("trusted_ca "+caFP, "old_provider")
	has("cert_authority "+certFP, "any") // its comment names no one: reported, not removed
	has("authorized_key "+ssh.FingerprintSHA256(lab.OldMSPPub), "old_provider")
	has("cron ", "old_provider")
	has("systemd_unit ", "old_provider")
	has("rc_local ", "old_provider")
	has("remote_access_agent anydesk", "any")
	has("uid0 toor", "any")
	has("empty_password guest2", "any")
	has("sudo_rule ", "any")
	var open string
	for _, d := range p.Diagnostics {
		open += d.Summary + "\n" + d.Detail + "\n"
	}
	for _, w := range []string{`command="/usr/local/bin/backup",from="10.9.9.9"`, "toor", "anydesk"} {
		if !strings.Contains(open, w) {
			t.Errorf("the open items do not show %q:\n%s", w, open)
		}
	}
	// The old provider's keys, removed by the action that removes keys.
	fps := p.Outputs["old_key_fingerprints"]
	if fps.LengthInt() < 1 {
		t.Fatalf("no old keys: %#v", fps)
	}
	if _, err := hs.Run(ctx, "authorized_keys", map[string]cty.Value{"all_users": cty.True, "remove": cty.ObjectVal(map[string]cty.Value{"fingerprints": fps})}); err != nil {
		t.Fatal(err)
	}
	if out := h.MustRun(t, "cat /root/.ssh/authorized_keys /home/oldmsp/.ssh/authorized_keys"); strings.Contains(out, strings.Fields(string(ssh.MarshalAuthorizedKey(lab.OldMSPPub)))[1]) {
		t.Fatalf("the old provider's key is still there:\n%s", out)
	}
	if !adminLogsIn(t, h) {
		t.Fatal("the admin key no longer logs in")
	}
	// The rest of the old provider's: the CA line, the cron line, the
	// rc.local line and the units, each removed; the client's lines stay.
	h.MustRun(t, "echo '0 3 * * * root /usr/local/bin/client-backup' >> /etc/cron.d/monitor")
	removable := p.Outputs["removable"].AsValueMap()
	kinds := map[string]int{}
	for id, f := range removable {
		kinds[f.GetAttr("kind").AsString()]++
		if _, err := hs.Run(ctx, "remove_persistence", map[string]cty.Value{"kind": f.GetAttr("kind"), "object": f.GetAttr("object"), "value": f.GetAttr("value")}); err != nil {
			t.Fatalf("%s: %v", id, err)
		}
	}
	if kinds["trusted_ca"] != 1 || kinds["cron"] != 1 || kinds["rc_local"] != 1 || kinds["systemd_unit"] != 1 {
		t.Fatalf("removable: %v", kinds)
	}
	out := h.MustRun(t, "cat /etc/ssh/trusted_user_ca_keys /etc/cron.d/monitor /etc/rc.local; ls /etc/systemd/system")
	if strings.Contains(out, "oldmsp") || strings.Contains(out, "remote-support.service") || !strings.Contains(out, "client-backup") || !strings.Contains(out, "anydesk.service") {
		t.Fatalf("after the removals:\n%s", out)
	}
	p2, err := hs.Plan(ctx, "find_persistence", attrs, nil)
	if err != nil || p2.Outputs["removable"].LengthInt() != 0 || p2.Outputs["old_key_fingerprints"].LengthInt() != 0 {
		t.Fatalf("a second sweep: %v %v", err, p2.Outputs["removable"])
	}
}
