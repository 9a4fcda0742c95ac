// Package pluginhost finds, starts, talks to and stops plugins.
//
// Built-in plugins are served by re-executing the switchover binary with
// ServeArg; external plugins are executables named switchover-plugin-NAME in
// a plugin directory. Both speak the same gRPC protocol through go-plugin.
package pluginhost

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"
	"github.com/zclconf/go-cty/cty"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/switchover/switchover/internal/engine"
	"github.com/switchover/switchover/internal/termtext"
	"github.com/switchover/switchover/plugins/sdk"
	"github.com/switchover/switchover/plugins/sdk/rpc"
)

// ServeArg is the first argument with which switchover re-executes itself to
// serve a built-in plugin.
const ServeArg = "__serve-plugin"

// ExternalPrefix is the file name prefix of external plugin executables.
const ExternalPrefix = "switchover-plugin-"

// Builtins are the plugins shipped inside the switchover binary. The
// catalogue lives in cmd/switchover, which registers them: this package
// (and the engine above it) depends on no plugin.
var Builtins = map[string]func() sdk.Provider{}

// RegisterBuiltin adds a built-in plugin (called by main, and by tests that
// re-execute themselves as plugins).
func RegisterBuiltin(name string, mk func() sdk.Provider) { Builtins[name] = mk }

// inProcess are the built-ins that run inside switchover.
var inProcess = map[string]bool{}

// RegisterInProcess adds a built-in plugin that runs inside switchover
// (see local): one that touches no system and holds no secret, as
// Terraform's own builtin provider does. Every plugin that works on a
// system runs in a process of its own: a crash, a hang or a compromised
// library there is not switchover's, and a target's credentials live
// only in the process that uses them. A plugin run in process sends no
// notices (sdk.Notify writes to a plugin process's stderr, which the host
// reads).
func RegisterInProcess(name string, mk func() sdk.Provider) {
	RegisterBuiltin(name, mk)
	inProcess[name] = true
}

// ServeBuiltinIfRequested serves a built-in plugin when args ask for one
// (args[1] == ServeArg) and reports whether it did. main calls it first.
func ServeBuiltinIfRequested(args []string) bool {
	if len(args) < 3 || args[1] != ServeArg {
		return false
	}
	mk, ok := Builtins[args[2]]
	if !ok {
		fmt.Fprintf(os.Stderr, "switchover: no built-in plugin %q\n", args[2])
		os.Exit(1)
	}
	rpc.Serve(mk())
	return true
}

// DefaultDir is the plugin directory under the user's config directory.
func DefaultDir() string {
	d, err := os.UserConfigDir()
	if err != nil {
		return ""
	}
	return filepath.Join(d, "switchover", "plugins")
}

// Options configure a Host.
type Options struct {
	// Dirs are searched in order for external plugins.
	Dirs []string
	// Exe is the binary re-executed for built-in plugins (default: this one).
	Exe string
	// WorkDir is the plugins' working directory: the runbook directory, so
	// that relative paths in a runbook (key files, known_hosts) mean the same
	// to a plugin as to its reader.
	WorkDir string
	// StartTimeout bounds the start and handshake of a plugin (default 15s,
	// or SWITCHOVER_PLUGIN_START_TIMEOUT).
	StartTimeout time.Duration
	// CallTimeout bounds Schema calls (default 2m).
	CallTimeout time.Duration
	// ConfigureTimeout bounds Configure calls, in which a plugin may wait
	// for a person to sign in (default 15m, the life of a device code).
	ConfigureTimeout time.Duration
	// Isolate runs every built-in in a process of its own, those
	// registered to run in process too (default: set when
	// SWITCHOVER_PLUGIN_PROCESSES is "all"): for measuring the transport,
	// and for a look at any plugin's process.
	Isolate bool
	// Notices receives the notices of plugins (sdk.Notify), a line each,
	// as "PLUGIN: message"; nil drops them.
	Notices io.Writer
	Logger  hclog.Logger
}

// Host starts plugins and keeps them running until Close.
type Host struct {
	opts Options
	mu   sync.Mutex
	live map[string]*Instance
	// schemas caches schemas by plugin name: every instance of a plugin
	// declares the same schema.
	schemas map[string]*sdk.Schema

	noticeMu   sync.Mutex // one notice line at a time
	socketOnce sync.Once
	socketDir  string
}

// New returns a Host.
func New(opts Options) *Host {
	if opts.Exe == "" {
		if exe, err := os.Executable(); err == nil {
			opts.Exe = exe
		}
	}
	if opts.StartTimeout == 0 {
		opts.StartTimeout = 15 * time.Second
		if d, err := time.ParseDuration(os.Getenv("SWITCHOVER_PLUGIN_START_TIMEOUT")); err == nil && d > 0 {
			opts.StartTimeout = d
		}
	}
	if os.Getenv("SWITCHOVER_PLUGIN_PROCESSES") == "all" {
		opts.Isolate = true
	}
	if opts.CallTimeout == 0 {
		opts.CallTimeout = 2 * time.Minute
	}
	if opts.ConfigureTimeout == 0 {
		opts.ConfigureTimeout = 15 * time.Minute
	}
	if opts.Notices == nil {
		opts.Notices = io.Discard
	}
	if opts.Logger == nil {
		level := hclog.LevelFromString(os.Getenv("SWITCHOVER_LOG"))
		if level == hclog.NoLevel {
			level = hclog.Off
		}
		opts.Logger = hclog.New(&hclog.LoggerOptions{Name: "plugin", Level: level, Output: os.Stderr})
	}
	return &Host{opts: opts, live: map[string]*Instance{}, schemas: map[string]*sdk.Schema{}}
}

// sockets returns this Host's plugin socket directory (made once), or "".
func (h *Host) sockets() string {
	h.socketOnce.Do(func() {
		if run := socketDir(); run != "" {
			// One directory per Host: Close removes only its own.
			h.socketDir, _ = os.MkdirTemp(run, "host-")
			// A unix socket path has at most 107 bytes; the plugin adds
			// "/plugin" and ten digits. Too deep a TMPDIR: go-plugin's default.
			if len(h.socketDir)+20 > 107 {
				os.RemoveAll(h.socketDir)
				h.socketDir = ""
			}
		}
	})
	return h.socketDir
}

// Found is a plugin that can be started.
type Found struct {
	Name    string
	Path    string // empty for built-ins
	Builtin bool
}

// Locate finds the named plugin: a built-in, else the first external
// executable switchover-plugin-NAME in the plugin directories.
func (h *Host) Locate(name string) (Found, error) {
	if _, ok := Builtins[name]; ok {
		return Found{Name: name, Builtin: true}, nil
	}
	for _, d := range h.opts.Dirs {
		if d == "" {
			continue
		}
		p := filepath.Join(d, ExternalPrefix+name)
		if st, err := os.Stat(p); err == nil && !st.IsDir() && st.Mode()&0o111 != 0 {
			return Found{Name: name, Path: p}, nil
		}
	}
	return Found{}, &NotFoundError{Name: name, Dirs: h.opts.Dirs}
}

// NotFoundError says a plugin is neither built in nor in a plugin directory.
type NotFoundError struct {
	Name string
	Dirs []string
}

// PluginNotFound marks the error for callers that only know an interface.
func (e *NotFoundError) PluginNotFound() bool { return true }

func (e *NotFoundError) Error() string {
	var dirs []string
	for _, d := range e.Dirs {
		if d != "" {
			dirs = append(dirs, d)
		}
	}
	where := "no plugin directory is set"
	if len(dirs) > 0 {
		where = "searched " + strings.Join(dirs, ", ")
	}
	return fmt.Sprintf("no plugin named %q: it is not built in (%s) and no executable %s%s was found (%s)",
		e.Name, strings.Join(BuiltinNames(), ", "), ExternalPrefix, e.Name, where)
}

// BuiltinNames lists the built-in plugins.
func BuiltinNames() []string {
	var out []string
	for n := range Builtins {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// List returns every plugin that can be started: built-ins, then external
// plugins from the directories (the first of a name wins).
func (h *Host) List() []Found {
	seen := map[string]bool{}
	var out []Found
	for _, n := range BuiltinNames() {
		seen[n] = true
		out = append(out, Found{Name: n, Builtin: true})
	}
	for _, d := range h.opts.Dirs {
		ents, err := os.ReadDir(d)
		if err != nil {
			continue
		}
		for _, e := range ents {
			n, ok := strings.CutPrefix(e.Name(), ExternalPrefix)
			if !ok || n == "" || seen[n] {
				continue
			}
			if st, err := os.Stat(filepath.Join(d, e.Name())); err != nil || st.IsDir() || st.Mode()&0o111 == 0 {
				continue
			}
			seen[n] = true
			out = append(out, Found{Name: n, Path: filepath.Join(d, e.Name())})
		}
	}
	return out
}

// Start starts the plugin name as the instance key (the plugin's name, or
// NAME.ALIAS for an aliased configuration); a running instance is reused.
func (h *Host) Start(name, key string) (*Instance, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if in, ok := h.live[key]; ok {
		return in, nil
	}
	f, err := h.Locate(name)
	if err != nil {
		return nil, err
	}
	if f.Builtin && inProcess[name] && !h.opts.Isolate {
		in := &Instance{Name: name, Key: key, Found: f, remote: local{Builtins[name]()}, stderr: newTail(20), host: h}
		h.live[key] = in
		return in, nil
	}
	var cmd *exec.Cmd
	if f.Builtin {
		if h.opts.Exe == "" {
			return nil, fmt.Errorf("plugin %q: cannot find the switchover executable to run built-in plugins", name)
		}
		cmd = exec.Command(h.opts.Exe, ServeArg, name)
	} else {
		cmd = exec.Command(f.Path)
	}
	// A plugin must not outlive a killed switchover: an orphan could finish
	// an Apply behind the back of the run that resumes.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	cmd.Dir = h.opts.WorkDir
	if dir := h.sockets(); dir != "" {
		// The plugin makes its socket there (go-plugin honours this only
		// for its own runners otherwise).
		cmd.Env = append(os.Environ(), plugin.EnvUnixSocketDir+"="+dir)
	}
	stderr := newTail(20)
	c := plugin.NewClient(&plugin.ClientConfig{
		HandshakeConfig:  rpc.Handshake,
		VersionedPlugins: map[int]plugin.PluginSet{sdk.ProtocolVersion: {rpc.PluginSetName: &rpc.GRPCPlugin{}}},
		Cmd:              cmd,
		AllowedProtocols: []plugin.Protocol{plugin.ProtocolGRPC},
		StartTimeout:     h.opts.StartTimeout,
		Logger:           h.opts.Logger.Named(key),
		Stderr:           stderr,
		SyncStderr:       &notices{name: name, w: h.opts.Notices, mu: &h.noticeMu},
	})
	in := &Instance{Name: name, Key: key, Found: f, client: c, stderr: stderr, host: h}
	conn, err := c.Client()
	if err != nil {
		c.Kill()
		return nil, in.startError(err)
	}
	raw, err := conn.Dispense(rpc.PluginSetName)
	if err != nil {
		c.Kill()
		return nil, in.startError(err)
	}
	in.remote = raw.(sdk.Provider)
	h.live[key] = in
	return in, nil
}

// Factory adapts a Host to what the engine needs: start a plugin by name.
type Factory struct{ H *Host }

// Start implements engine.Factory.
func (f Factory) Start(name, key string) (engine.Provider, error) {
	in, err := f.H.Start(name, key)
	if err != nil {
		return nil, err
	}
	return in, nil
}

// Close stops every plugin.
func (h *Host) Close() {
	h.mu.Lock()
	defer h.mu.Unlock()
	for k, in := range h.live {
		if in.client != nil {
			in.client.Kill()
		}
		delete(h.live, k)
	}
	if h.socketDir != "" {
		os.RemoveAll(h.socketDir)
	}
}

// Instance is one running plugin process.
type Instance struct {
	Name, Key string
	Found     Found
	client    *plugin.Client // nil: in process
	remote    sdk.Provider
	stderr    *tail
	host      *Host
}

func (in *Instance) what() string {
	if in.Found.Builtin {
		return fmt.Sprintf("plugin %q (built in)", in.Name)
	}
	return fmt.Sprintf("plugin %q (%s)", in.Name, in.Found.Path)
}

func (in *Instance) startError(err error) error {
	msg := err.Error()
	switch {
	case strings.Contains(strings.ToLower(msg), "incompatible api version"):
		_, detail, _ := strings.Cut(msg, ". ")
		return fmt.Errorf("%s speaks another plugin protocol version (%s); this switchover speaks version %d", in.what(), detail, sdk.ProtocolVersion)
	case strings.Contains(msg, "timeout while waiting for plugin to start"):
		return fmt.Errorf("%s did not start within %s (no handshake); it was stopped", in.what(), in.host.opts.StartTimeout)
	}
	if last := in.stderr.last(); last != "" {
		return fmt.Errorf("%s failed to start: %v (its last output: %s)", in.what(), err, last)
	}
	return fmt.Errorf("%s failed to start: %v", in.what(), err)
}

// CallKind says how a call to a plugin failed.
type CallKind int

const (
	// CallFailed: the plugin or the transport reported an error.
	CallFailed CallKind = iota
	// CallTimeout: the call's own deadline passed.
	CallTimeout
	// CallCanceled: the caller cancelled (errors.Is finds the cause, such
	// as the engine's step timeout).
	CallCanceled
	// CallCrashed: the plugin process exited.
	CallCrashed
)

// CallError is a failed call, with its kind kept across the gRPC boundary:
// a timeout, a cancellation, a crash and a failure are distinct values.
type CallError struct {
	Kind CallKind
	Msg  string
	Err  error // the cause: context.Cause, or the gRPC status error
}

func (e *CallError) Error() string { return e.Msg }
func (e *CallError) Unwrap() error { return e.Err }

// callError turns a transport error into one sentence that names the plugin.
func (in *Instance) callError(ctx context.Context, call string, err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(ctx.Err(), context.DeadlineExceeded) || deadlinePassed(ctx) {
		cause := context.Cause(ctx)
		if cause == nil {
			cause = context.DeadlineExceeded
		}
		return &CallError{Kind: CallTimeout, Msg: fmt.Sprintf("%s did not answer %s in time (timeout)", in.what(), call), Err: cause}
	}
	if errors.Is(ctx.Err(), context.Canceled) {
		return &CallError{Kind: CallCanceled, Msg: fmt.Sprintf("%s: %s cancelled", in.what(), call), Err: context.Cause(ctx)}
	}
	st, isStatus := status.FromError(err)
	if in.client != nil && (isStatus && st.Code() == codes.Unavailable || in.client.Exited()) {
		// The process may still be on its way out; give it a moment so that
		// its last words are in the tail.
		for i := 0; i < 20 && !in.client.Exited(); i++ {
			time.Sleep(10 * time.Millisecond)
		}
		if in.client.Exited() {
			detail := ""
			if last := in.stderr.crashLine(); last != "" {
				detail = ": " + last
			}
			return &CallError{Kind: CallCrashed, Msg: fmt.Sprintf("%s exited unexpectedly during %s%s", in.what(), call, detail), Err: err}
		}
	}
	if isStatus {
		return &CallError{Kind: CallFailed, Msg: fmt.Sprintf("%s: %s: %s", in.what(), call, st.Message()), Err: err}
	}
	return &CallError{Kind: CallFailed, Msg: fmt.Sprintf("%s: %s: %v", in.what(), call, err), Err: err}
}

// deadlinePassed reports whether ctx's deadline is behind us even though
// ctx.Err may not say so yet. gRPC sends the deadline to the plugin, whose
// server resets the stream when it passes; under load that reset can reach
// us before our own context's timer has run, and the call would look
// cancelled by the plugin. The plugin's deadline is never earlier than ours
// (it is our remaining time counted from when it received the call), so a
// passed deadline on our clock is the true cause.
func deadlinePassed(ctx context.Context) bool {
	d, ok := ctx.Deadline()
	return ok && !time.Now().Before(d)
}

// Schema returns the plugin's schema (cached per plugin name).
func (in *Instance) Schema(ctx context.Context) (*sdk.Schema, error) {
	in.host.mu.Lock()
	s, ok := in.host.schemas[in.Name]
	in.host.mu.Unlock()
	if ok {
		return s, nil
	}
	ctx, cancel := context.WithTimeout(ctx, in.host.opts.CallTimeout)
	defer cancel()
	s, err := in.remote.Schema(ctx)
	if err != nil {
		return nil, in.callError(ctx, "GetSchema", err)
	}
	in.host.mu.Lock()
	in.host.schemas[in.Name] = s
	in.host.mu.Unlock()
	return s, nil
}

// Configure sends the plugin block's settings.
func (in *Instance) Configure(ctx context.Context, cfg cty.Value) (sdk.Diagnostics, error) {
	ctx, cancel := context.WithTimeout(ctx, in.host.opts.ConfigureTimeout)
	defer cancel()
	d, err := in.remote.Configure(ctx, cfg)
	return d, in.callError(ctx, "Configure", err)
}

// Plan asks the plugin to observe one step instance.
func (in *Instance) Plan(ctx context.Context, req *sdk.PlanRequest) (*sdk.PlanResponse, error) {
	r, err := in.remote.Plan(ctx, req)
	return r, in.callError(ctx, "Plan of "+req.Address, err)
}

// Apply asks the plugin to apply one step instance.
func (in *Instance) Apply(ctx context.Context, req *sdk.ApplyRequest, ev sdk.Events) (*sdk.ApplyResponse, error) {
	r, err := in.remote.Apply(ctx, req, ev)
	return r, in.callError(ctx, "Apply of "+req.Address, err)
}

// notices passes on the lines of a plugin's os.Stderr that are notices
// (sdk.Notify) for the person running switchover, and drops the others.
type notices struct {
	name string
	w    io.Writer
	mu   *sync.Mutex
	part []byte
}

func (n *notices) Write(p []byte) (int, error) {
	n.part = append(n.part, p...)
	for {
		i := bytes.IndexByte(n.part, '\n')
		if i < 0 {
			if len(n.part) > 64<<10 {
				n.part = n.part[:0] // a line that never ends is no notice
			}
			return len(p), nil
		}
		line := string(n.part[:i])
		n.part = n.part[i+1:]
		if msg, ok := strings.CutPrefix(line, sdk.NoticePrefix); ok {
			n.mu.Lock()
			// The plugin's text, never its control characters, reaches the
			// terminal.
			fmt.Fprintf(n.w, "%s: %s\n", n.name, termtext.Safe(strings.TrimSpace(msg)))
			n.mu.Unlock()
		}
	}
}

// tail keeps the last lines a plugin wrote to stderr.
type tail struct {
	mu    sync.Mutex
	max   int
	lines []string
	part  []byte
}

func newTail(n int) *tail { return &tail{max: n} }

func (t *tail) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.part = append(t.part, p...)
	for {
		i := strings.IndexByte(string(t.part), '\n')
		if i < 0 {
			break
		}
		line := strings.TrimSpace(string(t.part[:i]))
		t.part = t.part[i+1:]
		if line == "" || isChatter(line) {
			continue
		}
		t.lines = append(t.lines, line)
		if len(t.lines) > t.max {
			t.lines = t.lines[1:]
		}
	}
	return len(p), nil
}

func (t *tail) last() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.lines) == 0 {
		return strings.TrimSpace(string(t.part))
	}
	return t.lines[len(t.lines)-1]
}

// crashLine is the most telling line of a crashed plugin's output: its panic
// or fatal error line, else its last line.
func (t *tail) crashLine() string {
	t.mu.Lock()
	for _, l := range t.lines {
		if strings.HasPrefix(l, "panic:") || strings.HasPrefix(l, "fatal error:") {
			t.mu.Unlock()
			return l
		}
	}
	t.mu.Unlock()
	return t.last()
}

// isChatter is a plugin's own debug or info log line: not worth quoting in an error.
func isChatter(line string) bool {
	for _, lvl := range []string{"trace", "debug", "info"} {
		if strings.HasPrefix(line, `{"@level":"`+lvl+`"`) {
			return true
		}
	}
	return false
}
