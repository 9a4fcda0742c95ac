package cli

import (
	"fmt"
	"math/rand"
	"testing"
	"time"

	"github.com/switchover/switchover/internal/scimlab"
)

// TestSCIMCrashWhileDeactivating200Users kills `switchover apply` with
// SIGKILL at random moments while it deactivates 200 users on a real SCIM
// server (with ETags), resumes it, and checks what the client would: every
// user is inactive, none was deleted, and none was changed more than twice
// (the deactivation, and at most one repeat of a PATCH cut off before its
// result was recorded).
func TestSCIMCrashWhileDeactivating200Users(t *testing.T) {
	t.Parallel()
	s := scimlab.Start(t, scimlab.Options{ETags: true})
	ids := map[string]string{}
	for i := 0; i < 200; i++ {
		n := fmt.Sprintf("tech%03d@oldmsp.example", i)
		id, err := s.AddUser(n)
		if err != nil {
			t.Fatal(err)
		}
		ids[n] = id
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
step "scim.deactivate_user" "off" {
  for_each = step.oldmsp.outputs.users
  user     = each.value.id
}
`, s.URL, scimlab.Token, s.CAFile))
	seed := time.Now().UnixNano()
	rng := rand.New(rand.NewSource(seed))
	kills, mid := killAndResume(t, f, 6, func() time.Duration { return time.Duration(50+rng.Intn(600)) * time.Millisecond })
	t.Logf("seed %d: %d kills, %d with a step running", seed, kills, mid)
	for n, id := range ids {
		u, err := s.User(id)
		if err != nil {
			t.Fatal(err)
		}
		if u == nil || u["active"] != false {
			t.Fatalf("seed %d: %s after the resumed run: %v", seed, n, u)
		}
		meta, _ := u["meta"].(map[string]any)
		if v := fmt.Sprint(meta["version"]); v != `W/"2"` && v != `W/"3"` {
			t.Fatalf("seed %d: %s is at version %s: changed more than twice", seed, n, v)
		}
	}
}
