package ad

import (
	"context"
	"fmt"
	"sort"
	"strings"

	"github.com/go-ldap/ldap/v3"
	"github.com/zclconf/go-cty/cty"

	"github.com/switchover/switchover/plugins/sdk"
)

// targetGroups are the groups remove_from_groups takes the account out of:
// the named ones and, with privileged = true, every privileged group.
func targetGroups(c *ldap.Conn, d *directory, a sdk.Values) ([]*group, error) {
	var out []*group
	if a.Has("privileged") && a.Bool("privileged") {
		gs, err := findPrivileged(c, d.info)
		if err != nil {
			return nil, err
		}
		out = append(out, gs...)
	}
	if a.Has("groups") {
		for _, name := range a.Strings("groups") {
			f, err := accountFilter(name)
			if err != nil {
				return nil, err
			}
			r, err := c.Search(ldap.NewSearchRequest(d.info.domainDN, ldap.ScopeWholeSubtree, ldap.NeverDerefAliases, 2, 0, false,
				"(&(objectClass=group)"+f+")", groupAttrs, nil))
			if err != nil {
				return nil, fmt.Errorf("looking up the group %s: %v", name, err)
			}
			if len(r.Entries) != 1 {
				return nil, fmt.Errorf("the domain has no single group %q", name)
			}
			out = append(out, groupFrom(r.Entries[0]))
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("set groups, or privileged = true")
	}
	return out, nil
}

// membership is where an account stands towards the target groups.
type membership struct {
	direct  []*group // removable: the account is in member
	nested  []string // paths through other groups, not removed
	primary *group   // its primary group is a target (changed by a person)
}

func readMembership(c *ldap.Conn, d *directory, acc *account, targets []*group) (*membership, error) {
	m := &membership{}
	bySID := map[string]*group{}
	for _, g := range targets {
		bySID[g.SID] = g
	}
	directDNs := map[string]bool{}
	for _, dn := range acc.MemberOf {
		directDNs[strings.ToLower(dn)] = true
	}
	for _, g := range targets {
		if directDNs[strings.ToLower(g.DN)] {
			m.direct = append(m.direct, g)
		}
	}
	if g := bySID[fmt.Sprintf("%s-%d", d.info.domainSID, acc.PrimaryGroupID)]; g != nil {
		m.primary = g
	}
	// Nested: a walk up memberOf from the account's groups (groups are few).
	type step struct {
		dn   string
		path []string
	}
	seen := map[string]bool{}
	queue := []step{}
	for _, dn := range acc.MemberOf {
		queue = append(queue, step{dn, []string{cnOf(dn)}})
	}
	targetDN := map[string]*group{}
	for _, g := range targets {
		targetDN[strings.ToLower(g.DN)] = g
	}
	for len(queue) > 0 && len(seen) < 5000 {
		s := queue[0]
		queue = queue[1:]
		if seen[strings.ToLower(s.dn)] {
			continue
		}
		seen[strings.ToLower(s.dn)] = true
		r, err := c.Search(ldap.NewSearchRequest(s.dn, ldap.ScopeBaseObject, ldap.NeverDerefAliases, 0, 0, false, "(objectClass=group)", []string{"memberOf"}, nil))
		if err != nil {
			if ldap.IsErrorWithCode(err, ldap.LDAPResultNoSuchObject) {
				continue
			}
			return nil, fmt.Errorf("reading the group %s: %v", s.dn, err)
		}
		for _, e := range r.Entries {
			for _, up := range e.GetAttributeValues("memberOf") {
				path := append(append([]string{}, s.path...), cnOf(up))
				if g := targetDN[strings.ToLower(up)]; g != nil {
					// The first target on the way is the path to report.
					m.nested = append(m.nested, strings.Join(path, " -> "))
					continue
				}
				queue = append(queue, step{up, path})
			}
		}
	}
	sort.Strings(m.nested)
	return m, nil
}

func (p *plugin) removeFromGroups() *sdk.Action {
	read := func(c *ldap.Conn, d *directory, a sdk.Values) (*account, *membership, error) {
		acc, err := findAccount(c, d.info, a.String("account"))
		if err != nil {
			return nil, nil, err
		}
		if err := notTheBindAccount(d, acc, "take out of groups"); err != nil {
			return nil, nil, err
		}
		targets, err := targetGroups(c, d, a)
		if err != nil {
			return nil, nil, err
		}
		m, err := readMembership(c, d, acc, targets)
		return acc, m, err
	}
	outputs := func(m *membership) map[string]cty.Value {
		return map[string]cty.Value{"nested": sdk.StringList(m.nested)}
	}
	leftOver := func(acc *account, m *membership) (sdk.Diagnostics, []string) {
		var diags sdk.Diagnostics
		var details []string
		for _, path := range m.nested {
			details = append(details, "stays a member through "+path+" (not removed: take the account out of the first group, or that group out of the next)")
		}
		if m.primary != nil {
			details = append(details, fmt.Sprintf("%s is its primary group (primaryGroupID): set another primary group by hand", m.primary.Name))
		}
		if len(details) > 0 {
			// For the new provider's checklist: a person must do it.
			diags = append(diags, sdk.LeftForPerson(acc.name()+" keeps memberships that are not direct", "%s", strings.Join(details, "; ")))
		}
		return diags, details
	}
	plan := func(ctx context.Context, d *directory, c *ldap.Conn, req *sdk.PlanRequest) *sdk.PlanResponse {
		acc, m, err := read(c, d, req.Attributes)
		if err != nil {
			return sdk.PlanError(err)
		}
		diags, left := leftOver(acc, m)
		if len(m.direct) == 0 {
			r := sdk.NoChangef("%s is in none of the groups directly", acc.name())
			r.Details, r.Diagnostics, r.Outputs = left, diags, outputs(m)
			return r
		}
		var names, dns []string
		for _, g := range m.direct {
			names = append(names, g.Name)
			dns = append(dns, g.DN)
		}
		r := sdk.Changef("remove %s from %s", acc.name(), strings.Join(names, ", "))
		for _, g := range m.direct {
			r.Details = append(r.Details, fmt.Sprintf("%s (%s): remove member %s", g.Name, g.SID, acc.DN))
		}
		r.Details = append(r.Details, left...)
		r.Diagnostics = diags
		r.Private = privateOf(targetPrivate{GUID: acc.GUID, Groups: dns})
		return r
	}
	apply := func(ctx context.Context, d *directory, c *ldap.Conn, req *sdk.ApplyRequest, ev sdk.Events) *sdk.ApplyResponse {
		acc, m, err := read(c, d, req.Attributes)
		if err != nil {
			return sdk.ApplyError(err)
		}
		t, err := sameObject(req.Private, acc)
		if err != nil {
			return sdk.ApplyError(err)
		}
		// Only groups the step targets now, and that the plan listed.
		allowed := map[string]bool{}
		for _, dn := range t.Groups {
			allowed[strings.ToLower(dn)] = true
		}
		if len(req.Private) == 0 {
			for _, g := range m.direct {
				allowed[strings.ToLower(g.DN)] = true
			}
		}
		var removed []string
		for _, g := range m.direct {
			if !allowed[strings.ToLower(g.DN)] {
				return sdk.ApplyError(sdk.Conflict("%s joined %s since the plan", acc.name(), g.Name))
			}
			mr := ldap.NewModifyRequest(g.DN, nil)
			mr.Delete("member", []string{acc.DN})
			err := c.Modify(mr)
			if err != nil && !ldap.IsErrorWithCode(err, ldap.LDAPResultNoSuchAttribute) && !ldap.IsErrorWithCode(err, ldap.LDAPResultUnwillingToPerform) {
				return sdk.ApplyError(fmt.Errorf("removing %s from %s: %v", acc.name(), g.Name, err))
			}
			removed = append(removed, g.Name)
		}
		// What is left, as the directory says now.
		if acc, m, err = read(c, d, req.Attributes); err != nil {
			return sdk.ApplyError(err)
		}
		diags, _ := leftOver(acc, m)
		return &sdk.ApplyResponse{Summary: fmt.Sprintf("removed %s from %s", acc.name(), strings.Join(removed, ", ")), Outputs: outputs(m), Diagnostics: diags}
	}
	return goneIsDone(p.action("remove_from_groups",
		"Removes an account's direct memberships in the named groups, or in every privileged group (found by well-known SID). Memberships through nested groups and a privileged primary group are reported, not removed.",
		[]sdk.Attribute{
			{Name: "account", Type: cty.String, Required: true, Description: "sAMAccountName, UPN, DN or SID."},
			{Name: "groups", Type: cty.List(cty.String), Description: "Groups by name, DN or SID."},
			{Name: "privileged", Type: cty.Bool, Description: "Every privileged group: Domain, Enterprise and Schema Admins, Administrators, Account/Server/Backup/Print Operators, Group Policy Creator Owners, Cert Publishers, Key Admins, DnsAdmins."},
		},
		[]sdk.Output{{Name: "nested", Type: cty.List(cty.String), Description: "Membership paths through other groups that remain."}},
		plan, apply))
}
