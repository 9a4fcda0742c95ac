package entra

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"

	"github.com/zclconf/go-cty/cty"

	"github.com/switchover/switchover/plugins/sdk"
)

// removal is one finding of the sweep to remove: how to look at it, and
// the one request that removes it (a DELETE, or for an exclusion a PATCH
// of the policy as the plan read it): killed at any moment, the target
// holds it or not, and a second look says which.
type removal struct {
	what string
	// look says whether it is still there (false: gone, done), with what
	// the apply must find unchanged (Private).
	look func(ctx context.Context) (bool, any, error)
	// remove removes it; planned is what look returned at the plan.
	remove func(ctx context.Context, planned []byte) error
}

func (p *plugin) removePersistence() *sdk.Action {
	get := func(req sdk.Values) (*graph, *removal, error) {
		g, err := p.graph()
		if err != nil {
			return nil, nil, err
		}
		r, err := p.removalOf(g, req.String("kind"), req.String("object"), req.String("value"))
		return g, r, err
	}
	return &sdk.Action{Name: "remove_persistence", GoneIsDone: true,
		Description: "Removes one finding of entra.find_persistence (for_each over its removable output): an inbox rule, a consent, a Conditional Access exclusion (the policy written back as read, without it), a cross-tenant partner setting, a Temporary Access Pass, an owner of an app or service principal, a federated identity credential, a service principal's client secret.",
		Attributes: []sdk.Attribute{
			{Name: "kind", Type: cty.String, Required: true, Description: "inbox_rule, consent, ca_exclusion, cross_tenant_partner, temporary_access_pass, app_owner, federated_credential, sp_secret, pim_eligible or pim_active (the finding's kind)."},
			{Name: "object", Type: cty.String, Required: true, Description: "The finding's object: the mailbox's user id, the grant's id, the policy's id, the tenant id, the user id, applications/ID or servicePrincipals/ID, the application's id, the service principal's id."},
			{Name: "value", Type: cty.String, Description: "The finding's value: the rule's id, the scope, excludeUsers:ID, excludeGroups:ID or excludeLocations:ID, the method's id, the owner's id, the credential's id, the secret's keyId, ROLE_DEFINITION_ID@SCOPE."},
		},
		PlanFunc: func(ctx context.Context, req *sdk.PlanRequest) *sdk.PlanResponse {
			_, r, err := get(req.Attributes)
			if err != nil {
				return sdk.PlanError(err)
			}
			there, planned, err := r.look(ctx)
			if err != nil {
				return sdk.PlanError(err)
			}
			if !there {
				return sdk.NoChangef("already gone: %s", r.what)
			}
			resp := sdk.Changef("remove %s", r.what)
			if planned != nil {
				sdk.SetPrivate(resp, planned)
			}
			return resp
		},
		ApplyFunc: func(ctx context.Context, req *sdk.ApplyRequest, ev sdk.Events) *sdk.ApplyResponse {
			_, r, err := get(req.Attributes)
			if err != nil {
				return sdk.ApplyError(err)
			}
			if err := r.remove(ctx, req.Private); err != nil {
				return sdk.ApplyError(err)
			}
			return &sdk.ApplyResponse{Summary: "removed " + r.what}
		}}
}

// removalOf is the removal of one finding.
func (p *plugin) removalOf(g *graph, kind, object, value string) (*removal, error) {
	del := func(path string) func(context.Context, []byte) error {
		return func(ctx context.Context, _ []byte) error {
			err := g.do(ctx, "DELETE", path, nil, nil, nil)
			if statusOf(err) == http.StatusNotFound {
				return sdk.NotFound("%s", path) // removed since the plan: done
			}
			return err
		}
	}
	switch kind {
	case kindInboxRule:
		return &removal{what: fmt.Sprintf("inbox rule %s of user %s", value, object),
			look: func(ctx context.Context) (bool, any, error) {
				rules, err := listOf[messageRule](ctx, g, rulesPath(object), nil)
				return hasID(rules, func(r messageRule) string { return r.ID }, value), nil, notFoundIsGone(err)
			}, remove: del(rulesPath(object) + "/" + url.PathEscape(value))}, nil
	case kindConsent:
		return &removal{what: fmt.Sprintf("consent %s (%s)", object, value),
			look: func(ctx context.Context) (bool, any, error) {
				grants, err := listOf[permissionGrant](ctx, g, "/oauth2PermissionGrants", nil)
				return hasID(grants, func(gr permissionGrant) string { return gr.ID }, object), nil, err
			}, remove: del("/oauth2PermissionGrants/" + url.PathEscape(object))}, nil
	case kindPartner:
		return &removal{what: "the cross-tenant partner setting for tenant " + object,
			look: func(ctx context.Context) (bool, any, error) {
				ps, err := listOf[partner](ctx, g, partnersPath, nil)
				return hasID(ps, func(x partner) string { return strings.ToLower(x.TenantID) }, strings.ToLower(object)), nil, err
			}, remove: del(partnersPath + "/" + url.PathEscape(object))}, nil
	case kindTAP:
		return &removal{what: fmt.Sprintf("Temporary Access Pass %s of user %s", value, object),
			look: func(ctx context.Context) (bool, any, error) {
				ms, err := listOf[method](ctx, g, tapPath(object), nil)
				return hasID(ms, func(m method) string { return m.ID }, value), nil, notFoundIsGone(err)
			}, remove: del(tapPath(object) + "/" + url.PathEscape(value))}, nil
	case kindCAExclusion:
		return p.caRemoval(g, object, value)
	case kindPIMEligible, kindPIMActive:
		return pimRemoval(g, kind, object, value)
	case kindAppOwner:
		set, id, _ := strings.Cut(object, "/")
		if set != "applications" && set != "servicePrincipals" {
			return nil, fmt.Errorf("object %q: applications/ID or servicePrincipals/ID", object)
		}
		path := "/" + set + "/" + url.PathEscape(id) + "/owners"
		return &removal{what: fmt.Sprintf("owner %s of %s", value, object),
			look: func(ctx context.Context) (bool, any, error) {
				type owner struct {
					ID string `json:"id"`
				}
				list, err := listOf[owner](ctx, g, path+"?$select=id", nil)
				return hasID(list, func(o owner) string { return o.ID }, value), nil, notFoundIsGone(err)
			}, remove: del(path + "/" + url.PathEscape(value) + "/$ref")}, nil
	case kindFedCred:
		path := "/applications/" + url.PathEscape(object) + "/federatedIdentityCredentials"
		return &removal{what: fmt.Sprintf("federated identity credential %s of application %s", value, object),
			look: func(ctx context.Context) (bool, any, error) {
				fs, err := listOf[ficred](ctx, g, path, nil)
				return hasID(fs, func(f ficred) string { return f.ID }, value), nil, notFoundIsGone(err)
			}, remove: del(path + "/" + url.PathEscape(value))}, nil
	case kindSPSecret:
		return &removal{what: fmt.Sprintf("client secret %s of service principal %s", value, object),
			look: func(ctx context.Context) (bool, any, error) {
				sps, err := listOf[spSecrets](ctx, g, "/servicePrincipals?$select=id,passwordCredentials", nil)
				for _, sp := range sps {
					if sp.ID == object {
						for _, c := range sp.PasswordCredentials {
							if c.KeyID == value {
								return true, nil, nil
							}
						}
					}
				}
				return false, nil, err
			},
			remove: func(ctx context.Context, _ []byte) error {
				err := g.do(ctx, "POST", "/servicePrincipals/"+url.PathEscape(object)+"/removePassword", nil, map[string]string{"keyId": value}, nil)
				if statusOf(err) == http.StatusNotFound {
					return sdk.NotFound("client secret %s of service principal %s", value, object)
				}
				return err
			}}, nil
	}
	return nil, sdk.AttributeErrorf("kind", "Invalid kind", "kind %q: inbox_rule, consent, ca_exclusion, cross_tenant_partner, temporary_access_pass, app_owner, federated_credential, sp_secret, pim_eligible or pim_active (federated domains are never removed by switchover)", kind).Err()
}

func hasID[T any](list []T, id func(T) string, want string) bool {
	for _, x := range list {
		if id(x) == want {
			return true
		}
	}
	return false
}

// notFoundIsGone: the object a listing hangs off is gone (its user was
// deleted): so is what it held.
func notFoundIsGone(err error) error {
	if statusOf(err) == http.StatusNotFound {
		return nil
	}
	return err
}

// caPlan is what the plan of an exclusion's removal read: the policy's
// version.
type caPlan struct {
	Modified string `json:"modified"`
}

// policyLocks serialises the writes of one policy in this process: two
// exclusions of one policy are two step instances.
var policyLocks sync.Map

// caRemoval removes one id from a policy's excludeUsers or excludeGroups:
// the policy's conditions written back whole (Graph replaces a complex
// property whole), with only that id taken out, and only if the policy is
// the version the plan read (else a conflict: planned again).
func (p *plugin) caRemoval(g *graph, policyID, value string) (*removal, error) {
	list, id, ok := strings.Cut(value, ":")
	if !ok || (list != "excludeUsers" && list != "excludeGroups" && list != "excludeLocations") {
		return nil, fmt.Errorf("value %q: excludeUsers:ID, excludeGroups:ID or excludeLocations:ID", value)
	}
	path := policiesPath + "/" + url.PathEscape(policyID)
	read := func(ctx context.Context) (*caPolicy, error) {
		var pol caPolicy
		err := g.do(ctx, "GET", path, nil, nil, &pol)
		if statusOf(err) == http.StatusNotFound {
			return nil, nil
		}
		return &pol, err
	}
	excludes := func(pol *caPolicy) bool {
		return pol != nil && hasID(pol.excluded(list), func(s string) string { return strings.ToLower(s) }, strings.ToLower(id))
	}
	return &removal{what: fmt.Sprintf("%s from the %s of Conditional Access policy %s", id, list, policyID),
		look: func(ctx context.Context) (bool, any, error) {
			pol, err := read(ctx)
			if err != nil || !excludes(pol) {
				return false, nil, err
			}
			return true, caPlan{Modified: pol.ModifiedDateTime}, nil
		},
		remove: func(ctx context.Context, planned []byte) error {
			mu, _ := policyLocks.LoadOrStore(policyID, &sync.Mutex{})
			mu.(*sync.Mutex).Lock()
			defer mu.(*sync.Mutex).Unlock()
			pol, err := read(ctx)
			if err != nil {
				return err
			}
			if !excludes(pol) {
				return sdk.NotFound("%s in the %s of policy %s", id, list, policyID)
			}
			if pp, ok := sdk.PrivateOf[caPlan](&sdk.ApplyRequest{Private: planned}); ok && pp.Modified != pol.ModifiedDateTime {
				return sdk.Conflict("Conditional Access policy %s changed since the plan read it (nothing was written)", policyID)
			}
			cond, _ := pol.Conditions[condition(list)].(map[string]any)
			var kept []any
			for _, x := range pol.excluded(list) {
				if !strings.EqualFold(x, id) {
					kept = append(kept, x)
				}
			}
			if kept == nil {
				kept = []any{}
			}
			cond[list] = kept
			return g.do(ctx, "PATCH", path, nil, map[string]any{"conditions": pol.Conditions}, nil)
		}}, nil
}

// pimRemoval removes a PIM schedule with an adminRemove request.
func pimRemoval(g *graph, kind, principal, value string) (*removal, error) {
	roleDef, scope, ok := strings.Cut(value, "@")
	if !ok {
		return nil, fmt.Errorf("value %q: ROLE_DEFINITION_ID@SCOPE", value)
	}
	k := pimKinds[0]
	if kind == kindPIMActive {
		k = pimKinds[1]
	}
	return &removal{what: fmt.Sprintf("the %s schedule of role %s (scope %s) of %s", strings.TrimPrefix(kind, "pim_"), roleDef, scope, principal),
		look: func(ctx context.Context) (bool, any, error) {
			q := url.Values{"$filter": {"principalId eq " + quoteOData(principal)}}
			scs, err := listOf[roleSchedule](ctx, g, "/roleManagement/directory/"+k.schedules+"?"+q.Encode(), nil)
			return hasID(scs, func(sc roleSchedule) string { return sc.RoleDefinitionID + "@" + sc.DirectoryScopeID }, value), nil, err
		},
		remove: func(ctx context.Context, _ []byte) error {
			body := map[string]any{"action": "adminRemove", "principalId": principal, "roleDefinitionId": roleDef, "directoryScopeId": scope,
				"justification": "switchover: the previous IT provider leaves the tenant"}
			err := g.do(ctx, "POST", "/roleManagement/directory/"+k.requests, nil, body, nil)
			var ge *graphError
			if errors.As(err, &ge) && ge.Code == "RoleAssignmentDoesNotExist" {
				return sdk.NotFound("the %s schedule of role %s of %s", strings.TrimPrefix(kind, "pim_"), roleDef, principal)
			}
			return err
		}}, nil
}
