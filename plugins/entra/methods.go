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

// methodKinds: the removable authentication methods, by the kind a runbook
// names, with their Graph type and the segment they are deleted through.
var methodKinds = map[string]struct{ odataType, segment string }{
	"phone":                   {"#microsoft.graph.phoneAuthenticationMethod", "phoneMethods"},
	"email":                   {"#microsoft.graph.emailAuthenticationMethod", "emailMethods"},
	"microsoft_authenticator": {"#microsoft.graph.microsoftAuthenticatorAuthenticationMethod", "microsoftAuthenticatorMethods"},
	"software_oath":           {"#microsoft.graph.softwareOathAuthenticationMethod", "softwareOathMethods"},
	"fido2":                   {"#microsoft.graph.fido2AuthenticationMethod", "fido2Methods"},
	"temporary_access_pass":   {"#microsoft.graph.temporaryAccessPassAuthenticationMethod", "temporaryAccessPassMethods"},
}

type method struct {
	Type        string `json:"@odata.type"`
	ID          string `json:"id"`
	PhoneNumber string `json:"phoneNumber"`
	Email       string `json:"emailAddress"`
	DisplayName string `json:"displayName"`
	kind        string
}

func (m method) describe() string {
	what := m.kind
	switch {
	case m.PhoneNumber != "":
		what += " " + m.PhoneNumber
	case m.Email != "":
		what += " " + m.Email
	case m.DisplayName != "":
		what += " " + m.DisplayName
	}
	return what
}

func (p *plugin) removeAuthMethods() *sdk.Action {
	read := func(ctx context.Context, a sdk.Values) (*graph, *user, []method, error) {
		g, u, err := p.userOf(ctx, a)
		if err != nil {
			return nil, nil, nil, err
		}
		want := map[string]bool{}
		for _, k := range a.Strings("kinds") {
			if _, ok := methodKinds[k]; !ok {
				return nil, nil, nil, fmt.Errorf("kinds: %q is not one of phone, email, microsoft_authenticator, software_oath, fido2, temporary_access_pass", k)
			}
			want[k] = true
		}
		raws, err := g.all(ctx, "/users/"+url.PathEscape(u.ID)+"/authentication/methods", nil)
		if err != nil {
			return nil, nil, nil, p.gone(err, "user %q", u.UserPrincipalName)
		}
		var out []method
		for _, r := range raws {
			var m method
			if json.Unmarshal(r, &m) != nil {
				continue
			}
			for k, mk := range methodKinds {
				if mk.odataType == m.Type && (len(want) == 0 || want[k]) {
					m.kind = k
					out = append(out, m)
				}
			}
		}
		sort.Slice(out, func(i, j int) bool { return out[i].describe() < out[j].describe() })
		return g, u, out, nil
	}
	return &sdk.Action{Name: "remove_auth_methods", GoneIsDone: true,
		Description: "Deletes the user's authentication methods (all removable ones, or kinds): the old provider's phone as MFA, its authenticator app, OATH tokens, FIDO2 keys, email and temporary access passes. The password stays.",
		Attributes: []sdk.Attribute{userAttr,
			{Name: "kinds", Type: cty.List(cty.String), Description: "phone, email, microsoft_authenticator, software_oath, fido2, temporary_access_pass (default: all)."}},
		PlanFunc: func(ctx context.Context, req *sdk.PlanRequest) *sdk.PlanResponse {
			_, u, ms, err := read(ctx, req.Attributes)
			if err != nil {
				return sdk.PlanError(err)
			}
			if len(ms) == 0 {
				return sdk.NoChangef("%s has none of these authentication methods", u.UserPrincipalName)
			}
			var d []string
			for _, m := range ms {
				d = append(d, m.describe())
			}
			r := sdk.Changef("remove %d authentication methods of %s: %s", len(ms), u.UserPrincipalName, strings.Join(d, ", "))
			r.Details = d
			return r
		},
		ApplyFunc: func(ctx context.Context, req *sdk.ApplyRequest, ev sdk.Events) *sdk.ApplyResponse {
			g, u, ms, err := read(ctx, req.Attributes)
			if err != nil {
				return sdk.ApplyError(err)
			}
			for _, m := range ms {
				path := "/users/" + url.PathEscape(u.ID) + "/authentication/" + methodKinds[m.kind].segment + "/" + url.PathEscape(m.ID)
				if err := g.do(ctx, "DELETE", path, nil, nil, nil); err != nil && statusOf(err) != http.StatusNotFound {
					return sdk.ApplyError(err)
				}
			}
			return &sdk.ApplyResponse{Summary: fmt.Sprintf("removed %d authentication methods of %s", len(ms), u.UserPrincipalName)}
		}}
}

func (p *plugin) removeGroups() *sdk.Action {
	return p.membershipAction("remove_groups", "Removes the user from groups (all its direct group memberships, or the named ones); directory roles are remove_roles' work.",
		sdk.Attribute{Name: "groups", Type: cty.List(cty.String), Description: "Group names or ids (default: every group)."}, "groups",
		func(ctx context.Context, g *graph, u *user, a sdk.Values) ([]membership, error) {
			raws, err := g.all(ctx, "/users/"+url.PathEscape(u.ID)+"/memberOf?$select=id,displayName", nil)
			if err != nil {
				return nil, p.gone(err, "user %q", u.UserPrincipalName)
			}
			var out []membership
			for _, r := range raws {
				var m membership
				if json.Unmarshal(r, &m) == nil && m.Type == "#microsoft.graph.group" {
					out = append(out, m) // directory roles: remove_roles
				}
			}
			return named(out, a.Strings("groups")), nil
		},
		func(m membership, u *user) string {
			return "/groups/" + url.PathEscape(m.ID) + "/members/" + url.PathEscape(u.ID) + "/$ref"
		})
}
