package pluginhost

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-plugin"
	"github.com/zclconf/go-cty/cty"

	"github.com/switchover/switchover/plugins/core"
	"github.com/switchover/switchover/plugins/sdk"
	"github.com/switchover/switchover/plugins/sdk/rpc"
)

// The test binary doubles as the plugins under test: re-executed with
// ServeArg it serves a built-in plugin, with testPluginArg a misbehaving one.
const testPluginArg = "__test-plugin"

func TestMain(m *testing.M) {
	RegisterInProcess("core", func() sdk.Provider { return core.New("test") })
	RegisterInProcess("fragile", fragile)
	if ServeBuiltinIfRequested(os.Args) {
		return
	}
	if len(os.Args) >= 3 && os.Args[1] == testPluginArg {
		serveTestPlugin(os.Args[2])
		return
	}
	os.Exit(m.Run())
}

func serveTestPlugin(mode string) {
	p := &sdk.Plugin{Name: "bad", Version: "0", Actions: []*sdk.Action{{
		Name: "act",
		PlanFunc: func(ctx context.Context, req *sdk.PlanRequest) *sdk.PlanResponse {
			switch mode {
			case "crash":
				// An unrecovered panic on another goroutine kills the process.
				done := make(chan struct{})
				go func() { panic("disk on fire") }()
				<-done
			case "hang-call":
				select {}
			}
			return sdk.NoChangef("fine")
		},
	}}}
	switch mode {
	case "hang":
		time.Sleep(time.Hour) // never completes the handshake
	case "v2":
		hs := rpc.Handshake
		hs.ProtocolVersion = 2
		plugin.Serve(&plugin.ServeConfig{
			HandshakeConfig:  hs,
			VersionedPlugins: map[int]plugin.PluginSet{2: {rpc.PluginSetName: &rpc.GRPCPlugin{Impl: p}}},
			GRPCServer:       plugin.DefaultGRPCServer,
		})
	case "garbage":
		os.Stdout.WriteString("hello, I am not a plugin\n")
	default:
		rpc.Serve(p)
	}
}

// testPluginDir writes a switchover-plugin-NAME script that runs this test
// binary as the misbehaving plugin of the given mode.
func testPluginDir(t *testing.T, name, mode string) string {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	script := "#!/bin/sh\nexec " + exe + " " + testPluginArg + " " + mode + "\n"
	if err := os.WriteFile(filepath.Join(dir, ExternalPrefix+name), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

type recordEvents struct {
	checkpoints [][]byte
	logs        []string
}

func (r *recordEvents) Checkpoint(ctx context.Context, data []byte) error {
	r.checkpoints = append(r.checkpoints, append([]byte(nil), data...))
	return nil
}
func (r *recordEvents) Log(msg string) { r.logs = append(r.logs, msg) }

// Core runs inside switchover, and in a process of its own when every
// plugin is isolated: the same calls give the same answers both ways.
func TestBuiltinCoreInProcessAndAcrossProcessBoundary(t *testing.T) {
	for _, isolate := range []bool{false, true} {
		t.Run(fmt.Sprintf("isolate=%v", isolate), func(t *testing.T) {
			h := New(Options{Isolate: isolate})
			defer h.Close()
			in, err := h.Start("core", "core")
			if err != nil {
				t.Fatal(err)
			}
			if (in.client != nil) != isolate {
				t.Fatalf("core has a process: %v; isolated: %v", in.client != nil, isolate)
			}
			coreAnswers(t, in)
		})
	}
}

func coreAnswers(t *testing.T, in *Instance) {
	s, err := in.Schema(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if s.Action("noop") == nil || s.Action("manual") == nil || s.Action("assert") == nil {
		t.Fatalf("core schema lacks actions: %+v", s.Actions)
	}
	attrs := cty.ObjectVal(map[string]cty.Value{"message": cty.StringVal("hi"), "secret": cty.NullVal(cty.String)})
	ctx := context.Background()
	plan, err := in.Plan(ctx, &sdk.PlanRequest{Action: "noop", Address: "step.x", Attributes: sdk.NewValues(attrs)})
	if err != nil || plan.Kind != sdk.Change {
		t.Fatalf("plan = %+v, %v; want a change", plan, err)
	}
	ev := &recordEvents{}
	res, err := in.Apply(ctx, &sdk.ApplyRequest{Action: "noop", Address: "step.x", Attributes: sdk.NewValues(attrs)}, ev)
	if err != nil {
		t.Fatal(err)
	}
	if got := res.Outputs["message"]; !got.RawEquals(cty.StringVal("hi")) {
		t.Fatalf("output message = %#v", got)
	}
	if len(ev.checkpoints) != 1 {
		t.Fatalf("checkpoints = %q, want one", ev.checkpoints)
	}
	// The plugin looked again at the end of its Apply, with the checkpoint
	// it had just recorded, and the result crossed the wire.
	if res.Verify == nil || res.Verify.Kind != sdk.NoChange || !res.Verify.Outputs["message"].RawEquals(cty.StringVal("hi")) {
		t.Fatalf("verify carried by Apply = %+v, want no change with the outputs", res.Verify)
	}
	// The checkpoint makes the next plan a no-op: that is what verify-after-apply checks.
	plan, err = in.Plan(ctx, &sdk.PlanRequest{Action: "noop", Address: "step.x", Attributes: sdk.NewValues(attrs), Checkpoint: ev.checkpoints[0]})
	if err != nil || plan.Kind != sdk.NoChange {
		t.Fatalf("plan after apply = %+v, %v; want no change", plan, err)
	}
	// Unknown values cross the wire.
	unknown := cty.ObjectVal(map[string]cty.Value{"condition": cty.UnknownVal(cty.Bool), "message": cty.StringVal("m")})
	plan, err = in.Plan(ctx, &sdk.PlanRequest{Action: "assert", Address: "step.a", Attributes: sdk.NewValues(unknown)})
	if err != nil || plan.Kind != sdk.Change || !strings.Contains(plan.Summary, "known only after") {
		t.Fatalf("assert with unknown condition = %+v, %v", plan, err)
	}
	// A false assertion is an error diagnostic that names the attribute.
	falseCond := cty.ObjectVal(map[string]cty.Value{"condition": cty.False, "message": cty.StringVal("no servers")})
	plan, err = in.Plan(ctx, &sdk.PlanRequest{Action: "assert", Address: "step.a", Attributes: sdk.NewValues(falseCond)})
	if err != nil || !plan.Diagnostics.HasErrors() || plan.Diagnostics[0].Attribute != "condition" || plan.Diagnostics[0].Detail != "no servers" {
		t.Fatalf("false assert = %+v, %v", plan, err)
	}
}

// TestExternalExamplePlugin builds examples/plugin-motd, which imports only
// plugins/sdk, and drives it as a separate binary found in a plugin directory.
func TestExternalExamplePlugin(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, ExternalPrefix+"motd")
	build := exec.Command("go", "build", "-o", bin, "github.com/switchover/switchover/examples/plugin-motd")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	deps, err := exec.Command("go", "list", "-deps", "github.com/switchover/switchover/examples/plugin-motd").Output()
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(deps), "switchover/internal/") {
		t.Fatalf("the example plugin depends on switchover's internal packages:\n%s", deps)
	}
	h := New(Options{Dirs: []string{t.TempDir(), dir}})
	defer h.Close()
	if f, err := h.Locate("motd"); err != nil || f.Path != bin {
		t.Fatalf("Locate = %+v, %v", f, err)
	}
	in, err := h.Start("motd", "motd")
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	root := t.TempDir()
	if d, err := in.Configure(ctx, cty.ObjectVal(map[string]cty.Value{"root": cty.StringVal(root)})); err != nil || d.HasErrors() {
		t.Fatalf("configure: %v %v", d, err)
	}
	attrs := sdk.NewValues(cty.ObjectVal(map[string]cty.Value{"file": cty.StringVal("motd"), "line": cty.StringVal("Managed by NewMSP")}))
	plan, err := in.Plan(ctx, &sdk.PlanRequest{Action: "line", Address: "step.m", Attributes: attrs})
	if err != nil || plan.Kind != sdk.Change {
		t.Fatalf("plan = %+v, %v", plan, err)
	}
	if _, err := os.Stat(filepath.Join(root, "motd")); !os.IsNotExist(err) {
		t.Fatal("plan changed the file system")
	}
	ev := &recordEvents{}
	if _, err := in.Apply(ctx, &sdk.ApplyRequest{Action: "line", Address: "step.m", Attributes: attrs}, ev); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(filepath.Join(root, "motd"))
	if string(b) != "Managed by NewMSP\n" {
		t.Fatalf("file = %q", b)
	}
	if len(ev.logs) != 1 {
		t.Fatalf("logs = %q", ev.logs)
	}
	plan, err = in.Plan(ctx, &sdk.PlanRequest{Action: "line", Address: "step.m", Attributes: attrs})
	if err != nil || plan.Kind != sdk.NoChange {
		t.Fatalf("second plan = %+v, %v; want no change", plan, err)
	}
	// A bad setting comes back as a diagnostic on the attribute.
	d, err := in.Configure(ctx, cty.ObjectVal(map[string]cty.Value{"root": cty.StringVal(filepath.Join(root, "nope"))}))
	if err != nil || !d.HasErrors() || d[0].Attribute != "root" {
		t.Fatalf("configure with a bad root = %v, %v", d, err)
	}
}

func TestPluginNotFound(t *testing.T) {
	dir := t.TempDir()
	h := New(Options{Dirs: []string{dir}})
	_, err := h.Start("ldap", "ldap")
	if err == nil || !strings.Contains(err.Error(), `no plugin named "ldap"`) || !strings.Contains(err.Error(), dir) {
		t.Fatalf("err = %v", err)
	}
}

func TestMisbehavingPlugins(t *testing.T) {
	cases := []struct {
		mode    string
		start   bool // fails at start rather than at the call
		wantErr []string
	}{
		{"crash", false, []string{`plugin "bad"`, "exited unexpectedly during Plan of step.x", "panic: disk on fire"}},
		{"hang", true, []string{`plugin "bad"`, "did not start within 2s"}},
		{"v2", true, []string{`plugin "bad"`, "another plugin protocol version", "Plugin version: 2", "speaks version 1"}},
		{"garbage", true, []string{`plugin "bad"`, "failed to start"}},
		{"hang-call", false, []string{`plugin "bad"`, "did not answer Plan of step.x in time"}},
	}
	for _, c := range cases {
		t.Run(c.mode, func(t *testing.T) {
			h := New(Options{Dirs: []string{testPluginDir(t, "bad", c.mode)}, StartTimeout: 2 * time.Second})
			defer h.Close()
			began := time.Now()
			in, err := h.Start("bad", "bad")
			if err == nil {
				if c.start {
					t.Fatal("start succeeded")
				}
				ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
				defer cancel()
				_, err = in.Plan(ctx, &sdk.PlanRequest{Action: "act", Address: "step.x", Attributes: sdk.NewValues(cty.EmptyObjectVal)})
			} else if !c.start {
				t.Fatalf("start failed: %v", err)
			}
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range c.wantErr {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
			if strings.Contains(err.Error(), "goroutine ") {
				t.Errorf("error carries a stack trace: %q", err)
			}
			if d := time.Since(began); d > 10*time.Second {
				t.Errorf("took %s: something waited too long", d)
			}
		})
	}
}
