// Package sshlab starts real OpenSSH servers for tests: each "host" is an
// sshd in its own mount namespace whose /etc is an overlay and whose /home,
// /root, /run and /var/log are its own directories, so its accounts,
// passwords, keys and sudoers are its own and this machine's are never
// touched. Each host listens on its own port on 127.0.0.1 with its own host
// key. /srv, /tmp, /opt, /var/tmp and /usr/local/sbin are per host too, so
// tests may write there (a stand-in command in /usr/local/sbin comes first
// in root's PATH). Everything else (/usr, /var/lib) is this machine's, read-only by
// convention: tests must not write there. It needs root, unshare and nsenter
// (util-linux), openssh-server and sudo.
package sshlab

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
)

// Host is one lab host.
type Host struct {
	Name    string
	Port    int
	Dir     string
	HostKey ssh.PublicKey
	cmd     *exec.Cmd
	exited  chan struct{}
}

// Addr is host:port.
func (h *Host) Addr() string { return fmt.Sprintf("127.0.0.1:%d", h.Port) }

// KnownHostsLine is the host's line for a known_hosts file.
func (h *Host) KnownHostsLine() string {
	return fmt.Sprintf("[127.0.0.1]:%d %s", h.Port, strings.TrimSpace(string(ssh.MarshalAuthorizedKey(h.HostKey))))
}

// Lab is a set of hosts and the key pairs the tests use.
type Lab struct {
	Dir   string
	Hosts []*Host
	// AdminKey is switchover's key (authorized for root everywhere);
	// OldMSPKey is the old provider's (authorized for root and oldmsp).
	AdminKeyFile, OldMSPKeyFile string
	AdminPub, OldMSPPub         ssh.PublicKey
	KnownHosts                  string // a known_hosts file for every host
}

// Passwords every host starts with.
const (
	RootPassword   = "Lab-Root-Pw-1"
	OldMSPPassword = "Lab-OldMSP-Pw-1"
	AlicePassword  = "Lab-Alice-Pw-1"
)

// Options of a lab.
type Options struct {
	Hosts int
	// UsePAM for sshd (default yes, as Debian ships it).
	NoPAM bool
	// NoPasswordAuth turns password logins off.
	NoPasswordAuth bool
}

// Available says why a lab cannot start here ("" when it can).
func Available() string {
	if os.Geteuid() != 0 {
		return "the SSH lab needs root (mount namespaces)"
	}
	for _, p := range []string{"/usr/sbin/sshd", "/usr/bin/unshare", "/usr/bin/nsenter"} {
		if _, err := os.Stat(p); err != nil {
			return p + " is missing (install openssh-server and util-linux)"
		}
	}
	return ""
}

// Start starts a lab, or fails the test (never skips: CI installs what it needs).
func Start(t testing.TB, o Options) *Lab {
	t.Helper()
	l, err := New(t.TempDir(), o)
	if l != nil {
		t.Cleanup(l.Stop)
	}
	if err != nil {
		t.Fatalf("cannot start the SSH lab: %v", err)
	}
	return l
}

// New starts a lab in dir; Stop ends it.
func New(dir string, o Options) (*Lab, error) {
	if why := Available(); why != "" {
		return nil, fmt.Errorf("%s", why)
	}
	l := &Lab{Dir: dir}
	var err error
	if l.AdminKeyFile, l.AdminPub, err = writeKey(l.Dir, "admin"); err != nil {
		return nil, err
	}
	if l.OldMSPKeyFile, l.OldMSPPub, err = writeKey(l.Dir, "oldmsp"); err != nil {
		return nil, err
	}
	var wg sync.WaitGroup
	errs := make([]error, o.Hosts)
	l.Hosts = make([]*Host, o.Hosts)
	for i := 0; i < o.Hosts; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			l.Hosts[i], errs[i] = l.startHost(i, o)
		}(i)
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return l, err
		}
	}
	var kh strings.Builder
	for _, h := range l.Hosts {
		kh.WriteString(h.KnownHostsLine() + "\n")
	}
	l.KnownHosts = filepath.Join(l.Dir, "known_hosts")
	return l, os.WriteFile(l.KnownHosts, []byte(kh.String()), 0o600)
}

func writeKey(dir, name string) (string, ssh.PublicKey, error) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return "", nil, err
	}
	block, err := ssh.MarshalPrivateKey(priv, name+"@lab")
	if err != nil {
		return "", nil, err
	}
	path := filepath.Join(dir, name+"_ed25519")
	if err := os.WriteFile(path, pem.EncodeToMemory(block), 0o600); err != nil {
		return "", nil, err
	}
	sp, _ := ssh.NewPublicKey(pub)
	os.WriteFile(path+".pub", []byte(strings.TrimSpace(string(ssh.MarshalAuthorizedKey(sp)))+" "+name+"@lab\n"), 0o644)
	return path, sp, nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// startHost starts one host. Its port is chosen free but only taken when
// sshd binds it, and another lab (go test runs packages in parallel) or
// another host may take it first: then sshd exits with "Address already in
// use" and the host starts again on another port. A host is up when the
// sshd on its port shows its own host key, not merely when something
// answers there.
func (l *Lab) startHost(i int, o Options) (*Host, error) {
	name := fmt.Sprintf("host%02d", i+1)
	dir := filepath.Join(l.Dir, name)
	for attempt := 1; ; attempt++ {
		h, err := l.tryStartHost(name, dir, o)
		if err == nil || !errors.Is(err, errPortTaken) || attempt == 5 {
			return h, err
		}
		if err := os.RemoveAll(dir); err != nil {
			return nil, err
		}
	}
}

var errPortTaken = errors.New("its port was taken")

func (l *Lab) tryStartHost(name, dir string, o Options) (*Host, error) {
	for _, d := range []string{"etc-upper", "etc-work", "home", "root", "run", "log", "srv", "tmp", "opt", "vartmp", "localsbin"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			return nil, err
		}
	}
	os.Chmod(filepath.Join(dir, "root"), 0o700)
	_, hostKey, err := writeKey(dir, "hostkey")
	if err != nil {
		return nil, err
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	pam, pwAuth := "yes", "yes"
	if o.NoPAM {
		pam = "no"
	}
	if o.NoPasswordAuth {
		pwAuth = "no"
	}
	cfg := fmt.Sprintf(`Port %d
ListenAddress 127.0.0.1
HostKey /etc/ssh/lab_host_key
PidFile none
UsePAM %s
PasswordAuthentication %s
KbdInteractiveAuthentication no
PermitRootLogin yes
AuthorizedKeysFile .ssh/authorized_keys
TrustedUserCAKeys /etc/ssh/trusted_user_ca_keys
Subsystem sftp internal-sftp
MaxStartups 100:30:200
LogLevel VERBOSE
`, port, pam, pwAuth)
	if err := os.WriteFile(filepath.Join(dir, "sshd_config"), []byte(cfg), 0o600); err != nil {
		return nil, err
	}
	adminPub, _ := os.ReadFile(l.AdminKeyFile + ".pub")
	oldPub, _ := os.ReadFile(l.OldMSPKeyFile + ".pub")
	script := fmt.Sprintf(`set -e
mount -t overlay overlay -o lowerdir=/etc,upperdir=%[1]s/etc-upper,workdir=%[1]s/etc-work /etc
mount --bind %[1]s/home /home
mount --bind %[1]s/root /root
mount --bind %[1]s/run /run
mount --bind %[1]s/log /var/log
mount --bind %[1]s/srv /srv
mount --bind %[1]s/opt /opt
mount --bind %[1]s/vartmp /var/tmp
mount --bind %[1]s/localsbin /usr/local/sbin
mkdir -p /run/sshd && chmod 755 /run/sshd
cp %[1]s/sshd_config /etc/ssh/sshd_config
cp %[1]s/hostkey_ed25519 /etc/ssh/lab_host_key && chmod 600 /etc/ssh/lab_host_key
# No user CA is trusted yet (a test plants one: sshd reads the file at each login).
: > /etc/ssh/trusted_user_ca_keys
# Tests try wrong passwords on purpose: no 2-second delay after each.
sed -i 's/pam_unix.so nullok/pam_unix.so nullok nodelay/' /etc/pam.d/common-auth
hostname %[2]s
useradd -m -s /bin/bash oldmsp
useradd -m -s /bin/bash alice
echo 'root:%[3]s' | chpasswd
echo 'oldmsp:%[4]s' | chpasswd
echo 'alice:%[5]s' | chpasswd
for u in root oldmsp; do
  h=$(getent passwd $u | cut -d: -f6)
  mkdir -p $h/.ssh
  printf '%%s' '%[6]s' > $h/.ssh/authorized_keys
  chmod 700 $h/.ssh; chmod 600 $h/.ssh/authorized_keys; chown -R $u:$u $h/.ssh
done
printf '%%s' '%[7]s' >> /root/.ssh/authorized_keys
printf '%%s' '%[7]s' > /home/oldmsp/.ssh/authorized_keys
chown oldmsp:oldmsp /home/oldmsp/.ssh/authorized_keys
printf 'oldmsp ALL=(ALL) NOPASSWD: ALL\n' > /etc/sudoers.d/oldmsp
printf 'alice ALL=(ALL) ALL\n' > /etc/sudoers.d/alice
chmod 440 /etc/sudoers.d/oldmsp /etc/sudoers.d/alice
# Last: the host's directory lives under this machine's /tmp.
mount --bind %[1]s/tmp /tmp
chmod 1777 /tmp /var/tmp
exec /usr/sbin/sshd -D -e -f /etc/ssh/sshd_config
`, dir, name, RootPassword, OldMSPPassword, AlicePassword, string(adminPub), string(oldPub))
	if err := os.WriteFile(filepath.Join(dir, "start.sh"), []byte(script), 0o700); err != nil {
		return nil, err
	}
	logf, err := os.Create(filepath.Join(dir, "sshd.log"))
	if err != nil {
		return nil, err
	}
	cmd := exec.Command("unshare", "--mount", "--uts", "--propagation", "private", "sh", filepath.Join(dir, "start.sh"))
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	h := &Host{Name: name, Port: port, Dir: dir, HostKey: hostKey, cmd: cmd}
	exited := make(chan struct{})
	h.exited = exited
	go func() {
		cmd.Wait()
		close(exited)
	}()
	deadline := time.Now().Add(10 * time.Second)
	for {
		select {
		case <-exited:
			b, _ := os.ReadFile(filepath.Join(dir, "sshd.log"))
			if bytes.Contains(b, []byte("Address already in use")) {
				return nil, fmt.Errorf("%s: %w: %s", name, errPortTaken, b)
			}
			return nil, fmt.Errorf("%s did not start: %s", name, b)
		default:
		}
		if h.answers() {
			return h, nil
		}
		if time.Now().After(deadline) {
			h.Stop()
			b, _ := os.ReadFile(filepath.Join(dir, "sshd.log"))
			return nil, fmt.Errorf("%s did not start: %s", name, b)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// answers reports whether the sshd on the host's port is this host's: it
// shows the host's key (and then refuses the probe's login).
func (h *Host) answers() bool {
	cfg := &ssh.ClientConfig{User: "lab-probe", HostKeyCallback: ssh.FixedHostKey(h.HostKey), Timeout: time.Second}
	c, err := ssh.Dial("tcp", h.Addr(), cfg)
	if err == nil {
		c.Close()
		return true
	}
	return strings.Contains(err.Error(), "unable to authenticate")
}

// Stop stops every host.
func (l *Lab) Stop() {
	for _, h := range l.Hosts {
		if h != nil {
			h.Stop()
		}
	}
}

// Stop stops one host (to simulate a host that is down).
func (h *Host) Stop() {
	if h.cmd != nil && h.cmd.Process != nil {
		h.cmd.Process.Kill()
		<-h.exited
		h.cmd = nil
	}
}

// Run runs a shell script inside the host (its mount namespace), as root,
// the way an administrator at its console would check it.
func (h *Host) Run(script string) (string, error) {
	if h.cmd == nil {
		return "", fmt.Errorf("%s is stopped", h.Name)
	}
	pid := h.cmd.Process.Pid
	// The sshd is a child of unshare's sh, which exec'd it: same pid.
	cmd := exec.Command("nsenter", "-t", fmt.Sprint(pid), "-m", "-u", "sh", "-c", script)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return out.String(), fmt.Errorf("%s: %v: %s", h.Name, err, errb.String())
	}
	return out.String(), nil
}

// MustRun is Run that fails the test on error.
func (h *Host) MustRun(t testing.TB, script string) string {
	t.Helper()
	out, err := h.Run(script)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// LoginWorks reports whether a fresh SSH login as user works, the way a
// user would try: it must also run a command (an expired account or a
// nologin shell can pass authentication and still get no shell). Any error
// other than a refused authentication fails the test.
func LoginWorks(t testing.TB, h *Host, user string, auth ssh.AuthMethod) bool {
	t.Helper()
	ok, err := h.Login(user, auth)
	if err != nil {
		t.Fatal(err)
	}
	return ok
}

// Login is LoginWorks without a test: the error is for anything other
// than a refused authentication.
func (h *Host) Login(user string, auth ssh.AuthMethod) (bool, error) {
	cfg := &ssh.ClientConfig{User: user, Auth: []ssh.AuthMethod{auth}, HostKeyCallback: ssh.FixedHostKey(h.HostKey), Timeout: 5 * time.Second}
	c, err := ssh.Dial("tcp", h.Addr(), cfg)
	if err != nil {
		if !strings.Contains(err.Error(), "unable to authenticate") {
			return false, fmt.Errorf("login to %s as %s: %v", h.Name, user, err)
		}
		return false, nil
	}
	defer c.Close()
	s, err := c.NewSession()
	if err != nil {
		return false, nil
	}
	defer s.Close()
	out, err := s.CombinedOutput("echo logged-in")
	return err == nil && strings.Contains(string(out), "logged-in"), nil
}

// KeyAuth is the private key in file as an SSH login method.
func KeyAuth(t testing.TB, file string) ssh.AuthMethod {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	s, err := ssh.ParsePrivateKey(b)
	if err != nil {
		t.Fatal(err)
	}
	return ssh.PublicKeys(s)
}
