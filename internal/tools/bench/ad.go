package main

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/go-ldap/ldap/v3"

	"github.com/switchover/switchover/internal/testing/adlab"
)

// benchAD: disable and reset the passwords of n accounts on a real Samba
// DC, with switchover (plan, apply, verify by bind) and with the floor: one
// Go program doing the same modifies over one LDAPS connection and the
// same verification binds. Also the plan of the n accounts alone.
func benchAD(bin string, n, runs int) {
	dir, dc, stop := startDC("bench-ad-")
	defer stop()
	admin, err := dial(dc)
	if err != nil {
		fail(err)
	}
	defer admin.Close()
	var names []string
	for i := 0; i < n; i++ {
		names = append(names, fmt.Sprintf("bench-%04d", i))
	}
	if err := parallel(names, 8, func(c *ldap.Conn, name string) error {
		_, err := adlab.AddUser(c, name, "Bench-Old-Pw-1!", nil)
		return err
	}, dc); err != nil {
		fail(err)
	}
	reset := func() {
		if err := parallel(names, 8, func(c *ldap.Conn, name string) error {
			m := ldap.NewModifyRequest("CN="+name+","+adlab.UsersDN, nil)
			m.Replace("userAccountControl", []string{"512"})
			m.Replace("unicodePwd", []string{adlab.EncodePassword("Bench-Old-Pw-1!")})
			return c.Modify(m)
		}, dc); err != nil {
			fail(err)
		}
	}
	rb := filepath.Join(dir, "rb")
	os.MkdirAll(rb, 0o755)
	quoted := make([]string, len(names))
	for i, s := range names {
		quoted[i] = fmt.Sprintf("%q", s)
	}
	src := fmt.Sprintf(`runbook "bench-ad" {}
plugin "ad" {
  server        = %q
  bind_dn       = %q
  bind_password = %q
  ca_file       = %q
}
variable "accounts" {
  default = [%s]
}
step "ad.reset_password" "pw" {
  for_each = toset(var.accounts)
  account  = each.value
  password = secret("ad/${each.value}")
}
step "ad.disable_account" "off" {
  for_each = toset(var.accounts)
  account  = each.value
}
`, dc.URL(), adlab.AdminDN, adlab.AdminPassword, dc.CAFile, strings.Join(quoted, ", "))
	if err := os.WriteFile(filepath.Join(rb, "main.sw.hcl"), []byte(src), 0o644); err != nil {
		fail(err)
	}
	type row struct {
		name       string
		best, wrst time.Duration
	}
	var rows []row
	measure := func(name string, prepare func(), f func() error) {
		var best, worst time.Duration
		for r := 0; r < runs; r++ {
			prepare()
			start := time.Now()
			if err := f(); err != nil {
				fail(fmt.Errorf("%s: %v", name, err))
			}
			d := time.Since(start)
			if best == 0 || d < best {
				best = d
			}
			worst = max(worst, d)
		}
		rows = append(rows, row{name, best, worst})
	}
	fresh := func() {
		reset()
		os.RemoveAll(filepath.Join(rb, ".switchover"))
	}
	measure(fmt.Sprintf("switchover plan (%d accounts x 2 steps)", n), fresh, func() error {
		out, err := exec.Command(bin, "plan", rb).CombinedOutput()
		if err != nil {
			return fmt.Errorf("%v\n%s", err, lastLine(out))
		}
		return nil
	})
	measure("switchover apply (-parallelism 10)", fresh, func() error {
		out, err := exec.Command(bin, "apply", "-auto-approve", rb).CombinedOutput()
		if err != nil {
			return fmt.Errorf("%v\n%s", err, lastLine(out))
		}
		return nil
	})
	measure("floor: one Go program, one LDAPS connection", reset, func() error { return adFloor(dc, names) })
	fmt.Printf("Reset the password of and disable %d accounts on a real Samba AD DC (LDAPS on loopback),\nwith the verification binds; best and worst of %d runs, %d CPUs\n\n", n, runs, numCPU())
	fmt.Printf("%-46s %8s %8s\n", "what", "best s", "worst s")
	for _, r := range rows {
		fmt.Printf("%-46s %8.2f %8.2f\n", r.name, r.best.Seconds(), r.wrst.Seconds())
	}
	if len(rows) == 3 && rows[2].best > 0 {
		fmt.Printf("\napply / floor: %.2fx\n", rows[1].best.Seconds()/rows[2].best.Seconds())
	}
}

// startDC starts a lab DC in a new temporary directory; stop ends both.
func startDC(prefix string) (string, *adlab.DC, func()) {
	dir, err := os.MkdirTemp("", prefix)
	if err != nil {
		fail(err)
	}
	dc, err := adlab.New(dir)
	if err != nil {
		os.RemoveAll(dir)
		fail(err)
	}
	return dir, dc, func() { dc.Stop(); os.RemoveAll(dir) }
}

func lastLine(b []byte) string {
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	return lines[len(lines)-1]
}

func dial(dc *adlab.DC) (*ldap.Conn, error) {
	pool := x509.NewCertPool()
	b, err := os.ReadFile(dc.CAFile)
	if err != nil {
		return nil, err
	}
	pool.AppendCertsFromPEM(b)
	c, err := ldap.DialURL(dc.URL(), ldap.DialWithTLSConfig(&tls.Config{RootCAs: pool}))
	if err != nil {
		return nil, err
	}
	return c, c.Bind(adlab.AdminDN, adlab.AdminPassword)
}

// parallel runs f over names with k workers on one admin connection.
func parallel(names []string, k int, f func(*ldap.Conn, string) error, dc *adlab.DC) error {
	c, err := dial(dc)
	if err != nil {
		return err
	}
	defer c.Close()
	var wg sync.WaitGroup
	var mu sync.Mutex
	var first error
	ch := make(chan string)
	for i := 0; i < k; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := range ch {
				if err := f(c, n); err != nil {
					mu.Lock()
					if first == nil {
						first = err
					}
					mu.Unlock()
				}
			}
		}()
	}
	for _, n := range names {
		ch <- n
	}
	close(ch)
	wg.Wait()
	return first
}

// adFloor does what the runbook does, as directly as Go can: per account,
// read it, reset its password, bind with the new one (on a verification
// connection of its worker), read it, disable it (compare-and-swap), read
// it again; 10 workers over one admin connection, like -parallelism 10.
func adFloor(dc *adlab.DC, names []string) error {
	c, err := dial(dc)
	if err != nil {
		return err
	}
	defer c.Close()
	verifiers := make(chan *ldap.Conn, 10)
	for i := 0; i < 10; i++ {
		v, err := dial(dc)
		if err != nil {
			return err
		}
		defer v.Close()
		verifiers <- v
	}
	read := func(dn string) error {
		_, err := adlab.Attr(c, dn, "userAccountControl")
		return err
	}
	return parallel(names, 10, func(_ *ldap.Conn, name string) error {
		dn := "CN=" + name + "," + adlab.UsersDN
		pw := "Bench-New-Pw-" + name + "!"
		if err := read(dn); err != nil {
			return err
		}
		m := ldap.NewModifyRequest(dn, nil)
		m.Replace("unicodePwd", []string{adlab.EncodePassword(pw)})
		if err := c.Modify(m); err != nil {
			return err
		}
		v := <-verifiers
		err := v.Bind(dn, pw)
		verifiers <- v
		if err != nil {
			return err
		}
		if err := read(dn); err != nil {
			return err
		}
		m = ldap.NewModifyRequest(dn, nil)
		m.Delete("userAccountControl", []string{"512"})
		m.Add("userAccountControl", []string{"514"})
		if err := c.Modify(m); err != nil {
			return err
		}
		return read(dn)
	}, dc)
}
