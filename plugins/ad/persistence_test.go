package ad

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/go-ldap/ldap/v3"
	"github.com/zclconf/go-cty/cty"

	"github.com/switchover/switchover/internal/testing/adlab"
	"github.com/switchover/switchover/plugins/sdk"
)

// The account TestMain plants with sIDHistory (Samba refuses it over
// LDAP): Domain Admins of the old provider's domain.
const (
	legacySam       = "legacy-admin"
	oldProviderDom  = "S-1-5-21-1111-2222-3333"
	legacySIDHistor = oldProviderDom + "-512"
)

var offlinePlants = fmt.Sprintf(`dn: CN=%s,%s
changetype: add
objectClass: user
sAMAccountName: %s
sIDHistory: %s
`, legacySam, adlab.UsersDN, legacySam, legacySIDHistor)

// explicitACEs is an object's DACL as the list of its explicit ACEs' bytes.
func explicitACEs(t *testing.T, c *ldap.Conn, dn string) []string {
	t.Helper()
	d, err := readDescriptor(c, dn)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range d.acl.aces {
		if e.flags&aceInherited == 0 {
			out = append(out, string(e.raw))
		}
	}
	return out
}

func sidOf(t *testing.T, c *ldap.Conn, dn string) string {
	t.Helper()
	e, err := readObject(c, dn, "objectSid")
	if err != nil {
		t.Fatal(err)
	}
	return sidString(e.GetRawAttributeValue("objectSid"))
}

// The six back doors of issue 27, planted as an outgoing admin would,
// plus a delegation and a logon script: each is found and attributed;
// the old provider's are removed (the sIDHistory one, which Samba refuses
// over LDAP, is left to a person with the command); the client's ACEs and
// the domain's defaults stay byte for byte; a second sweep finds nothing
// more to remove.
func TestPersistenceSweepFindsAndRemovesTheOldProvidersBackDoors(t *testing.T) {
	ctx := context.Background()
	c := dc.Admin(t)
	sfx := "prev-msp.example"
	syncDN := mustUser(t, c, "prev-sync", "Prev-Sync-Pw-1!", map[string][]string{"userPrincipalName": {"prev-sync@" + sfx}})
	techDN := mustUser(t, c, "prev-tech", "Prev-Tech-Pw-1!", map[string][]string{"userPrincipalName": {"prev-tech@" + sfx}})
	contractorDN := mustUser(t, c, "contractor-x", "Contractor-Pw-1!", nil)
	groupDN, err := adlab.AddGroup(c, "PrevMSP-Admins")
	if err != nil {
		t.Fatal(err)
	}
	helpdeskDN, err := adlab.AddGroup(c, "Kunde-Helpdesk")
	if err != nil {
		t.Fatal(err)
	}
	ouDN := "OU=Kunden," + adlab.BaseDN
	if err := c.Add(&ldap.AddRequest{DN: ouDN, Attributes: []ldap.Attribute{{Type: "objectClass", Vals: []string{"organizationalUnit"}}}}); err != nil {
		t.Fatal(err)
	}
	daDN := "CN=Domain Admins," + adlab.UsersDN
	if err := adlab.AddMember(c, daDN, groupDN); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		m := ldap.NewModifyRequest(daDN, nil)
		m.Delete("member", []string{groupDN})
		c.Modify(m) // if the test failed before removing it
	})
	adminSD := "CN=AdminSDHolder,CN=System," + adlab.BaseDN
	sync, tech, group, helpdesk, contractor := sidOf(t, c, syncDN), sidOf(t, c, techDN), sidOf(t, c, groupDN), sidOf(t, c, helpdeskDN), sidOf(t, c, contractorDN)
	objects := []string{adlab.BaseDN, adminSD, ouDN}
	before := map[string][]string{}
	for _, o := range objects {
		before[o] = explicitACEs(t, c, o)
	}
	dcsync := "(OA;;CR;1131f6ad-9c07-11d1-f79f-00c04fc2dcd2;;" + sync + ")"
	getChanges := "(OA;;CR;1131f6aa-9c07-11d1-f79f-00c04fc2dcd2;;" + sync + ")"
	fullControl := "(A;;CCDCLCSWRPWPDTLOCRSDRCWDWO;;;" + tech + ")"
	ouAll := "(A;CI;GA;;;" + group + ")"
	clientReset := "(OA;CI;CR;00299570-246d-11d0-a768-00aa006e0529;;" + helpdesk + ")"
	unlisted := "(A;;WD;;;" + contractor + ")"
	plants := []struct{ dn, ace string }{
		{adlab.BaseDN, dcsync}, {adlab.BaseDN, getChanges}, {adminSD, fullControl}, {ouDN, ouAll}, {ouDN, clientReset}, {ouDN, unlisted},
	}
	for _, p := range plants {
		if err := dc.AddACE(p.dn, p.ace); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() { // the domain head and AdminSDHolder are shared with the other tests
		for _, o := range objects[:2] {
			if d, err := readDescriptor(c, o); err == nil {
				sd, n := d.acl.withoutACEs(func(e *ace) bool { return e.sid == sync || e.sid == tech })
				if n > 0 {
					m := ldap.NewModifyRequest(o, []ldap.Control{sdFlagsDACL})
					m.Replace("nTSecurityDescriptor", []string{string(sd)})
					c.Modify(m)
				}
			}
		}
	})
	// Shadow credentials on Administrator, and a constrained delegation.
	shadow := adlab.KeyCredential(adlab.AdminDN, [16]byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}, time.Date(2026, 11, 30, 23, 10, 0, 0, time.UTC))
	for dn, kv := range map[string][2]string{adlab.AdminDN: {"msDS-KeyCredentialLink", shadow}, syncDN: {"msDS-AllowedToDelegateTo", "cifs/dc1.lab.test"}} {
		m := ldap.NewModifyRequest(dn, nil)
		m.Add(kv[0], []string{kv[1]})
		if err := c.Modify(m); err != nil {
			t.Fatal(err)
		}
	}
	// A logon script in SYSVOL that fetches the old provider's agent.
	script := filepath.Join(dc.Sysvol(), "lab.test", "Policies", "{31B2F340-016D-11D2-945F-00C04FB984F9}", "User", "Scripts", "Logon", "agent.cmd")
	if err := os.MkdirAll(filepath.Dir(script), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(script, []byte("@echo off\r\n\\\\files.prev-msp.example\\rmm\\agent.exe /install\r\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Remove(script) })

	h := harness(t)
	sweepAttrs := map[string]cty.Value{
		"principals": cty.ListVal([]cty.Value{str("PrevMSP-Admins")}), "upn_suffix": str(sfx),
		"old_domain_sids": cty.ListVal([]cty.Value{str(oldProviderDom)}), "trusted": cty.ListVal([]cty.Value{str("Kunde-Helpdesk")}),
		"sysvol_path": str(dc.Sysvol()), "key_credentials": str("privileged"),
	}
	sweep := func() (*sdk.PlanResponse, map[string]cty.Value, map[string]cty.Value) {
		t.Helper()
		p, err := h.Plan(ctx, "find_persistence", sweepAttrs, nil)
		if err != nil || p.Diagnostics.HasErrors() {
			t.Fatalf("sweep: %v %v", err, p.Diagnostics)
		}
		return p, p.Outputs["findings"].AsValueMap(), p.Outputs["removable"].AsValueMap()
	}
	p, all, removable := sweep()
	type want struct{ kind, object, value, whose string }
	key := func(f cty.Value) want {
		return want{f.GetAttr("kind").AsString(), f.GetAttr("object").AsString(), f.GetAttr("value").AsString(), f.GetAttr("whose").AsString()}
	}
	var gotRemovable, gotReport []want
	for _, f := range all {
		if f.GetAttr("removable").True() {
			gotRemovable = append(gotRemovable, key(f))
		} else if k := key(f); k.kind == kindACE || k.kind == kindSysvol || k.kind == kindKeyCredential {
			gotReport = append(gotReport, k)
		}
	}
	wantRemovable := []want{
		{kindACE, adlab.BaseDN, dcsync, whoseOld}, {kindACE, adlab.BaseDN, getChanges, whoseOld}, {kindACE, adminSD, fullControl, whoseOld},
		// The DC stores GA with CI as two ACEs: the rights it maps to on
		// the OU itself, and GA inherit-only for what lies below.
		{kindACE, ouDN, "(A;;CCDCLCSWRPWPDTLOCRSDRCWDWO;;;" + group + ")", whoseOld}, {kindACE, ouDN, "(A;CIIO;GA;;;" + group + ")", whoseOld}, {kindMembership, groupDN, daDN, whoseOld}, {kindKeyCredential, adlab.AdminDN, shadow, whoseAny},
		{kindSIDHistory, "CN=" + legacySam + "," + adlab.UsersDN, legacySIDHistor, whoseOld}, {kindDelegation, syncDN, "constrained:cifs/dc1.lab.test", whoseOld},
	}
	// Nothing of the domain's defaults, nor the trusted helpdesk's right,
	// is reported: only the unlisted contractor's WriteDacl and the script.
	wantReport := []want{{kindACE, ouDN, unlisted, whoseUnlisted}, {kindSysvol, script, sfx, whoseOld}}
	less := func(a, b want) int { return strings.Compare(fmt.Sprint(a), fmt.Sprint(b)) }
	for _, l := range [][]want{gotRemovable, wantRemovable, gotReport, wantReport} {
		slices.SortFunc(l, less)
	}
	if !slices.Equal(gotRemovable, wantRemovable) || !slices.Equal(gotReport, wantReport) {
		t.Fatalf("removable:\n got %v\nwant %v\nreported:\n got %v\nwant %v", gotRemovable, wantRemovable, gotReport, wantReport)
	}
	if len(removable) != len(wantRemovable) {
		t.Fatalf("removable output: %d, want %d", len(removable), len(wantRemovable))
	}
	var open string
	for _, d := range p.Diagnostics {
		if d.Code == sdk.CodeLeftForPerson {
			open += d.Summary + "\n" + d.Detail + "\n"
		}
	}
	for _, w := range []string{"contractor-x (" + contractor + ") holds WriteDacl on " + ouDN, "agent.cmd", "{31B2F340-016D-11D2-945F-00C04FB984F9}", "Set-Acl"} {
		if !strings.Contains(open, w) {
			t.Errorf("the open items do not say %q:\n%s", w, open)
		}
	}
	if k := all[(&finding{Kind: kindKeyCredential, Object: adlab.AdminDN, Value: shadow}).Key(cnOf(adlab.AdminDN))]; k.IsNull() || !strings.Contains(k.GetAttr("what").AsString(), "device 04030201-0605-0807-090a-0b0c0d0e0f10, created 2026-11-30T23:10:00Z") {
		t.Fatalf("the shadow credential is not described with its device and time: %#v", k)
	}

	// Remove what is removable, one instance each as for_each would.
	for id, f := range removable {
		attrs := map[string]cty.Value{"kind": f.GetAttr("kind"), "object": f.GetAttr("object"), "value": f.GetAttr("value")}
		plan, err := h.Plan(ctx, "remove_persistence", attrs, nil)
		if err != nil || plan.Diagnostics.HasErrors() {
			t.Fatalf("%s: plan: %v %v", id, err, plan.Diagnostics)
		}
		if f.GetAttr("kind").AsString() == kindSIDHistory {
			if plan.Kind != sdk.Manual || !strings.Contains(strings.Join(plan.Details, " "), "ldbmodify") {
				t.Fatalf("sIDHistory on Samba: %v %q %v, want manual with the command", plan.Kind, plan.Summary, plan.Details)
			}
			continue
		}
		if plan.Kind != sdk.Change {
			t.Fatalf("%s: %v %s", id, plan.Kind, plan.Summary)
		}
		r, _, err := h.Apply(ctx, "remove_persistence", attrs, plan, nil)
		if err != nil || r.Diagnostics.HasErrors() || r.Verify == nil || r.Verify.Kind != sdk.NoChange {
			t.Fatalf("%s: apply: %v %v %+v", id, err, r.Diagnostics, r.Verify)
		}
	}
	// Every other explicit ACE is as it was, byte for byte and in order.
	for _, o := range objects {
		wantACEs := before[o]
		if o == ouDN {
			wantACEs = nil
			for _, e := range explicitACEs(t, c, o) {
				if a, _ := parseACE([]byte(e)); a.sid != group {
					wantACEs = append(wantACEs, e)
				}
			}
			if len(wantACEs) != len(before[o])+2 {
				t.Fatalf("%s: %d explicit ACEs, want %d (the defaults, the client's and the contractor's)", o, len(wantACEs), len(before[o])+2)
			}
		}
		if got := explicitACEs(t, c, o); !slices.Equal(got, wantACEs) {
			t.Errorf("%s: the explicit ACEs changed beyond the old provider's: %d, want %d", o, len(got), len(wantACEs))
		}
	}
	if v := attr(t, c, adlab.AdminDN, "msDS-KeyCredentialLink"); v != "" {
		t.Fatalf("Administrator still has a key credential: %s", v)
	}
	if m := attr(t, c, daDN, "member"); strings.Contains(m, "PrevMSP-Admins") {
		t.Fatalf("the old provider's group is still in Domain Admins: %s", m)
	}
	if v := attr(t, c, syncDN, "msDS-AllowedToDelegateTo"); v != "" {
		t.Fatalf("delegation left: %s", v)
	}
	_, _, removable = sweep()
	if len(removable) != 1 {
		t.Fatalf("a second sweep: %d removable, want 1 (the sIDHistory Samba keeps): %v", len(removable), removable)
	}
}

// What only a person decides is reported with its command: a service
// account (SPN) and krbtgt with passwords set before the switch, an
// account whose password never expires; unconstrained delegation on the
// old provider's account is removed (a compare-and-swap of
// userAccountControl), on the client's it is only reported.
func TestPersistenceReportsOldPasswordsAndDelegation(t *testing.T) {
	ctx := context.Background()
	c := dc.Admin(t)
	sqlDN := mustUser(t, c, "svc-legacy-sql", "Legacy-Sql-Pw-1!", map[string][]string{"servicePrincipalName": {"MSSQLSvc/sql1.lab.test:1433"}})
	neverDN := mustUser(t, c, "svc-never", "Never-Pw-1!", map[string][]string{"userAccountControl": {"66048"}})
	oldWS := mustUser(t, c, "prev2-jump", "Prev2-Pw-1!", map[string][]string{"userPrincipalName": {"prev2-jump@prev2.example"}})
	clientWS := mustUser(t, c, "kunde-app", "Kunde-App-Pw-1!", nil)
	for _, dn := range []string{oldWS, clientWS} {
		m := ldap.NewModifyRequest(dn, nil)
		m.Replace("userAccountControl", []string{"524800"}) // NORMAL_ACCOUNT | TRUSTED_FOR_DELEGATION
		if err := c.Modify(m); err != nil {
			t.Fatal(err)
		}
	}
	h := harness(t)
	attrs := map[string]cty.Value{"upn_suffix": str("prev2.example"), "since": str(time.Now().Add(time.Hour).UTC().Format(time.RFC3339))}
	p, err := h.Plan(ctx, "find_persistence", attrs, nil)
	if err != nil || p.Diagnostics.HasErrors() {
		t.Fatalf("sweep: %v %v", err, p.Diagnostics)
	}
	got := map[string]cty.Value{}
	for _, f := range p.Outputs["findings"].AsValueMap() {
		got[f.GetAttr("kind").AsString()+" "+f.GetAttr("object").AsString()] = f
	}
	for key, removable := range map[string]bool{
		kindSPNPassword + " " + sqlDN: false, kindKrbtgt + " CN=krbtgt," + adlab.UsersDN: false, kindNeverExpires + " " + neverDN: false,
		kindDelegation + " " + oldWS: true, kindDelegation + " " + clientWS: false,
	} {
		f, ok := got[key]
		if !ok {
			t.Fatalf("no finding %q in %v", key, p.Outputs["findings"].AsValueMap())
		}
		if f.GetAttr("removable").True() != removable || f.GetAttr("remedy").AsString() == "" {
			t.Fatalf("%s: removable %v, remedy %q; want removable %v and a remedy", key, f.GetAttr("removable").True(), f.GetAttr("remedy").AsString(), removable)
		}
	}
	f := got[kindDelegation+" "+oldWS]
	if _, err := h.Run(ctx, "remove_persistence", map[string]cty.Value{"kind": f.GetAttr("kind"), "object": f.GetAttr("object"), "value": f.GetAttr("value")}); err != nil {
		t.Fatal(err)
	}
	if uac := attr(t, c, oldWS, "userAccountControl"); uac != "512" {
		t.Fatalf("the old provider's account after the removal: userAccountControl %s, want 512", uac)
	}
	if uac := attr(t, c, clientWS, "userAccountControl"); uac != "524800" {
		t.Fatalf("the client's account: userAccountControl %s, want 524800 (untouched)", uac)
	}
}
