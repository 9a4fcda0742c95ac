package graphtest

import (
	"strings"
	"testing"
)

// The schema check can fail: what Graph v1.0 does not have is caught.
func TestSchemaCatchesWhatGraphDoesNotHave(t *testing.T) {
	s, err := LoadSchema()
	if err != nil {
		t.Fatal(err)
	}
	if bad := s.Check("user", map[string]any{"id": "x", "accountEnabled": false, "passwordProfile": map[string]any{"password": "p", "forceChangePasswordNextSignIn": true}}); len(bad) != 0 {
		t.Fatalf("a valid user: %v", bad)
	}
	for _, c := range []struct {
		obj  map[string]any
		want string
	}{
		{map[string]any{"accountDisabled": true}, "user.accountDisabled is not in the Graph v1.0 schema"},
		{map[string]any{"accountEnabled": "false"}, "not Edm.Boolean"},
		{map[string]any{"passwordProfile": map[string]any{"pwd": "x"}}, "passwordProfile.pwd is not in the Graph v1.0 schema"},
		{map[string]any{"lastPasswordChangeDateTime": "yesterday"}, "not an Edm.DateTimeOffset"},
	} {
		if bad := strings.Join(s.Check("user", c.obj), "; "); !strings.Contains(bad, c.want) {
			t.Errorf("%v: %q, want %q", c.obj, bad, c.want)
		}
	}
	if err := s.Action("user", "revokeSignInSession"); err == nil {
		t.Error("a misspelt action passed")
	}
	if _, err := s.EntitySet("user"); err == nil {
		t.Error("a wrong entity set passed")
	}
	if err := s.Navigation("directoryRole", "member"); err == nil {
		t.Error("a wrong navigation passed")
	}
	if bad := strings.Join(s.Check("conditionalAccessPolicy", map[string]any{"state": "on"}), "; "); !strings.Contains(bad, "not a member of conditionalAccessPolicyState") {
		t.Errorf("a state Graph does not have: %q", bad)
	}
	if typ, err := s.NavigationType("rbacApplication", "roleAssignments"); err != nil || typ != "unifiedRoleAssignment" {
		t.Errorf("roleManagement/directory/roleAssignments: %q, %v", typ, err)
	}
	if _, err := s.NavigationType("identityContainer", "conditionalAccessPolicies"); err == nil {
		t.Error("a wrong navigation passed")
	}
}
