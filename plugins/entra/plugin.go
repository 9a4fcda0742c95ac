package entra

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/cloud"
	"github.com/zclconf/go-cty/cty"

	"github.com/switchover/switchover/plugins/sdk"
)

type plugin struct {
	g      sdk.Configured[*graph]
	tenant string
	notify func(string) // shows the person at the keyboard a message
}

// New returns the entra plugin.
func New(version string) *sdk.Plugin { return newPlugin(version, sdk.Notify) }

// newPlugin is the plugin with its way to show a person the device code.
func newPlugin(version string, notify func(string)) *sdk.Plugin {
	p := &plugin{notify: notify, g: sdk.Configured[*graph]{Plugin: "entra"}}
	return &sdk.Plugin{
		Name:        "entra",
		Version:     version,
		Description: "Entra ID (Microsoft 365) over Microsoft Graph v1.0: find the old provider's users and guests, disable them, end their sessions, reset passwords, remove directory roles.",
		Config: []sdk.Attribute{
			{Name: "tenant_id", Type: cty.String, Required: true, Description: "The client's tenant ID."},
			{Name: "client_id", Type: cty.String, Required: true, Description: "The app registration's client ID (the new provider's)."},
			{Name: "client_secret", Type: cty.String, Sensitive: true, Description: "Its client secret (or client_certificate_file)."},
			{Name: "client_certificate_file", Type: cty.String, Description: "PEM (or PKCS#12) file with the app's certificate and private key, instead of a secret."},
			{Name: "client_certificate_password", Type: cty.String, Sensitive: true, Description: "Password of client_certificate_file, if it has one."},
			{Name: "device_code", Type: cty.Bool, Description: "Sign in as an admin at the keyboard instead (device code): switchover shows the address and the code to enter, and waits for the sign-in (up to 15 minutes). client_id is then a public client app registration."},
			{Name: "authority_host", Type: cty.String, Description: "Login host (default https://login.microsoftonline.com/; national clouds, tests)."},
			{Name: "graph_endpoint", Type: cty.String, Description: "Graph endpoint (default https://graph.microsoft.com)."},
			{Name: "unverified_authority_host", Type: cty.Bool, Description: "LAB OR PRIVATE CLOUD ONLY: sign in at an authority_host that is none of Microsoft's clouds, without Microsoft's instance discovery; the secret goes to that host, which every plan names in a warning."},
			{Name: "disable_instance_discovery", Type: cty.Bool, Description: "Only with unverified_authority_host (which implies it)."},
			{Name: "ca_file", Type: cty.String, Description: "PEM file of a CA to trust in addition to the system's."},
			{Name: "timeout", Type: sdk.DurationType, Description: "Timeout of one request (default 30s)."},
		},
		ConfigureFunc: p.configure,
		TargetFunc: func(string, sdk.Values) string {
			if p.tenant == "" {
				return ""
			}
			return "Entra tenant " + p.tenant
		},
		Actions: []*sdk.Action{p.findUsers(), p.disableUser(), p.revokeSessions(), p.resetPassword(), p.removeRoles(), p.removeGuests(), p.removeServicePrincipals(), p.removeAuthMethods(), p.removeGroups(), p.appCredentials(), p.inventory(), p.accessWindow(), p.findPersistence(), p.removePersistence()},
		// Graph answers reads from replicas: a read right after a write may
		// show the old value for seconds (a minute at worst).
		Consistency: 60 * time.Second,
	}
}

// gone turns Graph's 404 into the SDK's NotFound, naming the object.
func (p *plugin) gone(err error, format string, a ...any) error {
	if statusOf(err) == http.StatusNotFound {
		return sdk.NotFound("%s in tenant %s", fmt.Sprintf(format, a...), p.tenant)
	}
	return err
}

func (p *plugin) configure(ctx context.Context, cfg sdk.Values) sdk.Diagnostics {
	timeout, diags := cfg.Duration("timeout", 30*time.Second)
	s := graphSettings{tenant: cfg.String("tenant_id"), clientID: cfg.String("client_id"), secret: cfg.String("client_secret"),
		authority: cfg.String("authority_host"), endpoint: cfg.String("graph_endpoint"), caFile: cfg.String("ca_file"),
		noDiscovery: cfg.Bool("unverified_authority_host"), timeout: timeout,
		certFile: cfg.String("client_certificate_file"), certPassword: cfg.String("client_certificate_password"),
		deviceCode: cfg.Bool("device_code"), prompt: p.notify}
	ways := 0
	for _, set := range []bool{s.secret != "", s.certFile != "", s.deviceCode} {
		if set {
			ways++
		}
	}
	if ways != 1 {
		return append(diags, sdk.Diagnostic{Severity: sdk.Error, Summary: "One way to sign in", Detail: "Set client_secret, client_certificate_file or device_code = true (one of them)."})
	}
	if s.authority == "" {
		s.authority = "https://login.microsoftonline.com/"
	}
	if s.endpoint == "" {
		s.endpoint = "https://graph.microsoft.com"
	}
	for name, v := range map[string]string{"authority_host": s.authority, "graph_endpoint": s.endpoint} {
		if u, err := url.Parse(v); err != nil || u.Scheme != "https" || u.Host == "" {
			return append(diags, sdk.AttributeErrorf(name, "Invalid URL", "%s must be an https URL, not %q", name, v)...)
		}
	}
	d := checkAuthority(s.authority, cfg.Bool("unverified_authority_host"), cfg.Bool("disable_instance_discovery"))
	if diags = append(diags, d...); d.HasErrors() {
		return diags
	}
	g, err := newGraph(s)
	if err != nil {
		return append(diags, sdk.Diagnostic{Severity: sdk.Error, Summary: "Invalid Entra settings", Detail: err.Error()})
	}
	if s.deviceCode {
		// The admin signs in now, once, before the steps run in parallel.
		if _, err := g.token(ctx); err != nil {
			return append(diags, sdk.Diagnostic{Severity: sdk.Error, Summary: "Signing in with a device code failed", Detail: err.Error()})
		}
	}
	p.g.Set(g)
	p.tenant = s.tenant
	return diags
}

// microsoftClouds are the login hosts of Microsoft's clouds (azcore's
// list): instance discovery checks an authority there.
var microsoftClouds = []string{cloud.AzurePublic.ActiveDirectoryAuthorityHost, cloud.AzureGovernment.ActiveDirectoryAuthorityHost, cloud.AzureChina.ActiveDirectoryAuthorityHost}

// checkAuthority: the credentials go only to one of Microsoft's clouds
// (with instance discovery), unless the runbook says loudly that the
// host is unverified (a lab), and then every plan names it.
func checkAuthority(authority string, unverified, noDiscovery bool) sdk.Diagnostics {
	u, _ := url.Parse(authority)
	known := false
	for _, c := range microsoftClouds {
		if k, err := url.Parse(c); err == nil && strings.EqualFold(k.Host, u.Host) {
			known = true
		}
	}
	switch {
	case noDiscovery && !unverified:
		return sdk.AttributeErrorf("disable_instance_discovery", "Instance discovery is not turned off alone",
			"Microsoft's instance discovery is what checks the login host the client secret goes to: it is turned off only with unverified_authority_host = true (a lab or a private cloud), which every plan names")
	case !known && !unverified:
		return sdk.AttributeErrorf("authority_host", "Unknown login host",
			"%s is none of Microsoft's clouds (%s): the client secret would go there. For a lab or a private cloud, also set unverified_authority_host = true", u.Host, strings.Join(microsoftClouds, ", "))
	case unverified:
		return sdk.Diagnostics{sdk.Warnf("Signing in at an unverified login host",
			"The credentials go to %s without Microsoft's instance discovery (unverified_authority_host = true): right for a lab or a private cloud, never for a client's tenant.", u.Host)}
	}
	return nil
}

func (p *plugin) graph() (*graph, error) { return p.g.Get() }

type user struct {
	ID                              string `json:"id"`
	UserPrincipalName               string `json:"userPrincipalName"`
	DisplayName                     string `json:"displayName"`
	Mail                            string `json:"mail"`
	AccountEnabled                  *bool  `json:"accountEnabled"`
	UserType                        string `json:"userType"`
	SignInSessionsValidFromDateTime string `json:"signInSessionsValidFromDateTime"`
	LastPasswordChangeDateTime      string `json:"lastPasswordChangeDateTime"`
	SignInActivity                  *struct {
		LastSignInDateTime string `json:"lastSignInDateTime"`
	} `json:"signInActivity"`
	// OnPremisesSyncEnabled: Entra Connect synchronizes it from AD, where
	// its accountEnabled and password are mastered.
	OnPremisesSyncEnabled *bool `json:"onPremisesSyncEnabled"`
}

// synced says whether the user is synchronized from on-premises AD.
func (u *user) synced() bool { return u.OnPremisesSyncEnabled != nil && *u.OnPremisesSyncEnabled }

func (u *user) lastSignIn() string {
	if u.SignInActivity == nil {
		return ""
	}
	return u.SignInActivity.LastSignInDateTime
}

func (u *user) enabled() bool { return u.AccountEnabled == nil || *u.AccountEnabled }

const userSelect = "id,userPrincipalName,displayName,mail,accountEnabled,userType,signInSessionsValidFromDateTime,lastPasswordChangeDateTime,onPremisesSyncEnabled"

// getUser reads a user by id or UPN; nil when there is none.
func (g *graph) getUser(ctx context.Context, key string) (*user, error) {
	var u user
	err := g.getUserJSON(ctx, key, &u)
	if statusOf(err) == http.StatusNotFound {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return &u, nil
}

// userOf is the configured client and the user the step's "user" names.
func (p *plugin) userOf(ctx context.Context, a sdk.Values) (*graph, *user, error) {
	g, err := p.graph()
	if err != nil {
		return nil, nil, err
	}
	u, err := g.mustUser(ctx, a.String("user"))
	return g, u, err
}

func (g *graph) mustUser(ctx context.Context, key string) (*user, error) {
	u, err := g.getUser(ctx, key)
	if err == nil && u == nil {
		err = sdk.NotFound("user %q", key)
	}
	return u, err
}

type role struct {
	ID          string `json:"id"`
	DisplayName string `json:"displayName"`
	Members     []struct {
		ID string `json:"id"`
	} `json:"members"`
}

func (g *graph) roles(ctx context.Context) ([]role, error) {
	return listOf[role](ctx, g, "/directoryRoles?$expand=members", nil)
}

var foundType = cty.Object(map[string]cty.Type{"id": cty.String, "upn": cty.String, "display_name": cty.String, "mail": cty.String,
	"enabled": cty.Bool, "user_type": cty.String, "roles": cty.List(cty.String), "last_sign_in": cty.String, "synced": cty.Bool})

func quoteOData(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

func (p *plugin) findUsers() *sdk.Action {
	return sdk.ReadOnlyAction("find_users",
		"Finds users, changing nothing: members whose UPN or mail is in the old provider's domains, guests from those domains, members of directory roles. Outputs a map by UPN for for_each.",
		[]sdk.Attribute{
			{Name: "domains", Type: cty.List(cty.String), Required: true, Description: "The old provider's domains, e.g. [\"oldmsp.example\"]."},
			{Name: "guests", Type: cty.Bool, Description: "Include guests from those domains (default true)."},
			{Name: "members", Type: cty.Bool, Description: "Include member users in those domains (default true)."},
		},
		[]sdk.Output{{Name: "users", Type: cty.Map(foundType), Description: "By UPN: id, upn, display_name, mail, enabled, user_type, roles, last_sign_in (\"\" where not readable), synced (from on-premises AD by Entra Connect)."}, {Name: "count", Type: cty.Number}},
		func(ctx context.Context, a sdk.Values) (map[string]cty.Value, string, sdk.Diagnostics, error) {
			g, err := p.graph()
			if err != nil {
				return nil, "", nil, err
			}
			domains := a.Strings("domains")
			if len(domains) == 0 {
				return nil, "", nil, fmt.Errorf("give the old provider's domains")
			}
			var terms []string
			for _, d := range domains {
				d = "@" + strings.TrimPrefix(strings.ToLower(d), "@")
				terms = append(terms, "endswith(userPrincipalName,"+quoteOData(d)+")", "endswith(mail,"+quoteOData(d)+")")
			}
			// The last sign-in is readable with AuditLog.Read.All in a
			// tenant with Entra ID P1; without, the users come without it.
			var diags sdk.Diagnostics
			q := url.Values{"$filter": {strings.Join(terms, " or ")}, "$select": {userSelect + ",signInActivity"}, "$count": {"true"}, "$top": {"999"}}
			// endswith is an advanced query: it needs these.
			advanced := http.Header{"Consistencylevel": {"eventual"}}
			raws, err := g.all(ctx, "/users?"+q.Encode(), advanced)
			if st := statusOf(err); st == http.StatusForbidden || st == http.StatusBadRequest {
				diags = append(diags, sdk.Diagnostic{Severity: sdk.Warning, Summary: "The last sign-ins are not readable",
					Detail: fmt.Sprintf("Graph refused signInActivity (%v): it needs AuditLog.Read.All and Entra ID P1. The users are listed without it.", err)})
				q.Set("$select", userSelect)
				raws, err = g.all(ctx, "/users?"+q.Encode(), advanced)
			}
			if err != nil {
				return nil, "", nil, err
			}
			roles, err := g.roles(ctx)
			if err != nil {
				return nil, "", nil, err
			}
			roleOf := map[string][]string{}
			for _, r := range roles {
				for _, m := range r.Members {
					roleOf[m.ID] = append(roleOf[m.ID], r.DisplayName)
				}
			}
			wantGuests := !a.Has("guests") || a.Bool("guests")
			wantMembers := !a.Has("members") || a.Bool("members")
			users := map[string]cty.Value{}
			var names []string
			for _, r := range raws {
				var u user
				if json.Unmarshal(r, &u) != nil {
					continue
				}
				guest := u.UserType == "Guest"
				if guest && !wantGuests || !guest && !wantMembers {
					continue
				}
				rs := roleOf[u.ID]
				sort.Strings(rs)
				users[u.UserPrincipalName] = cty.ObjectVal(map[string]cty.Value{"id": cty.StringVal(u.ID), "upn": cty.StringVal(u.UserPrincipalName),
					"display_name": cty.StringVal(u.DisplayName), "mail": cty.StringVal(u.Mail), "enabled": cty.BoolVal(u.enabled()),
					"user_type": cty.StringVal(u.UserType), "roles": sdk.StringList(rs), "last_sign_in": cty.StringVal(u.lastSignIn()), "synced": cty.BoolVal(u.synced())})
				names = append(names, u.UserPrincipalName)
			}
			sort.Strings(names)
			outs := map[string]cty.Value{"users": cty.MapValEmpty(foundType), "count": cty.NumberIntVal(int64(len(names)))}
			if len(users) > 0 {
				outs["users"] = cty.MapVal(users)
			}
			return outs, fmt.Sprintf("found %d users of %s: %s", len(names), strings.Join(domains, ", "), strings.Join(names, ", ")), diags, nil
		})
}

// syncWait is how long a synced user's disable waits for Entra Connect
// before it looks again.
const syncWait = 10 * time.Minute

var userAttr = sdk.Attribute{Name: "user", Type: cty.String, Required: true, Description: "The user's id or UPN."}

func (p *plugin) disableUser() *sdk.Action {
	return &sdk.Action{Name: "disable_user", Description: "Sets accountEnabled = false: the user can no longer sign in. A user deleted meanwhile is done (already gone).",
		Attributes: []sdk.Attribute{userAttr}, GoneIsDone: true,
		PlanFunc: func(ctx context.Context, req *sdk.PlanRequest) *sdk.PlanResponse {
			_, u, err := p.userOf(ctx, req.Attributes)
			if err != nil {
				return sdk.PlanError(err)
			}
			if !u.enabled() {
				return sdk.NoChangef("%s is disabled", u.UserPrincipalName)
			}
			if u.synced() {
				// Graph refuses to change it: its AD account is disabled
				// (the ad plugin's disable_account), and Entra Connect
				// carries that over, every 30 minutes by default.
				next := time.Now().Add(syncWait).UTC()
				return sdk.Waitf(next, "%s is synchronized from on-premises AD (Entra Connect), where it is enabled or disabled: disable its AD account (ad.disable_account); the next sync (every 30 minutes by default) disables it here; looking again at %s", u.UserPrincipalName, next.Format(time.RFC3339))
			}
			r := sdk.Changef("disable %s (accountEnabled = false)", u.UserPrincipalName)
			r.Private = []byte(u.ID)
			return r
		},
		ApplyFunc: func(ctx context.Context, req *sdk.ApplyRequest, ev sdk.Events) *sdk.ApplyResponse {
			g, err := p.graph()
			if err != nil {
				return sdk.ApplyError(err)
			}
			id := string(req.Private)
			if id == "" {
				id = req.Attributes.String("user")
			}
			if err := g.do(ctx, "PATCH", "/users/"+url.PathEscape(id), nil, map[string]any{"accountEnabled": false}, nil); err != nil {
				return sdk.ApplyError(p.gone(err, "user %q", req.Attributes.String("user")))
			}
			return &sdk.ApplyResponse{Summary: "disabled " + req.Attributes.String("user")}
		}}
}

// timeCheckpoint: the value a property had after the step's change, which
// a later plan compares with.
type timeCheckpoint struct {
	After string `json:"after,omitempty"`
	// Before is the value the plan saw before the change: the change
	// happened when the property is later than that (revocations only move
	// it forward), which needs no read after the write.
	Before *string `json:"before,omitempty"`
}

// revokePlan is what a revoke_sessions plan hands its apply: the user's id
// and the sessions' valid-from time it saw.
type revokePlan struct {
	ID     string `json:"id"`
	Before string `json:"before"`
}

// laterThan: a was set after b ("" is never set).
func laterThan(a, b string) bool {
	if b == "" {
		return a != ""
	}
	ta, err1 := time.Parse(time.RFC3339Nano, a)
	tb, err2 := time.Parse(time.RFC3339Nano, b)
	return err1 == nil && err2 == nil && ta.After(tb)
}

func laterOrEqual(a, b string) bool {
	ta, err1 := time.Parse(time.RFC3339Nano, a)
	tb, err2 := time.Parse(time.RFC3339Nano, b)
	return err1 == nil && err2 == nil && !ta.Before(tb)
}

func (p *plugin) revokeSessions() *sdk.Action {
	return &sdk.Action{Name: "revoke_sessions",
		Description: "Ends the user's sessions and refresh tokens (revokeSignInSessions); verified by signInSessionsValidFromDateTime. A user deleted meanwhile has none left.",
		Attributes:  []sdk.Attribute{userAttr}, GoneIsDone: true,
		PlanFunc: func(ctx context.Context, req *sdk.PlanRequest) *sdk.PlanResponse {
			_, u, err := p.userOf(ctx, req.Attributes)
			if err != nil {
				return sdk.PlanError(err)
			}
			var ck timeCheckpoint
			if json.Unmarshal(req.Checkpoint, &ck) == nil && (ck.After != "" && laterOrEqual(u.SignInSessionsValidFromDateTime, ck.After) ||
				ck.Before != nil && laterThan(u.SignInSessionsValidFromDateTime, *ck.Before)) {
				return sdk.NoChangef("the sessions of %s were revoked: valid only from %s", u.UserPrincipalName, u.SignInSessionsValidFromDateTime)
			}
			r := sdk.Changef("revoke the sessions of %s (valid from %s now)", u.UserPrincipalName, u.SignInSessionsValidFromDateTime)
			sdk.SetPrivate(r, revokePlan{ID: u.ID, Before: u.SignInSessionsValidFromDateTime})
			return r
		},
		ApplyFunc: func(ctx context.Context, req *sdk.ApplyRequest, ev sdk.Events) *sdk.ApplyResponse {
			g, err := p.graph()
			if err != nil {
				return sdk.ApplyError(err)
			}
			rp, ok := sdk.PrivateOf[revokePlan](req)
			if !ok || rp.ID == "" {
				// No plan of this version (one saved by an older one):
				// read the user before the change.
				u, err := g.mustUser(ctx, req.Attributes.String("user"))
				if err != nil {
					return sdk.ApplyError(err)
				}
				rp = revokePlan{ID: u.ID, Before: u.SignInSessionsValidFromDateTime}
			}
			if err := g.do(ctx, "POST", "/users/"+url.PathEscape(rp.ID)+"/revokeSignInSessions", nil, nil, nil); err != nil {
				return sdk.ApplyError(p.gone(err, "user %q", req.Attributes.String("user")))
			}
			// The sessions are revoked once their valid-from time is later
			// than the plan saw (the verify reads it).
			b, _ := json.Marshal(timeCheckpoint{Before: &rp.Before})
			if err := ev.Checkpoint(ctx, b); err != nil {
				return sdk.ApplyError(err)
			}
			return &sdk.ApplyResponse{Summary: "revoked the sessions of " + req.Attributes.String("user")}
		}}
}

// passwordCheckpoint is reset_password's evidence, from its own write
// (never from a read after it, which a lagging replica may answer): the
// password-change time it saw before the write, and when it sent it.
type passwordCheckpoint struct {
	Before string    `json:"before"`
	Sent   time.Time `json:"sent"`
	// After is what an older version recorded from a read after the write.
	After string `json:"after,omitempty"`
}

// passwordSkew is how far Graph's clock and this machine's may differ
// (and how long a write may take to land): a change later than that after
// the write is someone else's.
const passwordSkew = 10 * time.Minute

// ours says whether the password change time changed reads as the
// write the checkpoint records: later than before it, and not much later
// than it was sent (a later one is someone else's change: drift).
func (ck passwordCheckpoint) ours(changed string) (bool, string) {
	if ck.After != "" {
		return changed == ck.After, ck.After
	}
	if ck.Sent.IsZero() || !laterThan(changed, ck.Before) {
		return false, ""
	}
	t, err := time.Parse(time.RFC3339Nano, changed)
	if err != nil || t.After(ck.Sent.Add(passwordSkew)) {
		return false, ""
	}
	return true, ck.Sent.UTC().Format(time.RFC3339)
}

func (p *plugin) resetPassword() *sdk.Action {
	return &sdk.Action{Name: "reset_password",
		Description: "Sets the user's password (passwordProfile) to a value from secret(), optionally to be changed at the next sign-in; crash-safe through the write-ahead secret. Verified by lastPasswordChangeDateTime moving past what it was before the write (Graph never reads a password back); a change made later by someone else is drift.",
		Attributes: []sdk.Attribute{userAttr,
			{Name: "password", Type: cty.String, Required: true, Sensitive: true, Description: "The new password, normally secret(\"...\")."},
			{Name: "force_change", Type: cty.Bool, Description: "The user must change it at the next sign-in."}},
		PlanFunc: func(ctx context.Context, req *sdk.PlanRequest) *sdk.PlanResponse {
			_, u, err := p.userOf(ctx, req.Attributes)
			if err != nil {
				return sdk.PlanError(p.gone(err, "user %q", req.Attributes.String("user")))
			}
			var ck passwordCheckpoint
			if json.Unmarshal(req.Checkpoint, &ck) == nil {
				if ok, at := ck.ours(u.LastPasswordChangeDateTime); ok {
					return sdk.NoChangef("the password of %s is the one set at %s", u.UserPrincipalName, at)
				}
			}
			if u.synced() {
				return sdk.PlanError(fmt.Errorf("%s is synchronized from on-premises AD (Entra Connect), where its password is mastered: Graph cannot set it; reset it in AD (ad.reset_password) instead", u.UserPrincipalName))
			}
			r := sdk.Changef("reset the password of %s (to a new secret)", u.UserPrincipalName)
			if ck.Before != "" || ck.After != "" {
				r = sdk.Changef("reset the password of %s again: it was changed at %s, after switchover set it", u.UserPrincipalName, u.LastPasswordChangeDateTime)
			}
			sdk.SetPrivate(r, passwordCheckpoint{Before: u.LastPasswordChangeDateTime})
			return r
		},
		ApplyFunc: func(ctx context.Context, req *sdk.ApplyRequest, ev sdk.Events) *sdk.ApplyResponse {
			g, err := p.graph()
			if err != nil {
				return sdk.ApplyError(err)
			}
			a := req.Attributes
			u, err := g.mustUser(ctx, a.String("user"))
			if err != nil {
				return sdk.ApplyError(err)
			}
			// Before: what the plan saw (a read now may lag behind it).
			planned, ok := sdk.PrivateOf[passwordCheckpoint](req)
			if !ok || laterThan(u.LastPasswordChangeDateTime, planned.Before) {
				planned.Before = u.LastPasswordChangeDateTime
			}
			// The evidence is recorded before the write: killed right after
			// it, the next plan still knows what "changed" means.
			b, _ := json.Marshal(passwordCheckpoint{Before: planned.Before, Sent: time.Now().UTC()})
			if err := ev.Checkpoint(ctx, b); err != nil {
				return sdk.ApplyError(err)
			}
			pp := map[string]any{"password": a.String("password"), "forceChangePasswordNextSignIn": a.Has("force_change") && a.Bool("force_change")}
			if err := g.do(ctx, "PATCH", "/users/"+url.PathEscape(u.ID), nil, map[string]any{"passwordProfile": pp}, nil); err != nil {
				return sdk.ApplyError(p.gone(err, "user %q", u.UserPrincipalName))
			}
			return &sdk.ApplyResponse{Summary: "reset the password of " + u.UserPrincipalName}
		}}
}

// membership is one group or role a user is a direct member of.
type membership struct {
	Type        string `json:"@odata.type"`
	ID          string `json:"id"`
	DisplayName string `json:"displayName"`
}

// membershipAction removes a user from the memberships read lists
// (directory roles, groups): DELETE path(membership, user), 404 = done.
func (p *plugin) membershipAction(name, desc string, attr sdk.Attribute, what string,
	read func(ctx context.Context, g *graph, u *user, a sdk.Values) ([]membership, error), path func(m membership, u *user) string) *sdk.Action {
	look := func(ctx context.Context, a sdk.Values) (*graph, *user, []membership, error) {
		g, u, err := p.userOf(ctx, a)
		if err != nil {
			return nil, nil, nil, err
		}
		ms, err := read(ctx, g, u, a)
		return g, u, ms, err
	}
	return &sdk.Action{Name: name, Description: desc, Attributes: []sdk.Attribute{userAttr, attr}, GoneIsDone: true,
		PlanFunc: func(ctx context.Context, req *sdk.PlanRequest) *sdk.PlanResponse {
			_, u, ms, err := look(ctx, req.Attributes)
			if err != nil {
				return sdk.PlanError(err)
			}
			if len(ms) == 0 {
				return sdk.NoChangef("%s is in none of the %s", u.UserPrincipalName, what)
			}
			var names []string
			for _, m := range ms {
				names = append(names, m.DisplayName)
			}
			return sdk.Changef("remove %s from %s", u.UserPrincipalName, strings.Join(names, ", "))
		},
		ApplyFunc: func(ctx context.Context, req *sdk.ApplyRequest, ev sdk.Events) *sdk.ApplyResponse {
			g, u, ms, err := look(ctx, req.Attributes)
			if err != nil {
				return sdk.ApplyError(err)
			}
			for _, m := range ms {
				if err := g.do(ctx, "DELETE", path(m, u), nil, nil, nil); err != nil && statusOf(err) != http.StatusNotFound {
					return sdk.ApplyError(err)
				}
			}
			return &sdk.ApplyResponse{Summary: fmt.Sprintf("removed %s from %d %s", u.UserPrincipalName, len(ms), what)}
		}}
}

// named keeps the memberships named in names (all when names is empty).
func named(ms []membership, names []string) []membership {
	if len(names) == 0 {
		return ms
	}
	want := map[string]bool{}
	for _, n := range names {
		want[strings.ToLower(n)] = true
	}
	var out []membership
	for _, m := range ms {
		if want[strings.ToLower(m.DisplayName)] || want[strings.ToLower(m.ID)] {
			out = append(out, m)
		}
	}
	return out
}

func (p *plugin) removeRoles() *sdk.Action {
	return p.membershipAction("remove_roles", "Removes the user's directory role assignments (roleManagement/directory/roleAssignments; all, or of the named roles): Global Administrator and the like, also those scoped to an administrative unit.",
		sdk.Attribute{Name: "roles", Type: cty.List(cty.String), Description: "Role names (default: every role the user holds)."}, "roles",
		func(ctx context.Context, g *graph, u *user, a sdk.Values) ([]membership, error) {
			defs, err := listOf[membership](ctx, g, "/roleManagement/directory/roleDefinitions?$select=id,displayName", nil)
			if err != nil {
				return nil, err
			}
			name := map[string]string{}
			for _, d := range defs {
				name[d.ID] = d.DisplayName
			}
			type assignment struct {
				ID               string `json:"id"`
				RoleDefinitionID string `json:"roleDefinitionId"`
			}
			q := url.Values{"$filter": {"principalId eq " + quoteOData(u.ID)}}
			as, err := listOf[assignment](ctx, g, "/roleManagement/directory/roleAssignments?"+q.Encode(), nil)
			if err != nil {
				return nil, err
			}
			var in []membership
			for _, x := range as {
				n := name[x.RoleDefinitionID]
				if n == "" {
					n = x.RoleDefinitionID
				}
				in = append(in, membership{ID: x.ID, DisplayName: n})
			}
			return named(in, a.Strings("roles")), nil
		},
		func(m membership, u *user) string {
			return "/roleManagement/directory/roleAssignments/" + url.PathEscape(m.ID)
		})
}

// guestsFrom lists the tenant's guests whose mail is in one of domains
// (every guest with no domains).
func (g *graph) guestsFrom(ctx context.Context, domains []string) ([]user, error) {
	q := url.Values{"$filter": {"userType eq 'Guest'"}, "$select": {userSelect}, "$top": {"100"}}
	raws, err := g.all(ctx, "/users?"+q.Encode(), nil)
	if err != nil {
		return nil, err
	}
	var out []user
	for _, r := range raws {
		var u user
		if json.Unmarshal(r, &u) != nil {
			continue
		}
		if len(domains) == 0 {
			out = append(out, u)
			continue
		}
		for _, d := range domains {
			if strings.HasSuffix(strings.ToLower(u.Mail), "@"+strings.TrimPrefix(strings.ToLower(d), "@")) {
				out = append(out, u)
				break
			}
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Mail < out[j].Mail })
	return out, nil
}

func (p *plugin) removeGuests() *sdk.Action {
	pending := func(ctx context.Context, a sdk.Values) (*graph, []user, error) {
		g, err := p.graph()
		if err != nil {
			return nil, nil, err
		}
		guests, err := g.guestsFrom(ctx, a.Strings("domains"))
		if err != nil {
			return nil, nil, err
		}
		del := a.Has("delete") && a.Bool("delete")
		var todo []user
		for _, u := range guests {
			if del || u.enabled() {
				todo = append(todo, u)
			}
		}
		return g, todo, nil
	}
	verb := func(a sdk.Values) string {
		if a.Has("delete") && a.Bool("delete") {
			return "delete"
		}
		return "disable"
	}
	return &sdk.Action{Name: "remove_guests",
		Description: "Disables (or, with delete = true, deletes) the guest users whose mail is in the old provider's domains.",
		Attributes: []sdk.Attribute{
			{Name: "domains", Type: cty.List(cty.String), Required: true, Description: "The old provider's domains."},
			{Name: "delete", Type: cty.Bool, Description: "Delete the guests instead of disabling them (they stay restorable for 30 days)."},
		},
		PlanFunc: func(ctx context.Context, req *sdk.PlanRequest) *sdk.PlanResponse {
			_, todo, err := pending(ctx, req.Attributes)
			if err != nil {
				return sdk.PlanError(err)
			}
			if len(todo) == 0 {
				return sdk.NoChangef("every guest of %s is %sd", strings.Join(req.Attributes.Strings("domains"), ", "), verb(req.Attributes))
			}
			r := sdk.Changef("%s %d guests of %s", verb(req.Attributes), len(todo), strings.Join(req.Attributes.Strings("domains"), ", "))
			for _, u := range todo {
				r.Details = append(r.Details, u.Mail+" ("+u.UserPrincipalName+")")
			}
			return r
		},
		ApplyFunc: func(ctx context.Context, req *sdk.ApplyRequest, ev sdk.Events) *sdk.ApplyResponse {
			g, todo, err := pending(ctx, req.Attributes)
			if err != nil {
				return sdk.ApplyError(err)
			}
			gone := 0
			for _, u := range todo {
				path := "/users/" + url.PathEscape(u.ID)
				if verb(req.Attributes) == "delete" {
					err = g.do(ctx, "DELETE", path, nil, nil, nil)
				} else {
					err = g.do(ctx, "PATCH", path, nil, map[string]any{"accountEnabled": false}, nil)
				}
				if statusOf(err) == http.StatusNotFound {
					gone++ // deleted since it was listed: done
					continue
				}
				if err != nil {
					return sdk.ApplyError(err)
				}
			}
			return &sdk.ApplyResponse{Summary: fmt.Sprintf("%sd %d guests%s", verb(req.Attributes), len(todo), alreadyGone(gone))}
		}}
}
