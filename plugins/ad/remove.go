package ad

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/go-ldap/ldap/v3"
	"github.com/zclconf/go-cty/cty"

	"github.com/switchover/switchover/plugins/sdk"
)

// attidNTSecurityDescriptor is nTSecurityDescriptor's attribute ID in
// replPropertyMetaData (1.2.840.113556.1.2.281).
const attidNTSecurityDescriptor = 0x00020119

// descriptor is an object's DACL as read, with the version of its
// nTSecurityDescriptor (every write adds one).
type descriptor struct {
	raw     []byte
	version uint32
	acl     *acl
}

func readDescriptor(c *ldap.Conn, dn string) (*descriptor, error) {
	r, err := c.Search(ldap.NewSearchRequest(dn, ldap.ScopeBaseObject, ldap.NeverDerefAliases, 0, 0, false, "(objectClass=*)",
		[]string{"nTSecurityDescriptor", "replPropertyMetaData"}, []ldap.Control{sdFlagsDACL}))
	if ldap.IsErrorWithCode(err, ldap.LDAPResultNoSuchObject) {
		return nil, sdk.NotFound("%s", dn)
	}
	if err != nil || len(r.Entries) == 0 {
		return nil, fmt.Errorf("reading the security descriptor of %s: %v", dn, err)
	}
	e := r.Entries[0]
	d := &descriptor{raw: e.GetRawAttributeValue("nTSecurityDescriptor"), version: metaVersion(e.GetRawAttributeValue("replPropertyMetaData"), attidNTSecurityDescriptor)}
	if d.acl, err = parseSD(d.raw); err != nil {
		return nil, fmt.Errorf("the security descriptor of %s: %v", dn, err)
	}
	return d, nil
}

// metaVersion is an attribute's version in a replPropertyMetaDataBlob
// ([MS-DRSR] 5.161: version 1, then 48-byte entries); 0 if absent.
func metaVersion(b []byte, attid uint32) uint32 {
	if len(b) < 16 || binary.LittleEndian.Uint32(b) != 1 {
		return 0
	}
	n := int(binary.LittleEndian.Uint32(b[8:]))
	for i := 0; i < n && 16+48*(i+1) <= len(b); i++ {
		e := b[16+48*i:]
		if binary.LittleEndian.Uint32(e) == attid {
			return binary.LittleEndian.Uint32(e[4:])
		}
	}
	return 0
}

// matching is the explicit ACEs the finding names.
func (d *descriptor) matching(value string) []*ace {
	var out []*ace
	for _, e := range d.acl.aces {
		if e.flags&aceInherited == 0 && e.sddl() == value {
			out = append(out, e)
		}
	}
	return out
}

func (p *plugin) removePersistence() *sdk.Action {
	plan := func(ctx context.Context, d *directory, c *ldap.Conn, req *sdk.PlanRequest) *sdk.PlanResponse {
		a := req.Attributes
		kind, dn, value := a.String("kind"), a.String("object"), a.String("value")
		switch kind {
		case kindACE:
			return planACE(c, dn, value)
		case kindKeyCredential, kindSIDHistory, kindDelegation, kindMembership:
			return planValue(c, d, kind, dn, value)
		}
		return sdk.PlanError(fmt.Errorf("kind %q cannot be removed by switchover (removable kinds: ace, key_credential, sid_history, delegation, privileged_membership); the sweep lists the others as open items", kind))
	}
	apply := func(ctx context.Context, d *directory, c *ldap.Conn, req *sdk.ApplyRequest, ev sdk.Events) *sdk.ApplyResponse {
		a := req.Attributes
		kind, dn, value := a.String("kind"), a.String("object"), a.String("value")
		if kind == kindACE {
			// One descriptor rewrite at a time per object in this
			// process: two ACEs of one object removed by parallel
			// instances would otherwise each write the other's back.
			unlock := d.lockObject(dn)
			defer unlock()
			return applyACE(c, dn, value, req.Private)
		}
		return applyValue(c, kind, dn, value)
	}
	return goneIsDone(p.action("remove_persistence",
		"Removes one back door ad.find_persistence found: an ACE (the DACL is written back without it, every other ACE byte for byte, refused if the descriptor changed since the plan), a shadow credential, a sIDHistory value, a delegation setting, or a membership in a privileged group. On Samba, which refuses sIDHistory changes over LDAP, a sIDHistory value is left to a person with the command.",
		[]sdk.Attribute{
			{Name: "kind", Type: cty.String, Required: true, Description: "ace, key_credential, sid_history, delegation or privileged_membership (the finding's kind)."},
			{Name: "object", Type: cty.String, Required: true, Description: "The DN of the object (the finding's object)."},
			{Name: "value", Type: cty.String, Required: true, Description: "The finding's value: the ACE in SDDL, the msDS-KeyCredentialLink value, the SID, unconstrained / constrained:SPN / rbcd:SID, or the privileged group's DN."},
		}, nil, plan, apply))
}

func planACE(c *ldap.Conn, dn, value string) *sdk.PlanResponse {
	desc, err := readDescriptor(c, dn)
	if err != nil {
		return sdk.PlanError(err)
	}
	m := desc.matching(value)
	if len(m) == 0 {
		return sdk.NoChangef("the ACE %s is not on %s", value, dn)
	}
	r := sdk.Changef("remove the ACE %s from %s", value, dn)
	r.Details = []string{fmt.Sprintf("it grants %s; the other %d ACEs stay as they are", m[0].dangerous(), len(desc.acl.aces)-len(m))}
	r.Private = binary.LittleEndian.AppendUint32(nil, desc.version)
	r.Private = append(r.Private, desc.raw...)
	return r
}

// applyACE writes the DACL back without the ACE, only if it is still the
// one the plan read; the descriptor's version then says whether anyone
// else wrote it between this read and this write.
func applyACE(c *ldap.Conn, dn, value string, private []byte) *sdk.ApplyResponse {
	desc, err := readDescriptor(c, dn)
	if err != nil {
		return sdk.ApplyError(err)
	}
	if len(private) < 4 || !onlyRemovedSince(private[4:], desc) {
		return sdk.ApplyError(sdk.Conflict("the security descriptor of %s changed since the plan read it (nothing was written)", dn))
	}
	sd, dropped := desc.acl.withoutACEs(func(e *ace) bool { return e.flags&aceInherited == 0 && e.sddl() == value })
	if dropped == 0 {
		return &sdk.ApplyResponse{Summary: "the ACE was gone already"}
	}
	m := ldap.NewModifyRequest(dn, []ldap.Control{sdFlagsDACL})
	m.Replace("nTSecurityDescriptor", []string{string(sd)})
	if err := modify(c, m, "rewriting the security descriptor of "+dn); err != nil {
		return sdk.ApplyError(err)
	}
	resp := &sdk.ApplyResponse{Summary: fmt.Sprintf("removed the ACE %s from %s", value, dn)}
	after, err := readDescriptor(c, dn)
	if err == nil && desc.version != 0 && after.version != desc.version+1 {
		resp.Diagnostics = append(resp.Diagnostics, sdk.LeftForPerson("The security descriptor was written by someone else at the same time",
			"%s: version %d when read, %d after switchover's one write: another change to its permissions went in within milliseconds of switchover's, and one of the two may have replaced the other. Check its permissions (dsacls \"%s\").", dn, desc.version, after.version, dn))
	}
	return resp
}

// onlyRemovedSince: the descriptor now is the one the plan read, or that
// one with ACEs removed (by this run's other instances, or by a person);
// anything added or changed is a conflict, planned again.
func onlyRemovedSince(planned []byte, now *descriptor) bool {
	if bytes.Equal(planned, now.raw) {
		return true
	}
	was, err := parseSD(planned)
	if err != nil || was.control != now.acl.control {
		return false
	}
	i := 0
	for _, e := range now.acl.aces {
		for i < len(was.aces) && !bytes.Equal(was.aces[i].raw, e.raw) {
			i++
		}
		if i == len(was.aces) {
			return false
		}
		i++
	}
	return true
}

// planValue plans the removal of one attribute value (or bit).
func planValue(c *ldap.Conn, d *directory, kind, dn, value string) *sdk.PlanResponse {
	present, err := valuePresent(c, kind, dn, value)
	if err != nil {
		return sdk.PlanError(err)
	}
	if !present {
		return sdk.NoChangef("%s %s is not on %s", kind, truncateChars(value, 60), dn)
	}
	if kind == kindSIDHistory && isSamba(c) {
		r := sdk.Manualf("remove %s from the sIDHistory of %s (Samba refuses it over LDAP)", value, dn)
		r.Details = []string{sidHistoryRemedy(dn, value, true)}
		return r
	}
	return sdk.Changef("remove %s %s from %s", kind, truncateChars(value, 60), dn)
}

func isSamba(c *ldap.Conn) bool {
	r, err := c.Search(ldap.NewSearchRequest("", ldap.ScopeBaseObject, ldap.NeverDerefAliases, 0, 0, false, "(objectClass=*)", []string{"vendorName"}, nil))
	return err == nil && len(r.Entries) == 1 && strings.Contains(r.Entries[0].GetAttributeValue("vendorName"), "Samba")
}

func readObject(c *ldap.Conn, dn string, attrs ...string) (*ldap.Entry, error) {
	r, err := c.Search(ldap.NewSearchRequest(dn, ldap.ScopeBaseObject, ldap.NeverDerefAliases, 0, 0, false, "(objectClass=*)", attrs, nil))
	if ldap.IsErrorWithCode(err, ldap.LDAPResultNoSuchObject) {
		return nil, sdk.NotFound("%s", dn)
	}
	if err != nil || len(r.Entries) == 0 {
		return nil, fmt.Errorf("reading %s: %v", dn, err)
	}
	return r.Entries[0], nil
}

func valuePresent(c *ldap.Conn, kind, dn, value string) (bool, error) {
	switch kind {
	case kindKeyCredential:
		e, err := readObject(c, dn, "msDS-KeyCredentialLink")
		return err == nil && slices.Contains(e.GetAttributeValues("msDS-KeyCredentialLink"), value), err
	case kindMembership:
		e, err := readObject(c, value, "member")
		return err == nil && slices.ContainsFunc(e.GetAttributeValues("member"), func(m string) bool { return sameDN(m, dn) }), err
	case kindSIDHistory:
		e, err := readObject(c, dn, "sIDHistory")
		if err != nil {
			return false, err
		}
		for _, raw := range e.GetRawAttributeValues("sIDHistory") {
			if sidString(raw) == value {
				return true, nil
			}
		}
		return false, nil
	}
	e, err := readObject(c, dn, "userAccountControl", "msDS-AllowedToDelegateTo", "msDS-AllowedToActOnBehalfOfOtherIdentity")
	if err != nil {
		return false, err
	}
	switch {
	case value == "unconstrained":
		uac, _ := strconv.ParseInt(e.GetAttributeValue("userAccountControl"), 10, 64)
		return uac&uacTrustedForDelegation != 0, nil
	case strings.HasPrefix(value, "constrained:"):
		return slices.Contains(e.GetAttributeValues("msDS-AllowedToDelegateTo"), strings.TrimPrefix(value, "constrained:")), nil
	case strings.HasPrefix(value, "rbcd:"):
		dacl, err := parseSD(e.GetRawAttributeValue("msDS-AllowedToActOnBehalfOfOtherIdentity"))
		if err != nil {
			return false, nil // none, or unreadable: nothing of this SID's to remove
		}
		return slices.ContainsFunc(dacl.aces, func(a *ace) bool { return a.sid == strings.TrimPrefix(value, "rbcd:") }), nil
	}
	return false, fmt.Errorf("delegation value %q: want unconstrained, constrained:SPN or rbcd:SID", value)
}

// applyValue removes one value: a delete of exactly that value (the
// directory refuses it if the value is gone: a conflict, planned again),
// or a compare-and-swap of userAccountControl or the RBCD descriptor.
func applyValue(c *ldap.Conn, kind, dn, value string) *sdk.ApplyResponse {
	m := ldap.NewModifyRequest(dn, nil)
	switch {
	case kind == kindKeyCredential:
		m.Delete("msDS-KeyCredentialLink", []string{value})
	case kind == kindSIDHistory:
		b, err := sidBytes(value)
		if err != nil {
			return sdk.ApplyError(err)
		}
		m.Delete("sIDHistory", []string{string(b)})
	case kind == kindMembership:
		m = ldap.NewModifyRequest(value, nil)
		m.Delete("member", []string{dn})
	case kind == kindDelegation:
		if err := delegationChange(c, m, dn, value); err != nil {
			return sdk.ApplyError(err)
		}
	default:
		return sdk.ApplyError(fmt.Errorf("kind %q cannot be removed", kind))
	}
	if err := modify(c, m, "removing "+kind+" from "+dn); err != nil {
		if kind == kindSIDHistory && ldap.IsErrorWithCode(err, ldap.LDAPResultUnwillingToPerform) {
			return sdk.ApplyError(fmt.Errorf("the DC refuses to change sIDHistory over LDAP: %s", sidHistoryRemedy(dn, value, false)))
		}
		return sdk.ApplyError(err)
	}
	return &sdk.ApplyResponse{Summary: fmt.Sprintf("removed %s %s from %s", kind, truncateChars(value, 60), dn)}
}

func delegationChange(c *ldap.Conn, m *ldap.ModifyRequest, dn, value string) error {
	e, err := readObject(c, dn, "userAccountControl", "msDS-AllowedToActOnBehalfOfOtherIdentity")
	if err != nil {
		return err
	}
	switch {
	case value == "unconstrained":
		uac := e.GetAttributeValue("userAccountControl")
		v, _ := strconv.ParseInt(uac, 10, 64)
		m.Delete("userAccountControl", []string{uac})
		m.Add("userAccountControl", []string{strconv.FormatInt(v&^uacTrustedForDelegation, 10)})
	case strings.HasPrefix(value, "constrained:"):
		m.Delete("msDS-AllowedToDelegateTo", []string{strings.TrimPrefix(value, "constrained:")})
	case strings.HasPrefix(value, "rbcd:"):
		raw := e.GetRawAttributeValue("msDS-AllowedToActOnBehalfOfOtherIdentity")
		dacl, err := parseSD(raw)
		if err != nil {
			return fmt.Errorf("msDS-AllowedToActOnBehalfOfOtherIdentity of %s: %v", dn, err)
		}
		sid := strings.TrimPrefix(value, "rbcd:")
		sd, _ := dacl.withoutACEs(func(a *ace) bool { return a.sid == sid })
		m.Delete("msDS-AllowedToActOnBehalfOfOtherIdentity", []string{string(raw)})
		if slices.ContainsFunc(dacl.aces, func(a *ace) bool { return a.sid != sid }) {
			m.Add("msDS-AllowedToActOnBehalfOfOtherIdentity", []string{string(sd)})
		}
	default:
		return fmt.Errorf("delegation value %q: want unconstrained, constrained:SPN or rbcd:SID", value)
	}
	return nil
}
