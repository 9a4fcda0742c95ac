package ssh

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"strings"
	"testing"

	"github.com/zclconf/go-cty/cty"
	"golang.org/x/crypto/ssh"

	"github.com/switchover/switchover/internal/testing/sshlab"
)

// fillerKeys returns n authorized_keys lines, so that a file spans many
// SSH packets and a cut can land in the middle of its transfer.
func fillerKeys(t *testing.T, n int, prefix string) string {
	var b strings.Builder
	for i := 0; i < n; i++ {
		pub, _, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		pk, _ := ssh.NewPublicKey(pub)
		fmt.Fprintf(&b, "%s %s-%d@example\n", strings.TrimSpace(string(ssh.MarshalAuthorizedKey(pk))), prefix, i)
	}
	return b.String()
}

func pubLine(pk ssh.PublicKey, comment string) string {
	return strings.TrimSpace(string(ssh.MarshalAuthorizedKey(pk))) + " " + comment + "\n"
}

// cronFiller is 300 lines of a client's cron file: the file spans many
// SSH packets.
var cronFiller = strings.Repeat("0 2 * * * root /usr/local/bin/client-backup --full --verbose --target /srv/backup\n", 300)

// writeCase is one action that writes on the host, with the host's state
// before and after, as an administrator would read it.
type writeCase struct {
	name   string
	action string
	attrs  map[string]cty.Value
	setup  string                                    // script that puts the old state in place
	state  func(t *testing.T, h *sshlab.Host) string // what a person would look at
	old    string                                    // state before (filled in by the test)
	new    func(t *testing.T, h *sshlab.Host, s string) bool
	host   int // the lab host (default: the next cut host)
}

// TestCutConnectionAtEveryStageLeavesOldOrNew is the kill-at-every-instant
// test for each action that writes: the connection is cut after k bytes of
// the apply, for k spread over the whole transfer; every time the host's
// file is exactly the old or the new one (never empty, never partial), the
// admin key still logs in, and a resumed run finishes the job.
func TestCutConnectionAtEveryStageLeavesOldOrNew(t *testing.T) {
	admin := pubLine(lab.AdminPub, "admin@switchover")
	old := pubLine(lab.OldMSPPub, "oldmsp@oldmsp")
	fill := fillerKeys(t, 300, "keep")
	rootOld := admin + fill + old
	rootNew := admin + fill
	bobKeys := fillerKeys(t, 300, "bob")
	sudoComments := strings.Repeat("# a long comment line that makes the sudoers file span several packets\n", 600)
	cat := func(path string) func(t *testing.T, h *sshlab.Host) string {
		return func(t *testing.T, h *sshlab.Host) string { return h.MustRun(t, "cat "+path) }
	}
	is := func(want string) func(*testing.T, *sshlab.Host, string) bool {
		return func(_ *testing.T, _ *sshlab.Host, s string) bool { return s == want }
	}
	const newPw = "Cut-Test-New-Pw-42"
	cases := []*writeCase{
		{name: "authorized_keys", action: "authorized_keys",
			attrs: map[string]cty.Value{"user": cty.StringVal("root"), "remove": cty.ObjectVal(map[string]cty.Value{"comment_matches": cty.StringVal("^oldmsp@")})},
			setup: "cat > /root/.ssh/authorized_keys <<'EOF'\n" + rootOld + "EOF\nchmod 600 /root/.ssh/authorized_keys",
			state: cat("/root/.ssh/authorized_keys"), new: is(rootNew)},
		{name: "lock_account", action: "lock_account",
			attrs: map[string]cty.Value{"account": cty.StringVal("bob")},
			setup: "id bob >/dev/null 2>&1 || useradd -m -s /bin/bash bob\nusermod -U -e '' -s /bin/bash bob 2>/dev/null; echo 'bob:Bob-Pw-1' | chpasswd\nmkdir -p /home/bob/.ssh; cat > /home/bob/.ssh/authorized_keys <<'EOF'\n" + bobKeys + "EOF\nchown -R bob:bob /home/bob/.ssh; chmod 600 /home/bob/.ssh/authorized_keys",
			state: cat("/home/bob/.ssh/authorized_keys"), new: is("")},
		{name: "remove_sudo", action: "remove_sudo",
			attrs: map[string]cty.Value{"users": cty.ListVal([]cty.Value{cty.StringVal("oldmsp")})},
			setup: "cat > /etc/sudoers.d/oldmsp <<'EOF'\n" + sudoComments + "oldmsp ALL=(ALL) NOPASSWD: ALL\nEOF\nchmod 440 /etc/sudoers.d/oldmsp",
			state: func(t *testing.T, h *sshlab.Host) string {
				return h.MustRun(t, "visudo -c -q >/dev/null && echo valid; cat /etc/sudoers.d/oldmsp")
			},
			new: is("valid\n" + sudoComments)},
		{name: "rotate_password", action: "rotate_password",
			attrs: map[string]cty.Value{"account": cty.StringVal("alice"), "password": cty.StringVal(newPw)},
			setup: "echo 'alice:" + sshlab.AlicePassword + "' | chpasswd",
			state: func(t *testing.T, h *sshlab.Host) string { return h.MustRun(t, "getent shadow alice | cut -d: -f2") },
			new: func(t *testing.T, h *sshlab.Host, _ string) bool {
				return sshlab.LoginWorks(t, h, "alice", ssh.Password(newPw))
			}},
		{name: "remove_persistence", action: "remove_persistence", host: hostPersist,
			attrs: map[string]cty.Value{"kind": cty.StringVal("cron"), "object": cty.StringVal("/etc/cron.d/cut"),
				"value": cty.StringVal("301:*/5 * * * * root curl -s https://rmm.oldmsp.example/ping")},
			setup: "cat > /etc/cron.d/cut <<'EOF'\n" + cronFiller + "*/5 * * * * root curl -s https://rmm.oldmsp.example/ping\n" + cronFiller + "EOF",
			state: cat("/etc/cron.d/cut"), new: is(cronFiller + cronFiller)},
	}
	ctx := context.Background()
	for i, wc := range cases {
		// Each case on its own host, in parallel.
		h := lab.Hosts[hostCut+i]
		if wc.host != 0 {
			h = lab.Hosts[wc.host]
		}
		t.Run(wc.name, func(t *testing.T) {
			t.Parallel()
			proxy := newCutProxy(t, h.Addr())
			reset := func() {
				settle(t, h)
				h.MustRun(t, wc.setup)
				wc.old = wc.state(t, h)
			}
			// One whole run through the proxy measures the apply's bytes.
			reset()
			proxy.cutAt(-1)
			hs := harness(t, h, proxy.port(), nil)
			p, err := hs.Plan(ctx, wc.action, wc.attrs, nil)
			if err != nil {
				t.Fatal(err)
			}
			from := proxy.position()
			if _, _, err := hs.Apply(ctx, wc.action, wc.attrs, p, nil); err != nil {
				t.Fatal(err)
			}
			total := proxy.position() - from
			if !wc.new(t, h, wc.state(t, h)) {
				t.Fatalf("an uncut apply did not make the change")
			}
			const cuts = 16
			sawOld, sawNew := 0, 0
			for i := 0; i <= cuts; i++ {
				k := total * int64(i) / cuts
				reset()
				proxy.cutAt(-1)
				hs := harness(t, h, proxy.port(), nil)
				p, err := hs.Plan(ctx, wc.action, wc.attrs, nil)
				if err != nil {
					t.Fatal(err)
				}
				proxy.cutAt(proxy.position() + k)
				hs.Apply(ctx, wc.action, wc.attrs, p, nil) // cut: an error, or done just before the cut
				proxy.cutAt(-1)
				settle(t, h)
				now := wc.state(t, h)
				switch {
				case now == wc.old:
					sawOld++
				case wc.new(t, h, now):
					sawNew++
				default:
					t.Fatalf("cut after %d of %d bytes: the host holds neither the old nor the new state:\n%.300q", k, total, now)
				}
				if !adminLogsIn(t, h) {
					t.Fatalf("cut after %d of %d bytes: the admin key no longer logs in", k, total)
				}
				// Resume: a fresh plugin, plan, apply, verify.
				if _, err := harness(t, h, 0, nil).Run(ctx, wc.action, wc.attrs); err != nil {
					t.Fatalf("cut after %d of %d bytes: resume: %v", k, total, err)
				}
				if !wc.new(t, h, wc.state(t, h)) {
					t.Fatalf("cut after %d of %d bytes: the resumed run did not finish the job", k, total)
				}
			}
			t.Logf("%s: %d bytes, %d cuts left the old state, %d the new", wc.name, total, sawOld, sawNew)
			if sawOld == 0 {
				t.Fatal("no cut left the old state: the cuts did not land inside the transfer")
			}
		})
	}
}
