package ad

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/go-ldap/ldap/v3"
	"github.com/zclconf/go-cty/cty"

	"github.com/switchover/switchover/plugins/sdk"
)

var foundType = cty.Object(map[string]cty.Type{
	"dn": cty.String, "sid": cty.String, "sam_account_name": cty.String, "upn": cty.String, "enabled": cty.Bool,
	"groups": cty.List(cty.String), "privileged_groups": cty.List(cty.String), "admin_count": cty.Bool,
	"password_never_expires": cty.Bool, "spns": cty.List(cty.String), "last_logon": cty.String, "pwd_last_set": cty.String,
})

// privileged is an account's privileged group memberships.
type privileged struct {
	dn     string
	groups []string
}

// privilegedMembers maps the DN (lower case) of every account that is a
// member of a privileged group, directly, through nested groups or by its
// primary group, to the names of those groups.
func privilegedMembers(c *ldap.Conn, d *directory) (map[string]*privileged, []*group, error) {
	groups, err := findPrivileged(c, d.info)
	if err != nil {
		return nil, nil, err
	}
	out := map[string]*privileged{}
	for _, g := range groups {
		// LDAP_MATCHING_RULE_IN_CHAIN resolves nesting on the server; the
		// primary group (nested in g at any depth) is matched by its RID.
		f := "(&(objectClass=user)(|(memberOf:1.2.840.113556.1.4.1941:=" + ldap.EscapeFilter(g.DN) + ")" + g.primaryFilter() + "))"
		es, err := searchAll(c, d.s, d.info.domainDN, f, []string{"dn"})
		if err != nil {
			return nil, nil, err
		}
		for _, e := range es {
			k := strings.ToLower(e.DN)
			if out[k] == nil {
				out[k] = &privileged{dn: e.DN}
			}
			out[k].groups = append(out[k].groups, g.Name)
		}
	}
	return out, groups, nil
}

// criteria turns find_accounts' attributes into LDAP filters.
func criteria(a sdk.Values, privileged []*group) ([]string, error) {
	var fs []string
	if s := a.String("upn_suffix"); s != "" {
		fs = append(fs, "(userPrincipalName=*@"+ldap.EscapeFilter(strings.TrimPrefix(s, "@"))+")")
	}
	if s := a.String("sam_account_name"); s != "" {
		parts := strings.Split(s, "*")
		for i := range parts {
			parts[i] = ldap.EscapeFilter(parts[i])
		}
		fs = append(fs, "(sAMAccountName="+strings.Join(parts, "*")+")")
	}
	if s := a.String("mentions"); s != "" {
		e := ldap.EscapeFilter(s)
		fs = append(fs, "(|(description=*"+e+"*)(company=*"+e+"*)(info=*"+e+"*)(department=*"+e+"*))")
	}
	if a.Has("privileged") && a.Bool("privileged") {
		var or strings.Builder
		for _, g := range privileged {
			or.WriteString("(memberOf:1.2.840.113556.1.4.1941:=" + ldap.EscapeFilter(g.DN) + ")" + g.primaryFilter())
		}
		fs = append(fs, "(|"+or.String()+")")
	}
	if a.Has("admin_count") && a.Bool("admin_count") {
		fs = append(fs, "(adminCount=1)")
	}
	if a.Has("password_never_expires") && a.Bool("password_never_expires") {
		fs = append(fs, "(userAccountControl:1.2.840.113556.1.4.803:=65536)")
	}
	if a.Has("has_spn") && a.Bool("has_spn") {
		fs = append(fs, "(servicePrincipalName=*)")
	}
	if a.Has("inactive_days") {
		n := a.Int("inactive_days")
		if n <= 0 {
			return nil, fmt.Errorf("inactive_days must be positive")
		}
		before := toFileTime(time.Now().Add(-time.Duration(n) * 24 * time.Hour))
		fs = append(fs, fmt.Sprintf("(|(!(lastLogonTimestamp=*))(lastLogonTimestamp<=%d))", before))
	}
	return fs, nil
}

func (p *plugin) findAccounts() *sdk.Action {
	find := func(ctx context.Context, d *directory, c *ldap.Conn, a sdk.Values) (map[string]cty.Value, string, sdk.Diagnostics, error) {
		if m := a.String("match"); m != "" && m != "all" && m != "any" {
			return nil, "", nil, fmt.Errorf("match is %q: \"all\" or \"any\"", m)
		}
		members, groups, err := privilegedMembers(c, d)
		if err != nil {
			return nil, "", nil, err
		}
		fs, err := criteria(a, groups)
		if err != nil {
			return nil, "", nil, err
		}
		var createdBy string
		if n := a.String("created_by"); n != "" {
			if createdBy, err = resolveSID(c, d.info, n); err != nil {
				return nil, "", nil, err
			}
		}
		if len(fs) == 0 && createdBy == "" {
			return nil, "", nil, fmt.Errorf("give at least one criterion (upn_suffix, sam_account_name, mentions, privileged, admin_count, password_never_expires, has_spn, created_by, inactive_days): find_accounts does not list every account")
		}
		filter := "(&(objectCategory=person)(objectClass=user)"
		if len(fs) > 0 {
			op := "&"
			if a.String("match") == "any" {
				op = "|"
			}
			filter += "(" + op + strings.Join(fs, "") + ")"
		}
		if a.Has("enabled") {
			if a.Bool("enabled") {
				filter += "(!(userAccountControl:1.2.840.113556.1.4.803:=2))"
			} else {
				filter += "(userAccountControl:1.2.840.113556.1.4.803:=2)"
			}
		}
		filter += ")"
		var controls []ldap.Control
		attrs := accountAttrs
		if createdBy != "" {
			// The owner part of the security descriptor only (SD flags 1).
			controls = append(controls, ldap.NewControlString("1.2.840.113556.1.4.801", true, "\x30\x03\x02\x01\x01"))
			attrs = append(append([]string{}, accountAttrs...), "nTSecurityDescriptor")
		}
		es, err := searchAll(c, d.s, d.info.baseDN, filter, attrs, controls...)
		if err != nil {
			return nil, "", nil, err
		}
		// Excluded by SID, whatever the form of the name (and as written,
		// for a name that resolves to nothing).
		exclude := map[string]bool{}
		if a.Has("exclude") {
			for _, x := range a.Strings("exclude") {
				exclude[strings.ToLower(x)] = true
				if sid, err := lookupSID(c, d.info, x); err == nil && sid != "" {
					exclude[sid] = true
				}
			}
		}
		accounts := map[string]cty.Value{}
		var names []string
		var diags sdk.Diagnostics
		primaries := map[uint32]string{}
		primaryName := func(rid uint32) string {
			if rid == 0 {
				return ""
			}
			if n, ok := primaries[rid]; ok {
				return n
			}
			dn, _ := lookupSIDGroup(c, d.info, fmt.Sprintf("%s-%d", d.info.domainSID, rid))
			primaries[rid] = ""
			if dn != "" {
				primaries[rid] = cnOf(dn)
			}
			return primaries[rid]
		}
		for _, e := range es {
			acc := accountFrom(e)
			if exclude[acc.SID] || exclude[strings.ToLower(acc.Sam)] || exclude[strings.ToLower(acc.UPN)] || exclude[strings.ToLower(acc.DN)] {
				continue
			}
			if createdBy != "" && acc.Owner != createdBy {
				continue
			}
			if acc.SID == d.info.bindSID {
				diags = append(diags, sdk.Diagnostic{Severity: sdk.Warning, Summary: "The result includes the account switchover binds as",
					Detail: acc.DN + " matched; no action disables, strips or resets it (refused at plan). Add it to exclude."})
			}
			var groups []string
			for _, g := range acc.MemberOf {
				groups = append(groups, cnOf(g))
			}
			// The primary group too (memberOf never holds it).
			if name := primaryName(acc.PrimaryGroupID); name != "" {
				groups = append(groups, name)
			}
			sort.Strings(groups)
			var priv []string
			if m := members[strings.ToLower(acc.DN)]; m != nil {
				priv = append(priv, m.groups...)
			}
			sort.Strings(priv)
			accounts[acc.Sam] = cty.ObjectVal(map[string]cty.Value{
				"dn": cty.StringVal(acc.DN), "sid": cty.StringVal(acc.SID), "sam_account_name": cty.StringVal(acc.Sam),
				"upn": cty.StringVal(acc.UPN), "enabled": cty.BoolVal(acc.enabled()), "groups": sdk.StringList(groups),
				"privileged_groups": sdk.StringList(priv), "admin_count": cty.BoolVal(acc.AdminCount),
				"password_never_expires": cty.BoolVal(acc.UAC&uacPasswordNeverExpir != 0), "spns": sdk.StringList(acc.SPNs),
				"last_logon": cty.StringVal(rfc3339(acc.LastLogon)), "pwd_last_set": cty.StringVal(rfc3339(acc.PwdLastSet)),
			})
			names = append(names, acc.Sam)
		}
		sort.Strings(names)
		outs := map[string]cty.Value{"accounts": cty.MapValEmpty(foundType), "names": sdk.StringList(names), "count": cty.NumberIntVal(int64(len(names)))}
		if len(accounts) > 0 {
			outs["accounts"] = cty.MapVal(accounts)
		}
		sum := fmt.Sprintf("found %d accounts in %s", len(names), d.info.baseDN)
		if len(names) > 0 {
			shown := names
			if len(shown) > 10 {
				shown = append(append([]string{}, shown[:10]...), fmt.Sprintf("and %d more", len(names)-10))
			}
			sum += ": " + strings.Join(shown, ", ")
		}
		return outs, sum, diags, nil
	}
	return p.readAction("find_accounts",
		"Finds accounts, changing nothing: every criterion given must match (or any, with match = \"any\"). Outputs a map by sAMAccountName for for_each.",
		[]sdk.Attribute{
			{Name: "upn_suffix", Type: cty.String, Description: "UPN domain, e.g. oldmsp.example."},
			{Name: "sam_account_name", Type: cty.String, Description: "sAMAccountName pattern; * matches anything (e.g. oldmsp*)."},
			{Name: "mentions", Type: cty.String, Description: "Text in description, company, info or department (e.g. the old provider's name)."},
			{Name: "privileged", Type: cty.Bool, Description: "Member of a privileged group (by well-known SID, nested groups and primary group included)."},
			{Name: "admin_count", Type: cty.Bool, Description: "adminCount = 1 (is or was protected by AdminSDHolder)."},
			{Name: "password_never_expires", Type: cty.Bool, Description: "The password never expires."},
			{Name: "has_spn", Type: cty.Bool, Description: "Has a servicePrincipalName (a service account)."},
			{Name: "created_by", Type: cty.String, Description: "Owner of the account object (its creator; for members of Domain Admins AD records the Domain Admins group instead): a name or SID."},
			{Name: "inactive_days", Type: cty.Number, Description: "No logon for this many days (lastLogonTimestamp, which AD updates only every 9-14 days), or never."},
			{Name: "enabled", Type: cty.Bool, Description: "Only enabled (true) or only disabled (false) accounts."},
			{Name: "match", Type: cty.String, Description: "\"all\" (default) or \"any\" of the criteria above; enabled and exclude always apply."},
			{Name: "exclude", Type: cty.List(cty.String), Description: "sAMAccountNames, UPNs or DNs to leave out."},
		},
		[]sdk.Output{
			{Name: "accounts", Type: cty.Map(foundType), Description: "By sAMAccountName: dn, sid, sam_account_name, upn, enabled, groups, privileged_groups, admin_count, password_never_expires, spns, last_logon, pwd_last_set."},
			{Name: "names", Type: cty.List(cty.String)},
			{Name: "count", Type: cty.Number},
		},
		find)
}

// resolveSID is the SID of an account or group named by name or SID; no
// single one is an error.
func resolveSID(c *ldap.Conn, info *domainInfo, name string) (string, error) {
	sid, err := lookupSID(c, info, name)
	if err == nil && sid == "" {
		err = fmt.Errorf("no single account or group %q in the domain", name)
	}
	return sid, err
}

// targetPrivate is what a plan hands its apply: the object it read, so
// that apply changes that object and nothing else, and only if it did not
// change in between.
type targetPrivate struct {
	GUID []byte `json:"guid"`
	UAC  int64  `json:"uac,omitempty"`
	// Groups to remove the account from (remove_from_groups).
	Groups []string `json:"groups,omitempty"`
	// PrimaryGroupID the plan read (remove_from_groups changes it).
	PrimaryGroupID uint32 `json:"primary_group_id,omitempty"`
}

// sameObject reads the private data and checks it is about acc. A plan
// decided during apply (its attributes were not known) read nothing: the
// compare-and-swap is then against what apply just read.
func sameObject(req *sdk.ApplyRequest, acc *account) (targetPrivate, error) {
	if len(req.Private) == 0 {
		return targetPrivate{GUID: acc.GUID, UAC: acc.UAC}, nil
	}
	t, ok := sdk.PrivateOf[targetPrivate](req)
	if !ok {
		return t, fmt.Errorf("the plan's data for %s is unreadable: plan again", acc.name())
	}
	if !bytes.Equal(t.GUID, acc.GUID) {
		return t, sdk.Conflict("%s is another object than the one planned (it was deleted and created again)", acc.name())
	}
	return t, nil
}

func (p *plugin) disableAccount() *sdk.Action {
	type want struct {
		disable, move bool
		moveTo, stamp string
	}
	wanted := func(a sdk.Values, acc *account, when time.Time) want {
		w := want{disable: acc.enabled(), moveTo: a.String("move_to")}
		w.move = w.moveTo != "" && !sameDN(parentDN(acc.DN), w.moveTo)
		// The stamp goes with the disable only: an account disabled long
		// ago keeps its description (it says when, and by whom).
		if w.disable && a.Has("stamp") && a.Bool("stamp") && !strings.HasPrefix(acc.Description, "disabled by switchover") {
			reason := a.String("reason")
			if reason == "" {
				reason = "offboarding of the previous IT provider"
			}
			w.stamp = fmt.Sprintf("disabled by switchover, %s, %s", when.UTC().Format("2006-01-02"), reason)
			if acc.Description != "" {
				w.stamp += " (was: " + acc.Description + ")"
			}
			w.stamp = truncateChars(w.stamp, maxDescription)
		}
		return w
	}
	guard := func(d *directory, a sdk.Values, acc *account) error {
		if ridOf(acc.SID) == 500 && !(a.Has("allow_builtin_administrator") && a.Bool("allow_builtin_administrator")) {
			return fmt.Errorf("%s is the built-in Administrator (RID 500): it is not disabled unless allow_builtin_administrator = true (reset its password instead)", acc.name())
		}
		if acc.UAC&uacServerTrust != 0 {
			return fmt.Errorf("%s is a domain controller's account: refused", acc.name())
		}
		return notTheBindAccount(d, acc, "disable")
	}
	plan := func(ctx context.Context, d *directory, c *ldap.Conn, req *sdk.PlanRequest) *sdk.PlanResponse {
		a := req.Attributes
		acc, err := findAccount(c, d.info, a.String("account"))
		if err != nil {
			return sdk.PlanError(err)
		}
		w := wanted(a, acc, time.Now())
		if !w.disable && !w.move && w.stamp == "" {
			r := sdk.NoChangef("%s is disabled", acc.name())
			r.Outputs = map[string]cty.Value{"dn": cty.StringVal(acc.DN), "sid": cty.StringVal(acc.SID)}
			return r
		}
		if err := guard(d, a, acc); err != nil {
			return sdk.PlanError(err)
		}
		var what, details []string
		if w.disable {
			what = append(what, "disable "+acc.name())
			details = append(details, fmt.Sprintf("userAccountControl %d -> %d (ACCOUNTDISABLE)", acc.UAC, acc.UAC|uacDisabled))
		}
		if w.move {
			what = append(what, "move it to "+w.moveTo)
			details = append(details, fmt.Sprintf("%s -> %s", acc.DN, w.moveTo))
		}
		if w.stamp != "" {
			what = append(what, "stamp its description")
			details = append(details, fmt.Sprintf("description: %q", w.stamp))
		}
		r := sdk.Changef("%s", strings.Join(what, ", "))
		r.Details = append([]string{acc.DN + " (found by " + acc.MatchedBy + ")"}, details...)
		sdk.SetPrivate(r, targetPrivate{GUID: acc.GUID, UAC: acc.UAC})
		return r
	}
	apply := func(ctx context.Context, d *directory, c *ldap.Conn, req *sdk.ApplyRequest, ev sdk.Events) *sdk.ApplyResponse {
		a := req.Attributes
		acc, err := findAccount(c, d.info, a.String("account"))
		if err != nil {
			return sdk.ApplyError(err)
		}
		t, err := sameObject(req, acc)
		if err != nil {
			return sdk.ApplyError(err)
		}
		if err := guard(d, a, acc); err != nil {
			return sdk.ApplyError(err)
		}
		w := wanted(a, acc, time.Now())
		m := ldap.NewModifyRequest(acc.DN, nil)
		if w.disable {
			// Compare-and-swap against what the plan read: only the
			// disabled bit is added, and only to that value.
			m.Delete("userAccountControl", []string{strconv.FormatInt(t.UAC, 10)})
			m.Add("userAccountControl", []string{strconv.FormatInt(t.UAC|uacDisabled, 10)})
		}
		if w.stamp != "" {
			if acc.Description != "" {
				m.Delete("description", []string{acc.Description})
			}
			m.Add("description", []string{w.stamp})
		}
		summary := "disabled " + acc.name()
		if len(m.Changes) > 0 {
			err := modify(c, m, "disabling "+acc.name())
			var ce *sdk.ConflictError
			if err != nil && w.stamp != "" && w.disable && !errors.As(err, &ce) && !sdk.IsNotFound(err) {
				// The stamp never keeps the account enabled: disable it
				// without, and say so.
				m = ldap.NewModifyRequest(acc.DN, nil)
				m.Delete("userAccountControl", []string{strconv.FormatInt(t.UAC, 10)})
				m.Add("userAccountControl", []string{strconv.FormatInt(t.UAC|uacDisabled, 10)})
				if err2 := modify(c, m, "disabling "+acc.name()); err2 == nil {
					summary += " (its description was not stamped: " + err.Error() + ")"
					err = nil
				}
			}
			if err != nil {
				return sdk.ApplyError(err)
			}
		}
		dn := acc.DN
		if w.move {
			rdn := strings.SplitN(acc.DN, ",", 2)[0]
			if strings.HasSuffix(rdn, `\`) {
				return sdk.ApplyError(fmt.Errorf("cannot move %s: its name holds an escaped comma", acc.DN))
			}
			if err := c.ModifyDN(ldap.NewModifyDNRequest(acc.DN, rdn, true, w.moveTo)); ldap.IsErrorWithCode(err, ldap.LDAPResultNoSuchObject) && strings.Contains(err.Error(), acc.DN) {
				return sdk.ApplyError(sdk.NotFound("account %s (deleted since it was read)", acc.name()))
			} else if err != nil {
				return sdk.ApplyError(fmt.Errorf("moving %s to %s: %v", acc.name(), w.moveTo, err))
			}
			dn = rdn + "," + w.moveTo
		}
		if !w.disable {
			summary = acc.name() + " was disabled already"
			if w.move {
				summary += "; moved it to " + w.moveTo
			}
		}
		return &sdk.ApplyResponse{Summary: summary, Outputs: map[string]cty.Value{"dn": cty.StringVal(dn), "sid": cty.StringVal(acc.SID)}}
	}
	return goneIsDone(p.action("disable_account",
		"Disables an account (ACCOUNTDISABLE in userAccountControl, changed as a compare-and-swap), optionally moves it to an OU and stamps its description. The built-in Administrator is refused unless allowed.",
		[]sdk.Attribute{
			{Name: "account", Type: cty.String, Required: true, Description: "sAMAccountName, UPN, DN or SID."},
			{Name: "move_to", Type: cty.String, Description: "DN of an OU to move the account to."},
			{Name: "stamp", Type: cty.Bool, Description: "Write \"disabled by switchover, DATE, REASON (was: OLD)\" into the description."},
			{Name: "reason", Type: cty.String, Description: "The REASON in the stamp (default: offboarding of the previous IT provider)."},
			{Name: "allow_builtin_administrator", Type: cty.Bool, Description: "Allow disabling the built-in Administrator (RID 500)."},
		},
		[]sdk.Output{{Name: "dn", Type: cty.String, Description: "Where the account is now."}, {Name: "sid", Type: cty.String}},
		plan, apply))
}

// goneIsDone marks an action that disables or removes: an account deleted
// meanwhile is done.
func goneIsDone(a *sdk.Action) *sdk.Action {
	a.GoneIsDone = true
	return a
}

// maxDescription is how many characters AD keeps in a description.
const maxDescription = 1024

// truncateChars cuts s to at most n characters, never inside one (a
// description cut inside a multi-byte character is refused by the DC).
func truncateChars(s string, n int) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	return string([]rune(s)[:n])
}

// encodePassword is unicodePwd's value: the password in double quotes, UTF-16LE.
func encodePassword(pw string) string {
	u := utf16.Encode([]rune(`"` + pw + `"`))
	b := make([]byte, 2*len(u))
	for i, r := range u {
		b[2*i], b[2*i+1] = byte(r), byte(r>>8)
	}
	return string(b)
}

type resetCheckpoint struct {
	PwdLastSet string `json:"pwd_last_set"` // after the reset
}

// setPassword replaces unicodePwd (over TLS, which the plugin always has).
func setPassword(c *ldap.Conn, dn, name, pw string) error {
	m := ldap.NewModifyRequest(dn, nil)
	m.Replace("unicodePwd", []string{encodePassword(pw)})
	err := c.Modify(m)
	if ldap.IsErrorWithCode(err, ldap.LDAPResultConstraintViolation) || ldap.IsErrorWithCode(err, ldap.LDAPResultUnwillingToPerform) {
		return fmt.Errorf("the domain refused the new password of %s: it does not meet the password policy (length, complexity or history)", name)
	}
	if err != nil {
		return fmt.Errorf("setting the password of %s: %v", name, err)
	}
	return nil
}

func (p *plugin) resetPassword() *sdk.Action {
	plan := func(ctx context.Context, d *directory, c *ldap.Conn, req *sdk.PlanRequest) *sdk.PlanResponse {
		a := req.Attributes
		acc, err := findAccount(c, d.info, a.String("account"))
		if err != nil {
			return sdk.PlanError(err)
		}
		if err := notTheBindAccount(d, acc, "reset the password of"); err != nil {
			return sdk.PlanError(err)
		}
		mustChange := a.Has("must_change") && a.Bool("must_change")
		verify := !a.Has("verify") || a.Bool("verify")
		var done bool
		var how string
		switch {
		case !a.IsKnown("password"):
			// A new secret, made when apply starts: nothing to compare yet.
		case verify:
			ok, reason, err := d.tryBind(ctx, acc.DN, a.String("password"))
			if err != nil {
				return sdk.PlanError(err)
			}
			done = ok && (!mustChange || acc.pwdLastSetRaw == "0")
			how = "a bind with it works"
			if reason != "" {
				how = "a bind with it is accepted (" + reason + ")"
			}
		default:
			var ck resetCheckpoint
			done = json.Unmarshal(req.Checkpoint, &ck) == nil && ck.PwdLastSet != "" && ck.PwdLastSet == acc.pwdLastSetRaw
			how = "pwdLastSet is the one the reset left"
		}
		if done {
			return sdk.NoChangef("%s has this password: %s", acc.name(), how)
		}
		r := sdk.Changef("reset the password of %s (to a new secret)", acc.name())
		r.Details = []string{acc.DN + " (found by " + acc.MatchedBy + ")"}
		if mustChange {
			r.Details = append(r.Details, "must change the password at next logon")
		}

		sdk.SetPrivate(r, targetPrivate{GUID: acc.GUID})
		return r
	}
	apply := func(ctx context.Context, d *directory, c *ldap.Conn, req *sdk.ApplyRequest, ev sdk.Events) *sdk.ApplyResponse {
		a := req.Attributes
		acc, err := findAccount(c, d.info, a.String("account"))
		if err != nil {
			return sdk.ApplyError(err)
		}
		if err := notTheBindAccount(d, acc, "reset the password of"); err != nil {
			return sdk.ApplyError(err)
		}
		if _, err := sameObject(req, acc); err != nil {
			return sdk.ApplyError(err)
		}
		if err := setPassword(c, acc.DN, acc.name(), a.String("password")); err != nil {
			return sdk.ApplyError(err)
		}
		if a.Has("must_change") && a.Bool("must_change") {
			m := ldap.NewModifyRequest(acc.DN, nil)
			m.Replace("pwdLastSet", []string{"0"})
			if err := modify(c, m, "setting must-change on "+acc.name()); err != nil {
				return sdk.ApplyError(err)
			}
		}
		after, err := reread(c, d.info, acc)
		if err != nil {
			return sdk.ApplyError(err)
		}
		b, _ := json.Marshal(resetCheckpoint{PwdLastSet: after.pwdLastSetRaw})
		if err := ev.Checkpoint(ctx, b); err != nil {
			return sdk.ApplyError(err)
		}
		return &sdk.ApplyResponse{Summary: "reset the password of " + acc.name()}
	}
	return p.action("reset_password",
		"Resets an account's password (unicodePwd, over TLS) to a value from secret(); verified by a bind with the new password (accepted also for a disabled account: AD checks the password first), or by pwdLastSet with verify = false.",
		[]sdk.Attribute{
			{Name: "account", Type: cty.String, Required: true, Description: "sAMAccountName, UPN, DN or SID."},
			{Name: "password", Type: cty.String, Required: true, Sensitive: true, Description: "The new password, normally secret(\"...\")."},
			{Name: "must_change", Type: cty.Bool, Description: "The user must change it at next logon."},
			{Name: "verify", Type: cty.Bool, Description: "Verify with a bind (default true)."},
		},
		nil, plan, apply)
}
