package ad

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/go-ldap/ldap/v3"
	"github.com/zclconf/go-cty/cty"

	"github.com/switchover/switchover/plugins/sdk"
)

var functionalLevels = map[string]string{"0": "2000", "1": "2003 interim", "2": "2003", "3": "2008", "4": "2008 R2", "5": "2012", "6": "2012 R2", "7": "2016"}

// interval reads AD's negative 100-ns intervals (maxPwdAge and the like).
func interval(s string) string {
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil || v == 0 || v == -1<<63 {
		return "never"
	}
	if v < 0 {
		v = -v
	}
	d := time.Duration(v * 100)
	if d >= 24*time.Hour {
		return fmt.Sprintf("%dd", int(d.Hours()/24))
	}
	return d.String()
}

func (p *plugin) inventory() *sdk.Action {
	gather := func(ctx context.Context, d *directory, c *ldap.Conn, a sdk.Values) (map[string]cty.Value, sdk.Diagnostics, error) {
		r, err := c.Search(ldap.NewSearchRequest(d.info.domainDN, ldap.ScopeBaseObject, ldap.NeverDerefAliases, 0, 0, false, "(objectClass=*)",
			[]string{"msDS-Behavior-Version", "minPwdLength", "maxPwdAge", "minPwdAge", "pwdHistoryLength", "pwdProperties", "lockoutThreshold", "lockoutDuration"}, nil))
		if err != nil || len(r.Entries) == 0 {
			return nil, nil, fmt.Errorf("reading the domain object: %v", err)
		}
		dom := r.Entries[0]
		level := functionalLevels[dom.GetAttributeValue("msDS-Behavior-Version")]
		policy := map[string]cty.Value{
			"min_length":        cty.StringVal(dom.GetAttributeValue("minPwdLength")),
			"history_length":    cty.StringVal(dom.GetAttributeValue("pwdHistoryLength")),
			"max_age":           cty.StringVal(interval(dom.GetAttributeValue("maxPwdAge"))),
			"min_age":           cty.StringVal(interval(dom.GetAttributeValue("minPwdAge"))),
			"complexity":        cty.StringVal(fmt.Sprint(atoi(dom.GetAttributeValue("pwdProperties"))&1 == 1)),
			"lockout_threshold": cty.StringVal(dom.GetAttributeValue("lockoutThreshold")),
		}
		dcs, err := searchAll(c, d.s, d.info.domainDN, "(&(objectCategory=computer)(userAccountControl:1.2.840.113556.1.4.803:=8192))", []string{"dNSHostName", "cn", "operatingSystem"})
		if err != nil {
			return nil, nil, err
		}
		var dcNames []string
		for _, e := range dcs {
			n := e.GetAttributeValue("dNSHostName")
			if n == "" {
				n = e.GetAttributeValue("cn")
			}
			dcNames = append(dcNames, n)
		}
		members, groups, err := privilegedMembers(c, d)
		if err != nil {
			return nil, nil, err
		}
		byGroup := map[string][]string{}
		for _, g := range groups {
			byGroup[g.Name] = nil
		}
		for _, m := range members {
			for _, g := range m.groups {
				byGroup[g] = append(byGroup[g], cnOf(m.dn))
			}
		}
		priv := map[string]cty.Value{}
		for g, ms := range byGroup {
			sort.Strings(ms)
			priv[g] = sdk.StringList(ms)
		}
		users, err := searchAll(c, d.s, d.info.domainDN, "(&(objectCategory=person)(objectClass=user))", append(append([]string{}, accountAttrs...), "mS-DS-ConsistencyGuid"))
		if err != nil {
			return nil, nil, err
		}
		var spn, never, syncAccts []string
		synced := false
		for _, e := range users {
			acc := accountFrom(e)
			if len(acc.SPNs) > 0 && ridOf(acc.SID) != 502 {
				spn = append(spn, acc.Sam)
			}
			if acc.UAC&uacPasswordNeverExpir != 0 {
				never = append(never, acc.Sam)
			}
			low := strings.ToLower(acc.Sam)
			if strings.HasPrefix(low, "msol_") || strings.HasPrefix(low, "sync_") || strings.HasPrefix(low, "aad_") {
				syncAccts = append(syncAccts, acc.Sam)
			}
			if len(e.GetRawAttributeValue("mS-DS-ConsistencyGuid")) > 0 {
				synced = true
			}
		}
		staleDays := int64(90)
		if a.Has("stale_days") {
			staleDays = a.Int("stale_days")
		}
		before := toFileTime(time.Now().Add(-time.Duration(staleDays) * 24 * time.Hour))
		stale, err := searchAll(c, d.s, d.info.domainDN, fmt.Sprintf("(&(objectCategory=computer)(!(userAccountControl:1.2.840.113556.1.4.803:=8192))(|(!(lastLogonTimestamp=*))(lastLogonTimestamp<=%d)))", before), []string{"cn"})
		if err != nil {
			return nil, nil, err
		}
		var staleNames []string
		for _, e := range stale {
			staleNames = append(staleNames, e.GetAttributeValue("cn"))
		}
		for _, l := range [][]string{dcNames, spn, never, syncAccts, staleNames} {
			sort.Strings(l)
		}
		var diags sdk.Diagnostics
		synced = synced || len(syncAccts) > 0
		if synced {
			diags = append(diags, sdk.Diagnostic{Severity: sdk.Warning, Summary: "The domain is synced to Entra ID",
				Detail: "Directory sync accounts or ms-DS-ConsistencyGuid were found (" + strings.Join(syncAccts, ", ") + "): account changes here reach Microsoft 365 at the next sync cycle, and the sync account's password is one the old provider may know."})
		}
		outs := map[string]cty.Value{
			"domain":                  cty.StringVal(d.info.domainDN),
			"domain_sid":              cty.StringVal(d.info.domainSID),
			"functional_level":        cty.StringVal(level),
			"domain_controllers":      sdk.StringList(dcNames),
			"password_policy":         cty.MapVal(policy),
			"privileged_members":      cty.MapVal(priv),
			"spn_accounts":            sdk.StringList(spn),
			"password_never_expires":  sdk.StringList(never),
			"stale_computers":         sdk.StringList(staleNames),
			"entra_sync":              cty.BoolVal(synced),
			"directory_sync_accounts": sdk.StringList(syncAccts),
			"accounts":                cty.NumberIntVal(int64(len(users))),
		}
		return outs, diags, nil
	}
	summary := func(outs map[string]cty.Value) string {
		n := 0
		for it := outs["privileged_members"].ElementIterator(); it.Next(); {
			_, v := it.Element()
			n += v.LengthInt()
		}
		s := fmt.Sprintf("read the inventory of %s: %d accounts, %d privileged memberships, %d accounts with SPNs, %d whose password never expires",
			outs["domain"].AsString(), atoi(outs["accounts"].AsBigFloat().String()), n, outs["spn_accounts"].LengthInt(), outs["password_never_expires"].LengthInt())
		if outs["entra_sync"].True() {
			s += "; synced to Entra ID"
		}
		return s
	}
	return p.readAction("inventory",
		"Reads the domain's facts for the handover, changing nothing: functional level, domain controllers, password policy, members of the privileged groups, accounts with SPNs or a password that never expires, stale computers, and whether the domain is synced to Entra ID.",
		[]sdk.Attribute{{Name: "stale_days", Type: cty.Number, Description: "A computer is stale after this many days without logon (default 90)."}},
		[]sdk.Output{
			{Name: "domain", Type: cty.String}, {Name: "domain_sid", Type: cty.String}, {Name: "functional_level", Type: cty.String},
			{Name: "domain_controllers", Type: cty.List(cty.String)},
			{Name: "password_policy", Type: cty.Map(cty.String)},
			{Name: "privileged_members", Type: cty.Map(cty.List(cty.String)), Description: "Privileged group name -> member accounts (nested included)."},
			{Name: "spn_accounts", Type: cty.List(cty.String)},
			{Name: "password_never_expires", Type: cty.List(cty.String)},
			{Name: "stale_computers", Type: cty.List(cty.String)},
			{Name: "entra_sync", Type: cty.Bool},
			{Name: "directory_sync_accounts", Type: cty.List(cty.String)},
			{Name: "accounts", Type: cty.Number},
		},
		func(ctx context.Context, d *directory, c *ldap.Conn, a sdk.Values) (map[string]cty.Value, string, sdk.Diagnostics, error) {
			outs, diags, err := gather(ctx, d, c, a)
			if err != nil {
				return nil, "", nil, err
			}
			return outs, summary(outs), diags, nil
		})
}

func atoi(s string) int {
	v, _ := strconv.Atoi(s)
	return v
}
