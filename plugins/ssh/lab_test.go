package ssh

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/zclconf/go-cty/cty"

	"github.com/switchover/switchover/internal/testing/sshlab"
	"github.com/switchover/switchover/plugins/sdk/sdktest"
)

// One lab for the package's integration tests (started in TestMain), one
// host per test that changes it: hostCut.. for the four cut tests, hostSudo
// for the sudo, sudoers, export and plan-data tests, and one each for the
// action tests in actions_test.go.
var lab *sshlab.Lab

const (
	hostSudo    = 0
	hostCut     = 1 // ..4
	hostKeys    = 5
	hostKeep    = 6
	hostRotate  = 7
	hostService = 8
	hostJump    = 9
	hostTarget  = 10
	hostAuth    = 11
	hostAccess  = 12
	hostPersist = 13
	labHosts    = 14
)

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "sshplugin-lab-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	lab, err = sshlab.New(dir, sshlab.Options{Hosts: labHosts})
	if err != nil {
		if lab != nil {
			lab.Stop()
		}
		os.RemoveAll(dir)
		// Never a silent skip: CI installs what the lab needs.
		fmt.Fprintf(os.Stderr, "cannot start the SSH lab: %v\n", err)
		os.Exit(1)
	}
	code := m.Run()
	lab.Stop()
	os.RemoveAll(dir)
	os.Exit(code)
}

// cutProxy forwards TCP to an sshd and cuts every connection once the
// client has sent limit bytes (in total, since the last reset): what a
// killed switchover or a dropped network does to a transfer.
type cutProxy struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	limit  int64 // -1: no cut
	sent   int64
	conns  []net.Conn
}

func newCutProxy(t *testing.T, target string) *cutProxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &cutProxy{ln: ln, target: target, limit: -1}
	t.Cleanup(func() { ln.Close(); p.cutAll() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go p.serve(c)
		}
	}()
	return p
}

func (p *cutProxy) port() int { return p.ln.Addr().(*net.TCPAddr).Port }

func (p *cutProxy) cutAll() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
}

// position is the number of bytes the client sent so far.
func (p *cutProxy) position() int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.sent
}

// cutAt cuts when the client has sent n bytes in total (-1: never).
func (p *cutProxy) cutAt(n int64) {
	p.mu.Lock()
	p.limit = n
	p.mu.Unlock()
}

func (p *cutProxy) serve(c net.Conn) {
	s, err := net.Dial("tcp", p.target)
	if err != nil {
		c.Close()
		return
	}
	p.mu.Lock()
	p.conns = append(p.conns, c, s)
	p.mu.Unlock()
	go func() { io.Copy(c, s); c.Close() }()
	buf := make([]byte, 4096)
	for {
		n, err := c.Read(buf)
		if n > 0 {
			p.mu.Lock()
			allowed := int64(n)
			cut := false
			if p.limit >= 0 && p.sent+allowed >= p.limit {
				allowed, cut = max(p.limit-p.sent, 0), true
			}
			p.sent += allowed
			p.mu.Unlock()
			if allowed > 0 {
				s.Write(buf[:allowed])
			}
			if cut {
				p.cutAll()
				return
			}
		}
		if err != nil {
			s.Close()
			return
		}
	}
}

// harness is the ssh plugin configured to reach h (through port, when not
// 0) as user with extra settings; each call has a fresh connection pool.
func harness(t *testing.T, h *sshlab.Host, port int, set map[string]cty.Value) *sdktest.Harness {
	t.Helper()
	hs, err := configured(t, h, port, set)
	if err != nil {
		t.Fatal(err)
	}
	return hs
}

// configured is harness, returning the error of Configure.
func configured(t *testing.T, h *sshlab.Host, port int, set map[string]cty.Value) (*sdktest.Harness, error) {
	t.Helper()
	return configuredIn(t, lab, h, port, set)
}

// configuredIn is configured for a host of another lab l.
func configuredIn(t *testing.T, lab *sshlab.Lab, h *sshlab.Host, port int, set map[string]cty.Value) (*sdktest.Harness, error) {
	t.Helper()
	kh := lab.KnownHosts
	if port != 0 {
		kh = filepath.Join(t.TempDir(), "known_hosts")
		line := strings.Replace(h.KnownHostsLine(), fmt.Sprintf("]:%d ", h.Port), fmt.Sprintf("]:%d ", port), 1)
		if err := os.WriteFile(kh, []byte(line+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	} else {
		port = h.Port
	}
	cfg := map[string]cty.Value{
		"host": cty.StringVal("127.0.0.1"), "port": cty.NumberIntVal(int64(port)), "user": cty.StringVal("root"),
		"private_key_file": cty.StringVal(lab.AdminKeyFile), "known_hosts": cty.StringVal(kh), "connect_timeout": cty.StringVal("5s"),
	}
	for k, v := range set {
		cfg[k] = v
	}
	hs := &sdktest.Harness{P: New("test")}
	return hs, hs.Configure(context.Background(), cfg)
}

// adminLogsIn reports whether the admin key still logs in as root.
func adminLogsIn(t *testing.T, h *sshlab.Host) bool {
	return sshlab.LoginWorks(t, h, "root", sshlab.KeyAuth(t, lab.AdminKeyFile))
}

// settle waits until no script of the plugin runs on h any more: after a
// cut, sshd may still start the command it received last, and the remote
// side may still be finishing. Quiet means none seen in three looks 30 ms
// apart (the host's own loop, one nsenter), after 50 ms. Only this host's
// processes count (its mount namespace): the PIDs are the machine's, and
// other test packages run switchover at the same time.
func settle(t *testing.T, h *sshlab.Host) {
	t.Helper()
	time.Sleep(50 * time.Millisecond)
	out, err := h.Run(`quiet=0; i=0
while [ $quiet -lt 3 ] && [ $i -lt 300 ]; do
  if pgrep --ns $$ --nslist mnt -f '[_]_sw_d|[s]witchover' >/dev/null; then quiet=0; else quiet=$((quiet+1)); fi
  i=$((i+1)); sleep 0.03
done
[ $quiet -ge 3 ] && echo quiet`)
	if err != nil || strings.TrimSpace(out) != "quiet" {
		t.Fatalf("a switchover script still runs on %s after 9 s (%v)", h.Name, err)
	}
}
