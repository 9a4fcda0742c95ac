package scim

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/zclconf/go-cty/cty"

	"github.com/switchover/switchover/plugins/sdk"
)

type plugin struct{ c sdk.Configured[*client] }

// New returns the scim plugin.
func New(version string) *sdk.Plugin {
	p := &plugin{c: sdk.Configured[*client]{Plugin: "scim"}}
	return &sdk.Plugin{
		Name:        "scim",
		Version:     version,
		Description: "SaaS applications over SCIM 2.0: find the old provider's users, deactivate or delete them, remove them from groups, list users and groups for the handover.",
		Config: []sdk.Attribute{
			{Name: "base_url", Type: cty.String, Required: true, Description: "The SCIM base URL, e.g. https://rmm.example.com/scim/v2 (https; plain http only on loopback)."},
			{Name: "token", Type: cty.String, Sensitive: true, Description: "Bearer token."},
			{Name: "username", Type: cty.String, Description: "Basic auth user (instead of a token)."},
			{Name: "password", Type: cty.String, Sensitive: true, Description: "Basic auth password."},
			{Name: "ca_file", Type: cty.String, Description: "PEM file of a CA to trust (default: the system's). Certificates are always verified."},
			{Name: "timeout", Type: sdk.DurationType, Description: "Timeout of one request (default 30s)."},
			{Name: "rate_limit", Type: cty.Number, Description: "Requests per second at most, fractions too (0.5: one every two seconds), shared by every step of this plugin block. Either way a 429 pauses every request for its Retry-After, and the requests that follow go slower."},
			{Name: "page_size", Type: cty.Number, Description: "Resources per page when listing (default 100)."},
		},
		ConfigureFunc: p.configure,
		TargetFunc: func(string, sdk.Values) string {
			c, err := p.c.Get()
			if err != nil {
				return ""
			}
			return "SCIM " + c.base.String()
		},
		Actions: []*sdk.Action{p.findUsers(), p.deactivate(), p.deleteUser(), p.removeMembers(), p.inventory()},
	}
}

func (p *plugin) configure(ctx context.Context, cfg sdk.Values) sdk.Diagnostics {
	timeout, diags := cfg.Duration("timeout", 30*time.Second)
	var auth string
	switch {
	case cfg.String("token") != "":
		auth = "Bearer " + cfg.String("token")
	case cfg.String("username") != "":
		auth = "Basic " + base64.StdEncoding.EncodeToString([]byte(cfg.String("username")+":"+cfg.String("password")))
	default:
		return append(diags, sdk.Diagnostic{Severity: sdk.Error, Summary: "No credentials", Detail: "Set token, or username and password."})
	}
	page := int(cfg.Int("page_size"))
	if page <= 0 {
		page = 100
	}
	rate := cfg.Float("rate_limit")
	if cfg.Has("rate_limit") && rate <= 0 {
		return append(diags, sdk.AttributeErrorf("rate_limit", "Invalid rate_limit", "rate_limit = %v: requests per second, more than 0 (0.5 is one request every two seconds)", rate)...)
	}
	c, err := newClient(cfg.String("base_url"), auth, cfg.String("ca_file"), timeout, rate, page)
	if err != nil {
		return append(diags, sdk.AttributeErrorf("base_url", "Invalid SCIM settings", "%v", err)...)
	}
	p.c.Set(c)
	return diags
}

func (p *plugin) client() (*client, error) { return p.c.Get() }

var foundType = cty.Object(map[string]cty.Type{"id": cty.String, "user_name": cty.String, "display_name": cty.String, "active": cty.Bool, "emails": cty.List(cty.String)})

func userValue(u *user) cty.Value {
	var emails []string
	for _, e := range u.Emails {
		emails = append(emails, e.Value)
	}
	return cty.ObjectVal(map[string]cty.Value{"id": cty.StringVal(u.ID), "user_name": cty.StringVal(u.UserName), "display_name": cty.StringVal(u.DisplayName),
		"active": cty.BoolVal(u.active()), "emails": sdk.StringList(emails)})
}

type email struct {
	Value   string `json:"value"`
	Type    string `json:"type"`
	Primary bool   `json:"primary"`
}

func inDomain(addr, domain string) bool {
	return strings.HasSuffix(strings.ToLower(addr), "@"+strings.ToLower(strings.TrimPrefix(domain, "@")))
}

// matchUser applies find_users' rules here (case-insensitive), also to
// what a server filtered: whether u is taken, and if it is a near miss
// (the old provider's domain is in one of its addresses, but the rules do
// not take it), why not.
//
// The e-mail rule is conservative: by default it looks at work addresses,
// addresses without a type and the primary one, not at aliases (type
// other, home); and a user who also has an address (or a userName) outside
// the old provider's domain may be the client's own with an alias of the
// old provider: not taken unless allow_other_domains.
func matchUser(a sdk.Values, u *user) (bool, string) {
	if s := a.String("user_name_suffix"); s != "" && !strings.HasSuffix(strings.ToLower(u.UserName), strings.ToLower(s)) {
		return false, ""
	}
	if a.Has("active") && a.Bool("active") != u.active() {
		return false, ""
	}
	d := a.String("email_domain")
	if d == "" {
		return true, ""
	}
	types := a.Strings("email_types")
	counts := func(e email) bool {
		if slices.Contains(types, "*") {
			return true
		}
		if len(types) == 0 {
			return e.Primary || e.Type == "" || strings.EqualFold(e.Type, "work")
		}
		return slices.ContainsFunc(types, func(t string) bool { return strings.EqualFold(t, e.Type) })
	}
	var hit, seen bool
	var other []string
	for _, e := range u.Emails {
		switch {
		case inDomain(e.Value, d) && counts(e):
			hit = true
		case inDomain(e.Value, d):
			seen = true
		default:
			other = append(other, e.Value)
		}
	}
	if strings.Contains(u.UserName, "@") && !inDomain(u.UserName, d) {
		other = append(other, "userName "+u.UserName)
	}
	switch {
	case !hit && seen:
		return false, fmt.Sprintf("its address in %s is only of a type email_types does not take (an alias)", d)
	case !hit:
		return false, ""
	case len(other) > 0 && !a.Bool("allow_other_domains"):
		return false, fmt.Sprintf("it also has %s, outside %s (allow_other_domains = true takes it)", strings.Join(other, ", "), d)
	}
	return true, ""
}

// serverFilter is the SCIM filter for find_users' criteria (wider than the
// rules: they are applied here to what it selects).
func serverFilter(a sdk.Values) string {
	var fs []string
	if f := a.String("filter"); f != "" {
		fs = append(fs, "("+f+")")
	}
	if s := a.String("user_name_suffix"); s != "" {
		fs = append(fs, "userName ew "+quote(s))
	}
	if d := a.String("email_domain"); d != "" {
		fs = append(fs, "emails.value ew "+quote("@"+strings.TrimPrefix(d, "@")))
	}
	if a.Has("active") {
		fs = append(fs, fmt.Sprintf("active eq %v", a.Bool("active")))
	}
	return strings.Join(fs, " and ")
}

// shortList names at most ten, and how many more.
func shortList(names []string) string {
	if len(names) > 10 {
		return strings.Join(names[:10], ", ") + fmt.Sprintf(" and %d more", len(names)-10)
	}
	return strings.Join(names, ", ")
}

func (p *plugin) findUsers() *sdk.Action {
	return sdk.ReadOnlyAction("find_users",
		"Finds users, changing nothing: by user_name_suffix, email_domain, active, or a SCIM filter; pages through the results. Where the server has no filters or refuses one, every user is listed (once per run) and filtered here; the rules are applied here either way. Outputs a map by userName for for_each.",
		[]sdk.Attribute{
			{Name: "user_name_suffix", Type: cty.String, Description: "userName ends with this, e.g. @oldmsp.example."},
			{Name: "email_domain", Type: cty.String, Description: "An address in this domain, of a type email_types takes; and no address (or userName) outside it unless allow_other_domains."},
			{Name: "email_types", Type: cty.List(cty.String), Description: `The types of address email_domain looks at (default: work, none given, and the primary address; ["*"]: every address, aliases included).`},
			{Name: "allow_other_domains", Type: cty.Bool, Description: "Also take a user who has an address or userName outside email_domain (default false: it may be the client's own account with an alias of the old provider; the plan names each)."},
			{Name: "active", Type: cty.Bool, Description: "Only active (true) or inactive (false) users."},
			{Name: "filter", Type: cty.String, Description: "A SCIM filter (RFC 7644 3.4.2.2), for servers that support filters."},
		},
		[]sdk.Output{{Name: "users", Type: cty.Map(foundType), Description: "By userName: id, user_name, display_name, active, emails."}, {Name: "count", Type: cty.Number}},
		func(ctx context.Context, a sdk.Values) (map[string]cty.Value, string, sdk.Diagnostics, error) {
			c, err := p.client()
			if err != nil {
				return nil, "", nil, err
			}
			filter := serverFilter(a)
			if filter == "" {
				return nil, "", nil, fmt.Errorf("give at least one criterion (user_name_suffix, email_domain, active, filter): find_users does not list every user")
			}
			raws, filtered, refused, err := c.search(ctx, filter)
			if err != nil {
				return nil, "", nil, err
			}
			var diags sdk.Diagnostics
			how := "filtered by the server and here"
			if !filtered {
				if a.String("filter") != "" {
					why := "its ServiceProviderConfig says it has no filters"
					if refused != nil {
						why = "it refused one: " + refused.Error()
					}
					return nil, "", nil, fmt.Errorf("the server does not take SCIM filters (%s): use user_name_suffix, email_domain and active, which are applied here", why)
				}
				how = "filtered here: the server has no filters"
				if refused != nil {
					how = "filtered here: the server refused the filter"
					diags = append(diags, sdk.Diagnostic{Severity: sdk.Warning, Summary: "The SCIM server refused a filter",
						Detail: fmt.Sprintf("%v. Every user is listed (once in this run) and filtered here.", refused)})
				}
			}
			users := map[string]cty.Value{}
			var names, near []string
			var found []*user
			for _, r := range raws {
				u, err := decodeUser(r)
				if err != nil {
					continue
				}
				ok, why := matchUser(a, u)
				if why != "" {
					near = append(near, fmt.Sprintf("%s (id %s): %s", u.UserName, u.ID, why))
				}
				if !ok {
					continue
				}
				users[u.UserName] = userValue(u)
				names = append(names, u.UserName)
				found = append(found, u)
			}
			c.remember(found, false)
			sort.Strings(names)
			if len(near) > 0 {
				sort.Strings(near)
				diags = append(diags, sdk.Diagnostic{Severity: sdk.Warning, Summary: fmt.Sprintf("%d near misses, not taken", len(near)),
					Detail: "Users with an address in the old provider's domain that the rules do not take (check each is the client's):\n" + strings.Join(near, "\n")})
			}
			outs := map[string]cty.Value{"users": cty.MapValEmpty(foundType), "count": cty.NumberIntVal(int64(len(names)))}
			if len(users) > 0 {
				outs["users"] = cty.MapVal(users)
			}
			summary := fmt.Sprintf("found %d users (%s): %s", len(names), how, shortList(names))
			if len(near) > 0 {
				summary += fmt.Sprintf("; %d near misses not taken", len(near))
			}
			return outs, summary, diags, nil
		})
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}

// private is what a plan hands its apply: the version it read, and for a
// group the members it takes out.
type private struct {
	ID      string   `json:"id"`
	Version string   `json:"version,omitempty"`
	Remove  []string `json:"remove,omitempty"`
}

// ifMatch is the If-Match header for a version (none without ETags).
func ifMatch(version string) http.Header {
	if version == "" {
		return nil
	}
	return http.Header{"If-Match": {version}}
}

// conflict turns 412 (the resource changed since it was read) into a
// conflict, which makes switchover plan again.
func conflict(err error, what string) error {
	if statusOf(err) == http.StatusPreconditionFailed {
		return sdk.Conflict("%s changed since the plan read it (If-Match failed): nothing was overwritten", what)
	}
	return err
}

var userAttr = sdk.Attribute{Name: "user", Type: cty.String, Required: true, Description: "The user: its id or userName (see by)."}

var byAttr = sdk.Attribute{Name: "by", Type: cty.String, Description: `What the user values are: "id" or "user_name" (default: either; a value that is one user's id and another's userName is refused as ambiguous). find_users' outputs give ids: by = "id" looks nothing up.`}

// lookupBy is the by attribute, checked.
func lookupBy(a sdk.Values) (string, error) {
	switch by := a.String("by"); by {
	case byID, byUserName, byEither:
		return by, nil
	default:
		return "", fmt.Errorf(`by = %q: "id" or "user_name"`, by)
	}
}

// findUserFor finds the user of a step's user attribute (nil: none).
func (p *plugin) findUserFor(ctx context.Context, a sdk.Values) (*client, *user, string, error) {
	c, err := p.client()
	if err != nil {
		return nil, nil, "", err
	}
	by, err := lookupBy(a)
	if err != nil {
		return nil, nil, "", err
	}
	u, how, err := c.findUser(ctx, a.String("user"), by)
	return c, u, how, err
}

func (p *plugin) deactivate() *sdk.Action {
	plan := func(ctx context.Context, req *sdk.PlanRequest) *sdk.PlanResponse {
		_, u, read, err := p.findUserFor(ctx, req.Attributes)
		if err != nil {
			return sdk.PlanError(err)
		}
		if u == nil {
			return sdk.PlanError(sdk.NotFound("user %q on the SCIM server", req.Attributes.String("user")))
		}
		if !u.active() {
			return sdk.NoChangef("%s is inactive", u.UserName)
		}
		r := sdk.Changef("deactivate %s (active = false)", u.UserName)
		r.Details = []string{fmt.Sprintf("id %s, version %s (%s)", u.ID, orNone(u.Meta.Version), read)}
		sdk.SetPrivate(r, private{ID: u.ID, Version: u.Meta.Version})
		return r
	}
	apply := func(ctx context.Context, req *sdk.ApplyRequest, ev sdk.Events) *sdk.ApplyResponse {
		c, err := p.client()
		if err != nil {
			return sdk.ApplyError(err)
		}
		pv, _ := sdk.PrivateOf[private](req)
		// What a listing read before this change is not what the verify
		// after it may take for the user (a saved plan's apply lists again).
		c.recentlyListed(pv.ID)
		c.recentlyListed(req.Attributes.String("user"))
		cfg, err := c.config(ctx)
		if err != nil {
			return sdk.ApplyError(err)
		}
		// The plan found the user: its id and version are what the change
		// is made against (a changed user fails If-Match: planned again). A
		// plan decided during apply looks it up here; a server without
		// PATCH (a PUT sends the whole user) has it read again.
		name := req.Attributes.String("user")
		u := &user{ID: pv.ID, UserName: name}
		version := pv.Version
		switch {
		case pv.ID == "":
			if _, u, _, err = p.findUserFor(ctx, req.Attributes); err == nil && u != nil {
				c.recentlyListed(u.ID)
				version = u.Meta.Version
			}
		case !cfg.Patch.Supported:
			u, err = c.getUser(ctx, pv.ID)
		}
		if err != nil {
			return sdk.ApplyError(err)
		}
		if u == nil {
			return sdk.ApplyError(sdk.NotFound("user %q on the SCIM server", name))
		}
		path := "/Users/" + url.PathEscape(u.ID)
		if cfg.Patch.Supported {
			op := map[string]any{"schemas": []string{"urn:ietf:params:scim:api:messages:2.0:PatchOp"},
				"Operations": []map[string]any{{"op": "replace", "path": "active", "value": false}}}
			_, err = c.do(ctx, "PATCH", path, ifMatch(version), op, nil)
		} else {
			body := u.raw
			body["active"] = false
			delete(body, "meta")
			_, err = c.do(ctx, "PUT", path, ifMatch(version), body, nil)
		}
		if statusOf(err) == http.StatusNotFound {
			// Deleted since the plan: nothing is left to deactivate.
			return sdk.ApplyError(sdk.NotFound("user %q on the SCIM server (deleted since the plan)", u.UserName))
		}
		if err != nil {
			return sdk.ApplyError(conflict(err, u.UserName))
		}
		return &sdk.ApplyResponse{Summary: "deactivated " + u.UserName}
	}
	return &sdk.Action{Name: "deactivate_user",
		Description: "Sets active = false (PATCH, or PUT where the server has no PATCH), with If-Match when the server gives ETags: a concurrent change is detected, not overwritten.",
		Attributes:  []sdk.Attribute{userAttr, byAttr}, PlanFunc: plan, ApplyFunc: apply, GoneIsDone: true}
}

func (p *plugin) deleteUser() *sdk.Action {
	plan := func(ctx context.Context, req *sdk.PlanRequest) *sdk.PlanResponse {
		_, u, _, err := p.findUserFor(ctx, req.Attributes)
		if err != nil {
			return sdk.PlanError(err)
		}
		if u == nil {
			return sdk.NoChangef("%s does not exist (deleted)", req.Attributes.String("user"))
		}
		r := sdk.Changef("delete %s", u.UserName)
		r.Details = []string{"id " + u.ID}
		sdk.SetPrivate(r, private{ID: u.ID, Version: u.Meta.Version})
		return r
	}
	apply := func(ctx context.Context, req *sdk.ApplyRequest, ev sdk.Events) *sdk.ApplyResponse {
		c, err := p.client()
		if err != nil {
			return sdk.ApplyError(err)
		}
		pv, _ := sdk.PrivateOf[private](req)
		if pv.ID == "" {
			_, u, _, err := p.findUserFor(ctx, req.Attributes)
			if err != nil {
				return sdk.ApplyError(err)
			}
			if u == nil {
				return &sdk.ApplyResponse{Summary: req.Attributes.String("user") + " does not exist (deleted)"}
			}
			pv = private{ID: u.ID, Version: u.Meta.Version}
		}
		_, err = c.do(ctx, "DELETE", "/Users/"+url.PathEscape(pv.ID), ifMatch(pv.Version), nil, nil)
		if statusOf(err) == http.StatusNotFound {
			err = nil // already deleted: done
		}
		if err != nil {
			return sdk.ApplyError(conflict(err, req.Attributes.String("user")))
		}
		return &sdk.ApplyResponse{Summary: "deleted " + req.Attributes.String("user")}
	}
	return &sdk.Action{Name: "delete_user", Description: "Deletes a user (If-Match with ETags); a user already gone counts as done.",
		Attributes: []sdk.Attribute{userAttr, byAttr}, PlanFunc: plan, ApplyFunc: apply, GoneIsDone: true}
}

type member struct {
	Value   string `json:"value"`
	Display string `json:"display,omitempty"`
	Type    string `json:"type,omitempty"`
	Ref     string `json:"$ref,omitempty"`
}

type group struct {
	ID          string   `json:"id"`
	DisplayName string   `json:"displayName"`
	Members     []member `json:"members"`
	Meta        struct {
		Version string `json:"version"`
	} `json:"meta"`
	raw map[string]any
}

func (c *client) getGroup(ctx context.Context, id string) (*group, error) {
	var raw json.RawMessage
	if _, err := c.do(ctx, "GET", "/Groups/"+url.PathEscape(id), nil, nil, &raw); err != nil {
		return nil, err
	}
	var g group
	if err := json.Unmarshal(raw, &g); err != nil {
		return nil, err
	}
	json.Unmarshal(raw, &g.raw)
	return &g, nil
}

// findGroup reads a group by displayName (a filtered search, or one
// listing on a server without filters; two groups of that name are refused
// as ambiguous), or else by id. The group is read by id in the end: some
// servers leave members out of listings.
func (c *client) findGroup(ctx context.Context, name string) (*group, error) {
	var raws []json.RawMessage
	ok, err := c.filters(ctx)
	if ok {
		raws, err = c.list(ctx, "Groups", "displayName eq "+quote(name))
		if err != nil && c.refusedFilter(err) {
			ok = false
		}
	}
	if !ok && err == nil {
		raws, err = c.list(ctx, "Groups", "")
	}
	if err != nil {
		return nil, err
	}
	var ids []string
	for _, r := range raws {
		var g group
		if json.Unmarshal(r, &g) == nil && g.DisplayName == name {
			ids = append(ids, g.ID)
		}
	}
	switch len(ids) {
	case 0:
		g, err := c.getGroup(ctx, name)
		if noSuchID(err) {
			return nil, sdk.NotFound("group %q on the SCIM server", name)
		}
		return g, err
	case 1:
		return c.getGroup(ctx, ids[0])
	}
	return nil, fmt.Errorf("%d groups are named %q (ids %s): ambiguous, nothing done; name the group by its id", len(ids), name, strings.Join(ids, ", "))
}

// memberTargets: the members of g that values name, looked up by the
// attribute by says, without a request per member (by = "id" compares
// ids; userNames are looked up together).
func (c *client) memberTargets(ctx context.Context, g *group, values []string, by string) ([]string, error) {
	isMember := map[string]bool{}
	for _, m := range g.Members {
		isMember[m.Value] = true
	}
	var named map[string][]string
	if by != byID {
		var err error
		if named, err = c.idsNamedMany(ctx, values); err != nil {
			return nil, err
		}
	}
	seen := map[string]bool{}
	var out []string
	for _, v := range values {
		ids := named[strings.ToLower(v)]
		if len(ids) > 1 {
			return nil, fmt.Errorf("%d users have the userName %q (ids %s): ambiguous, nothing done", len(ids), v, strings.Join(ids, ", "))
		}
		var id string
		switch {
		case by != byUserName && isMember[v] && len(ids) == 1 && ids[0] != v:
			return nil, fmt.Errorf("%q is the id of a member of %s and the userName of another user (id %s): ambiguous, nothing done; say which with by = \"id\" or by = \"user_name\"", v, g.DisplayName, ids[0])
		case by != byUserName && isMember[v]:
			id = v
		case len(ids) == 1 && isMember[ids[0]]:
			id = ids[0]
		}
		if id != "" && !seen[id] {
			seen[id] = true
			out = append(out, id)
		}
	}
	return out, nil
}

func (p *plugin) removeMembers() *sdk.Action {
	read := func(ctx context.Context, a sdk.Values) (*client, *group, []string, error) {
		c, err := p.client()
		if err != nil {
			return nil, nil, nil, err
		}
		by, err := lookupBy(a)
		if err != nil {
			return nil, nil, nil, err
		}
		g, err := c.findGroup(ctx, a.String("group"))
		if err != nil {
			return nil, nil, nil, err
		}
		remove, err := c.memberTargets(ctx, g, a.Strings("members"), by)
		return c, g, remove, err
	}
	plan := func(ctx context.Context, req *sdk.PlanRequest) *sdk.PlanResponse {
		_, g, remove, err := read(ctx, req.Attributes)
		if err != nil {
			return sdk.PlanError(err)
		}
		if len(remove) == 0 {
			return sdk.NoChangef("none of them is a member of %s", g.DisplayName)
		}
		r := sdk.Changef("remove %d members from %s", len(remove), g.DisplayName)
		r.Details = remove
		sdk.SetPrivate(r, private{ID: g.ID, Version: g.Meta.Version, Remove: remove})
		return r
	}
	apply := func(ctx context.Context, req *sdk.ApplyRequest, ev sdk.Events) *sdk.ApplyResponse {
		c, err := p.client()
		if err != nil {
			return sdk.ApplyError(err)
		}
		cfg, err := c.config(ctx)
		if err != nil {
			return sdk.ApplyError(err)
		}
		pv, _ := sdk.PrivateOf[private](req)
		name := req.Attributes.String("group")
		if pv.ID == "" {
			// Planned during apply: read the group now.
			_, g, remove, err := read(ctx, req.Attributes)
			if err != nil {
				return sdk.ApplyError(err)
			}
			pv, name = private{ID: g.ID, Version: g.Meta.Version, Remove: remove}, g.DisplayName
		}
		if len(pv.Remove) == 0 {
			return &sdk.ApplyResponse{Summary: "no member to remove from " + name}
		}
		if cfg.Patch.Supported {
			err = c.patchOutMembers(ctx, pv)
		} else {
			err = c.putOutMembers(ctx, pv.ID, pv.Remove)
		}
		if statusOf(err) == http.StatusNotFound {
			return sdk.ApplyError(sdk.NotFound("group %q on the SCIM server (deleted since the plan)", name))
		}
		if err != nil {
			return sdk.ApplyError(conflict(err, "group "+name))
		}
		return &sdk.ApplyResponse{Summary: fmt.Sprintf("removed %d members from %s", len(pv.Remove), name)}
	}
	return &sdk.Action{Name: "remove_group_members",
		Description: "Removes members (user ids or userNames, see by) from a group: the group is read once and the members compared with them; one PATCH (If-Match with ETags), or where the server has no PATCH the whole group PUT back without them, read again under If-Match.",
		Attributes: []sdk.Attribute{
			{Name: "group", Type: cty.String, Required: true, Description: "The group's id or displayName."},
			{Name: "members", Type: cty.List(cty.String), Required: true, Description: "User ids or userNames (see by)."},
			byAttr,
		}, PlanFunc: plan, ApplyFunc: apply, GoneIsDone: true}
}

// patchOutMembers removes the planned members in one PATCH, against the
// version the plan read (a change since is a conflict: planned again).
func (c *client) patchOutMembers(ctx context.Context, pv private) error {
	var ops []map[string]any
	for _, id := range pv.Remove {
		ops = append(ops, map[string]any{"op": "remove", "path": fmt.Sprintf("members[value eq %s]", quote(id))})
	}
	body := map[string]any{"schemas": []string{"urn:ietf:params:scim:api:messages:2.0:PatchOp"}, "Operations": ops}
	_, err := c.do(ctx, "PATCH", "/Groups/"+url.PathEscape(pv.ID), ifMatch(pv.Version), body, nil)
	return err
}

// putOutMembers PUTs the group back without the members: read again, and
// sent with If-Match on that read; someone's change in between (412) is
// read again, a few times, and never overwritten.
func (c *client) putOutMembers(ctx context.Context, id string, remove []string) error {
	for attempt := 0; ; attempt++ {
		g, err := c.getGroup(ctx, id)
		if err != nil {
			return err
		}
		var keep []member
		for _, m := range g.Members {
			if !slices.Contains(remove, m.Value) {
				keep = append(keep, m)
			}
		}
		if len(keep) == len(g.Members) {
			return nil
		}
		body := g.raw
		delete(body, "meta")
		body["members"] = keep
		if keep == nil {
			body["members"] = []member{}
		}
		_, err = c.do(ctx, "PUT", "/Groups/"+url.PathEscape(id), ifMatch(g.Meta.Version), body, nil)
		if statusOf(err) != http.StatusPreconditionFailed || attempt == 4 {
			return err
		}
	}
}

func (p *plugin) inventory() *sdk.Action {
	userRow := cty.Object(map[string]cty.Type{"user_name": cty.String, "active": cty.Bool})
	groupRow := cty.Object(map[string]cty.Type{"display_name": cty.String, "members": cty.Number})
	return sdk.ReadOnlyAction("inventory", "Lists users (userName, active) and groups (displayName, member count) for the handover, changing nothing.", nil,
		[]sdk.Output{{Name: "users", Type: cty.List(userRow)}, {Name: "groups", Type: cty.List(groupRow)}},
		func(ctx context.Context, a sdk.Values) (map[string]cty.Value, string, sdk.Diagnostics, error) {
			c, err := p.client()
			if err != nil {
				return nil, "", nil, err
			}
			ur, err := c.list(ctx, "Users", "")
			if err != nil {
				return nil, "", nil, err
			}
			gr, err := c.list(ctx, "Groups", "")
			if err != nil {
				return nil, "", nil, err
			}
			var users, groups []cty.Value
			active := 0
			for _, r := range ur {
				if u, err := decodeUser(r); err == nil {
					users = append(users, cty.ObjectVal(map[string]cty.Value{"user_name": cty.StringVal(u.UserName), "active": cty.BoolVal(u.active())}))
					if u.active() {
						active++
					}
				}
			}
			for _, r := range gr {
				var g group
				if json.Unmarshal(r, &g) == nil {
					groups = append(groups, cty.ObjectVal(map[string]cty.Value{"display_name": cty.StringVal(g.DisplayName), "members": cty.NumberIntVal(int64(len(g.Members)))}))
				}
			}
			list := func(t cty.Type, vs []cty.Value) cty.Value {
				if len(vs) == 0 {
					return cty.ListValEmpty(t)
				}
				return cty.ListVal(vs)
			}
			return map[string]cty.Value{"users": list(userRow, users), "groups": list(groupRow, groups)},
				fmt.Sprintf("%d users (%d active), %d groups", len(users), active, len(groups)), nil, nil
		})
}
