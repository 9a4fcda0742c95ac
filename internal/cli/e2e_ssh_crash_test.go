package cli

import (
	"math/rand"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/switchover/switchover/internal/testing/sshlab"
)

// TestSSHCrashWhileRotatingPasswords kills `switchover apply` with SIGKILL
// at random moments while it rotates root's password on 10 real sshd hosts,
// resumes it, and then logs in to every host with the password from the
// secret store: no password may end up known to nobody.
func TestSSHCrashWhileRotatingPasswords(t *testing.T) {
	lab := sshlab.Start(t, sshlab.Options{Hosts: 10})
	seed := time.Now().UnixNano()
	rng := rand.New(rand.NewSource(seed))
	kills, midStep, scenarios := 0, 0, 0
	for kills < 12 {
		// Each scenario is a fresh workspace rotating the same hosts again.
		scenarios++
		f := sshRunbook(t, lab, "", `
step "ssh.rotate_password" "root" {
  for_each = var.hosts
  port     = each.value
  account  = "root"
  password = secret("root@${each.key}")
}
step "ssh.rotate_password" "alice" {
  for_each   = var.hosts
  port       = each.value
  account    = "alice"
  password   = secret("alice@${each.key}")
  depends_on = [step.root]
}
`)
		k, m := killAndResume(t, f, 6, func() time.Duration { return time.Duration(100+rng.Intn(600)) * time.Millisecond })
		kills, midStep = kills+k, midStep+m
		for _, h := range lab.Hosts {
			for _, acct := range []string{"root", "alice"} {
				pw := secretValue(t, f.dir, acct+"@"+h.Name)
				if !sshlab.LoginWorks(t, h, acct, ssh.Password(pw)) {
					t.Fatalf("seed %d: %s: %s cannot log in with the password in the secret store", seed, h.Name, acct)
				}
			}
		}
	}
	t.Logf("seed %d: %d kills over %d scenarios, %d of them with a step running", seed, kills, scenarios, midStep)
	if midStep < 4 {
		t.Fatalf("only %d kills hit a step in progress: retune the delays", midStep)
	}
}
