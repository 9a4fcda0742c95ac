package ad

import (
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/go-ldap/ldap/v3"

	"github.com/switchover/switchover/plugins/sdk"
)

// userAccountControl bits.
const (
	uacDisabled           = 0x2
	uacNormalAccount      = 0x200
	uacServerTrust        = 0x2000
	uacPasswordNeverExpir = 0x10000
)

// domainInfo is read once per configuration.
type domainInfo struct {
	baseDN    string // where searches start
	domainDN  string // the domain's naming context
	domainSID string
	// bindSID is the SID of the account switchover binds as, however
	// bind_dn names it (DN, UPN, DOMAIN\name, name@dnsdomain).
	bindSID string
}

// dnsName is the domain's DNS name from its DN (DC=lab,DC=test: lab.test).
func (i *domainInfo) dnsName() string {
	var parts []string
	for _, rdn := range strings.Split(i.domainDN, ",") {
		if k, v, ok := strings.Cut(strings.TrimSpace(rdn), "="); ok && strings.EqualFold(k, "DC") {
			parts = append(parts, v)
		}
	}
	return strings.ToLower(strings.Join(parts, "."))
}

// lookupSID is the SID of the account (or group) name names, in any of
// the forms bind_dn and exclude take; "" when there is no single one.
func lookupSID(c *ldap.Conn, info *domainInfo, name string) (string, error) {
	if strings.HasPrefix(name, "S-1-") {
		_, err := sidBytes(name)
		return name, err
	}
	lookup := func(f string) (string, error) {
		r, err := c.Search(ldap.NewSearchRequest(info.domainDN, ldap.ScopeWholeSubtree, ldap.NeverDerefAliases, 2, 0, false, f, []string{"objectSid"}, nil))
		if err != nil && !ldap.IsErrorWithCode(err, ldap.LDAPResultSizeLimitExceeded) {
			return "", err
		}
		if r == nil || len(r.Entries) != 1 {
			return "", nil
		}
		return sidString(r.Entries[0].GetRawAttributeValue("objectSid")), nil
	}
	f, err := accountFilter(name)
	if err != nil {
		return "", err
	}
	sid, err := lookup(f)
	if sid != "" || err != nil {
		return sid, err
	}
	// name@dnsdomain names sAMAccountName "name" too (an implicit UPN).
	if user, dom, ok := strings.Cut(name, "@"); ok && strings.EqualFold(dom, info.dnsName()) {
		return lookup("(sAMAccountName=" + ldap.EscapeFilter(user) + ")")
	}
	return "", nil
}

func readDomainInfo(c *ldap.Conn, s *settings) (*domainInfo, error) {
	r, err := c.Search(ldap.NewSearchRequest("", ldap.ScopeBaseObject, ldap.NeverDerefAliases, 0, 0, false, "(objectClass=*)", []string{"defaultNamingContext"}, nil))
	if err != nil || len(r.Entries) == 0 {
		return nil, fmt.Errorf("reading the rootDSE: %v", err)
	}
	info := &domainInfo{domainDN: r.Entries[0].GetAttributeValue("defaultNamingContext")}
	if info.domainDN == "" {
		return nil, fmt.Errorf("the server's rootDSE names no defaultNamingContext: is it an Active Directory domain controller?")
	}
	info.baseDN = s.baseDN
	if info.baseDN == "" {
		info.baseDN = info.domainDN
	}
	r, err = c.Search(ldap.NewSearchRequest(info.domainDN, ldap.ScopeBaseObject, ldap.NeverDerefAliases, 0, 0, false, "(objectClass=*)", []string{"objectSid"}, nil))
	if err != nil || len(r.Entries) == 0 {
		return nil, fmt.Errorf("reading the domain object %s: %v", info.domainDN, err)
	}
	info.domainSID = sidString(r.Entries[0].GetRawAttributeValue("objectSid"))
	if info.domainSID == "" {
		return nil, fmt.Errorf("the domain object %s has no objectSid", info.domainDN)
	}
	return info, nil
}

// sidString formats a binary SID (S-1-5-21-...).
func sidString(b []byte) string {
	if len(b) < 8 || int(b[1])*4+8 != len(b) {
		return ""
	}
	var auth uint64
	for _, x := range b[2:8] {
		auth = auth<<8 | uint64(x)
	}
	var sb strings.Builder
	fmt.Fprintf(&sb, "S-%d-%d", b[0], auth)
	for i := 0; i < int(b[1]); i++ {
		fmt.Fprintf(&sb, "-%d", binary.LittleEndian.Uint32(b[8+4*i:]))
	}
	return sb.String()
}

// sidBytes is the binary form of a SID string.
func sidBytes(s string) ([]byte, error) {
	parts := strings.Split(s, "-")
	if len(parts) < 3 || parts[0] != "S" || len(parts) > 18 {
		return nil, fmt.Errorf("%q is not a SID", s)
	}
	rev, err1 := strconv.ParseUint(parts[1], 10, 8)
	auth, err2 := strconv.ParseUint(parts[2], 10, 48)
	if err1 != nil || err2 != nil {
		return nil, fmt.Errorf("%q is not a SID", s)
	}
	b := []byte{byte(rev), byte(len(parts) - 3)}
	for i := 5; i >= 0; i-- {
		b = append(b, byte(auth>>(8*i)))
	}
	for _, p := range parts[3:] {
		v, err := strconv.ParseUint(p, 10, 32)
		if err != nil {
			return nil, fmt.Errorf("%q is not a SID", s)
		}
		b = binary.LittleEndian.AppendUint32(b, uint32(v))
	}
	return b, nil
}

// sidFilter is an LDAP filter value matching a binary SID.
func sidFilter(s string) (string, error) {
	b, err := sidBytes(s)
	if err != nil {
		return "", err
	}
	var sb strings.Builder
	for _, x := range b {
		sb.WriteString(`\` + hex.EncodeToString([]byte{x}))
	}
	return sb.String(), nil
}

func ridOf(sid string) uint32 {
	i := strings.LastIndexByte(sid, '-')
	v, _ := strconv.ParseUint(sid[i+1:], 10, 32)
	return uint32(v)
}

// fileTime converts AD's 100-ns intervals since 1601 (0 or max: never).
func fileTime(s string) time.Time {
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil || v <= 0 || v == 1<<63-1 {
		return time.Time{}
	}
	return time.Unix(0, 0).UTC().Add(time.Duration(v-116444736000000000) * 100)
}

func toFileTime(t time.Time) int64 {
	return t.UTC().UnixNano()/100 + 116444736000000000
}

func rfc3339(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339)
}

// privilegedGroup is a group that grants control of the domain, known by
// its SID (relative to the domain, or builtin).
type privilegedGroup struct {
	rid     uint32 // in the domain; 0 for a builtin SID
	builtin string
	name    string // its English name, for messages only
}

var privilegedGroups = []privilegedGroup{
	{rid: 512, name: "Domain Admins"},
	{rid: 519, name: "Enterprise Admins"},
	{rid: 518, name: "Schema Admins"},
	{rid: 520, name: "Group Policy Creator Owners"},
	{rid: 517, name: "Cert Publishers"},
	{rid: 526, name: "Key Admins"},
	{rid: 527, name: "Enterprise Key Admins"},
	{builtin: "S-1-5-32-544", name: "Administrators"},
	{builtin: "S-1-5-32-548", name: "Account Operators"},
	{builtin: "S-1-5-32-549", name: "Server Operators"},
	{builtin: "S-1-5-32-550", name: "Print Operators"},
	{builtin: "S-1-5-32-551", name: "Backup Operators"},
}

func (g privilegedGroup) sid(domainSID string) string {
	if g.builtin != "" {
		return g.builtin
	}
	return fmt.Sprintf("%s-%d", domainSID, g.rid)
}

// group is a group as found in the directory.
type group struct {
	DN, Name, SID string
	Members       []string
	MemberOf      []string
	// PrimaryRIDs are the RIDs of the domain groups whose members are, in
	// effect, members of this one: itself and every group nested in it. An
	// account whose primaryGroupID is one of them is a member (memberOf
	// never shows the primary group).
	PrimaryRIDs []uint32
}

// primaryRIDs fills g.PrimaryRIDs: the group (a domain group) and the
// domain groups nested in it, at any depth.
func primaryRIDs(c *ldap.Conn, info *domainInfo, g *group) error {
	g.PrimaryRIDs = nil
	if strings.HasPrefix(g.SID, info.domainSID+"-") {
		g.PrimaryRIDs = append(g.PrimaryRIDs, ridOf(g.SID))
	}
	r, err := c.Search(ldap.NewSearchRequest(info.domainDN, ldap.ScopeWholeSubtree, ldap.NeverDerefAliases, 0, 0, false,
		"(&(objectClass=group)(memberOf:1.2.840.113556.1.4.1941:="+ldap.EscapeFilter(g.DN)+"))", []string{"objectSid"}, nil))
	if err != nil {
		return fmt.Errorf("reading the groups nested in %s: %v", g.Name, err)
	}
	for _, e := range r.Entries {
		if sid := sidString(e.GetRawAttributeValue("objectSid")); strings.HasPrefix(sid, info.domainSID+"-") {
			g.PrimaryRIDs = append(g.PrimaryRIDs, ridOf(sid))
		}
	}
	return nil
}

// primaryFilter matches the accounts whose primary group makes them
// members of g ("" when none can).
func (g *group) primaryFilter() string {
	var b strings.Builder
	for _, rid := range g.PrimaryRIDs {
		b.WriteString("(primaryGroupID=" + strconv.Itoa(int(rid)) + ")")
	}
	return b.String()
}

var groupAttrs = []string{"sAMAccountName", "objectSid", "member", "memberOf"}

func groupFrom(e *ldap.Entry) *group {
	return &group{DN: e.DN, Name: e.GetAttributeValue("sAMAccountName"), SID: sidString(e.GetRawAttributeValue("objectSid")),
		Members: e.GetAttributeValues("member"), MemberOf: e.GetAttributeValues("memberOf")}
}

// findPrivileged returns the domain's privileged groups that exist, by
// SID, plus DnsAdmins (which has no fixed RID, so it is found by name),
// each with the RIDs of the groups that make an account a member by its
// primary group.
func findPrivileged(c *ldap.Conn, info *domainInfo) ([]*group, error) {
	gs, err := privilegedGroupsOnly(c, info)
	if err != nil {
		return nil, err
	}
	for _, g := range gs {
		if err := primaryRIDs(c, info, g); err != nil {
			return nil, err
		}
	}
	return gs, nil
}

// privilegedGroupsOnly reads the privileged groups (one search), without
// what is nested in them.
func privilegedGroupsOnly(c *ldap.Conn, info *domainInfo) ([]*group, error) {
	var or strings.Builder
	for _, g := range privilegedGroups {
		f, _ := sidFilter(g.sid(info.domainSID))
		or.WriteString("(objectSid=" + f + ")")
	}
	or.WriteString("(sAMAccountName=DnsAdmins)")
	r, err := c.Search(ldap.NewSearchRequest(info.domainDN, ldap.ScopeWholeSubtree, ldap.NeverDerefAliases, 0, 0, false,
		"(&(objectClass=group)(|"+or.String()+"))", groupAttrs, nil))
	if err != nil {
		return nil, fmt.Errorf("finding the privileged groups: %v", err)
	}
	var gs []*group
	for _, e := range r.Entries {
		gs = append(gs, groupFrom(e))
	}
	sort.Slice(gs, func(i, j int) bool { return gs[i].SID < gs[j].SID })
	return gs, nil
}

// account is a user account as read from the directory.
type account struct {
	DN, Sam, UPN, SID, Description string
	// MatchedBy is the attribute the lookup by name matched.
	MatchedBy             string
	GUID                  []byte
	UAC                   int64
	PrimaryGroupID        uint32
	MemberOf, SPNs        []string
	AdminCount            bool
	PwdLastSet, LastLogon time.Time
	pwdLastSetRaw         string
	KVNO                  int
	Owner                 string // owner SID of the object (its creator, or Domain Admins)
}

var accountAttrs = []string{"sAMAccountName", "userPrincipalName", "objectSid", "objectGUID", "userAccountControl", "primaryGroupID",
	"memberOf", "servicePrincipalName", "adminCount", "pwdLastSet", "lastLogonTimestamp", "description", "msDS-KeyVersionNumber"}

func accountFrom(e *ldap.Entry) *account {
	a := &account{DN: e.DN, Sam: e.GetAttributeValue("sAMAccountName"), UPN: e.GetAttributeValue("userPrincipalName"),
		SID: sidString(e.GetRawAttributeValue("objectSid")), GUID: e.GetRawAttributeValue("objectGUID"),
		Description: e.GetAttributeValue("description"), MemberOf: e.GetAttributeValues("memberOf"),
		SPNs: e.GetAttributeValues("servicePrincipalName"), AdminCount: e.GetAttributeValue("adminCount") == "1",
		PwdLastSet: fileTime(e.GetAttributeValue("pwdLastSet")), pwdLastSetRaw: e.GetAttributeValue("pwdLastSet"),
		LastLogon: fileTime(e.GetAttributeValue("lastLogonTimestamp"))}
	a.UAC, _ = strconv.ParseInt(e.GetAttributeValue("userAccountControl"), 10, 64)
	pg, _ := strconv.ParseUint(e.GetAttributeValue("primaryGroupID"), 10, 32)
	a.PrimaryGroupID = uint32(pg)
	a.KVNO, _ = strconv.Atoi(e.GetAttributeValue("msDS-KeyVersionNumber"))
	if sd := e.GetRawAttributeValue("nTSecurityDescriptor"); len(sd) >= 20 {
		if off := binary.LittleEndian.Uint32(sd[4:8]); off > 0 && int(off)+8 <= len(sd) {
			n := int(sd[off+1])*4 + 8
			if int(off)+n <= len(sd) {
				a.Owner = sidString(sd[off : int(off)+n])
			}
		}
	}
	return a
}

func (a *account) enabled() bool { return a.UAC&uacDisabled == 0 }

// name is how messages call the account.
func (a *account) name() string {
	if a.Sam != "" {
		return a.Sam
	}
	return a.DN
}

// accountFilter is the filter that finds one account by what a runbook
// names it with: sAMAccountName, UPN (has @), DN (has =) or SID (S-1-...).
func accountFilter(name string) (string, error) {
	switch {
	case name == "":
		return "", fmt.Errorf("no account named")
	case strings.HasPrefix(name, "S-1-"):
		f, err := sidFilter(name)
		return "(objectSid=" + f + ")", err
	case strings.Contains(name, "="):
		if _, err := ldap.ParseDN(name); err != nil {
			return "", fmt.Errorf("%q is not a DN: %v", name, err)
		}
		return "(distinguishedName=" + ldap.EscapeFilter(name) + ")", nil
	case strings.Contains(name, "@"):
		return "(userPrincipalName=" + ldap.EscapeFilter(name) + ")", nil
	}
	if i := strings.IndexByte(name, '\\'); i >= 0 {
		name = name[i+1:]
	}
	return "(sAMAccountName=" + ldap.EscapeFilter(name) + ")", nil
}

// findAccount reads one user account; none or several is an error.
func findAccount(c *ldap.Conn, info *domainInfo, name string, extra ...string) (*account, error) {
	return findObject(c, info, "user", name, extra...)
}

// findPrincipal is an account, or else a group (one to take out of
// groups), by the same names.
func findPrincipal(c *ldap.Conn, info *domainInfo, name string) (*account, error) {
	acc, err := findAccount(c, info, name)
	if sdk.IsNotFound(err) {
		if g, gerr := findObject(c, info, "group", name); gerr == nil {
			return g, nil
		}
	}
	return acc, err
}

// findObject reads one object of class by name. A name with "@" is both a
// possible userPrincipalName and a possible sAMAccountName: when it is one
// object's UPN and another's sAMAccountName it is refused as ambiguous,
// with both named; the object says which attribute matched.
func findObject(c *ldap.Conn, info *domainInfo, class, name string, extra ...string) (*account, error) {
	f, err := accountFilter(name)
	if err != nil {
		return nil, err
	}
	if strings.Contains(name, "@") && !strings.Contains(name, "=") {
		e := ldap.EscapeFilter(name)
		f = "(|(userPrincipalName=" + e + ")(sAMAccountName=" + e + "))"
	}
	r, err := c.Search(ldap.NewSearchRequest(info.domainDN, ldap.ScopeWholeSubtree, ldap.NeverDerefAliases, 3, 0, false,
		"(&(objectClass="+class+")"+f+")", append(append([]string{}, accountAttrs...), extra...), nil))
	if err != nil && !ldap.IsErrorWithCode(err, ldap.LDAPResultSizeLimitExceeded) {
		return nil, fmt.Errorf("looking up %s: %v", name, err)
	}
	if r == nil || len(r.Entries) == 0 {
		what := "account"
		if class == "group" {
			what = "group"
		}
		return nil, sdk.NotFound("%s %q in %s", what, name, info.domainDN)
	}
	if len(r.Entries) > 1 {
		var cands []string
		for _, e := range r.Entries {
			cands = append(cands, e.DN+" (by "+matchedBy(e, name)+")")
		}
		return nil, fmt.Errorf("%q names more than one object: %s; name it by DN or SID", name, strings.Join(cands, ", "))
	}
	acc := accountFrom(r.Entries[0])
	acc.MatchedBy = matchedBy(r.Entries[0], name)
	return acc, nil
}

// matchedBy says which attribute of e a lookup by name matched.
func matchedBy(e *ldap.Entry, name string) string {
	bare := name
	if i := strings.IndexByte(bare, '\\'); i >= 0 && !strings.Contains(bare, "=") {
		bare = bare[i+1:]
	}
	switch {
	case strings.HasPrefix(name, "S-1-"):
		return "objectSid"
	case strings.Contains(name, "="):
		return "distinguishedName"
	case strings.EqualFold(e.GetAttributeValue("sAMAccountName"), bare):
		return "sAMAccountName"
	case strings.EqualFold(e.GetAttributeValue("userPrincipalName"), name):
		return "userPrincipalName"
	}
	return "?"
}

// reread reads an account again by its GUID (stable across renames and moves).
func reread(c *ldap.Conn, info *domainInfo, a *account) (*account, error) {
	var sb strings.Builder
	for _, x := range a.GUID {
		sb.WriteString(`\` + hex.EncodeToString([]byte{x}))
	}
	r, err := c.Search(ldap.NewSearchRequest(info.domainDN, ldap.ScopeWholeSubtree, ldap.NeverDerefAliases, 1, 0, false,
		"(objectGUID="+sb.String()+")", accountAttrs, nil))
	if err == nil && len(r.Entries) == 0 {
		return nil, sdk.NotFound("account %s (deleted since it was read)", a.name())
	}
	if err != nil {
		return nil, fmt.Errorf("reading %s again: %v", a.name(), err)
	}
	return accountFrom(r.Entries[0]), nil
}

// searchAll is a paged subtree search (RFC 2696).
func searchAll(c *ldap.Conn, s *settings, base, filter string, attrs []string, controls ...ldap.Control) ([]*ldap.Entry, error) {
	req := ldap.NewSearchRequest(base, ldap.ScopeWholeSubtree, ldap.NeverDerefAliases, 0, 0, false, filter, attrs, controls)
	r, err := c.SearchWithPaging(req, s.pageSize)
	if err != nil {
		return nil, fmt.Errorf("searching %s for %s: %v", base, filter, err)
	}
	return r.Entries, nil
}

// cnOf is the first RDN's value of a DN (a group's name in messages).
func cnOf(dn string) string {
	d, err := ldap.ParseDN(dn)
	if err != nil || len(d.RDNs) == 0 || len(d.RDNs[0].Attributes) == 0 {
		return dn
	}
	return d.RDNs[0].Attributes[0].Value
}

func sameDN(a, b string) bool {
	da, err1 := ldap.ParseDN(a)
	db, err2 := ldap.ParseDN(b)
	if err1 != nil || err2 != nil {
		return strings.EqualFold(a, b)
	}
	return da.EqualFold(db)
}

// parentDN is the DN an object lives under.
func parentDN(dn string) string {
	d, err := ldap.ParseDN(dn)
	if err != nil || len(d.RDNs) < 2 {
		return ""
	}
	return (&ldap.DN{RDNs: d.RDNs[1:]}).String()
}
