// Package adlab starts a real Samba Active Directory domain controller for
// tests, isolated from this machine's /etc/samba, /var/lib/samba and
// /run/samba: the domain is provisioned once per machine into a template
// directory (shared by test packages under a file lock), each DC is a copy
// of it with its own smb.conf, its own CA and server certificate, and its
// own loopback address (LDAP ports are fixed, so two DCs need two
// addresses). Only the LDAP server runs; it listens on LDAPS (636) and on
// 389 for StartTLS.
//
// Its schema is extended with msDS-KeyCredentialLink (shadow credentials),
// as Windows Server 2016 defines it: Samba 4.17's default (2012 R2) schema
// lacks it.
//
// It needs root, Samba and ldb-tools (Debian packages samba, samba-ad-dc
// and ldb-tools).
package adlab

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"fmt"
	"io"
	mrand "math/rand"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
	"unicode/utf16"

	"github.com/go-ldap/ldap/v3"

	"github.com/switchover/switchover/internal/testing/testca"
)

// The lab domain.
const (
	Realm         = "LAB.TEST"
	Domain        = "LAB"
	BaseDN        = "DC=lab,DC=test"
	AdminPassword = "Lab-Admin-Pw-1!"
	// AdminDN is the built-in Administrator (RID 500).
	AdminDN = "CN=Administrator,CN=Users," + BaseDN
)

// DC is one running domain controller.
type DC struct {
	Dir    string
	Addr   string // its loopback address, e.g. 127.31.4.7
	CAFile string // the CA its certificate is signed by
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	exited chan struct{}
}

// URL is the DC's LDAPS URL.
func (d *DC) URL() string { return "ldaps://" + d.Addr + ":636" }

// Available says why a DC cannot start here ("" when it can).
func Available() string {
	if os.Geteuid() != 0 {
		return "the AD lab needs root"
	}
	for _, p := range []string{"/usr/sbin/samba", "/usr/bin/samba-tool", "/usr/bin/ldbmodify"} {
		if _, err := os.Stat(p); err != nil {
			return p + " is missing (install samba, samba-ad-dc and ldb-tools)"
		}
	}
	return ""
}

// Start starts a DC for a test, or fails it (never skips: CI installs Samba).
func Start(t testing.TB) *DC {
	t.Helper()
	d, err := New(t.TempDir())
	if err != nil {
		t.Fatalf("cannot start the AD lab: %v", err)
	}
	t.Cleanup(d.Stop)
	return d
}

// templateDir is where the provisioned domain is kept for every test
// package of this machine; the Samba version is in its name.
func templateDir() string {
	out, _ := exec.Command("samba", "--version").Output()
	v := strings.NewReplacer(" ", "-", "\n", "").Replace(strings.TrimSpace(string(out)))
	return filepath.Join(os.TempDir(), "switchover-adlab-v2-"+v)
}

// template provisions the lab domain once (6-10 s), under a file lock so
// that test packages running at the same time wait for one provisioning.
func template() (string, error) {
	dir := templateDir()
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		return "", err
	}
	lock, err := os.OpenFile(dir+".lock", os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return "", err
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return "", err
	}
	defer syscall.Flock(int(lock.Fd()), syscall.LOCK_UN)
	if _, err := os.Stat(filepath.Join(dir, "ready")); err == nil {
		return dir, nil
	}
	os.RemoveAll(dir)
	tmp := dir + ".tmp"
	os.RemoveAll(tmp)
	run := func(args ...string) error {
		out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
		if err != nil {
			return fmt.Errorf("%s: %v: %s", strings.Join(args[:3], " "), err, lastLines(out, 5))
		}
		return nil
	}
	if err := run("samba-tool", "domain", "provision", "--targetdir="+tmp, "--realm="+Realm, "--domain="+Domain,
		"--server-role=dc", "--dns-backend=NONE", "--host-name=dc1", "--adminpass="+AdminPassword,
		"--option=interfaces=127.0.0.1/8", "--option=bind interfaces only=yes"); err != nil {
		return "", err
	}
	// Tests reset passwords again and again, right after each other.
	if err := run("samba-tool", "domain", "passwordsettings", "set", "-H", "tdb://"+filepath.Join(tmp, "private", "sam.ldb"),
		"--min-pwd-age=0", "--history-length=0"); err != nil {
		return "", err
	}
	sam := filepath.Join(tmp, "private", "sam.ldb")
	// Two transactions: a class can name an attribute only once the
	// schema holding it is loaded again.
	for _, ldif := range []string{keyCredentialAttrs, keyCredentialClasses} {
		if err := ldbModify(sam, ldif, "--option=dsdb:schema update allowed=true"); err != nil {
			return "", fmt.Errorf("extending the schema: %w", err)
		}
	}
	if err := os.WriteFile(filepath.Join(tmp, "ready"), nil, 0o600); err != nil {
		return "", err
	}
	return dir, os.Rename(tmp, dir)
}

// msDS-KeyCredentialLink and its back link as Windows Server 2016's schema
// defines them (AD_DS_Attributes__Windows_Server_2016.ldf), and the classes
// that may hold them (the back link, like every back link, on top).
const keyCredentialAttrs = `dn: CN=ms-DS-Key-Credential-Link,CN=Schema,CN=Configuration,` + BaseDN + `
changetype: add
objectClass: top
objectClass: attributeSchema
cn: ms-DS-Key-Credential-Link
attributeID: 1.2.840.113556.1.4.2328
attributeSyntax: 2.5.5.7
isSingleValued: FALSE
linkID: 2220
showInAdvancedViewOnly: TRUE
adminDisplayName: ms-DS-Key-Credential-Link
oMObjectClass:: KoZIhvcUAQEBCw==
adminDescription: Contains key material and usage.
oMSyntax: 127
searchFlags: 0
lDAPDisplayName: msDS-KeyCredentialLink
schemaIDGUID:: D9ZHW5BgskCfNypN6I8wYw==
attributeSecurityGUID:: pm0CmzwNXEaL7lGZ1xZcug==
systemOnly: FALSE
systemFlags: 16

dn: CN=ms-DS-Key-Credential-Link-BL,CN=Schema,CN=Configuration,` + BaseDN + `
changetype: add
objectClass: top
objectClass: attributeSchema
cn: ms-DS-Key-Credential-Link-BL
attributeID: 1.2.840.113556.1.4.2329
attributeSyntax: 2.5.5.1
isSingleValued: FALSE
linkID: 2221
showInAdvancedViewOnly: TRUE
adminDisplayName: ms-DS-Key-Credential-Link-BL
oMObjectClass:: KwwCh3McAIVK
oMSyntax: 127
searchFlags: 0
lDAPDisplayName: msDS-KeyCredentialLink-BL
schemaIDGUID:: iNeKk18i7k6Tua0koVnh2w==
systemOnly: FALSE
systemFlags: 17
`

const keyCredentialClasses = `dn: CN=User,CN=Schema,CN=Configuration,` + BaseDN + `
changetype: modify
add: mayContain
mayContain: msDS-KeyCredentialLink

dn: CN=Computer,CN=Schema,CN=Configuration,` + BaseDN + `
changetype: modify
add: mayContain
mayContain: msDS-KeyCredentialLink

dn: CN=Top,CN=Schema,CN=Configuration,` + BaseDN + `
changetype: modify
add: mayContain
mayContain: msDS-KeyCredentialLink-BL
`

// ldbModify applies an LDIF to a stopped DC's sam.ldb, as root, through
// Samba's own modules (they assign SIDs and keep links), but without the
// LDAP server's refusals (sIDHistory).
func ldbModify(sam, ldif string, opts ...string) error {
	cmd := exec.Command("ldbmodify", append([]string{"-H", sam}, opts...)...)
	cmd.Stdin = strings.NewReader(ldif)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("ldbmodify: %v: %s", err, lastLines(out, 3))
	}
	return nil
}

// Options change a DC before it starts.
type Options struct {
	// Offline is LDIF applied to the DC's own copy of the domain before
	// it starts (with ldbmodify): what Samba refuses over LDAP, such as
	// an account with sIDHistory.
	Offline string
}

// New starts a DC in dir (a copy of the template); Stop ends it.
func New(dir string) (*DC, error) { return NewWith(dir, Options{}) }

// NewWith starts a DC in dir with opts.
func NewWith(dir string, opts Options) (*DC, error) {
	if why := Available(); why != "" {
		return nil, fmt.Errorf("%s", why)
	}
	tmpl, err := template()
	if err != nil {
		return nil, fmt.Errorf("provisioning the lab domain: %w", err)
	}
	for attempt := 1; ; attempt++ {
		d, err := start(dir, tmpl, opts)
		if err == nil || attempt == 5 || !strings.Contains(err.Error(), "address was taken") {
			return d, err
		}
	}
}

func start(dir, tmpl string, opts Options) (*DC, error) {
	d := &DC{Dir: filepath.Join(dir, fmt.Sprintf("dc-%d", mrand.Int63())), Addr: freeAddr()}
	if err := os.MkdirAll(d.Dir, 0o700); err != nil {
		return nil, err
	}
	if out, err := exec.Command("cp", "-a", filepath.Join(tmpl, "private"), filepath.Join(tmpl, "state"), filepath.Join(tmpl, "bind-dns"), d.Dir).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("copying the template: %v: %s", err, out)
	}
	for _, s := range []string{"cache", "lock", "pid", "log", "ncalrpc", "tls"} {
		if err := os.MkdirAll(filepath.Join(d.Dir, s), 0o700); err != nil {
			return nil, err
		}
	}
	if opts.Offline != "" {
		if err := ldbModify(filepath.Join(d.Dir, "private", "sam.ldb"), opts.Offline); err != nil {
			return nil, fmt.Errorf("preparing the DC: %w", err)
		}
	}
	if err := d.writeTLS(); err != nil {
		return nil, err
	}
	conf := filepath.Join(d.Dir, "smb.conf")
	if err := os.WriteFile(conf, []byte(smbConf(d)), 0o600); err != nil {
		return nil, err
	}
	logf, err := os.Create(filepath.Join(d.Dir, "samba.out"))
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	// -i: samba ends when its stdin closes, so a test binary that dies
	// takes its DC with it.
	d.cmd = exec.Command("samba", "-i", "-M", "single", "-s", conf)
	d.cmd.Stdout, d.cmd.Stderr = logf, logf
	if d.stdin, err = d.cmd.StdinPipe(); err != nil {
		return nil, err
	}
	if err := d.cmd.Start(); err != nil {
		return nil, err
	}
	d.exited = make(chan struct{})
	go func() { d.cmd.Wait(); close(d.exited) }()
	deadline := time.Now().Add(30 * time.Second)
	for {
		select {
		case <-d.exited:
			out, _ := os.ReadFile(filepath.Join(d.Dir, "samba.out"))
			if bytes.Contains(out, []byte("Address already in use")) {
				return nil, fmt.Errorf("the DC's address was taken: %s", lastLines(out, 3))
			}
			return nil, fmt.Errorf("samba exited: %s", lastLines(out, 10))
		default:
		}
		if c, err := d.dial(); err == nil {
			err = c.Bind(AdminDN, AdminPassword)
			c.Close()
			if err == nil {
				return d, nil
			}
		}
		if time.Now().After(deadline) {
			d.Stop()
			out, _ := os.ReadFile(filepath.Join(d.Dir, "samba.out"))
			return nil, fmt.Errorf("the DC did not answer on %s within 30s: %s", d.URL(), lastLines(out, 10))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func smbConf(d *DC) string {
	p := func(s string) string { return filepath.Join(d.Dir, s) }
	return fmt.Sprintf(`[global]
	netbios name = DC1
	realm = %s
	workgroup = %s
	server role = active directory domain controller
	server services = ldap
	interfaces = %s/8
	bind interfaces only = yes
	private dir = %s
	state directory = %s
	cache directory = %s
	lock directory = %s
	pid directory = %s
	binddns dir = %s
	ncalrpc dir = %s
	log file = %s
	logging = file
	log level = 1
	tls enabled = yes
	tls keyfile = %s
	tls certfile = %s
	tls cafile = %s
	old password allowed period = 0
[sysvol]
	path = %s
	read only = No
`, Realm, Domain, d.Addr, p("private"), p("state"), p("cache"), p("lock"), p("pid"), p("bind-dns"), p("ncalrpc"),
		p("log/samba.log"), p("tls/dc.key"), p("tls/dc.pem"), p("tls/ca.pem"), p("state/sysvol"))
}

// freeAddr picks a loopback address nobody listens on at 636 or 389.
func freeAddr() string {
	for {
		a := fmt.Sprintf("127.%d.%d.%d", 20+mrand.Intn(200), mrand.Intn(256), 1+mrand.Intn(254))
		free := true
		for _, port := range []string{"389", "636"} {
			l, err := net.Listen("tcp", net.JoinHostPort(a, port))
			if err != nil {
				free = false
				break
			}
			l.Close()
		}
		if free {
			return a
		}
	}
}

// writeTLS makes the DC's CA and server certificate (SANs: its names and
// its address): Samba's own self-signed certificate has no SAN.
func (d *DC) writeTLS() error {
	ca, err := testca.New("adlab CA")
	if err != nil {
		return err
	}
	srv, err := ca.Issue([]string{"dc1.lab.test", "dc1"}, d.Addr)
	if err != nil {
		return err
	}
	d.CAFile = filepath.Join(d.Dir, "tls", "ca.pem")
	for name, b := range map[string][]byte{"ca.pem": ca.PEM, "dc.pem": srv.CertPEM, "dc.key": srv.KeyPEM} {
		if err := os.WriteFile(filepath.Join(d.Dir, "tls", name), b, 0o600); err != nil {
			return err
		}
	}
	return nil
}

// NewCA is a CA's certificate (PEM) that signed nothing of the lab's: the
// wrong CA a test offers.
func NewCA(name string) ([]byte, error) {
	ca, err := testca.New(name)
	if err != nil {
		return nil, err
	}
	return ca.PEM, nil
}

func (d *DC) dial() (*ldap.Conn, error) {
	pool := x509.NewCertPool()
	b, err := os.ReadFile(d.CAFile)
	if err != nil {
		return nil, err
	}
	pool.AppendCertsFromPEM(b)
	return ldap.DialURL(d.URL(), ldap.DialWithTLSConfig(&tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}),
		ldap.DialWithDialer(&net.Dialer{Timeout: 2 * time.Second}))
}

// Admin is a connection bound as Administrator, for a test's setup and its
// checks; closed when the test ends.
func (d *DC) Admin(t testing.TB) *ldap.Conn {
	t.Helper()
	c, err := d.AdminConn()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// AdminConn is a connection bound as Administrator (with the password the
// lab starts with), for a lab's setup.
func (d *DC) AdminConn() (*ldap.Conn, error) { return d.Conn(AdminDN, AdminPassword) }

// Conn is a connection bound as dn (the caller closes it).
func (d *DC) Conn(dn, password string) (*ldap.Conn, error) {
	c, err := d.dial()
	if err != nil {
		return nil, err
	}
	if err := c.Bind(dn, password); err != nil {
		c.Close()
		return nil, fmt.Errorf("binding as %s: %v", dn, err)
	}
	return c, nil
}

// BindWorks reports whether a simple bind as dn with password works; a
// bind refused for another reason than bad credentials fails the test.
func (d *DC) BindWorks(t testing.TB, dn, password string) bool {
	t.Helper()
	err := d.BindError(dn, password)
	if err == nil {
		return true
	}
	if !ldap.IsErrorWithCode(err, ldap.LDAPResultInvalidCredentials) {
		t.Fatalf("bind as %s: %v", dn, err)
	}
	return false
}

// BindError is the error of a simple bind as dn (nil when it works).
func (d *DC) BindError(dn, password string) error {
	c, err := d.dial()
	if err != nil {
		return err
	}
	defer c.Close()
	return c.Bind(dn, password)
}

// Stop stops the DC.
func (d *DC) Stop() {
	if d.cmd == nil || d.cmd.Process == nil {
		return
	}
	d.stdin.Close()
	select {
	case <-d.exited:
	case <-time.After(3 * time.Second):
		d.cmd.Process.Kill()
		<-d.exited
	}
}

func lastLines(b []byte, n int) string {
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// UsersDN is where AddUser puts accounts.
const UsersDN = "CN=Users," + BaseDN

// AddUser creates an enabled account with a password; attrs adds more
// attributes (description, userPrincipalName, ...). It returns the DN.
func AddUser(c *ldap.Conn, sam, password string, attrs map[string][]string) (string, error) {
	dn := "CN=" + ldap.EscapeDN(sam) + "," + UsersDN
	a := ldap.NewAddRequest(dn, nil)
	a.Attribute("objectClass", []string{"user"})
	a.Attribute("sAMAccountName", []string{sam})
	a.Attribute("unicodePwd", []string{EncodePassword(password)})
	if attrs["userAccountControl"] == nil {
		a.Attribute("userAccountControl", []string{"512"})
	}
	for k, v := range attrs {
		a.Attribute(k, v)
	}
	if err := c.Add(a); err != nil {
		return "", fmt.Errorf("adding %s: %v", sam, err)
	}
	return dn, nil
}

// AddGroup creates a global security group and returns its DN.
func AddGroup(c *ldap.Conn, name string) (string, error) {
	dn := "CN=" + ldap.EscapeDN(name) + "," + UsersDN
	a := ldap.NewAddRequest(dn, nil)
	a.Attribute("objectClass", []string{"group"})
	a.Attribute("sAMAccountName", []string{name})
	if err := c.Add(a); err != nil {
		return "", fmt.Errorf("adding the group %s: %v", name, err)
	}
	return dn, nil
}

// AddMember adds member to a group.
func AddMember(c *ldap.Conn, groupDN, memberDN string) error {
	m := ldap.NewModifyRequest(groupDN, nil)
	m.Add("member", []string{memberDN})
	if err := c.Modify(m); err != nil {
		return fmt.Errorf("adding %s to %s: %v", memberDN, groupDN, err)
	}
	return nil
}

// Attr reads one attribute of an object.
func Attr(c *ldap.Conn, dn, attr string) ([]string, error) {
	r, err := c.Search(ldap.NewSearchRequest(dn, ldap.ScopeBaseObject, ldap.NeverDerefAliases, 0, 0, false, "(objectClass=*)", []string{attr}, nil))
	if err != nil {
		return nil, fmt.Errorf("reading %s of %s: %v", attr, dn, err)
	}
	return r.Entries[0].GetAttributeValues(attr), nil
}

// EncodePassword is unicodePwd's value for a password.
func EncodePassword(pw string) string {
	var b []byte
	for _, r := range utf16.Encode([]rune(`"` + pw + `"`)) {
		b = append(b, byte(r), byte(r>>8))
	}
	return string(b)
}

// AddACE adds an ACE (in SDDL) to an object's DACL with samba-tool dsacl,
// as an admin of the domain would, on the running DC's own database.
func (d *DC) AddACE(objectDN, sddl string) error {
	out, err := exec.Command("samba-tool", "dsacl", "set", "-H", "tdb://"+filepath.Join(d.Dir, "private", "sam.ldb"),
		"--objectdn="+objectDN, "--sddl="+sddl, "--action=allow").CombinedOutput()
	if err != nil {
		return fmt.Errorf("samba-tool dsacl set %s on %s: %v: %s", sddl, objectDN, err, lastLines(out, 3))
	}
	return nil
}

// Sysvol is the DC's SYSVOL folder.
func (d *DC) Sysvol() string { return filepath.Join(d.Dir, "state", "sysvol") }

// SID is an object's objectSid as a string (S-1-5-21-...).
func SID(c *ldap.Conn, dn string) (string, error) {
	r, err := c.Search(ldap.NewSearchRequest(dn, ldap.ScopeBaseObject, ldap.NeverDerefAliases, 0, 0, false, "(objectClass=*)", []string{"objectSid"}, nil))
	if err != nil || len(r.Entries) == 0 {
		return "", fmt.Errorf("reading the SID of %s: %v", dn, err)
	}
	b := r.Entries[0].GetRawAttributeValue("objectSid")
	if len(b) < 8 || int(b[1])*4+8 != len(b) {
		return "", fmt.Errorf("%s has no valid objectSid", dn)
	}
	var auth uint64
	for _, x := range b[2:8] {
		auth = auth<<8 | uint64(x)
	}
	s := fmt.Sprintf("S-%d-%d", b[0], auth)
	for i := 0; i < int(b[1]); i++ {
		s += fmt.Sprintf("-%d", binary.LittleEndian.Uint32(b[8+4*i:]))
	}
	return s, nil
}

// DACL is an object's DACL in SDDL as samba-tool dsacl get prints it.
func (d *DC) DACL(objectDN string) (string, error) {
	out, err := exec.Command("samba-tool", "dsacl", "get", "-H", "tdb://"+filepath.Join(d.Dir, "private", "sam.ldb"), "--objectdn="+objectDN).CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("samba-tool dsacl get %s: %v: %s", objectDN, err, lastLines(out, 3))
	}
	return strings.TrimSpace(string(out)), nil
}

// RawDACL is an object's security descriptor as the DC sends it when asked
// for the DACL alone (LDAP_SERVER_SD_FLAGS_OID, DACL_SECURITY_INFORMATION).
func RawDACL(c *ldap.Conn, dn string) ([]byte, error) {
	ctl := ldap.NewControlString("1.2.840.113556.1.4.801", true, "\x30\x03\x02\x01\x04")
	r, err := c.Search(ldap.NewSearchRequest(dn, ldap.ScopeBaseObject, ldap.NeverDerefAliases, 0, 0, false, "(objectClass=*)", []string{"nTSecurityDescriptor"}, []ldap.Control{ctl}))
	if err != nil || len(r.Entries) == 0 {
		return nil, fmt.Errorf("reading the DACL of %s: %v", dn, err)
	}
	return r.Entries[0].GetRawAttributeValue("nTSecurityDescriptor"), nil
}

// KeyCredential is an msDS-KeyCredentialLink value as Whisker or pywhisker
// plant it (shadow credentials): a KEYCREDENTIALLINK_BLOB, version 2, its
// entries sorted by identifier ([MS-ADTS] 2.2.20), for a device, bound to
// dn.
func KeyCredential(dn string, device [16]byte, created time.Time) string {
	blob := binary.LittleEndian.AppendUint32(nil, 0x200)
	entry := func(id byte, v []byte) {
		blob = binary.LittleEndian.AppendUint16(blob, uint16(len(v)))
		blob = append(append(blob, id), v...)
	}
	keyID := make([]byte, 32)
	copy(keyID, "key-of-the-old-provider")
	entry(0x01, keyID)
	entry(0x03, []byte("RSA1 public key material of 2048 bits would be here"))
	entry(0x04, []byte{0x01})
	entry(0x05, []byte{0x00})
	entry(0x06, device[:])
	entry(0x07, []byte{0x01, 0x00})
	entry(0x09, binary.LittleEndian.AppendUint64(nil, uint64(created.UTC().UnixNano()/100+116444736000000000)))
	h := fmt.Sprintf("%X", blob)
	return fmt.Sprintf("B:%d:%s:%s", len(h), h, dn)
}
