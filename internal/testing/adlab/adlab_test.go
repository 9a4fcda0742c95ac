package adlab

import (
	"testing"

	"github.com/go-ldap/ldap/v3"
)

// The lab itself: a DC answers over LDAPS with its own CA, and the
// Administrator's password works while a wrong one is refused.
func TestDCStarts(t *testing.T) {
	d := Start(t)
	c := d.Admin(t)
	r, err := c.Search(ldap.NewSearchRequest("", ldap.ScopeBaseObject, ldap.NeverDerefAliases, 0, 0, false, "(objectClass=*)", []string{"defaultNamingContext"}, nil))
	if err != nil || r.Entries[0].GetAttributeValue("defaultNamingContext") != BaseDN {
		t.Fatalf("rootDSE: %v %v", r, err)
	}
	if d.BindWorks(t, AdminDN, "wrong") {
		t.Fatal("a wrong password binds")
	}
}
