package entra

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"sort"
	"strings"
	"sync"

	"github.com/zclconf/go-cty/cty"
	"golang.org/x/sync/errgroup"

	"github.com/switchover/switchover/plugins/sdk"
)

// The Microsoft 365 persistence sweep: what a departing admin leaves to
// keep a way in, or a copy of the mail, once its accounts are disabled.
// CISA's Untitled Goose Tool, ScubaGear and CrowdStrike's CRT look for
// these; they report. The sweep knows whose each is (the runbook names
// the old provider), and entra.remove_persistence removes the old
// provider's.

// Finding kinds.
const (
	kindInboxRule   = "inbox_rule"
	kindConsent     = "consent"
	kindCAExclusion = "ca_exclusion"
	kindPartner     = "cross_tenant_partner"
	kindTAP         = "temporary_access_pass"
	kindFederation  = "federated_domain"
	kindAppOwner    = "app_owner"
	kindFedCred     = "federated_credential"
	kindSPSecret    = "sp_secret"
	kindPIMEligible = "pim_eligible"
	kindPIMActive   = "pim_active"
)

var m365Titles = map[string]string{
	kindInboxRule: "inbox rule(s) forwarding mail outside the client's domains", kindConsent: "consent(s) the old provider's accounts gave",
	kindCAExclusion: "Conditional Access exclusion(s)", kindPartner: "cross-tenant access partner setting(s)",
	kindTAP: "Temporary Access Pass(es)", kindFederation: "federated domain(s)",
	kindAppOwner: "app or service principal owner(s)", kindFedCred: "federated identity credential(s) on app registrations",
	kindSPSecret: "client secret(s) on service principals", kindPIMEligible: "PIM role eligibilit(ies)", kindPIMActive: "PIM active role assignment(s)",
}

// sweepParallel bounds the mailboxes read at once (the dispatcher sends
// them as $batch requests).
const sweepParallel = 40

// m365Sweep is one run of the sweep: who is whom, and what it found.
type m365Sweep struct {
	g       *graph
	a       sdk.Values
	domains []string          // the old provider's mail domains, lowercased
	old     map[string]string // id -> UPN of the old provider's accounts (and groups named by id)
	tenants map[string]bool
	client  map[string]bool // the client's domains
	users   []user
	fedDoms []string // the tenant's federated domains

	mu       sync.Mutex
	found    sdk.Findings
	warnings sdk.Diagnostics
}

func (s *m365Sweep) add(f *sdk.Finding) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.found.Add(f)
}

func (s *m365Sweep) warn(d sdk.Diagnostic) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.warnings = append(s.warnings, d)
}

func (p *plugin) findPersistence() *sdk.Action {
	return sdk.ReadOnlyAction("find_persistence",
		"Finds what the old provider can keep in Microsoft 365 without an account, changing nothing: inbox rules forwarding mail outside the client's domains, consents its accounts gave, Conditional Access exclusions naming them, a cross-tenant partner setting for its tenant, Temporary Access Passes on its accounts, federated domains; what Graph cannot read (mailbox forwarding, FullAccess and SendAs, partner relationships) is an open item with the Exchange Online PowerShell lines.",
		[]sdk.Attribute{
			{Name: "domains", Type: cty.List(cty.String), Required: true, Description: "The old provider's domains: its accounts' UPNs and mail, and forwarding to them, are its."},
			{Name: "accounts", Type: cty.List(cty.String), Description: "More of its accounts and groups, by id or UPN (such as entra.find_users' ids)."},
			{Name: "tenant_ids", Type: cty.List(cty.String), Description: "The old provider's tenant ID(s): a cross-tenant partner setting for one is its."},
			{Name: "client_domains", Type: cty.List(cty.String), Description: "The client's mail domains (default: the tenant's verified domains): forwarding inside them is not a finding."},
			{Name: "mailboxes", Type: cty.List(cty.String), Description: "The mailboxes (UPNs) whose inbox rules are read (default: every enabled member user)."},
		},
		sdk.FindingOutputs,
		func(ctx context.Context, a sdk.Values) (map[string]cty.Value, string, sdk.Diagnostics, error) {
			g, err := p.graph()
			if err != nil {
				return nil, "", nil, err
			}
			s := &m365Sweep{g: g, a: a, old: map[string]string{}, tenants: map[string]bool{}, client: map[string]bool{}}
			if err := s.prepare(ctx); err != nil {
				return nil, "", nil, err
			}
			for _, read := range []func(context.Context) error{s.inboxRules, s.consents, s.caExclusions, s.partners, s.taps, s.federation, s.apps, s.pim} {
				if err := read(ctx); err != nil {
					return nil, "", nil, err
				}
			}
			s.warn(exchangeItem(s.domains))
			s.found.Titles = m365Titles
			s.found.Label = func(f *sdk.Finding) string { return f.Principal }
			outs, summary, items := s.found.Outputs()
			return outs, summary, append(s.warnings, items...), nil
		})
}

// prepare reads the tenant's domains and users, and who is the old
// provider's.
func (s *m365Sweep) prepare(ctx context.Context) error {
	for _, d := range s.a.Strings("domains") {
		s.domains = append(s.domains, strings.ToLower(strings.TrimPrefix(strings.TrimSpace(d), "@")))
	}
	if len(s.domains) == 0 {
		return fmt.Errorf("give domains: the old provider's domains")
	}
	for _, t := range s.a.Strings("tenant_ids") {
		s.tenants[strings.ToLower(t)] = true
	}
	type domain struct {
		ID                 string `json:"id"`
		IsVerified         bool   `json:"isVerified"`
		AuthenticationType string `json:"authenticationType"`
	}
	doms, err := listOf[domain](ctx, s.g, "/domains", nil)
	if err != nil {
		return err
	}
	for _, d := range doms {
		if d.AuthenticationType == "Federated" {
			s.fedDoms = append(s.fedDoms, d.ID)
		}
		if d.IsVerified && !s.a.Has("client_domains") {
			s.client[strings.ToLower(d.ID)] = true
		}
	}
	for _, d := range s.a.Strings("client_domains") {
		s.client[strings.ToLower(strings.TrimPrefix(d, "@"))] = true
	}
	if s.users, err = listOf[user](ctx, s.g, "/users?$select="+userSelect+"&$top=999", nil); err != nil {
		return err
	}
	named := map[string]bool{}
	for _, k := range s.a.Strings("accounts") {
		named[strings.ToLower(k)] = true
	}
	for _, u := range s.users {
		if named[strings.ToLower(u.ID)] || named[strings.ToLower(u.UserPrincipalName)] || s.oldAddress(u.UserPrincipalName) || s.oldAddress(u.Mail) {
			s.old[u.ID] = u.UserPrincipalName
			delete(named, strings.ToLower(u.ID))
			delete(named, strings.ToLower(u.UserPrincipalName))
		}
	}
	for k := range named {
		// A group, or an object not listed as a user: by its id.
		s.old[k] = k
	}
	return nil
}

// mentions: text that names the old provider (one of its domains, or
// their first label: "oldmsp" of oldmsp.example) or its tenant.
func (s *m365Sweep) mentions(text string) bool {
	text = strings.ToLower(text)
	for _, d := range s.domains {
		if strings.Contains(text, d) || strings.Contains(text, strings.SplitN(d, ".", 2)[0]) {
			return true
		}
	}
	for t := range s.tenants {
		if strings.Contains(text, t) {
			return true
		}
	}
	return false
}

// oldAddress: an address in one of the old provider's domains.
func (s *m365Sweep) oldAddress(addr string) bool {
	return domainIn(addr, s.domains)
}

func domainIn(addr string, domains []string) bool {
	at := strings.LastIndexByte(addr, '@')
	if at < 0 {
		return false
	}
	d := strings.ToLower(addr[at+1:])
	for _, x := range domains {
		if d == x || strings.HasSuffix(d, "."+x) {
			return true
		}
	}
	return false
}

// external: an address outside the client's domains.
func (s *m365Sweep) external(addr string) bool {
	at := strings.LastIndexByte(addr, '@')
	return at < 0 || !s.client[strings.ToLower(addr[at+1:])]
}

type recipient struct {
	EmailAddress struct {
		Address string `json:"address"`
	} `json:"emailAddress"`
}

type messageRule struct {
	ID          string `json:"id"`
	DisplayName string `json:"displayName"`
	IsEnabled   bool   `json:"isEnabled"`
	Actions     struct {
		ForwardTo             []recipient `json:"forwardTo"`
		ForwardAsAttachmentTo []recipient `json:"forwardAsAttachmentTo"`
		RedirectTo            []recipient `json:"redirectTo"`
	} `json:"actions"`
}

// targets are where a rule sends mail, each with how.
func (r messageRule) targets() [][2]string {
	var out [][2]string
	for _, x := range []struct {
		how  string
		list []recipient
	}{{"forwards", r.Actions.ForwardTo}, {"forwards as an attachment", r.Actions.ForwardAsAttachmentTo}, {"redirects", r.Actions.RedirectTo}} {
		for _, rc := range x.list {
			out = append(out, [2]string{x.how, rc.EmailAddress.Address})
		}
	}
	return out
}

func rulesPath(userID string) string {
	return "/users/" + url.PathEscape(userID) + "/mailFolders/inbox/messageRules"
}

// inboxRules reads the inbox rules of every mailbox, sweepParallel at
// once: a rule that sends mail outside the client's domains is a finding,
// the old provider's when it sends to its domains or sits in its mailbox.
func (s *m365Sweep) inboxRules(ctx context.Context) error {
	boxes, err := s.mailboxes()
	if err != nil {
		return err
	}
	eg, ctx := errgroup.WithContext(ctx)
	eg.SetLimit(sweepParallel)
	for _, u := range boxes {
		eg.Go(func() error { return s.rulesOf(ctx, u) })
	}
	return eg.Wait()
}

// mailboxes are the users whose rules are read.
func (s *m365Sweep) mailboxes() ([]user, error) {
	if !s.a.Has("mailboxes") {
		var out []user
		for _, u := range s.users {
			if u.UserType != "Guest" && (u.AccountEnabled == nil || *u.AccountEnabled) {
				out = append(out, u)
			}
		}
		return out, nil
	}
	byUPN := map[string]user{}
	for _, u := range s.users {
		byUPN[strings.ToLower(u.UserPrincipalName)] = u
	}
	var out []user
	for _, m := range s.a.Strings("mailboxes") {
		u, ok := byUPN[strings.ToLower(m)]
		if !ok {
			return nil, sdk.NotFound("mailbox %s in the tenant", m)
		}
		out = append(out, u)
	}
	return out, nil
}

func (s *m365Sweep) rulesOf(ctx context.Context, u user) error {
	rules, err := listOf[messageRule](ctx, s.g, rulesPath(u.ID), nil)
	var ge *graphError
	if errors.As(err, &ge) && (ge.Code == "MailboxNotEnabledForRESTAPI" || ge.Code == "ResourceNotFound") {
		return nil // no mailbox in Exchange Online
	}
	if err != nil {
		return err
	}
	_, mine := s.old[u.ID]
	for _, r := range rules {
		for _, t := range r.targets() {
			if !s.external(t[1]) {
				continue
			}
			f := &sdk.Finding{Kind: kindInboxRule, Object: u.ID, Value: r.ID, Principal: u.UserPrincipalName, Whose: sdk.WhoseUnlisted,
				What: fmt.Sprintf("inbox rule %q of %s %s every matching message to %s", r.DisplayName, u.UserPrincipalName, t[0], t[1])}
			if !r.IsEnabled {
				f.What += " (disabled now)"
			}
			if mine || s.oldAddress(t[1]) {
				f.Whose, f.Removable = sdk.WhoseOldProvider, true
			} else {
				f.Remedy = fmt.Sprintf("Ask %s whether the forwarding is theirs; else: Remove-InboxRule -Mailbox '%s' -Identity '%s'", u.UserPrincipalName, u.UserPrincipalName, r.DisplayName)
			}
			s.add(f)
			break // one finding per rule: removing it removes every target
		}
	}
	return nil
}

type permissionGrant struct {
	ID          string `json:"id"`
	ClientID    string `json:"clientId"`
	ConsentType string `json:"consentType"`
	PrincipalID string `json:"principalId"`
	Scope       string `json:"scope"`
}

// consents: delegated permissions the old provider's accounts consented
// to for themselves (an app keeps using them after the account is
// disabled only through a refresh token, but a re-enabled account or a
// token issued before the revoke does).
func (s *m365Sweep) consents(ctx context.Context) error {
	grants, err := listOf[permissionGrant](ctx, s.g, "/oauth2PermissionGrants", nil)
	if err != nil {
		return err
	}
	for _, gr := range grants {
		upn, ok := s.old[gr.PrincipalID]
		if gr.ConsentType != "Principal" || !ok {
			continue
		}
		s.add(&sdk.Finding{Kind: kindConsent, Object: gr.ID, Value: gr.Scope, Principal: upn, Whose: sdk.WhoseOldProvider, Removable: true,
			What: fmt.Sprintf("%s consented for the app (service principal %s) to: %s", upn, gr.ClientID, strings.TrimSpace(gr.Scope))})
	}
	return nil
}

type caPolicy struct {
	ID               string         `json:"id"`
	DisplayName      string         `json:"displayName"`
	State            string         `json:"state"`
	ModifiedDateTime string         `json:"modifiedDateTime"`
	Conditions       map[string]any `json:"conditions"`
}

// condition is the condition a list is in: users, or locations.
func condition(list string) string {
	if list == "excludeLocations" {
		return "locations"
	}
	return "users"
}

// excluded are a policy's excludeUsers, excludeGroups or excludeLocations.
func (p caPolicy) excluded(list string) []string {
	cond, _ := p.Conditions[condition(list)].(map[string]any)
	raw, _ := cond[list].([]any)
	out := make([]string, 0, len(raw))
	for _, x := range raw {
		if s, ok := x.(string); ok {
			out = append(out, s)
		}
	}
	return out
}

const policiesPath = "/identity/conditionalAccess/policies"

type namedLocation struct {
	ID          string `json:"id"`
	DisplayName string `json:"displayName"`
	IPRanges    []struct {
		CIDRAddress string `json:"cidrAddress"`
	} `json:"ipRanges"`
}

// oldLocations are the named locations whose names name the old provider
// (its office's IP range, trusted): a policy excluding one lets it in
// from there without MFA.
func (s *m365Sweep) oldLocations(ctx context.Context) (map[string]string, error) {
	locs, err := listOf[namedLocation](ctx, s.g, "/identity/conditionalAccess/namedLocations", nil)
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	for _, l := range locs {
		if s.mentions(l.DisplayName) {
			var ranges []string
			for _, r := range l.IPRanges {
				ranges = append(ranges, r.CIDRAddress)
			}
			out[l.ID] = fmt.Sprintf("named location %q (%s)", l.DisplayName, strings.Join(ranges, ", "))
		}
	}
	return out, nil
}

// caExclusions: a Conditional Access policy that exempts the old
// provider's accounts, groups or network keeps them out of MFA or a block.
func (s *m365Sweep) caExclusions(ctx context.Context) error {
	pols, err := listOf[caPolicy](ctx, s.g, policiesPath, nil)
	if st := statusOf(err); st == http.StatusForbidden || st == http.StatusUnauthorized {
		s.warn(sdk.LeftForPerson("Conditional Access policies not read", "The app may not read them (it needs Policy.Read.All): check each policy's excluded users and groups in the Entra admin center (Protection > Conditional Access) for the old provider's accounts."))
		return nil
	}
	if err != nil {
		return err
	}
	locs, err := s.oldLocations(ctx)
	if err != nil {
		return err
	}
	for _, p := range pols {
		for _, list := range []string{"excludeUsers", "excludeGroups", "excludeLocations"} {
			for _, id := range p.excluded(list) {
				name, ok := s.old[strings.ToLower(id)]
				if !ok {
					name, ok = s.old[id]
				}
				if list == "excludeLocations" {
					name, ok = locs[id]
				}
				if !ok {
					continue
				}
				s.add(&sdk.Finding{Kind: kindCAExclusion, Object: p.ID, Value: list + ":" + id, Principal: name, Whose: sdk.WhoseOldProvider, Removable: true,
					What: fmt.Sprintf("Conditional Access policy %q (%s) does not apply to %s (%s)", p.DisplayName, p.State, name, list)})
			}
		}
	}
	return nil
}

const partnersPath = "/policies/crossTenantAccessPolicy/partners"

type partner struct {
	TenantID     string `json:"tenantId"`
	InboundTrust *struct {
		IsMfaAccepted             bool `json:"isMfaAccepted"`
		IsCompliantDeviceAccepted bool `json:"isCompliantDeviceAccepted"`
	} `json:"inboundTrust"`
}

// partners: a cross-tenant setting for the old provider's tenant (trusting
// its MFA or devices, letting its users in as B2B) outlives its guests.
func (s *m365Sweep) partners(ctx context.Context) error {
	if len(s.tenants) == 0 {
		return nil
	}
	ps, err := listOf[partner](ctx, s.g, partnersPath, nil)
	if st := statusOf(err); st == http.StatusForbidden {
		s.warn(sdk.LeftForPerson("Cross-tenant access settings not read", "The app may not read them (Policy.Read.All): in the Entra admin center, External Identities > Cross-tenant access settings, remove the organization of the old provider's tenant."))
		return nil
	}
	if err != nil {
		return err
	}
	for _, p := range ps {
		if !s.tenants[strings.ToLower(p.TenantID)] {
			continue
		}
		trust := "no inbound trust"
		if t := p.InboundTrust; t != nil && (t.IsMfaAccepted || t.IsCompliantDeviceAccepted) {
			trust = fmt.Sprintf("trusts its MFA (%v) and compliant devices (%v)", t.IsMfaAccepted, t.IsCompliantDeviceAccepted)
		}
		s.add(&sdk.Finding{Kind: kindPartner, Object: p.TenantID, Principal: "tenant " + p.TenantID, Whose: sdk.WhoseOldProvider, Removable: true,
			What: fmt.Sprintf("a cross-tenant access partner setting for the old provider's tenant %s (%s)", p.TenantID, trust)})
	}
	return nil
}

// taps: a Temporary Access Pass on an account of the old provider signs
// it in without its password or MFA.
func (s *m365Sweep) taps(ctx context.Context) error {
	ids := make([]string, 0, len(s.old))
	for id := range s.old {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		if !guidLike.MatchString(id) {
			continue // named by UPN only: not a user of this tenant
		}
		ms, err := listOf[method](ctx, s.g, tapPath(id), nil)
		if statusOf(err) == http.StatusNotFound {
			continue // a group, or deleted
		}
		if err != nil {
			return err
		}
		for _, m := range ms {
			s.add(&sdk.Finding{Kind: kindTAP, Object: id, Value: m.ID, Principal: s.old[id], Whose: sdk.WhoseOldProvider, Removable: true,
				What: fmt.Sprintf("%s has a Temporary Access Pass (method %s): it signs in without password or MFA", s.old[id], m.ID)})
		}
	}
	return nil
}

var guidLike = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)

func tapPath(userID string) string {
	return "/users/" + url.PathEscape(userID) + "/authentication/temporaryAccessPassMethods"
}

type federation struct {
	IssuerURI        string `json:"issuerUri"`
	PassiveSignInURI string `json:"passiveSignInUri"`
}

// federation: a domain federated to an identity provider signs its users
// in there. Unfederating moves every user's sign-in, so it is never
// automatic: an open item, the old provider's when its IdP names its
// domains.
func (s *m365Sweep) federation(ctx context.Context) error {
	for _, d := range s.fedDoms {
		fs, err := listOf[federation](ctx, s.g, "/domains/"+url.PathEscape(d)+"/federationConfiguration", nil)
		if err != nil {
			return err
		}
		for _, f := range fs {
			whose := sdk.WhoseUnlisted
			for _, od := range s.domains {
				if strings.Contains(strings.ToLower(f.IssuerURI+" "+f.PassiveSignInURI), od) {
					whose = sdk.WhoseOldProvider
				}
			}
			s.add(&sdk.Finding{Kind: kindFederation, Object: d, Value: f.IssuerURI, Principal: d, Whose: whose,
				What:   fmt.Sprintf("%s is federated: its users sign in at %s (issuer %s)", d, f.PassiveSignInURI, f.IssuerURI),
				Remedy: fmt.Sprintf("Plan the move of every %s user's sign-in first (password hash sync, or the new IdP), then: Update-MgDomain -DomainId '%s' -AuthenticationType Managed (Microsoft Graph PowerShell)", d, d)})
		}
	}
	return nil
}

// exchangeItem is what Graph cannot read: one open item with the
// Exchange Online PowerShell lines (Connect-ExchangeOnline first).
func exchangeItem(domains []string) sdk.Diagnostic {
	like := "*@" + domains[0]
	return sdk.LeftForPersonList("Persistence sweep: Exchange Online settings Graph cannot read", [][2]string{
		{"Mailbox forwarding (ForwardingSmtpAddress, ForwardingAddress) on any mailbox", "Get-Mailbox -ResultSize Unlimited | Where-Object { $_.ForwardingSmtpAddress -or $_.ForwardingAddress } | Format-Table Name,ForwardingSmtpAddress,ForwardingAddress,DeliverToMailboxAndForward; clear with Set-Mailbox NAME -ForwardingSmtpAddress $null -ForwardingAddress $null"},
		{"FullAccess on mailboxes for the old provider's accounts", fmt.Sprintf("Get-Mailbox -ResultSize Unlimited | Get-MailboxPermission | Where-Object { -not $_.IsInherited -and $_.User -like '%s' }; remove with Remove-MailboxPermission -Identity NAME -User USER -AccessRights FullAccess", like)},
		{"SendAs for the old provider's accounts", fmt.Sprintf("Get-RecipientPermission -ResultSize Unlimited | Where-Object { $_.Trustee -like '%s' }; remove with Remove-RecipientPermission -Identity NAME -Trustee USER -AccessRights SendAs", like)},
		{"Partner relationships (delegated admin, GDAP) of the old provider", "Microsoft 365 admin center > Settings > Partner relationships (https://admin.microsoft.com/#/partners): remove its roles and end the relationship"},
	})
}

type ficred struct {
	ID      string `json:"id"`
	Name    string `json:"name"`
	Issuer  string `json:"issuer"`
	Subject string `json:"subject"`
}

type spSecrets struct {
	servicePrincipal
	PasswordCredentials []struct {
		KeyID       string `json:"keyId"`
		DisplayName string `json:"displayName"`
	} `json:"passwordCredentials"`
}

// apps: who owns the tenant's app registrations and service principals
// (an owner adds a secret and signs in as the app), the external tokens an
// app trusts (federated identity credentials: a workload elsewhere signs
// in as it, no secret needed), and client secrets put on a service
// principal rather than its application (rare, and not shown where
// secrets are usually looked at).
func (s *m365Sweep) apps(ctx context.Context) error {
	apps, err := listOf[servicePrincipal](ctx, s.g, "/applications?$select=id,appId,displayName", nil)
	if err != nil {
		return err
	}
	sps, err := listOf[spSecrets](ctx, s.g, "/servicePrincipals?$select=id,appId,displayName,appOwnerOrganizationId,passwordCredentials", nil)
	if err != nil {
		return err
	}
	for _, a := range apps {
		if err := s.owners(ctx, "applications", a.ID, "app registration "+a.DisplayName); err != nil {
			return err
		}
		fics, err := listOf[ficred](ctx, s.g, "/applications/"+url.PathEscape(a.ID)+"/federatedIdentityCredentials", nil)
		if err != nil {
			return notFoundIsGone(err)
		}
		for _, f := range fics {
			fd := &sdk.Finding{Kind: kindFedCred, Object: a.ID, Value: f.ID, Principal: a.DisplayName, Whose: sdk.WhoseUnlisted,
				What:   fmt.Sprintf("app registration %q trusts tokens of %s for %s (federated credential %q): that workload signs in as the app without a secret", a.DisplayName, f.Issuer, f.Subject, f.Name),
				Remedy: fmt.Sprintf("If it is not the client's: Remove-MgApplicationFederatedIdentityCredential -ApplicationId '%s' -FederatedIdentityCredentialId '%s'", a.ID, f.ID)}
			if s.mentions(f.Issuer + " " + f.Subject + " " + f.Name) {
				fd.Whose, fd.Removable, fd.Remedy = sdk.WhoseOldProvider, true, ""
			}
			s.add(fd)
		}
	}
	for _, sp := range sps {
		if strings.EqualFold(sp.AppOwnerOrganizationID, microsoftTenant) || s.tenants[strings.ToLower(sp.AppOwnerOrganizationID)] {
			continue // Microsoft's own; the old provider's apps go whole (remove_service_principals)
		}
		if err := s.owners(ctx, "servicePrincipals", sp.ID, "service principal "+sp.DisplayName); err != nil {
			return err
		}
		for _, c := range sp.PasswordCredentials {
			f := &sdk.Finding{Kind: kindSPSecret, Object: sp.ID, Value: c.KeyID, Principal: sp.DisplayName, Whose: sdk.WhoseUnlisted,
				What:   fmt.Sprintf("service principal %q has a client secret %q (keyId %s) of its own", sp.DisplayName, c.DisplayName, c.KeyID),
				Remedy: fmt.Sprintf("If nobody at the client made it: Remove-MgServicePrincipalPassword -ServicePrincipalId '%s' -KeyId '%s'", sp.ID, c.KeyID)}
			if s.mentions(c.DisplayName) {
				f.Whose, f.Removable, f.Remedy = sdk.WhoseOldProvider, true, ""
			}
			s.add(f)
		}
	}
	return nil
}

// owners: the old provider's accounts among an object's owners.
func (s *m365Sweep) owners(ctx context.Context, set, id, what string) error {
	type owner struct {
		ID string `json:"id"`
	}
	list, err := listOf[owner](ctx, s.g, "/"+set+"/"+url.PathEscape(id)+"/owners?$select=id", nil)
	if err != nil {
		return notFoundIsGone(err)
	}
	for _, o := range list {
		upn, ok := s.old[o.ID]
		if !ok {
			continue
		}
		s.add(&sdk.Finding{Kind: kindAppOwner, Object: set + "/" + id, Value: o.ID, Principal: upn, Whose: sdk.WhoseOldProvider, Removable: true,
			What: fmt.Sprintf("%s owns %s: it can add a secret and sign in as the app", upn, what)})
	}
	return nil
}

type roleSchedule struct {
	ID               string `json:"id"`
	PrincipalID      string `json:"principalId"`
	RoleDefinitionID string `json:"roleDefinitionId"`
	DirectoryScopeID string `json:"directoryScopeId"`
}

// pimKinds are the PIM schedules and the request that removes one.
var pimKinds = []struct{ kind, schedules, requests, what string }{
	{kindPIMEligible, "roleEligibilitySchedules", "roleEligibilityScheduleRequests", "is eligible for"},
	{kindPIMActive, "roleAssignmentSchedules", "roleAssignmentScheduleRequests", "has an active PIM assignment of"},
}

// pim: a role the old provider's account may activate whenever it wants
// (eligible), or holds through PIM, outlives a removal of its direct role
// members.
func (s *m365Sweep) pim(ctx context.Context) error {
	type def struct {
		ID          string `json:"id"`
		DisplayName string `json:"displayName"`
	}
	defs, err := listOf[def](ctx, s.g, "/roleManagement/directory/roleDefinitions", nil)
	if err != nil {
		return err
	}
	names := map[string]string{}
	for _, d := range defs {
		names[d.ID] = d.DisplayName
	}
	for _, k := range pimKinds {
		scs, err := listOf[roleSchedule](ctx, s.g, "/roleManagement/directory/"+k.schedules, nil)
		if st := statusOf(err); st == http.StatusForbidden || st == http.StatusBadRequest {
			s.warn(sdk.LeftForPerson("PIM schedules not read", "The tenant has no Entra ID P2, or the app may not read them (RoleEligibilitySchedule.Read.Directory): check Privileged Identity Management > Microsoft Entra roles for the old provider's accounts."))
			return nil
		}
		if err != nil {
			return err
		}
		for _, sc := range scs {
			upn, ok := s.old[sc.PrincipalID]
			if !ok {
				continue
			}
			role := names[sc.RoleDefinitionID]
			if role == "" {
				role = sc.RoleDefinitionID
			}
			s.add(&sdk.Finding{Kind: k.kind, Object: sc.PrincipalID, Value: sc.RoleDefinitionID + "@" + sc.DirectoryScopeID, Principal: upn, Whose: sdk.WhoseOldProvider, Removable: true,
				What: fmt.Sprintf("%s %s %s (scope %s)", upn, k.what, role, sc.DirectoryScopeID)})
		}
	}
	return nil
}
