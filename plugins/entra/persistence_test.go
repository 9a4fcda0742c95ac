package entra

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/zclconf/go-cty/cty"

	"github.com/switchover/switchover/internal/testing/graphtest"
	"github.com/switchover/switchover/plugins/sdk"
)

const oldTenant = "99999999-8888-7777-6666-555555555555"

// What a departing admin leaves in Microsoft 365 besides its accounts,
// planted in a tenant that throttles: each is found and attributed; the
// old provider's are removed and checked on the server (the rule, the
// consent, the exclusion, the partner, the pass are gone; the policy's
// other conditions and the client's exclusions stay); what is not its
// (a user forwarding to a personal address, a federated domain) is an
// open item and stays; a second sweep finds nothing left to remove.
func TestM365PersistenceSweep(t *testing.T) {
	ctx := context.Background()
	g := graphtest.Start(t)
	g.Throttle = 9
	tech := g.AddUser("tech1@oldmsp.example", "Old-Pw-1!", false)
	anna := g.AddUser("anna@client.example", "Client-Pw-1!", false)
	bob := g.AddUser("bob@client.example", "Client-Pw-2!", false)
	room := g.AddUser("room@client.example", "", false)
	g.SetNoMailbox(room)
	toOld := g.AddMessageRule(anna, graphtest.ForwardRule("Sync", "archive@oldmsp.example", false))
	personal := g.AddMessageRule(bob, graphtest.ForwardRule("Home", "bob.private@mail.example", false))
	inside := g.AddMessageRule(bob, graphtest.ForwardRule("Team", "team@client.example", true))
	fromOld := g.AddMessageRule(tech, graphtest.ForwardRule("Copy", "collector@elsewhere.example", true))
	app := g.AddServicePrincipal("Reporting", graphtest.Tenant, "", 0)
	consent := g.AddUserConsent(tech, app, "Mail.Read offline_access")
	clientConsent := g.AddUserConsent(anna, app, "User.Read")
	helpdesk := g.AddGroup("Client Helpdesk")
	policy := g.AddConditionalAccessPolicyFor("Require MFA", map[string]any{"includeUsers": []any{"All"}, "excludeUsers": []any{tech, anna}, "excludeGroups": []any{helpdesk}})
	oldOffice := g.AddNamedLocation("OldMSP office", "203.0.113.0/24", true)
	hq := g.AddNamedLocation("Client HQ", "198.51.100.0/24", true)
	g.SetPolicyLocations(policy, oldOffice, hq)
	g.AddPartner(oldTenant, true)
	g.AddPartner("12121212-3434-5656-7878-909090909090", false)
	g.AddAuthMethod(tech, "temporaryAccessPassAuthenticationMethod", map[string]any{"lifetimeInMinutes": float64(60), "isUsableOnce": false})
	g.AddAuthMethod(anna, "temporaryAccessPassAuthenticationMethod", map[string]any{"lifetimeInMinutes": float64(60), "isUsableOnce": true})
	g.FederateDomain("legacy.client.example", "http://sts.oldmsp.example/adfs/services/trust", "https://sts.oldmsp.example/adfs/ls/")
	hr := g.AddApplication("Acme HR", nil, nil)
	g.AddOwner(hr, tech)
	g.AddOwner(hr, anna)
	deploy := g.AddFederatedCredential(hr, "deploy", "https://token.actions.githubusercontent.com", "repo:oldmsp/hr-deploy:ref:refs/heads/main")
	site := g.AddFederatedCredential(hr, "site", "https://token.actions.githubusercontent.com", "repo:acme/site:environment:prod")
	g.AddOwner(app, tech)
	spSecret := g.AddSPPassword(app, "oldmsp automation")
	otherSecret := g.AddSPPassword(app, "reporting export")
	const globalAdmin = "62e90394-69f5-4237-9190-012177145e10"
	g.AddRole("Global Administrator", globalAdmin)
	g.AddRoleSchedule(tech, globalAdmin, true)
	g.AddRoleSchedule(tech, globalAdmin, false)
	annaPIM := g.AddRoleSchedule(anna, globalAdmin, true)
	h := harness(t, g)

	sweep := map[string]cty.Value{"domains": cty.ListVal([]cty.Value{str("oldmsp.example")}), "tenant_ids": cty.ListVal([]cty.Value{str(oldTenant)})}
	plan, err := h.Plan(ctx, "find_persistence", sweep, nil)
	if err != nil || plan.Diagnostics.HasErrors() {
		t.Fatalf("sweep: %v %v", err, plan.Diagnostics)
	}
	removable := plan.Outputs["removable"].AsValueMap()
	type got struct{ kind, object, value string }
	var have []got
	for _, f := range removable {
		have = append(have, got{f.GetAttr("kind").AsString(), f.GetAttr("object").AsString(), f.GetAttr("value").AsString()})
	}
	want := []got{{kindInboxRule, anna, toOld}, {kindInboxRule, tech, fromOld}, {kindConsent, consent, "Mail.Read offline_access"},
		{kindCAExclusion, policy, "excludeUsers:" + tech}, {kindCAExclusion, policy, "excludeLocations:" + oldOffice}, {kindPartner, oldTenant, ""}, {kindTAP, tech, ""},
		{kindAppOwner, "applications/" + hr, tech}, {kindAppOwner, "servicePrincipals/" + app, tech}, {kindFedCred, hr, deploy}, {kindSPSecret, app, spSecret},
		{kindPIMEligible, tech, globalAdmin + "@/"}, {kindPIMActive, tech, globalAdmin + "@/"}}
	if len(have) != len(want) {
		t.Fatalf("removable:\n%v\nwant\n%v", have, want)
	}
	for _, w := range want {
		if !slices.ContainsFunc(have, func(h got) bool {
			return h.kind == w.kind && h.object == w.object && (w.value == "" || h.value == w.value)
		}) {
			t.Errorf("not removable: %v (have %v)", w, have)
		}
	}
	open := ""
	for _, d := range plan.Diagnostics {
		if d.Code == sdk.CodeLeftForPerson {
			open += d.Summary + "\n" + d.Detail + "\n"
		}
	}
	for _, w := range []string{"bob.private@mail.example", "repo:acme/site:environment:prod", "reporting export", "Remove-InboxRule -Mailbox 'bob@client.example' -Identity 'Home'", "legacy.client.example is federated",
		"Update-MgDomain -DomainId 'legacy.client.example' -AuthenticationType Managed", "ForwardingSmtpAddress", "Get-RecipientPermission", "Partner relationships"} {
		if !strings.Contains(open, w) {
			t.Errorf("the open items do not say %q:\n%s", w, open)
		}
	}
	if strings.Contains(open, "team@client.example") {
		t.Error("a rule forwarding inside the client's domains is a finding")
	}

	for id, f := range removable {
		attrs := map[string]cty.Value{"kind": f.GetAttr("kind"), "object": f.GetAttr("object"), "value": f.GetAttr("value")}
		if _, err := h.Run(ctx, "remove_persistence", attrs); err != nil {
			t.Fatalf("%s: %v", id, err)
		}
	}
	// On the server: the old provider's are gone, the rest stays.
	if rules := g.MessageRules(anna); len(rules) != 0 {
		t.Errorf("anna's forwarding to the old provider stays: %v", rules)
	}
	if rules := g.MessageRules(bob); !slices.Equal(rules, []string{personal, inside}) {
		t.Errorf("bob's rules: %v", rules)
	}
	if len(g.MessageRules(tech)) != 0 || g.GrantExists(consent) || !g.GrantExists(clientConsent) {
		t.Error("the technician's rule or consent stays, or the client's consent is gone")
	}
	users := g.PolicyUsers(policy)
	if !slices.Equal(users["excludeUsers"].([]any), []any{anna}) || !slices.Equal(users["excludeGroups"].([]any), []any{helpdesk}) || !slices.Equal(users["includeUsers"].([]any), []any{"All"}) {
		t.Errorf("the policy's users condition: %v", users)
	}
	if c := g.PolicyConditions(policy); !slices.Equal(c["clientAppTypes"].([]any), []any{"all"}) || !slices.Equal(c["locations"].(map[string]any)["excludeLocations"].([]any), []any{hq}) {
		t.Errorf("the policy lost its other conditions: %v", c)
	}
	if p := g.Partners(); !slices.Equal(p, []string{"12121212-3434-5656-7878-909090909090"}) {
		t.Errorf("partners: %v", p)
	}
	if m := g.AuthMethods(tech); slices.Contains(m, "temporaryAccessPassAuthenticationMethod") {
		t.Errorf("the technician keeps a TAP: %v", m)
	}
	if len(g.RoleSchedules(tech, true)) != 0 || len(g.RoleSchedules(tech, false)) != 0 || !slices.Equal(g.RoleSchedules(anna, true), []string{annaPIM}) {
		t.Errorf("PIM: the technician keeps a schedule, or anna lost hers")
	}
	if o := g.Owners(hr); !slices.Equal(o, []string{anna}) {
		t.Errorf("the HR app's owners: %v", o)
	}
	if o := g.Owners(app); len(o) != 0 {
		t.Errorf("the service principal's owners: %v", o)
	}
	if f := g.FederatedCredentials(hr); !slices.Equal(f, []string{site}) {
		t.Errorf("the HR app's federated credentials: %v", f)
	}
	if p := g.SPPasswords(app); !slices.Equal(p, []string{otherSecret}) {
		t.Errorf("the service principal's secrets: %v", p)
	}
	if m := g.AuthMethods(anna); !slices.Contains(m, "temporaryAccessPassAuthenticationMethod") {
		t.Errorf("anna's TAP is gone: %v", m)
	}
	again, err := h.Plan(ctx, "find_persistence", sweep, nil)
	if err != nil || again.Diagnostics.HasErrors() || len(again.Outputs["removable"].AsValueMap()) != 0 {
		t.Fatalf("a second sweep: %v %v %v", err, again.Diagnostics, again.Outputs["removable"])
	}
	if g.Throttled() == 0 {
		t.Error("the server never throttled: the test does not show the sweep goes on after a 429")
	}
}

// An exclusion's removal writes the policy back only as the plan read it:
// changed by someone else since, it is a conflict (switchover plans again)
// and nothing is written; planned again, it removes only that id.
func TestCAExclusionRemovalIsCompareAndSwap(t *testing.T) {
	ctx := context.Background()
	g := graphtest.Start(t)
	tech := g.AddUser("tech1@oldmsp.example", "Old-Pw-1!", false)
	anna := g.AddUser("anna@client.example", "Client-Pw-1!", false)
	policy := g.AddConditionalAccessPolicyFor("Block legacy auth", map[string]any{"includeUsers": []any{"All"}, "excludeUsers": []any{tech}})
	h := harness(t, g)
	attrs := map[string]cty.Value{"kind": str(kindCAExclusion), "object": str(policy), "value": str("excludeUsers:" + tech)}
	plan, err := h.Plan(ctx, "remove_persistence", attrs, nil)
	if err != nil || plan.Kind != sdk.Change {
		t.Fatalf("plan: %v %+v", err, plan)
	}
	g.ModifyPolicy(policy, map[string]any{"excludeUsers": []any{tech, anna}})
	r, _, err := h.Apply(ctx, "remove_persistence", attrs, plan, nil)
	if r == nil || r.Diagnostics.Conflict() == nil {
		t.Fatalf("apply over a policy changed since the plan is not a conflict: %v", err)
	}
	if ex := g.PolicyUsers(policy)["excludeUsers"].([]any); !slices.Equal(ex, []any{tech, anna}) {
		t.Fatalf("written anyway: %v", ex)
	}
	if _, err := h.Run(ctx, "remove_persistence", attrs); err != nil {
		t.Fatal(err)
	}
	if ex := g.PolicyUsers(policy)["excludeUsers"].([]any); !slices.Equal(ex, []any{anna}) {
		t.Fatalf("after planning again: %v", ex)
	}
}
