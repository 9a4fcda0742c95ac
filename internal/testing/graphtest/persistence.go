package graphtest

import (
	"encoding/json"
	"net/http"
	"sort"
	"strings"
	"time"
)

// What a departing admin leaves behind in Microsoft 365 without an account
// of its own: inbox rules that forward mail, Conditional Access
// exclusions, a federated domain, a cross-tenant partner. Each is served
// as Graph v1.0 does, checked against the CSDL like the rest.

// AddMessageRule gives a user's inbox a rule (a messageRule: displayName,
// actions, conditions...) and returns its id.
func (s *Server) AddMessageRule(userID string, rule map[string]any) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	id := newID()
	m := map[string]any{"id": id, "isEnabled": true, "isReadOnly": false, "hasError": false, "sequence": float64(len(s.users[userID].Rules) + 1)}
	for k, v := range rule {
		m[k] = v
	}
	for _, b := range s.schema.Check("messageRule", m) {
		s.violate("AddMessageRule: %s", b)
	}
	u := s.users[userID]
	u.Rules = append(u.Rules, m)
	return id
}

// MessageRules are the ids of a user's inbox rules.
func (s *Server) MessageRules(userID string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for _, r := range s.users[userID].Rules {
		out = append(out, r["id"].(string))
	}
	return out
}

// ForwardRule is an inbox rule that forwards every message to addr (or
// redirects it, with redirect).
func ForwardRule(name, addr string, redirect bool) map[string]any {
	to := []any{map[string]any{"emailAddress": map[string]any{"address": addr, "name": addr}}}
	action := "forwardTo"
	if redirect {
		action = "redirectTo"
	}
	return map[string]any{"displayName": name, "actions": map[string]any{action: to, "stopProcessingRules": false}, "conditions": map[string]any{}}
}

// SetNoMailbox makes a user one without an Exchange Online mailbox: its
// mail folders answer 404 MailboxNotEnabledForRESTAPI.
func (s *Server) SetNoMailbox(userID string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.users[userID].NoMailbox = true
}

// messageRules serves users/{id}/mailFolders/inbox/messageRules (GET)
// and .../messageRules/{rid} (DELETE).
func (s *Server) messageRules(w http.ResponseWriter, r *http.Request, typ string, seg []string) {
	folder, err := s.schema.NavigationType(typ, "mailFolders")
	if err == nil {
		err = s.schema.Navigation(folder, "messageRules")
	}
	if err != nil {
		s.violate("%v", err)
	}
	u := s.users[seg[1]]
	if u == nil {
		for _, x := range s.users {
			if strings.EqualFold(x.Props["userPrincipalName"].(string), seg[1]) {
				u = x
			}
		}
	}
	switch {
	case u == nil:
		graphError(w, 404, "ErrorInvalidUser", "The requested user '"+seg[1]+"' is invalid.")
		return
	case u.NoMailbox:
		graphError(w, 404, "MailboxNotEnabledForRESTAPI", "The mailbox is either inactive, soft-deleted, or is hosted on-premise.")
		return
	case !strings.EqualFold(seg[3], "inbox"):
		graphError(w, 400, "BadRequest", "Unsupported request: "+r.Method+" "+r.URL.Path)
		return
	}
	switch {
	case len(seg) == 5 && r.Method == "GET":
		out := []map[string]any{}
		for _, rule := range u.Rules {
			for _, b := range s.schema.Check("messageRule", rule) {
				s.violate("answer: %s", b)
			}
			out = append(out, rule)
		}
		writeJSON(w, map[string]any{"value": out})
	case len(seg) == 6 && r.Method == "DELETE":
		for i, rule := range u.Rules {
			if rule["id"] == seg[5] {
				u.Rules = append(u.Rules[:i], u.Rules[i+1:]...)
				w.WriteHeader(204)
				return
			}
		}
		graphError(w, 404, "ErrorItemNotFound", "The specified object was not found in the store.")
	default:
		graphError(w, 400, "BadRequest", "Unsupported request: "+r.Method+" "+r.URL.Path)
	}
}

// AddConditionalAccessPolicyFor adds an enabled policy whose users
// condition is users (includeUsers, excludeUsers, includeGroups,
// excludeGroups...: lists of ids or "All"); it returns its id.
func (s *Server) AddConditionalAccessPolicyFor(name string, users map[string]any) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	id := newID()
	u := map[string]any{}
	for _, k := range []string{"includeUsers", "excludeUsers", "includeGroups", "excludeGroups", "includeRoles", "excludeRoles"} {
		u[k] = []any{}
	}
	for k, v := range users {
		u[k] = v
	}
	p := map[string]any{"id": id, "displayName": name, "state": "enabled", "createdDateTime": "2025-03-01T10:00:00Z", "modifiedDateTime": "2025-03-01T10:00:00Z",
		"conditions": map[string]any{"users": u, "clientAppTypes": []any{"all"}}}
	for _, b := range s.schema.Check("conditionalAccessPolicy", p) {
		s.violate("AddConditionalAccessPolicyFor: %s", b)
	}
	s.policies = append(s.policies, p)
	return id
}

// PolicyUsers is a Conditional Access policy's users condition.
func (s *Server) PolicyUsers(id string) map[string]any {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, p := range s.policies {
		if p["id"] == id {
			return deepCopy(p["conditions"].(map[string]any)["users"]).(map[string]any)
		}
	}
	return nil
}

// PolicyConditions is a Conditional Access policy's conditions.
func (s *Server) PolicyConditions(id string) map[string]any {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, p := range s.policies {
		if p["id"] == id {
			return deepCopy(p["conditions"]).(map[string]any)
		}
	}
	return nil
}

// ModifyPolicy changes a policy as someone else would (its modifiedDateTime
// moves).
func (s *Server) ModifyPolicy(id string, users map[string]any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, p := range s.policies {
		if p["id"] == id {
			u := p["conditions"].(map[string]any)["users"].(map[string]any)
			for k, v := range users {
				u[k] = v
			}
			p["modifiedDateTime"] = time.Now().UTC().Format(time.RFC3339Nano)
		}
	}
}

// onePolicy serves identity/conditionalAccess/policies/{id}: GET, and
// PATCH, which replaces each top-level property it names whole (as Graph
// does with conditions: a client that sends only the users condition
// loses the others).
func (s *Server) onePolicy(w http.ResponseWriter, r *http.Request, typ, id string) {
	var p map[string]any
	for _, x := range s.policies {
		if x["id"] == id {
			p = x
		}
	}
	if p == nil {
		graphError(w, 404, "ResourceNotFound", "The policy was not found.")
		return
	}
	switch r.Method {
	case "GET":
		writeJSON(w, p)
	case "PATCH":
		var body map[string]any
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
			graphError(w, 400, "BadRequest", "Invalid JSON.")
			return
		}
		for _, b := range s.schema.Check(typ, body) {
			s.violate("PATCH %s: %s", r.URL.Path, b)
		}
		for k, v := range body {
			p[k] = v
		}
		p["modifiedDateTime"] = time.Now().UTC().Format(time.RFC3339Nano)
		w.WriteHeader(204)
	default:
		graphError(w, 405, "MethodNotAllowed", "Method not allowed.")
	}
}

// AddPartner adds a cross-tenant access partner configuration for a tenant
// (inbound trust of its MFA and compliant devices when trust).
func (s *Server) AddPartner(tenantID string, trust bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := map[string]any{"tenantId": tenantID, "isServiceProvider": true,
		"inboundTrust": map[string]any{"isMfaAccepted": trust, "isCompliantDeviceAccepted": trust, "isHybridAzureADJoinedDeviceAccepted": trust}}
	for _, b := range s.schema.Check("crossTenantAccessPolicyConfigurationPartner", p) {
		s.violate("AddPartner: %s", b)
	}
	s.partners = append(s.partners, p)
}

// Partners are the tenant ids of the partner configurations.
func (s *Server) Partners() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for _, p := range s.partners {
		out = append(out, p["tenantId"].(string))
	}
	return out
}

// partners serves policies/crossTenantAccessPolicy/partners (GET) and
// .../partners/{tenantId} (DELETE).
func (s *Server) partnerConfigs(w http.ResponseWriter, r *http.Request, typ string, seg []string) {
	switch {
	case len(seg) == 3 && r.Method == "GET":
		for _, p := range s.partners {
			for _, b := range s.schema.Check(typ, p) {
				s.violate("answer: %s", b)
			}
		}
		s.list(w, typ, s.partners)
	case len(seg) == 4 && r.Method == "DELETE":
		for i, p := range s.partners {
			if strings.EqualFold(p["tenantId"].(string), seg[3]) {
				s.partners = append(s.partners[:i], s.partners[i+1:]...)
				w.WriteHeader(204)
				return
			}
		}
		graphError(w, 404, "ResourceNotFound", "No partner configuration for tenant "+seg[3]+".")
	default:
		graphError(w, 400, "BadRequest", "Unsupported request: "+r.Method+" "+r.URL.Path)
	}
}

// FederateDomain makes a verified domain of the tenant federated to an
// identity provider (issuer, sign-in page).
func (s *Server) FederateDomain(domain, issuer, signIn string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.federated == nil {
		s.federated = map[string]map[string]any{}
	}
	f := map[string]any{"id": newID(), "displayName": "federation of " + domain, "issuerUri": issuer, "passiveSignInUri": signIn,
		"preferredAuthenticationProtocol": "wsFed", "signingCertificate": "MIIC..."}
	for _, b := range s.schema.Check("internalDomainFederation", f) {
		s.violate("FederateDomain: %s", b)
	}
	s.federated[domain] = f
}

// domains serves domains (GET: the tenant's verified domains, Federated
// where FederateDomain made them so) and domains/{id}/federationConfiguration.
func (s *Server) domains(w http.ResponseWriter, r *http.Request, typ string, seg []string) {
	switch {
	case len(seg) == 1 && r.Method == "GET":
		verified := s.VerifiedDomains
		if verified == nil {
			verified = []string{"client.example"}
		}
		var out []map[string]any
		for i, d := range verified {
			out = append(out, map[string]any{"id": d, "isVerified": true, "isDefault": i == 0, "isInitial": false, "isRoot": true, "isAdminManaged": true, "authenticationType": "Managed"})
		}
		out = append(out, map[string]any{"id": "client.onmicrosoft.com", "isVerified": true, "isDefault": false, "isInitial": true, "isRoot": true, "isAdminManaged": true, "authenticationType": "Managed"})
		names := make([]string, 0, len(s.federated))
		for d := range s.federated {
			names = append(names, d)
		}
		sort.Strings(names)
		for _, d := range names {
			out = append(out, map[string]any{"id": d, "isVerified": true, "isDefault": false, "isInitial": false, "isRoot": true, "isAdminManaged": true, "authenticationType": "Federated"})
		}
		for _, e := range out {
			for _, b := range s.schema.Check(typ, e) {
				s.violate("answer: %s", b)
			}
		}
		writeJSON(w, map[string]any{"value": out})
	case len(seg) == 3 && seg[2] == "federationConfiguration" && r.Method == "GET":
		ft, err := s.schema.NavigationType(typ, "federationConfiguration")
		if err != nil {
			s.violate("%v", err)
		}
		out := []map[string]any{}
		if f := s.federated[seg[1]]; f != nil {
			for _, b := range s.schema.Check(ft, f) {
				s.violate("answer: %s", b)
			}
			out = append(out, f)
		}
		writeJSON(w, map[string]any{"value": out})
	default:
		graphError(w, 400, "BadRequest", "Unsupported request: "+r.Method+" "+r.URL.Path)
	}
}

// persistence routes the requests of this file; false: not one of them.
func (s *Server) persistence(w http.ResponseWriter, r *http.Request, typ string, seg []string) bool {
	switch {
	case seg[0] == "users" && len(seg) >= 5 && seg[2] == "mailFolders" && seg[4] == "messageRules":
		s.messageRules(w, r, "user", seg)
	case seg[0] == "identity" && len(seg) == 4 && seg[1] == "conditionalAccess" && seg[2] == "policies":
		s.onePolicy(w, r, typ, seg[3])
	case seg[0] == "identity" && len(seg) == 3 && seg[1] == "conditionalAccess" && seg[2] == "namedLocations" && r.Method == "GET":
		s.list(w, typ, s.locations)
	case seg[0] == "policies" && len(seg) >= 3 && seg[1] == "crossTenantAccessPolicy" && seg[2] == "partners":
		s.partnerConfigs(w, r, typ, seg)
	case seg[0] == "domains":
		s.domains(w, r, typ, seg)
	case seg[0] == "roleManagement" && len(seg) == 3 && strings.Contains(seg[2], "Schedule"):
		s.roleSchedules(w, r, typ, seg)
	case (seg[0] == "applications" || seg[0] == "servicePrincipals") && len(seg) >= 3 && (seg[2] == "owners" || seg[2] == "federatedIdentityCredentials" || (seg[2] == "removePassword" && seg[0] == "servicePrincipals")):
		s.appObjects(w, r, typ, seg)
	default:
		return false
	}
	return true
}

// AddUserConsent records that a user consented for an app (service
// principal clientID) to scopes for itself (consentType Principal); it
// returns the grant's id.
func (s *Server) AddUserConsent(userID, clientID, scope string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	id := newID()
	g := map[string]any{"id": id, "clientId": clientID, "consentType": "Principal", "principalId": userID, "resourceId": newID(), "scope": scope}
	for _, b := range s.schema.Check("oAuth2PermissionGrant", g) {
		s.violate("AddUserConsent: %s", b)
	}
	s.grants[id] = g
	return id
}

// GrantExists says whether an oauth2PermissionGrant exists.
func (s *Server) GrantExists(id string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.grants[id] != nil
}

// AddOwner makes a user an owner of an application or a service
// principal (by its id).
func (s *Server) AddOwner(objectID, userID string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.owners == nil {
		s.owners = map[string][]string{}
	}
	s.owners[objectID] = append(s.owners[objectID], userID)
}

// Owners are the owners of an application or a service principal.
func (s *Server) Owners(objectID string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.owners[objectID]...)
}

// AddFederatedCredential trusts tokens of an external issuer for a
// subject on an application; it returns the credential's id.
func (s *Server) AddFederatedCredential(appID, name, issuer, subject string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fics == nil {
		s.fics = map[string][]map[string]any{}
	}
	id := newID()
	f := map[string]any{"id": id, "name": name, "issuer": issuer, "subject": subject, "audiences": []any{"api://AzureADTokenExchange"}}
	for _, b := range s.schema.Check("federatedIdentityCredential", f) {
		s.violate("AddFederatedCredential: %s", b)
	}
	s.fics[appID] = append(s.fics[appID], f)
	return id
}

// FederatedCredentials are the ids of an application's federated
// identity credentials.
func (s *Server) FederatedCredentials(appID string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for _, f := range s.fics[appID] {
		out = append(out, f["id"].(string))
	}
	return out
}

// AddSPPassword adds a client secret to a service principal (not its
// application); it returns its keyId.
func (s *Server) AddSPPassword(spID, displayName string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	id := newID()
	sp := s.sps[spID]
	list, _ := sp["passwordCredentials"].([]any)
	sp["passwordCredentials"] = append(list, map[string]any{"keyId": id, "displayName": displayName, "hint": "xyz", "startDateTime": "2025-01-01T00:00:00Z", "endDateTime": "2027-01-01T00:00:00Z"})
	return id
}

// SPPasswords are the keyIds of a service principal's client secrets.
func (s *Server) SPPasswords(spID string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	list, _ := s.sps[spID]["passwordCredentials"].([]any)
	for _, c := range list {
		out = append(out, c.(map[string]any)["keyId"].(string))
	}
	return out
}

// appObjects serves applications/{id}/owners and servicePrincipals/{id}/owners
// (GET, DELETE .../owners/{uid}/$ref), applications/{id}/federatedIdentityCredentials
// (GET, DELETE .../{fid}) and servicePrincipals/{id}/removePassword.
func (s *Server) appObjects(w http.ResponseWriter, r *http.Request, typ string, seg []string) {
	exists := (seg[0] == "applications" && s.apps[seg[1]] != nil) || (seg[0] == "servicePrincipals" && s.sps[seg[1]] != nil)
	if !exists {
		graphError(w, 404, "Request_ResourceNotFound", "Resource '"+seg[1]+"' does not exist or one of its queried reference-property objects are not present.")
		return
	}
	if seg[2] != "removePassword" {
		if err := s.schema.Navigation(typ, seg[2]); err != nil {
			s.violate("%s %s: %v", r.Method, r.URL.Path, err)
		}
	}
	switch {
	case seg[2] == "owners" && len(seg) == 3 && r.Method == "GET":
		out := []map[string]any{}
		for _, uid := range s.owners[seg[1]] {
			if u := s.users[uid]; u != nil {
				out = append(out, map[string]any{"@odata.type": "#microsoft.graph.user", "id": uid, "userPrincipalName": u.Props["userPrincipalName"]})
			}
		}
		writeJSON(w, map[string]any{"value": out})
	case seg[2] == "owners" && len(seg) == 5 && seg[4] == "$ref" && r.Method == "DELETE":
		list := s.owners[seg[1]]
		if !remove(&list, seg[3]) {
			graphError(w, 404, "Request_ResourceNotFound", "The owner is not an owner of the object.")
			return
		}
		s.owners[seg[1]] = list
		w.WriteHeader(204)
	case seg[2] == "federatedIdentityCredentials" && len(seg) == 3 && r.Method == "GET":
		out := s.fics[seg[1]]
		if out == nil {
			out = []map[string]any{}
		}
		writeJSON(w, map[string]any{"value": out})
	case seg[2] == "federatedIdentityCredentials" && len(seg) == 4 && r.Method == "DELETE":
		for i, f := range s.fics[seg[1]] {
			if f["id"] == seg[3] {
				s.fics[seg[1]] = append(s.fics[seg[1]][:i], s.fics[seg[1]][i+1:]...)
				w.WriteHeader(204)
				return
			}
		}
		graphError(w, 404, "Request_ResourceNotFound", "No such federated identity credential.")
	case seg[2] == "removePassword" && len(seg) == 3 && r.Method == "POST":
		if err := s.schema.Action(typ, "removePassword"); err != nil {
			s.violate("POST %s: %v", r.URL.Path, err)
		}
		var body struct {
			KeyID string `json:"keyId"`
		}
		json.NewDecoder(r.Body).Decode(&body)
		sp := s.sps[seg[1]]
		list, _ := sp["passwordCredentials"].([]any)
		for i, c := range list {
			if c.(map[string]any)["keyId"] == body.KeyID {
				sp["passwordCredentials"] = append(list[:i:i], list[i+1:]...)
				w.WriteHeader(204)
				return
			}
		}
		graphError(w, 404, "Request_ResourceNotFound", "No password credential with keyId "+body.KeyID+".")
	default:
		graphError(w, 400, "BadRequest", "Unsupported request: "+r.Method+" "+r.URL.Path)
	}
}

// AddRoleSchedule gives a principal a PIM schedule of a role (its
// definition's id) at the tenant: eligible (it may activate the role when
// it wants) or an active assignment; it returns the schedule's id.
func (s *Server) AddRoleSchedule(principalID, roleDefinitionID string, eligible bool) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	id := newID()
	typ := "unifiedRoleAssignmentSchedule"
	sc := map[string]any{"id": id, "principalId": principalID, "roleDefinitionId": roleDefinitionID, "directoryScopeId": "/", "status": "Provisioned",
		"memberType": "Direct", "createdUsing": id, "createdDateTime": "2025-03-01T10:00:00Z", "scheduleInfo": map[string]any{"startDateTime": "2025-03-01T10:00:00Z"}}
	if eligible {
		typ = "unifiedRoleEligibilitySchedule"
		s.eligible = append(s.eligible, sc)
	} else {
		sc["assignmentType"] = "Assigned"
		s.activeSchedules = append(s.activeSchedules, sc)
	}
	for _, b := range s.schema.Check(typ, sc) {
		s.violate("AddRoleSchedule: %s", b)
	}
	return id
}

// RoleSchedules are the ids of the PIM schedules (eligible, or active) of
// a principal.
func (s *Server) RoleSchedules(principalID string, eligible bool) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	list := s.activeSchedules
	if eligible {
		list = s.eligible
	}
	var out []string
	for _, sc := range list {
		if sc["principalId"] == principalID {
			out = append(out, sc["id"].(string))
		}
	}
	return out
}

// roleSchedules serves roleManagement/directory/role{Eligibility,Assignment}Schedules
// (GET, $filter on principalId) and the ...ScheduleRequests that remove
// one (POST, action adminRemove).
func (s *Server) roleSchedules(w http.ResponseWriter, r *http.Request, typ string, seg []string) {
	list := &s.activeSchedules
	if strings.HasPrefix(seg[2], "roleEligibility") {
		list = &s.eligible
	}
	switch {
	case strings.HasSuffix(seg[2], "Schedules") && len(seg) == 3 && r.Method == "GET":
		match, _, err := s.compileFilter(typ, r.URL.Query().Get("$filter"))
		if err != nil {
			graphError(w, 400, "Request_UnsupportedQuery", err.Error())
			return
		}
		var out []map[string]any
		for _, sc := range *list {
			if match(sc) {
				out = append(out, sc)
			}
		}
		s.list(w, typ, out)
	case strings.HasSuffix(seg[2], "ScheduleRequests") && len(seg) == 3 && r.Method == "POST":
		var body map[string]any
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
			graphError(w, 400, "BadRequest", "Invalid JSON.")
			return
		}
		for _, b := range s.schema.Check(typ, body) {
			s.violate("POST %s: %s", r.URL.Path, b)
		}
		if body["action"] != "adminRemove" {
			graphError(w, 400, "BadRequest", "Only adminRemove is served here.")
			return
		}
		for i, sc := range *list {
			if sc["principalId"] == body["principalId"] && sc["roleDefinitionId"] == body["roleDefinitionId"] && sc["directoryScopeId"] == body["directoryScopeId"] {
				*list = append((*list)[:i], (*list)[i+1:]...)
				answer := map[string]any{"id": newID(), "status": "Revoked", "action": "adminRemove", "principalId": body["principalId"],
					"roleDefinitionId": body["roleDefinitionId"], "directoryScopeId": body["directoryScopeId"], "createdDateTime": time.Now().UTC().Format(time.RFC3339)}
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(201)
				json.NewEncoder(w).Encode(answer)
				return
			}
		}
		graphError(w, 400, "RoleAssignmentDoesNotExist", "The Role assignment does not exist.")
	default:
		graphError(w, 400, "BadRequest", "Unsupported request: "+r.Method+" "+r.URL.Path)
	}
}

// AddNamedLocation adds an IP named location (one CIDR range), trusted or
// not; it returns its id.
func (s *Server) AddNamedLocation(name, cidr string, trusted bool) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	id := newID()
	l := map[string]any{"@odata.type": "#microsoft.graph.ipNamedLocation", "id": id, "displayName": name, "isTrusted": trusted,
		"createdDateTime": "2025-03-01T10:00:00Z", "ipRanges": []any{map[string]any{"@odata.type": "#microsoft.graph.iPv4CidrRange", "cidrAddress": cidr}}}
	for _, b := range s.schema.Check("namedLocation", l) {
		s.violate("AddNamedLocation: %s", b)
	}
	s.locations = append(s.locations, l)
	return id
}

// SetPolicyLocations gives a policy a locations condition: every location
// but those excluded.
func (s *Server) SetPolicyLocations(policyID string, exclude ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ex := []any{}
	for _, e := range exclude {
		ex = append(ex, e)
	}
	for _, p := range s.policies {
		if p["id"] == policyID {
			p["conditions"].(map[string]any)["locations"] = map[string]any{"includeLocations": []any{"All"}, "excludeLocations": ex}
			for _, b := range s.schema.Check("conditionalAccessPolicy", p) {
				s.violate("SetPolicyLocations: %s", b)
			}
		}
	}
}
