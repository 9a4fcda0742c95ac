package demo

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"

	"github.com/switchover/switchover/internal/testing/adlab"
	"github.com/switchover/switchover/internal/testing/graphtest"
	"github.com/switchover/switchover/internal/testing/scimlab"
)

var bin string

// TestMain builds the switchover binary the demo runs, once.
func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "switchover-demo-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	bin = filepath.Join(dir, "switchover")
	if out, err := exec.Command("go", "build", "-o", bin, "../../cmd/switchover").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "building switchover: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// The demo end to end: runbooks/full-switch applied to the whole lab, the
// person's steps confirmed; then every credential the old provider had is
// tried and none may work, while the client's accounts and the new
// provider's access still do, and no sensitive value is in what the demo
// wrote.
func TestDemoEndToEnd(t *testing.T) {
	dir := t.TempDir()
	lab, err := Start(filepath.Join(dir, "lab"), func(s string) { t.Log(s) })
	if err != nil {
		t.Fatalf("the lab: %v", err)
	}
	t.Cleanup(lab.Stop)
	// Before: the old provider's credentials work (the check can fail).
	before, err := lab.Check()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range before {
		if !f.Works {
			t.Errorf("before the switch, %q should work", f.What)
		}
	}
	vars, env, err := lab.Values()
	if err != nil {
		t.Fatal(err)
	}
	var log bytes.Buffer
	res, err := Run(context.Background(), Options{Bin: bin, Dir: dir, Vars: vars, Env: env, Log: &log, Progress: func(s string) { t.Log(s) }})
	if err != nil {
		t.Fatalf("%v\n%s", err, log.String())
	}
	after, err := lab.Check()
	if err != nil {
		t.Fatal(err)
	}
	if len(after) != 51 {
		t.Fatalf("%d ways in tried, want 51 (README says so)", len(after))
	}
	for _, f := range after {
		if f.Works {
			t.Errorf("after the switch, the old provider's %s still works", f.What)
		}
	}

	// The client's accounts, jobs and the new provider's access are untouched.
	for _, h := range lab.SSH.Hosts {
		if out, err := h.Run("cat /etc/cron.d/monitoring"); err != nil || !strings.Contains(out, "client-backup") {
			t.Errorf("%s: the client's cron job: %v %q", h.Name, err, out)
		}
		if out, err := h.Run("cat /etc/rc.local"); err != nil || !strings.Contains(out, "/usr/local/bin/client-startup") {
			t.Errorf("%s: the client's rc.local line: %v %q", h.Name, err, out)
		}
	}
	if !lab.DC.BindWorks(t, "CN=anna,"+adlab.UsersDN, "Anna-Pw-1!") {
		t.Error("the client's AD user cannot sign in")
	}
	if u, _ := lab.SCIM.User(lab.SCIMClient); u["active"] != true {
		t.Error("the client's PSA account was deactivated")
	}
	if lab.Graph.UserProps(lab.GraphClient)["accountEnabled"] != true || !lab.RMM.Active("backup-agent") {
		t.Error("the client's Entra user or the RMM's other token was touched")
	}
	if excluded, _ := lab.Graph.PolicyUsers(lab.GraphPolicy)["excludeUsers"].([]any); !slices.Equal(excluded, []any{lab.GraphBG}) {
		t.Errorf("the MFA policy's exclusions: %v, want only the client's break-glass account", excluded)
	}
	if rules := lab.Graph.MessageRules(lab.GraphClient); len(rules) != 1 {
		t.Errorf("anna's own inbox rule is gone, or the old provider's stays: %v", rules)
	}
	// The new credentials work and are the ones in the bundle's store.
	ctx := context.Background()
	secret := func(name string) string {
		v, err := Secret(ctx, bin, res.Runbook, name)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	for _, h := range lab.SSH.Hosts {
		if ok, err := h.Login("root", ssh.Password(secret("servers/root@"+h.Name))); err != nil || !ok {
			t.Errorf("%s: root's new password does not log in (%v)", h.Name, err)
		}
	}
	if err := lab.DC.BindError(adlab.AdminDN, secret("ad/ad/Administrator")); err != nil {
		t.Errorf("Administrator's new password: %v", err)
	}
	if err := lab.restic(secret("backups/restic/office"), dir, "cat", "config"); err != nil {
		t.Errorf("the repository's new password: %v", err)
	}
	if err := lab.resticOn(lab.NewRepo, secret("backups/restic/office"), dir, "restore", "latest", "--target", t.TempDir()); err != nil {
		t.Errorf("the new repository: %v", err)
	}
	if lab.Graph.Password(lab.GraphBG) != secret("m365/m365/breakglass@acme.example") {
		t.Error("the break-glass password is not the stored one")
	}

	// Every person's step was confirmed; only the second krbtgt reset is
	// due later, and the checklist says so.
	if len(res.Confirmed) != 10 || strings.Join(res.Due, ",") != "module.ad.step.krbtgt" {
		t.Errorf("confirmed %v, due %v", res.Confirmed, res.Due)
	}
	md, _ := os.ReadFile(res.Checklist)
	for _, want := range []string{"module.ad.step.krbtgt", "module.servers.step.drop_oldmsp_keys", "step.handover_protocol", "confirmed by Demo",
		"Persistence sweep: 1 SYSVOL file(s) naming the old provider to review", "oldmsp-agent.cmd"} {
		if !bytes.Contains(md, []byte(want)) {
			t.Errorf("the checklist has no %q", want)
		}
	}
	for _, p := range []string{res.HTML, res.Bundle} {
		if fi, err := os.Stat(p); err != nil || fi.Size() == 0 {
			t.Errorf("%s: %v", p, err)
		}
	}
	// No sensitive value in what the demo wrote: output, checklist,
	// state, audit trail, plan files.
	var all bytes.Buffer
	all.Write(log.Bytes())
	filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err == nil && fi.Mode().IsRegular() && !strings.HasPrefix(p, lab.Dir) && filepath.Base(p) != "lab.vars.json" {
			b, _ := os.ReadFile(p)
			all.Write(b)
		}
		return nil
	})
	for _, canary := range []string{newBindPassword, rmmAdminToken, scimlab.Token, graphtest.ClientSecret, OldRepoPassword, secret("ad/ad/Administrator"), secret("servers/root@host01")} {
		if bytes.Contains(all.Bytes(), []byte(canary)) {
			t.Errorf("a sensitive value (%d characters) is in the demo's output or files", len(canary))
		}
	}
}
