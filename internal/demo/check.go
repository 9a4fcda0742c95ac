package demo

import (
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/go-ldap/ldap/v3"
	"golang.org/x/crypto/ssh"

	"github.com/switchover/switchover/internal/testing/adlab"
	"github.com/switchover/switchover/internal/testing/sshlab"
)

// Finding is one credential of the old provider, tried.
type Finding struct {
	What  string // "ssh oldmsp key as root on host01"
	Works bool   // it still opens something: the switch failed there
}

// Check tries every credential the old provider had in the lab, the way it
// would: its SSH key and passwords on every server, its AD passwords (and
// the Administrator and service account passwords it knew), its Entra
// accounts, app secret, app and the break-glass password, its PSA accounts,
// its RMM token and the repository password. An error is a check that
// could not be made (never counted as "does not work").
func (l *Lab) Check() ([]Finding, error) {
	var out []Finding
	add := func(what string, works bool) { out = append(out, Finding{what, works}) }

	key, err := os.ReadFile(l.SSH.OldMSPKeyFile)
	if err != nil {
		return nil, err
	}
	signer, err := ssh.ParsePrivateKey(key)
	if err != nil {
		return nil, err
	}
	certAuth, err := l.oldCACert("root")
	if err != nil {
		return nil, err
	}
	for _, h := range l.SSH.Hosts {
		for _, try := range []struct {
			what, user string
			auth       ssh.AuthMethod
		}{
			{"its key as root", "root", ssh.PublicKeys(signer)},
			{"its key as oldmsp", "oldmsp", ssh.PublicKeys(signer)},
			{"root's old password", "root", ssh.Password(sshlab.RootPassword)},
			{"oldmsp's password", "oldmsp", ssh.Password(sshlab.OldMSPPassword)},
		} {
			ok, err := h.Login(try.user, try.auth)
			if err != nil {
				return nil, err
			}
			add(fmt.Sprintf("ssh %s on %s", try.what, h.Name), ok)
		}
		cron, err := h.Run("cat /etc/cron.d/monitoring; ls /etc/systemd/system")
		if err != nil {
			return nil, err
		}
		rc, err := h.Run("cat /etc/rc.local")
		if err != nil {
			return nil, err
		}
		add("its agent started from rc.local on "+h.Name, strings.Contains(rc, "/opt/oldmsp/agent"))
		add("its cron job phoning home on "+h.Name, strings.Contains(cron, OldDomain))
		add("its agent's timer on "+h.Name, strings.Contains(cron, "oldmsp-agent.timer"))
		ok, err := h.Login("root", certAuth)
		if err != nil {
			return nil, err
		}
		add("a certificate of its user CA as root on "+h.Name, ok)
	}

	for _, try := range []struct{ dn, pw, what string }{
		{l.ADOld[0], OldADPassword, "AD: its admin account"},
		{l.ADOld[1], OldADPassword, "AD: its technician's account"},
		{adlab.AdminDN, adlab.AdminPassword, "AD: the Administrator password it knew"},
		{l.ADService, OldSvcPassword, "AD: the service account password it chose"},
	} {
		err := l.DC.BindError(try.dn, try.pw)
		if err != nil && !ldap.IsErrorWithCode(err, ldap.LDAPResultInvalidCredentials) {
			return nil, fmt.Errorf("%s: %v", try.what, err)
		}
		add(try.what, err == nil)
	}
	dacl, err := l.DC.DACL(adlab.BaseDN)
	if err != nil {
		return nil, err
	}
	add("AD: its technician's DCSync right on the domain", strings.Contains(dacl, strings.Trim(l.ADDCSync, "()")))
	c, err := l.DC.Conn(l.ADNewAdmin, newBindPassword)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	shadow, err := adlab.Attr(c, adlab.AdminDN, "msDS-KeyCredentialLink")
	if err != nil {
		return nil, err
	}
	add("AD: its shadow credential on Administrator", slices.Contains(shadow, l.ADShadow))

	for _, id := range l.GraphOld {
		p := l.Graph.UserProps(id)
		add(fmt.Sprintf("Entra: %v can sign in", p["userPrincipalName"]), p["accountEnabled"] != false)
	}
	phone := false
	for _, m := range l.Graph.AuthMethods(l.GraphOld[0]) {
		phone = phone || m == "phoneAuthenticationMethod"
	}
	add("Entra: its phone as the admin's MFA method", phone)
	add("Entra: a Temporary Access Pass on its admin", slices.Contains(l.Graph.AuthMethods(l.GraphOld[0]), "temporaryAccessPassAuthenticationMethod"))
	add("Entra: its secret on the HR app", len(l.Graph.Credentials(l.GraphApp)) > 0)
	sp, _ := l.Graph.ServicePrincipalExists(l.GraphSP)
	add("Entra: its RMM app in the tenant", sp)
	add("Entra: anna's mail forwarded to it by an inbox rule", slices.Contains(l.Graph.MessageRules(l.GraphClient), l.GraphRule))
	add("Entra: its admin's consent for an app to read mail", l.Graph.GrantExists(l.GraphConsent))
	excluded, _ := l.Graph.PolicyUsers(l.GraphPolicy)["excludeUsers"].([]any)
	add("Entra: its admin excluded from the MFA policy", slices.Contains(excluded, any(l.GraphOld[0])))
	add("Entra: the cross-tenant setting trusting its tenant's MFA", slices.Contains(l.Graph.Partners(), OldTenant))
	add("Entra: its admin as an owner of the HR app", slices.Contains(l.Graph.Owners(l.GraphApp), l.GraphOld[0]))
	add("Entra: its pipeline's federated credential on the HR app", slices.Contains(l.Graph.FederatedCredentials(l.GraphApp), l.GraphFIC))
	add("Entra: its secret on the mail reader's service principal", slices.Contains(l.Graph.SPPasswords(l.GraphReader), l.GraphSPSecret))
	add("Entra: its admin eligible for Global Administrator (PIM)", len(l.Graph.RoleSchedules(l.GraphOld[0], true)) > 0)
	locs, _ := l.Graph.PolicyConditions(l.GraphPolicy)["locations"].(map[string]any)
	exLocs, _ := locs["excludeLocations"].([]any)
	add("Entra: its office network excluded from the MFA policy", slices.Contains(exLocs, any(l.GraphOffice)))
	add("Entra: the break-glass password it knew", l.Graph.Password(l.GraphBG) == OldBreakGlass)

	for _, id := range l.SCIMOld {
		u, err := l.SCIM.User(id)
		if err != nil {
			return nil, err
		}
		add(fmt.Sprintf("PSA: its account %s is active", id), u != nil && u["active"] != false)
	}
	add("RMM: its API token "+OldRMMToken, l.RMM.Active(OldRMMToken))
	add("restic: the repository password it knew", l.restic(OldRepoPassword, l.Dir, "cat", "config") == nil)
	// Where the backups are: the new repository once the switch made it
	// (the old one waits for a person to delete it, a step of the run).
	where := l.Repo
	if _, err := os.Stat(filepath.Join(l.NewRepo, "config")); err == nil {
		where = l.NewRepo
	}
	add("restic: its copy of the old key file, with its password, reads the backups", l.oldKeyOpens(where))
	return out, nil
}

// oldCACert is a login with a fresh key and a certificate for user that
// the old provider's user CA signs, as it could at any time.
func (l *Lab) oldCACert(user string) (ssh.AuthMethod, error) {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	signer, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		return nil, err
	}
	cert := &ssh.Certificate{Key: signer.PublicKey(), CertType: ssh.UserCert, KeyId: "oldmsp", ValidPrincipals: []string{user},
		ValidBefore: ssh.CertTimeInfinity, Permissions: ssh.Permissions{Extensions: map[string]string{"permit-pty": ""}}}
	if err := cert.SignCert(rand.Reader, l.oldCA); err != nil {
		return nil, err
	}
	cs, err := ssh.NewCertSigner(cert, signer)
	if err != nil {
		return nil, err
	}
	return ssh.PublicKeys(cs), nil
}
