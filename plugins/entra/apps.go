package entra

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strings"

	"github.com/zclconf/go-cty/cty"

	"github.com/switchover/switchover/plugins/sdk"
)

// microsoftTenant owns Microsoft's own first-party apps.
const microsoftTenant = "f8cdef31-a31e-4b4a-93e4-5f571e91255a"

type servicePrincipal struct {
	ID                     string `json:"id"`
	AppID                  string `json:"appId"`
	DisplayName            string `json:"displayName"`
	AppOwnerOrganizationID string `json:"appOwnerOrganizationId"`
}

type grant struct {
	ID    string `json:"id"`
	Scope string `json:"scope"`
}

// app is a service principal with what it may do in the tenant.
type app struct {
	servicePrincipal
	grants   []grant
	appRoles int
}

func (a app) describe() string {
	var scopes []string
	for _, g := range a.grants {
		scopes = append(scopes, strings.Fields(g.Scope)...)
	}
	sort.Strings(scopes)
	return fmt.Sprintf("%s (appId %s, owner tenant %s): delegated %s; %d app role assignments", a.DisplayName, a.AppID, a.AppOwnerOrganizationID,
		orNone(strings.Join(scopes, " ")), a.appRoles)
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}

func (g *graph) servicePrincipals(ctx context.Context) ([]servicePrincipal, error) {
	return listOf[servicePrincipal](ctx, g, "/servicePrincipals?$select=id,appId,displayName,appOwnerOrganizationId", nil)
}

// permissions reads what a service principal was granted.
func (g *graph) permissions(ctx context.Context, sp servicePrincipal) (app, error) {
	a := app{servicePrincipal: sp}
	q := url.Values{"$filter": {"clientId eq " + quoteOData(sp.ID)}}
	raws, err := g.all(ctx, "/oauth2PermissionGrants?"+q.Encode(), nil)
	if err != nil {
		return a, err
	}
	for _, r := range raws {
		var gr grant
		if json.Unmarshal(r, &gr) == nil {
			a.grants = append(a.grants, gr)
		}
	}
	assigns, err := g.all(ctx, "/servicePrincipals/"+url.PathEscape(sp.ID)+"/appRoleAssignments", nil)
	if err != nil {
		return a, err
	}
	a.appRoles = len(assigns)
	return a, nil
}

func (p *plugin) removeServicePrincipals() *sdk.Action {
	read := func(ctx context.Context, a sdk.Values) (*graph, []app, error) {
		g, err := p.graph()
		if err != nil {
			return nil, nil, err
		}
		owners := map[string]bool{}
		for _, t := range a.Strings("owner_tenant_ids") {
			owners[strings.ToLower(t)] = true
		}
		if len(owners) == 0 {
			return nil, nil, fmt.Errorf("give owner_tenant_ids: the old provider's tenant ID(s)")
		}
		sps, err := g.servicePrincipals(ctx)
		if err != nil {
			return nil, nil, err
		}
		var out []app
		for _, sp := range sps {
			if !owners[strings.ToLower(sp.AppOwnerOrganizationID)] {
				continue
			}
			ap, err := g.permissions(ctx, sp)
			if err != nil {
				return nil, nil, err
			}
			out = append(out, ap)
		}
		sort.Slice(out, func(i, j int) bool { return out[i].DisplayName < out[j].DisplayName })
		return g, out, nil
	}
	return &sdk.Action{Name: "remove_service_principals",
		Description: "Removes the old provider's multi-tenant apps from the tenant (service principals whose appOwnerOrganizationId is its tenant), with their delegated permission grants; the plan lists each with its permissions.",
		Attributes:  []sdk.Attribute{{Name: "owner_tenant_ids", Type: cty.List(cty.String), Required: true, Description: "The old provider's tenant ID(s)."}},
		PlanFunc: func(ctx context.Context, req *sdk.PlanRequest) *sdk.PlanResponse {
			_, apps, err := read(ctx, req.Attributes)
			if err != nil {
				return sdk.PlanError(err)
			}
			if len(apps) == 0 {
				return sdk.NoChangef("no app of %s is in the tenant", strings.Join(req.Attributes.Strings("owner_tenant_ids"), ", "))
			}
			r := sdk.Changef("remove %d apps of the old provider", len(apps))
			for _, a := range apps {
				r.Details = append(r.Details, a.describe())
			}
			return r
		},
		ApplyFunc: func(ctx context.Context, req *sdk.ApplyRequest, ev sdk.Events) *sdk.ApplyResponse {
			g, apps, err := read(ctx, req.Attributes)
			if err != nil {
				return sdk.ApplyError(err)
			}
			gone := 0
			for _, a := range apps {
				for _, gr := range a.grants {
					if err := g.do(ctx, "DELETE", "/oauth2PermissionGrants/"+url.PathEscape(gr.ID), nil, nil, nil); err != nil && statusOf(err) != http.StatusNotFound {
						return sdk.ApplyError(err)
					}
				}
				err := g.do(ctx, "DELETE", "/servicePrincipals/"+url.PathEscape(a.ID), nil, nil, nil)
				if statusOf(err) == http.StatusNotFound {
					gone++ // deleted since the plan: done
					continue
				}
				if err != nil {
					return sdk.ApplyError(err)
				}
			}
			return &sdk.ApplyResponse{Summary: fmt.Sprintf("removed %d apps of the old provider%s", len(apps), alreadyGone(gone))}
		}}
}

func (p *plugin) inventory() *sdk.Action {
	return sdk.ReadOnlyAction("inventory",
		"Reads the tenant's facts for the handover, changing nothing: domains, licences, directory role members, guests, the service principals of other tenants with their permissions, and the Conditional Access policies.",
		nil,
		[]sdk.Output{
			{Name: "domains", Type: cty.List(cty.String), Description: "Verified domains."},
			{Name: "role_members", Type: cty.Map(cty.List(cty.String)), Description: "Role name -> member UPNs."},
			{Name: "guests", Type: cty.List(cty.String), Description: "Guests' mail addresses."},
			{Name: "foreign_apps", Type: cty.List(cty.String), Description: "Service principals of other tenants than this one and Microsoft's, with their permissions."},
			{Name: "licenses", Type: cty.List(cty.String), Description: "Subscribed SKUs: \"PART_NUMBER: N in use (status)\"."},
			{Name: "conditional_access", Type: cty.List(cty.String), Description: "Conditional Access policies: \"name: state\" (empty with a warning where the app may not read them)."},
		},
		func(ctx context.Context, a sdk.Values) (map[string]cty.Value, string, sdk.Diagnostics, error) {
			g, err := p.graph()
			if err != nil {
				return nil, "", nil, err
			}
			var domains []string
			raws, err := g.all(ctx, "/domains", nil)
			if err != nil {
				return nil, "", nil, err
			}
			for _, r := range raws {
				var d struct {
					ID         string `json:"id"`
					IsVerified bool   `json:"isVerified"`
				}
				if json.Unmarshal(r, &d) == nil && d.IsVerified {
					domains = append(domains, d.ID)
				}
			}
			roles, err := g.roles(ctx)
			if err != nil {
				return nil, "", nil, err
			}
			members := map[string]cty.Value{}
			for _, r := range roles {
				var upns []string
				for _, m := range r.Members {
					if u, err := g.getUser(ctx, m.ID); err == nil && u != nil {
						upns = append(upns, u.UserPrincipalName)
					}
				}
				sort.Strings(upns)
				members[r.DisplayName] = sdk.StringList(upns)
			}
			guestUsers, err := g.guestsFrom(ctx, nil)
			if err != nil {
				return nil, "", nil, err
			}
			var guests []string
			for _, u := range guestUsers {
				guests = append(guests, u.Mail)
			}
			sps, err := g.servicePrincipals(ctx)
			if err != nil {
				return nil, "", nil, err
			}
			tenant := strings.ToLower(p.tenant)
			var foreign []string
			for _, sp := range sps {
				owner := strings.ToLower(sp.AppOwnerOrganizationID)
				if owner == "" || owner == tenant || owner == microsoftTenant {
					continue
				}
				ap, err := g.permissions(ctx, sp)
				if err != nil {
					return nil, "", nil, err
				}
				foreign = append(foreign, ap.describe())
			}
			sort.Strings(foreign)
			var diags sdk.Diagnostics
			// 403: the app lacks the permission (a warning naming it); a 401
			// is a sign-in that failed (even after a fresh token): an error.
			readable := func(what, grant string, err error) error {
				if statusOf(err) == http.StatusForbidden {
					diags = append(diags, sdk.Warnf("The "+what+" are not readable", "Grant the app %s to read them (%v).", grant, err))
					return nil
				}
				return err
			}
			type sku struct {
				SkuPartNumber    string `json:"skuPartNumber"`
				ConsumedUnits    int    `json:"consumedUnits"`
				CapabilityStatus string `json:"capabilityStatus"`
			}
			skus, err := listOf[sku](ctx, g, "/subscribedSkus?$select=skuPartNumber,consumedUnits,capabilityStatus", nil)
			if err = readable("licences (subscribedSkus)", "Organization.Read.All", err); err != nil {
				return nil, "", nil, err
			}
			var licenses []string
			for _, k := range skus {
				licenses = append(licenses, fmt.Sprintf("%s: %d in use (%s)", k.SkuPartNumber, k.ConsumedUnits, k.CapabilityStatus))
			}
			sort.Strings(licenses)
			type policy struct {
				DisplayName string `json:"displayName"`
				State       string `json:"state"`
			}
			pols, err := listOf[policy](ctx, g, "/identity/conditionalAccess/policies?$select=displayName,state", nil)
			if err = readable("Conditional Access policies", "Policy.Read.All", err); err != nil {
				return nil, "", nil, err
			}
			var ca []string
			for _, p := range pols {
				ca = append(ca, p.DisplayName+": "+p.State)
			}
			sort.Strings(ca)
			rm := cty.MapValEmpty(cty.List(cty.String))
			if len(members) > 0 {
				rm = cty.MapVal(members)
			}
			outs := map[string]cty.Value{"domains": sdk.StringList(domains), "role_members": rm, "guests": sdk.StringList(guests), "foreign_apps": sdk.StringList(foreign),
				"licenses": sdk.StringList(licenses), "conditional_access": sdk.StringList(ca)}
			return outs, fmt.Sprintf("read the tenant: %d domains, %d licences, %d roles, %d guests, %d apps of other tenants, %d Conditional Access policies",
				len(domains), len(licenses), len(roles), len(guests), len(foreign), len(ca)), diags, nil
		})
}

type credential struct {
	KeyID       string `json:"keyId"`
	DisplayName string `json:"displayName"`
	EndDateTime string `json:"endDateTime"`
}

type application struct {
	ID                  string            `json:"id"`
	AppID               string            `json:"appId"`
	DisplayName         string            `json:"displayName"`
	PasswordCredentials []credential      `json:"passwordCredentials"`
	KeyCredentials      []json.RawMessage `json:"keyCredentials"`
}

func (p *plugin) appCredentials() *sdk.Action {
	type plan struct {
		app       application
		passwords []credential
		keys      []credential // to remove
		keep      []json.RawMessage
	}
	read := func(ctx context.Context, a sdk.Values) (*graph, []plan, error) {
		g, err := p.graph()
		if err != nil {
			return nil, nil, err
		}
		match := strings.ToLower(a.String("display_name_contains"))
		ids := map[string]bool{}
		for _, k := range a.Strings("key_ids") {
			ids[strings.ToLower(k)] = true
		}
		if match == "" && len(ids) == 0 {
			return nil, nil, fmt.Errorf("give display_name_contains or key_ids: the credentials the old provider made")
		}
		hit := func(c credential) bool {
			return ids[strings.ToLower(c.KeyID)] || (match != "" && strings.Contains(strings.ToLower(c.DisplayName), match))
		}
		raws, err := g.all(ctx, "/applications?$select=id,appId,displayName,passwordCredentials,keyCredentials", nil)
		if err != nil {
			return nil, nil, err
		}
		only := map[string]bool{}
		for _, n := range a.Strings("applications") {
			only[strings.ToLower(n)] = true
		}
		var out []plan
		for _, r := range raws {
			var ap application
			if json.Unmarshal(r, &ap) != nil {
				continue
			}
			if len(only) > 0 && !only[strings.ToLower(ap.DisplayName)] && !only[strings.ToLower(ap.AppID)] {
				continue
			}
			pl := plan{app: ap}
			for _, c := range ap.PasswordCredentials {
				if hit(c) {
					pl.passwords = append(pl.passwords, c)
				}
			}
			for _, raw := range ap.KeyCredentials {
				var c credential
				json.Unmarshal(raw, &c)
				if hit(c) {
					pl.keys = append(pl.keys, c)
				} else {
					pl.keep = append(pl.keep, raw)
				}
			}
			if len(pl.passwords)+len(pl.keys) > 0 {
				out = append(out, pl)
			}
		}
		return g, out, nil
	}
	return &sdk.Action{Name: "app_credentials",
		Description: "Removes the client secrets (removePassword) and certificates (the keyCredentials kept are written back) of app registrations that the old provider made: by display_name_contains (e.g. its name) or key_ids; optionally only in the named applications.",
		Attributes: []sdk.Attribute{
			{Name: "display_name_contains", Type: cty.String, Description: "Text in the credential's display name (e.g. \"oldmsp\")."},
			{Name: "key_ids", Type: cty.List(cty.String), Description: "keyIds of the credentials."},
			{Name: "applications", Type: cty.List(cty.String), Description: "Only these apps (display names or appIds; default: every app registration)."},
		},
		PlanFunc: func(ctx context.Context, req *sdk.PlanRequest) *sdk.PlanResponse {
			_, plans, err := read(ctx, req.Attributes)
			if err != nil {
				return sdk.PlanError(err)
			}
			if len(plans) == 0 {
				return sdk.NoChangef("no app registration has a matching secret or certificate")
			}
			var details []string
			n := 0
			for _, pl := range plans {
				for _, c := range pl.passwords {
					details = append(details, fmt.Sprintf("%s: secret %q (keyId %s, until %s)", pl.app.DisplayName, c.DisplayName, c.KeyID, c.EndDateTime))
				}
				for _, c := range pl.keys {
					details = append(details, fmt.Sprintf("%s: certificate %q (keyId %s, until %s)", pl.app.DisplayName, c.DisplayName, c.KeyID, c.EndDateTime))
				}
				n += len(pl.passwords) + len(pl.keys)
			}
			r := sdk.Changef("remove %d credentials from %d app registrations", n, len(plans))
			r.Details = details
			return r
		},
		ApplyFunc: func(ctx context.Context, req *sdk.ApplyRequest, ev sdk.Events) *sdk.ApplyResponse {
			g, plans, err := read(ctx, req.Attributes)
			if err != nil {
				return sdk.ApplyError(err)
			}
			gone := 0
			for _, pl := range plans {
				path := "/applications/" + url.PathEscape(pl.app.ID)
				for _, c := range pl.passwords {
					if err := g.do(ctx, "POST", path+"/removePassword", nil, map[string]any{"keyId": c.KeyID}, nil); err != nil && statusOf(err) != http.StatusNotFound {
						return sdk.ApplyError(err)
					}
				}
				if len(pl.keys) > 0 {
					keep := pl.keep
					if keep == nil {
						keep = []json.RawMessage{}
					}
					err := g.do(ctx, "PATCH", path, nil, map[string]any{"keyCredentials": keep}, nil)
					if statusOf(err) == http.StatusNotFound {
						gone++ // the app registration was deleted since the plan
						continue
					}
					if err != nil {
						return sdk.ApplyError(err)
					}
				}
			}
			return &sdk.ApplyResponse{Summary: fmt.Sprintf("removed the matching credentials of %d app registrations%s", len(plans), alreadyGone(gone))}
		}}
}

// alreadyGone says how many objects were deleted by someone else between
// the plan and the apply (done: nothing is left to remove).
func alreadyGone(n int) string {
	if n == 0 {
		return ""
	}
	return fmt.Sprintf(" (%d of them already gone)", n)
}
