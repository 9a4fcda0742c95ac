// Package ssh is the built-in `ssh` plugin: it takes the old
// provider's access away from Linux servers, NAS boxes and appliances over
// SSH, and rotates the credentials it knew. Host keys are verified against
// known_hosts; trust on first use is an explicit option.
package ssh

import (
	"context"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/zclconf/go-cty/cty"

	"github.com/switchover/switchover/plugins/sdk"
)

type plugin struct {
	s    *settings
	pool *pool
}

// New returns the ssh plugin.
func New(version string) *sdk.Plugin {
	p := &plugin{}
	return &sdk.Plugin{
		Name:        "ssh",
		Version:     version,
		Description: "Linux hosts over SSH: authorized keys, passwords, accounts, sudo rights, services, commands, exports, inventory.",
		Config: []sdk.Attribute{
			{Name: "host", Type: cty.String, Description: "Default host for steps that set none."},
			{Name: "port", Type: cty.Number, Description: "SSH port (default 22)."},
			{Name: "user", Type: cty.String, Description: "Login user (default root)."},
			{Name: "private_key_file", Type: cty.String, Description: "Private key to log in with (relative to the runbook directory)."},
			{Name: "passphrase", Type: cty.String, Sensitive: true, Description: "Passphrase of private_key_file."},
			{Name: "use_agent", Type: cty.Bool, Description: "Log in with the keys of the ssh-agent at SSH_AUTH_SOCK."},
			{Name: "password", Type: cty.String, Sensitive: true, Description: "Login password."},
			{Name: "known_hosts", Type: cty.String, Required: true, Description: "known_hosts file the host keys are checked against. An unknown or changed key is refused."},
			{Name: "trust_on_first_use", Type: cty.Bool, Description: "Accept an unknown host key once, add it to known_hosts and record it in the audit trail (a changed key is still refused)."},
			{Name: "sudo", Type: cty.Bool, Description: "Become root with sudo when user is not root (default true)."},
			{Name: "sudo_password", Type: cty.String, Sensitive: true, Description: "Password sudo asks for, if it does."},
			{Name: "jump_host", Type: cty.String, Description: "[user@]host[:port] to connect through (same credentials and known_hosts)."},
			{Name: "connect_timeout", Type: sdk.DurationType, Description: "Timeout of connecting and logging in (default 10s)."},
			{Name: "command_timeout", Type: sdk.DurationType, Description: "Timeout of one remote command (default 5m)."},
			{Name: "keepalive", Type: sdk.DurationType, Description: "Interval of SSH keepalives (default 15s; 0 turns them off)."},
			{Name: "sshd_config", Type: cty.String, Description: "The hosts' sshd configuration, read to know whether password logins are allowed (default /etc/ssh/sshd_config)."},
			{Name: "max_sessions", Type: cty.Number, Description: "Commands at once over one host's connection (default 8; sshd allows 10)."},
		},
		ConfigureFunc: p.configure,
		TargetFunc: func(_ string, a sdk.Values) string {
			if p.s == nil {
				return ""
			}
			if t, err := p.target(a); err == nil {
				return "ssh " + t.String()
			}
			return ""
		},
		Actions: []*sdk.Action{
			p.authorizedKeys(), p.rotatePassword(), p.lockAccount(), p.removeSudo(), p.accessWindow(), p.findPersistence(), p.removePersistence(),
			p.service(), p.command(), p.export(), p.inventory(),
		},
	}
}

func (p *plugin) configure(ctx context.Context, cfg sdk.Values) sdk.Diagnostics {
	s := &settings{
		host: cfg.String("host"), port: int(cfg.Int("port")), user: cfg.String("user"),
		keyFile: cfg.String("private_key_file"), passphrase: cfg.String("passphrase"), password: cfg.String("password"),
		useAgent: cfg.Bool("use_agent"), knownHosts: cfg.String("known_hosts"), tofu: cfg.Bool("trust_on_first_use"),
		sudo: true, sudoPassword: cfg.String("sudo_password"), jump: cfg.String("jump_host"),
		sshdConfig: cfg.String("sshd_config"), maxSessions: int(cfg.Int("max_sessions")),
	}
	if cfg.Has("sudo") {
		s.sudo = cfg.Bool("sudo")
	}
	if s.port == 0 {
		s.port = 22
	}
	if s.user == "" {
		s.user = "root"
	}
	if s.sshdConfig == "" {
		s.sshdConfig = "/etc/ssh/sshd_config"
	}
	if s.maxSessions <= 0 {
		s.maxSessions = 8
	}
	var diags sdk.Diagnostics
	var d sdk.Diagnostics
	s.connectTimeout, d = cfg.Duration("connect_timeout", 10*time.Second)
	diags = append(diags, d...)
	s.commandTimeout, d = cfg.Duration("command_timeout", 5*time.Minute)
	diags = append(diags, d...)
	s.keepalive, d = cfg.Duration("keepalive", 15*time.Second)
	diags = append(diags, d...)
	if s.keyFile == "" && !s.useAgent && s.password == "" {
		diags = append(diags, sdk.Diagnostic{Severity: sdk.Error, Summary: "No way to log in", Detail: "Set private_key_file, use_agent = true, or password."})
	}
	if p.pool != nil {
		p.pool.closeAll()
	}
	p.s, p.pool = s, newPool(s)
	return diags
}

// hostAttrs are the attributes every action has.
var hostAttrs = []sdk.Attribute{
	{Name: "host", Type: cty.String, Description: "The host (default: the plugin's host)."},
	{Name: "port", Type: cty.Number, Description: "Its SSH port (default: the plugin's port)."},
}

func withHost(attrs ...sdk.Attribute) []sdk.Attribute {
	return append(append([]sdk.Attribute{}, hostAttrs...), attrs...)
}

func (p *plugin) target(a sdk.Values) (target, error) {
	t := target{host: a.String("host"), port: int(a.Int("port"))}
	if t.host == "" {
		t.host = p.s.host
	}
	if t.port == 0 {
		t.port = p.s.port
	}
	if t.host == "" {
		return t, fmt.Errorf("no host: set host on the step or in the plugin block")
	}
	return t, nil
}

type planFunc func(ctx context.Context, c *conn, a sdk.Values, checkpoint []byte) *sdk.PlanResponse
type applyFunc func(ctx context.Context, c *conn, a sdk.Values, ev sdk.Events, req *sdk.ApplyRequest) *sdk.ApplyResponse

// action wraps an action's plan and apply with the connection to its host
// and reports host keys trusted on first use.
func (p *plugin) action(name, desc string, attrs []sdk.Attribute, outs []sdk.Output, plan planFunc, apply applyFunc) *sdk.Action {
	return &sdk.Action{
		Name: name, Description: desc, Attributes: withHost(attrs...), Outputs: outs,
		PlanFunc: func(ctx context.Context, req *sdk.PlanRequest) *sdk.PlanResponse {
			if !req.Attributes.AllKnown() {
				if r := unknownPlan(req.Attributes); r != nil {
					return r
				}
			}
			if d := checkInputs(req.Attributes); d != nil {
				return &sdk.PlanResponse{Diagnostics: d}
			}
			c, err := p.connect(ctx, req.Attributes)
			if err != nil {
				return &sdk.PlanResponse{Diagnostics: sdk.Errorf("%v", err)}
			}
			r := plan(ctx, c, req.Attributes, req.Checkpoint)
			r.Diagnostics = append(r.Diagnostics, p.trustWarnings()...)
			return r
		},
		ApplyFunc: func(ctx context.Context, req *sdk.ApplyRequest, ev sdk.Events) *sdk.ApplyResponse {
			if d := checkInputs(req.Attributes); d != nil {
				return &sdk.ApplyResponse{Diagnostics: d}
			}
			c, err := p.connect(ctx, req.Attributes)
			if err != nil {
				return &sdk.ApplyResponse{Diagnostics: sdk.Errorf("%v", err)}
			}
			r := apply(ctx, c, req.Attributes, ev, req)
			r.Diagnostics = append(r.Diagnostics, p.trustWarnings()...)
			return r
		},
	}
}

// unknownPlan answers for a step whose host or other attributes are known
// only after earlier steps ran; nil when the host is known and the action
// can look.
func unknownPlan(a sdk.Values) *sdk.PlanResponse {
	if !a.IsKnown("host") || !a.IsKnown("port") {
		return sdk.Changef("the host is known only after earlier steps ran")
	}
	return nil
}

func (p *plugin) connect(ctx context.Context, a sdk.Values) (*conn, error) {
	t, err := p.target(a)
	if err != nil {
		return nil, err
	}
	return p.pool.get(ctx, t)
}

func (p *plugin) trustWarnings() sdk.Diagnostics {
	var d sdk.Diagnostics
	for _, w := range p.pool.takeTrusted() {
		d = append(d, sdk.Diagnostic{Severity: sdk.Warning, Summary: "Host key trusted on first use", Detail: w})
	}
	return d
}

var (
	// accountName: a POSIX user or group name (as useradd takes it); never
	// starting with "-", so it cannot reach a tool as an option.
	accountName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_.-]{0,31}[$]?$`)
	// unitName: a systemd unit or Debian package name.
	unitName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9:_.@+\-]{0,254}$`)
)

// checkInputs refuses names that a tool could read as options or that are
// not names at all, and passwords with control characters (a newline
// would start another chpasswd line).
func checkInputs(a sdk.Values) sdk.Diagnostics {
	str := func(attr string) string {
		if !a.Declares(attr) {
			return ""
		}
		return a.String(attr)
	}
	for _, attr := range []string{"account", "user"} {
		if v := str(attr); v != "" && !accountName.MatchString(v) {
			return sdk.AttributeErrorf(attr, "Invalid account name", "%q is not a user name (letters, digits, _ . -, not starting with - or a digit)", v)
		}
	}
	for _, attr := range []string{"users", "groups"} {
		if !a.Declares(attr) || !a.IsKnown(attr) {
			continue
		}
		for _, v := range a.Strings(attr) {
			if !accountName.MatchString(v) {
				return sdk.AttributeErrorf(attr, "Invalid name", "%q is not a user or group name (letters, digits, _ . -, not starting with - or a digit)", v)
			}
		}
	}
	for _, attr := range []string{"name", "remove_package"} {
		if v := str(attr); v != "" && !unitName.MatchString(v) {
			return sdk.AttributeErrorf(attr, "Invalid name", "%q is not a service or package name", v)
		}
	}
	if pw := str("password"); strings.IndexFunc(pw, func(r rune) bool { return r < 0x20 || r == 0x7f }) >= 0 {
		return sdk.AttributeErrorf("password", "Invalid password", "the password contains a control character (such as a newline), which chpasswd would misread")
	}
	return nil
}
