package scim

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/zclconf/go-cty/cty"

	"github.com/switchover/switchover/internal/testing/scimlab"
	"github.com/switchover/switchover/plugins/sdk"
	"github.com/switchover/switchover/plugins/sdk/sdktest"
)

func str(s string) cty.Value { return cty.StringVal(s) }

func harness(t *testing.T, s *scimlab.Server, set map[string]cty.Value) (*sdktest.Harness, error) {
	t.Helper()
	cfg := map[string]cty.Value{"base_url": str(s.URL), "token": str(scimlab.Token), "ca_file": str(s.CAFile), "timeout": str("10s")}
	for k, v := range set {
		cfg[k] = v
	}
	h := &sdktest.Harness{P: New("test")}
	return h, h.Configure(context.Background(), cfg)
}

func mustHarness(t *testing.T, s *scimlab.Server, set map[string]cty.Value) *sdktest.Harness {
	t.Helper()
	h, err := harness(t, s, set)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func addUsers(t *testing.T, s *scimlab.Server, names ...string) map[string]string {
	t.Helper()
	ids := map[string]string{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	errs := make(chan error, len(names))
	for _, n := range names {
		wg.Add(1)
		go func(n string) {
			defer wg.Done()
			id, err := s.AddUser(n)
			mu.Lock()
			ids[n] = id
			mu.Unlock()
			errs <- err
		}(n)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	return ids
}

func active(t *testing.T, s *scimlab.Server, id string) any {
	t.Helper()
	u, err := s.User(id)
	if err != nil {
		t.Fatal(err)
	}
	if u == nil {
		return "deleted"
	}
	return u["active"]
}

// Find over several pages, deactivate, delete, group members: each checked
// on the server, each second plan a no-op.
func TestFindDeactivateDeleteGroups(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := scimlab.Start(t, scimlab.Options{ETags: true})
	var names []string
	for i := 0; i < 120; i++ {
		names = append(names, fmt.Sprintf("tech%03d@oldmsp.example", i))
	}
	ids := addUsers(t, s, append(names, "anna@client.example", "ben@client.example")...)
	h := mustHarness(t, s, map[string]cty.Value{"page_size": cty.NumberIntVal(25)})
	p, err := h.Plan(ctx, "find_users", map[string]cty.Value{"user_name_suffix": str("@oldmsp.example")}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if n := p.Outputs["count"].AsBigFloat().String(); n != "120" {
		t.Fatalf("found %s of 120 over pages of 25: %s", n, p.Summary)
	}
	one := names[7]
	dis := map[string]cty.Value{"user": str(one)}
	if _, err := h.Run(ctx, "deactivate_user", dis); err != nil {
		t.Fatal(err)
	}
	if got := active(t, s, ids[one]); got != false {
		t.Fatalf("after deactivate_user: active = %v", got)
	}
	if p, err := h.Plan(ctx, "deactivate_user", dis, nil); err != nil || p.Kind != sdk.NoChange {
		t.Fatalf("second plan: %+v %v", p, err)
	}
	del := map[string]cty.Value{"user": str(names[8])}
	if _, err := h.Run(ctx, "delete_user", del); err != nil {
		t.Fatal(err)
	}
	if got := active(t, s, ids[names[8]]); got != "deleted" {
		t.Fatalf("after delete_user: %v", got)
	}
	if p, err := h.Plan(ctx, "delete_user", del, nil); err != nil || p.Kind != sdk.NoChange {
		t.Fatalf("second plan of delete: %+v %v", p, err)
	}
	// A group with two of the old provider's users and one of the client's.
	code, g, err := s.Call("POST", "/Groups", map[string]any{"schemas": []string{"urn:ietf:params:scim:schemas:core:2.0:Group"}, "displayName": "Admins",
		"members": []map[string]string{{"value": ids[names[1]]}, {"value": ids[names[2]]}, {"value": ids["anna@client.example"]}}})
	if err != nil || code != 201 {
		t.Fatalf("group: %d %v %v", code, g, err)
	}
	rm := map[string]cty.Value{"group": str("Admins"), "members": cty.ListVal([]cty.Value{str(names[1]), str(names[2])})}
	if _, err := h.Run(ctx, "remove_group_members", rm); err != nil {
		t.Fatal(err)
	}
	_, g, _ = s.Call("GET", "/Groups/"+g["id"].(string), nil)
	if ms, _ := g["members"].([]any); len(ms) != 1 || !strings.Contains(fmt.Sprint(ms), ids["anna@client.example"]) {
		t.Fatalf("members left: %v", g["members"])
	}
	inv, err := h.Plan(ctx, "inventory", nil, nil)
	if err != nil || !strings.HasPrefix(inv.Summary, "121 users (120 active), 1 groups") {
		t.Fatalf("inventory: %v %v", inv, err)
	}
}

// The plan read version 1; someone changes the user; apply refuses with a
// conflict (If-Match), the change stays, and a new plan applies.
func TestETagConflictIsNotOverwritten(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := scimlab.Start(t, scimlab.Options{ETags: true})
	ids := addUsers(t, s, "eve@oldmsp.example")
	h := mustHarness(t, s, nil)
	attrs := map[string]cty.Value{"user": str("eve@oldmsp.example")}
	p, err := h.Plan(ctx, "deactivate_user", attrs, nil)
	if err != nil {
		t.Fatal(err)
	}
	s.Call("PATCH", "/Users/"+ids["eve@oldmsp.example"], map[string]any{"schemas": []string{"urn:ietf:params:scim:api:messages:2.0:PatchOp"},
		"Operations": []map[string]any{{"op": "replace", "path": "displayName", "value": "Eve (changed)"}}})
	r, _, err := h.Apply(ctx, "deactivate_user", attrs, p, nil)
	if err == nil || !r.Diagnostics.HasCode(sdk.CodeConflict) {
		t.Fatalf("apply on a stale plan: %v", err)
	}
	u, _ := s.User(ids["eve@oldmsp.example"])
	if u["active"] != true || u["displayName"] != "Eve (changed)" {
		t.Fatalf("after the refused apply: %v", u)
	}
	if _, err := h.Run(ctx, "deactivate_user", attrs); err != nil {
		t.Fatal(err)
	}
	u, _ = s.User(ids["eve@oldmsp.example"])
	if u["active"] != false || u["displayName"] != "Eve (changed)" {
		t.Fatalf("after planning again: %v", u)
	}
}

// A server without filter support: find_users filters here; a raw SCIM
// filter is refused with the reason.
func TestServerWithoutFilters(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := scimlab.Start(t, scimlab.Options{NoFilter: true})
	addUsers(t, s, "a@oldmsp.example", "b@oldmsp.example", "c@client.example")
	h := mustHarness(t, s, nil)
	p, err := h.Plan(ctx, "find_users", map[string]cty.Value{"email_domain": str("oldmsp.example")}, nil)
	if err != nil || p.Outputs["count"].AsBigFloat().String() != "2" || !strings.Contains(p.Summary, "filtered here") {
		t.Fatalf("find without server filters: %+v %v", p, err)
	}
	if _, err := h.Plan(ctx, "find_users", map[string]cty.Value{"filter": str(`userName sw "a"`)}, nil); err == nil || !strings.Contains(err.Error(), "does not take SCIM filters") {
		t.Fatalf("a raw filter: %v", err)
	}
	// deactivate finds the user without a filter too.
	if _, err := h.Run(ctx, "deactivate_user", map[string]cty.Value{"user": str("b@oldmsp.example")}); err != nil {
		t.Fatal(err)
	}
}

// A wrong token, a wrong CA, plain http to another host: a clear error,
// nothing changed. A throttling server: 429 and Retry-After are honoured.
func TestRefusalsAndThrottling(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := scimlab.Start(t, scimlab.Options{Throttle: 4})
	ids := addUsersThrottled(t, s, "x@oldmsp.example")
	attrs := map[string]cty.Value{"user": str("x@oldmsp.example")}
	h := mustHarness(t, s, map[string]cty.Value{"token": str("wrong-token")})
	if _, err := h.Plan(ctx, "deactivate_user", attrs, nil); err == nil || !strings.Contains(err.Error(), "401") || !strings.Contains(err.Error(), "check the token") || strings.Contains(err.Error(), scimlab.Token) {
		t.Errorf("a wrong token: %v", err)
	}
	other := scimlab.Start(t, scimlab.Options{})
	h = mustHarness(t, s, map[string]cty.Value{"ca_file": str(other.CAFile)})
	if _, err := h.Plan(ctx, "deactivate_user", attrs, nil); err == nil || !strings.Contains(err.Error(), "not signed by a trusted CA") {
		t.Errorf("a wrong CA: %v", err)
	}
	if _, err := harness(t, s, map[string]cty.Value{"base_url": str("http://scim.example.com/scim/v2")}); err == nil || !strings.Contains(err.Error(), "plain http") {
		t.Errorf("plain http: %v", err)
	}
	if got := active(t, s, ids["x@oldmsp.example"]); got != true {
		t.Fatalf("a refused plugin changed the user: %v", got)
	}
	// Throttled (every 4th request 429): the run goes through.
	if _, err := mustHarness(t, s, nil).Run(ctx, "deactivate_user", attrs); err != nil {
		t.Fatalf("throttled: %v", err)
	}
	if got := active(t, s, ids["x@oldmsp.example"]); got != false {
		t.Fatalf("throttled: active = %v", got)
	}
}

// addUsersThrottled adds users one by one, retrying 429s.
func addUsersThrottled(t *testing.T, s *scimlab.Server, names ...string) map[string]string {
	ids := map[string]string{}
	for _, n := range names {
		for try := 0; ; try++ {
			id, err := s.AddUser(n)
			if err == nil {
				ids[n] = id
				break
			}
			if try == 3 {
				t.Fatal(err)
			}
		}
	}
	return ids
}

// A server without PATCH: deactivate_user PUTs the whole user with
// active = false, keeping its other attributes.
func TestServerWithoutPatch(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := scimlab.Start(t, scimlab.Options{NoPatch: true, ETags: true})
	ids := addUsers(t, s, "p@oldmsp.example")
	s.Call("PUT", "/Users/"+ids["p@oldmsp.example"], map[string]any{"schemas": []string{"urn:ietf:params:scim:schemas:core:2.0:User"},
		"userName": "p@oldmsp.example", "displayName": "Pat", "active": true, "emails": []map[string]string{{"value": "p@oldmsp.example"}}})
	if _, err := mustHarness(t, s, nil).Run(ctx, "deactivate_user", map[string]cty.Value{"user": str("p@oldmsp.example")}); err != nil {
		t.Fatal(err)
	}
	u, _ := s.User(ids["p@oldmsp.example"])
	if u["active"] != false || u["displayName"] != "Pat" || u["userName"] != "p@oldmsp.example" {
		t.Fatalf("after the PUT: %v", u)
	}
}

// After find_users, a user's plan takes the listing's read of it (no GET
// per user), once: a change made between the listing and the apply is a
// conflict (If-Match on the listed version), never overwritten; the plan
// after it, and the verify after an apply, read the user again.
func TestPlanTakesTheListingOnce(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := scimlab.Start(t, scimlab.Options{ETags: true})
	ids := addUsers(t, s, "eve@oldmsp.example", "sam@oldmsp.example")
	h := mustHarness(t, s, nil)
	if _, err := h.Plan(ctx, "find_users", map[string]cty.Value{"user_name_suffix": str("@oldmsp.example")}, nil); err != nil {
		t.Fatal(err)
	}
	eve := map[string]cty.Value{"user": str(ids["eve@oldmsp.example"])}
	p, err := h.Plan(ctx, "deactivate_user", eve, nil)
	if err != nil || p.Kind != sdk.Change || !strings.Contains(strings.Join(p.Details, " "), "as listed") {
		t.Fatalf("plan after the listing: %+v %v", p, err)
	}
	s.Call("PATCH", "/Users/"+ids["eve@oldmsp.example"], map[string]any{"schemas": []string{"urn:ietf:params:scim:api:messages:2.0:PatchOp"},
		"Operations": []map[string]any{{"op": "replace", "path": "displayName", "value": "Eve (changed)"}}})
	if r, _, err := h.Apply(ctx, "deactivate_user", eve, p, nil); err == nil || !r.Diagnostics.HasCode(sdk.CodeConflict) {
		t.Fatalf("apply on the listed version after a change: %v", err)
	}
	if u, _ := s.User(ids["eve@oldmsp.example"]); u["active"] != true || u["displayName"] != "Eve (changed)" {
		t.Fatalf("after the refused apply: %v", u)
	}
	p, err = h.Plan(ctx, "deactivate_user", eve, nil)
	if err != nil || !strings.Contains(strings.Join(p.Details, " "), "as read now") {
		t.Fatalf("the plan after a conflict must read again: %+v %v", p, err)
	}
	// A saved plan's apply lists again; the verify after its change must
	// not take the listing's (active) read for the user's state.
	sam := map[string]cty.Value{"user": str(ids["sam@oldmsp.example"])}
	saved, err := h.Plan(ctx, "deactivate_user", sam, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.Plan(ctx, "find_users", map[string]cty.Value{"user_name_suffix": str("@oldmsp.example")}, nil); err != nil {
		t.Fatal(err)
	}
	if _, _, err := h.Apply(ctx, "deactivate_user", sam, saved, nil); err != nil {
		t.Fatal(err)
	}
	if v, err := h.Plan(ctx, "deactivate_user", sam, nil); err != nil || v.Kind != sdk.NoChange {
		t.Fatalf("verify after the apply: %+v %v", v, err)
	}
}

// A user deleted between plan and apply (SCIM 404): deactivate is done,
// already gone, and so is a plan for a user or group that does not exist.
func TestDeletedSinceThePlan(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := scimlab.Start(t, scimlab.Options{ETags: true})
	ids := addUsers(t, s, "gone@oldmsp.example")
	h := mustHarness(t, s, nil)
	set := map[string]cty.Value{"user": str("gone@oldmsp.example")}
	p, err := h.Plan(ctx, "deactivate_user", set, nil)
	if err != nil || p.Kind != sdk.Change {
		t.Fatalf("plan: %v %v", p, err)
	}
	if code, _, err := s.Call("DELETE", "/Users/"+ids["gone@oldmsp.example"], nil); err != nil || code != 204 {
		t.Fatalf("delete: %d %v", code, err)
	}
	r, _, err := h.Apply(ctx, "deactivate_user", set, p, nil)
	if err != nil || !strings.Contains(r.Summary, "already gone") || !strings.Contains(r.Summary, "gone@oldmsp.example") {
		t.Fatalf("deactivate of a user deleted since the plan: %v %+v", err, r)
	}
	if p, err := h.Plan(ctx, "deactivate_user", set, nil); err != nil || p.Kind != sdk.NoChange || !strings.Contains(p.Summary, "already gone") {
		t.Fatalf("plan for a deleted user: %v %v", p, err)
	}
	rm := map[string]cty.Value{"group": str("No Such Group"), "members": cty.ListVal([]cty.Value{str("gone@oldmsp.example")})}
	if p, err := h.Plan(ctx, "remove_group_members", rm, nil); err != nil || p.Kind != sdk.NoChange || !strings.Contains(p.Summary, `group "No Such Group"`) {
		t.Fatalf("plan for a group that does not exist: %v %v", p, err)
	}
}
