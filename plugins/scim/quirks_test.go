package scim

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/zclconf/go-cty/cty"

	"github.com/switchover/switchover/internal/testing/scimlab"
	"github.com/switchover/switchover/plugins/sdk"
)

// addUser creates a user with these e-mail addresses (value, type,
// primary) and returns its id.
func addUser(t *testing.T, s *scimlab.Server, userName string, emails ...map[string]any) string {
	t.Helper()
	if emails == nil {
		emails = []map[string]any{{"value": userName, "type": "work"}}
	}
	code, out, err := s.Call("POST", "/Users", map[string]any{"schemas": []string{"urn:ietf:params:scim:schemas:core:2.0:User"},
		"userName": userName, "active": true, "emails": emails})
	if err != nil || code != 201 {
		t.Fatalf("adding %s: %d %v %v", userName, code, out, err)
	}
	return out["id"].(string)
}

func addGroup(t *testing.T, s *scimlab.Server, name string, ids ...string) string {
	t.Helper()
	var ms []map[string]string
	for _, id := range ids {
		ms = append(ms, map[string]string{"value": id})
	}
	code, g, err := s.Call("POST", "/Groups", map[string]any{"schemas": []string{"urn:ietf:params:scim:schemas:core:2.0:Group"}, "displayName": name, "members": ms})
	if err != nil || code != 201 {
		t.Fatalf("group %s: %d %v %v", name, code, g, err)
	}
	return g["id"].(string)
}

// members of a group, by id.
func members(t *testing.T, s *scimlab.Server, id string) []string {
	t.Helper()
	code, g, err := s.Call("GET", "/Groups/"+id, nil)
	if err != nil || code != 200 {
		t.Fatalf("group %s: %d %v", id, code, err)
	}
	var out []string
	ms, _ := g["members"].([]any)
	for _, m := range ms {
		out = append(out, m.(map[string]any)["value"].(string))
	}
	slices.Sort(out)
	return out
}

func sorted(ids ...string) []string { slices.Sort(ids); return ids }

func list(vs ...string) cty.Value {
	var l []cty.Value
	for _, v := range vs {
		l = append(l, str(v))
	}
	return cty.ListVal(l)
}

// A server that advertises filters but takes only `eq`: find_users falls
// back to listing every user, once in the run, with a warning, and applies
// its rules here (case-insensitive); lookups by userName use that listing.
// Names with "<>& are found and deactivated.
func TestEqOnlyFilterIsListedAndFilteredHere(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := scimlab.Start(t, scimlab.Options{EqOnly: true, ETags: true})
	odd := `o"b<r>&n@oldmsp.example`
	ids := map[string]string{}
	for _, n := range []string{"tech1@oldmsp.example", "Tech2@OLDMSP.example", odd, "anna@client.example"} {
		ids[n] = addUser(t, s, n)
	}
	h := mustHarness(t, s, nil)
	s.ResetCounts()
	p, err := h.Plan(ctx, "find_users", map[string]cty.Value{"user_name_suffix": str("@oldmsp.example")}, nil)
	if err != nil || p.Outputs["count"].AsBigFloat().String() != "3" || !strings.Contains(p.Summary, "refused the filter") {
		t.Fatalf("find on an eq-only server: %+v %v", p, err)
	}
	if !slices.ContainsFunc(p.Diagnostics, func(d sdk.Diagnostic) bool {
		return d.Severity == sdk.Warning && strings.Contains(d.Detail, "invalidFilter") && strings.Contains(d.Detail, "once in this run")
	}) {
		t.Fatalf("no warning of the refused filter: %+v", p.Diagnostics)
	}
	first, _ := s.Requests()
	// Again in the same run: not refused again, not listed again.
	if p, err := h.Plan(ctx, "find_users", map[string]cty.Value{"email_domain": str("oldmsp.example")}, nil); err != nil || p.Outputs["count"].AsBigFloat().String() != "3" {
		t.Fatalf("second find: %+v %v", p, err)
	}
	if again, _ := s.Requests(); again[""] != first[""] {
		t.Fatalf("the second find_users sent %d requests (the listing stands for the run)", again[""]-first[""])
	}
	for _, n := range []string{odd, "tech2@oldmsp.example"} {
		if _, err := h.Run(ctx, "deactivate_user", map[string]cty.Value{"user": str(n), "by": str("user_name")}); err != nil {
			t.Fatalf("deactivate %s: %v", n, err)
		}
	}
	for n, want := range map[string]any{odd: false, "Tech2@OLDMSP.example": false, "tech1@oldmsp.example": true, "anna@client.example": true} {
		if got := active(t, s, ids[n]); got != want {
			t.Errorf("%s: active = %v, want %v", n, got, want)
		}
	}
	// A raw filter the server refuses cannot be applied here: said so.
	h = mustHarness(t, s, nil)
	if _, err := h.Plan(ctx, "find_users", map[string]cty.Value{"filter": str(`userName sw "tech"`)}, nil); err == nil || !strings.Contains(err.Error(), "refused") {
		t.Fatalf("a refused raw filter: %v", err)
	}
}

// remove_group_members reads each group once and sends one PATCH per
// group (a server answering 204); no user is looked up one by one.
func TestRemoveMembersReadsEachGroupOnce(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := scimlab.Start(t, scimlab.Options{ETags: true, Patch204: true})
	var old []string
	for i := 0; i < 30; i++ {
		old = append(old, addUser(t, s, fmt.Sprintf("t%02d@oldmsp.example", i)))
	}
	anna := addUser(t, s, "anna@client.example")
	groups := []string{addGroup(t, s, "Admins", old[0], old[1], anna), addGroup(t, s, "Techs", append(slices.Clone(old[5:25]), anna)...), addGroup(t, s, "Billing", anna)}
	h := mustHarness(t, s, nil)
	if _, err := h.Plan(ctx, "find_users", map[string]cty.Value{"email_domain": str("oldmsp.example")}, nil); err != nil {
		t.Fatal(err)
	}
	s.ResetCounts()
	for _, g := range groups {
		if _, err := h.Run(ctx, "remove_group_members", map[string]cty.Value{"group": str(g), "members": list(old...), "by": str("id")}); err != nil {
			t.Fatal(err)
		}
	}
	for _, g := range groups {
		if got := members(t, s, g); !slices.Equal(got, []string{anna}) {
			t.Errorf("group %s keeps %v", g, got)
		}
	}
	n, _ := s.Requests()
	// Per group: the plan's read (a search by name, then by id); where
	// members go, a PATCH and the verify's read (two again).
	if n["GET"] != 10 || n["PATCH"] != 2 || n[""] != n["GET"]+n["PATCH"] {
		t.Fatalf("requests: %v (want 10 GET, 2 PATCH)", n)
	}
	// By userName: one filtered search for all of them, and the group by
	// its name (a search, then a read): config, plan 3, PATCH, verify 2.
	g := addGroup(t, s, "Late", old[3], anna)
	s.ResetCounts()
	if _, err := mustHarness(t, s, nil).Run(ctx, "remove_group_members", map[string]cty.Value{"group": str("Late"), "members": list("t03@oldmsp.example", "t04@oldmsp.example"), "by": str("user_name")}); err != nil {
		t.Fatal(err)
	}
	if got := members(t, s, g); !slices.Equal(got, []string{anna}) {
		t.Errorf("group Late keeps %v", got)
	}
	if n, _ := s.Requests(); n[""] != 7 {
		t.Errorf("by userName: %v requests", n)
	}
}

// A server without PATCH that requires If-Match: the group is PUT back
// without the members, read again first; someone's edit between that
// read and the PUT (412) is read again and kept.
func TestRemoveMembersWithoutPatchKeepsAConcurrentEdit(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	var s *scimlab.Server
	var edited atomic.Bool
	var carl, gid string
	var mu sync.Mutex
	s = scimlab.Start(t, scimlab.Options{NoPatch: true, ETags: true, RequireIfMatch: true, Before: func(r *http.Request) string {
		mu.Lock()
		defer mu.Unlock()
		if r.Method == "PUT" && strings.HasPrefix(r.URL.Path, "/scim/v2/Groups/") && !edited.Swap(true) {
			// Someone adds carl to the group just before our PUT.
			code, g, _ := s.Call("GET", "/Groups/"+gid, nil)
			if code == 200 {
				ms, _ := g["members"].([]any)
				g["members"] = append(ms, map[string]any{"value": carl})
				delete(g, "meta")
				s.Call("PUT", "/Groups/"+gid, g)
			}
		}
		return ""
	}})
	a := addUser(t, s, "a@oldmsp.example")
	b := addUser(t, s, "b@oldmsp.example")
	anna := addUser(t, s, "anna@client.example")
	mu.Lock()
	carl = addUser(t, s, "carl@client.example")
	gid = addGroup(t, s, "Admins", a, b, anna)
	mu.Unlock()
	if _, err := mustHarness(t, s, nil).Run(ctx, "remove_group_members", map[string]cty.Value{"group": str("Admins"), "members": list(a, b), "by": str("id")}); err != nil {
		t.Fatal(err)
	}
	if !edited.Load() {
		t.Fatal("the test's concurrent edit did not happen")
	}
	if got := members(t, s, gid); !slices.Equal(got, sorted(anna, carl)) {
		t.Fatalf("members after the PUT: %v, want anna and carl", got)
	}
}

// E-mail rules cannot take the client's own accounts: an alias of the old
// provider (type other), or a user with addresses in both domains, is a
// near miss named in a warning, not a target, unless the runbook widens
// the rule.
func TestAliasesAndMixedUsersAreNearMisses(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	for _, o := range []scimlab.Options{{}, {NoFilter: true}} {
		s := scimlab.Start(t, o)
		addUser(t, s, "it@kunde.example", map[string]any{"value": "it@kunde.example", "type": "work", "primary": true}, map[string]any{"value": "it@oldmsp.example", "type": "other"})
		addUser(t, s, "tech@oldmsp.example")
		addUser(t, s, "notype@oldmsp.example", map[string]any{"value": "notype@oldmsp.example"})
		addUser(t, s, "both@oldmsp.example", map[string]any{"value": "both@oldmsp.example", "type": "work"}, map[string]any{"value": "both@kunde.example", "type": "home"})
		h := mustHarness(t, s, nil)
		p, err := h.Plan(ctx, "find_users", map[string]cty.Value{"email_domain": str("oldmsp.example")}, nil)
		if err != nil {
			t.Fatal(err)
		}
		got := p.Outputs["users"]
		if n := got.LengthInt(); n != 2 || !got.HasIndex(str("tech@oldmsp.example")).True() || !got.HasIndex(str("notype@oldmsp.example")).True() {
			t.Fatalf("%+v: found %v", o, got)
		}
		var near string
		for _, d := range p.Diagnostics {
			if d.Severity == sdk.Warning && strings.Contains(d.Summary, "near miss") {
				near = d.Detail
			}
		}
		if !strings.Contains(near, "it@kunde.example") || !strings.Contains(near, "only of a type") || !strings.Contains(near, "both@oldmsp.example") || !strings.Contains(near, "both@kunde.example") {
			t.Fatalf("%+v: the near misses are not named: %q", o, near)
		}
		p, err = h.Plan(ctx, "find_users", map[string]cty.Value{"email_domain": str("oldmsp.example"), "email_types": list("*"), "allow_other_domains": cty.True}, nil)
		if err != nil || p.Outputs["count"].AsBigFloat().String() != "4" {
			t.Fatalf("%+v: widened: %+v %v", o, p, err)
		}
	}
}

// A userName equal to another user's id: by default refused as ambiguous
// with both named; by = "user_name" takes the one so named. The client's
// user stays active either way.
func TestUserNameThatIsAnotherUsersID(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := scimlab.Start(t, scimlab.Options{})
	anna := addUser(t, s, "anna@client.example")
	decoy := addUser(t, s, anna, map[string]any{"value": "decoy@oldmsp.example", "type": "work"})
	h := mustHarness(t, s, nil)
	_, err := h.Plan(ctx, "deactivate_user", map[string]cty.Value{"user": str(anna)}, nil)
	if err == nil || !strings.Contains(err.Error(), "ambiguous") || !strings.Contains(err.Error(), "anna@client.example") || !strings.Contains(err.Error(), decoy) {
		t.Fatalf("an id that is another user's userName: %v", err)
	}
	rm := map[string]cty.Value{"group": str(addGroup(t, s, "Admins", anna, decoy)), "members": list(anna)}
	if _, err := h.Plan(ctx, "remove_group_members", rm, nil); err == nil || !strings.Contains(err.Error(), "ambiguous") {
		t.Fatalf("remove_group_members with the same value: %v", err)
	}
	if _, err := h.Run(ctx, "deactivate_user", map[string]cty.Value{"user": str(anna), "by": str("user_name")}); err != nil {
		t.Fatal(err)
	}
	if active(t, s, anna) != true || active(t, s, decoy) != false {
		t.Fatalf("anna %v, the decoy %v", active(t, s, anna), active(t, s, decoy))
	}
}

// A server limiting to 40 requests a second: the workers share one pause
// and slow down together; few requests are answered 429.
func TestThrottlingIsSharedByEveryWorker(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := scimlab.Start(t, scimlab.Options{ETags: true, RateLimit: 40})
	var names []string
	for i := 0; i < 80; i++ {
		names = append(names, fmt.Sprintf("r%02d@oldmsp.example", i))
	}
	ids := addUsersThrottled(t, s, names...)
	h := mustHarness(t, s, nil)
	if _, err := h.Plan(ctx, "find_users", map[string]cty.Value{"user_name_suffix": str("@oldmsp.example")}, nil); err != nil {
		t.Fatal(err)
	}
	s.ResetCounts()
	var wg sync.WaitGroup
	errs := make(chan error, len(names))
	work := make(chan string)
	for w := 0; w < 10; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := range work {
				if _, err := h.Run(ctx, "deactivate_user", map[string]cty.Value{"user": str(ids[n]), "by": str("id")}); err != nil {
					errs <- err
				}
			}
		}()
	}
	for _, n := range names {
		work <- n
	}
	close(work)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	for _, n := range names {
		if active(t, s, ids[n]) != false {
			t.Fatalf("%s is still active", n)
		}
	}
	n, throttled := s.Requests()
	if throttled*100 > 5*n[""] {
		t.Fatalf("%d of %d requests were answered 429", throttled, n[""])
	}
	t.Logf("%d requests, %d answered 429", n[""], throttled)
}

// A redirect to another origin (plain http, another port) is not followed:
// the token stays here, and the redirected answer is not taken for the
// server's.
func TestRedirectDoesNotCarryTheToken(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	var leaked atomic.Int32
	canary := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.Contains(r.Header.Get("Authorization"), scimlab.Token) {
			leaked.Add(1)
		}
		w.Header().Set("Content-Type", "application/scim+json")
		fmt.Fprint(w, `{"totalResults":0,"Resources":[]}`)
	}))
	defer canary.Close()
	s := scimlab.Start(t, scimlab.Options{Before: func(r *http.Request) string {
		if r.Method == "GET" && r.URL.Path == "/scim/v2/Users" {
			return canary.URL + r.URL.RequestURI()
		}
		return ""
	}})
	addUser(t, s, "x@oldmsp.example")
	_, err := mustHarness(t, s, nil).Plan(ctx, "find_users", map[string]cty.Value{"user_name_suffix": str("@oldmsp.example")}, nil)
	if err == nil || !strings.Contains(err.Error(), "refused") {
		t.Fatalf("a redirect to another origin: %v", err)
	}
	if strings.Contains(err.Error(), scimlab.Token) || leaked.Load() != 0 {
		t.Fatalf("the token went along (%d) or is in the error: %v", leaked.Load(), err)
	}
}

// Names with "<>& in filters: quoted as JSON without HTML escapes, which
// SCIMMY's filter parser (like others) does not read.
func TestNamesWithQuotesAndAngles(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := scimlab.Start(t, scimlab.Options{ETags: true})
	odd := `o"b<r>&n@oldmsp.example`
	id := addUser(t, s, odd)
	h := mustHarness(t, s, nil)
	// By default the value is tried as an id too (a GET of that path).
	if _, err := h.Run(ctx, "deactivate_user", map[string]cty.Value{"user": str(odd)}); err != nil {
		t.Fatal(err)
	}
	if active(t, s, id) != false {
		t.Fatalf("%s is still active", odd)
	}
	if got := quote(`a"<>&`); got != `"a\"<>&"` {
		t.Fatalf("quote: %s", got)
	}
	rm := map[string]cty.Value{"group": str(`R&D "<core>"`), "members": list(odd)}
	addGroup(t, s, `R&D "<core>"`, id)
	if _, err := h.Run(ctx, "remove_group_members", rm); err != nil {
		t.Fatal(err)
	}
}
