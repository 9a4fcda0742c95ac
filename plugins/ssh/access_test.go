package ssh

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"strings"
	"testing"
	"time"

	"github.com/zclconf/go-cty/cty"
	"golang.org/x/crypto/ssh"

	"github.com/switchover/switchover/plugins/sdk"
	"github.com/switchover/switchover/plugins/sdk/window"
)

func windowVal(name string, start, end, booked time.Time) cty.Value {
	return window.Value(window.Window{Name: name, Start: start, End: end, BookedAt: booked, BookedBy: "Jana Neu (NewMSP)", ApprovedBy: "Max Kunde (client)"})
}

// A vendor window of a few seconds on a real sshd: the vendor's key logs
// in and its sudo rule works inside the window; after it, with switchover
// not running, sshd refuses the key (expiry-time) and sudo the rule
// (NOTAFTER); the next apply removes both and ends the vendor's sessions.
func TestAccessWindowOnAHost(t *testing.T) {
	ctx := context.Background()
	h := lab.Hosts[hostAccess]
	h.MustRun(t, "id vendor-erp >/dev/null 2>&1 || useradd -m -s /bin/sh vendor-erp")
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	vendor := ssh.PublicKeys(signer)
	pub := strings.TrimSpace(string(ssh.MarshalAuthorizedKey(signer.PublicKey()))) + " support@erp-vendor.test"
	start := time.Now().Add(3 * time.Second).Truncate(time.Second)
	end := start.Add(10 * time.Second) // the test looks inside it: time for a loaded machine
	attrs := map[string]cty.Value{
		"account": cty.StringVal("vendor-erp"), "public_key": cty.StringVal(pub),
		"sudo_commands": cty.ListVal([]cty.Value{cty.StringVal("/usr/bin/id")}),
		"windows":       cty.ListVal([]cty.Value{windowVal("erp-update", start, end, time.Now().Add(-8*24*time.Hour))}),
	}
	hs := harness(t, h, 0, nil)
	var cp []byte
	step := func(summary string) *sdk.PlanResponse {
		t.Helper()
		p, after, next, err := hs.Step(ctx, "access_window", attrs, cp)
		if err != nil || p.Kind != sdk.Change || !strings.Contains(p.Summary, summary) {
			t.Fatalf("plan: %v %v %q, want a change %q", err, p.Kind, p.Summary, summary)
		}
		cp = next
		return after
	}
	sudoID := func() string {
		// The last line: sudo may warn first (the lab host's name does
		// not resolve).
		out, _ := h.Run("su -s /bin/sh vendor-erp -c 'sudo -n /usr/bin/id -u' 2>&1")
		lines := strings.Split(strings.TrimSpace(out), "\n")
		return lines[len(lines)-1]
	}
	if v := step(`book "erp-update"`); v.Kind != sdk.Wait || !v.NotBefore.Equal(start) {
		t.Fatalf("after booking: %v %s", v.Kind, v.NotBefore)
	}
	time.Sleep(time.Until(start))
	if v := step("open vendor-erp on"); v.Kind != sdk.Wait || !v.NotBefore.Equal(end) {
		t.Fatalf("after opening: %v %s", v.Kind, v.NotBefore)
	}
	keys := h.MustRun(t, "cat ~vendor-erp/.ssh/authorized_keys")
	if !strings.HasPrefix(keys, `expiry-time="`+end.UTC().Format("20060102150405")+`Z" ssh-ed25519 `) {
		t.Fatalf("authorized_keys in the window:\n%s", keys)
	}
	if !sshLogin(t, h, vendor) || sudoID() != "0" {
		t.Fatalf("in the window: the vendor's login or sudo does not work (sudo: %q)", sudoID())
	}
	time.Sleep(time.Until(end) + 1500*time.Millisecond)
	if sshLogin(t, h, vendor) {
		t.Fatal("after the window, switchover not running: sshd still takes the vendor's key")
	}
	if got := sudoID(); got == "0" {
		t.Fatalf("after the window, switchover not running: sudo still runs the vendor's rule")
	}
	if v := step(`close window "erp-update"`); v.Kind != sdk.NoChange {
		t.Fatalf("after closing: %v %s", v.Kind, v.Summary)
	}
	if out := h.MustRun(t, "cat ~vendor-erp/.ssh/authorized_keys; ls /etc/sudoers.d"); strings.Contains(out, "ssh-ed25519") || strings.Contains(out, "switchover-access") {
		t.Fatalf("after closing:\n%s", out)
	}
}

func sshLogin(t *testing.T, h interface {
	Login(string, ssh.AuthMethod) (bool, error)
}, auth ssh.AuthMethod) bool {
	t.Helper()
	ok, err := h.Login("vendor-erp", auth)
	if err != nil {
		t.Fatal(err)
	}
	return ok
}

// The connection cut at every stage of opening a window (the sudo rule,
// then the key line): the key file is the old one or the old one plus the
// key with the window's end, never anything else; a sudo rule, if there,
// is whole, valid and ends with the window; a resumed run opens it.
func TestAccessWindowCutWhileOpening(t *testing.T) {
	ctx := context.Background()
	h := lab.Hosts[hostAccess]
	fill := fillerKeys(t, 150, "vendor-keep")
	h.MustRun(t, "id vendor-cut >/dev/null 2>&1 || useradd -m -s /bin/sh vendor-cut")
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	pk, _ := ssh.NewPublicKey(pub)
	key := strings.TrimSpace(string(ssh.MarshalAuthorizedKey(pk))) + " support@erp-vendor.test"
	end := time.Now().Add(time.Hour).Truncate(time.Second)
	attrs := map[string]cty.Value{
		"account": cty.StringVal("vendor-cut"), "public_key": cty.StringVal(key),
		"sudo_commands": cty.ListVal([]cty.Value{cty.StringVal("/usr/bin/id")}),
		"windows":       cty.ListVal([]cty.Value{windowVal("w", time.Now().Add(-time.Minute), end, time.Now().Add(-8*24*time.Hour))}),
	}
	cp := []byte(`{"booked":["w"]}`)
	opened := fill + `expiry-time="` + end.UTC().Format("20060102150405") + `Z" ` + key + "\n"
	reset := func() {
		settle(t, h)
		h.MustRun(t, "rm -f /etc/sudoers.d/switchover-access-vendor-cut; mkdir -p ~vendor-cut/.ssh; cat > ~vendor-cut/.ssh/authorized_keys <<'EOF'\n"+fill+"EOF\nchown -R vendor-cut: ~vendor-cut/.ssh; chmod 600 ~vendor-cut/.ssh/authorized_keys")
	}
	state := func() (keys, rule string) {
		return h.MustRun(t, "cat ~vendor-cut/.ssh/authorized_keys"), h.MustRun(t, "visudo -c -q >/dev/null && echo valid; cat /etc/sudoers.d/switchover-access-vendor-cut 2>/dev/null || true")
	}
	proxy := newCutProxy(t, h.Addr())
	reset()
	proxy.cutAt(-1)
	hs := harness(t, h, proxy.port(), nil)
	p, err := hs.Plan(ctx, "access_window", attrs, cp)
	if err != nil {
		t.Fatal(err)
	}
	from := proxy.position()
	if _, _, err := hs.Apply(ctx, "access_window", attrs, p, cp); err != nil {
		t.Fatal(err)
	}
	total := proxy.position() - from
	// Spread over the apply, denser at its end, where the writes are (the
	// reads of the key file come first).
	sawOld, sawNew := 0, 0
	for _, pct := range []int64{0, 20, 40, 60, 70, 80, 85, 90, 94, 97, 100} {
		k := total * pct / 100
		reset()
		proxy.cutAt(-1)
		hs := harness(t, h, proxy.port(), nil)
		p, err := hs.Plan(ctx, "access_window", attrs, cp)
		if err != nil {
			t.Fatal(err)
		}
		proxy.cutAt(proxy.position() + k)
		hs.Apply(ctx, "access_window", attrs, p, cp) // cut: an error, or done just before the cut
		proxy.cutAt(-1)
		settle(t, h)
		keys, rule := state()
		switch keys {
		case fill:
			sawOld++
		case opened:
			sawNew++
		default:
			t.Fatalf("cut after %d of %d bytes: the key file is neither the old one nor the old one with the vendor's key until the end:\n%.300q", k, total, keys)
		}
		if rule != "valid\n" && (!strings.HasPrefix(rule, "valid\n") || !strings.Contains(rule, "NOTAFTER="+end.UTC().Format("20060102150405")+"Z NOPASSWD: /usr/bin/id")) {
			t.Fatalf("cut after %d of %d bytes: the sudo rule:\n%s", k, total, rule)
		}
		v, err := harness(t, h, 0, nil).Plan(ctx, "access_window", attrs, cp)
		if err != nil {
			t.Fatal(err)
		}
		if v.Kind == sdk.Change {
			r, _, err := harness(t, h, 0, nil).Apply(ctx, "access_window", attrs, v, cp)
			if err != nil || r.Verify == nil || r.Verify.Kind != sdk.Wait {
				t.Fatalf("cut after %d of %d bytes: resume: %v %+v", k, total, err, r)
			}
		}
		if keys, _ := state(); keys != opened {
			t.Fatalf("cut after %d of %d bytes: the resumed run did not open the window:\n%.300q", k, total, keys)
		}
	}
	t.Logf("%d bytes, %d cuts left the old key file, %d the new", total, sawOld, sawNew)
	if sawOld == 0 {
		t.Fatal("no cut left the old state: the cuts did not land inside the transfer")
	}
}
