package ad

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/go-ldap/ldap/v3"
	"github.com/zclconf/go-cty/cty"

	"github.com/switchover/switchover/internal/testing/adlab"
	"github.com/switchover/switchover/plugins/sdk"
	"github.com/switchover/switchover/plugins/sdk/sdktest"
)

// One real Samba AD DC for the package (started in TestMain); each test
// makes its own accounts, named after it.
var dc *adlab.DC

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "adplugin-lab-")
	if err == nil {
		dc, err = adlab.NewWith(dir, adlab.Options{Offline: offlinePlants})
	}
	if err != nil {
		// Never a silent skip: CI installs Samba.
		fmt.Fprintf(os.Stderr, "cannot start the AD lab: %v\n", err)
		os.Exit(1)
	}
	code := m.Run()
	dc.Stop()
	os.RemoveAll(dir)
	os.Exit(code)
}

func str(s string) cty.Value { return cty.StringVal(s) }

// configured is a harness whose plugin binds as Administrator over LDAPS,
// with settings overridden by set.
func configured(t *testing.T, set map[string]cty.Value) (*sdktest.Harness, error) {
	t.Helper()
	cfg := map[string]cty.Value{
		"server": str(dc.URL()), "bind_dn": str(adlab.AdminDN), "bind_password": str(adlab.AdminPassword),
		"ca_file": str(dc.CAFile), "connect_timeout": str("5s"),
	}
	for k, v := range set {
		cfg[k] = v
	}
	h := &sdktest.Harness{P: New("test")}
	return h, h.Configure(context.Background(), cfg)
}

func harness(t *testing.T) *sdktest.Harness {
	t.Helper()
	h, err := configured(t, nil)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func mustUser(t *testing.T, c *ldap.Conn, sam, pw string, attrs map[string][]string) string {
	t.Helper()
	dn, err := adlab.AddUser(c, sam, pw, attrs)
	if err != nil {
		t.Fatal(err)
	}
	return dn
}

func attr(t *testing.T, c *ldap.Conn, dn, name string) string {
	t.Helper()
	v, err := adlab.Attr(c, dn, name)
	if err != nil {
		t.Fatal(err)
	}
	return strings.Join(v, ",")
}

// bindCode is how a bind as dn with pw ends: "ok", or AD's data code
// (52e wrong password, 533 disabled, 773 must change).
func bindCode(t *testing.T, dn, pw string) string {
	t.Helper()
	err := dc.BindError(dn, pw)
	if err == nil {
		return "ok"
	}
	if !ldap.IsErrorWithCode(err, ldap.LDAPResultInvalidCredentials) {
		t.Fatalf("bind as %s: %v", dn, err)
	}
	return bindData(err)
}

// The old provider's admin in a German domain: "Domain Admins" is called
// "Domänen-Admins" there. Found as privileged by SID, disabled with a
// stamp, its password reset (the old one dead, the new one right), and
// taken out of the group; a nested path is reported, and every second
// plan is a no-op.
func TestOldProvidersAdminInARenamedDomainAdmins(t *testing.T) {
	ctx := context.Background()
	c := dc.Admin(t)
	daDN := "CN=Domain Admins," + adlab.UsersDN
	deDN := "CN=Domänen-Admins," + adlab.UsersDN
	rename := func(from, rdn, sam string) {
		if err := c.ModifyDN(ldap.NewModifyDNRequest(from, rdn, true, "")); err != nil {
			t.Fatal(err)
		}
		m := ldap.NewModifyRequest("CN="+strings.TrimPrefix(rdn, "CN=")+","+adlab.UsersDN, nil)
		m.Replace("sAMAccountName", []string{sam})
		if err := c.Modify(m); err != nil {
			t.Fatal(err)
		}
	}
	rename(daDN, "CN=Domänen-Admins", "Domänen-Admins")
	t.Cleanup(func() { rename(deDN, "CN=Domain Admins", "Domain Admins") })

	oldPw := "Old-Msp-Pw-1!"
	user := mustUser(t, c, "oldmsp-admin", oldPw, map[string][]string{"userPrincipalName": {"oldmsp-admin@oldmsp.example"}, "description": {"OldMSP technician"}})
	support, err := adlab.AddGroup(c, "IT-Support-Ext")
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range [][2]string{{deDN, user}, {support, user}, {deDN, support}} {
		if err := adlab.AddMember(c, m[0], m[1]); err != nil {
			t.Fatal(err)
		}
	}
	h := harness(t)
	found, err := h.Plan(ctx, "find_accounts", map[string]cty.Value{"privileged": cty.True, "upn_suffix": str("oldmsp.example")}, nil)
	if err != nil {
		t.Fatal(err)
	}
	acc := found.Outputs["accounts"].Index(str("oldmsp-admin"))
	if found.Outputs["count"].AsBigFloat().String() != "1" || acc.GetAttr("enabled").False() || acc.GetAttr("dn").AsString() != user {
		t.Fatalf("find_accounts: %s %#v", found.Summary, found.Outputs)
	}
	// Domain Admins is itself a member of Administrators.
	if pg := acc.GetAttr("privileged_groups"); pg.LengthInt() != 2 || pg.Index(cty.NumberIntVal(1)).AsString() != "Domänen-Admins" {
		t.Fatalf("privileged groups: %#v", pg)
	}

	// Disable, with a stamp.
	dis := map[string]cty.Value{"account": str("oldmsp-admin"), "stamp": cty.True, "reason": str("switch to NewMSP")}
	if _, err := h.Run(ctx, "disable_account", dis); err != nil {
		t.Fatal(err)
	}
	if got := bindCode(t, user, oldPw); got != "533" {
		t.Fatalf("a bind with the old password after disabling: %s, want 533 (disabled)", got)
	}
	if d := attr(t, c, user, "description"); !strings.HasPrefix(d, "disabled by switchover, "+time.Now().UTC().Format("2006-01-02")+", switch to NewMSP (was: OldMSP technician)") {
		t.Fatalf("description: %q", d)
	}
	// Reset: the old password is dead, the new one is right.
	newPw := "New-Secret-Pw-42!"
	if _, err := h.Run(ctx, "reset_password", map[string]cty.Value{"account": str("oldmsp-admin@oldmsp.example"), "password": str(newPw)}); err != nil {
		t.Fatal(err)
	}
	if got := bindCode(t, user, oldPw); got != "52e" {
		t.Fatalf("the old password after the reset: %s, want 52e (wrong password)", got)
	}
	if got := bindCode(t, user, newPw); got != "533" {
		t.Fatalf("the new password after the reset: %s, want 533 (right password, disabled account)", got)
	}
	// Out of the privileged groups; the nested path is reported.
	rm := map[string]cty.Value{"account": str(user), "privileged": cty.True}
	p, err := h.Plan(ctx, "remove_from_groups", rm, nil)
	if err != nil || p.Kind != sdk.Change || p.Summary != "remove oldmsp-admin from Domänen-Admins" {
		t.Fatalf("plan: %+v %v", p, err)
	}
	r, err := h.Run(ctx, "remove_from_groups", rm)
	if err != nil {
		t.Fatal(err)
	}
	if members := attr(t, c, deDN, "member"); strings.Contains(members, "oldmsp-admin") {
		t.Fatalf("still a direct member: %s", members)
	}
	if n := r.Outputs["nested"].AsValueSlice(); len(n) != 1 || n[0].AsString() != "IT-Support-Ext -> Domänen-Admins" {
		t.Fatalf("nested paths: %#v", n)
	}
	// Every second plan is a no-op.
	for action, attrs := range map[string]map[string]cty.Value{"disable_account": dis, "remove_from_groups": rm,
		"reset_password": {"account": str("oldmsp-admin"), "password": str(newPw)}} {
		if p, err := h.Plan(ctx, action, attrs, nil); err != nil || p.Kind != sdk.NoChange {
			t.Fatalf("second plan of %s: %+v %v", action, p, err)
		}
	}
}

// find_accounts criteria, one by one, against accounts made for it; and
// a paged search over more entries than one page.
func TestFindAccounts(t *testing.T) {
	ctx := context.Background()
	c := dc.Admin(t)
	mustUser(t, c, "fa-tech", "Fa-Pw-12345!", map[string][]string{"description": {"Technician of Acme IT Services"}})
	mustUser(t, c, "fa-svc", "Fa-Pw-12345!", map[string][]string{"servicePrincipalName": {"HTTP/fa-svc.lab.test"}, "userAccountControl": {"66048"}})
	mustUser(t, c, "fa-client", "Fa-Pw-12345!", nil)
	var wg sync.WaitGroup
	errs := make(chan error, 60)
	for i := 0; i < 60; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			_, err := adlab.AddUser(c, fmt.Sprintf("fa-bulk%03d", i), "Fa-Pw-12345!", nil)
			errs <- err
		}(i)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	h, err := configured(t, map[string]cty.Value{"page_size": cty.NumberIntVal(25)})
	if err != nil {
		t.Fatal(err)
	}
	names := func(attrs map[string]cty.Value) []string {
		t.Helper()
		p, err := h.Plan(ctx, "find_accounts", attrs, nil)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, v := range p.Outputs["names"].AsValueSlice() {
			out = append(out, v.AsString())
		}
		return out
	}
	for _, tc := range []struct {
		attrs map[string]cty.Value
		want  string
	}{
		{map[string]cty.Value{"mentions": str("Acme IT")}, "fa-tech"},
		{map[string]cty.Value{"has_spn": cty.True, "sam_account_name": str("fa-*")}, "fa-svc"},
		{map[string]cty.Value{"password_never_expires": cty.True, "sam_account_name": str("fa-*")}, "fa-svc"},
		{map[string]cty.Value{"mentions": str("Acme IT"), "has_spn": cty.True, "match": str("any")}, "dns-dc1,fa-svc,fa-tech,krbtgt"},
		{map[string]cty.Value{"privileged": cty.True, "sam_account_name": str("Admin*")}, "Administrator"},
		{map[string]cty.Value{"privileged": cty.True, "sam_account_name": str("fa-*")}, ""},
		{map[string]cty.Value{"inactive_days": cty.NumberIntVal(30), "sam_account_name": str("fa-c*")}, "fa-client"},
		{map[string]cty.Value{"sam_account_name": str("fa-*"), "enabled": cty.False}, ""},
		// Objects a member of Domain Admins creates are owned by the group.
		{map[string]cty.Value{"sam_account_name": str("fa-t*"), "created_by": str("Domain Admins")}, "fa-tech"},
		{map[string]cty.Value{"sam_account_name": str("fa-t*"), "created_by": str("fa-client")}, ""},
		{map[string]cty.Value{"sam_account_name": str("fa-t*"), "exclude": cty.ListVal([]cty.Value{str("fa-tech")})}, ""},
	} {
		if got := strings.Join(names(tc.attrs), ","); got != tc.want {
			t.Errorf("find_accounts %v: %q, want %q", tc.attrs, got, tc.want)
		}
	}
	if got := len(names(map[string]cty.Value{"sam_account_name": str("fa-bulk*")})); got != 60 {
		t.Errorf("a paged search (pages of 25) found %d of 60 accounts", got)
	}
	// No criterion: refused, not every account.
	if _, err := h.Plan(ctx, "find_accounts", nil, nil); err == nil || !strings.Contains(err.Error(), "at least one criterion") {
		t.Errorf("no criterion: %v", err)
	}
}

// The plan reads the object; someone changes it before apply; apply
// refuses (a conflict, which makes switchover plan again) and overwrites
// nothing; the new plan then applies.
func TestConcurrentChangeIsNotOverwritten(t *testing.T) {
	ctx := context.Background()
	c := dc.Admin(t)
	dn := mustUser(t, c, "cc-user", "Cc-Pw-12345!", nil)
	h := harness(t)
	attrs := map[string]cty.Value{"account": str("cc-user")}
	p, err := h.Plan(ctx, "disable_account", attrs, nil)
	if err != nil {
		t.Fatal(err)
	}
	m := ldap.NewModifyRequest(dn, nil)
	m.Replace("userAccountControl", []string{"66048"}) // someone sets "password never expires"
	if err := c.Modify(m); err != nil {
		t.Fatal(err)
	}
	r, _, err := h.Apply(ctx, "disable_account", attrs, p, nil)
	if err == nil || !r.Diagnostics.HasCode(sdk.CodeConflict) {
		t.Fatalf("apply on a stale plan: %v %+v", err, r)
	}
	if got := attr(t, c, dn, "userAccountControl"); got != "66048" {
		t.Fatalf("the concurrent change was overwritten: userAccountControl %s", got)
	}
	if _, err := h.Run(ctx, "disable_account", attrs); err != nil {
		t.Fatal(err)
	}
	if got := attr(t, c, dn, "userAccountControl"); got != "66050" {
		t.Fatalf("after planning again: userAccountControl %s, want 66050 (both changes)", got)
	}
}

// What a user gets wrong, and what the plugin refuses: one line each, and
// nothing changes.
func TestRefusals(t *testing.T) {
	ctx := context.Background()
	c := dc.Admin(t)
	dn := mustUser(t, c, "rf-user", "Rf-Pw-12345!", nil)
	attrs := map[string]cty.Value{"account": str("rf-user")}
	otherCA, err := adlab.NewCA("not the DC's CA")
	if err != nil {
		t.Fatal(err)
	}
	wrongCA := filepath.Join(t.TempDir(), "ca.pem")
	os.WriteFile(wrongCA, otherCA, 0o600)
	for _, tc := range []struct {
		name string
		set  map[string]cty.Value
		want string
	}{
		{"wrong CA", map[string]cty.Value{"ca_file": str(wrongCA)}, "is not signed by a trusted CA (set ca_file"},
		{"system CAs", map[string]cty.Value{"ca_file": cty.NullVal(cty.String)}, "is not signed by a trusted CA"},
		{"wrong password", map[string]cty.Value{"bind_password": str("not-it")}, "refused the bind as " + adlab.AdminDN + ": wrong user name or password"},
		{"nobody listens", map[string]cty.Value{"server": str("ldaps://127.0.0.1:1")}, "cannot reach the domain controller 127.0.0.1:1: connect: connection refused"},
		{"name not in the certificate", map[string]cty.Value{"tls_server_name": str("dc9.example")}, "does not name it"},
	} {
		h, err := configured(t, tc.set)
		if err == nil {
			_, err = h.Plan(ctx, "disable_account", attrs, nil)
		}
		if err == nil || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("%s: %v, want one line with %q", tc.name, err, tc.want)
		}
		if strings.Contains(fmt.Sprint(err), adlab.AdminPassword) {
			t.Errorf("%s: the error shows the bind password", tc.name)
		}
	}
	if got := attr(t, c, dn, "userAccountControl"); got != "512" {
		t.Fatalf("a refused plugin changed the account: %s", got)
	}
	// A plain ldap:// server means StartTLS, verified the same way.
	h, err := configured(t, map[string]cty.Value{"server": str("ldap://" + dc.Addr)})
	if err != nil {
		t.Fatal(err)
	}
	if p, err := h.Plan(ctx, "disable_account", attrs, nil); err != nil || p.Kind != sdk.Change {
		t.Fatalf("over StartTLS: %+v %v", p, err)
	}
	for _, bad := range []string{"http://dc1", "ldaps://dc1/ou=x", "ldaps://"} {
		if _, err := configured(t, map[string]cty.Value{"server": str(bad)}); err == nil {
			t.Errorf("server %q accepted", bad)
		}
	}
	// The built-in Administrator is not disabled without the flag.
	if _, err := harness(t).Plan(ctx, "disable_account", map[string]cty.Value{"account": str("Administrator")}, nil); err == nil || !strings.Contains(err.Error(), "RID 500") {
		t.Fatalf("disabling Administrator: %v", err)
	}
}

// krbtgt twice, `wait` apart: after the first reset the step waits (and a
// plan says until when), then the second reset; the key version goes up
// by two. A crash right after a reset, before its record, is recognised
// by the key version: no second reset at once.
func TestRotateKrbtgt(t *testing.T) {
	ctx := context.Background()
	c := dc.Admin(t)
	krbtgt := "CN=krbtgt," + adlab.UsersDN
	kvno := func() int {
		v, _ := strconv.Atoi(attr(t, c, krbtgt, "msDS-KeyVersionNumber"))
		return v
	}
	start := kvno()
	h := harness(t)
	attrs := map[string]cty.Value{"wait": str("2s")}
	p, err := h.Plan(ctx, "rotate_krbtgt", attrs, nil)
	if err != nil || p.Kind != sdk.Change {
		t.Fatalf("plan: %+v %v", p, err)
	}
	_, ev, err := h.Apply(ctx, "rotate_krbtgt", attrs, p, nil)
	if err != nil {
		t.Fatal(err)
	}
	if kvno() != start+1 {
		t.Fatalf("key version %d after the first reset, want %d", kvno(), start+1)
	}
	w, err := h.Plan(ctx, "rotate_krbtgt", attrs, ev.Last())
	if err != nil || w.Kind != sdk.Wait || w.NotBefore.Before(time.Now()) || !strings.Contains(w.Summary, "second reset of krbtgt due at") {
		t.Fatalf("after the first reset: %+v %v", w, err)
	}
	time.Sleep(time.Until(w.NotBefore))
	p2, err := h.Plan(ctx, "rotate_krbtgt", attrs, ev.Last())
	if err != nil || p2.Kind != sdk.Change {
		t.Fatalf("once due: %+v %v", p2, err)
	}
	_, ev2, err := h.Apply(ctx, "rotate_krbtgt", attrs, p2, ev.Last())
	if err != nil {
		t.Fatal(err)
	}
	if kvno() != start+2 {
		t.Fatalf("key version %d after the second reset, want %d", kvno(), start+2)
	}
	if v, err := h.Plan(ctx, "rotate_krbtgt", attrs, ev2.Last()); err != nil || v.Kind != sdk.NoChange {
		t.Fatalf("after both: %+v %v", v, err)
	}
	// A crash after the first reset of a new rotation, before its record:
	// the checkpoint holds only the intent.
	before := kvno()
	intent := []byte(fmt.Sprintf(`{"start_kvno":%d,"intent":1}`, before))
	m := ldap.NewModifyRequest(krbtgt, nil)
	m.Replace("unicodePwd", []string{adlab.EncodePassword("Crash-Test-Krbtgt-1!")})
	if err := c.Modify(m); err != nil {
		t.Fatal(err)
	}
	w1, err := h.Plan(ctx, "rotate_krbtgt", map[string]cty.Value{"wait": str("1h")}, intent)
	if err != nil || w1.Kind != sdk.Wait {
		t.Fatalf("after a crash past the first reset: %+v %v (must wait, not reset again)", w1, err)
	}
	// The due time is the DC's: pwdLastSet of that reset plus the wait,
	// the same at every later look (it used to move forward each time).
	time.Sleep(1100 * time.Millisecond)
	w2, _ := h.Plan(ctx, "rotate_krbtgt", map[string]cty.Value{"wait": str("1h")}, intent)
	set := fileTime(attr(t, c, krbtgt, "pwdLastSet"))
	if !w1.NotBefore.Equal(w2.NotBefore) || w1.NotBefore.Sub(set.Add(time.Hour)).Abs() > time.Second {
		t.Fatalf("the second reset is due at %s, then at %s; the first was at %s (DC)", w1.NotBefore, w2.NotBefore, set)
	}
	// Killed after the intent, before the reset reached the DC: the key
	// version did not move, so the first reset is still to do (once).
	fresh := kvno()
	pending := []byte(fmt.Sprintf(`{"start_kvno":%d,"intent":1}`, fresh))
	if p, err := h.Plan(ctx, "rotate_krbtgt", attrs, pending); err != nil || p.Kind != sdk.Change {
		t.Fatalf("killed before the reset: %+v %v", p, err)
	}
	p3, _ := h.Plan(ctx, "rotate_krbtgt", attrs, pending)
	if _, _, err := h.Apply(ctx, "rotate_krbtgt", attrs, p3, pending); err != nil || kvno() != fresh+1 {
		t.Fatalf("resumed: key version %d, want %d (%v)", kvno(), fresh+1, err)
	}
}

// The inventory: the privileged members by group, and a directory-sync
// account that makes it warn that changes reach Entra ID.
func TestInventory(t *testing.T) {
	c := dc.Admin(t)
	mustUser(t, c, "MSOL_0a1b2c3d4e5f", "Sync-Pw-12345!", nil)
	p, err := harness(t).Plan(context.Background(), "inventory", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	o := p.Outputs
	if o["functional_level"].AsString() == "" || o["domain_sid"].AsString() == "" || !o["entra_sync"].True() {
		t.Fatalf("inventory: %#v", o)
	}
	admins := o["privileged_members"].Index(str("Administrators"))
	if !admins.IsKnown() || !strings.Contains(fmt.Sprint(admins.AsValueSlice()), "Administrator") {
		t.Fatalf("Administrators: %#v", admins)
	}
	if len(p.Diagnostics) == 0 || p.Diagnostics[0].Summary != "The domain is synced to Entra ID" {
		t.Fatalf("no sync warning: %+v", p.Diagnostics)
	}
}

// An account deleted under the runbook: between plan and apply, a disable
// is done ("already gone", LDAP noSuchObject), a removal from groups too;
// a password reset of an account that does not exist is one line naming
// it. What the plugin cannot take away (a privileged primary group) is
// left for a person, as such.
func TestDeletedAccountsAndWhatIsLeftForAPerson(t *testing.T) {
	ctx := context.Background()
	c := dc.Admin(t)
	dn := mustUser(t, c, "gone-user", "Gone-Pw-12345!", nil)
	h := harness(t)
	attrs := map[string]cty.Value{"account": str("gone-user")}
	p, err := h.Plan(ctx, "disable_account", attrs, nil)
	if err != nil || p.Kind != sdk.Change {
		t.Fatalf("plan: %v %v", p, err)
	}
	if err := c.Del(ldap.NewDelRequest(dn, nil)); err != nil {
		t.Fatal(err)
	}
	r, _, err := h.Apply(ctx, "disable_account", attrs, p, nil)
	if err != nil || !strings.Contains(r.Summary, "already gone") {
		t.Fatalf("disable of an account deleted since the plan: %v %+v", err, r)
	}
	for _, action := range []string{"disable_account", "remove_from_groups"} {
		set := map[string]cty.Value{"account": str("gone-user")}
		if action == "remove_from_groups" {
			set["privileged"] = cty.True
		}
		p, err := h.Plan(ctx, action, set, nil)
		if err != nil || p.Kind != sdk.NoChange || !strings.Contains(p.Summary, `already gone: account "gone-user"`) {
			t.Errorf("%s of a deleted account: %v %v", action, p, err)
		}
	}
	_, err = h.Plan(ctx, "reset_password", map[string]cty.Value{"account": str("gone-user"), "password": str("New-Pw-12345!")}, nil)
	if err == nil || !strings.Contains(err.Error(), `account "gone-user"`) || !strings.Contains(err.Error(), "does not exist") {
		t.Fatalf("reset_password of a deleted account: %v", err)
	}

	// Primary group Domain Admins: changed to Domain Users, then out.
	pdn := mustUser(t, c, "prim-admin", "Prim-Pw-12345!", nil)
	if err := adlab.AddMember(c, "CN=Domain Admins,"+adlab.UsersDN, pdn); err != nil {
		t.Fatal(err)
	}
	m := ldap.NewModifyRequest(pdn, nil)
	m.Replace("primaryGroupID", []string{"512"})
	if err := c.Modify(m); err != nil {
		t.Fatal(err)
	}
	set := map[string]cty.Value{"account": str("prim-admin"), "privileged": cty.True}
	if _, err := h.Run(ctx, "remove_from_groups", set); err != nil {
		t.Fatalf("remove_from_groups with Domain Admins as the primary group: %v", err)
	}
	if got := attr(t, c, pdn, "primaryGroupID"); got != "513" {
		t.Fatalf("primaryGroupID %s, want 513 (Domain Users)", got)
	}
	if got := attr(t, c, pdn, "memberOf"); strings.Contains(got, "Domain Admins") {
		t.Fatalf("still in Domain Admins: %s", got)
	}
}

// The account switchover binds as, named in each of bind_dn's forms, is
// known by its SID: exclude finds it in any form, and no action disables,
// strips or resets it.
func TestTheBindAccountInEveryForm(t *testing.T) {
	ctx := context.Background()
	c := dc.Admin(t)
	dn := mustUser(t, c, "bindadmin", "Bind-Pw-12345!", map[string][]string{"userPrincipalName": {"it-admin@kunde.example"}, "description": {"Fernwartung oldmsp"}})
	if err := adlab.AddMember(c, "CN=Domain Admins,"+adlab.UsersDN, dn); err != nil {
		t.Fatal(err)
	}
	for _, form := range []string{dn, "it-admin@kunde.example", adlab.Domain + `\bindadmin`, "bindadmin@" + strings.ToLower(adlab.Realm)} {
		t.Run(form, func(t *testing.T) {
			h, err := configured(t, map[string]cty.Value{"bind_dn": str(form), "bind_password": str("Bind-Pw-12345!")})
			if err != nil {
				t.Fatal(err)
			}
			for action, set := range map[string]map[string]cty.Value{
				"disable_account":    {"account": str("bindadmin")},
				"reset_password":     {"account": str("bindadmin"), "password": str("Other-Pw-12345!")},
				"remove_from_groups": {"account": str("bindadmin"), "privileged": cty.True},
			} {
				if _, err := h.Plan(ctx, action, set, nil); err == nil || !strings.Contains(err.Error(), "the account switchover binds as") {
					t.Errorf("%s of the bind account: %v", action, err)
				}
			}
			// A find that matches it says so, and exclude in another form
			// leaves it out.
			find := map[string]cty.Value{"mentions": str("oldmsp")}
			p, err := h.Plan(ctx, "find_accounts", find, nil)
			if err != nil || p.Outputs["accounts"].LengthInt() == 0 || len(p.Diagnostics) == 0 {
				t.Fatalf("find without exclude: %v %+v", err, p)
			}
			find["exclude"] = cty.ListVal([]cty.Value{str(adlab.Domain + `\bindadmin`)})
			p, err = h.Plan(ctx, "find_accounts", find, nil)
			if err != nil {
				t.Fatal(err)
			}
			for it := p.Outputs["accounts"].ElementIterator(); it.Next(); {
				if k, _ := it.Element(); k.AsString() == "bindadmin" {
					t.Errorf("exclude by DOMAIN\\name did not leave the bind account out")
				}
			}
		})
	}
	if got := attr(t, c, dn, "userAccountControl"); got != "512" {
		t.Fatalf("the bind account was changed: userAccountControl %s", got)
	}
}

// An account disabled long ago is no change: its description (when and by
// whom) stays. A description of 1,030 bytes with multi-byte characters at
// the cut is stamped whole characters short, and the disable goes through.
func TestDisabledLongAgoAndALongDescription(t *testing.T) {
	ctx := context.Background()
	c := dc.Admin(t)
	old := mustUser(t, c, "alt-oldmsp", "Alt-Pw-12345!", map[string][]string{"userAccountControl": {"514"}, "description": {"disabled 2019 by Hans"}})
	usn := attr(t, c, old, "uSNChanged")
	h := harness(t)
	set := map[string]cty.Value{"account": str("alt-oldmsp"), "stamp": cty.True}
	p, err := h.Plan(ctx, "disable_account", set, nil)
	if err != nil || p.Kind != sdk.NoChange {
		t.Fatalf("an account disabled long ago: %+v %v", p, err)
	}
	if _, err := h.Run(ctx, "disable_account", set); err != nil {
		t.Fatal(err)
	}
	if got := attr(t, c, old, "description"); got != "disabled 2019 by Hans" {
		t.Fatalf("its description was rewritten: %q", got)
	}
	if got := attr(t, c, old, "uSNChanged"); got != usn {
		t.Fatalf("the account disabled long ago was written to (uSNChanged %s -> %s)", usn, got)
	}
	long := strings.Repeat("ä", 515) // 1,030 bytes
	dn := mustUser(t, c, "long-oldmsp", "Long-Pw-12345!", map[string][]string{"description": {long}})
	if _, err := h.Run(ctx, "disable_account", map[string]cty.Value{"account": str("long-oldmsp"), "stamp": cty.True}); err != nil {
		t.Fatalf("disable with a long description: %v", err)
	}
	if got := attr(t, c, dn, "userAccountControl"); got != "514" {
		t.Fatalf("not disabled: userAccountControl %s", got)
	}
	desc := attr(t, c, dn, "description")
	if !utf8.ValidString(desc) || utf8.RuneCountInString(desc) > 1024 || !strings.HasPrefix(desc, "disabled by switchover") {
		t.Fatalf("the stamp: %d characters, valid %v: %.60q", utf8.RuneCountInString(desc), utf8.ValidString(desc), desc)
	}
}

// A German small-business domain at its trickiest: an account whose primary
// group is a group nested in Domain Admins (memberOf never shows it), the
// old provider's group nested in Domain Admins, a client's anna beside a
// provider account whose sAMAccountName is anna's UPN.
func TestPrimaryGroupsGroupsInGroupsAndNamesThatMeanTwoThings(t *testing.T) {
	ctx := context.Background()
	c := dc.Admin(t)
	h := harness(t)
	// "Fernwartung" in Domain Admins; the technician's primary group.
	fw, err := adlab.AddGroup(c, "Fernwartung")
	if err != nil {
		t.Fatal(err)
	}
	if err := adlab.AddMember(c, "CN=Domain Admins,"+adlab.UsersDN, fw); err != nil {
		t.Fatal(err)
	}
	tech := mustUser(t, c, "fw-tech", "Fw-Pw-12345!", nil)
	if err := adlab.AddMember(c, fw, tech); err != nil {
		t.Fatal(err)
	}
	fwSID := attrSID(t, c, fw)
	m := ldap.NewModifyRequest(tech, nil)
	m.Replace("primaryGroupID", []string{fwSID[strings.LastIndexByte(fwSID, '-')+1:]})
	if err := c.Modify(m); err != nil {
		t.Fatal(err)
	}
	// The DC takes the member link away with that: only the primary
	// group makes it an admin now.
	if got := attr(t, c, tech, "memberOf"); strings.Contains(got, "Fernwartung") {
		t.Fatalf("memberOf %q: the lab's premise does not hold", got)
	}
	p, err := h.Plan(ctx, "find_accounts", map[string]cty.Value{"privileged": cty.True, "sam_account_name": str("fw-*")}, nil)
	if err != nil || p.Outputs["count"].AsBigFloat().String() != "1" {
		t.Fatalf("find privileged misses the primary-group admin: %v %s", err, p.Summary)
	}
	inv, err := h.Plan(ctx, "inventory", nil, nil)
	if err != nil || !strings.Contains(inv.Outputs["privileged_members"].GoString(), "fw-tech") {
		t.Fatalf("inventory's privileged members miss the primary-group admin: %v", err)
	}
	if _, err := h.Run(ctx, "remove_from_groups", map[string]cty.Value{"account": str("fw-tech"), "privileged": cty.True}); err != nil {
		t.Fatalf("remove_from_groups: %v", err)
	}
	if got := attr(t, c, tech, "primaryGroupID"); got != "513" {
		t.Fatalf("primaryGroupID %s, want 513", got)
	}
	if p, _ := h.Plan(ctx, "find_accounts", map[string]cty.Value{"privileged": cty.True, "sam_account_name": str("fw-*")}, nil); p.Outputs["count"].AsBigFloat().String() != "0" {
		t.Fatal("still privileged after the step")
	}

	// The provider's group out of Domain Admins, named as the account.
	if _, err := h.Run(ctx, "remove_from_groups", map[string]cty.Value{"account": str("Fernwartung"), "groups": cty.ListVal([]cty.Value{str("Domain Admins")})}); err != nil {
		t.Fatalf("taking a group out of Domain Admins: %v", err)
	}
	if got := attr(t, c, "CN=Domain Admins,"+adlab.UsersDN, "member"); strings.Contains(got, "Fernwartung") {
		t.Fatalf("Fernwartung is still in Domain Admins: %s", got)
	}

	// anna (the client's, UPN anna@acme.example) and a provider account
	// whose sAMAccountName is "anna@acme.example": refused, both named.
	client := mustUser(t, c, "anna", "Anna-Pw-12345!", map[string][]string{"userPrincipalName": {"anna@acme.example"}})
	mustUser(t, c, "anna@acme.example", "Prov-Pw-12345!", nil)
	clientUSN := attr(t, c, client, "uSNChanged")
	_, err = h.Plan(ctx, "disable_account", map[string]cty.Value{"account": str("anna@acme.example")}, nil)
	if err == nil || !strings.Contains(err.Error(), "more than one") || !strings.Contains(err.Error(), "by userPrincipalName") || !strings.Contains(err.Error(), "by sAMAccountName") {
		t.Fatalf("an ambiguous name: %v", err)
	}
	if got := attr(t, c, client, "uSNChanged"); got != clientUSN {
		t.Fatalf("the client's anna was written to (uSNChanged %s -> %s)", clientUSN, got)
	}
	// Named by DN, the provider's is found, and the plan says how.
	p, err = h.Plan(ctx, "disable_account", map[string]cty.Value{"account": str("CN=anna@acme.example," + adlab.UsersDN)}, nil)
	if err != nil || !strings.Contains(strings.Join(p.Details, " "), "found by distinguishedName") {
		t.Fatalf("by DN: %v %+v", err, p)
	}
}

// A path through a group the step itself takes the account out of is not
// reported as staying.
func TestNestedWarningsOnlyForPathsThatStay(t *testing.T) {
	ctx := context.Background()
	c := dc.Admin(t)
	dn := mustUser(t, c, "da-only", "Da-Pw-12345!", nil)
	if err := adlab.AddMember(c, "CN=Domain Admins,"+adlab.UsersDN, dn); err != nil {
		t.Fatal(err)
	}
	p, err := harness(t).Plan(ctx, "remove_from_groups", map[string]cty.Value{"account": str("da-only"), "privileged": cty.True}, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range p.Details {
		if strings.Contains(d, "stays a member through Domain Admins") {
			t.Fatalf("a path through a group the step removes: %s", d)
		}
	}
	if len(p.Diagnostics) > 0 {
		t.Fatalf("warnings for paths that go: %+v", p.Diagnostics)
	}
}

func attrSID(t *testing.T, c *ldap.Conn, dn string) string {
	t.Helper()
	r, err := c.Search(ldap.NewSearchRequest(dn, ldap.ScopeBaseObject, ldap.NeverDerefAliases, 0, 0, false, "(objectClass=*)", []string{"objectSid"}, nil))
	if err != nil || len(r.Entries) != 1 {
		t.Fatal(err)
	}
	return sidString(r.Entries[0].GetRawAttributeValue("objectSid"))
}
