// Package demo is the whole switchover against a local lab: real sshd
// hosts, a real Samba AD DC, the SCIM server (SCIMMY), a restic repository,
// the Graph test server and the fictional RMM, seeded with an old
// provider's footprint; runbooks/full-switch is planned and applied to it,
// the person's steps confirmed, the checklist and the bundle written; Check
// then tries every credential the old provider had. `make demo` runs it
// (internal/tools/demo), and a test runs it end to end.
package demo

import (
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/go-ldap/ldap/v3"
	"golang.org/x/crypto/ssh"

	"github.com/switchover/switchover/internal/testing/adlab"
	"github.com/switchover/switchover/internal/testing/graphtest"
	"github.com/switchover/switchover/internal/testing/rmmlab"
	"github.com/switchover/switchover/internal/testing/scimlab"
	"github.com/switchover/switchover/internal/testing/sshlab"
)

// The old provider's footprint, as the demo seeds it.
const (
	OldDomain       = "oldmsp.example"
	OldTenant       = "99999999-8888-7777-6666-555555555555"
	OldADPassword   = "OldMSP-AD-Pw-1!"
	OldSvcPassword  = "Old-Svc-Backup-Pw-1!"
	OldRepoPassword = "oldmsp-restic-pw"
	OldRMMToken     = "oldmsp-integration"
	OldBreakGlass   = "Old-Break-Glass-1!"

	newBindPassword = "NewMSP-Bind-Pw-1!"
	rmmAdminToken   = "RMM-NEWMSP-TOKEN-5c1e"
	backupHost      = "office-nas"
)

// Lab is the running lab with what was seeded in it.
type Lab struct {
	Dir   string
	SSH   *sshlab.Lab
	DC    *adlab.DC
	SCIM  *scimlab.Server
	RMM   *rmmlab.Server
	Graph *graphtest.Server
	Repo  string
	// NewRepo is where the backups move (restic_migrate); OldKeyFile the
	// copy of its key file the old provider kept (named oldKeyName).
	NewRepo    string
	OldKeyFile []byte
	oldKeyName string

	// Seeded: the old provider's AD accounts (DNs), its SCIM users and
	// Entra objects (ids).
	ADOld       []string
	ADService   string
	ADNewAdmin  string
	ADDCSync    string     // the DCSync ACE planted for the old provider's technician
	ADShadow    string     // the shadow credential planted on Administrator
	oldCA       ssh.Signer // the old provider's user CA, trusted by every server's sshd
	SCIMOld     []string
	SCIMClient  string
	GraphOld    []string
	GraphClient string
	GraphBG     string
	GraphApp    string
	GraphSP     string
	// What the old provider left in Microsoft 365 besides its accounts: a
	// forwarding rule in anna's inbox, a consent its admin gave, its
	// admin excluded from the MFA policy, a partner setting trusting its
	// tenant.
	GraphRule, GraphConsent, GraphPolicy string
	// ...and its admin among the HR app's owners, a federated credential
	// for its pipeline on that app, a secret on the mail reader's service
	// principal, a PIM eligibility for Global Administrator, its office
	// excluded from the MFA policy.
	GraphFIC, GraphSPSecret, GraphOffice, GraphReader string
}

// Start starts every part of the lab in dir at once and seeds it;
// progress gets a line as each part is up.
func Start(dir string, progress func(string)) (*Lab, error) {
	l := &Lab{Dir: dir}
	for _, d := range []string{"ssh", "ad", "scim", "rmm", "graph", "restic"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o700); err != nil {
			return nil, err
		}
	}
	parts := []struct {
		name  string
		start func() error
	}{
		{"3 Linux servers (sshd)", l.startSSH},
		{"Active Directory (Samba DC)", l.startAD},
		{"PSA (SCIM server SCIMMY)", l.startSCIM},
		{"RMM (REST API)", l.startRMM},
		{"Microsoft 365 (Graph test server)", l.startGraph},
		{"backups (restic repository)", l.startRestic},
	}
	errs := make([]error, len(parts))
	var wg sync.WaitGroup
	for i, p := range parts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := p.start(); err != nil {
				errs[i] = fmt.Errorf("%s: %w", p.name, err)
				return
			}
			if progress != nil {
				progress("  up: " + p.name)
			}
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		l.Stop()
		return nil, err
	}
	return l, nil
}

// Stop stops every part that runs.
func (l *Lab) Stop() {
	if l.SSH != nil {
		l.SSH.Stop()
	}
	if l.DC != nil {
		l.DC.Stop()
	}
	if l.SCIM != nil {
		l.SCIM.Stop()
	}
	if l.RMM != nil {
		l.RMM.Close()
	}
	if l.Graph != nil {
		l.Graph.Close()
	}
}

func (l *Lab) startSSH() error {
	var err error
	l.SSH, err = sshlab.New(filepath.Join(l.Dir, "ssh"), sshlab.Options{Hosts: 3})
	if err != nil {
		return err
	}
	// What the old provider left on every server besides its key: a job
	// that phones its RMM home, a timer that starts its agent, a line in
	// rc.local that starts it at boot, and its user CA, trusted by sshd
	// (any certificate it signs logs in as root).
	_, caKey, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return err
	}
	if l.oldCA, err = ssh.NewSignerFromKey(caKey); err != nil {
		return err
	}
	caLine := strings.TrimSpace(string(ssh.MarshalAuthorizedKey(l.oldCA.PublicKey()))) + " user-ca@" + OldDomain
	for _, h := range l.SSH.Hosts {
		if _, err := h.Run(oldCronJob + "\n" + oldTimer + "\n" + oldRCLocal + "\nprintf '%s\\n' '" + caLine + "' > /etc/ssh/trusted_user_ca_keys"); err != nil {
			return err
		}
	}
	return nil
}

// oldTimer plants the old provider's agent as a systemd timer and service.
const oldTimer = `mkdir -p /etc/systemd/system
printf '[Unit]\nDescription=oldmsp agent check-in\n[Timer]\nOnBootSec=5min\nOnUnitActiveSec=1h\n[Install]\nWantedBy=timers.target\n' > /etc/systemd/system/oldmsp-agent.timer
printf '[Service]\nExecStart=/opt/oldmsp/agent --checkin\n' > /etc/systemd/system/oldmsp-agent.service`

// oldRCLocal starts the old provider's agent at boot, next to the
// client's own start-up script.
const oldRCLocal = "printf '%s\n' '#!/bin/sh -e' '/opt/oldmsp/agent --daemon &' '/usr/local/bin/client-startup' 'exit 0' > /etc/rc.local && chmod 755 /etc/rc.local"

// oldCronJob plants /etc/cron.d/monitoring: the old provider's job next
// to one of the client's.
const oldCronJob = "printf '%s\n' '*/5 * * * * root curl -fsS https://rmm." + OldDomain + "/checkin >/dev/null 2>&1' '0 2 * * * root /usr/local/bin/client-backup' > /etc/cron.d/monitoring"

func (l *Lab) startAD() error {
	dc, err := adlab.New(filepath.Join(l.Dir, "ad"))
	l.DC = dc
	if err != nil {
		return err
	}
	c, err := dc.AdminConn()
	if err != nil {
		return err
	}
	defer c.Close()
	add := func(sam, pw, upn string, admin bool) (string, error) {
		dn, err := adlab.AddUser(c, sam, pw, map[string][]string{"userPrincipalName": {upn}})
		if err == nil && admin {
			err = adlab.AddMember(c, "CN=Domain Admins,"+adlab.UsersDN, dn)
		}
		return dn, err
	}
	// The old provider's admin and technician, the service account whose
	// password it chose, the client's user, and the new provider's admin
	// that switchover binds as.
	for _, u := range []struct {
		sam, pw, upn string
		admin        bool
		dst          *string
	}{
		{"oldmsp-admin", OldADPassword, "oldmsp-admin@" + OldDomain, true, nil},
		{"oldmsp-tech", OldADPassword, "tech@" + OldDomain, false, nil},
		{"svc-backup", OldSvcPassword, "svc-backup@acme.example", false, &l.ADService},
		{"anna", "Anna-Pw-1!", "anna@acme.example", false, nil},
		{"newmsp-admin", newBindPassword, "newmsp-admin@acme.example", true, &l.ADNewAdmin},
	} {
		dn, err := add(u.sam, u.pw, u.upn, u.admin)
		if err != nil {
			return err
		}
		if u.dst != nil {
			*u.dst = dn
		} else if strings.HasPrefix(u.sam, "oldmsp") {
			l.ADOld = append(l.ADOld, dn)
		}
	}
	return l.plantADBackDoors(c)
}

// plantADBackDoors leaves what an outgoing admin leaves to come back
// without an account: DCSync rights for its technician on the domain, and
// shadow credentials on Administrator (they outlive its password reset).
func (l *Lab) plantADBackDoors(c *ldap.Conn) error {
	sid, err := adlab.SID(c, l.ADOld[1])
	if err != nil {
		return err
	}
	l.ADDCSync = "(OA;;CR;1131f6ad-9c07-11d1-f79f-00c04fc2dcd2;;" + sid + ")"
	if err := l.DC.AddACE(adlab.BaseDN, l.ADDCSync); err != nil {
		return err
	}
	l.ADShadow = adlab.KeyCredential(adlab.AdminDN, [16]byte{0x0d, 0xe5, 0x01, 0xd5}, time.Now().Add(-72*time.Hour))
	m := ldap.NewModifyRequest(adlab.AdminDN, nil)
	m.Add("msDS-KeyCredentialLink", []string{l.ADShadow})
	if err := c.Modify(m); err != nil {
		return err
	}
	// And a logon script of the Default Domain Policy that installs its
	// remote-access agent (a person removes it: GPOs are not edited).
	script := filepath.Join(l.DC.Sysvol(), "lab.test", "Policies", "{31B2F340-016D-11D2-945F-00C04FB984F9}", "User", "Scripts", "Logon", "oldmsp-agent.cmd")
	if err := os.MkdirAll(filepath.Dir(script), 0o755); err != nil {
		return err
	}
	return os.WriteFile(script, []byte("@echo off\r\n\\\\files."+OldDomain+"\\rmm\\agent.exe /install /quiet\r\n"), 0o644)
}

func (l *Lab) startSCIM() error {
	s, err := scimlab.New(filepath.Join(l.Dir, "scim"), scimlab.Options{ETags: true})
	l.SCIM = s
	if err != nil {
		return err
	}
	for _, u := range []string{"tech1@" + OldDomain, "tech2@" + OldDomain, "anna@acme.example"} {
		id, err := s.AddUser(u)
		if err != nil {
			return err
		}
		if strings.HasSuffix(u, OldDomain) {
			l.SCIMOld = append(l.SCIMOld, id)
		} else {
			l.SCIMClient = id
		}
	}
	return nil
}

func (l *Lab) startRMM() error {
	var err error
	l.RMM, err = rmmlab.New(filepath.Join(l.Dir, "rmm"), rmmAdminToken, OldRMMToken, "backup-agent")
	return err
}

func (l *Lab) startGraph() error {
	g, err := graphtest.New(filepath.Join(l.Dir, "graph"))
	if err != nil {
		return err
	}
	l.Graph = g
	admin := g.AddUser("admin@"+OldDomain, "Old-M365-Admin-Pw-1!", false)
	guest := g.AddUser("helpdesk@"+OldDomain, "", true)
	l.GraphOld = []string{admin, guest}
	l.GraphClient = g.AddUser("anna@acme.example", "x", false)
	l.GraphBG = g.AddUser("breakglass@acme.example", OldBreakGlass, false)
	g.AddAuthMethod(admin, "phoneAuthenticationMethod", map[string]any{"phoneNumber": "+49 170 0000000", "phoneType": "mobile"})
	g.AddRole("Global Administrator", "62e90394-69f5-4237-9190-012177145e10", admin, l.GraphClient)
	l.GraphSP = g.AddServicePrincipal("OldMSP RMM", OldTenant, "Directory.ReadWrite.All", 1)
	l.GraphApp = g.AddApplication("Acme HR app", []string{"OldMSP sync secret"}, nil)
	g.VerifiedDomains = []string{"acme.example"}
	l.GraphRule = g.AddMessageRule(l.GraphClient, graphtest.ForwardRule("Archive", "archive@"+OldDomain, false))
	g.AddMessageRule(l.GraphClient, graphtest.ForwardRule("Team", "team@acme.example", false)) // the client's own
	reader := g.AddServicePrincipal("Mail Reader", graphtest.Tenant, "", 0)
	l.GraphConsent = g.AddUserConsent(admin, reader, "Mail.Read offline_access")
	l.GraphPolicy = g.AddConditionalAccessPolicyFor("Require MFA for everyone", map[string]any{"includeUsers": []any{"All"}, "excludeUsers": []any{admin, l.GraphBG}})
	g.AddPartner(OldTenant, true)
	l.GraphReader = reader
	g.AddOwner(l.GraphApp, admin)
	l.GraphFIC = g.AddFederatedCredential(l.GraphApp, "deploy", "https://token.actions.githubusercontent.com", "repo:oldmsp/acme-hr:ref:refs/heads/main")
	l.GraphSPSecret = g.AddSPPassword(reader, "oldmsp automation")
	g.AddRoleSchedule(admin, "62e90394-69f5-4237-9190-012177145e10", true)
	g.AddAuthMethod(admin, "temporaryAccessPassAuthenticationMethod", map[string]any{"lifetimeInMinutes": float64(480), "isUsableOnce": false})
	l.GraphOffice = g.AddNamedLocation("OldMSP office", "203.0.113.0/24", true)
	g.SetPolicyLocations(l.GraphPolicy, l.GraphOffice)
	return nil
}

func (l *Lab) startRestic() error {
	src := filepath.Join(l.Dir, "restic", "office")
	if err := os.MkdirAll(src, 0o700); err != nil {
		return err
	}
	for i := 0; i < 30; i++ {
		content := strings.Repeat(fmt.Sprintf("invoice %d of Acme Bakery\n", i), 200+i)
		if err := os.WriteFile(filepath.Join(src, fmt.Sprintf("invoice-%02d.txt", i)), []byte(content), 0o600); err != nil {
			return err
		}
	}
	l.Repo = filepath.Join(l.Dir, "restic", "repo")
	l.NewRepo = filepath.Join(l.Dir, "restic", "new")
	if err := l.restic(OldRepoPassword, src, "init"); err != nil {
		return err
	}
	// The old provider keeps a copy of its key file.
	keys, _ := filepath.Glob(filepath.Join(l.Repo, "keys", "*"))
	if len(keys) != 1 {
		return fmt.Errorf("the lab repository has %d key files", len(keys))
	}
	var err error
	if l.OldKeyFile, err = os.ReadFile(keys[0]); err != nil {
		return err
	}
	l.oldKeyName = filepath.Base(keys[0])
	return l.restic(OldRepoPassword, src, "backup", "--host", backupHost, ".")
}

// restic runs restic on the lab repository with a password.
func (l *Lab) restic(pw, dir string, args ...string) error {
	return l.resticOn(l.Repo, pw, dir, args...)
}

// oldKeyOpens: the old provider's copy of its key file, put in repo, with
// its password opens it (the file is taken out again).
func (l *Lab) oldKeyOpens(repo string) bool {
	f := filepath.Join(repo, "keys", l.oldKeyName)
	if _, err := os.Stat(f); err == nil {
		return l.resticOn(repo, OldRepoPassword, l.Dir, "cat", "config") == nil // still there: the old key itself
	}
	if os.WriteFile(f, l.OldKeyFile, 0o600) != nil {
		return false
	}
	defer os.Remove(f)
	return l.resticOn(repo, OldRepoPassword, l.Dir, "cat", "config") == nil
}

func (l *Lab) resticOn(repo, pw, dir string, args ...string) error {
	cmd := exec.Command("restic", append([]string{"-q"}, args...)...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "RESTIC_REPOSITORY="+repo, "RESTIC_PASSWORD="+pw, "RESTIC_CACHE_DIR="+filepath.Join(l.Dir, "restic", "cache"))
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("restic %s: %v: %s", args[0], err, strings.TrimSpace(string(out)))
	}
	return nil
}

// Values are the runbook's variables for this lab: plain ones for a
// -var-file, sensitive ones as SWITCHOVER_VAR_* environment entries.
func (l *Lab) Values() (vars map[string]any, env []string, err error) {
	servers := map[string]any{}
	for _, h := range l.SSH.Hosts {
		servers[h.Name] = map[string]any{"address": "127.0.0.1", "port": h.Port}
	}
	// One CA file for both SaaS tools, as the runbook takes one.
	a, err := os.ReadFile(l.SCIM.CAFile)
	if err != nil {
		return nil, nil, err
	}
	b, err := os.ReadFile(l.RMM.CAFile)
	if err != nil {
		return nil, nil, err
	}
	saasCA := filepath.Join(l.Dir, "saas-ca.pem")
	if err := os.WriteFile(saasCA, append(a, b...), 0o600); err != nil {
		return nil, nil, err
	}
	vars = map[string]any{
		"old_provider_domain":            OldDomain,
		"old_provider_mentions":          []string{"oldmsp"},
		"old_provider_name":              "OldMSP",
		"old_provider_tenant_ids":        []string{OldTenant},
		"servers":                        servers,
		"ssh_private_key_file":           l.SSH.AdminKeyFile,
		"ssh_known_hosts":                l.SSH.KnownHosts,
		"ad_dc":                          l.DC.URL(),
		"ad_ca_file":                     l.DC.CAFile,
		"ad_bind_dn":                     l.ADNewAdmin,
		"ad_service_accounts":            []string{"svc-backup"},
		"ad_sysvol_path":                 l.DC.Sysvol(),
		"m365_tenant_id":                 graphtest.Tenant,
		"m365_client_id":                 graphtest.ClientID,
		"m365_known_accounts":            []string{"breakglass@acme.example"},
		"m365_authority_host":            l.Graph.URL + "/",
		"m365_unverified_authority_host": true, // the lab's own login host
		"m365_graph_endpoint":            l.Graph.URL,
		"m365_ca_file":                   l.Graph.CAFile,
		"psa_scim_url":                   l.SCIM.URL,
		"rmm_api_url":                    l.RMM.URL + "/api/v1",
		"rmm_old_token_name":             OldRMMToken,
		"saas_ca_file":                   saasCA,
		"backup_repository":              l.Repo,
		"backup_new_repository":          l.NewRepo,
		"backup_hosts":                   []string{backupHost},
	}
	env = []string{
		"SWITCHOVER_VAR_ad_bind_password=" + newBindPassword,
		"SWITCHOVER_VAR_m365_client_secret=" + graphtest.ClientSecret,
		"SWITCHOVER_VAR_psa_scim_token=" + scimlab.Token,
		"SWITCHOVER_VAR_rmm_admin_token=" + rmmAdminToken,
		"SWITCHOVER_VAR_backup_password=" + OldRepoPassword,
	}
	return vars, env, nil
}
