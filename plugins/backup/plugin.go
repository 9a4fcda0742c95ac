// Package backup is the built-in `backup` plugin: it proves that the
// backups the new provider takes over are fresh, consistent and
// restorable, and takes the repository keys away from the old provider.
// It drives the real restic binary (--json), so every restic backend works
// (a local path, sftp:, rest:, s3:, ...).
package backup

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/zclconf/go-cty/cty"

	"github.com/switchover/switchover/plugins/sdk"
)

type settings struct {
	// mu runs one restic command at a time: steps planned in parallel on
	// the same repository would otherwise meet each other's locks (check
	// and forget take an exclusive one).
	mu       sync.Mutex
	repo     string
	password string
	// rotated: the password restic_rotate_key sets (rotated_password, or
	// learned from a rotation in this run): used once password no longer
	// opens the repository.
	rotated    string
	configured string // password as configured
	env        map[string]string
	options    map[string]string
	restic     string
	cacheDir   string
	// tmpDir: this process's directory (0700) for restored samples; one
	// a killed run left is removed by the next.
	tmpDir  string
	timeout time.Duration
}

type plugin struct{ s *settings }

// New returns the backup plugin.
func New(version string) *sdk.Plugin {
	p := &plugin{}
	return &sdk.Plugin{
		Name:        "backup",
		Version:     version,
		Description: "restic repositories: verify that backups are fresh, consistent and restorable; rotate the repository keys the old provider knows.",
		Config: []sdk.Attribute{
			{Name: "repository", Type: cty.String, Required: true, Description: "The restic repository: a path, sftp:user@host:/path, rest:https://..., s3:..."},
			{Name: "password", Type: cty.String, Sensitive: true, Description: "The repository password: the one the old provider handed over, or for a repository restic_migrate made, the same secret(\"NAME\") as its new_password (null until the migration made it: the steps on it run after)."},
			{Name: "rotated_password", Type: cty.String, Sensitive: true, Description: "The password restic_rotate_key sets: the same secret(\"NAME\") as its new_password (in a plugin block, the stored value; null until the rotation made it). Once password no longer opens the repository, every command uses it, so the runbook works before, during and after its rotation."},
			{Name: "env", Type: cty.Map(cty.String), Sensitive: true, Description: "Environment for the backend (AWS_ACCESS_KEY_ID, B2_ACCOUNT_KEY, ...)."},
			{Name: "options", Type: cty.Map(cty.String), Description: "restic -o options, e.g. sftp.command."},
			{Name: "restic", Type: cty.String, Description: "The restic binary (default: restic on PATH)."},
			{Name: "cache_dir", Type: cty.String, Description: "restic's cache (default .switchover/cache/restic in the runbook directory; never ~/.cache)."},
			{Name: "timeout", Type: sdk.DurationType, Description: "Timeout of one restic command (default 1h)."},
		},
		ConfigureFunc: p.configure,
		TargetFunc: func(string, sdk.Values) string {
			if p.s == nil {
				return ""
			}
			return "restic repository " + displayRepo(p.s.repo)
		},
		Actions: []*sdk.Action{p.scrubbed(p.verify()), p.scrubbed(p.rotateKey()), p.scrubbed(p.snapshots()), p.scrubbed(p.migrate())},
	}
}

func (p *plugin) configure(ctx context.Context, cfg sdk.Values) sdk.Diagnostics {
	s := &settings{repo: cfg.String("repository"), password: cfg.String("password"), rotated: cfg.String("rotated_password"), configured: cfg.String("password"), restic: cfg.String("restic"), cacheDir: cfg.String("cache_dir")}
	if cfg.Has("env") {
		s.env = cfg.StringMap("env")
	}
	if cfg.Has("options") {
		s.options = cfg.StringMap("options")
	}
	var diags sdk.Diagnostics
	s.timeout, diags = cfg.Duration("timeout", time.Hour)
	if s.restic == "" {
		s.restic = "restic"
	}
	if _, err := exec.LookPath(s.restic); err != nil {
		return append(diags, sdk.AttributeErrorf("restic", "restic not found", "%s: %v (install restic, or set restic to its path)", s.restic, err)...)
	}
	if s.cacheDir == "" {
		s.cacheDir = filepath.Join(".switchover", "cache", "restic")
	}
	if abs, err := filepath.Abs(s.cacheDir); err == nil {
		s.cacheDir = abs
	}
	for k := range s.env {
		if !envName(k) {
			return append(diags, sdk.AttributeErrorf("env", "Invalid environment name", "%q is not an environment variable name", k)...)
		}
	}
	if err := s.makeTmpDir(); err != nil {
		return append(diags, sdk.Diagnostic{Severity: sdk.Error, Summary: "Cannot make the backup plugin's temporary directory", Detail: err.Error()})
	}
	p.s = s
	return diags
}

// makeTmpDir makes this process's temporary directory (0700, beside the
// cache), after removing the ones of processes that are gone (a kill left
// their restored samples there).
func (s *settings) makeTmpDir() error {
	root := filepath.Join(filepath.Dir(s.cacheDir), "restic-tmp")
	if err := os.MkdirAll(root, 0o700); err != nil {
		return err
	}
	if err := os.Chmod(root, 0o700); err != nil {
		return err
	}
	entries, _ := os.ReadDir(root)
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err == nil && pid != os.Getpid() && syscall.Kill(pid, 0) == syscall.ESRCH {
			os.RemoveAll(filepath.Join(root, e.Name()))
		}
	}
	s.tmpDir = filepath.Join(root, strconv.Itoa(os.Getpid()))
	return os.MkdirAll(s.tmpDir, 0o700)
}

func envName(k string) bool {
	// Repository and passwords go to restic on pipes, never by environment.
	if k == "" || strings.HasPrefix(k, "RESTIC_PASSWORD") || strings.HasPrefix(k, "RESTIC_REPOSITORY") || strings.HasPrefix(k, "RESTIC_FROM_") {
		return false
	}
	for i, r := range k {
		if !(r == '_' || r >= 'A' && r <= 'Z' || r >= 'a' && r <= 'z' || i > 0 && r >= '0' && r <= '9') {
			return false
		}
	}
	return true
}

// result is one restic command's outcome.
type result struct {
	stdout, stderr []byte
	exit           int
}

// call is one restic command: its arguments and the secrets it is handed,
// each on a pipe of its own (/dev/fd/N): never in a file, an argument or
// the environment. The repository location is one of them (a REST URL
// holds its password).
type call struct {
	password string
	args     []string
	// newPassword: key add's; from: copy's or init's source repository.
	newPassword          string
	fromRepo, fromPasswd string
	// exact: this password or nothing (no turn to the rotated one).
	exact bool
}

// run runs one restic command with password, one at a time. When the
// repository is locked, a lock left by a restic that was killed with
// switchover is removed (restic unlock removes only stale locks), and one
// another program holds (a nightly backup) is waited for: up to about a
// minute, with backoff. A password that no longer opens the repository is
// replaced by the rotated one, where the plugin has it.
func (s *settings) run(ctx context.Context, password string, args ...string) (*result, error) {
	return s.runCall(ctx, call{password: password, args: args})
}

func (s *settings) runCall(ctx context.Context, c call) (*result, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !c.exact && c.password == s.configured {
		// The plugin's password, which may have turned to the rotated
		// one since the caller read it.
		c.password = s.password
	}
	for attempt := 0; ; attempt++ {
		r, err := s.runOnce(ctx, c)
		if err == nil && r.exit != 0 && !c.exact && c.password == s.password && s.rotated != "" && s.rotated != s.password && wrongPassword(r) {
			// After the rotation: the configured password is the old one.
			s.password, c.password = s.rotated, s.rotated
			continue
		}
		if err != nil || r.exit == 0 || !bytes.Contains(r.stderr, []byte("repository is already locked")) || attempt == 6 {
			return r, err
		}
		if u, err := s.runOnce(ctx, call{password: c.password, args: []string{"unlock"}}); err != nil || u.exit != 0 {
			return r, nil
		}
		select {
		case <-time.After(time.Duration(500<<attempt) * time.Millisecond):
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

func wrongPassword(r *result) bool {
	return bytes.Contains(r.stderr, []byte("wrong password")) || bytes.Contains(r.stderr, []byte("no key found"))
}

func (s *settings) runOnce(ctx context.Context, c call) (*result, error) {
	if c.password == "" {
		return nil, fmt.Errorf("no password for %s (a secret(\"...\") that no step has made yet?)", s.repo)
	}
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	args := c.args
	full := []string{"--no-lock", "--json"}
	if len(args) > 0 && (args[0] == "key" || args[0] == "restore" || args[0] == "dump" || args[0] == "check" || args[0] == "forget" || args[0] == "unlock" || args[0] == "copy" || args[0] == "init") {
		full = []string{"--json"} // these take a lock, or need one
	}
	keys := make([]string, 0, len(s.options))
	for k := range s.options {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		full = append(full, "-o", k+"="+s.options[k])
	}
	full = append(full, args...)
	var secrets []string
	fd := func(flag, secret string) {
		if secret != "" {
			full = append(full, flag, fmt.Sprintf("/dev/fd/%d", 3+len(secrets)))
			secrets = append(secrets, secret)
		}
	}
	fd("--repository-file", s.repo)
	fd("--password-file", c.password)
	fd("--new-password-file", c.newPassword)
	fd("--from-repository-file", c.fromRepo)
	fd("--from-password-file", c.fromPasswd)
	cmd := exec.CommandContext(ctx, s.restic, full...)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME"), "RESTIC_CACHE_DIR=" + s.cacheDir, "RESTIC_PROGRESS_FPS=0.1", "TMPDIR=" + s.tmpDir}
	for k, v := range s.env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	for _, sec := range secrets {
		r, w, err := os.Pipe()
		if err != nil {
			return nil, err
		}
		_, err = w.WriteString(sec)
		w.Close()
		if err != nil {
			r.Close()
			return nil, err
		}
		defer r.Close()
		cmd.ExtraFiles = append(cmd.ExtraFiles, r)
	}
	// restic dies with the plugin (which dies with switchover): no restic
	// goes on writing, holding the lock, after a kill.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	r := &result{stdout: out.Bytes(), stderr: errb.Bytes()}
	var ee *exec.ExitError
	switch {
	case err == nil:
	case ctx.Err() != nil:
		return nil, fmt.Errorf("restic %s did not finish within %s", args[0], s.timeout)
	case errors.As(err, &ee):
		r.exit = ee.ExitCode()
	default:
		return nil, fmt.Errorf("running restic: %v", err)
	}
	return r, nil
}

// ok runs a command that must succeed, with the repository's password.
func (s *settings) ok(ctx context.Context, password, what string, args ...string) ([]byte, error) {
	r, err := s.run(ctx, password, args...)
	if err != nil {
		return nil, err
	}
	if r.exit != 0 {
		return nil, fmt.Errorf("%s: %s", what, resticError(r))
	}
	return r.stdout, nil
}

// retryNoise: restic's lines about a request it retries, which say
// nothing of why the command failed.
func retryNoise(l string) bool {
	low := strings.ToLower(l)
	return strings.Contains(low, "retrying after") || strings.Contains(low, "returned error, retrying") || strings.HasPrefix(low, "load(") && strings.Contains(low, "retry")
}

// resticError is what restic said went wrong, in a line or two: its reason
// lines (the last ones, where restic puts them), without its retry noise.
func resticError(r *result) string {
	var lines []string
	for _, l := range strings.Split(strings.TrimSpace(string(r.stderr)), "\n") {
		l = strings.TrimSpace(l)
		if l == "" || strings.HasPrefix(l, "{") || retryNoise(l) {
			continue
		}
		lines = append(lines, l)
	}
	if len(lines) == 0 {
		return fmt.Sprintf("restic exited with %d", r.exit)
	}
	if len(lines) > 4 {
		lines = append([]string{lines[0], fmt.Sprintf("(%d more lines)", len(lines)-4)}, lines[len(lines)-3:]...)
	}
	msg := strings.Join(lines, "; ")
	if wrongPassword(r) {
		return "the password does not open the repository"
	}
	return msg
}
