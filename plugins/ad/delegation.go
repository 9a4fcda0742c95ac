package ad

import (
	"fmt"
	"strconv"
	"strings"
)

const uacTrustedForDelegation = 0x80000

// delegation finds accounts and computers (not domain controllers) that
// may act as others: unconstrained (TRUSTED_FOR_DELEGATION), constrained
// (msDS-AllowedToDelegateTo) and resource-based
// (msDS-AllowedToActOnBehalfOfOtherIdentity). The old provider's objects,
// and the old provider's principals allowed to act on behalf of others,
// are removable; the rest a person reviews.
func (s *sweep) delegation() error {
	es, err := searchAll(s.c, s.d.s, s.d.info.domainDN,
		"(|(userAccountControl:1.2.840.113556.1.4.803:=524288)(msDS-AllowedToDelegateTo=*)(msDS-AllowedToActOnBehalfOfOtherIdentity=*))",
		[]string{"sAMAccountName", "objectSid", "userAccountControl", "msDS-AllowedToDelegateTo", "msDS-AllowedToActOnBehalfOfOtherIdentity"})
	if err != nil {
		return err
	}
	for _, e := range es {
		sid := sidString(e.GetRawAttributeValue("objectSid"))
		uac, _ := strconv.ParseInt(e.GetAttributeValue("userAccountControl"), 10, 64)
		whose := s.whose(sid)
		if whose == "" {
			whose = whoseAny
		}
		add := func(value, what, remedy string, w string) {
			s.add(&finding{Kind: kindDelegation, Object: e.DN, Value: value, Principal: sid, Whose: w, Removable: w == whoseOld, What: what, Remedy: remedy})
		}
		if uac&uacTrustedForDelegation != 0 && uac&uacServerTrust == 0 {
			add("unconstrained", fmt.Sprintf("%s is trusted for unconstrained delegation: every user who signs in to it hands it a ticket it can use anywhere", s.name(sid)),
				fmt.Sprintf("Set-ADAccountControl -Identity '%s' -TrustedForDelegation $false", e.DN), whose)
		}
		for _, spn := range e.GetAttributeValues("msDS-AllowedToDelegateTo") {
			add("constrained:"+spn, fmt.Sprintf("%s may act as any user towards %s (constrained delegation)", s.name(sid), spn),
				fmt.Sprintf("Set-ADObject '%s' -Remove @{'msDS-AllowedToDelegateTo'='%s'}", e.DN, spn), whose)
		}
		if raw := e.GetRawAttributeValue("msDS-AllowedToActOnBehalfOfOtherIdentity"); len(raw) > 0 {
			dacl, err := parseSD(raw)
			if err != nil {
				return fmt.Errorf("msDS-AllowedToActOnBehalfOfOtherIdentity of %s: %v", e.DN, err)
			}
			for _, a := range dacl.aces {
				if a.typ != aceAllowed && a.typ != aceAllowedObject {
					continue
				}
				w := s.whose(a.sid)
				if w == "" {
					w = whoseAny
				}
				add("rbcd:"+a.sid, fmt.Sprintf("%s may act as any user towards %s (resource-based constrained delegation)", s.name(a.sid), strings.TrimSpace(s.name(sid))),
					fmt.Sprintf("Set-ADComputer '%s' -PrincipalsAllowedToDelegateToAccount $null (or set it to the principals that should stay)", e.DN), w)
			}
		}
	}
	return nil
}
