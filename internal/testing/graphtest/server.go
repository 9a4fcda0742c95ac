// Package graphtest is a Microsoft Graph v1.0 test server for the entra
// plugin: an OAuth2 token endpoint and discovery document that azidentity
// accepts unmodified, and the Graph endpoints the plugin uses, with state,
// paging by @odata.nextLink, $filter/$select for what the plugin sends,
// ConsistencyLevel for advanced queries, and 429 injection. Every request
// and every answer is checked against Microsoft's published v1.0 schema
// (a trimmed copy of the CSDL): what the schema does not have is recorded
// as a violation, which the tests assert there are none of.
package graphtest

import (
	"bytes"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchover/switchover/internal/testing/testca"
)

// The tenant and the app the plugin signs in as.
const (
	Tenant       = "11111111-2222-3333-4444-555555555555"
	ClientID     = "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"
	ClientSecret = "graphtest-client-secret-Q9"
)

// User is a user in the server's directory.
type User struct {
	Props    map[string]any
	Password string
	// Methods are its authentication methods (each with @odata.type).
	Methods []map[string]any
	// TAP is the code of its Temporary Access Pass (Graph shows it only
	// in the answer that creates it).
	TAP string
	// Rules are its inbox rules (messageRule).
	Rules []map[string]any
	// NoMailbox: it has no Exchange Online mailbox.
	NoMailbox bool
}

// Server is a running Graph test server.
type Server struct {
	URL    string // https://127.0.0.1:PORT: the authority host and the Graph endpoint
	CAFile string
	// Throttle answers every Nth Graph request with 429 and Retry-After: 1.
	Throttle int
	// ClientCert is the app's registered certificate: a client assertion
	// signed by its key signs the app in (as a client secret does).
	ClientCert *x509.Certificate
	// DenyPolicies answers a read of the Conditional Access policies 403,
	// as for an app without Policy.Read.All.
	DenyPolicies bool
	// PoliciesUnauthorized answers that read 401 InvalidAuthenticationToken,
	// whatever the token (a sign-in that does not work for this API).
	PoliciesUnauthorized bool
	// NoPremium answers a read of signInActivity 403, as a tenant without
	// Entra ID P1 does.
	NoPremium bool
	// PageSize caps the users of one page (Graph may serve fewer than
	// $top asks for, and the client must follow @odata.nextLink).
	PageSize int
	// RateLimit is how many Graph requests a second the tenant takes,
	// each request of a $batch counted (as Graph does); more get 429 with
	// Retry-After in whole seconds.
	RateLimit float64
	// Latency is added to every Graph call (as a real tenant has).
	Latency time.Duration
	// TokenLifetime: a token is refused (401 InvalidAuthenticationToken,
	// "Lifetime validation failed") this long after it was issued, though
	// it said it lives an hour: a revocation or clock skew, as a long run
	// meets it.
	TokenLifetime time.Duration
	// NextLinkHost spells the host of @odata.nextLink otherwise than the
	// client asked (localhost for 127.0.0.1, another case, :443).
	NextLinkHost string
	// VerifiedDomains are the tenant's custom domains (default
	// client.example), besides client.onmicrosoft.com.
	VerifiedDomains []string
	// Redirect answers every Graph GET with 307 to this origin (such as
	// http://127.0.0.1:PORT of a decoy).
	Redirect      string
	deleteOnWrite []string
	expired       int
	// Stale makes reads lag writes, as Graph's replicas do: a GET sees
	// the directory as it was Stale ago (a write is visible to reads only
	// Stale after it was made, a deleted user is still listed until then).
	Stale     time.Duration
	history   []stamped // the directory before each write of the last Stale
	srv       *httptest.Server
	schema    *Schema
	mu        sync.Mutex
	users     map[string]*User
	order     []string
	roles     map[string]*role
	sps       map[string]map[string]any // service principals
	spOrder   []string
	grants    map[string]map[string]any   // oauth2PermissionGrants
	assigns   map[string][]map[string]any // appRoleAssignments by service principal
	groups    map[string]*role            // groups (id, displayName, members)
	apps      map[string]map[string]any   // application registrations
	tokens    map[string]time.Time        // when each expires (zero: never)
	tokenReqs int
	devices   map[string]*deviceSignIn // device code sign-ins by device code
	skus      []map[string]any
	policies  []map[string]any            // Conditional Access
	partners  []map[string]any            // cross-tenant access partner configurations
	owners    map[string][]string         // owners of applications and service principals
	fics      map[string][]map[string]any // federated identity credentials by application
	locations []map[string]any            // Conditional Access named locations
	// PIM: eligible and active role schedules
	eligible, activeSchedules []map[string]any
	federated                 map[string]map[string]any // federation configuration by domain
	requests                  int
	batches                   int
	throttled                 int
	bucket                    float64 // RateLimit's bucket, and when it was filled
	bucketAt                  time.Time
	violations                []string
}

type role struct {
	ID, DisplayName, TemplateID string
	Members                     []string
}

// Start starts a server for a test; t's end stops it and fails the test if
// anything broke the schema.
func Start(t testing.TB) *Server {
	t.Helper()
	s, err := New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		s.Close()
		if v := s.Violations(); len(v) > 0 {
			t.Errorf("the Graph schema was broken:\n%s", strings.Join(v, "\n"))
		}
	})
	return s
}

// New starts a server (for benchmarks and demos; tests use Start), its CA
// certificate written in dir; Close stops it.
func New(dir string) (*Server, error) {
	sch, err := LoadSchema()
	if err != nil {
		return nil, err
	}
	s := &Server{schema: sch, users: map[string]*User{}, roles: map[string]*role{}, tokens: map[string]time.Time{},
		sps: map[string]map[string]any{}, grants: map[string]map[string]any{}, assigns: map[string][]map[string]any{}, groups: map[string]*role{}, apps: map[string]map[string]any{}}
	ca, err := testca.New("graphtest CA")
	if err != nil {
		return nil, err
	}
	cert, err := ca.Issue([]string{"localhost"}, "127.0.0.1")
	if err != nil {
		return nil, err
	}
	s.CAFile = filepath.Join(dir, "graph-ca.pem")
	if err := os.WriteFile(s.CAFile, ca.PEM, 0o600); err != nil {
		return nil, err
	}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(s.serve))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{cert.TLS}}
	srv.StartTLS()
	s.srv = srv
	s.URL = srv.URL
	return s, nil
}

// Close stops the server.
func (s *Server) Close() { s.srv.Close() }

// Violations are what requests or answers had that the schema does not.
func (s *Server) Violations() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.violations...)
}

// Throttled counts the 429 answers given.
func (s *Server) Throttled() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.throttled
}

func newID() string {
	b := make([]byte, 16)
	rand.Read(b)
	h := hex.EncodeToString(b)
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

// AddUser adds a user (userType Member unless guest) and returns its id.
func (s *Server) AddUser(upn, password string, guest bool) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	id := newID()
	typ := "Member"
	mail := upn
	if guest {
		typ = "Guest"
		// A guest's UPN in the inviting tenant: alice_oldmsp.example#EXT#@client.onmicrosoft.com
		mail = upn
		upn = strings.ReplaceAll(upn, "@", "_") + "#EXT#@client.onmicrosoft.com"
	}
	s.users[id] = &User{Password: password, Props: map[string]any{"id": id, "userPrincipalName": upn, "displayName": strings.Split(upn, "@")[0],
		"mail": mail, "accountEnabled": true, "userType": typ, "signInSessionsValidFromDateTime": "2026-01-01T00:00:00Z",
		"lastPasswordChangeDateTime": "2026-01-01T00:00:00Z"},
		Methods: []map[string]any{{"@odata.type": "#microsoft.graph.passwordAuthenticationMethod", "id": "28c10230-6103-485e-b985-444c60001490"}}}
	s.order = append(s.order, id)
	return id
}

// AddAuthMethod gives a user an authentication method of a type (such as
// phoneAuthenticationMethod) with properties; it returns the method's id.
func (s *Server) AddAuthMethod(userID, typ string, props map[string]any) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	id := newID()
	m := map[string]any{"@odata.type": "#microsoft.graph." + typ, "id": id}
	for k, v := range props {
		m[k] = v
	}
	u := s.users[userID]
	u.Methods = append(u.Methods, m)
	return id
}

// AuthMethods lists the types of a user's methods.
func (s *Server) AuthMethods(userID string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for _, m := range s.users[userID].Methods {
		out = append(out, strings.TrimPrefix(m["@odata.type"].(string), "#microsoft.graph."))
	}
	return out
}

// AddRole activates a directory role with members.
func (s *Server) AddRole(name, templateID string, members ...string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	id := newID()
	s.roles[id] = &role{ID: id, DisplayName: name, TemplateID: templateID, Members: members}
	return id
}

// AddServicePrincipal adds an app's service principal owned by the tenant
// ownerTenant, with a delegated grant of scopes (if any) and app role
// assignments (appRoles of them); it returns its id.
func (s *Server) AddServicePrincipal(name, ownerTenant, scopes string, appRoles int) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	id := newID()
	s.sps[id] = map[string]any{"id": id, "appId": newID(), "displayName": name, "appDisplayName": name, "appOwnerOrganizationId": ownerTenant,
		"servicePrincipalType": "Application", "accountEnabled": true}
	s.spOrder = append(s.spOrder, id)
	if scopes != "" {
		gid := newID()
		s.grants[gid] = map[string]any{"id": gid, "clientId": id, "consentType": "AllPrincipals", "resourceId": newID(), "scope": scopes}
	}
	for i := 0; i < appRoles; i++ {
		s.assigns[id] = append(s.assigns[id], map[string]any{"id": newID(), "appRoleId": newID(), "principalId": id, "principalType": "ServicePrincipal",
			"resourceId": newID(), "resourceDisplayName": "Microsoft Graph", "createdDateTime": "2025-03-01T10:00:00Z"})
	}
	return id
}

// ServicePrincipalExists reports whether a service principal exists, and
// how many grants name it.
func (s *Server) ServicePrincipalExists(id string) (bool, int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, g := range s.grants {
		if g["clientId"] == id {
			n++
		}
	}
	return s.sps[id] != nil, n
}

// SetSynced makes a user one that Entra Connect synchronizes from
// on-premises AD (onPremisesSyncEnabled): Graph refuses to change its
// accountEnabled and password, as the real one does.
func (s *Server) SetSynced(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.users[id].Props["onPremisesSyncEnabled"] = true
}

// SyncDisabled is what Entra Connect does once the AD account of a synced
// user is disabled: the cloud user becomes disabled.
func (s *Server) SyncDisabled(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.users[id].Props["accountEnabled"] = false
}

// UserProps is a copy of a user's properties.
func (s *Server) UserProps(id string) map[string]any {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string]any{}
	for k, v := range s.users[id].Props {
		out[k] = v
	}
	return out
}

// Password is a user's current password (what a sign-in would check).
func (s *Server) Password(id string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.users[id].Password
}

// AddApplication registers an app with password credentials (by display
// name) and key credentials (by display name); it returns its object id.
func (s *Server) AddApplication(name string, passwords, keys []string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	id := newID()
	var pw, ks []any
	for _, n := range passwords {
		pw = append(pw, map[string]any{"keyId": newID(), "displayName": n, "hint": "abc", "startDateTime": "2025-01-01T00:00:00Z", "endDateTime": "2027-01-01T00:00:00Z"})
	}
	for _, n := range keys {
		ks = append(ks, map[string]any{"keyId": newID(), "displayName": n, "type": "AsymmetricX509Cert", "usage": "Verify", "startDateTime": "2025-01-01T00:00:00Z", "endDateTime": "2027-01-01T00:00:00Z"})
	}
	s.apps[id] = map[string]any{"id": id, "appId": newID(), "displayName": name, "passwordCredentials": orEmpty(pw), "keyCredentials": orEmpty(ks)}
	return id
}

func orEmpty(v []any) []any {
	if v == nil {
		return []any{}
	}
	return v
}

// Credentials lists an application's credential display names.
func (s *Server) Credentials(id string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for _, k := range []string{"passwordCredentials", "keyCredentials"} {
		for _, c := range s.apps[id][k].([]any) {
			out = append(out, k+":"+c.(map[string]any)["displayName"].(string))
		}
	}
	sort.Strings(out)
	return out
}

// AddGroup adds a security group with members.
func (s *Server) AddGroup(name string, members ...string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	id := newID()
	s.groups[id] = &role{ID: id, DisplayName: name, Members: members}
	return id
}

// GroupMembers lists a group's member ids.
func (s *Server) GroupMembers(id string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.groups[id].Members...)
}

// RoleMembers lists a role's member ids.
func (s *Server) RoleMembers(roleID string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.roles[roleID].Members...)
}

func (s *Server) violate(format string, a ...any) {
	s.violations = append(s.violations, fmt.Sprintf(format, a...))
}

func graphError(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("request-id", newID())
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]any{"error": map[string]any{"code": code, "message": msg,
		"innerError": map[string]any{"date": time.Now().UTC().Format(time.RFC3339), "request-id": newID()}}})
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(v)
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := r.URL.Path
	switch {
	case strings.HasSuffix(p, "/v2.0/.well-known/openid-configuration"):
		s.discovery(w, r)
	case strings.HasSuffix(p, "/oauth2/v2.0/devicecode") && r.Method == "POST":
		s.deviceCode(w, r)
	case strings.HasSuffix(p, "/oauth2/v2.0/token") && (r.FormValue("grant_type") == "device_code" || r.FormValue("grant_type") == "urn:ietf:params:oauth:grant-type:device_code"):
		s.deviceToken(w, r)
	case strings.HasSuffix(p, "/oauth2/v2.0/token"):
		s.token(w, r)
	case p == "/v1.0/$batch" && r.Method == "POST":
		s.latency()
		if !s.tokenValid(w, r) {
			return
		}
		s.batch(w, r)
	case strings.HasPrefix(p, "/v1.0/") && s.Redirect != "" && r.Method == "GET":
		// A misconfigured proxy, or a hostile one, sends the client on.
		w.Header().Set("Location", s.Redirect+r.URL.RequestURI())
		w.WriteHeader(http.StatusTemporaryRedirect)
	case strings.HasPrefix(p, "/v1.0/"):
		s.latency()
		s.one(w, r)
	default:
		http.NotFound(w, r)
	}
}

// latency waits the server's latency, with the lock released.
func (s *Server) latency() {
	if s.Latency > 0 {
		s.mu.Unlock()
		time.Sleep(s.Latency)
		s.mu.Lock()
	}
}

// one serves one Graph request (alone, or one of a $batch): each counts
// against the throttle, as in Graph.
func (s *Server) one(w http.ResponseWriter, r *http.Request) {
	s.requests++
	if s.Throttle > 0 && s.requests%s.Throttle == 0 {
		s.throttle(w, 1)
		return
	}
	if wait, ok := s.rateTake(); !ok {
		s.throttle(w, wait)
		return
	}
	if !s.tokenValid(w, r) {
		return
	}
	if r.Method != "GET" && len(s.deleteOnWrite) > 0 {
		for _, id := range s.deleteOnWrite {
			s.deleteUser(id)
		}
		s.deleteOnWrite = nil
	}
	if s.Stale > 0 {
		now := time.Now()
		if r.Method == "GET" {
			if old := s.replicaAt(now.Add(-s.Stale)); old != nil {
				cur := s.view()
				s.setView(*old)
				defer s.setView(cur)
			}
		} else {
			s.history = append(s.history, stamped{at: now, dir: s.copyView()})
		}
	}
	s.graph(w, r, strings.Split(strings.TrimPrefix(r.URL.Path, "/v1.0/"), "/"))
}

// directory is what a replica holds.
type directory struct {
	users   map[string]*User
	order   []string
	roles   map[string]*role
	groups  map[string]*role
	sps     map[string]map[string]any
	spOrder []string
	grants  map[string]map[string]any
	assigns map[string][]map[string]any
	apps    map[string]map[string]any
}

// stamped is the directory as it was before a write at a time.
type stamped struct {
	at  time.Time
	dir directory
}

func (s *Server) view() directory {
	return directory{s.users, s.order, s.roles, s.groups, s.sps, s.spOrder, s.grants, s.assigns, s.apps}
}

func (s *Server) setView(d directory) {
	s.users, s.order, s.roles, s.groups, s.sps, s.spOrder, s.grants, s.assigns, s.apps = d.users, d.order, d.roles, d.groups, d.sps, d.spOrder, d.grants, d.assigns, d.apps
}

// replicaAt is the directory as it was at t (nil: as it is now): before
// the first write made after t. History older than every replica's lag is
// dropped.
func (s *Server) replicaAt(t time.Time) *directory {
	for len(s.history) > 0 && !s.history[0].at.After(t) {
		s.history = s.history[1:]
	}
	if len(s.history) == 0 {
		return nil
	}
	return &s.history[0].dir
}

func (s *Server) copyView() directory {
	d := directory{users: map[string]*User{}, order: append([]string(nil), s.order...), roles: copyRoles(s.roles), groups: copyRoles(s.groups),
		sps: copyObjects(s.sps), spOrder: append([]string(nil), s.spOrder...), grants: copyObjects(s.grants), assigns: map[string][]map[string]any{}, apps: copyObjects(s.apps)}
	for id, u := range s.users {
		c := &User{Props: deepCopy(u.Props).(map[string]any), Password: u.Password, NoMailbox: u.NoMailbox}
		for _, m := range u.Methods {
			c.Methods = append(c.Methods, deepCopy(m).(map[string]any))
		}
		for _, m := range u.Rules {
			c.Rules = append(c.Rules, deepCopy(m).(map[string]any))
		}
		d.users[id] = c
	}
	for k, list := range s.assigns {
		for _, a := range list {
			d.assigns[k] = append(d.assigns[k], deepCopy(a).(map[string]any))
		}
	}
	return d
}

func copyRoles(m map[string]*role) map[string]*role {
	out := make(map[string]*role, len(m))
	for k, r := range m {
		c := *r
		c.Members = append([]string(nil), r.Members...)
		out[k] = &c
	}
	return out
}

func copyObjects(m map[string]map[string]any) map[string]map[string]any {
	out := make(map[string]map[string]any, len(m))
	for k, v := range m {
		out[k] = deepCopy(v).(map[string]any)
	}
	return out
}

func deepCopy(v any) any {
	switch x := v.(type) {
	case map[string]any:
		m := make(map[string]any, len(x))
		for k, e := range x {
			m[k] = deepCopy(e)
		}
		return m
	case []any:
		l := make([]any, len(x))
		for i, e := range x {
			l[i] = deepCopy(e)
		}
		return l
	case []map[string]any:
		l := make([]map[string]any, len(x))
		for i, e := range x {
			l[i] = deepCopy(e).(map[string]any)
		}
		return l
	case []string:
		return append([]string(nil), x...)
	}
	return v
}

func (s *Server) throttle(w http.ResponseWriter, seconds int) {
	s.throttled++
	w.Header().Set("Retry-After", strconv.Itoa(seconds))
	graphError(w, http.StatusTooManyRequests, "TooManyRequests", "Too many requests.")
}

// rateTake takes one request from the RateLimit bucket (which holds one
// second's worth); when it is empty, the whole seconds until it is not.
func (s *Server) rateTake() (int, bool) {
	if s.RateLimit <= 0 {
		return 0, true
	}
	now := time.Now()
	if s.bucketAt.IsZero() {
		s.bucket = s.RateLimit
	} else {
		s.bucket = math.Min(s.RateLimit, s.bucket+now.Sub(s.bucketAt).Seconds()*s.RateLimit)
	}
	s.bucketAt = now
	if s.bucket >= 1 {
		s.bucket--
		return 0, true
	}
	return int(math.Ceil((1 - s.bucket) / s.RateLimit)), false
}

// batch serves a JSON $batch: up to 20 requests, each served as if alone
// (and each counted against the throttle), answered in one response.
func (s *Server) batch(w http.ResponseWriter, r *http.Request) {
	var in struct {
		Requests []struct {
			ID        string            `json:"id"`
			Method    string            `json:"method"`
			URL       string            `json:"url"`
			Headers   map[string]string `json:"headers"`
			Body      json.RawMessage   `json:"body"`
			DependsOn []string          `json:"dependsOn"`
		} `json:"requests"`
	}
	if err := json.NewDecoder(r.Body).Decode(&in); err != nil || len(in.Requests) == 0 {
		s.violate("POST /$batch: not a batch: %v", err)
		graphError(w, 400, "BadRequest", "Invalid batch payload format.")
		return
	}
	if len(in.Requests) > 20 {
		s.violate("POST /$batch: %d requests, Graph takes 20", len(in.Requests))
		graphError(w, 400, "BadRequest", "Number of batch requests exceeds the maximum of 20.")
		return
	}
	s.batches++
	seen := map[string]bool{}
	var out []map[string]any
	for _, sub := range in.Requests {
		if sub.ID == "" || seen[sub.ID] {
			s.violate("POST /$batch: request id %q is empty or not unique", sub.ID)
		}
		seen[sub.ID] = true
		if strings.HasPrefix(sub.URL, "http") || strings.HasPrefix(sub.URL, "/v1.0") {
			s.violate("POST /$batch: url %q is not relative to the version", sub.URL)
		}
		req, err := http.NewRequest(sub.Method, "https://"+r.Host+"/v1.0/"+strings.TrimPrefix(sub.URL, "/"), bytes.NewReader(sub.Body))
		if err != nil {
			s.violate("POST /$batch: request %s: %v", sub.ID, err)
			continue
		}
		for k, v := range sub.Headers {
			req.Header.Set(k, v)
		}
		if len(sub.Body) > 0 && req.Header.Get("Content-Type") == "" {
			s.violate("POST /$batch: request %s has a body and no Content-Type", sub.ID)
		}
		req.Header.Set("Authorization", r.Header.Get("Authorization"))
		rec := httptest.NewRecorder()
		s.one(rec, req)
		hdr := map[string]string{}
		for k := range rec.Header() {
			hdr[k] = rec.Header().Get(k)
		}
		resp := map[string]any{"id": sub.ID, "status": rec.Code, "headers": hdr}
		if b := bytes.TrimSpace(rec.Body.Bytes()); len(b) > 0 {
			resp["body"] = json.RawMessage(b)
		}
		out = append(out, resp)
	}
	writeJSON(w, map[string]any{"responses": out})
}

// Requests counts the Graph requests served (each of a $batch counts);
// Batches the $batch calls.
func (s *Server) Requests() (requests, batches int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.requests, s.batches
}

func (s *Server) discovery(w http.ResponseWriter, r *http.Request) {
	base := "https://" + r.Host + "/" + Tenant
	writeJSON(w, map[string]any{
		"issuer": base + "/v2.0", "token_endpoint": base + "/oauth2/v2.0/token", "authorization_endpoint": base + "/oauth2/v2.0/authorize",
		"device_authorization_endpoint": base + "/oauth2/v2.0/devicecode", "jwks_uri": base + "/discovery/v2.0/keys",
		"response_types_supported":              []string{"code", "id_token", "code id_token", "token id_token", "token"},
		"token_endpoint_auth_methods_supported": []string{"client_secret_post", "private_key_jwt", "client_secret_basic"},
		"tenant_region_scope":                   "EU", "cloud_instance_name": "graphtest.local",
	})
}

func (s *Server) token(w http.ResponseWriter, r *http.Request) {
	r.ParseForm()
	if !strings.Contains(r.URL.Path, Tenant) {
		w.WriteHeader(400)
		writeJSON(w, map[string]any{"error": "invalid_request", "error_description": "AADSTS90002: Tenant not found."})
		return
	}
	secretOK := r.Form.Get("client_secret") == ClientSecret && r.Form.Get("client_secret") != ""
	assertionOK := r.Form.Get("client_assertion_type") == "urn:ietf:params:oauth:client-assertion-type:jwt-bearer" && s.assertionValid(r.Form.Get("client_assertion"))
	if r.Form.Get("client_id") != ClientID || !(secretOK || assertionOK) {
		w.WriteHeader(401)
		writeJSON(w, map[string]any{"error": "invalid_client", "error_description": "AADSTS7000215: Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID.", "error_codes": []int{7000215}})
		return
	}
	if !strings.Contains(" "+r.Form.Get("scope")+" ", "/.default ") {
		w.WriteHeader(400)
		writeJSON(w, map[string]any{"error": "invalid_scope", "error_description": "AADSTS1002012: The provided value for scope is not valid."})
		return
	}
	writeJSON(w, map[string]any{"token_type": "Bearer", "expires_in": 3599, "ext_expires_in": 3599, "access_token": s.newToken()})
}

// newToken issues a token: it says it lives an hour (as Entra's do), and
// with TokenLifetime the server refuses it earlier (revoked, clock skew).
func (s *Server) newToken() string {
	s.tokenReqs++
	tok := "graphtest." + newID()
	var exp time.Time
	if s.TokenLifetime > 0 {
		exp = time.Now().Add(s.TokenLifetime)
	}
	s.tokens[tok] = exp
	return tok
}

// tokenValid answers 401 as Graph does for a token it does not take.
func (s *Server) tokenValid(w http.ResponseWriter, r *http.Request) bool {
	exp, ok := s.tokens[strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")]
	switch {
	case !ok:
		graphError(w, http.StatusUnauthorized, "InvalidAuthenticationToken", "Access token is empty or invalid.")
		return false
	case !exp.IsZero() && time.Now().After(exp):
		s.expired++
		graphError(w, http.StatusUnauthorized, "InvalidAuthenticationToken", "Lifetime validation failed, the token is expired.")
		return false
	}
	return true
}

// TokenRequests counts the tokens issued; Expired the requests refused
// for an expired token.
func (s *Server) TokenRequests() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.tokenReqs
}

// Expired counts the requests refused with an expired token.
func (s *Server) Expired() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.expired
}

// list answers a collection (one page), each item checked against typ.
func (s *Server) list(w http.ResponseWriter, typ string, items []map[string]any) {
	for _, it := range items {
		for _, b := range s.schema.Check(typ, it) {
			s.violate("answer: %s", b)
		}
	}
	if items == nil {
		items = []map[string]any{}
	}
	writeJSON(w, map[string]any{"value": items})
}

// AddSKU adds a subscribed SKU (a licence) with its consumed units.
func (s *Server) AddSKU(partNumber string, consumed int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.skus = append(s.skus, map[string]any{"id": newID(), "skuId": newID(), "skuPartNumber": partNumber, "consumedUnits": float64(consumed),
		"capabilityStatus": "Enabled", "appliesTo": "User"})
}

// AddConditionalAccessPolicy adds a Conditional Access policy (state
// enabled, disabled or enabledForReportingButNotEnforced).
func (s *Server) AddConditionalAccessPolicy(name, state string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.policies = append(s.policies, map[string]any{"id": newID(), "displayName": name, "state": state, "createdDateTime": "2025-03-01T10:00:00Z"})
}

// SetLastSignIn records a user's last sign-in (signInActivity).
func (s *Server) SetLastSignIn(id string, at time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.users[id].Props["signInActivity"] = map[string]any{"lastSignInDateTime": at.UTC().Format(time.RFC3339)}
}

// roleDefinition is the id of a role's definition: its template id, as in
// Graph for the built-in roles.
func (ro *role) definition() string {
	if ro.TemplateID != "" {
		return ro.TemplateID
	}
	return ro.ID
}

// roleManagement serves roleManagement/directory/roleDefinitions and
// roleAssignments (list by principalId, delete): the assignments are the
// members of the directory roles, one truth seen two ways.
func (s *Server) roleManagement(w http.ResponseWriter, r *http.Request, typ string, seg []string) {
	ids := make([]string, 0, len(s.roles))
	for id := range s.roles {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	switch {
	case len(seg) == 3 && seg[2] == "roleDefinitions" && r.Method == "GET":
		var out []map[string]any
		for _, id := range ids {
			ro := s.roles[id]
			out = append(out, map[string]any{"id": ro.definition(), "displayName": ro.DisplayName, "templateId": ro.definition(), "isBuiltIn": true, "isEnabled": true})
		}
		s.list(w, typ, out)
	case len(seg) == 3 && seg[2] == "roleAssignments" && r.Method == "GET":
		match, _, err := s.compileFilter(typ, r.URL.Query().Get("$filter"))
		if err != nil {
			graphError(w, 400, "Request_UnsupportedQuery", err.Error())
			return
		}
		var out []map[string]any
		for _, id := range ids {
			ro := s.roles[id]
			for _, m := range ro.Members {
				a := map[string]any{"id": ro.definition() + "_" + m, "principalId": m, "roleDefinitionId": ro.definition(), "directoryScopeId": "/"}
				if match(a) {
					out = append(out, a)
				}
			}
		}
		s.list(w, typ, out)
	case len(seg) == 4 && seg[2] == "roleAssignments" && r.Method == "DELETE":
		def, member, _ := strings.Cut(seg[3], "_")
		for _, id := range ids {
			if ro := s.roles[id]; ro.definition() == def && remove(&ro.Members, member) {
				w.WriteHeader(204)
				return
			}
		}
		graphError(w, 404, "Request_ResourceNotFound", "The role assignment does not exist.")
	default:
		graphError(w, 400, "BadRequest", "Unsupported request: "+r.Method+" "+r.URL.Path)
	}
}

// deviceSignIn is a device code sign-in: waiting for a person, signed in
// (upn) or declined.
type deviceSignIn struct {
	userCode, upn string
	declined      bool
}

// deviceCode starts a device code sign-in (a public client asks for it).
func (s *Server) deviceCode(w http.ResponseWriter, r *http.Request) {
	if !strings.Contains(r.URL.Path, Tenant) {
		w.WriteHeader(400)
		writeJSON(w, map[string]any{"error": "invalid_request", "error_description": "AADSTS90002: Tenant not found."})
		return
	}
	if r.FormValue("client_id") != ClientID || !strings.Contains(" "+r.FormValue("scope")+" ", "/.default ") {
		w.WriteHeader(400)
		writeJSON(w, map[string]any{"error": "invalid_request", "error_description": "AADSTS700016: Application not found in the directory, or the scope is not valid."})
		return
	}
	code := strings.ToUpper(newID()[:9])
	dc := newID() + newID()
	if s.devices == nil {
		s.devices = map[string]*deviceSignIn{}
	}
	s.devices[dc] = &deviceSignIn{userCode: code}
	writeJSON(w, map[string]any{"user_code": code, "device_code": dc, "verification_uri": "https://microsoft.com/devicelogin",
		"expires_in": 900, "interval": 1,
		"message": "To sign in, use a web browser to open the page https://microsoft.com/devicelogin and enter the code " + code + " to authenticate."})
}

// SignInWithCode is the person at the keyboard entering the code shown
// and signing in as upn (or declining); false when no sign-in waits for it.
func (s *Server) SignInWithCode(userCode, upn string, decline bool) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, d := range s.devices {
		if d.userCode == userCode && d.upn == "" && !d.declined {
			d.upn, d.declined = upn, decline
			return true
		}
	}
	return false
}

// deviceToken answers the polls of a device code sign-in.
func (s *Server) deviceToken(w http.ResponseWriter, r *http.Request) {
	d := s.devices[r.FormValue("device_code")]
	fail := func(code, desc string) {
		w.WriteHeader(400)
		writeJSON(w, map[string]any{"error": code, "error_description": desc})
	}
	switch {
	case d == nil || r.FormValue("client_id") != ClientID:
		fail("expired_token", "AADSTS70020: The provided value for the input parameter 'device_code' is not valid. This device code has expired.")
	case d.declined:
		fail("authorization_declined", "AADSTS70000: The user declined the sign-in.")
	case d.upn == "":
		fail("authorization_pending", "AADSTS70016: OAuth 2.0 device flow error. Authorization is pending. Continue polling.")
	default:
		delete(s.devices, r.FormValue("device_code"))
		oid := newID()
		b64 := func(v any) string {
			j, _ := json.Marshal(v)
			return base64.RawURLEncoding.EncodeToString(j)
		}
		now := time.Now().Unix()
		idToken := b64(map[string]any{"alg": "none", "typ": "JWT"}) + "." + b64(map[string]any{"aud": ClientID,
			"iss": "https://" + r.Host + "/" + Tenant + "/v2.0", "tid": Tenant, "oid": oid, "sub": oid, "preferred_username": d.upn,
			"name": d.upn, "iat": now, "nbf": now, "exp": now + 3600, "ver": "2.0"}) + "."
		tok := s.newToken()
		writeJSON(w, map[string]any{"token_type": "Bearer", "expires_in": 3599, "ext_expires_in": 3599, "access_token": tok,
			"scope": r.FormValue("scope"), "refresh_token": "graphtest-refresh." + newID(), "id_token": idToken,
			"client_info": b64(map[string]any{"uid": oid, "utid": Tenant})})
	}
}

// graph serves /v1.0/...: users, users/{id}, users/{id}/revokeSignInSessions,
// directoryRoles, directoryRoles/{id}/members/{uid}/$ref.
func (s *Server) graph(w http.ResponseWriter, r *http.Request, seg []string) {
	typ, err := s.schema.EntitySet(seg[0])
	if err != nil {
		s.violate("%s %s: %v", r.Method, r.URL.Path, err)
		graphError(w, 400, "BadRequest", "Resource not found for the segment '"+seg[0]+"'.")
		return
	}
	if seg[0] == "identity" || seg[0] == "roleManagement" || seg[0] == "policies" {
		// A singleton: the type is where its navigations lead; after a
		// collection comes a key.
		collection := false
		for _, sg := range seg[1:] {
			p, nav, ok := s.schema.property(typ, sg)
			switch {
			case ok && nav:
				typ, collection = short(p.Type), strings.HasPrefix(p.Type, "Collection(")
			case collection:
				collection = false // a key
			default:
				s.violate("%s %s: navigation %s.%s is not in the Graph v1.0 schema", r.Method, r.URL.Path, typ, sg)
				graphError(w, 400, "BadRequest", "Resource not found for the segment '"+sg+"'.")
				return
			}
		}
	}
	q := r.URL.Query()
	sel := splitList(q.Get("$select"))
	for _, b := range s.schema.Properties(typ, sel...) {
		s.violate("$select: %s", b)
	}
	if s.persistence(w, r, typ, seg) {
		return
	}
	switch {
	case seg[0] == "users" && len(seg) == 1 && r.Method == "GET":
		s.listUsers(w, r, typ, sel)
	case seg[0] == "users" && len(seg) == 2:
		s.oneUser(w, r, typ, seg[1], sel)
	case seg[0] == "users" && len(seg) == 3 && seg[2] == "memberOf" && r.Method == "GET":
		if err := s.schema.Navigation(typ, "memberOf"); err != nil {
			s.violate("%v", err)
		}
		var out []map[string]any
		ids := make([]string, 0, len(s.groups))
		for id := range s.groups {
			ids = append(ids, id)
		}
		sort.Strings(ids)
		for _, id := range ids {
			for _, m := range s.groups[id].Members {
				if m == seg[1] {
					g := map[string]any{"@odata.type": "#microsoft.graph.group", "id": id, "displayName": s.groups[id].DisplayName}
					for _, b := range s.schema.Check("group", g) {
						s.violate("answer: %s", b)
					}
					out = append(out, g)
				}
			}
		}
		for _, ro := range s.roles {
			for _, m := range ro.Members {
				if m == seg[1] {
					out = append(out, map[string]any{"@odata.type": "#microsoft.graph.directoryRole", "id": ro.ID, "displayName": ro.DisplayName})
				}
			}
		}
		if out == nil {
			out = []map[string]any{}
		}
		writeJSON(w, map[string]any{"value": out})
	case seg[0] == "groups" && len(seg) == 5 && seg[2] == "members" && seg[4] == "$ref" && r.Method == "DELETE":
		if err := s.schema.Navigation(typ, "members"); err != nil {
			s.violate("%v", err)
		}
		g := s.groups[seg[1]]
		if g == nil || !remove(&g.Members, seg[3]) {
			graphError(w, 404, "Request_ResourceNotFound", "The member is not in the group.")
			return
		}
		w.WriteHeader(204)
	case seg[0] == "users" && len(seg) >= 4 && seg[2] == "authentication":
		s.authMethods(w, r, typ, seg)
	case seg[0] == "users" && len(seg) == 3 && r.Method == "POST":
		if err := s.schema.Action(typ, seg[2]); err != nil {
			s.violate("POST %s: %v", r.URL.Path, err)
			graphError(w, 400, "BadRequest", "Unknown action.")
			return
		}
		u := s.users[seg[1]]
		if u == nil {
			graphError(w, 404, "Request_ResourceNotFound", fmt.Sprintf("Resource '%s' does not exist or one of its queried reference-property objects are not present.", seg[1]))
			return
		}
		u.Props["signInSessionsValidFromDateTime"] = time.Now().UTC().Format(time.RFC3339)
		writeJSON(w, map[string]any{"@odata.context": "https://graph.microsoft.com/v1.0/$metadata#Edm.Boolean", "value": true})
	case seg[0] == "applications":
		s.applications(w, r, typ, seg, sel)
	case seg[0] == "subscribedSkus" && len(seg) == 1 && r.Method == "GET":
		s.list(w, typ, s.skus)
	case seg[0] == "identity" && len(seg) == 3 && seg[1] == "conditionalAccess" && seg[2] == "policies" && r.Method == "GET":
		if s.DenyPolicies {
			graphError(w, 403, "Authorization_RequestDenied", "Insufficient privileges to complete the operation.")
			return
		}
		if s.PoliciesUnauthorized {
			graphError(w, 401, "InvalidAuthenticationToken", "Access token validation failure.")
			return
		}
		s.list(w, typ, s.policies)
	case seg[0] == "roleManagement" && len(seg) >= 3 && seg[1] == "directory":
		s.roleManagement(w, r, typ, seg)
	case seg[0] == "servicePrincipals":
		s.servicePrincipals(w, r, typ, seg, sel)
	case seg[0] == "oauth2PermissionGrants":
		s.permissionGrants(w, r, typ, seg)
	case seg[0] == "directoryRoles" && len(seg) == 1 && r.Method == "GET":
		s.listRoles(w, r, typ)
	case seg[0] == "directoryRoles" && len(seg) == 5 && seg[2] == "members" && seg[4] == "$ref" && r.Method == "DELETE":
		if err := s.schema.Navigation(typ, "members"); err != nil {
			s.violate("%v", err)
		}
		ro := s.roles[seg[1]]
		if ro == nil || !remove(&ro.Members, seg[3]) {
			graphError(w, 404, "Request_ResourceNotFound", "The member is not in the role.")
			return
		}
		w.WriteHeader(204)
	default:
		graphError(w, 400, "BadRequest", "Unsupported request: "+r.Method+" "+r.URL.Path)
	}
}

func remove(list *[]string, id string) bool {
	for i, x := range *list {
		if x == id {
			*list = append((*list)[:i], (*list)[i+1:]...)
			return true
		}
	}
	return false
}

func splitList(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

// project is an entity with only the selected properties (the default set
// without $select), checked against the schema.
func (s *Server) project(typ string, props map[string]any, sel []string) map[string]any {
	out := map[string]any{}
	if len(sel) == 0 {
		sel = []string{"id", "userPrincipalName", "displayName", "mail", "accountEnabled"}
	}
	for _, k := range sel {
		if v, ok := props[k]; ok {
			out[k] = v
		}
	}
	for _, b := range s.schema.Check(typ, out) {
		s.violate("answer: %s", b)
	}
	return out
}

// matchFilter evaluates a filter on one entity (see compileFilter).
func (s *Server) matchFilter(typ, filter string, props map[string]any) (bool, bool, error) {
	match, advanced, err := s.compileFilter(typ, filter)
	if err != nil {
		return false, advanced, err
	}
	return match(props), advanced, nil
}

// compileFilter reads the filters the plugin sends: endswith(PROP,'x'),
// PROP eq 'x', PROP in ('x','y'), joined by " or " / " and " (no
// nesting). advanced says whether Graph takes it only as an advanced query.
func (s *Server) compileFilter(typ, filter string) (match func(map[string]any) bool, advanced bool, err error) {
	if filter == "" {
		return func(map[string]any) bool { return true }, false, nil
	}
	type pred = func(map[string]any) bool
	var ors [][]pred
	for _, or := range strings.Split(filter, " or ") {
		var all []pred
		for _, term := range strings.Split(or, " and ") {
			term = strings.TrimSpace(term)
			var prop string
			var p pred
			if left, list, ok := strings.Cut(term, " in ("); ok {
				prop = strings.TrimLeft(left, "( ")
				vals, err := odataStrings(strings.TrimSuffix(strings.TrimSpace(list), ")"))
				if err != nil {
					return nil, advanced, fmt.Errorf("filter term %q: %v", term, err)
				}
				set := map[string]bool{}
				for _, v := range vals {
					set[strings.ToLower(v)] = true
				}
				p = func(m map[string]any) bool { return set[strings.ToLower(fmt.Sprint(m[prop]))] }
			} else {
				term = strings.TrimSpace(strings.Trim(term, "()"))
				var val string
				switch {
				case strings.HasPrefix(term, "endswith("):
					advanced = true
					prop, val, ok = strings.Cut(strings.TrimSuffix(strings.TrimPrefix(term, "endswith("), ")"), ",")
					val = strings.ToLower(strings.Trim(strings.TrimSpace(val), "'"))
					p = func(m map[string]any) bool {
						got, _ := m[prop].(string)
						return strings.HasSuffix(strings.ToLower(got), val)
					}
				case strings.Contains(term, " eq "):
					prop, val, ok = strings.Cut(term, " eq ")
					val = strings.Trim(strings.TrimSpace(val), "'")
					p = func(m map[string]any) bool { return fmt.Sprint(m[prop]) == val }
				}
				if !ok {
					return nil, advanced, fmt.Errorf("unsupported filter term %q", term)
				}
			}
			for _, b := range s.schema.Properties(typ, prop) {
				s.violate("$filter: %s", b)
			}
			all = append(all, p)
		}
		ors = append(ors, all)
	}
	return func(m map[string]any) bool {
		for _, all := range ors {
			ok := true
			for _, p := range all {
				ok = ok && p(m)
			}
			if ok {
				return true
			}
		}
		return false
	}, advanced, nil
}

// odataStrings reads 'a','b”c' (OData string literals, ' doubled).
func odataStrings(list string) ([]string, error) {
	var out []string
	for rest := strings.TrimSpace(list); rest != ""; {
		if rest[0] != '\'' {
			return nil, fmt.Errorf("%q is not a quoted string", rest)
		}
		var v strings.Builder
		i := 1
		for ; i < len(rest); i++ {
			if rest[i] == '\'' {
				if i+1 < len(rest) && rest[i+1] == '\'' {
					v.WriteByte('\'')
					i++
					continue
				}
				break
			}
			v.WriteByte(rest[i])
		}
		if i >= len(rest) {
			return nil, fmt.Errorf("an unterminated string")
		}
		out = append(out, v.String())
		rest = strings.TrimSpace(rest[i+1:])
		if rest != "" {
			if rest[0] != ',' {
				return nil, fmt.Errorf("%q: a comma is missing", rest)
			}
			if rest = strings.TrimSpace(rest[1:]); rest == "" {
				return nil, fmt.Errorf("a value is missing after the last comma")
			}
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("an empty list")
	}
	return out, nil
}

func (s *Server) listUsers(w http.ResponseWriter, r *http.Request, typ string, sel []string) {
	q := r.URL.Query()
	top := 100
	if t, err := strconv.Atoi(q.Get("$top")); err == nil && t > 0 && t <= 999 {
		top = t
	}
	if s.PageSize > 0 && top > s.PageSize {
		top = s.PageSize // Graph may serve fewer than $top asks
	}
	skip, _ := strconv.Atoi(q.Get("$skiptoken"))
	match, advanced, err := s.compileFilter(typ, q.Get("$filter"))
	if err != nil {
		graphError(w, 400, "Request_UnsupportedQuery", err.Error())
		return
	}
	for _, p := range sel {
		if p == "signInActivity" && s.NoPremium {
			graphError(w, 403, "Authentication_RequestFromNonPremiumTenantOrB2CTenant", "Neither tenant is B2C or tenant doesn't have premium license")
			return
		}
	}
	if advanced && (r.Header.Get("ConsistencyLevel") != "eventual" || q.Get("$count") != "true") {
		// As Graph answers an advanced query without them.
		graphError(w, 400, "Request_UnsupportedQuery", "Operator 'endsWith' is not supported because the required parameters might be missing. Try adding $count=true query parameter and ConsistencyLevel:eventual header.")
		return
	}
	var matched []map[string]any
	for _, id := range s.order {
		if u := s.users[id]; match(u.Props) {
			matched = append(matched, u.Props)
		}
	}
	page := []map[string]any{}
	for i := skip; i < len(matched) && i < skip+top; i++ {
		page = append(page, s.project(typ, matched[i], sel))
	}
	resp := map[string]any{"@odata.context": "https://graph.microsoft.com/v1.0/$metadata#users", "value": page}
	if q.Get("$count") == "true" {
		resp["@odata.count"] = len(matched)
	}
	if skip+top < len(matched) {
		next := *r.URL
		nq := next.Query()
		nq.Set("$skiptoken", strconv.Itoa(skip+top))
		next.RawQuery = nq.Encode()
		host := r.Host
		if s.NextLinkHost != "" {
			host = s.NextLinkHost
		}
		resp["@odata.nextLink"] = "https://" + host + next.RequestURI()
	}
	writeJSON(w, resp)
}

func (s *Server) oneUser(w http.ResponseWriter, r *http.Request, typ, key string, sel []string) {
	var u *User
	if key, _ = url.PathUnescape(key); s.users[key] != nil {
		u = s.users[key]
	} else {
		for _, x := range s.users {
			if strings.EqualFold(fmt.Sprint(x.Props["userPrincipalName"]), key) {
				u = x
			}
		}
	}
	if u == nil {
		graphError(w, 404, "Request_ResourceNotFound", fmt.Sprintf("Resource '%s' does not exist or one of its queried reference-property objects are not present.", key))
		return
	}
	switch r.Method {
	case "GET":
		writeJSON(w, s.project(typ, u.Props, sel))
	case "PATCH":
		var body map[string]any
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
			graphError(w, 400, "BadRequest", "Invalid JSON.")
			return
		}
		bad := s.schema.Check(typ, body)
		for _, b := range bad {
			s.violate("PATCH body: %s", b)
		}
		if len(bad) > 0 {
			graphError(w, 400, "Request_BadRequest", "Invalid property.")
			return
		}
		if synced, _ := u.Props["onPremisesSyncEnabled"].(bool); synced {
			// Graph keeps these for Entra Connect: they are mastered in AD.
			for _, k := range []string{"accountEnabled", "passwordProfile"} {
				if _, ok := body[k]; ok {
					graphError(w, 400, "Request_BadRequest", "Unable to update the specified properties for on-premises mastered Directory Sync objects or objects currently undergoing migration.")
					return
				}
			}
		}
		for k, v := range body {
			if k == "passwordProfile" {
				pp, _ := v.(map[string]any)
				pw, _ := pp["password"].(string)
				if len(pw) < 8 {
					graphError(w, 400, "Request_BadRequest", "The specified password does not comply with password complexity requirements. Please provide a different password.")
					return
				}
				u.Password = pw
				u.Props["lastPasswordChangeDateTime"] = time.Now().UTC().Format(time.RFC3339Nano)
				continue
			}
			u.Props[k] = v
		}
		w.WriteHeader(204)
	case "DELETE":
		for id, x := range s.users {
			if x == u {
				delete(s.users, id)
				remove(&s.order, id)
			}
		}
		w.WriteHeader(204)
	default:
		graphError(w, 405, "Request_BadRequest", "Method not allowed.")
	}
}

// DeleteUserOnNextWrite deletes a user just before the next write
// request is served: someone deleted it between the client's read and
// its write.
func (s *Server) DeleteUserOnNextWrite(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.deleteOnWrite = append(s.deleteOnWrite, id)
}

// DeleteUser deletes a user, as someone in the admin center would (with
// Stale, reads still see it for that long).
func (s *Server) DeleteUser(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.deleteUser(id)
}

func (s *Server) deleteUser(id string) {
	if s.Stale > 0 {
		s.history = append(s.history, stamped{at: time.Now(), dir: s.copyView()})
	}
	delete(s.users, id)
	remove(&s.order, id)
	for _, r := range s.roles {
		remove(&r.Members, id)
	}
	for _, gr := range s.groups {
		remove(&gr.Members, id)
	}
}

// Exists reports whether a user exists.
func (s *Server) Exists(id string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.users[id] != nil
}

func (s *Server) listRoles(w http.ResponseWriter, r *http.Request, typ string) {
	expand := r.URL.Query().Get("$expand")
	if expand != "" {
		if err := s.schema.Navigation(typ, expand); err != nil {
			s.violate("$expand: %v", err)
		}
	}
	ids := make([]string, 0, len(s.roles))
	for id := range s.roles {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	var out []map[string]any
	for _, id := range ids {
		ro := s.roles[id]
		e := map[string]any{"id": ro.ID, "displayName": ro.DisplayName, "roleTemplateId": ro.TemplateID}
		for _, b := range s.schema.Check(typ, e) {
			s.violate("answer: %s", b)
		}
		if expand == "members" {
			var ms []map[string]any
			for _, m := range ro.Members {
				if u := s.users[m]; u != nil {
					mo := map[string]any{"@odata.type": "#microsoft.graph.user", "id": m, "userPrincipalName": u.Props["userPrincipalName"]}
					for _, b := range s.schema.Check("user", mo) {
						s.violate("answer: %s", b)
					}
					ms = append(ms, mo)
				}
			}
			e["members"] = ms
		}
		out = append(out, e)
	}
	writeJSON(w, map[string]any{"@odata.context": "https://graph.microsoft.com/v1.0/$metadata#directoryRoles", "value": out})
}

func (s *Server) servicePrincipals(w http.ResponseWriter, r *http.Request, typ string, seg []string, sel []string) {
	switch {
	case len(seg) == 1 && r.Method == "GET":
		var out []map[string]any
		for _, id := range s.spOrder {
			if sp := s.sps[id]; sp != nil {
				o := map[string]any{}
				for _, k := range sel {
					if v, ok := sp[k]; ok {
						o[k] = v
					}
				}
				if len(sel) == 0 {
					o = sp
				}
				for _, b := range s.schema.Check(typ, o) {
					s.violate("answer: %s", b)
				}
				out = append(out, o)
			}
		}
		writeJSON(w, map[string]any{"value": out})
	case len(seg) == 3 && seg[2] == "appRoleAssignments" && r.Method == "GET":
		if err := s.schema.Navigation(typ, "appRoleAssignments"); err != nil {
			s.violate("%v", err)
		}
		if s.sps[seg[1]] == nil {
			graphError(w, 404, "Request_ResourceNotFound", "No such service principal.")
			return
		}
		list := s.assigns[seg[1]]
		for _, a := range list {
			for _, b := range s.schema.Check("appRoleAssignment", a) {
				s.violate("answer: %s", b)
			}
		}
		if list == nil {
			list = []map[string]any{}
		}
		writeJSON(w, map[string]any{"value": list})
	case len(seg) == 2 && r.Method == "DELETE":
		if s.sps[seg[1]] == nil {
			graphError(w, 404, "Request_ResourceNotFound", "No such service principal.")
			return
		}
		delete(s.sps, seg[1])
		delete(s.assigns, seg[1])
		for gid, g := range s.grants {
			if g["clientId"] == seg[1] {
				delete(s.grants, gid)
			}
		}
		w.WriteHeader(204)
	default:
		graphError(w, 400, "BadRequest", "Unsupported request: "+r.Method+" "+r.URL.Path)
	}
}

func (s *Server) permissionGrants(w http.ResponseWriter, r *http.Request, typ string, seg []string) {
	switch {
	case len(seg) == 1 && r.Method == "GET":
		filter := r.URL.Query().Get("$filter")
		var out []map[string]any
		ids := make([]string, 0, len(s.grants))
		for id := range s.grants {
			ids = append(ids, id)
		}
		sort.Strings(ids)
		for _, id := range ids {
			g := s.grants[id]
			ok, _, err := s.matchFilter(typ, filter, g)
			if err != nil {
				graphError(w, 400, "Request_UnsupportedQuery", err.Error())
				return
			}
			if ok {
				for _, b := range s.schema.Check(typ, g) {
					s.violate("answer: %s", b)
				}
				out = append(out, g)
			}
		}
		if out == nil {
			out = []map[string]any{}
		}
		writeJSON(w, map[string]any{"value": out})
	case len(seg) == 2 && r.Method == "DELETE":
		if s.grants[seg[1]] == nil {
			graphError(w, 404, "Request_ResourceNotFound", "No such grant.")
			return
		}
		delete(s.grants, seg[1])
		w.WriteHeader(204)
	default:
		graphError(w, 400, "BadRequest", "Unsupported request: "+r.Method+" "+r.URL.Path)
	}
}

// authMethods serves users/{id}/authentication/methods (GET) and
// users/{id}/authentication/{kind}Methods/{mid} (DELETE).
func (s *Server) authMethods(w http.ResponseWriter, r *http.Request, typ string, seg []string) {
	if err := s.schema.Navigation(typ, "authentication"); err != nil {
		s.violate("%v", err)
	}
	u := s.users[seg[1]]
	if u == nil {
		graphError(w, 404, "Request_ResourceNotFound", "No such user.")
		return
	}
	nav := seg[3]
	if err := s.schema.Navigation("authentication", nav); err != nil {
		s.violate("%s %s: %v", r.Method, r.URL.Path, err)
		graphError(w, 400, "BadRequest", "Unknown segment "+nav)
		return
	}
	const tapType = "#microsoft.graph.temporaryAccessPassAuthenticationMethod"
	switch {
	case len(seg) == 4 && r.Method == "POST" && nav == "temporaryAccessPassMethods":
		s.createTAP(w, r, u)
	case len(seg) == 4 && r.Method == "GET" && nav == "temporaryAccessPassMethods":
		var out []map[string]any
		for _, m := range u.Methods {
			if m["@odata.type"] == tapType {
				out = append(out, m)
			}
		}
		writeJSON(w, map[string]any{"value": out})
	case len(seg) == 4 && r.Method == "GET" && nav == "methods":
		for _, m := range u.Methods {
			mt := strings.TrimPrefix(m["@odata.type"].(string), "#microsoft.graph.")
			for _, b := range s.schema.Check(mt, m) {
				s.violate("answer: %s", b)
			}
		}
		writeJSON(w, map[string]any{"value": u.Methods})
	case len(seg) == 5 && r.Method == "DELETE":
		p, _, _ := s.schema.property("authentication", nav)
		want := "#microsoft.graph." + short(p.Type)
		for i, m := range u.Methods {
			if m["id"] == seg[4] {
				if m["@odata.type"] != want {
					s.violate("DELETE %s: a %v deleted through %s", r.URL.Path, m["@odata.type"], nav)
					graphError(w, 400, "BadRequest", "The method is not of this kind.")
					return
				}
				if want == "#microsoft.graph.passwordAuthenticationMethod" {
					graphError(w, 400, "BadRequest", "The password method cannot be deleted.")
					return
				}
				u.Methods = append(u.Methods[:i], u.Methods[i+1:]...)
				w.WriteHeader(204)
				return
			}
		}
		graphError(w, 404, "Request_ResourceNotFound", "No such authentication method.")
	default:
		graphError(w, 400, "BadRequest", "Unsupported request: "+r.Method+" "+r.URL.Path)
	}
}

// createTAP makes a user's Temporary Access Pass as Entra does: one per
// user (a new one replaces it), a lifetime of 10 to 43200 minutes, the
// code in this answer only.
func (s *Server) createTAP(w http.ResponseWriter, r *http.Request, u *User) {
	var body map[string]any
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
		graphError(w, 400, "BadRequest", "Invalid JSON.")
		return
	}
	for _, b := range s.schema.Check("temporaryAccessPassAuthenticationMethod", body) {
		s.violate("POST %s: %s", r.URL.Path, b)
	}
	minutes, _ := body["lifetimeInMinutes"].(float64)
	if minutes < 10 || minutes > 43200 {
		graphError(w, 400, "BadRequest", "lifetimeInMinutes must be between 10 and 43200.")
		return
	}
	start := time.Now().UTC()
	if v, ok := body["startDateTime"].(string); ok {
		t, err := time.Parse(time.RFC3339, v)
		if err != nil {
			graphError(w, 400, "BadRequest", "Invalid startDateTime.")
			return
		}
		start = t.UTC()
	}
	kept := u.Methods[:0]
	for _, m := range u.Methods {
		if m["@odata.type"] != "#microsoft.graph.temporaryAccessPassAuthenticationMethod" {
			kept = append(kept, m)
		}
	}
	b := make([]byte, 6)
	rand.Read(b)
	u.TAP = "TAP-" + hex.EncodeToString(b)
	usable := !time.Now().Before(start)
	reason := "EnabledByPolicy"
	if !usable {
		reason = "NotYetValid"
	}
	m := map[string]any{"@odata.type": "#microsoft.graph.temporaryAccessPassAuthenticationMethod", "id": newID(),
		"createdDateTime": time.Now().UTC().Format(time.RFC3339), "startDateTime": start.Format(time.RFC3339),
		"lifetimeInMinutes": minutes, "isUsableOnce": body["isUsableOnce"] == true, "isUsable": usable, "methodUsabilityReason": reason}
	u.Methods = append(kept, m)
	answer := map[string]any{"temporaryAccessPass": u.TAP}
	for k, v := range m {
		answer[k] = v
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(201)
	json.NewEncoder(w).Encode(answer)
}

// TemporaryAccessPass is a user's TAP: its code and its properties (nil
// when it has none).
func (s *Server) TemporaryAccessPass(userID string) (string, map[string]any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	u := s.users[userID]
	for _, m := range u.Methods {
		if m["@odata.type"] == "#microsoft.graph.temporaryAccessPassAuthenticationMethod" {
			out := map[string]any{}
			for k, v := range m {
				out[k] = v
			}
			return u.TAP, out
		}
	}
	return "", nil
}

func (s *Server) applications(w http.ResponseWriter, r *http.Request, typ string, seg []string, sel []string) {
	switch {
	case len(seg) == 1 && r.Method == "GET":
		ids := make([]string, 0, len(s.apps))
		for id := range s.apps {
			ids = append(ids, id)
		}
		sort.Strings(ids)
		var out []map[string]any
		for _, id := range ids {
			a := s.apps[id]
			o := map[string]any{}
			for _, k := range sel {
				if v, ok := a[k]; ok {
					o[k] = v
				}
			}
			for _, b := range s.schema.Check(typ, o) {
				s.violate("answer: %s", b)
			}
			out = append(out, o)
		}
		writeJSON(w, map[string]any{"value": out})
	case len(seg) == 3 && r.Method == "POST":
		if err := s.schema.Action(typ, seg[2]); err != nil {
			s.violate("POST %s: %v", r.URL.Path, err)
			graphError(w, 400, "BadRequest", "Unknown action.")
			return
		}
		a := s.apps[seg[1]]
		var body struct {
			KeyID string `json:"keyId"`
		}
		json.NewDecoder(r.Body).Decode(&body)
		if a == nil || body.KeyID == "" {
			graphError(w, 404, "Request_ResourceNotFound", "No such application or key.")
			return
		}
		var left []any
		found := false
		for _, c := range a["passwordCredentials"].([]any) {
			if c.(map[string]any)["keyId"] == body.KeyID {
				found = true
				continue
			}
			left = append(left, c)
		}
		if !found {
			graphError(w, 404, "Request_ResourceNotFound", "No password credential with keyId "+body.KeyID+".")
			return
		}
		a["passwordCredentials"] = orEmpty(left)
		w.WriteHeader(204)
	case len(seg) == 2 && r.Method == "PATCH":
		a := s.apps[seg[1]]
		var body map[string]any
		json.NewDecoder(r.Body).Decode(&body)
		bad := s.schema.Check(typ, body)
		for _, b := range bad {
			s.violate("PATCH body: %s", b)
		}
		if a == nil || len(bad) > 0 {
			graphError(w, 400, "Request_BadRequest", "Invalid request.")
			return
		}
		if kc, ok := body["keyCredentials"].([]any); ok {
			a["keyCredentials"] = orEmpty(kc)
		}
		w.WriteHeader(204)
	default:
		graphError(w, 400, "BadRequest", "Unsupported request: "+r.Method+" "+r.URL.Path)
	}
}

// assertionValid checks a client assertion: a JWT (RS256 or PS256) signed
// by the registered certificate's key, issued by and for the app.
func (s *Server) assertionValid(jwt string) bool {
	if s.ClientCert == nil {
		return false
	}
	parts := strings.Split(jwt, ".")
	if len(parts) != 3 {
		return false
	}
	var hdr struct {
		Alg string `json:"alg"`
	}
	var claims struct {
		Iss string `json:"iss"`
		Sub string `json:"sub"`
		Exp int64  `json:"exp"`
	}
	hb, err1 := base64.RawURLEncoding.DecodeString(parts[0])
	cb, err2 := base64.RawURLEncoding.DecodeString(parts[1])
	sig, err3 := base64.RawURLEncoding.DecodeString(parts[2])
	if err1 != nil || err2 != nil || err3 != nil || json.Unmarshal(hb, &hdr) != nil || json.Unmarshal(cb, &claims) != nil {
		return false
	}
	if claims.Iss != ClientID || claims.Sub != ClientID || claims.Exp < time.Now().Unix() {
		return false
	}
	pub, ok := s.ClientCert.PublicKey.(*rsa.PublicKey)
	if !ok {
		return false
	}
	h := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
	switch hdr.Alg {
	case "RS256":
		return rsa.VerifyPKCS1v15(pub, crypto.SHA256, h[:], sig) == nil
	case "PS256":
		return rsa.VerifyPSS(pub, crypto.SHA256, h[:], sig, nil) == nil
	}
	return false
}
