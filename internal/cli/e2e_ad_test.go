package cli

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-ldap/ldap/v3"
	"golang.org/x/sync/errgroup"

	"github.com/switchover/switchover/internal/testing/adlab"
	"github.com/switchover/switchover/internal/testing/smtplab"
)

// One Samba AD DC for the runbook-level AD tests of this package, started
// by the first that needs it; samba ends with this process (its stdin).
var (
	adOnce sync.Once
	adDC   *adlab.DC
	adErr  error
)

func sharedDC(t *testing.T) *adlab.DC {
	t.Helper()
	adOnce.Do(func() {
		dir, err := os.MkdirTemp("", "switchover-cli-ad-")
		if err == nil {
			adDC, adErr = adlab.New(dir)
		} else {
			adErr = err
		}
	})
	if adErr != nil {
		t.Fatalf("cannot start the AD lab: %v", adErr)
	}
	return adDC
}

func adRunbook(t *testing.T, dc *adlab.DC, body string) *fixture {
	t.Helper()
	return newFixture(t, fmt.Sprintf(`
plugin "ad" {
  server        = %q
  bind_dn       = %q
  bind_password = %q
  ca_file       = %q
}
%s`, dc.URL(), adlab.AdminDN, adlab.AdminPassword, dc.CAFile, body))
}

// TestADCrashWhileResettingPasswords kills `switchover apply` with SIGKILL
// at random moments while it resets the passwords of 20 accounts on a real
// DC, resumes it, and then binds as every account with the password from
// the secret store: none may end up with a password known to nobody, and
// no old password may still work.
func TestADCrashWhileResettingPasswords(t *testing.T) {
	t.Parallel()
	dc := sharedDC(t)
	c := dc.Admin(t)
	const n = 20
	var names []string
	oldPw := "Crash-Old-Pw-1!"
	for i := 0; i < n; i++ {
		name := fmt.Sprintf("crash-%02d", i)
		if _, err := adlab.AddUser(c, name, oldPw, nil); err != nil {
			t.Fatal(err)
		}
		names = append(names, strconv.Quote(name))
	}
	f := adRunbook(t, dc, fmt.Sprintf(`
variable "accounts" {
  default = [%s]
}
step "ad.reset_password" "user" {
  for_each = toset(var.accounts)
  account  = each.value
  password = secret("ad/${each.value}")
}
step "ad.disable_account" "off" {
  for_each   = toset(var.accounts)
  account    = each.value
  depends_on = [step.user]
}
`, strings.Join(names, ", ")))
	seed := time.Now().UnixNano()
	rng := rand.New(rand.NewSource(seed))
	kills, mid := killAndResume(t, f, 8, func() time.Duration { return time.Duration(20+rng.Intn(400)) * time.Millisecond })
	t.Logf("seed %d: %d kills, %d with a step running", seed, kills, mid)
	for i := 0; i < n; i++ {
		name := fmt.Sprintf("crash-%02d", i)
		dn := "CN=" + name + "," + adlab.UsersDN
		pw := secretValue(t, f.dir, "ad/"+name)
		if err := dc.BindError(dn, pw); err == nil || !strings.Contains(err.Error(), "data 533") {
			t.Fatalf("seed %d: %s with the password in the secret store: %v (want data 533: right password, account disabled)", seed, name, err)
		}
		if err := dc.BindError(dn, oldPw); err == nil || !strings.Contains(err.Error(), "data 52e") {
			t.Fatalf("seed %d: %s with the old password: %v (want data 52e)", seed, name, err)
		}
	}
	if code, out := f.apply(); code != ExitOK || !strings.Contains(out, "0 done") {
		t.Fatalf("a second apply: exit %d\n%s", code, out)
	}
}

// A krbtgt rotation through the CLI: the first apply resets once and ends
// with the step due later (exit 4); status says when; confirm refuses (no
// person can shorten it); an apply after the time does the second reset.
func TestADKrbtgtWaitsAcrossApplies(t *testing.T) {
	t.Parallel()
	dc := sharedDC(t)
	c := dc.Admin(t)
	kvno := func() int {
		v, err := adlab.Attr(c, "CN=krbtgt,"+adlab.UsersDN, "msDS-KeyVersionNumber")
		if err != nil {
			t.Fatal(err)
		}
		n, _ := strconv.Atoi(v[0])
		return n
	}
	start := kvno()
	f := adRunbook(t, dc, `
step "ad.rotate_krbtgt" "krbtgt" {
  wait = "3s"
}
step "core.noop" "after" {
  message    = "after krbtgt"
  depends_on = [step.krbtgt]
}
`)
	code, out := f.apply()
	if code != ExitWaiting || !strings.Contains(out, "1 due again later") || kvno() != start+1 {
		t.Fatalf("first apply: exit %d, key version %d (start %d)\n%s", code, kvno(), start, out)
	}
	_, st, _ := f.run("status", f.dir)
	if !strings.Contains(st, "due again later") || !strings.Contains(st, "second reset of krbtgt due at") {
		t.Fatalf("status:\n%s", st)
	}
	if code, _, errs := f.run("confirm", "step.krbtgt", "--by", "someone", f.dir); code == ExitOK || !strings.Contains(errs, "not for a person") {
		t.Fatalf("confirm of a timed wait: exit %d %s", code, errs)
	}
	if code, out := f.apply(); code != ExitWaiting || kvno() != start+1 {
		t.Fatalf("apply before the time: exit %d, key version %d\n%s", code, kvno(), out)
	}
	time.Sleep(3 * time.Second)
	if code, out := f.apply(); code != ExitOK || kvno() != start+2 {
		t.Fatalf("apply after the time: exit %d, key version %d (start %d)\n%s", code, kvno(), start, out)
	}
}

// The example runbook runbooks/ad-domain, applied to the lab DC: the
// old provider's admin ends disabled, out of Domain Admins, and the run
// stops where it must wait (krbtgt's second reset, a person's step).
func TestADExampleRunbook(t *testing.T) {
	t.Parallel()
	// Its own DC: the runbook resets Administrator's password, which the
	// other tests bind with.
	dc := adlab.Start(t)
	c := dc.Admin(t)
	dn, err := adlab.AddUser(c, "ex-oldmsp", "Ex-Old-Pw-1!", map[string][]string{"userPrincipalName": {"ex-oldmsp@example-oldmsp.test"}})
	if err != nil {
		t.Fatal(err)
	}
	if err := adlab.AddMember(c, "CN=Domain Admins,"+adlab.UsersDN, dn); err != nil {
		t.Fatal(err)
	}
	// Its back door (DCSync rights for its account, which survive the
	// account's disabling once it is enabled again by anyone), and a
	// client group's right to reset passwords (nobody listed it as
	// trusted: reported, never removed).
	exSID, err := adlab.SID(c, dn)
	if err != nil {
		t.Fatal(err)
	}
	helpdesk, err := adlab.AddGroup(c, "helpdesk")
	if err != nil {
		t.Fatal(err)
	}
	helpdeskSID, err := adlab.SID(c, helpdesk)
	if err != nil {
		t.Fatal(err)
	}
	dcsync := "(OA;;CR;1131f6ad-9c07-11d1-f79f-00c04fc2dcd2;;" + exSID + ")"
	reset := "(OA;CI;CR;00299570-246d-11d0-a768-00aa006e0529;;" + helpdeskSID + ")"
	for _, ace := range []string{dcsync, reset} {
		if err := dc.AddACE(adlab.BaseDN, ace); err != nil {
			t.Fatal(err)
		}
	}
	// The new provider binds as its own admin: the runbook resets
	// Administrator's password, and switchover never resets the account
	// it binds as.
	admin, err := adlab.AddUser(c, "newmsp-admin", "NewMsp-Admin-Pw-1!", nil)
	if err == nil {
		err = adlab.AddMember(c, "CN=Domain Admins,"+adlab.UsersDN, admin)
	}
	if err != nil {
		t.Fatal(err)
	}
	src, err := os.ReadFile("../../runbooks/ad-domain/main.sw.hcl")
	if err != nil {
		t.Fatal(err)
	}
	f := newFixture(t, "")
	os.WriteFile(f.dir+"/main.sw.hcl", src, 0o644)
	vars := fmt.Sprintf(`{"dc": %q, "ca_file": %q, "bind_dn": %q, "bind_password": %q, "old_provider_upn_suffix": "example-oldmsp.test"}`,
		dc.URL(), dc.CAFile, admin, "NewMsp-Admin-Pw-1!")
	os.WriteFile(f.dir+"/vars.json", []byte(vars), 0o600)
	// A saved plan lists the account found while planning; one more found
	// by the time of apply makes the saved plan stale: refused.
	if code, out, errs := f.run("plan", "-var-file", f.dir+"/vars.json", "-out", f.dir+"/p.plan", f.dir); code != ExitOK || !strings.Contains(out, `step.disable["ex-oldmsp"]`) {
		t.Fatalf("plan: exit %d\n%s%s", code, out, errs)
	}
	dn2, err := adlab.AddUser(c, "ex-oldmsp2", "Ex-Old-Pw-1!", map[string][]string{"userPrincipalName": {"ex-oldmsp2@example-oldmsp.test"}})
	if err != nil {
		t.Fatal(err)
	}
	if code, out, errs := f.run("apply", "-var-file", f.dir+"/vars.json", f.dir+"/p.plan"); code != ExitError || !strings.Contains(errs, "found other objects") {
		t.Fatalf("apply of a plan whose read changed: exit %d\n%s%s", code, out, errs)
	}
	code, out := f.apply("-var-file", f.dir+"/vars.json")
	if code != ExitWaiting {
		t.Fatalf("apply: exit %d, want 4 (krbtgt's second reset and a person's step wait)\n%s", code, out)
	}
	for _, dn := range []string{dn, dn2} {
		if uac, _ := adlab.Attr(c, dn, "userAccountControl"); uac[0] != "514" {
			t.Fatalf("%s: userAccountControl %v, want 514 (disabled)\n%s", dn, uac, out)
		}
	}
	if m, _ := adlab.Attr(c, "CN=Domain Admins,"+adlab.UsersDN, "member"); strings.Contains(strings.Join(m, ";"), "ex-oldmsp") {
		t.Fatalf("still in Domain Admins: %v", m)
	}
	if !strings.Contains(out, "found 2 accounts in DC=lab,DC=test: ex-oldmsp, ex-oldmsp2") {
		t.Fatalf("find_accounts did not report the candidate:\n%s", out)
	}
	dacl, err := dc.DACL(adlab.BaseDN)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(dacl, exSID) || !strings.Contains(dacl, reset) {
		t.Fatalf("the domain head's DACL after the sweep: the old provider's DCSync right must be gone, the helpdesk's right must stay:\n%s\n%s", dacl, out)
	}
	if !strings.Contains(out, "removed the ACE "+dcsync) {
		t.Fatalf("the apply does not say it removed the DCSync right:\n%s", out)
	}
	// Administrator's new password is in the secret store, and works.
	if err := dc.BindError(adlab.AdminDN, secretValue(t, f.dir, "ad/Administrator")); err != nil {
		t.Fatalf("Administrator with the new password: %v", err)
	}
}

// TestADCrashWhileRemovingBackDoors kills `switchover apply` with SIGKILL
// at random moments while it rewrites the DACLs of 20 OUs without the old
// provider's ACEs, and resumes it: every DACL ends exactly as it was before
// the old provider's ACEs were planted (the client's ACE and the defaults
// unchanged), never a third thing.
func TestADCrashWhileRemovingBackDoors(t *testing.T) {
	t.Parallel()
	dc := sharedDC(t)
	c := dc.Admin(t)
	group, err := adlab.AddGroup(c, "crash-oldmsp-admins")
	if err != nil {
		t.Fatal(err)
	}
	helpdesk, err := adlab.AddGroup(c, "crash-helpdesk")
	if err != nil {
		t.Fatal(err)
	}
	groupSID, err := adlab.SID(c, group)
	if err != nil {
		t.Fatal(err)
	}
	helpdeskSID, err := adlab.SID(c, helpdesk)
	if err != nil {
		t.Fatal(err)
	}
	const n = 20
	// The helpdesk's right is on the parent, inherited by each OU; each
	// OU gets the old provider's ACEs (three: the DC splits GA with CI in
	// two) with one samba-tool call, four at a time.
	parent := "OU=crash," + adlab.BaseDN
	if err := c.Add(&ldap.AddRequest{DN: parent, Attributes: []ldap.Attribute{{Type: "objectClass", Vals: []string{"organizationalUnit"}}}}); err != nil {
		t.Fatal(err)
	}
	if err := dc.AddACE(parent, "(OA;CI;CR;00299570-246d-11d0-a768-00aa006e0529;;"+helpdeskSID+")"); err != nil {
		t.Fatal(err)
	}
	before := map[string][]byte{}
	var g errgroup.Group
	g.SetLimit(4)
	for i := 0; i < n; i++ {
		ou := fmt.Sprintf("OU=crash-ou-%02d,%s", i, parent)
		if err := c.Add(&ldap.AddRequest{DN: ou, Attributes: []ldap.Attribute{{Type: "objectClass", Vals: []string{"organizationalUnit"}}}}); err != nil {
			t.Fatal(err)
		}
		sd, err := adlab.RawDACL(c, ou)
		if err != nil {
			t.Fatal(err)
		}
		before[ou] = sd
		g.Go(func() error { return dc.AddACE(ou, "(A;CI;GA;;;"+groupSID+")(A;;WD;;;"+groupSID+")") })
	}
	if err := g.Wait(); err != nil {
		t.Fatal(err)
	}
	f := adRunbook(t, dc, `
step "ad.find_persistence" "sweep" {
  principals = ["crash-oldmsp-admins"]
  trusted    = ["crash-helpdesk"]
}
step "ad.remove_persistence" "remove" {
  for_each = step.sweep.outputs.removable
  kind     = each.value.kind
  object   = each.value.object
  value    = each.value.value
}
`)
	seed := time.Now().UnixNano()
	rng := rand.New(rand.NewSource(seed))
	// Even rounds are killed counting from the start (plugin start, the
	// sweep, the plan), odd ones from the first write on: the writes take
	// a few milliseconds each.
	round := 0
	kills, mid := killAndResume(t, f, 8, func() time.Duration {
		round++
		if round%2 == 1 {
			return time.Duration(100+rng.Intn(700)) * time.Millisecond
		}
		return time.Duration(rng.Intn(40)) * time.Millisecond
	})
	t.Logf("seed %d: %d kills, %d with a step running", seed, kills, mid)
	for ou, want := range before {
		got, err := adlab.RawDACL(c, ou)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			dacl, _ := dc.DACL(ou)
			t.Fatalf("seed %d: %s after the run is not its DACL from before the old provider's ACEs, byte for byte:\n%s", seed, ou, dacl)
		}
	}
	if code, out := f.apply(); code != ExitOK || strings.Contains(out, "started (attempt") || !strings.Contains(out, "0 failed") {
		t.Fatalf("a second apply: exit %d\n%s", code, out)
	}
}

// TestADVendorWindowKilledWhileOpeningAndClosing opens a vendor window on
// 10 AD accounts with `switchover apply` killed (SIGKILL) at random
// moments, then closes it the same way: after every kill, an enabled
// account has the window's end in accountExpires (never enabled without
// an end); in the window the vendor's bind works, after it the DC refuses
// it with switchover not running; the notices arrive, status and the
// checklist say where each access stands.
func TestADVendorWindowKilledWhileOpeningAndClosing(t *testing.T) {
	t.Parallel()
	dc := sharedDC(t)
	c := dc.Admin(t)
	mail, err := smtplab.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer mail.Close()
	const n = 10
	var names, dns []string
	pw := "Vendor-Window-Pw-1!"
	for i := 0; i < n; i++ {
		name := fmt.Sprintf("vendor-w%02d", i)
		dn, err := adlab.AddUser(c, name, pw, map[string][]string{"userAccountControl": {"514"}})
		if err != nil {
			t.Fatal(err)
		}
		names, dns = append(names, strconv.Quote(name)), append(dns, dn)
	}
	// Time enough for the kills and the apply after them on a loaded
	// machine (CI runs every package at once): the window must still be
	// open when the test looks.
	end := time.Now().Add(45 * time.Second).Truncate(time.Second).UTC()
	if end.Second() == 0 {
		end = end.Add(time.Second) // plans write seconds only when there are some
	}
	f := adRunbook(t, dc, fmt.Sprintf(`
variable "accounts" {
  default = [%s]
}
step "ad.access_window" "vendor" {
  for_each      = toset(var.accounts)
  account       = each.value
  windows = [{
    name        = "erp-update"
    start       = %q
    end         = %q
    booked_at   = %q
    booked_by   = "Jana Neu (NewMSP)"
    approved_by = "Max Kunde (client)"
  }]
  smtp_server   = %q
  smtp_username = %q
  smtp_password = %q
  smtp_ca_file  = %q
  mail_from     = %q
  mail_to       = ["it@kunde.test", "support@erp-vendor.test"]
}
`, strings.Join(names, ", "), time.Now().Add(-time.Minute).UTC().Format(time.RFC3339), end.Format(time.RFC3339),
		time.Now().Add(-8*24*time.Hour).UTC().Format(time.RFC3339), mail.Addr, smtplab.User, smtplab.Password, mail.CAFile, smtplab.User))
	// Never enabled without the window's end.
	check := func(when string) (enabled int) {
		t.Helper()
		for _, dn := range dns {
			uac, err := adlab.Attr(c, dn, "userAccountControl")
			if err != nil {
				t.Fatal(err)
			}
			if uac[0] == "514" {
				continue
			}
			enabled++
			exp, _ := adlab.Attr(c, dn, "accountExpires")
			want := strconv.FormatInt(end.UnixNano()/100+116444736000000000, 10)
			if len(exp) != 1 || exp[0] != want {
				t.Fatalf("%s: %s is enabled (userAccountControl %v) with accountExpires %v, want %s (the window's end)", when, dn, uac, exp, want)
			}
		}
		return enabled
	}
	seed := time.Now().UnixNano()
	rng := rand.New(rand.NewSource(seed))
	killLoop := func(phase string, wantCode int) string {
		t.Helper()
		kills := 0
		for round := 0; round < 6; round++ {
			if f.killAfter(time.Duration(50+rng.Intn(700)) * time.Millisecond) {
				kills++
			}
			check(fmt.Sprintf("seed %d, %s, after kill %d", seed, phase, round))
		}
		t.Logf("seed %d, %s: %d of 6 applies killed", seed, phase, kills)
		code, out := f.apply()
		if code != wantCode {
			t.Fatalf("seed %d, %s: the apply after the kills: exit %d, want %d\n%s", seed, phase, code, wantCode, out)
		}
		return out
	}
	killLoop("opening", ExitWaiting)
	if got := check("opened"); got != n {
		t.Fatalf("%d of %d accounts open in the window", got, n)
	}
	if err := dc.BindError(dns[0], pw); err != nil {
		t.Fatalf("the vendor's bind in the window: %v", err)
	}
	if _, st, _ := f.run("status", f.dir); !strings.Contains(st, "is open until "+end.Format("2006-01-02 15:04:05 UTC")+` (window "erp-update", approved by Max Kunde (client))`) {
		t.Fatalf("status does not say the window is open and until when:\n%s", st)
	}
	time.Sleep(time.Until(end) + 1500*time.Millisecond)
	if err := dc.BindError(dns[0], pw); err == nil || !strings.Contains(err.Error(), "data 701") {
		t.Fatalf("the vendor's bind after the window, switchover not running: %v, want data 701 (expired)", err)
	}
	killLoop("closing", ExitOK)
	if got := check("closed"); got != 0 {
		t.Fatalf("%d accounts still enabled after the window was closed", got)
	}
	seen := map[string]int{}
	for _, m := range mail.Messages() {
		seen[strings.SplitN(m.Subject, ":", 2)[0]]++
	}
	for _, what := range []string{"Access window booked", "Access window open now", "Access window closed"} {
		if seen[what] < n {
			t.Errorf("%d notices %q, want one per account (%d)", seen[what], what, n)
		}
	}
	_, md, _ := f.run("handover", f.dir)
	if !strings.Contains(md, "## Vendor access: the standard operating procedure") || !strings.Contains(md, "Verbal agreements do not count") {
		t.Fatalf("the checklist has no vendor access section:\n%s", md)
	}
}

// A window booked at short notice without a reason is refused before
// anything changes, with the file and line of the windows attribute.
func TestADVendorWindowRefusedWithFileLine(t *testing.T) {
	t.Parallel()
	dc := sharedDC(t)
	if _, err := adlab.AddUser(dc.Admin(t), "vendor-short", "Vendor-Short-Pw-1!", map[string][]string{"userAccountControl": {"514"}}); err != nil {
		t.Fatal(err)
	}
	start := time.Now().Add(2 * time.Hour).UTC()
	f := adRunbook(t, dc, fmt.Sprintf(`
step "ad.access_window" "vendor" {
  account = "vendor-short"
  windows = [{
    start       = %q
    end         = %q
    booked_at   = %q
    booked_by   = "Jana Neu (NewMSP)"
    approved_by = "Max Kunde (client)"
  }]
}
`, start.Format(time.RFC3339), start.Add(time.Hour).Format(time.RFC3339), time.Now().UTC().Format(time.RFC3339)))
	code, out, errs := f.run("plan", f.dir)
	if code == ExitOK || !strings.Contains(errs, "An access window booked at short notice") || !strings.Contains(errs, "main.sw.hcl:13:13") {
		t.Fatalf("plan: exit %d\n%s%s", code, out, errs)
	}
}

// The curated runbook runbooks/vendor-access on the lab DC: a window
// that is open now opens (the vendor binds), the notices go out, and after
// its end an apply closes it.
func TestVendorAccessExampleRunbook(t *testing.T) {
	t.Parallel()
	dc := sharedDC(t)
	c := dc.Admin(t)
	pw := "Vendor-Example-Pw-1!"
	dn, err := adlab.AddUser(c, "vendor-example", pw, map[string][]string{"userAccountControl": {"514"}})
	if err != nil {
		t.Fatal(err)
	}
	mail, err := smtplab.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer mail.Close()
	src, err := os.ReadFile("../../runbooks/vendor-access/main.sw.hcl")
	if err != nil {
		t.Fatal(err)
	}
	f := newFixture(t, "")
	os.WriteFile(f.dir+"/main.sw.hcl", src, 0o644)
	end := time.Now().Add(20 * time.Second).Truncate(time.Second).UTC()
	vars := map[string]any{
		"dc": dc.URL(), "ca_file": dc.CAFile, "bind_dn": adlab.AdminDN, "bind_password": adlab.AdminPassword, "vendor_account": "vendor-example",
		"windows": []map[string]any{{"name": "erp-hotfix", "start": time.Now().Add(-time.Minute).UTC().Format(time.RFC3339), "end": end.Format(time.RFC3339),
			"booked_at": time.Now().Add(-time.Hour).UTC().Format(time.RFC3339), "booked_by": "Jana Neu (NewMSP)", "approved_by": "Max Kunde (client)",
			"reason": "the ERP stopped booking invoices"}},
		"smtp_server": mail.Addr, "smtp_username": smtplab.User, "smtp_password": smtplab.Password, "smtp_ca_file": mail.CAFile,
		"mail_from": smtplab.User, "mail_to": []string{"it@kunde.test", "support@erp-vendor.test"},
	}
	b, _ := json.Marshal(vars)
	os.WriteFile(f.dir+"/vars.json", b, 0o600)
	if code, out := f.apply("-var-file", f.dir+"/vars.json"); code != ExitWaiting || dc.BindError(dn, pw) != nil {
		t.Fatalf("apply in the window: exit %d, want 4 (the window is open until its end); bind %v\n%s", code, dc.BindError(dn, pw), out)
	}
	time.Sleep(time.Until(end) + time.Second)
	if code, out := f.apply("-var-file", f.dir+"/vars.json"); code != ExitOK {
		t.Fatalf("apply after the window: exit %d\n%s", code, out)
	}
	if uac, _ := adlab.Attr(c, dn, "userAccountControl"); uac[0] != "514" {
		t.Fatalf("after the window: userAccountControl %v", uac)
	}
	msgs := mail.Messages()
	if len(msgs) != 3 || !strings.Contains(msgs[0].Body, "Short notice because: the ERP stopped booking invoices") {
		t.Fatalf("notices: %+v", msgs)
	}
}
