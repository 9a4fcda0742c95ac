package ad

import (
	"encoding/binary"
	"fmt"
	"strings"

	"github.com/go-ldap/ldap/v3"
)

// Security descriptors as AD stores them (nTSecurityDescriptor, and
// msDS-AllowedToActOnBehalfOfOtherIdentity): self-relative, [MS-DTYP]
// 2.4.6. Only the DACL is read and written (the LDAP_SERVER_SD_FLAGS
// control); an ACE this code does not remove is written back byte for
// byte as it was read.

// sdFlagsDACL asks for, and writes, the DACL alone ([MS-ADTS] 3.1.1.3.4.1.11).
var sdFlagsDACL = ldap.NewControlString("1.2.840.113556.1.4.801", true, "\x30\x03\x02\x01\x04")

// ACE types and flags ([MS-DTYP] 2.4.4.1).
const (
	aceAllowed       = 0x00
	aceDenied        = 0x01
	aceAudit         = 0x02
	aceAllowedObject = 0x05
	aceDeniedObject  = 0x06
	aceAuditObject   = 0x07

	aceInherited = 0x10
)

// Access mask bits of directory objects ([MS-ADTS] 5.1.3.2).
const (
	rightCreateChild   = 0x1
	rightDeleteChild   = 0x2
	rightListChildren  = 0x4
	rightSelf          = 0x8
	rightReadProp      = 0x10
	rightWriteProp     = 0x20
	rightDeleteTree    = 0x40
	rightListObject    = 0x80
	rightControlAccess = 0x100
	rightDelete        = 0x10000
	rightReadControl   = 0x20000
	rightWriteDacl     = 0x40000
	rightWriteOwner    = 0x80000
	rightGenericAll    = 0x10000000
	rightGenericExec   = 0x20000000
	rightGenericWrite  = 0x40000000
	rightGenericRead   = 0x80000000
)

var rightLetters = []struct {
	bit  uint32
	code string
}{
	{rightGenericAll, "GA"}, {rightGenericRead, "GR"}, {rightGenericWrite, "GW"}, {rightGenericExec, "GX"},
	{rightCreateChild, "CC"}, {rightDeleteChild, "DC"}, {rightListChildren, "LC"}, {rightSelf, "SW"},
	{rightReadProp, "RP"}, {rightWriteProp, "WP"}, {rightDeleteTree, "DT"}, {rightListObject, "LO"},
	{rightControlAccess, "CR"}, {rightDelete, "SD"}, {rightReadControl, "RC"}, {rightWriteDacl, "WD"},
	{rightWriteOwner, "WO"},
}

// Object types that make a write or an extended right dangerous.
var dangerousObjectTypes = map[string]string{
	"1131f6aa-9c07-11d1-f79f-00c04fc2dcd2": "DS-Replication-Get-Changes",
	"1131f6ad-9c07-11d1-f79f-00c04fc2dcd2": "DS-Replication-Get-Changes-All",
	"89e95b76-444d-4c62-991a-0facbeda640c": "DS-Replication-Get-Changes-In-Filtered-Set",
	"00299570-246d-11d0-a768-00aa006e0529": "User-Force-Change-Password",
	"bf9679c0-0de6-11d0-a285-00aa003049e2": "write of member",
	"f30e3bbe-9ff0-11d1-b603-0000f80367c1": "write of gPLink",
	"5b47d60f-6090-40b2-9f37-2a4de88f3063": "write of msDS-KeyCredentialLink",
}

// ace is one access control entry; raw is its bytes as read.
type ace struct {
	typ, flags    byte
	mask          uint32
	objectType    string // GUID, "" if none
	inheritedType string
	sid           string
	raw           []byte
}

// acl is a parsed DACL with the descriptor it came from.
type acl struct {
	control  uint16
	revision byte
	aces     []*ace
}

func readGUID(b []byte) string {
	return fmt.Sprintf("%08x-%04x-%04x-%x-%x", binary.LittleEndian.Uint32(b), binary.LittleEndian.Uint16(b[4:]),
		binary.LittleEndian.Uint16(b[6:]), b[8:10], b[10:16])
}

// parseSD reads a self-relative security descriptor's DACL.
func parseSD(sd []byte) (*acl, error) {
	if len(sd) < 20 || sd[0] != 1 {
		return nil, fmt.Errorf("not a self-relative security descriptor (%d bytes)", len(sd))
	}
	a := &acl{control: binary.LittleEndian.Uint16(sd[2:])}
	off := int(binary.LittleEndian.Uint32(sd[16:]))
	if off == 0 || a.control&0x4 == 0 {
		return a, nil // no DACL
	}
	if off+8 > len(sd) {
		return nil, fmt.Errorf("the DACL lies outside the descriptor")
	}
	d := sd[off:]
	a.revision = d[0]
	size, count := int(binary.LittleEndian.Uint16(d[2:])), int(binary.LittleEndian.Uint16(d[4:]))
	if size > len(d) {
		return nil, fmt.Errorf("the DACL is longer than the descriptor")
	}
	p := 8
	for i := 0; i < count; i++ {
		if p+4 > size {
			return nil, fmt.Errorf("ACE %d lies outside the DACL", i)
		}
		n := int(binary.LittleEndian.Uint16(d[p+2:]))
		if n < 4 || p+n > size {
			return nil, fmt.Errorf("ACE %d has a bad size", i)
		}
		e, err := parseACE(d[p : p+n])
		if err != nil {
			return nil, fmt.Errorf("ACE %d: %v", i, err)
		}
		a.aces = append(a.aces, e)
		p += n
	}
	return a, nil
}

func parseACE(b []byte) (*ace, error) {
	e := &ace{typ: b[0], flags: b[1], raw: append([]byte(nil), b...)}
	body := b[4:]
	switch e.typ {
	case aceAllowed, aceDenied, aceAudit:
		if len(body) < 12 {
			return nil, fmt.Errorf("too short")
		}
		e.mask, e.sid = binary.LittleEndian.Uint32(body), sidString(body[4:])
	case aceAllowedObject, aceDeniedObject, aceAuditObject:
		if len(body) < 8 {
			return nil, fmt.Errorf("too short")
		}
		e.mask = binary.LittleEndian.Uint32(body)
		flags := binary.LittleEndian.Uint32(body[4:])
		p := 8
		for _, f := range []struct {
			bit uint32
			to  *string
		}{{1, &e.objectType}, {2, &e.inheritedType}} {
			if flags&f.bit != 0 {
				if p+16 > len(body) {
					return nil, fmt.Errorf("too short")
				}
				*f.to = readGUID(body[p:])
				p += 16
			}
		}
		if p+8 > len(body) {
			return nil, fmt.Errorf("too short")
		}
		e.sid = sidString(body[p:])
	}
	return e, nil
}

// sddl is the ACE in SDDL, with the full SID: how it is named in plans,
// in outputs and to a person, and how a removal finds it again.
func (e *ace) sddl() string {
	typ := map[byte]string{aceAllowed: "A", aceDenied: "D", aceAudit: "AU", aceAllowedObject: "OA", aceDeniedObject: "OD", aceAuditObject: "OU"}[e.typ]
	if typ == "" {
		return fmt.Sprintf("(raw:%x)", e.raw)
	}
	var flags strings.Builder
	for _, f := range []struct {
		bit  byte
		code string
	}{{0x2, "CI"}, {0x1, "OI"}, {0x4, "NP"}, {0x8, "IO"}, {0x10, "ID"}, {0x40, "SA"}, {0x80, "FA"}} {
		if e.flags&f.bit != 0 {
			flags.WriteString(f.code)
		}
	}
	return fmt.Sprintf("(%s;%s;%s;%s;%s;%s)", typ, flags.String(), maskString(e.mask), e.objectType, e.inheritedType, e.sid)
}

func maskString(m uint32) string {
	var b strings.Builder
	rest := m
	for _, r := range rightLetters {
		if m&r.bit != 0 {
			b.WriteString(r.code)
			rest &^= r.bit
		}
	}
	if rest != 0 {
		return fmt.Sprintf("0x%x", m)
	}
	return b.String()
}

// dangerous names what an allow ACE grants that lets its holder take the
// domain or the object back ("" if nothing).
func (e *ace) dangerous() string {
	if e.typ != aceAllowed && e.typ != aceAllowedObject {
		return ""
	}
	var what []string
	for _, r := range []struct {
		bit  uint32
		name string
	}{{rightGenericAll, "GenericAll"}, {rightGenericWrite, "GenericWrite"}, {rightWriteDacl, "WriteDacl"}, {rightWriteOwner, "WriteOwner"}} {
		if e.mask&r.bit != 0 {
			what = append(what, r.name)
		}
	}
	if e.mask&rightGenericAll == 0 {
		named := dangerousObjectTypes[e.objectType]
		switch {
		case e.mask&rightControlAccess != 0 && e.objectType == "":
			what = append(what, "all extended rights (replication, force password change)")
		case e.mask&rightControlAccess != 0 && named != "" && !strings.HasPrefix(named, "write of"):
			what = append(what, named)
		}
		switch {
		case e.mask&rightWriteProp != 0 && e.objectType == "" && e.mask&rightGenericWrite == 0:
			what = append(what, "write of every attribute")
		case e.mask&(rightWriteProp|rightSelf) != 0 && strings.HasPrefix(named, "write of"):
			what = append(what, named)
		}
	}
	return strings.Join(what, ", ")
}

// withoutACEs is the descriptor to write: the DACL alone (the other parts
// stay as they are, by sdFlagsDACL), every ACE but those dropped, each
// kept one byte for byte.
func (a *acl) withoutACEs(drop func(*ace) bool) ([]byte, int) {
	var body []byte
	kept, dropped := 0, 0
	for _, e := range a.aces {
		if drop(e) {
			dropped++
			continue
		}
		body = append(body, e.raw...)
		kept++
	}
	// Only the DACL's own control bits, and self-relative.
	control := a.control&(0x4|0x8|0x100|0x400|0x1000) | 0x8000 | 0x4
	sd := make([]byte, 20+8, 20+8+len(body))
	sd[0] = 1
	binary.LittleEndian.PutUint16(sd[2:], control)
	binary.LittleEndian.PutUint32(sd[16:], 20)
	rev := a.revision
	if rev == 0 {
		rev = 4
	}
	sd[20] = rev
	binary.LittleEndian.PutUint16(sd[22:], uint16(8+len(body)))
	binary.LittleEndian.PutUint16(sd[24:], uint16(kept))
	return append(sd, body...), dropped
}
