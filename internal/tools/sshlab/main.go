// Command sshlab starts isolated OpenSSH hosts on 127.0.0.1 for trying the
// ssh plugin (make lab). Each host is an sshd in its own mount namespace
// with its own /etc, accounts and host key; this machine's accounts are not
// touched. It runs until Ctrl-C. Needs root, openssh-server and sudo.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/switchover/switchover/internal/testing/sshlab"
)

func main() {
	n := flag.Int("hosts", 3, "how many hosts")
	dir := flag.String("dir", filepath.Join(os.TempDir(), "switchover-lab"), "directory for keys, known_hosts and the hosts")
	flag.Parse()
	os.RemoveAll(*dir)
	if err := os.MkdirAll(*dir, 0o700); err != nil {
		fail(err)
	}
	lab, err := sshlab.New(*dir, sshlab.Options{Hosts: *n})
	if err != nil {
		if lab != nil {
			lab.Stop()
		}
		fail(err)
	}
	servers := map[string]any{}
	for _, h := range lab.Hosts {
		servers[h.Name] = map[string]any{"address": "127.0.0.1", "port": h.Port}
	}
	vars := map[string]any{"servers": servers, "private_key_file": lab.AdminKeyFile, "known_hosts": lab.KnownHosts}
	b, _ := json.MarshalIndent(vars, "", "  ")
	varFile := filepath.Join(*dir, "lab.vars.json")
	os.WriteFile(varFile, b, 0o600)
	fmt.Printf("%d lab hosts are up on 127.0.0.1:\n", *n)
	for _, h := range lab.Hosts {
		fmt.Printf("  %s  port %d\n", h.Name, h.Port)
	}
	fmt.Printf(`
Each has root (with the admin key %s), an account oldmsp with the old provider's
key and sudo rights, and alice. known_hosts: %s

Try, in another terminal:
  bin/switchover plan  -var-file %s runbooks/linux-servers
  bin/switchover apply -var-file %s runbooks/linux-servers

Ctrl-C stops the hosts.
`, lab.AdminKeyFile, lab.KnownHosts, varFile, varFile)
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, os.Interrupt, syscall.SIGTERM)
	<-ch
	lab.Stop()
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "sshlab:", err)
	os.Exit(1)
}
