package ssh

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/zclconf/go-cty/cty"
	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"

	"github.com/switchover/switchover/plugins/sdk/sdktest"
)

// A server at its worst: it logs the plugin in, then never answers a
// session's opening (a wedged sshd; or a connection that died just as the
// session was asked for). The step fails within connect_timeout, saying
// so; it does not wait forever.
func TestWedgedServerDoesNotHangTheStep(t *testing.T) {
	t.Parallel()
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	signer, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	cfg := &ssh.ServerConfig{PublicKeyCallback: func(ssh.ConnMetadata, ssh.PublicKey) (*ssh.Permissions, error) { return nil, nil }}
	cfg.AddHostKey(signer)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				_, chans, reqs, err := ssh.NewServerConn(c, cfg)
				if err != nil {
					return
				}
				go ssh.DiscardRequests(reqs)
				for range chans {
					// Never accepted, never rejected.
				}
			}()
		}
	}()
	port := ln.Addr().(*net.TCPAddr).Port
	kh := filepath.Join(t.TempDir(), "known_hosts")
	os.WriteFile(kh, []byte(knownhosts.Line([]string{knownhosts.Normalize(ln.Addr().String())}, signer.PublicKey())+"\n"), 0o600)
	hs := &sdktest.Harness{P: New("test")}
	if err := hs.Configure(context.Background(), map[string]cty.Value{
		"host": cty.StringVal("127.0.0.1"), "port": cty.NumberIntVal(int64(port)), "user": cty.StringVal("root"),
		"private_key_file": cty.StringVal(lab.AdminKeyFile), "known_hosts": cty.StringVal(kh), "connect_timeout": cty.StringVal("1s"),
	}); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_, err = hs.Plan(context.Background(), "lock_account", map[string]cty.Value{"account": cty.StringVal("bob")}, nil)
	if err == nil || !strings.Contains(err.Error(), "did not open a session within 1s") {
		t.Fatalf("a server that never opens a session: %v", err)
	}
	if d := time.Since(start); d > 20*time.Second {
		t.Fatalf("the step took %s", d)
	}
}
