// Package ad is the built-in `ad` plugin: it takes an on-premises
// Active Directory back from the old provider over LDAP: finds its
// accounts, disables them, strips their privileged group memberships,
// resets the passwords it knew and rotates krbtgt. TLS is always verified
// (LDAPS, or StartTLS on ldap://); there is no plain simple bind.
//
// Privileged groups are found by their well-known SIDs, never by name, so
// a German "Domänen-Admins" is Domain Admins all the same.
package ad

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/go-ldap/ldap/v3"
	"github.com/zclconf/go-cty/cty"

	"github.com/switchover/switchover/plugins/sdk"
)

type settings struct {
	url            string // ldaps://host:636 or ldap://host:389 (StartTLS)
	startTLS       bool
	baseDN         string
	bindDN         string
	bindPassword   string
	tls            *tls.Config
	connectTimeout time.Duration
	timeout        time.Duration
	pageSize       uint32
}

type plugin struct {
	mu  sync.Mutex
	s   *settings
	dir *directory
}

// New returns the ad plugin.
func New(version string) *sdk.Plugin {
	p := &plugin{}
	return &sdk.Plugin{
		Name:        "ad",
		Version:     version,
		Description: "Active Directory over LDAP: find the old provider's accounts, disable them, remove their privileged group memberships, reset passwords, rotate krbtgt, sweep for and remove the back doors it left, read the domain's facts for the handover.",
		Config: []sdk.Attribute{
			{Name: "server", Type: cty.String, Required: true, Description: "The domain controller: host (LDAPS on 636), ldaps://host[:port], or ldap://host[:port] (StartTLS, required). Plain LDAP binds are refused."},
			{Name: "base_dn", Type: cty.String, Description: "Where searches start (default: the domain, from the rootDSE's defaultNamingContext)."},
			{Name: "bind_dn", Type: cty.String, Required: true, Description: "Who binds: a DN, a UPN (admin@example.com) or DOMAIN\\name."},
			{Name: "bind_password", Type: cty.String, Required: true, Sensitive: true, Description: "Its password."},
			{Name: "ca_file", Type: cty.String, Description: "PEM file of the CA that signed the DC's certificate (default: the system's CAs). The certificate is always verified."},
			{Name: "tls_server_name", Type: cty.String, Description: "The name the DC's certificate must carry, when server is an address the certificate does not name."},
			{Name: "connect_timeout", Type: sdk.DurationType, Description: "Timeout of connecting and binding (default 10s)."},
			{Name: "timeout", Type: sdk.DurationType, Description: "Timeout of one LDAP operation (default 60s)."},
			{Name: "page_size", Type: cty.Number, Description: "Entries per page of a paged search (RFC 2696; default 500)."},
		},
		ConfigureFunc: p.configure,
		TargetFunc: func(string, sdk.Values) string {
			if p.s == nil {
				return ""
			}
			return "Active Directory " + p.s.url
		},
		Actions: []*sdk.Action{
			p.findAccounts(), p.disableAccount(), p.resetPassword(), p.removeFromGroups(), p.rotateKrbtgt(), p.inventory(),
			p.findPersistence(), p.removePersistence(), p.accessWindow(),
		},
	}
}

func (p *plugin) configure(ctx context.Context, cfg sdk.Values) sdk.Diagnostics {
	s := &settings{baseDN: cfg.String("base_dn"), bindDN: cfg.String("bind_dn"), bindPassword: cfg.String("bind_password"), pageSize: uint32(cfg.Int("page_size"))}
	if s.pageSize == 0 {
		s.pageSize = 500
	}
	var diags, d sdk.Diagnostics
	s.connectTimeout, d = cfg.Duration("connect_timeout", 10*time.Second)
	diags = append(diags, d...)
	s.timeout, d = cfg.Duration("timeout", 60*time.Second)
	diags = append(diags, d...)
	u, host, err := parseServer(cfg.String("server"))
	if err != nil {
		return append(diags, sdk.AttributeErrorf("server", "Invalid server", "%v", err)...)
	}
	s.url, s.startTLS = u.String(), u.Scheme == "ldap"
	s.tls = &tls.Config{MinVersion: tls.VersionTLS12, ServerName: host}
	if n := cfg.String("tls_server_name"); n != "" {
		s.tls.ServerName = n
	}
	if f := cfg.String("ca_file"); f != "" {
		b, err := os.ReadFile(f)
		if err != nil {
			return append(diags, sdk.AttributeErrorf("ca_file", "Cannot read the CA file", "%v", err)...)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(b) {
			return append(diags, sdk.AttributeErrorf("ca_file", "Invalid CA file", "%s holds no PEM certificate", f)...)
		}
		s.tls.RootCAs = pool
	}
	if diags.HasErrors() {
		return diags
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.dir != nil {
		p.dir.close()
	}
	p.s, p.dir = s, newDirectory(s)
	return diags
}

// parseServer reads the server setting: a bare host means LDAPS on 636.
func parseServer(s string) (*url.URL, string, error) {
	if s == "" {
		return nil, "", fmt.Errorf("server is empty")
	}
	if !strings.Contains(s, "://") {
		s = "ldaps://" + s
	}
	u, err := url.Parse(s)
	if err != nil {
		return nil, "", err
	}
	switch u.Scheme {
	case "ldaps", "ldap":
	default:
		return nil, "", fmt.Errorf("%q: the scheme must be ldaps:// or ldap:// (with StartTLS)", s)
	}
	if u.Path != "" && u.Path != "/" || u.RawQuery != "" || u.User != nil {
		return nil, "", fmt.Errorf("%q: only scheme, host and port, no path, query or user", s)
	}
	host := u.Hostname()
	if host == "" {
		return nil, "", fmt.Errorf("%q has no host", s)
	}
	if u.Port() == "" {
		port := "636"
		if u.Scheme == "ldap" {
			port = "389"
		}
		u.Host = net.JoinHostPort(host, port)
	}
	u.Path = ""
	return u, host, nil
}

// directory is the configured domain: one bound connection shared by every
// step (go-ldap multiplexes operations on it), dialled again when it drops,
// and a few more for verification binds, which change a connection's
// identity.
type directory struct {
	s      *settings
	mu     sync.Mutex
	conn   *ldap.Conn
	info   *domainInfo
	verify chan *ldap.Conn
	// objects: a lock per object DN whose security descriptor is being
	// rewritten.
	objects sync.Map
}

// lockObject serialises read-modify-writes of one object (by DN).
func (d *directory) lockObject(dn string) (unlock func()) {
	m, _ := d.objects.LoadOrStore(strings.ToLower(dn), &sync.Mutex{})
	mu := m.(*sync.Mutex)
	mu.Lock()
	return mu.Unlock
}

func newDirectory(s *settings) *directory {
	return &directory{s: s, verify: make(chan *ldap.Conn, 8)}
}

func (d *directory) close() {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.conn != nil {
		d.conn.Close()
		d.conn = nil
	}
	for {
		select {
		case c := <-d.verify:
			c.Close()
		default:
			return
		}
	}
}

// dial connects with TLS verified (LDAPS, or StartTLS before anything else).
func (d *directory) dial(ctx context.Context) (*ldap.Conn, error) {
	dctx, cancel := context.WithTimeout(ctx, d.s.connectTimeout)
	defer cancel()
	dialer := &net.Dialer{Timeout: d.s.connectTimeout}
	u, _ := url.Parse(d.s.url)
	raw, err := dialer.DialContext(dctx, "tcp", u.Host)
	if err != nil {
		return nil, fmt.Errorf("cannot reach the domain controller %s: %v", u.Host, shortNetErr(err))
	}
	var c *ldap.Conn
	if d.s.startTLS {
		c = ldap.NewConn(raw, false)
		c.Start()
		c.SetTimeout(d.s.connectTimeout)
		if err := c.StartTLS(d.s.tls.Clone()); err != nil {
			c.Close()
			return nil, tlsError(u.Host, err)
		}
	} else {
		tc := tls.Client(raw, d.s.tls.Clone())
		tc.SetDeadline(time.Now().Add(d.s.connectTimeout))
		if err := tc.HandshakeContext(dctx); err != nil {
			raw.Close()
			return nil, tlsError(u.Host, err)
		}
		tc.SetDeadline(time.Time{})
		c = ldap.NewConn(tc, true)
		c.Start()
	}
	c.SetTimeout(d.s.timeout)
	return c, nil
}

func shortNetErr(err error) string {
	var oe *net.OpError
	if errors.As(err, &oe) && oe.Err != nil {
		return oe.Err.Error()
	}
	return err.Error()
}

func tlsError(host string, err error) error {
	var ua x509.UnknownAuthorityError
	var hn x509.HostnameError
	var ci x509.CertificateInvalidError
	switch {
	case errors.As(err, &ua):
		return fmt.Errorf("the certificate of the domain controller %s is not signed by a trusted CA (set ca_file to the CA that signed it): refused", host)
	case errors.As(err, &hn):
		return fmt.Errorf("the certificate of the domain controller %s does not name it (%v; set tls_server_name): refused", host, hn)
	case errors.As(err, &ci):
		return fmt.Errorf("the certificate of the domain controller %s is not valid (%v): refused", host, ci)
	}
	if strings.Contains(err.Error(), "LDAP Result Code") {
		return fmt.Errorf("StartTLS with %s failed: %v", host, err)
	}
	return fmt.Errorf("TLS with the domain controller %s failed: %v", host, err)
}

// bindError says which of the usual reasons refused a bind, in one line.
func bindError(who string, err error) error {
	if ldap.IsErrorWithCode(err, ldap.LDAPResultInvalidCredentials) {
		return fmt.Errorf("the domain controller refused the bind as %s: %s", who, adReason(err))
	}
	return fmt.Errorf("binding as %s: %v", who, err)
}

// adReason reads the "data NNN" code AD puts in a refused bind.
func adReason(err error) string {
	switch bindData(err) {
	case "52e":
		return "wrong user name or password"
	case "533":
		return "the account is disabled"
	case "773":
		return "the password must be changed"
	case "775":
		return "the account is locked out"
	case "701", "532":
		return "the account or its password has expired"
	case "525":
		return "no such user"
	}
	return "invalid credentials"
}

func bindData(err error) string {
	msg := err.Error()
	i := strings.Index(msg, "data ")
	if i < 0 {
		return ""
	}
	code, _, _ := strings.Cut(msg[i+5:], ",")
	return strings.TrimSpace(code)
}

// get returns the shared connection, bound as the configured account.
func (d *directory) get(ctx context.Context) (*ldap.Conn, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.conn != nil && !d.conn.IsClosing() {
		return d.conn, nil
	}
	c, err := d.dial(ctx)
	if err != nil {
		return nil, err
	}
	if err := c.Bind(d.s.bindDN, d.s.bindPassword); err != nil {
		c.Close()
		return nil, bindError(d.s.bindDN, err)
	}
	d.conn = c
	if d.info == nil {
		info, err := readDomainInfo(c, d.s)
		if err == nil {
			info.bindSID, err = lookupSID(c, info, d.s.bindDN)
		}
		if err != nil {
			c.Close()
			d.conn = nil
			return nil, err
		}
		d.info = info
	}
	return c, nil
}

// tryBind binds as dn with password on a verification connection: nil
// when the password is right. A right password of a disabled account, or
// one that must be changed, counts as right (AD says so only after
// checking the password: data 533, 773).
func (d *directory) tryBind(ctx context.Context, dn, password string) (ok bool, reason string, err error) {
	var c *ldap.Conn
	select {
	case c = <-d.verify:
	default:
		if c, err = d.dial(ctx); err != nil {
			return false, "", err
		}
	}
	berr := c.Bind(dn, password)
	if berr == nil || ldap.IsErrorWithCode(berr, ldap.LDAPResultInvalidCredentials) {
		select {
		case d.verify <- c:
		default:
			c.Close()
		}
	} else {
		c.Close()
	}
	if berr == nil {
		return true, "", nil
	}
	if ldap.IsErrorWithCode(berr, ldap.LDAPResultInvalidCredentials) {
		switch bindData(berr) {
		case "533", "773", "701", "532", "775":
			return true, adReason(berr), nil
		}
		return false, adReason(berr), nil
	}
	return false, "", fmt.Errorf("verification bind as %s: %v", dn, berr)
}

// notTheBindAccount refuses to disable, strip or reset the account
// switchover binds as: it would cut switchover's own access mid-run.
func notTheBindAccount(d *directory, acc *account, what string) error {
	if d.info.bindSID != "" && acc.SID == d.info.bindSID {
		return fmt.Errorf("%s is the account switchover binds as (bind_dn %s): it does not %s it; bind as another admin to change it", acc.name(), d.s.bindDN, what)
	}
	return nil
}

// dirFor returns the configured directory, connected.
func (p *plugin) dirFor(ctx context.Context) (*directory, *ldap.Conn, error) {
	p.mu.Lock()
	d := p.dir
	p.mu.Unlock()
	if d == nil {
		return nil, nil, fmt.Errorf("the ad plugin is not configured")
	}
	c, err := d.get(ctx)
	return d, c, err
}

type planFunc func(ctx context.Context, d *directory, c *ldap.Conn, req *sdk.PlanRequest) *sdk.PlanResponse
type applyFunc func(ctx context.Context, d *directory, c *ldap.Conn, req *sdk.ApplyRequest, ev sdk.Events) *sdk.ApplyResponse

// action wraps plan and apply with the directory connection.
func (p *plugin) action(name, desc string, attrs []sdk.Attribute, outs []sdk.Output, plan planFunc, apply applyFunc) *sdk.Action {
	return &sdk.Action{
		Name: name, Description: desc, Attributes: attrs, Outputs: outs,
		PlanFunc: func(ctx context.Context, req *sdk.PlanRequest) *sdk.PlanResponse {
			if !req.Attributes.AllKnown() && !onlySecretsUnknown(req.Attributes) {
				return sdk.Changef("decided during apply: some attributes are known only after earlier steps ran")
			}
			d, c, err := p.dirFor(ctx)
			if err != nil {
				return sdk.PlanError(err)
			}
			return plan(ctx, d, c, req)
		},
		ApplyFunc: func(ctx context.Context, req *sdk.ApplyRequest, ev sdk.Events) *sdk.ApplyResponse {
			d, c, err := p.dirFor(ctx)
			if err != nil {
				return sdk.ApplyError(err)
			}
			return apply(ctx, d, c, req, ev)
		},
	}
}

// onlySecretsUnknown: the only unknown is a new password (a secret made
// at apply); the plan can still look at the account.
func onlySecretsUnknown(a sdk.Values) bool {
	for name := range a.Raw().Type().AttributeTypes() {
		if name != "password" && !a.IsKnown(name) {
			return false
		}
	}
	return true
}

type readFunc func(ctx context.Context, d *directory, c *ldap.Conn, a sdk.Values) (map[string]cty.Value, string, sdk.Diagnostics, error)

// readAction is an action that changes nothing: switchover reads it while
// planning, so that for_each can go over its outputs.
func (p *plugin) readAction(name, desc string, attrs []sdk.Attribute, outs []sdk.Output, read readFunc) *sdk.Action {
	return sdk.ReadOnlyAction(name, desc, attrs, outs, func(ctx context.Context, a sdk.Values) (map[string]cty.Value, string, sdk.Diagnostics, error) {
		d, c, err := p.dirFor(ctx)
		if err != nil {
			return nil, "", nil, err
		}
		return read(ctx, d, c, a)
	})
}

// modify runs a modify; a value to delete that is no longer there (LDAP
// noSuchAttribute) means the object changed since it was read.
func modify(c *ldap.Conn, m *ldap.ModifyRequest, what string) error {
	err := c.Modify(m)
	if ldap.IsErrorWithCode(err, ldap.LDAPResultNoSuchAttribute) {
		return sdk.Conflict("%s: %s changed since it was read (nothing was overwritten)", what, m.DN)
	}
	if ldap.IsErrorWithCode(err, ldap.LDAPResultNoSuchObject) {
		return sdk.NotFound("%s (deleted since it was read)", m.DN)
	}
	if err != nil {
		return fmt.Errorf("%s: %v", what, err)
	}
	return nil
}
