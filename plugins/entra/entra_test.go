package entra

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/zclconf/go-cty/cty"

	"github.com/switchover/switchover/internal/testing/graphtest"
	"github.com/switchover/switchover/plugins/sdk"
	"github.com/switchover/switchover/plugins/sdk/sdktest"
)

func str(s string) cty.Value { return cty.StringVal(s) }

func configured(t *testing.T, g *graphtest.Server, set map[string]cty.Value) (*sdktest.Harness, error) {
	t.Helper()
	cfg := map[string]cty.Value{"tenant_id": str(graphtest.Tenant), "client_id": str(graphtest.ClientID), "client_secret": str(graphtest.ClientSecret),
		"authority_host": str(g.URL + "/"), "graph_endpoint": str(g.URL), "unverified_authority_host": cty.True, "ca_file": str(g.CAFile), "timeout": str("10s")}
	for k, v := range set {
		cfg[k] = v
	}
	h := &sdktest.Harness{P: New("test")}
	return h, h.Configure(context.Background(), cfg)
}

func harness(t *testing.T, g *graphtest.Server) *sdktest.Harness {
	t.Helper()
	h, err := configured(t, g, nil)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// The old provider's admin and guests in a tenant: found over several
// pages (with the advanced-query headers Graph needs), disabled, sessions
// revoked, password reset, out of Global Administrator; each checked on the
// server, each second plan a no-op, nothing outside Graph's schema.
func TestOldProviderLeavesTheTenant(t *testing.T) {
	ctx := context.Background()
	g := graphtest.Start(t)
	g.PageSize = 100 // the plugin asks for 999
	var oldIDs []string
	for i := 0; i < 230; i++ {
		oldIDs = append(oldIDs, g.AddUser(fmt.Sprintf("tech%03d@oldmsp.example", i), "Old-Pw-1!", false))
	}
	guest := g.AddUser("helpdesk@oldmsp.example", "", true)
	client := g.AddUser("anna@client.example", "Client-Pw-1!", false)
	admin := oldIDs[0]
	ga := g.AddRole("Global Administrator", "62e90394-69f5-4237-9190-012177145e10", admin, client)
	h := harness(t, g)
	p, err := h.Plan(ctx, "find_users", map[string]cty.Value{"domains": cty.ListVal([]cty.Value{str("oldmsp.example")})}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if n := p.Outputs["count"].AsBigFloat().String(); n != "231" {
		t.Fatalf("found %s of 231 (230 members, a guest) over pages of 100", n)
	}
	u0 := p.Outputs["users"].Index(str("tech000@oldmsp.example"))
	if r := u0.GetAttr("roles"); r.LengthInt() != 1 || r.Index(cty.NumberIntVal(0)).AsString() != "Global Administrator" {
		t.Fatalf("roles: %#v", r)
	}
	upn := "tech000@oldmsp.example"
	for _, step := range []struct {
		action string
		attrs  map[string]cty.Value
	}{
		{"disable_user", map[string]cty.Value{"user": str(upn)}},
		{"revoke_sessions", map[string]cty.Value{"user": str(upn)}},
		{"reset_password", map[string]cty.Value{"user": str(upn), "password": str("New-Secret-Pw-9!")}},
		{"remove_roles", map[string]cty.Value{"user": str(upn)}},
	} {
		r, ev, err := func() (*sdk.ApplyResponse, *sdktest.Events, error) {
			pl, err := h.Plan(ctx, step.action, step.attrs, nil)
			if err != nil || pl.Kind != sdk.Change {
				return nil, nil, fmt.Errorf("plan: %+v %v", pl, err)
			}
			return h.Apply(ctx, step.action, step.attrs, pl, nil)
		}()
		if err != nil {
			t.Fatalf("%s: %v %+v", step.action, err, r)
		}
		if v, err := h.Plan(ctx, step.action, step.attrs, ev.Last()); err != nil || v.Kind != sdk.NoChange {
			t.Fatalf("%s, looking again: %+v %v", step.action, v, err)
		}
	}
	// Its groups (not the client's).
	grp := g.AddGroup("IT Admins", admin, client)
	if _, err := h.Run(ctx, "remove_groups", map[string]cty.Value{"user": str(upn)}); err != nil {
		t.Fatal(err)
	}
	if m := g.GroupMembers(grp); len(m) != 1 || m[0] != client {
		t.Fatalf("group members: %v", m)
	}
	// The old provider's phone and authenticator as the admin's MFA.
	g.AddAuthMethod(admin, "phoneAuthenticationMethod", map[string]any{"phoneNumber": "+49 170 0000000", "phoneType": "mobile"})
	g.AddAuthMethod(admin, "microsoftAuthenticatorAuthenticationMethod", map[string]any{"displayName": "OldMSP iPhone"})
	am := map[string]cty.Value{"user": str(upn)}
	if p, err := h.Plan(ctx, "remove_auth_methods", am, nil); err != nil || !strings.Contains(p.Summary, "phone +49 170 0000000") {
		t.Fatalf("plan remove_auth_methods: %+v %v", p, err)
	}
	if _, err := h.Run(ctx, "remove_auth_methods", am); err != nil {
		t.Fatal(err)
	}
	if m := g.AuthMethods(admin); len(m) != 1 || m[0] != "passwordAuthenticationMethod" {
		t.Fatalf("methods left: %v", m)
	}
	props := g.UserProps(admin)
	if props["accountEnabled"] != false || props["signInSessionsValidFromDateTime"] == "2026-01-01T00:00:00Z" || g.Password(admin) != "New-Secret-Pw-9!" {
		t.Fatalf("on the server: %v", props)
	}
	if m := g.RoleMembers(ga); len(m) != 1 || m[0] != client {
		t.Fatalf("Global Administrator members: %v", m)
	}
	// The guest: disabled, then deleted; each second plan a no-op.
	for _, del := range []bool{false, true} {
		attrs := map[string]cty.Value{"domains": cty.ListVal([]cty.Value{str("oldmsp.example")}), "delete": cty.BoolVal(del)}
		if _, err := h.Run(ctx, "remove_guests", attrs); err != nil {
			t.Fatal(err)
		}
		if p, err := h.Plan(ctx, "remove_guests", attrs, nil); err != nil || p.Kind != sdk.NoChange {
			t.Fatalf("remove_guests again: %+v %v", p, err)
		}
	}
	if g.Exists(guest) || !g.Exists(client) {
		t.Fatal("the guest is still there, or the client's user was deleted")
	}
}

// Throttling in the middle of a run: 429 with Retry-After is waited for.
func TestThrottled(t *testing.T) {
	ctx := context.Background()
	g := graphtest.Start(t)
	for i := 0; i < 5; i++ {
		g.AddUser(fmt.Sprintf("u%d@oldmsp.example", i), "x", false)
	}
	g.Throttle = 3
	h := harness(t, g)
	if _, err := h.Run(ctx, "disable_user", map[string]cty.Value{"user": str("u1@oldmsp.example")}); err != nil {
		t.Fatal(err)
	}
	if g.Throttled() == 0 {
		t.Fatal("no request was throttled: the test did not test throttling")
	}
}

// A wrong client secret, a wrong CA, an unknown user: one line each,
// never the secret.
func TestRefusals(t *testing.T) {
	ctx := context.Background()
	g := graphtest.Start(t)
	g.AddUser("x@oldmsp.example", "x", false)
	attrs := map[string]cty.Value{"user": str("x@oldmsp.example")}
	h, err := configured(t, g, map[string]cty.Value{"client_secret": str("wrong-secret")})
	if err == nil {
		_, err = h.Plan(ctx, "disable_user", attrs, nil)
	}
	if err == nil || !strings.Contains(err.Error(), "AADSTS7000215") || strings.Contains(err.Error(), "wrong-secret") || strings.Contains(err.Error(), "\n") {
		t.Errorf("a wrong secret: %v", err)
	}
	other := graphtest.Start(t)
	h, err = configured(t, g, map[string]cty.Value{"ca_file": str(other.CAFile)})
	if err == nil {
		_, err = h.Plan(ctx, "disable_user", attrs, nil)
	}
	if err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Errorf("a wrong CA: %v", err)
	}
	if _, err := harness(t, g).Plan(ctx, "reset_password", map[string]cty.Value{"user": str("nobody@oldmsp.example"), "password": str("A-New-Pw-9!")}, nil); err == nil || !strings.Contains(err.Error(), `user "nobody@oldmsp.example" does not exist`) {
		t.Errorf("an unknown user: %v", err)
	}
	// To disable a user that does not exist is done.
	if p, err := harness(t, g).Plan(ctx, "disable_user", map[string]cty.Value{"user": str("nobody@oldmsp.example")}, nil); err != nil || p.Kind != sdk.NoChange || !strings.Contains(p.Summary, "already gone") {
		t.Errorf("disable an unknown user: %v %v", p, err)
	}
	if g.UserProps(g.AddUser("y@oldmsp.example", "x", false))["accountEnabled"] != true {
		t.Fatal("?")
	}
	// A login host none of Microsoft's clouds knows gets no secret unless
	// the runbook says loudly that it is unverified; then it is named.
	before := g.TokenRequests()
	if _, err := configured(t, g, map[string]cty.Value{"unverified_authority_host": cty.False}); err == nil || !strings.Contains(err.Error(), "none of Microsoft's clouds") || !strings.Contains(err.Error(), "unverified_authority_host") {
		t.Errorf("an unknown login host: %v", err)
	}
	if _, err := configured(t, g, map[string]cty.Value{"unverified_authority_host": cty.False, "disable_instance_discovery": cty.True}); err == nil || !strings.Contains(err.Error(), "instance discovery") {
		t.Errorf("instance discovery turned off alone: %v", err)
	}
	if g.TokenRequests() != before {
		t.Error("a refused configuration asked the login host for a token")
	}
	h, _ = configured(t, g, nil)
	if d, _ := h.P.Configure(ctx, mustConfig(t, h, g)); len(d) != 1 || d[0].Severity != sdk.Warning || !strings.Contains(d[0].Detail, strings.TrimPrefix(g.URL, "https://")) {
		t.Errorf("the unverified login host is not named in a warning: %+v", d)
	}
}

// mustConfig is the configuration object configured(t, g, nil) sends.
func mustConfig(t *testing.T, h *sdktest.Harness, g *graphtest.Server) cty.Value {
	t.Helper()
	schema, _ := h.P.Schema(context.Background())
	v, err := sdktest.Object(schema.Config, map[string]cty.Value{"tenant_id": str(graphtest.Tenant), "client_id": str(graphtest.ClientID), "client_secret": str(graphtest.ClientSecret),
		"authority_host": str(g.URL + "/"), "graph_endpoint": str(g.URL), "unverified_authority_host": cty.True, "ca_file": str(g.CAFile)})
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// The old provider's multi-tenant app (its RMM) with delegated and app
// permissions: in the inventory, listed with its permissions in the plan,
// removed with its grant; the client's and Microsoft's apps stay.
func TestOldProvidersAppsAndInventory(t *testing.T) {
	ctx := context.Background()
	g := graphtest.Start(t)
	const oldTenant = "99999999-8888-7777-6666-555555555555"
	rmm := g.AddServicePrincipal("OldMSP RMM", oldTenant, "User.Read.All Directory.ReadWrite.All", 2)
	own := g.AddServicePrincipal("Client HR app", graphtest.Tenant, "User.Read", 0)
	ms := g.AddServicePrincipal("Microsoft Graph", "f8cdef31-a31e-4b4a-93e4-5f571e91255a", "", 0)
	g.AddUser("guest@oldmsp.example", "", true)
	g.AddSKU("O365_BUSINESS_PREMIUM", 12)
	g.AddConditionalAccessPolicy("Require MFA for admins", "enabled")
	g.AddConditionalAccessPolicy("Block legacy auth", "enabledForReportingButNotEnforced")
	h := harness(t, g)
	inv, err := h.Plan(ctx, "inventory", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	fa := inv.Outputs["foreign_apps"]
	if fa.LengthInt() != 1 || !strings.Contains(fa.Index(cty.NumberIntVal(0)).AsString(), "OldMSP RMM") || inv.Outputs["guests"].LengthInt() != 1 || inv.Outputs["domains"].LengthInt() != 2 {
		t.Fatalf("inventory: %#v", inv.Outputs)
	}
	if l := inv.Outputs["licenses"]; l.LengthInt() != 1 || l.Index(cty.NumberIntVal(0)).AsString() != "O365_BUSINESS_PREMIUM: 12 in use (Enabled)" {
		t.Fatalf("licences: %#v", l)
	}
	if c := inv.Outputs["conditional_access"]; c.LengthInt() != 2 || c.Index(cty.NumberIntVal(1)).AsString() != "Require MFA for admins: enabled" {
		t.Fatalf("Conditional Access: %#v", c)
	}
	// An app that may not read the policies: the rest, and a warning.
	g.DenyPolicies = true
	inv, err = h.Plan(ctx, "inventory", nil, nil)
	if err != nil || inv.Outputs["conditional_access"].LengthInt() != 0 || len(inv.Diagnostics) != 1 || !strings.Contains(inv.Diagnostics[0].Detail, "Authorization_RequestDenied") {
		t.Fatalf("inventory without Policy.Read.All: %v %#v", err, inv.Diagnostics)
	}
	g.DenyPolicies = false
	// A 401 is not "not readable": the token is refreshed once, then it is
	// an error naming the app and the tenant.
	g.PoliciesUnauthorized = true
	tokens := g.TokenRequests()
	if _, err := h.Plan(ctx, "inventory", nil, nil); err == nil || !strings.Contains(err.Error(), "refuses a fresh token of app "+graphtest.ClientID+" in tenant "+graphtest.Tenant) {
		t.Fatalf("inventory with a 401: %v", err)
	}
	if n := g.TokenRequests() - tokens; n != 1 {
		t.Fatalf("%d token requests for one refusal", n)
	}
	g.PoliciesUnauthorized = false
	// Secrets and a certificate the old provider put on the client's own
	// app registration: only those go.
	hr := g.AddApplication("Client HR app", []string{"OldMSP sync secret", "HR team secret"}, []string{"oldmsp-cert", "hr-cert"})
	ca := map[string]cty.Value{"display_name_contains": str("OldMSP")}
	if p, err := h.Plan(ctx, "app_credentials", ca, nil); err != nil || p.Kind != sdk.Change || len(p.Details) != 2 {
		t.Fatalf("plan app_credentials: %+v %v", p, err)
	}
	if _, err := h.Run(ctx, "app_credentials", ca); err != nil {
		t.Fatal(err)
	}
	if c := strings.Join(g.Credentials(hr), ","); c != "keyCredentials:hr-cert,passwordCredentials:HR team secret" {
		t.Fatalf("credentials left: %s", c)
	}
	attrs := map[string]cty.Value{"owner_tenant_ids": cty.ListVal([]cty.Value{str(oldTenant)})}
	p, err := h.Plan(ctx, "remove_service_principals", attrs, nil)
	if err != nil || p.Kind != sdk.Change || len(p.Details) != 1 || !strings.Contains(p.Details[0], "delegated Directory.ReadWrite.All User.Read.All; 2 app role assignments") {
		t.Fatalf("plan: %+v %v", p, err)
	}
	if _, err := h.Run(ctx, "remove_service_principals", attrs); err != nil {
		t.Fatal(err)
	}
	if ok, grants := g.ServicePrincipalExists(rmm); ok || grants != 0 {
		t.Fatalf("the old provider's app: exists %v, %d grants", ok, grants)
	}
	for _, id := range []string{own, ms} {
		if ok, _ := g.ServicePrincipalExists(id); !ok {
			t.Fatal("another tenant's app was removed")
		}
	}
}

// Signing in with the app's certificate instead of a secret: the test
// server checks the client assertion's signature with the registered
// certificate; another certificate is refused.
func TestClientCertificate(t *testing.T) {
	ctx := context.Background()
	g := graphtest.Start(t)
	g.AddUser("c@oldmsp.example", "x", false)
	certFile := func(name string) (string, *x509.Certificate) {
		key, _ := rsa.GenerateKey(rand.Reader, 2048)
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
		der, _ := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
		cert, _ := x509.ParseCertificate(der)
		f := filepath.Join(t.TempDir(), name+".pem")
		b := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
		b = append(b, pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)})...)
		os.WriteFile(f, b, 0o600)
		return f, cert
	}
	good, cert := certFile("app")
	bad, _ := certFile("other")
	g.ClientCert = cert
	attrs := map[string]cty.Value{"user": str("c@oldmsp.example")}
	h, err := configured(t, g, map[string]cty.Value{"client_secret": cty.NullVal(cty.String), "client_certificate_file": str(good)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.Run(ctx, "disable_user", attrs); err != nil {
		t.Fatalf("with the certificate: %v", err)
	}
	h, err = configured(t, g, map[string]cty.Value{"client_secret": cty.NullVal(cty.String), "client_certificate_file": str(bad)})
	if err == nil {
		_, err = h.Plan(ctx, "disable_user", attrs, nil)
	}
	if err == nil || !strings.Contains(err.Error(), "signing in to the tenant failed") {
		t.Fatalf("another certificate: %v", err)
	}
	if _, err := configured(t, g, map[string]cty.Value{"client_certificate_file": str(good)}); err == nil || !strings.Contains(err.Error(), "one of them") {
		t.Fatalf("both a secret and a certificate: %v", err)
	}
}

// Many instances at once, as a for_each runs them, against a tenant that
// takes 100 requests a second: the requests that queue go out as $batch
// calls, the reads of single users as one listing, every 429 of a request
// inside a batch is waited for and sent again, and each user really is
// disabled with its sessions revoked; a user the tenant lacks is said so.
func TestManyAtOnceBatched(t *testing.T) {
	ctx := context.Background()
	g := graphtest.Start(t)
	g.Latency = 5 * time.Millisecond
	g.RateLimit = 100
	var ids []string
	for i := 0; i < 60; i++ {
		ids = append(ids, g.AddUser(fmt.Sprintf("tech%02d@oldmsp.example", i), "x", false))
	}
	h := harness(t, g)
	errs := make(chan error, len(ids)+5)
	for i := range ids {
		go func(upn string) {
			_, err := h.Run(ctx, "disable_user", map[string]cty.Value{"user": str(upn)})
			if err == nil {
				_, err = h.Run(ctx, "revoke_sessions", map[string]cty.Value{"user": str(upn)})
			}
			errs <- err
		}(fmt.Sprintf("tech%02d@oldmsp.example", i))
	}
	for i := 0; i < 5; i++ {
		go func(upn string) {
			p, err := h.Plan(ctx, "disable_user", map[string]cty.Value{"user": str(upn)}, nil)
			if err != nil || p.Kind != sdk.NoChange || !strings.Contains(p.Summary, `already gone: user "`+upn+`"`) {
				err = fmt.Errorf("a user the tenant lacks: %v %v", p, err)
			}
			errs <- err
		}(fmt.Sprintf("ghost%d@oldmsp.example", i))
	}
	for i := 0; i < len(ids)+5; i++ {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
	for _, id := range ids {
		p := g.UserProps(id)
		if p["accountEnabled"] != false || p["signInSessionsValidFromDateTime"] == "2026-01-01T00:00:00Z" {
			t.Errorf("%s: accountEnabled %v, sessions valid from %v", p["userPrincipalName"], p["accountEnabled"], p["signInSessionsValidFromDateTime"])
		}
	}
	// Alone, each user costs 7 requests: disable (read, PATCH, read
	// again) and revoke (read, POST, read for the checkpoint, read again).
	requests, batches := g.Requests()
	served := requests - g.Throttled()
	t.Logf("%d Graph requests served (for %d alone) in %d $batch calls and single calls, %d throttled", served, 7*len(ids)+5, batches, g.Throttled())
	if batches == 0 || served >= 7*len(ids)+5 || g.Throttled() == 0 {
		t.Errorf("batches %d, requests %d of %d, throttled %d: batching, shared reads and throttling must each have happened for the test to test them", batches, served, 7*len(ids)+5, g.Throttled())
	}
}

// An admin at the keyboard signs in with a device code: the plugin shows
// the address and the code (once, at configure), the admin enters it, and
// the steps run with that sign-in; a declined sign-in is one clear line.
func TestDeviceCodeSignIn(t *testing.T) {
	ctx := context.Background()
	g := graphtest.Start(t)
	g.AddUser("tech@oldmsp.example", "x", false)
	cfg := map[string]cty.Value{"tenant_id": str(graphtest.Tenant), "client_id": str(graphtest.ClientID), "device_code": cty.True,
		"authority_host": str(g.URL + "/"), "graph_endpoint": str(g.URL), "unverified_authority_host": cty.True, "ca_file": str(g.CAFile), "timeout": str("10s")}
	for _, decline := range []bool{false, true} {
		var prompts []string
		h := &sdktest.Harness{P: newPlugin("test", func(msg string) {
			prompts = append(prompts, msg)
			i := strings.Index(msg, "enter the code ")
			if i < 0 || !strings.Contains(msg, "https://microsoft.com/devicelogin") {
				t.Errorf("the prompt %q gives no address and code", msg)
				return
			}
			code, _, _ := strings.Cut(msg[i+len("enter the code "):], " ")
			// The admin types it in a browser a moment later.
			go func() {
				time.Sleep(100 * time.Millisecond)
				if !g.SignInWithCode(code, "admin@client.example", decline) {
					t.Errorf("no sign-in waits for the code %q", code)
				}
			}()
		})}
		err := h.Configure(ctx, cfg)
		if len(prompts) != 1 {
			t.Fatalf("%d prompts, want 1: %q", len(prompts), prompts)
		}
		if decline {
			if err == nil || !strings.Contains(err.Error(), "declined") || strings.Contains(err.Error(), "\n") {
				t.Fatalf("a declined sign-in: %v", err)
			}
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		if _, err := h.Run(ctx, "disable_user", map[string]cty.Value{"user": str("tech@oldmsp.example")}); err != nil {
			t.Fatal(err)
		}
		if len(prompts) != 1 {
			t.Fatalf("the admin was asked %d times to sign in, once is enough", len(prompts))
		}
	}
	if _, err := configured(t, g, map[string]cty.Value{"device_code": cty.True}); err == nil || !strings.Contains(err.Error(), "one of them") {
		t.Fatalf("a secret and a device code: %v", err)
	}
}

// The last sign-in comes with the users where the tenant lets it be read
// (Entra ID P1, AuditLog.Read.All); elsewhere the users come without it,
// with a warning that says why.
func TestFindUsersLastSignIn(t *testing.T) {
	ctx := context.Background()
	g := graphtest.Start(t)
	id := g.AddUser("tech@oldmsp.example", "x", false)
	g.AddUser("never@oldmsp.example", "x", false)
	g.SetLastSignIn(id, time.Date(2026, 11, 30, 8, 15, 0, 0, time.UTC))
	h := harness(t, g)
	domains := map[string]cty.Value{"domains": cty.ListVal([]cty.Value{str("oldmsp.example")})}
	for _, premium := range []bool{true, false} {
		g.NoPremium = !premium
		p, err := h.Plan(ctx, "find_users", domains, nil)
		if err != nil {
			t.Fatal(err)
		}
		users := p.Outputs["users"]
		got := users.Index(str("tech@oldmsp.example")).GetAttr("last_sign_in").AsString()
		never := users.Index(str("never@oldmsp.example")).GetAttr("last_sign_in").AsString()
		switch {
		case premium && (got != "2026-11-30T08:15:00Z" || never != "" || len(p.Diagnostics) != 0):
			t.Errorf("with P1: last sign-ins %q and %q, %v", got, never, p.Diagnostics)
		case !premium && (got != "" || len(p.Diagnostics) != 1 || !strings.Contains(p.Diagnostics[0].Detail, "AuditLog.Read.All")):
			t.Errorf("without P1: last sign-in %q, %v", got, p.Diagnostics)
		}
	}
}

// A user that Entra Connect synchronizes from AD: Graph refuses to disable
// it or set its password (as the real one does), so disable_user waits for
// the sync of the AD account's disable (a Wait plan, looked at again), and
// reset_password says to reset it in AD. Once the sync disabled it, the
// step is done.
func TestSyncedUserIsDisabledInADAndWaitedFor(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	g := graphtest.Start(t)
	id := g.AddUser("tech@oldmsp.example", "Old-Pw-1!", false)
	g.SetSynced(id)
	h := harness(t, g)
	found, err := h.Plan(ctx, "find_users", map[string]cty.Value{"domains": cty.ListVal([]cty.Value{str("oldmsp.example")})}, nil)
	if err != nil || !found.Outputs["users"].Index(str("tech@oldmsp.example")).GetAttr("synced").True() {
		t.Fatalf("find_users does not say the user is synced: %v %v", found, err)
	}
	attrs := map[string]cty.Value{"user": str(id)}
	p, err := h.Plan(ctx, "disable_user", attrs, nil)
	if err != nil || p.Kind != sdk.Wait || !strings.Contains(p.Summary, "ad.disable_account") || time.Until(p.NotBefore) < 5*time.Minute {
		t.Fatalf("plan of a synced user: %+v %v", p, err)
	}
	// What Graph answers when one tries anyway.
	if _, _, err := h.Apply(ctx, "disable_user", attrs, &sdk.PlanResponse{Kind: sdk.Change, Private: []byte(id)}, nil); err == nil || !strings.Contains(err.Error(), "on-premises mastered Directory Sync objects") {
		t.Fatalf("Graph let a synced user be disabled: %v", err)
	}
	if _, err := h.Plan(ctx, "reset_password", map[string]cty.Value{"user": str(id), "password": str("New-Pw-1!xyz")}, nil); err == nil || !strings.Contains(err.Error(), "reset it in AD") {
		t.Fatalf("reset_password of a synced user: %v", err)
	}
	g.SyncDisabled(id)
	if p, err := h.Plan(ctx, "disable_user", attrs, nil); err != nil || p.Kind != sdk.NoChange {
		t.Fatalf("after the sync: %+v %v", p, err)
	}
}

// Graph at its worst: reads come from replicas that lag writes by two
// seconds, and users are deleted under the runbook. A correct write is
// verified by looking again for a while (the count of looks is reported),
// not called ineffective; with consistency_wait = "0s" it would be (so the
// re-observation is what makes it pass). reset_password's evidence is its
// own write: the plan after the replicas caught up is a no-op. A deleted user is done for the
// actions that disable or remove, and a one-line error naming it for
// reset_password.
func TestStaleReplicasAndDeletedUsers(t *testing.T) {
	ctx := context.Background()
	g := graphtest.Start(t)
	g.Stale = 2 * time.Second
	tech := g.AddUser("tech1@oldmsp.example", "Old-Pw-1!", false)
	bg := g.AddUser("breakglass@client.example", "Old-Break-Glass-1!", false)
	gone := g.AddUser("tech2@oldmsp.example", "Old-Pw-1!", false)
	time.Sleep(g.Stale) // the replicas have the users
	h := harness(t, g)

	r, err := h.Run(ctx, "disable_user", map[string]cty.Value{"user": str("tech1@oldmsp.example")})
	if err != nil {
		t.Fatalf("a correct write to a lagging tenant failed: %v", err)
	}
	if r.VerifyReads < 2 {
		t.Fatalf("verified with %d reads: the replica was not stale?", r.VerifyReads)
	}
	if g.UserProps(tech)["accountEnabled"] != false {
		t.Fatal("tech1 is not disabled")
	}

	set := map[string]cty.Value{"user": str("breakglass@client.example"), "password": str("New-Break-Glass-7!")}
	p, err := h.Plan(ctx, "reset_password", set, nil)
	if err != nil || p.Kind != sdk.Change {
		t.Fatalf("plan: %v %v", p, err)
	}
	ar, ev, err := h.Apply(ctx, "reset_password", set, p, nil)
	if err != nil || ar.Verify == nil || ar.Verify.Kind != sdk.NoChange {
		t.Fatalf("reset_password against a lagging tenant: %v, verify %+v", err, ar)
	}
	if g.Password(bg) != "New-Break-Glass-7!" {
		t.Fatal("the password was not set")
	}
	time.Sleep(g.Stale)
	if p, err := h.Plan(ctx, "reset_password", set, ev.Last()); err != nil || p.Kind != sdk.NoChange {
		t.Fatalf("the plan after the reset is not a no-op (evidence from a stale read?): %v %v", p, err)
	}

	// consistency_wait = "0s": one look, and the lagging replica fails it.
	h0, err := configured(t, g, map[string]cty.Value{"consistency_wait": str("0s")})
	if err != nil {
		t.Fatal(err)
	}
	other := g.AddUser("tech3@oldmsp.example", "Old-Pw-1!", false)
	time.Sleep(g.Stale)
	if _, err := h0.Run(ctx, "disable_user", map[string]cty.Value{"user": str("tech3@oldmsp.example")}); err == nil || !strings.Contains(err.Error(), "still sees a change") {
		t.Fatalf("with one look, a lagging replica should fail the verify: %v", err)
	}
	if g.UserProps(other)["accountEnabled"] != false {
		t.Fatal("tech3 is not disabled")
	}

	// Deleted between plan and apply: done, already gone.
	dp, err := h.Plan(ctx, "disable_user", map[string]cty.Value{"user": str("tech2@oldmsp.example")}, nil)
	if err != nil || dp.Kind != sdk.Change {
		t.Fatalf("plan: %v %v", dp, err)
	}
	g.DeleteUser(gone)
	time.Sleep(g.Stale)
	ar, _, err = h.Apply(ctx, "disable_user", map[string]cty.Value{"user": str("tech2@oldmsp.example")}, dp, nil)
	if err != nil || !strings.Contains(ar.Summary, "already gone") {
		t.Fatalf("disable of a user deleted since the plan: %v %+v", err, ar)
	}
	for _, action := range []string{"disable_user", "revoke_sessions", "remove_roles", "remove_groups", "remove_auth_methods"} {
		p, err := h.Plan(ctx, action, map[string]cty.Value{"user": str("tech2@oldmsp.example")}, nil)
		if err != nil || p.Kind != sdk.NoChange || !strings.Contains(p.Summary, "already gone") || !strings.Contains(p.Summary, "tech2@oldmsp.example") {
			t.Errorf("%s of a deleted user: %v %v", action, p, err)
		}
	}
	_, err = h.Plan(ctx, "reset_password", map[string]cty.Value{"user": str("tech2@oldmsp.example"), "password": str("X-Pw-123456!")}, nil)
	if err == nil || !strings.Contains(err.Error(), `user "tech2@oldmsp.example"`) || !strings.Contains(err.Error(), "does not exist") || strings.Contains(err.Error(), "\n") {
		t.Fatalf("reset_password of a deleted user: %v", err)
	}
}

// Tokens that Graph refuses before they say they expire (a revocation,
// clock skew): a refused token is replaced by a fresh one, once for all
// the requests refused with it, and the run finishes.
func TestTokensExpireMidRun(t *testing.T) {
	ctx := context.Background()
	g := graphtest.Start(t)
	g.TokenLifetime = 300 * time.Millisecond
	g.Latency = 60 * time.Millisecond
	g.RateLimit = 150 // requests a second: the run takes a few seconds
	var upns []string
	for i := 0; i < 150; i++ {
		u := fmt.Sprintf("exp%02d@oldmsp.example", i)
		g.AddUser(u, "x", false)
		upns = append(upns, u)
	}
	h := harness(t, g)
	start := time.Now()
	errs := make(chan error, len(upns))
	for _, u := range upns {
		go func(u string) {
			_, err := h.Run(ctx, "disable_user", map[string]cty.Value{"user": str(u)})
			if err == nil {
				_, err = h.Run(ctx, "revoke_sessions", map[string]cty.Value{"user": str(u)})
			}
			errs <- err
		}(u)
	}
	for range upns {
		if err := <-errs; err != nil {
			t.Fatalf("a run with expiring tokens failed: %v", err)
		}
	}
	took := time.Since(start)
	expiries := int(took / g.TokenLifetime)
	if g.Expired() == 0 {
		t.Fatalf("no request met an expired token in %s: the test proves nothing", took)
	}
	if n := g.TokenRequests(); n > 1+expiries+1 {
		t.Fatalf("%d token requests in %s (tokens live %s): more than one per expiry", n, took, g.TokenLifetime)
	}
	t.Logf("%s, %d token requests, %d requests met an expired token", took, g.TokenRequests(), g.Expired())
}

// A nextLink may spell the endpoint's origin otherwise; it is followed
// on the configured endpoint, and only under its /v1.0/.
func TestNextLinkSpellings(t *testing.T) {
	g := &graph{endpoint: "https://127.0.0.1:8443"}
	for link, want := range map[string]string{
		"https://127.0.0.1:8443/v1.0/users?$skiptoken=2":   "/users?$skiptoken=2",
		"https://localhost:8443/v1.0/users?$skiptoken=2":   "/users?$skiptoken=2",
		"HTTPS://LOCALHOST:8443/v1.0/users?$skiptoken=2":   "/users?$skiptoken=2",
		"https://[::1]:8443/v1.0/users?$skiptoken=2":       "/users?$skiptoken=2",
		"https://127.0.0.1:8444/v1.0/users":                "",
		"http://127.0.0.1:8443/v1.0/users":                 "",
		"https://evil.example:8443/v1.0/users":             "",
		"https://127.0.0.1:8443/beta/users":                "",
		"https://127.0.0.1:8443/v1.0evil/users":            "",
		"https://user:pw@graph.microsoft.com/v1.0/users":   "",
		"https://127.0.0.1:8443/v1.0/users/x/memberOf?a=b": "/users/x/memberOf?a=b",
	} {
		got, err := g.relative(link)
		if want == "" && (err == nil || !strings.Contains(err.Error(), "leaves the Graph endpoint")) || want != "" && got != want {
			t.Errorf("%s: %q, %v; want %q", link, got, err, want)
		}
	}
	ms := &graph{endpoint: "https://graph.microsoft.com"}
	if got, err := ms.relative("https://Graph.Microsoft.com:443/v1.0/users?$skiptoken=x"); err != nil || got != "/users?$skiptoken=x" {
		t.Errorf("case and :443: %q %v", got, err)
	}
}

// Against a tenant whose nextLinks say localhost where the plugin was
// told 127.0.0.1, and whose pages are small (the combined id-in read of
// many users comes in pages too): every guest is found and disabled.
func TestPagesSpelledOtherwiseAndPagedCombinedReads(t *testing.T) {
	ctx := context.Background()
	g := graphtest.Start(t)
	g.PageSize = 4
	u, _ := url.Parse(g.URL)
	g.NextLinkHost = "localhost:" + u.Port()
	for i := 0; i < 30; i++ {
		g.AddUser(fmt.Sprintf("guest%02d@oldmsp.example", i), "", true)
	}
	h := harness(t, g)
	if _, err := h.Run(ctx, "remove_guests", map[string]cty.Value{"domains": cty.ListVal([]cty.Value{str("oldmsp.example")})}); err != nil {
		t.Fatalf("remove_guests over pages with another spelling of the host: %v", err)
	}
	// Many user reads at once go out as one listing, served in pages.
	var members []string
	for i := 0; i < 30; i++ {
		upn := fmt.Sprintf("tech%02d@oldmsp.example", i)
		g.AddUser(upn, "x", false)
		members = append(members, upn)
	}
	errs := make(chan error, len(members))
	for _, upn := range members {
		go func(upn string) {
			p, err := h.Plan(ctx, "disable_user", map[string]cty.Value{"user": str(upn)}, nil)
			if err == nil && p.Kind != sdk.Change {
				err = fmt.Errorf("%s: %s", upn, p.Summary)
			}
			errs <- err
		}(upn)
	}
	for range members {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
}

// A redirect to another origin (here a downgrade to a plain-http decoy
// that would answer "no users") is refused: the token never reaches it,
// and its answer is not taken for Graph's.
func TestRedirectsNeverCarryTheToken(t *testing.T) {
	ctx := context.Background()
	g := graphtest.Start(t)
	g.AddUser("tech1@oldmsp.example", "x", false)
	var gotAuth []string
	var mu sync.Mutex
	decoy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		gotAuth = append(gotAuth, r.Header.Get("Authorization"))
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"value":[]}`))
	}))
	defer decoy.Close()
	h := harness(t, g)
	g.Redirect = decoy.URL
	_, err := h.Plan(ctx, "find_users", map[string]cty.Value{"domains": cty.ListVal([]cty.Value{str("oldmsp.example")})}, nil)
	if err == nil || !strings.Contains(err.Error(), "refused") || strings.Contains(err.Error(), "\n") {
		t.Fatalf("a redirect to another origin: %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(gotAuth) > 0 {
		t.Fatalf("the decoy was called (Authorization %q)", gotAuth)
	}
}

// A guest deleted between the listing and its disable is done, and the
// result says so.
func TestGuestDeletedMeanwhileIsDone(t *testing.T) {
	ctx := context.Background()
	g := graphtest.Start(t)
	g.AddUser("helpdesk@oldmsp.example", "", true)
	gone := g.AddUser("old@oldmsp.example", "", true)
	h := harness(t, g)
	set := map[string]cty.Value{"domains": cty.ListVal([]cty.Value{str("oldmsp.example")})}
	p, err := h.Plan(ctx, "remove_guests", set, nil)
	if err != nil || p.Kind != sdk.Change {
		t.Fatalf("plan: %v %v", p, err)
	}
	// Someone deletes it between the apply's listing and its write.
	g.DeleteUserOnNextWrite(gone)
	r, _, err := h.Apply(ctx, "remove_guests", set, p, nil)
	if err != nil || !strings.Contains(r.Summary, "1 of them already gone") {
		t.Fatalf("apply: %v %+v", err, r)
	}
	if r.Verify == nil || r.Verify.Kind != sdk.NoChange {
		t.Fatalf("verify: %+v", r.Verify)
	}
}
