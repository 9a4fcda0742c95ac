package ssh

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"
	"golang.org/x/crypto/ssh/knownhosts"
)

// settings are the plugin block's connection settings.
type settings struct {
	host           string
	port           int
	user           string
	keyFile        string
	passphrase     string
	password       string
	useAgent       bool
	knownHosts     string
	tofu           bool
	sudo           bool
	sudoPassword   string
	jump           string
	connectTimeout time.Duration
	commandTimeout time.Duration
	keepalive      time.Duration
	sshdConfig     string
	maxSessions    int
}

// target is one host to connect to.
type target struct {
	host string
	port int
}

func (t target) String() string { return net.JoinHostPort(t.host, strconv.Itoa(t.port)) }

// pool keeps one connection per host, shared by that host's steps.
type pool struct {
	s     *settings
	mu    sync.Mutex
	conns map[string]*conn
	// tofuMu serialises writes to the known_hosts file.
	tofuMu  sync.Mutex
	trusted []string // host keys trusted on first use, reported once
}

type conn struct {
	p      *pool
	t      target
	once   sync.Once
	client *ssh.Client
	jump   *ssh.Client
	err    error
	sem    chan struct{}
	// sudo mode, decided once per connection: "" (root), "nopasswd", "password"
	sudoOnce sync.Once
	sudoMode string
	sudoErr  error
	mu       sync.Mutex
	rootPw   *bool // sshd lets root log in with a password (nil: not asked yet)
}

func newPool(s *settings) *pool { return &pool{s: s, conns: map[string]*conn{}} }

func (p *pool) get(ctx context.Context, t target) (*conn, error) {
	p.mu.Lock()
	c := p.conns[t.String()]
	if c == nil {
		c = &conn{p: p, t: t, sem: make(chan struct{}, p.s.maxSessions)}
		p.conns[t.String()] = c
	}
	p.mu.Unlock()
	c.once.Do(func() { c.client, c.jump, c.err = p.dial(ctx, t, nil) })
	if c.err != nil {
		// Do not keep a failed connection: the next step tries again.
		p.mu.Lock()
		if p.conns[t.String()] == c {
			delete(p.conns, t.String())
		}
		p.mu.Unlock()
	}
	return c, c.err
}

func (p *pool) closeAll() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for k, c := range p.conns {
		if c.client != nil {
			c.client.Close()
		}
		if c.jump != nil {
			c.jump.Close()
		}
		delete(p.conns, k)
	}
}

// authMethods are the ways the plugin logs in, from its settings.
func (p *pool) authMethods() ([]ssh.AuthMethod, error) {
	s := p.s
	var methods []ssh.AuthMethod
	if s.keyFile != "" {
		b, err := os.ReadFile(s.keyFile)
		if err != nil {
			return nil, fmt.Errorf("cannot read private_key_file: %v", unwrapPath(err))
		}
		var signer ssh.Signer
		if s.passphrase != "" {
			signer, err = ssh.ParsePrivateKeyWithPassphrase(b, []byte(s.passphrase))
		} else {
			signer, err = ssh.ParsePrivateKey(b)
		}
		var missing *ssh.PassphraseMissingError
		if errors.As(err, &missing) {
			return nil, fmt.Errorf("private_key_file %s is encrypted: set passphrase", s.keyFile)
		}
		if err != nil {
			return nil, fmt.Errorf("cannot use private_key_file %s: %v", s.keyFile, err)
		}
		methods = append(methods, ssh.PublicKeys(signer))
	}
	if s.useAgent {
		sock := os.Getenv("SSH_AUTH_SOCK")
		if sock == "" {
			return nil, errors.New("use_agent is set but SSH_AUTH_SOCK is not")
		}
		ac, err := net.Dial("unix", sock)
		if err != nil {
			return nil, fmt.Errorf("cannot reach the ssh-agent: %v", err)
		}
		methods = append(methods, ssh.PublicKeysCallback(agent.NewClient(ac).Signers))
	}
	if s.password != "" {
		methods = append(methods, ssh.Password(s.password))
	}
	if len(methods) == 0 {
		return nil, errors.New("no way to log in: set private_key_file, use_agent or password")
	}
	return methods, nil
}

func unwrapPath(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// hostKeyCallback checks host keys against known_hosts. An unknown key is
// refused unless trust_on_first_use is set, in which case it is appended to
// known_hosts and reported; a changed key is always refused.
func (p *pool) hostKeyCallback() (ssh.HostKeyCallback, error) {
	file := p.s.knownHosts
	if _, err := os.Stat(file); errors.Is(err, os.ErrNotExist) && p.s.tofu {
		if err := os.WriteFile(file, nil, 0o600); err != nil {
			return nil, err
		}
	}
	check, err := knownhosts.New(file)
	if err != nil {
		return nil, fmt.Errorf("cannot read known_hosts %s: %v", file, unwrapPath(err))
	}
	return func(hostname string, remote net.Addr, key ssh.PublicKey) error {
		err := check(hostname, remote, key)
		var ke *knownhosts.KeyError
		if !errors.As(err, &ke) {
			return err
		}
		fp := ssh.FingerprintSHA256(key)
		if len(ke.Want) > 0 {
			w := ke.Want[0]
			return &hostKeyError{fmt.Sprintf("the host key of %s CHANGED: %s:%d expects %s %s, the server presents %s %s; refusing to connect (a reinstalled server, or someone in the middle: check with the host's console)",
				hostname, w.Filename, w.Line, w.Key.Type(), ssh.FingerprintSHA256(w.Key), key.Type(), fp)}
		}
		if !p.s.tofu {
			return &hostKeyError{fmt.Sprintf("the host key of %s is unknown (%s %s): it is not in %s; add it after checking the fingerprint at the host's console (ssh-keyscan), or set trust_on_first_use = true",
				hostname, key.Type(), fp, file)}
		}
		line := knownhosts.Line([]string{knownhosts.Normalize(hostname)}, key)
		p.tofuMu.Lock()
		defer p.tofuMu.Unlock()
		f, err := os.OpenFile(file, os.O_APPEND|os.O_WRONLY, 0o600)
		if err != nil {
			return err
		}
		_, err = f.WriteString(line + "\n")
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return err
		}
		p.trusted = append(p.trusted, fmt.Sprintf("trusted the host key of %s on first use: %s %s (added to %s)", hostname, key.Type(), fp, file))
		// Later connections read the updated file.
		check, _ = knownhosts.New(file)
		return nil
	}, nil
}

type hostKeyError struct{ msg string }

func (e *hostKeyError) Error() string { return e.msg }

// takeTrusted returns (once) the host keys trusted on first use.
func (p *pool) takeTrusted() []string {
	p.tofuMu.Lock()
	defer p.tofuMu.Unlock()
	t := p.trusted
	p.trusted = nil
	return t
}

func (p *pool) clientConfig(user string, auth []ssh.AuthMethod) (*ssh.ClientConfig, error) {
	cb, err := p.hostKeyCallback()
	if err != nil {
		return nil, err
	}
	return &ssh.ClientConfig{User: user, Auth: auth, HostKeyCallback: cb, Timeout: p.s.connectTimeout}, nil
}

// dial connects to t (through the jump host when set), logging in as the
// plugin's user, or with auth when given.
func (p *pool) dial(ctx context.Context, t target, auth *loginAs) (*ssh.Client, *ssh.Client, error) {
	user := p.s.user
	var methods []ssh.AuthMethod
	var err error
	if auth != nil {
		user, methods = auth.user, auth.methods
	} else if methods, err = p.authMethods(); err != nil {
		return nil, nil, err
	}
	cfg, err := p.clientConfig(user, methods)
	if err != nil {
		return nil, nil, err
	}
	var jump *ssh.Client
	var raw net.Conn
	if p.s.jump != "" {
		jt, juser, err := parseJump(p.s.jump, p.s.user)
		if err != nil {
			return nil, nil, err
		}
		jm, err := p.authMethods()
		if err != nil {
			return nil, nil, err
		}
		jcfg, err := p.clientConfig(juser, jm)
		if err != nil {
			return nil, nil, err
		}
		jump, err = p.handshake(ctx, jt, jcfg, nil)
		if err != nil {
			return nil, nil, fmt.Errorf("jump host %s: %w", jt, err)
		}
		raw, err = jump.Dial("tcp", t.String())
		if err != nil {
			jump.Close()
			return nil, nil, fmt.Errorf("cannot reach %s through the jump host %s: %v", t, jt, err)
		}
	}
	client, err := p.handshake(ctx, t, cfg, raw)
	if err != nil {
		if jump != nil {
			jump.Close()
		}
		return nil, nil, err
	}
	if p.s.keepalive > 0 {
		go keepalive(client, p.s.keepalive)
	}
	return client, jump, nil
}

type loginAs struct {
	user    string
	methods []ssh.AuthMethod
}

func parseJump(s, defUser string) (target, string, error) {
	user := defUser
	if u, rest, ok := strings.Cut(s, "@"); ok {
		user, s = u, rest
	}
	host, portS, err := net.SplitHostPort(s)
	if err != nil {
		host, portS = s, "22"
	}
	port, err := strconv.Atoi(portS)
	if err != nil || host == "" {
		return target{}, "", fmt.Errorf("jump_host %q is not [user@]host[:port]", s)
	}
	return target{host, port}, user, nil
}

// handshake opens the TCP connection (unless raw is given) and logs in,
// turning failures into one sentence.
func (p *pool) handshake(ctx context.Context, t target, cfg *ssh.ClientConfig, raw net.Conn) (*ssh.Client, error) {
	if raw == nil {
		d := net.Dialer{Timeout: p.s.connectTimeout}
		var err error
		raw, err = d.DialContext(ctx, "tcp", t.String())
		if err != nil {
			return nil, reachError(t, err)
		}
	}
	deadline := time.Now().Add(p.s.connectTimeout)
	raw.SetDeadline(deadline)
	cc, chans, reqs, err := ssh.NewClientConn(raw, t.String(), cfg)
	if err != nil {
		raw.Close()
		var hk *hostKeyError
		switch {
		case errors.As(err, &hk):
			return nil, hk
		case strings.Contains(err.Error(), "unable to authenticate"):
			return nil, &loginError{fmt.Sprintf("login refused: %s@%s did not accept %s", cfg.User, t, methodNames(err.Error()))}
		case isTimeout(err):
			return nil, fmt.Errorf("%s accepted the connection but did not complete the SSH handshake within %s", t, p.s.connectTimeout)
		}
		return nil, fmt.Errorf("SSH handshake with %s failed: %v", t, err)
	}
	raw.SetDeadline(time.Time{})
	return ssh.NewClient(cc, chans, reqs), nil
}

type loginError struct{ msg string }

func (e *loginError) Error() string { return e.msg }

func methodNames(msg string) string {
	if i := strings.Index(msg, "attempted methods ["); i >= 0 {
		rest := msg[i+len("attempted methods ["):]
		if j := strings.Index(rest, "]"); j >= 0 {
			m := strings.Fields(strings.ReplaceAll(rest[:j], "none", ""))
			if len(m) > 0 {
				return "the " + strings.Join(m, " or ") + " credentials"
			}
		}
	}
	return "the credentials"
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func reachError(t target, err error) error {
	msg := err.Error()
	switch {
	case isTimeout(err):
		msg = "no answer (timeout)"
	case strings.Contains(msg, "connection refused"):
		msg = "connection refused (no SSH server on that port?)"
	case strings.Contains(msg, "no such host"):
		msg = "no such host name"
	case strings.Contains(msg, "network is unreachable"):
		msg = "network unreachable"
	}
	return fmt.Errorf("cannot reach %s: %s", t, msg)
}

func keepalive(c *ssh.Client, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for range t.C {
		done := make(chan error, 1)
		go func() {
			_, _, err := c.SendRequest("keepalive@openssh.com", true, nil)
			done <- err
		}()
		select {
		case err := <-done:
			if err != nil {
				c.Close()
				return
			}
		case <-time.After(3 * every):
			c.Close()
			return
		}
	}
}

// result of a remote command.
type result struct {
	stdout, stderr []byte
	exit           int
}

// run runs script with sh on the host, as root (via sudo when the login
// user is not root), feeding stdin. A non-zero exit is not an error.
//
// Input is never trusted to arrive whole: when there is any, the remote side
// reads exactly len(stdin) bytes into a private file and checks their length
// and SHA-256 before the script runs, so that a connection cut at any byte
// (a killed switchover, a dropped network) never runs the script on partial
// input: it exits with exitIncompleteInput and changes nothing.
//
// The sudo password never reaches the script's input: sudo is given a
// unique prompt, and the password is written only when that prompt shows on
// stderr; the script's input is written only after the script announced
// that it started (sudo did not ask, or was answered).
func (c *conn) run(ctx context.Context, script string, stdin []byte) (*result, error) {
	mode, err := c.sudo(ctx)
	if err != nil {
		return nil, err
	}
	if stdin != nil {
		script = verifiedInput(stdin) + script
	}
	var g *sudoGate
	cmd := "sh -c " + shellQuote(script)
	switch mode {
	case "nopasswd":
		cmd = "sudo -n -- " + cmd
	case "password":
		g = newSudoGate(c.p.s.sudoPassword)
		cmd = "sudo -S -p " + shellQuote(g.prompt) + " -- sh -c " + shellQuote("printf '%s\\n' "+shellQuote(g.start)+" >&2\n"+script)
	}
	return c.exec(ctx, cmd, stdin, g)
}

// runScript runs a script that may hold secrets (a user's command): the
// script travels with its input through run's verified input, so neither
// shows on a command line on the host (ps, sudo's log); only a fixed
// wrapper does. The script reads stdin as its input.
func (c *conn) runScript(ctx context.Context, script string, stdin []byte) (*result, error) {
	wrapper := fmt.Sprintf(`__sw_s=$(mktemp -d -p /dev/shm 2>/dev/null || mktemp -d) || exit %[2]d
head -c %[1]d /dev/stdin > "$__sw_s/s" && tail -c +%[3]d /dev/stdin > "$__sw_s/i" || { rm -rf "$__sw_s"; exit %[2]d; }
exec 3< "$__sw_s/s" 0< "$__sw_s/i"; rm -rf "$__sw_s"
exec sh /dev/fd/3
`, len(script), exitIncompleteInput, len(script)+1)
	return c.run(ctx, wrapper, append([]byte(script), stdin...))
}

// exitIncompleteInput is the exit status of a script whose input did not
// arrive whole.
const exitIncompleteInput = 97

// verifiedInput is the shell preamble that takes the command's input only
// when all of it arrived: exactly n bytes with the expected SHA-256, staged
// in a file only its owner can read (tmpfs where there is one), unlinked at once.
func verifiedInput(in []byte) string {
	// The hash covers the length: a cut input never matches. Three
	// processes (mktemp, head, sha256sum), the check in the shell.
	return fmt.Sprintf(`__sw_f=$(mktemp -p /dev/shm 2>/dev/null || mktemp) || exit %[3]d
head -c %[1]d > "$__sw_f" && echo '%[2]s  '"$__sw_f" | sha256sum -c --status - || { rm -f "$__sw_f"; echo "switchover: the input of this command arrived incomplete; nothing was changed" >&2; exit %[3]d; }
exec 0< "$__sw_f"; rm -f "$__sw_f"; unset __sw_f
`, len(in), sha(string(in)), exitIncompleteInput)
}

// sudoGate answers sudo's prompt with the password, and holds the command's
// input back until the command itself has started.
type sudoGate struct {
	password      string
	prompt, start string
	mu            sync.Mutex
	buf           []byte
	promptSeen    chan struct{}
	startSeen     chan struct{}
	prompts       int
	started       bool
}

func newSudoGate(password string) *sudoGate {
	n := nonce()
	return &sudoGate{password: password, prompt: "[switchover-sudo-" + n + "]", start: "[switchover-start-" + n + "]",
		promptSeen: make(chan struct{}, 4), startSeen: make(chan struct{})}
}

// Write takes the command's stderr and watches it for the prompt and the
// start mark.
func (g *sudoGate) Write(p []byte) (int, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.buf = append(g.buf, p...)
	if !g.started {
		if n := bytes.Count(g.buf, []byte(g.prompt)); n > g.prompts {
			for ; g.prompts < n; g.prompts++ {
				select {
				case g.promptSeen <- struct{}{}:
				default:
				}
			}
		}
		if bytes.Contains(g.buf, []byte(g.start+"\n")) {
			g.started = true
			close(g.startSeen)
		}
	}
	return len(p), nil
}

// stderr is what the command wrote, without the prompt and the start mark.
func (g *sudoGate) stderr() []byte {
	g.mu.Lock()
	defer g.mu.Unlock()
	b := bytes.ReplaceAll(g.buf, []byte(g.start+"\n"), nil)
	return bytes.ReplaceAll(b, []byte(g.prompt), nil)
}

// feed writes the password at the first prompt (and closes the input at a
// second one: the password was refused) and the input once started.
func (g *sudoGate) feed(w io.WriteCloser, stdin []byte, done <-chan struct{}) {
	defer w.Close()
	answered := false
	for {
		select {
		case <-g.promptSeen:
			if answered {
				return
			}
			answered = true
			if _, err := io.WriteString(w, g.password+"\n"); err != nil {
				return
			}
		case <-g.startSeen:
			w.Write(stdin)
			return
		case <-done:
			return
		}
	}
}

// newSession opens a session within connect_timeout. A connection that
// died between its last use and this one can leave x/crypto/ssh waiting
// forever for the server's answer (the channel is registered after the
// read loop dropped every channel, and the write still succeeds): the
// connection is closed then, and the error says so.
func (c *conn) newSession(ctx context.Context) (*ssh.Session, error) {
	type opened struct {
		s   *ssh.Session
		err error
	}
	ch := make(chan opened, 1)
	go func() {
		s, err := c.client.NewSession()
		ch <- opened{s, err}
	}()
	limit := c.p.s.connectTimeout
	if limit <= 0 {
		limit = 10 * time.Second
	}
	t := time.NewTimer(limit)
	defer t.Stop()
	abandon := func() {
		go func() {
			if o := <-ch; o.s != nil {
				o.s.Close()
			}
		}()
	}
	select {
	case o := <-ch:
		if o.err != nil {
			return nil, fmt.Errorf("%s: cannot open a session: %v", c.t, o.err)
		}
		return o.s, nil
	case <-ctx.Done():
		abandon()
		return nil, ctx.Err()
	case <-t.C:
		abandon()
		c.client.Close()
		return nil, fmt.Errorf("%s: the SSH server did not open a session within %s: the connection is closed", c.t, limit)
	}
}

// exec runs a command line as the login user; with a gate, its input goes
// through the gate.
func (c *conn) exec(ctx context.Context, cmd string, stdin []byte, g *sudoGate) (*result, error) {
	select {
	case c.sem <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	defer func() { <-c.sem }()
	sess, err := c.newSession(ctx)
	if err != nil {
		return nil, err
	}
	defer sess.Close()
	var out, errb bytes.Buffer
	sess.Stdout = &out
	finished := make(chan struct{})
	defer close(finished)
	if g != nil {
		sess.Stderr = g
		w, err := sess.StdinPipe()
		if err != nil {
			return nil, fmt.Errorf("%s: cannot open a session: %v", c.t, err)
		}
		go g.feed(w, stdin, finished)
	} else {
		sess.Stderr = &errb
		sess.Stdin = bytes.NewReader(stdin)
	}
	timeout := c.p.s.commandTimeout
	done := make(chan error, 1)
	go func() { done <- sess.Run(cmd) }()
	var timer <-chan time.Time
	if timeout > 0 {
		t := time.NewTimer(timeout)
		defer t.Stop()
		timer = t.C
	}
	select {
	case err = <-done:
	case <-ctx.Done():
		sess.Signal(ssh.SIGKILL)
		return nil, ctx.Err()
	case <-timer:
		sess.Signal(ssh.SIGKILL)
		return nil, fmt.Errorf("%s: a command did not finish within command_timeout (%s)", c.t, timeout)
	}
	res := &result{stdout: out.Bytes(), stderr: errb.Bytes()}
	if g != nil {
		res.stderr = g.stderr()
	}
	var ee *ssh.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		res.exit = ee.ExitStatus()
	default:
		return nil, fmt.Errorf("%s: command failed: %v", c.t, err)
	}
	return res, nil
}

// sudo decides once per connection how to become root.
func (c *conn) sudo(ctx context.Context) (string, error) {
	c.sudoOnce.Do(func() {
		if c.p.s.user == "root" {
			return
		}
		if !c.p.s.sudo {
			c.sudoErr = fmt.Errorf("%s: logged in as %s, not root, and sudo = false: this action needs root", c.t, c.p.s.user)
			return
		}
		if r, err := c.exec(ctx, "sudo -n -- true", nil, nil); err != nil {
			c.sudoErr = err
			return
		} else if r.exit == 0 {
			c.sudoMode = "nopasswd"
			return
		}
		if c.p.s.sudoPassword == "" {
			c.sudoErr = fmt.Errorf("%s: sudo asks %s for a password: set sudo_password", c.t, c.p.s.user)
			return
		}
		// Check the password alone first, so that a wrong one can never
		// make sudo read a command's input as further password attempts.
		r, err := c.exec(ctx, "sudo -S -p '' -k -- true", []byte(c.p.s.sudoPassword+"\n"), nil)
		if err != nil {
			c.sudoErr = err
			return
		}
		if r.exit != 0 {
			c.sudoErr = fmt.Errorf("%s: sudo refused the password of %s (sudo_password is wrong, or %s may not use sudo)", c.t, c.p.s.user, c.p.s.user)
			return
		}
		c.sudoMode = "password"
	})
	return c.sudoMode, c.sudoErr
}

func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// runOK runs a script that must exit 0, returning its stdout.
func (c *conn) runOK(ctx context.Context, what, script string, stdin []byte) (string, error) {
	r, err := c.run(ctx, script, stdin)
	if err != nil {
		return "", err
	}
	if r.exit != 0 {
		msg := strings.TrimSpace(string(r.stderr))
		if msg == "" {
			msg = fmt.Sprintf("exit status %d", r.exit)
		}
		return "", fmt.Errorf("%s: %s failed: %s", c.t, what, firstLine(msg))
	}
	return string(r.stdout), nil
}

func firstLine(s string) string {
	f, _, _ := strings.Cut(strings.TrimSpace(s), "\n")
	return f
}
