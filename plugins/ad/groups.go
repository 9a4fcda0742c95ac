package ad

import (
	"context"
	"fmt"
	"sort"
	"strconv"
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
			g := groupFrom(r.Entries[0])
			if err := primaryRIDs(c, d.info, g); err != nil {
				return nil, err
			}
			out = append(out, g)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("set groups, or privileged = true")
	}
	return out, nil
}

// membership is where an account stands towards the target groups.
type membership struct {
	direct []*group // removable: the account is in member
	// nested are the paths through other groups (not removed), each
	// with the DN of the group it starts at.
	nested []nestedPath
	// primary is the target its primary group makes it a member of (the
	// group itself, or one it is nested in): the step changes the primary
	// group.
	primary *group
}

type nestedPath struct {
	first, path string
}

// surviving are the nested paths the step leaves: a path that starts at
// a group the step removes the account from goes with it.
func (m *membership) surviving() []string {
	removed := map[string]bool{}
	for _, g := range m.direct {
		removed[strings.ToLower(g.DN)] = true
	}
	var out []string
	for _, n := range m.nested {
		if !removed[strings.ToLower(n.first)] {
			out = append(out, n.path)
		}
	}
	return out
}

func readMembership(c *ldap.Conn, d *directory, acc *account, targets []*group) (*membership, error) {
	m := &membership{}
	directDNs := map[string]bool{}
	for _, dn := range acc.MemberOf {
		directDNs[strings.ToLower(dn)] = true
	}
	for _, g := range targets {
		if directDNs[strings.ToLower(g.DN)] {
			m.direct = append(m.direct, g)
		}
	}
	for _, g := range targets {
		for _, rid := range g.PrimaryRIDs {
			if rid == acc.PrimaryGroupID && m.primary == nil {
				m.primary = g
			}
		}
	}
	// Nested: a walk up memberOf from the account's groups (groups are few).
	type step struct {
		dn, first string
		path      []string
	}
	seen := map[string]bool{}
	queue := []step{}
	for _, dn := range acc.MemberOf {
		queue = append(queue, step{dn, dn, []string{cnOf(dn)}})
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
					m.nested = append(m.nested, nestedPath{first: s.first, path: strings.Join(path, " -> ")})
					continue
				}
				queue = append(queue, step{up, s.first, path})
			}
		}
	}
	sort.Slice(m.nested, func(i, j int) bool { return m.nested[i].path < m.nested[j].path })
	return m, nil
}

func (p *plugin) removeFromGroups() *sdk.Action {
	read := func(c *ldap.Conn, d *directory, a sdk.Values) (*account, *membership, error) {
		acc, err := findPrincipal(c, d.info, a.String("account"))
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
		return map[string]cty.Value{"nested": sdk.StringList(m.surviving())}
	}
	leftOver := func(acc *account, m *membership) (sdk.Diagnostics, []string) {
		var diags sdk.Diagnostics
		var details []string
		for _, path := range m.surviving() {
			details = append(details, "stays a member through "+path+" (not removed: take the account out of the first group, or that group out of the next)")
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
		if len(m.direct) == 0 && m.primary == nil {
			r := sdk.NoChangef("%s is in none of the groups directly, nor by its primary group", acc.name())
			r.Details, r.Diagnostics, r.Outputs = left, diags, outputs(m)
			return r
		}
		var what, dns []string
		var details []string
		if m.primary != nil {
			np, err := newPrimary(c, d, req.Attributes)
			if err != nil {
				return sdk.PlanError(err)
			}
			what = append(what, fmt.Sprintf("set the primary group of %s to %s (it makes it a member of %s)", acc.name(), np.Name, m.primary.Name))
			details = append(details, fmt.Sprintf("primaryGroupID %d -> %d (%s)", acc.PrimaryGroupID, ridOf(np.SID), np.Name))
		}
		var names []string
		for _, g := range m.direct {
			names = append(names, g.Name)
			dns = append(dns, g.DN)
			details = append(details, fmt.Sprintf("%s (%s): remove member %s", g.Name, g.SID, acc.DN))
		}
		if len(names) > 0 {
			what = append(what, fmt.Sprintf("remove %s from %s", acc.name(), strings.Join(names, ", ")))
		}
		r := sdk.Changef("%s", strings.Join(what, "; "))
		r.Details = append(append([]string{acc.DN + " (found by " + acc.MatchedBy + ")"}, details...), left...)
		r.Diagnostics = diags
		sdk.SetPrivate(r, targetPrivate{GUID: acc.GUID, Groups: dns, PrimaryGroupID: acc.PrimaryGroupID})
		return r
	}
	apply := func(ctx context.Context, d *directory, c *ldap.Conn, req *sdk.ApplyRequest, ev sdk.Events) *sdk.ApplyResponse {
		acc, m, err := read(c, d, req.Attributes)
		if err != nil {
			return sdk.ApplyError(err)
		}
		t, err := sameObject(req, acc)
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
		var done []string
		if m.primary != nil {
			// Compare-and-swap against the primary group the plan read.
			if len(req.Private) > 0 && t.PrimaryGroupID != acc.PrimaryGroupID {
				return sdk.ApplyError(sdk.Conflict("the primary group of %s changed since the plan", acc.name()))
			}
			np, err := setPrimary(c, d, acc, req.Attributes)
			if err != nil {
				return sdk.ApplyError(err)
			}
			done = append(done, "set its primary group to "+np.Name)
			// The old primary group may be a direct membership now.
			if acc, m, err = read(c, d, req.Attributes); err != nil {
				return sdk.ApplyError(err)
			}
			if m.primary != nil {
				return sdk.ApplyError(fmt.Errorf("%s still has a privileged primary group after the change", acc.name()))
			}
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
		if len(removed) > 0 {
			done = append(done, "removed it from "+strings.Join(removed, ", "))
		}
		if len(done) == 0 {
			done = append(done, "in none of the groups any more (taken out by someone else since the plan)")
		}
		return &sdk.ApplyResponse{Summary: acc.name() + ": " + strings.Join(done, "; "), Outputs: outputs(m), Diagnostics: diags}
	}
	return goneIsDone(p.action("remove_from_groups",
		"Removes an account's (or a group's) direct memberships in the named groups, or in every privileged group (found by well-known SID). A primary group that makes it a member (the group itself, or one nested in it) is changed to Domain Users or primary_group, as a compare-and-swap. Memberships through nested groups are reported, not removed.",
		[]sdk.Attribute{
			{Name: "account", Type: cty.String, Required: true, Description: "sAMAccountName, UPN, DN or SID of an account, or of a group to take out of groups."},
			{Name: "primary_group", Type: cty.String, Description: "The primary group to set when the current one is privileged (default Domain Users)."},
			{Name: "groups", Type: cty.List(cty.String), Description: "Groups by name, DN or SID."},
			{Name: "privileged", Type: cty.Bool, Description: "Every privileged group: Domain, Enterprise and Schema Admins, Administrators, Account/Server/Backup/Print Operators, Group Policy Creator Owners, Cert Publishers, Key Admins, DnsAdmins."},
		},
		[]sdk.Output{{Name: "nested", Type: cty.List(cty.String), Description: "Membership paths through other groups that remain."}},
		plan, apply))
}

// newPrimary is the group an account's privileged primary group is
// changed to: primary_group, or Domain Users (RID 513).
func newPrimary(c *ldap.Conn, d *directory, a sdk.Values) (*group, error) {
	name := a.String("primary_group")
	if name == "" {
		name = d.info.domainSID + "-513"
	}
	f, err := accountFilter(name)
	if err != nil {
		return nil, err
	}
	r, err := c.Search(ldap.NewSearchRequest(d.info.domainDN, ldap.ScopeWholeSubtree, ldap.NeverDerefAliases, 2, 0, false,
		"(&(objectClass=group)"+f+")", groupAttrs, nil))
	if err != nil || len(r.Entries) != 1 {
		return nil, fmt.Errorf("primary_group: the domain has no single group %q (%v)", name, err)
	}
	g := groupFrom(r.Entries[0])
	if !strings.HasPrefix(g.SID, d.info.domainSID+"-") {
		return nil, fmt.Errorf("primary_group: %s is not a domain group: it cannot be a primary group", g.Name)
	}
	return g, nil
}

// setPrimary makes the new primary group the account's: a member of it
// first (AD's rule), then primaryGroupID replaced as a compare-and-swap.
func setPrimary(c *ldap.Conn, d *directory, acc *account, a sdk.Values) (*group, error) {
	np, err := newPrimary(c, d, a)
	if err != nil {
		return nil, err
	}
	add := ldap.NewModifyRequest(np.DN, nil)
	add.Add("member", []string{acc.DN})
	if err := c.Modify(add); err != nil && !ldap.IsErrorWithCode(err, ldap.LDAPResultAttributeOrValueExists) && !ldap.IsErrorWithCode(err, ldap.LDAPResultEntryAlreadyExists) {
		return nil, fmt.Errorf("making %s a member of %s (before it becomes its primary group): %v", acc.name(), np.Name, err)
	}
	m := ldap.NewModifyRequest(acc.DN, nil)
	m.Delete("primaryGroupID", []string{strconv.Itoa(int(acc.PrimaryGroupID))})
	m.Add("primaryGroupID", []string{strconv.Itoa(int(ridOf(np.SID)))})
	if err := modify(c, m, "setting the primary group of "+acc.name()); err != nil {
		return nil, err
	}
	// The DC keeps the old primary group as a plain membership: that one
	// was only there because it was the primary group, and it is what made
	// the account privileged. Out of it too.
	old, err := lookupSIDGroup(c, d.info, fmt.Sprintf("%s-%d", d.info.domainSID, acc.PrimaryGroupID))
	if err == nil && old != "" {
		rm := ldap.NewModifyRequest(old, nil)
		rm.Delete("member", []string{acc.DN})
		if err := c.Modify(rm); err != nil && !ldap.IsErrorWithCode(err, ldap.LDAPResultNoSuchAttribute) && !ldap.IsErrorWithCode(err, ldap.LDAPResultUnwillingToPerform) {
			return nil, fmt.Errorf("taking %s out of its former primary group: %v", acc.name(), err)
		}
	}
	return np, nil
}

// lookupSIDGroup is the DN of the group with sid ("" when none).
func lookupSIDGroup(c *ldap.Conn, info *domainInfo, sid string) (string, error) {
	f, err := sidFilter(sid)
	if err != nil {
		return "", err
	}
	r, err := c.Search(ldap.NewSearchRequest(info.domainDN, ldap.ScopeWholeSubtree, ldap.NeverDerefAliases, 1, 0, false, "(&(objectClass=group)(objectSid="+f+"))", []string{"dn"}, nil))
	if err != nil || len(r.Entries) != 1 {
		return "", err
	}
	return r.Entries[0].DN, nil
}
