package cli

import (
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/switchover/switchover/internal/testing/rmmlab"
	"github.com/switchover/switchover/internal/testing/scimlab"
)

// TestSCIMCrashWhileDeactivating200Users kills `switchover apply` with
// SIGKILL at random moments while it takes 200 users out of 10 groups and
// deactivates them on a real SCIM server (with ETags), resumes it, and
// checks what the client would: every user is inactive, none was deleted,
// none was changed more than twice (the deactivation, and at most one
// repeat of a PATCH cut off before its result was recorded), and each
// group holds the client's member only. Again on a server without PATCH
// (users and groups PUT whole), with 60 users.
func TestSCIMCrashWhileDeactivating200Users(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name string
		o    scimlab.Options
		n    int
	}{{"patch", scimlab.Options{ETags: true}, 200}, {"no-patch", scimlab.Options{ETags: true, NoPatch: true}, 60}} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			crashSCIM(t, c.o, c.n)
		})
	}
}

func crashSCIM(t *testing.T, o scimlab.Options, n int) {
	s := scimlab.Start(t, o)
	ids := map[string]string{}
	var order []string
	for i := 0; i < n; i++ {
		name := fmt.Sprintf("tech%03d@oldmsp.example", i)
		id, err := s.AddUser(name)
		if err != nil {
			t.Fatal(err)
		}
		ids[name] = id
		order = append(order, id)
	}
	anna, err := s.AddUser("anna@client.example")
	if err != nil {
		t.Fatal(err)
	}
	var groups []string
	for g := 0; g < 10; g++ {
		ms := []map[string]string{{"value": anna}}
		for i := g; i < n; i += 10 {
			ms = append(ms, map[string]string{"value": order[i]})
		}
		code, out, err := s.Call("POST", "/Groups", map[string]any{"schemas": []string{"urn:ietf:params:scim:schemas:core:2.0:Group"}, "displayName": fmt.Sprintf("G%d", g), "members": ms})
		if err != nil || code != 201 {
			t.Fatalf("group: %d %v", code, err)
		}
		groups = append(groups, fmt.Sprintf("%q", out["id"]))
	}
	f := newFixture(t, fmt.Sprintf(`
plugin "scim" {
  base_url = %q
  token    = %q
  ca_file  = %q
}
step "scim.find_users" "oldmsp" {
  user_name_suffix = "@oldmsp.example"
}
step "scim.remove_group_members" "groups" {
  for_each = toset([%s])
  group    = each.value
  members  = [for u in step.oldmsp.outputs.users : u.id]
  by       = "id"
}
step "scim.deactivate_user" "off" {
  for_each = step.oldmsp.outputs.users
  user     = each.value.id
  by       = "id"
}
`, s.URL, scimlab.Token, s.CAFile, strings.Join(groups, ", ")))
	seed := time.Now().UnixNano()
	rng := rand.New(rand.NewSource(seed))
	kills, mid := killAndResume(t, f, 6, func() time.Duration { return time.Duration(50+rng.Intn(600)) * time.Millisecond })
	t.Logf("seed %d: %d kills, %d with a step running", seed, kills, mid)
	for name, id := range ids {
		u, err := s.User(id)
		if err != nil {
			t.Fatal(err)
		}
		if u == nil || u["active"] != false {
			t.Fatalf("seed %d: %s after the resumed run: %v", seed, name, u)
		}
		meta, _ := u["meta"].(map[string]any)
		if v := fmt.Sprint(meta["version"]); v != `W/"2"` && v != `W/"3"` {
			t.Fatalf("seed %d: %s is at version %s: changed more than twice", seed, name, v)
		}
	}
	for _, g := range groups {
		_, out, _ := s.Call("GET", "/Groups/"+strings.Trim(g, `"`), nil)
		if ms, _ := out["members"].([]any); len(ms) != 1 || !strings.Contains(fmt.Sprint(ms), anna) {
			t.Fatalf("seed %d: group %s after the resumed run: %v", seed, g, out["members"])
		}
	}
	if u, _ := s.User(anna); u["active"] != true {
		t.Fatalf("seed %d: the client's anna: %v", seed, u)
	}
}

// The example runbook runbooks/saas-apps on a real SCIM server and
// the fictional RMM: the old provider's PSA accounts are inactive, the
// client's are not, the RMM token is revoked; the tokens (canaries) are
// nowhere in the output, the plan file, the state or the audit trail.
func TestSaaSExampleRunbook(t *testing.T) {
	t.Parallel()
	s := scimlab.Start(t, scimlab.Options{ETags: true})
	old1, _ := s.AddUser("tech1@oldmsp.example")
	old2, _ := s.AddUser("tech2@oldmsp.example")
	client, _ := s.AddUser("anna@client.example")
	// The client's IT account, with an alias of the old provider.
	_, it, err := s.Call("POST", "/Users", map[string]any{"schemas": []string{"urn:ietf:params:scim:schemas:core:2.0:User"}, "userName": "it@kunde.example", "active": true,
		"emails": []map[string]any{{"value": "it@kunde.example", "type": "work", "primary": true}, {"value": "it@oldmsp.example", "type": "other"}}})
	if err != nil || it["id"] == nil {
		t.Fatalf("adding it@kunde.example: %v %v", it, err)
	}
	itID := it["id"].(string)
	_, admins, err := s.Call("POST", "/Groups", map[string]any{"schemas": []string{"urn:ietf:params:scim:schemas:core:2.0:Group"}, "displayName": "Admins",
		"members": []map[string]string{{"value": old1}, {"value": old2}, {"value": client}, {"value": itID}}})
	if err != nil || admins["id"] == nil {
		t.Fatalf("the Admins group: %v %v", admins, err)
	}
	const rmmToken = "RMM-ADMIN-CANARY-77aa"
	rmm := rmmlab.Start(t, rmmToken, "oldmsp-integration", "backup-agent")
	// Both labs' CAs in one file, as the runbook takes one ca_file.
	a, _ := os.ReadFile(s.CAFile)
	b, _ := os.ReadFile(rmm.CAFile)
	ca := filepath.Join(t.TempDir(), "cas.pem")
	os.WriteFile(ca, append(a, b...), 0o600)
	src, err := os.ReadFile("../../runbooks/saas-apps/main.sw.hcl")
	if err != nil {
		t.Fatal(err)
	}
	f := newFixture(t, "")
	os.WriteFile(filepath.Join(f.dir, "main.sw.hcl"), src, 0o644)
	vars := fmt.Sprintf(`{"psa_scim_url": %q, "psa_scim_token": %q, "old_provider_domain": "oldmsp.example", "rmm_api_url": %q, "rmm_admin_token": %q, "old_provider_token_name": "oldmsp-integration", "ca_file": %q}`,
		s.URL, scimlab.Token, rmm.URL+"/api/v1", rmmToken, ca)
	os.WriteFile(filepath.Join(f.dir, "vars.json"), []byte(vars), 0o600)
	code, out := f.apply("-var-file", filepath.Join(f.dir, "vars.json"))
	if code != ExitOK {
		t.Fatalf("apply: exit %d\n%s", code, out)
	}
	for id, want := range map[string]any{old1: false, old2: false, client: true, itID: true} {
		if u, _ := s.User(id); u["active"] != want {
			t.Fatalf("%v: active %v, want %v", u["userName"], u["active"], want)
		}
	}
	_, g, _ := s.Call("GET", "/Groups/"+admins["id"].(string), nil)
	if ms := fmt.Sprint(g["members"]); strings.Contains(ms, old1) || strings.Contains(ms, old2) || !strings.Contains(ms, client) || !strings.Contains(ms, itID) {
		t.Fatalf("Admins after the apply: %s", ms)
	}
	if !strings.Contains(out, "it@kunde.example") || !strings.Contains(out, "near miss") {
		t.Fatalf("the plan does not name the near miss it@kunde.example:\n%s", out)
	}
	if rmm.Active("oldmsp-integration") || !rmm.Active("backup-agent") {
		t.Fatal("the RMM tokens are not as they should be")
	}
	// The checklist names the systems: the PSA's SCIM endpoint, the RMM's API.
	_, md, _ := f.run("handover", f.dir)
	if !strings.Contains(md, "### SCIM "+s.URL) || !strings.Contains(md, "### API "+rmm.URL) {
		t.Fatalf("the checklist's systems:\n%s", md)
	}
	_, plan, _ := f.run("plan", "-var-file", filepath.Join(f.dir, "vars.json"), f.dir)
	for where, text := range map[string]string{"apply output": out, "plan output": plan, "state and audit": readAll(t, filepath.Join(f.dir, ".switchover"))} {
		for _, canary := range []string{rmmToken, scimlab.Token} {
			if strings.Contains(text, canary) {
				t.Fatalf("a token is in the %s", where)
			}
		}
	}
}

// readAll is every file under dir, concatenated.
func readAll(t *testing.T, dir string) string {
	var b strings.Builder
	filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err == nil && fi.Mode().IsRegular() {
			data, _ := os.ReadFile(p)
			b.Write(data)
		}
		return nil
	})
	return b.String()
}
