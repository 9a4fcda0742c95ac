package ad

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/go-ldap/ldap/v3"
	"github.com/zclconf/go-cty/cty"
	"golang.org/x/sync/errgroup"

	"github.com/switchover/switchover/plugins/sdk"
)

// The persistence sweep: the back doors an outgoing admin can leave in a
// domain without an account of its own, found and (the old provider's)
// handed to ad.remove_persistence. PingCastle, BloodHound and Purple
// Knight find most of these; the sweep also knows whose they are, because
// the runbook names the old provider.

// Finding kinds.
const (
	kindACE           = "ace"
	kindKeyCredential = "key_credential"
	kindSIDHistory    = "sid_history"
	kindDelegation    = "delegation"
	kindMembership    = "privileged_membership"
	kindSysvol        = "sysvol"
	kindSPNPassword   = "spn_password"
	kindKrbtgt        = "krbtgt_age"
	kindNeverExpires  = "password_never_expires"
)

// Whose a finding is.
const (
	whoseOld      = sdk.WhoseOldProvider
	whoseUnlisted = sdk.WhoseUnlisted
	whoseAny      = sdk.WhoseAny
)

// finding is the SDK's: every sweep's outputs have one shape.
type finding = sdk.Finding

// sweep is one run of the sweep: who is whom, and what it found.
type sweep struct {
	c        *ldap.Conn
	d        *directory
	a        sdk.Values
	root     *ldap.Entry       // the rootDSE
	old      map[string]string // SID -> name: the old provider's principals
	oldDN    map[string]string // lowercased DN -> SID, of the same
	oldDoms  []string          // the old provider's domain SIDs
	trusted  map[string]bool
	names    map[string]string // SID -> name, for messages
	since    time.Time         // the switch: passwords set before it were known to the old provider
	warnings sdk.Diagnostics

	mu    sync.Mutex // the kinds are read at the same time, over one connection
	found sdk.Findings
}

// Principals every domain grants dangerous rights to by default.
var defaultTrustedSIDs = []string{
	"S-1-5-18",     // SYSTEM
	"S-1-5-9",      // Enterprise Domain Controllers
	"S-1-5-10",     // SELF
	"S-1-3-0",      // CREATOR OWNER
	"S-1-5-32-544", // Administrators
	"S-1-5-32-548", // Account Operators
	"S-1-5-32-550", // Print Operators
	"S-1-5-32-560", // Windows Authorization Access Group
	"S-1-5-32-561", // Terminal Server License Servers
}

// Domain-relative RIDs trusted by default.
var defaultTrustedRIDs = []uint32{498, 512, 516, 518, 519, 521, 526, 527}

// Privileged RIDs and builtin SIDs: in sIDHistory they make an account
// an admin without a group membership anyone sees.
var privilegedRIDs = map[uint32]string{500: "Administrator", 502: "krbtgt", 512: "Domain Admins", 516: "Domain Controllers", 518: "Schema Admins",
	519: "Enterprise Admins", 520: "Group Policy Creator Owners", 498: "Enterprise Read-only Domain Controllers", 521: "Read-only Domain Controllers",
	526: "Key Admins", 527: "Enterprise Key Admins"}

func (p *plugin) findPersistence() *sdk.Action {
	return p.readAction("find_persistence",
		"Sweeps the domain for back doors, changing nothing: dangerous ACEs (replication rights, GenericAll, GenericWrite, WriteDacl, WriteOwner, writes of member, gPLink, msDS-KeyCredentialLink, force password change) on the domain head, AdminSDHolder, OUs, GPOs and the configuration partition; shadow credentials (msDS-KeyCredentialLink); sIDHistory with a privileged or old-provider SID; delegation; SYSVOL scripts and tasks naming the old provider; and reports SPN accounts with passwords older than the switch, krbtgt's age and passwords that never expire. Outputs the old provider's findings for ad.remove_persistence; the rest become open items with the command a person runs.",
		[]sdk.Attribute{
			{Name: "principals", Type: cty.List(cty.String), Description: "The old provider's accounts, groups and computers: names, UPNs, DNs or SIDs."},
			{Name: "upn_suffix", Type: cty.String, Description: "Every account and computer whose UPN ends in @SUFFIX is the old provider's too."},
			{Name: "old_domain_sids", Type: cty.List(cty.String), Description: "The old provider's own domain SIDs (S-1-5-21-...): any SID under them is its."},
			{Name: "trusted", Type: cty.List(cty.String), Description: "Principals the client trusts with these rights (the new provider, the client's admins) besides the domain's defaults."},
			{Name: "report_unlisted", Type: cty.Bool, Description: "Report dangerous rights of principals neither the old provider's nor trusted (default true); they are never removed."},
			{Name: "key_credentials", Type: cty.String, Description: "Which shadow credentials are removable: \"old_provider\" (default: on its accounts), \"privileged\" (also on admin accounts, adminCount = 1 or the built-in Administrator, whose keys the old provider could have planted), \"all\", or \"none\" (report only). The rest are listed for a person with their device and creation time."},
			{Name: "sysvol_path", Type: cty.String, Description: "A path where SYSVOL can be read (a mount of \\\\DC\\SYSVOL, or the DC's own folder): its scripts and scheduled tasks are searched for mentions."},
			{Name: "mentions", Type: cty.List(cty.String), Description: "Strings that name the old provider's hosts, accounts or tools in scripts and tasks (default: upn_suffix)."},
			{Name: "since", Type: cty.String, Description: "When the switch began (RFC 3339; default: 24 hours before the sweep): SPN accounts and krbtgt with passwords set before it are reported."},
		},
		sdk.FindingOutputs,
		func(ctx context.Context, d *directory, c *ldap.Conn, a sdk.Values) (map[string]cty.Value, string, sdk.Diagnostics, error) {
			s := &sweep{c: c, d: d, a: a, old: map[string]string{}, oldDN: map[string]string{}, trusted: map[string]bool{}, names: map[string]string{}, since: time.Now().Add(-24 * time.Hour)}
			if err := s.prepare(); err != nil {
				return nil, "", nil, err
			}
			// The kinds are independent reads: they go out together over
			// the one connection (go-ldap multiplexes it), so a DC across
			// a WAN costs one round of latency per page, not per kind.
			var g errgroup.Group
			for _, step := range []func() error{s.memberships, s.aces, s.keyCredentials, s.sidHistory, s.delegation, s.sysvol, s.passwords} {
				g.Go(step)
			}
			if err := g.Wait(); err != nil {
				return nil, "", nil, err
			}
			return s.outputs()
		})
}

// prepare reads the rootDSE and resolves the old provider's principals
// and the trusted ones.
func (s *sweep) prepare() error {
	if v := s.a.String("since"); v != "" {
		t, err := time.Parse(time.RFC3339, v)
		if err != nil {
			return fmt.Errorf("since = %q is not an RFC 3339 time (2026-12-06T00:00:00Z)", v)
		}
		s.since = t
	}
	switch s.a.String("key_credentials") {
	case "", "old_provider", "privileged", "all", "none":
	default:
		return fmt.Errorf("key_credentials = %q: want \"old_provider\", \"privileged\", \"all\" or \"none\"", s.a.String("key_credentials"))
	}
	r, err := s.c.Search(ldap.NewSearchRequest("", ldap.ScopeBaseObject, ldap.NeverDerefAliases, 0, 0, false, "(objectClass=*)",
		[]string{"configurationNamingContext", "schemaNamingContext", "vendorName"}, nil))
	if err != nil || len(r.Entries) == 0 {
		return fmt.Errorf("reading the rootDSE: %v", err)
	}
	s.root = r.Entries[0]
	info := s.d.info
	for _, sid := range defaultTrustedSIDs {
		s.trusted[sid] = true
	}
	for _, rid := range defaultTrustedRIDs {
		s.trusted[fmt.Sprintf("%s-%d", info.domainSID, rid)] = true
	}
	if info.bindSID != "" {
		s.trusted[info.bindSID] = true
	}
	for _, name := range s.a.Strings("trusted") {
		sid, err := lookupSID(s.c, info, name)
		if err != nil || sid == "" {
			return fmt.Errorf("trusted principal %q: no single account or group has that name (%v)", name, err)
		}
		s.trusted[sid], s.names[sid] = true, name
	}
	for _, sid := range s.a.Strings("old_domain_sids") {
		if _, err := sidBytes(sid); err != nil || !strings.HasPrefix(sid, "S-1-5-21-") {
			return fmt.Errorf("old_domain_sids: %q is not a domain SID (S-1-5-21-...)", sid)
		}
		s.oldDoms = append(s.oldDoms, sid)
	}
	return s.resolveOld()
}

// resolveOld finds the old provider's principals: named ones, and every
// account whose UPN has its suffix.
func (s *sweep) resolveOld() error {
	info := s.d.info
	for _, name := range s.a.Strings("principals") {
		sid, err := lookupSID(s.c, info, name)
		if err != nil {
			return fmt.Errorf("principal %q: %v", name, err)
		}
		if sid == "" {
			s.warnings = append(s.warnings, sdk.Warnf("An old-provider principal was not found", "%q names no single account, group or computer in %s: rights granted to it by SID are still found if it is listed by SID.", name, info.domainDN))
			continue
		}
		s.old[sid] = name
		if f, err := sidFilter(sid); err == nil {
			if r, err := s.c.Search(ldap.NewSearchRequest(info.domainDN, ldap.ScopeWholeSubtree, ldap.NeverDerefAliases, 2, 0, false,
				"(objectSid="+f+")", []string{"objectSid"}, nil)); err == nil && len(r.Entries) == 1 {
				s.oldDN[strings.ToLower(r.Entries[0].DN)] = sid
			}
		}
	}
	if suffix := strings.TrimPrefix(s.a.String("upn_suffix"), "@"); suffix != "" {
		es, err := searchAll(s.c, s.d.s, info.domainDN, "(userPrincipalName=*@"+ldap.EscapeFilter(suffix)+")", []string{"objectSid", "sAMAccountName"})
		if err != nil {
			return err
		}
		for _, e := range es {
			sid := sidString(e.GetRawAttributeValue("objectSid"))
			s.old[sid], s.oldDN[strings.ToLower(e.DN)] = e.GetAttributeValue("sAMAccountName"), sid
		}
	}
	for sid := range s.old {
		if s.trusted[sid] {
			return fmt.Errorf("%s (%s) is both the old provider's and trusted: refused (bind_dn and trusted are never the old provider's)", s.old[sid], sid)
		}
	}
	return nil
}

// whose classifies a principal: the old provider's, trusted ("") or
// neither (unlisted).
func (s *sweep) whose(sid string) string {
	if _, ok := s.old[sid]; ok {
		return whoseOld
	}
	for _, dom := range s.oldDoms {
		if strings.HasPrefix(sid, dom+"-") {
			return whoseOld
		}
	}
	if s.trusted[sid] {
		return ""
	}
	return whoseUnlisted
}

// name is a SID with its account name, looked up once.
func (s *sweep) name(sid string) string {
	if n, ok := s.old[sid]; ok {
		return n + " (" + sid + ")"
	}
	s.mu.Lock()
	n, ok := s.names[sid]
	s.mu.Unlock()
	if !ok {
		if f, err := sidFilter(sid); err == nil {
			r, err := s.c.Search(ldap.NewSearchRequest(s.d.info.domainDN, ldap.ScopeWholeSubtree, ldap.NeverDerefAliases, 2, 0, false,
				"(objectSid="+f+")", []string{"sAMAccountName"}, nil))
			if err == nil && len(r.Entries) == 1 {
				n = r.Entries[0].GetAttributeValue("sAMAccountName")
			}
		}
		s.mu.Lock()
		s.names[sid] = n
		s.mu.Unlock()
	}
	if n == "" {
		return sid
	}
	return n + " (" + sid + ")"
}

func (s *sweep) add(f *finding) {
	if f.Whose == whoseUnlisted && s.a.Has("report_unlisted") && !s.a.Bool("report_unlisted") {
		return
	}
	s.mu.Lock()
	s.found.Add(f)
	s.mu.Unlock()
}

// memberships finds the old provider's groups and computers that are
// direct members of a privileged group (its user accounts are
// ad.remove_from_groups' work, with their primary groups and nesting).
func (s *sweep) memberships() error {
	groups, err := privilegedGroupsOnly(s.c, s.d.info)
	if err != nil {
		return err
	}
	for _, g := range groups {
		for _, m := range g.Members {
			sid, ok := s.oldDN[strings.ToLower(m)]
			if !ok {
				continue
			}
			e, err := readObject(s.c, m, "objectClass")
			if err != nil {
				return err
			}
			if classes := e.GetAttributeValues("objectClass"); !slices.Contains(classes, "group") && !slices.Contains(classes, "computer") {
				continue
			}
			s.add(&finding{Kind: kindMembership, Object: m, Value: g.DN, Principal: sid, Whose: whoseOld, Removable: true,
				What:   fmt.Sprintf("%s is a member of %s", s.name(sid), g.Name),
				Remedy: fmt.Sprintf("Remove-ADGroupMember -Identity '%s' -Members '%s'", g.DN, m)})
		}
	}
	return nil
}

// aces reads the DACLs of the objects an admin takes a domain back
// through, and finds the explicit ACEs that grant dangerous rights to
// anyone but the defaults and the trusted.
func (s *sweep) aces() error {
	info := s.d.info
	config := s.root.GetAttributeValue("configurationNamingContext")
	bases := []string{info.domainDN, "CN=AdminSDHolder,CN=System," + info.domainDN}
	if config != "" {
		bases = append(bases, config)
	}
	// Five reads at once: three objects by DN, the OUs and the GPOs.
	var mu sync.Mutex
	var entries []*ldap.Entry
	keep := func(es ...*ldap.Entry) {
		mu.Lock()
		entries = append(entries, es...)
		mu.Unlock()
	}
	var g errgroup.Group
	for _, base := range bases {
		g.Go(func() error {
			r, err := s.c.Search(ldap.NewSearchRequest(base, ldap.ScopeBaseObject, ldap.NeverDerefAliases, 0, 0, false, "(objectClass=*)",
				[]string{"nTSecurityDescriptor"}, []ldap.Control{sdFlagsDACL}))
			if ldap.IsErrorWithCode(err, ldap.LDAPResultNoSuchObject) {
				return nil
			}
			if err != nil {
				return fmt.Errorf("reading the security descriptor of %s: %v", base, err)
			}
			keep(r.Entries...)
			return nil
		})
	}
	for _, f := range []string{"(objectClass=organizationalUnit)", "(objectClass=groupPolicyContainer)"} {
		g.Go(func() error {
			es, err := searchAll(s.c, s.d.s, info.domainDN, f, []string{"nTSecurityDescriptor"}, sdFlagsDACL)
			keep(es...)
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	sort.Slice(entries, func(i, j int) bool { return entries[i].DN < entries[j].DN })
	for _, e := range entries {
		if err := s.acesOf(e.DN, e.GetRawAttributeValue("nTSecurityDescriptor")); err != nil {
			return err
		}
	}
	return nil
}

func (s *sweep) acesOf(dn string, sd []byte) error {
	dacl, err := parseSD(sd)
	if err != nil {
		return fmt.Errorf("the security descriptor of %s: %v", dn, err)
	}
	for _, e := range dacl.aces {
		what := e.dangerous()
		if what == "" || e.flags&aceInherited != 0 {
			continue
		}
		whose := s.whose(e.sid)
		if whose == "" {
			continue
		}
		f := &finding{Kind: kindACE, Object: dn, Value: e.sddl(), Principal: e.sid, Whose: whose, Removable: whose == whoseOld,
			What: fmt.Sprintf("%s holds %s on %s", s.name(e.sid), what, dn)}
		f.Remedy = fmt.Sprintf("Remove the ACE %s from %s: in PowerShell, $a = Get-Acl 'AD:\\%s'; $a.Access | Where-Object { $_.IdentityReference.Translate([Security.Principal.SecurityIdentifier]).Value -eq '%s' -and -not $_.IsInherited } | ForEach-Object { $a.RemoveAccessRuleSpecific($_) }; Set-Acl 'AD:\\%s' $a", f.Value, dn, dn, e.sid, dn)
		s.add(f)
	}
	return nil
}

// keyCredentials lists every msDS-KeyCredentialLink value (shadow
// credentials survive a password reset): removable on the old provider's
// accounts and on admin accounts, as key_credentials says.
func (s *sweep) keyCredentials() error {
	schema := s.root.GetAttributeValue("schemaNamingContext")
	r, err := s.c.Search(ldap.NewSearchRequest(schema, ldap.ScopeSingleLevel, ldap.NeverDerefAliases, 1, 0, false,
		"(lDAPDisplayName=msDS-KeyCredentialLink)", []string{"cn"}, nil))
	if err != nil || len(r.Entries) == 0 {
		return nil // a schema before Windows Server 2016 has no shadow credentials
	}
	es, err := searchAll(s.c, s.d.s, s.d.info.domainDN, "(msDS-KeyCredentialLink=*)",
		[]string{"sAMAccountName", "objectSid", "adminCount", "msDS-KeyCredentialLink"})
	if err != nil {
		return err
	}
	policy := s.a.String("key_credentials")
	for _, e := range es {
		sid := sidString(e.GetRawAttributeValue("objectSid"))
		whose := s.whose(sid)
		if whose == "" {
			whose = whoseAny
		}
		admin := e.GetAttributeValue("adminCount") == "1" || ridOf(sid) == 500
		for _, v := range e.GetAttributeValues("msDS-KeyCredentialLink") {
			k := parseKeyCredential(v)
			f := &finding{Kind: kindKeyCredential, Object: e.DN, Value: v, Principal: sid, Whose: whose,
				What: fmt.Sprintf("a key credential on %s (%s): whoever holds its private key signs in as it, whatever its password", s.name(sid), k.describe())}
			switch policy {
			case "all":
				f.Removable = true
			case "privileged":
				f.Removable = admin || whose == whoseOld
			case "", "old_provider":
				f.Removable = whose == whoseOld
			}
			f.Remedy = fmt.Sprintf("If the key is not one of the client's devices (Windows Hello for Business), remove it: Set-ADObject '%s' -Remove @{'msDS-KeyCredentialLink'='%s'}", e.DN, v)
			s.add(f)
		}
	}
	return nil
}

// privilegedSID names what a SID in sIDHistory makes its holder ("" if
// nothing privileged).
func privilegedSID(sid string) string {
	if strings.HasPrefix(sid, "S-1-5-32-") {
		for _, g := range privilegedGroups {
			if g.builtin == sid {
				return g.name
			}
		}
		return ""
	}
	if strings.HasPrefix(sid, "S-1-5-21-") {
		return privilegedRIDs[ridOf(sid)]
	}
	return ""
}

// sidHistory finds accounts carrying a privileged SID, or one of the old
// provider's domain, in sIDHistory.
func (s *sweep) sidHistory() error {
	es, err := searchAll(s.c, s.d.s, s.d.info.domainDN, "(sIDHistory=*)", []string{"sAMAccountName", "objectSid", "sIDHistory"})
	if err != nil {
		return err
	}
	samba := strings.Contains(s.root.GetAttributeValue("vendorName"), "Samba")
	for _, e := range es {
		holder := sidString(e.GetRawAttributeValue("objectSid"))
		for _, raw := range e.GetRawAttributeValues("sIDHistory") {
			sid := sidString(raw)
			priv := privilegedSID(sid)
			whose := s.whose(sid)
			if whose == "" {
				whose = whoseAny
			}
			f := &finding{Kind: kindSIDHistory, Object: e.DN, Value: sid, Principal: holder, Whose: whose,
				Removable: priv != "" || whose == whoseOld, Remedy: sidHistoryRemedy(e.DN, sid, samba)}
			switch {
			case priv != "":
				f.What = fmt.Sprintf("%s carries %s (%s) in sIDHistory: it is that, in every ticket, without being a member of anything", s.name(holder), sid, priv)
			case whose == whoseOld:
				f.What = fmt.Sprintf("%s carries %s of the old provider's domain in sIDHistory", s.name(holder), sid)
			default:
				f.What = fmt.Sprintf("%s carries %s in sIDHistory (from a migration?)", s.name(holder), sid)
				f.Whose = whoseUnlisted
			}
			s.add(f)
		}
	}
	return nil
}

func sidHistoryRemedy(dn, sid string, samba bool) string {
	if samba {
		return fmt.Sprintf("Samba refuses sIDHistory changes over LDAP: on the DC, as root, run ldbmodify -H /var/lib/samba/private/sam.ldb with the LDIF \"dn: %s / changetype: modify / delete: sIDHistory / sIDHistory: %s\" (one line each)", dn, sid)
	}
	return fmt.Sprintf("Set-ADUser -Identity '%s' -Remove @{sIDHistory='%s'}", dn, sid)
}

// sysvol searches SYSVOL's scripts and scheduled tasks for the old
// provider's names: never removed (a GPO is edited by a person), always
// an open item naming the GPO and the file.
func (s *sweep) sysvol() error {
	root := s.a.String("sysvol_path")
	if root == "" {
		return nil
	}
	mentions := s.a.Strings("mentions")
	if len(mentions) == 0 && s.a.String("upn_suffix") != "" {
		mentions = []string{strings.TrimPrefix(s.a.String("upn_suffix"), "@")}
	}
	hits, err := scanSysvol(root, mentions)
	if err != nil {
		return err
	}
	for _, h := range hits {
		s.add(&finding{Kind: kindSysvol, Object: h.path, Value: h.mention, Whose: whoseOld,
			What:   fmt.Sprintf("%s in SYSVOL names %q (line %d: %s)", h.kind, h.mention, h.line, truncateChars(h.text, 120)),
			Remedy: fmt.Sprintf("Open the GPO %s in Group Policy Management and remove the %s, or delete the file %s if no GPO uses it", h.gpo, h.kind, h.path)})
	}
	return nil
}

// passwords reports what the old provider knew and a reset fixes: SPN
// accounts (Kerberoastable) and krbtgt with passwords set before the
// switch, and enabled accounts whose passwords never expire.
func (s *sweep) passwords() error {
	es, err := searchAll(s.c, s.d.s, s.d.info.domainDN,
		"(&(objectCategory=person)(objectClass=user)(|(servicePrincipalName=*)(sAMAccountName=krbtgt)(userAccountControl:1.2.840.113556.1.4.803:=65536)))",
		[]string{"sAMAccountName", "objectSid", "servicePrincipalName", "pwdLastSet", "userAccountControl"})
	if err != nil {
		return err
	}
	for _, e := range es {
		sam, set := e.GetAttributeValue("sAMAccountName"), fileTime(e.GetAttributeValue("pwdLastSet"))
		uac, _ := strconv.ParseInt(e.GetAttributeValue("userAccountControl"), 10, 64)
		old := set.Before(s.since)
		age := "never set"
		if !set.IsZero() {
			age = "set " + rfc3339(set)
		}
		switch {
		case strings.EqualFold(sam, "krbtgt"):
			if old {
				s.add(&finding{Kind: kindKrbtgt, Object: e.DN, Value: rfc3339(set), Whose: whoseAny,
					What:   fmt.Sprintf("krbtgt's password was %s, before the switch: tickets forged with its old keys stay valid until it is reset twice", age),
					Remedy: "Rotate it twice, 10 hours apart (step ad.rotate_krbtgt, or New-KrbtgtKeys.ps1)"})
			}
		case len(e.GetAttributeValues("servicePrincipalName")) > 0 && old:
			s.add(&finding{Kind: kindSPNPassword, Object: e.DN, Value: rfc3339(set), Whose: whoseAny,
				What:   fmt.Sprintf("%s has SPNs (%s) and its password was %s, before the switch: anyone who requested a ticket can crack it offline", sam, strings.Join(e.GetAttributeValues("servicePrincipalName"), ", "), age),
				Remedy: fmt.Sprintf("Reset its password (step ad.reset_password, account = %q) and put the new one into the services that use it", sam)})
		}
		if uac&uacPasswordNeverExpir != 0 && uac&uacDisabled == 0 {
			s.add(&finding{Kind: kindNeverExpires, Object: e.DN, Value: "DONT_EXPIRE_PASSWORD", Whose: whoseAny,
				What:   fmt.Sprintf("%s is enabled and its password never expires (%s)", sam, age),
				Remedy: fmt.Sprintf("Decide whether it should: Set-ADUser '%s' -PasswordNeverExpires $false", sam)})
		}
	}
	return nil
}

// outputs: every finding by key, the removable ones apart, and one
// open item per kind for what is left to a person.
func (s *sweep) outputs() (map[string]cty.Value, string, sdk.Diagnostics, error) {
	s.found.Titles = kindTitle
	s.found.Label = func(f *finding) string { return cnOf(f.Object) }
	outs, summary, items := s.found.Outputs()
	return outs, summary, append(s.warnings, items...), nil
}

var kindTitle = map[string]string{
	kindACE: "dangerous permission(s) of principals not listed as trusted", kindKeyCredential: "shadow credential(s)",
	kindSIDHistory: "sIDHistory value(s)", kindDelegation: "delegation setting(s)", kindSysvol: "SYSVOL file(s) naming the old provider",
	kindSPNPassword: "service account(s) with passwords older than the switch", kindKrbtgt: "krbtgt password older than the switch",
	kindNeverExpires: "account(s) whose password never expires",
}
