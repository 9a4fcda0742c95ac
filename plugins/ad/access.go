package ad

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/go-ldap/ldap/v3"
	"github.com/zclconf/go-cty/cty"

	"github.com/switchover/switchover/plugins/sdk"
	"github.com/switchover/switchover/plugins/sdk/window"
)

// accessTarget is a vendor's AD account, open only in its windows: enabled
// with accountExpires at the window's end (one modify: the account is
// never enabled without an end), disabled again at the end.
type accessTarget struct {
	p   *plugin
	d   *directory
	c   *ldap.Conn
	acc *account
}

func (p *plugin) accessWindow() *sdk.Action {
	return window.Action("access_window", "an AD account (enabled with accountExpires at the window's end)",
		[]sdk.Attribute{{Name: "account", Type: cty.String, Required: true, Description: "The vendor's account: sAMAccountName, UPN, DN or SID."}},
		func(ctx context.Context, a sdk.Values) (window.Target, error) {
			d, c, err := p.dirFor(ctx)
			if err != nil {
				return nil, err
			}
			acc, err := findAccount(c, d.info, a.String("account"), "accountExpires")
			if err != nil {
				return nil, err
			}
			if err := notTheBindAccount(d, acc, "open windows for"); err != nil {
				return nil, err
			}
			if ridOf(acc.SID) == 500 || acc.UAC&uacServerTrust != 0 {
				return nil, fmt.Errorf("%s is the built-in Administrator or a DC: not a vendor account", acc.name())
			}
			return &accessTarget{p: p, d: d, c: c, acc: acc}, nil
		})
}

func (t *accessTarget) Describe() string { return "AD account " + t.acc.name() }

func (t *accessTarget) read() (*ldap.Entry, error) {
	return readObject(t.c, t.acc.DN, "userAccountControl", "accountExpires")
}

func (t *accessTarget) State(ctx context.Context) (window.Access, error) {
	e, err := t.read()
	if err != nil {
		return window.Access{}, err
	}
	uac, _ := strconv.ParseInt(e.GetAttributeValue("userAccountControl"), 10, 64)
	return window.Access{Open: uac&uacDisabled == 0, Until: fileTime(e.GetAttributeValue("accountExpires"))}, nil
}

// Open enables the account and sets its end in one modify, a
// compare-and-swap of userAccountControl.
func (t *accessTarget) Open(ctx context.Context, w window.Window, _ sdk.Events) error {
	e, err := t.read()
	if err != nil {
		return err
	}
	uac := e.GetAttributeValue("userAccountControl")
	v, _ := strconv.ParseInt(uac, 10, 64)
	m := ldap.NewModifyRequest(t.acc.DN, nil)
	m.Replace("accountExpires", []string{strconv.FormatInt(toFileTime(w.End), 10)})
	if v&uacDisabled != 0 {
		m.Delete("userAccountControl", []string{uac})
		m.Add("userAccountControl", []string{strconv.FormatInt(v&^uacDisabled, 10)})
	}
	return modify(t.c, m, "opening "+t.acc.name())
}

// Close disables the account (the end stays in accountExpires). Kerberos
// tickets issued in the window live until they expire: a person's step.
func (t *accessTarget) Close(ctx context.Context) (string, error) {
	e, err := t.read()
	if err != nil {
		return "", err
	}
	uac := e.GetAttributeValue("userAccountControl")
	v, _ := strconv.ParseInt(uac, 10, 64)
	m := ldap.NewModifyRequest(t.acc.DN, nil)
	if v&uacDisabled == 0 {
		m.Delete("userAccountControl", []string{uac})
		m.Add("userAccountControl", []string{strconv.FormatInt(v|uacDisabled, 10)})
	}
	if until := fileTime(e.GetAttributeValue("accountExpires")); until.IsZero() || until.After(time.Now()) {
		m.Replace("accountExpires", []string{strconv.FormatInt(toFileTime(time.Now()), 10)})
	}
	if len(m.Changes) > 0 {
		if err := modify(t.c, m, "closing "+t.acc.name()); err != nil {
			return "", err
		}
	}
	return fmt.Sprintf("%s is disabled, but Kerberos tickets issued to it during the window stay valid until they expire (up to 10 hours): sign its sessions off on the servers it used (quser / logoff, or Remote Desktop Services Manager).", t.acc.name()), nil
}

// AdminRights: membership of a privileged group, directly, nested or by
// the primary group.
func (t *accessTarget) AdminRights(ctx context.Context) (string, error) {
	members, _, err := privilegedMembers(t.c, t.d)
	if err != nil {
		return "", err
	}
	if p := members[strings.ToLower(t.acc.DN)]; p != nil {
		return "member of " + strings.Join(p.groups, ", "), nil
	}
	return "", nil
}
