package scim

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"time"

	"github.com/zclconf/go-cty/cty"

	"github.com/switchover/switchover/plugins/sdk"
)

type plugin struct{ c *client }

// New returns the scim plugin.
func New(version string) *sdk.Plugin {
	p := &plugin{}
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
			{Name: "rate_limit", Type: cty.Number, Description: "Requests per second at most (default: no limit; 429 answers are honoured either way)."},
			{Name: "page_size", Type: cty.Number, Description: "Resources per page when listing (default 100)."},
		},
		ConfigureFunc: p.configure,
		TargetFunc: func(string, sdk.Values) string {
			if p.c == nil {
				return ""
			}
			return "SCIM " + p.c.base.String()
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
	var rate float64
	if cfg.Has("rate_limit") {
		rate = float64(cfg.Int("rate_limit"))
	}
	c, err := newClient(cfg.String("base_url"), auth, cfg.String("ca_file"), timeout, rate, page)
	if err != nil {
		return append(diags, sdk.AttributeErrorf("base_url", "Invalid SCIM settings", "%v", err)...)
	}
	p.c = c
	return diags
}

func (p *plugin) client() (*client, error) {
	if p.c == nil {
		return nil, fmt.Errorf("the scim plugin is not configured")
	}
	return p.c, nil
}

var foundType = cty.Object(map[string]cty.Type{"id": cty.String, "user_name": cty.String, "display_name": cty.String, "active": cty.Bool, "emails": cty.List(cty.String)})

func userValue(u *user) cty.Value {
	var emails []string
	for _, e := range u.Emails {
		emails = append(emails, e.Value)
	}
	return cty.ObjectVal(map[string]cty.Value{"id": cty.StringVal(u.ID), "user_name": cty.StringVal(u.UserName), "display_name": cty.StringVal(u.DisplayName),
		"active": cty.BoolVal(u.active()), "emails": sdk.StringList(emails)})
}

// matches is find_users' criteria, evaluated here when the server has no
// filter support.
func matches(a sdk.Values, u *user) bool {
	if s := a.String("user_name_suffix"); s != "" && !strings.HasSuffix(strings.ToLower(u.UserName), strings.ToLower(s)) {
		return false
	}
	if d := a.String("email_domain"); d != "" {
		ok := false
		for _, e := range u.Emails {
			if strings.HasSuffix(strings.ToLower(e.Value), "@"+strings.ToLower(strings.TrimPrefix(d, "@"))) {
				ok = true
			}
		}
		if !ok {
			return false
		}
	}
	if a.Has("active") && a.Bool("active") != u.active() {
		return false
	}
	return true
}

// serverFilter is the SCIM filter for find_users' criteria.
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

func (p *plugin) findUsers() *sdk.Action {
	return sdk.ReadOnlyAction("find_users",
		"Finds users, changing nothing: by user_name_suffix, email_domain, active, or a SCIM filter; pages through the results, and filters here when the server does not support filters. Outputs a map by userName for for_each.",
		[]sdk.Attribute{
			{Name: "user_name_suffix", Type: cty.String, Description: "userName ends with this, e.g. @oldmsp.example."},
			{Name: "email_domain", Type: cty.String, Description: "An email address in this domain."},
			{Name: "active", Type: cty.Bool, Description: "Only active (true) or inactive (false) users."},
			{Name: "filter", Type: cty.String, Description: "A SCIM filter (RFC 7644 3.4.2.2), for servers that support filters."},
		},
		[]sdk.Output{{Name: "users", Type: cty.Map(foundType), Description: "By userName: id, user_name, display_name, active, emails."}, {Name: "count", Type: cty.Number}},
		func(ctx context.Context, a sdk.Values) (map[string]cty.Value, string, sdk.Diagnostics, error) {
			c, err := p.client()
			if err != nil {
				return nil, "", nil, err
			}
			cfg, err := c.config(ctx)
			if err != nil {
				return nil, "", nil, err
			}
			filter := serverFilter(a)
			if filter == "" {
				return nil, "", nil, fmt.Errorf("give at least one criterion (user_name_suffix, email_domain, active, filter): find_users does not list every user")
			}
			var raws []json.RawMessage
			how := "filtered by the server"
			if cfg.Filter.Supported {
				raws, err = c.list(ctx, "Users", filter)
			} else {
				if a.String("filter") != "" {
					return nil, "", nil, fmt.Errorf("the server does not support SCIM filters (its ServiceProviderConfig says so): use user_name_suffix, email_domain and active, which are applied here")
				}
				raws, err = c.list(ctx, "Users", "")
				how = "filtered here: the server does not support filters"
			}
			if err != nil {
				return nil, "", nil, err
			}
			users := map[string]cty.Value{}
			var names []string
			var found []*user
			for _, r := range raws {
				u, err := decodeUser(r)
				if err != nil || !matches(a, u) {
					continue
				}
				users[u.UserName] = userValue(u)
				names = append(names, u.UserName)
				found = append(found, u)
			}
			c.remember(found)
			sort.Strings(names)
			outs := map[string]cty.Value{"users": cty.MapValEmpty(foundType), "count": cty.NumberIntVal(int64(len(names)))}
			if len(users) > 0 {
				outs["users"] = cty.MapVal(users)
			}
			shown := names
			if len(shown) > 10 {
				shown = append(append([]string{}, shown[:10]...), fmt.Sprintf("and %d more", len(names)-10))
			}
			return outs, fmt.Sprintf("found %d users (%s): %s", len(names), how, strings.Join(shown, ", ")), nil, nil
		})
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}

// private is what a plan hands its apply: the version it read.
type private struct {
	ID      string `json:"id"`
	Version string `json:"version,omitempty"`
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

var userAttr = sdk.Attribute{Name: "user", Type: cty.String, Required: true, Description: "The user's id or userName."}

func (p *plugin) deactivate() *sdk.Action {
	plan := func(ctx context.Context, req *sdk.PlanRequest) *sdk.PlanResponse {
		c, err := p.client()
		if err != nil {
			return sdk.PlanError(err)
		}
		name := req.Attributes.String("user")
		// Read by the find_users listing of this run, or now.
		u, read := c.recentlyListed(name), "as listed by find_users"
		if u == nil {
			read = "as read now"
			if u, err = c.findUser(ctx, name); err != nil {
				return sdk.PlanError(err)
			}
		}
		if u == nil {
			return sdk.PlanError(sdk.NotFound("user %q on the SCIM server", name))
		}
		if !u.active() {
			return sdk.NoChangef("%s is inactive", u.UserName)
		}
		r := sdk.Changef("deactivate %s (active = false)", u.UserName)
		r.Details = []string{fmt.Sprintf("id %s, version %s (%s)", u.ID, orNone(u.Meta.Version), read)}
		r.Private, _ = json.Marshal(private{ID: u.ID, Version: u.Meta.Version})
		return r
	}
	apply := func(ctx context.Context, req *sdk.ApplyRequest, ev sdk.Events) *sdk.ApplyResponse {
		c, err := p.client()
		if err != nil {
			return sdk.ApplyError(err)
		}
		var pv private
		json.Unmarshal(req.Private, &pv)
		// What a listing read before this change is not what the verify
		// after it may take for the user (a saved plan's apply lists again).
		c.recentlyListed(pv.ID)
		c.recentlyListed(req.Attributes.String("user"))
		cfg, err := c.config(ctx)
		if err != nil {
			return sdk.ApplyError(err)
		}
		// The plan read the user: its id and version are what the change is
		// made against (a changed user fails If-Match: planned again). A
		// plan decided during apply, or a server without PATCH (a PUT sends
		// the whole user), reads it here.
		u := &user{ID: pv.ID, UserName: req.Attributes.String("user")}
		version := pv.Version
		if pv.ID == "" || !cfg.Patch.Supported {
			if u, err = c.findUser(ctx, req.Attributes.String("user")); err != nil {
				return sdk.ApplyError(err)
			}
			if u == nil {
				return sdk.ApplyError(sdk.NotFound("user %q on the SCIM server", req.Attributes.String("user")))
			}
			if pv.ID != "" && pv.ID != u.ID {
				return sdk.ApplyError(sdk.Conflict("%s is another user than the one planned", u.UserName))
			}
			if pv.ID == "" {
				version = u.Meta.Version
			}
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
		Attributes:  []sdk.Attribute{userAttr}, PlanFunc: plan, ApplyFunc: apply, GoneIsDone: true}
}

func (p *plugin) deleteUser() *sdk.Action {
	plan := func(ctx context.Context, req *sdk.PlanRequest) *sdk.PlanResponse {
		c, err := p.client()
		if err != nil {
			return sdk.PlanError(err)
		}
		u, err := c.findUser(ctx, req.Attributes.String("user"))
		if err != nil {
			return sdk.PlanError(err)
		}
		if u == nil {
			return sdk.NoChangef("%s does not exist (deleted)", req.Attributes.String("user"))
		}
		r := sdk.Changef("delete %s", u.UserName)
		r.Details = []string{"id " + u.ID}
		r.Private, _ = json.Marshal(private{ID: u.ID, Version: u.Meta.Version})
		return r
	}
	apply := func(ctx context.Context, req *sdk.ApplyRequest, ev sdk.Events) *sdk.ApplyResponse {
		c, err := p.client()
		if err != nil {
			return sdk.ApplyError(err)
		}
		var pv private
		json.Unmarshal(req.Private, &pv)
		if pv.ID == "" {
			u, err := c.findUser(ctx, req.Attributes.String("user"))
			if err != nil || u == nil {
				return sdk.ApplyError(fmt.Errorf("finding %s: %v", req.Attributes.String("user"), err))
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
		Attributes: []sdk.Attribute{userAttr}, PlanFunc: plan, ApplyFunc: apply, GoneIsDone: true}
}

type group struct {
	ID          string `json:"id"`
	DisplayName string `json:"displayName"`
	Members     []struct {
		Value   string `json:"value"`
		Display string `json:"display"`
	} `json:"members"`
	Meta struct {
		Version string `json:"version"`
	} `json:"meta"`
}

func (c *client) findGroup(ctx context.Context, name string) (*group, error) {
	var g group
	_, err := c.do(ctx, "GET", "/Groups/"+url.PathEscape(name), nil, nil, &g)
	if err == nil {
		return &g, nil
	}
	if statusOf(err) != http.StatusNotFound {
		return nil, err
	}
	raws, err := c.list(ctx, "Groups", "")
	if err != nil {
		return nil, err
	}
	for _, r := range raws {
		var g group
		if json.Unmarshal(r, &g) == nil && g.DisplayName == name {
			return &g, nil
		}
	}
	return nil, sdk.NotFound("group %q on the SCIM server", name)
}

func (p *plugin) removeMembers() *sdk.Action {
	read := func(ctx context.Context, a sdk.Values) (*client, *group, []string, error) {
		c, err := p.client()
		if err != nil {
			return nil, nil, nil, err
		}
		g, err := c.findGroup(ctx, a.String("group"))
		if err != nil {
			return nil, nil, nil, err
		}
		want := map[string]bool{}
		for _, m := range a.Strings("members") {
			want[m] = true
			if u, err := c.findUser(ctx, m); err == nil && u != nil {
				want[u.ID] = true
			}
		}
		var remove []string
		for _, m := range g.Members {
			if want[m.Value] || (m.Display != "" && want[m.Display]) {
				remove = append(remove, m.Value)
			}
		}
		return c, g, remove, nil
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
		r.Private, _ = json.Marshal(private{ID: g.ID, Version: g.Meta.Version})
		return r
	}
	apply := func(ctx context.Context, req *sdk.ApplyRequest, ev sdk.Events) *sdk.ApplyResponse {
		c, g, remove, err := read(ctx, req.Attributes)
		if err != nil {
			return sdk.ApplyError(err)
		}
		var pv private
		json.Unmarshal(req.Private, &pv)
		version := pv.Version
		if pv.ID == "" {
			version = g.Meta.Version
		}
		var ops []map[string]any
		for _, id := range remove {
			ops = append(ops, map[string]any{"op": "remove", "path": fmt.Sprintf("members[value eq %s]", quote(id))})
		}
		body := map[string]any{"schemas": []string{"urn:ietf:params:scim:api:messages:2.0:PatchOp"}, "Operations": ops}
		if _, err := c.do(ctx, "PATCH", "/Groups/"+url.PathEscape(g.ID), ifMatch(version), body, nil); statusOf(err) == http.StatusNotFound {
			return sdk.ApplyError(sdk.NotFound("group %q on the SCIM server (deleted since the plan)", g.DisplayName))
		} else if err != nil {
			return sdk.ApplyError(conflict(err, "group "+g.DisplayName))
		}
		return &sdk.ApplyResponse{Summary: fmt.Sprintf("removed %d members from %s", len(remove), g.DisplayName)}
	}
	return &sdk.Action{Name: "remove_group_members",
		Description: "Removes members (user ids or userNames) from a group with PATCH remove members[value eq \"...\"] (If-Match with ETags).",
		Attributes: []sdk.Attribute{
			{Name: "group", Type: cty.String, Required: true, Description: "The group's id or displayName."},
			{Name: "members", Type: cty.List(cty.String), Required: true, Description: "User ids or userNames."},
		}, PlanFunc: plan, ApplyFunc: apply, GoneIsDone: true}
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
