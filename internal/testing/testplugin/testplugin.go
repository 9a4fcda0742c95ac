// Package testplugin is a plugin for switchover's own tests, served by
// re-executing the test binary, so that every test crosses a real process
// boundary. Its "world" is an append-only file of lines such as
// "set ACCOUNT SHA256(password)": the effects a test counts. Passwords are
// never written in clear.
package testplugin

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/zclconf/go-cty/cty"

	"github.com/switchover/switchover/internal/pluginhost"
	"github.com/switchover/switchover/plugins/sdk"
	"github.com/switchover/switchover/plugins/sdk/rpc"
)

// Arg is the first argument with which the test binary serves this plugin.
const Arg = "__switchover-test-plugin"

// Name of the plugin in runbooks.
const Name = "test"

// ServeIfRequested serves the plugin when the process was started for it.
// TestMain calls it (with pluginhost.ServeBuiltinIfRequested) first.
func ServeIfRequested() bool {
	if len(os.Args) < 2 || os.Args[1] != Arg {
		return false
	}
	rpc.Serve(New())
	return true
}

// Dir returns a plugin directory whose switchover-plugin-test runs this
// test binary as the plugin.
func Dir(t testing.TB) string {
	t.Helper()
	dir := t.TempDir()
	if err := WriteDir(dir); err != nil {
		t.Fatal(err)
	}
	return dir
}

// WriteDir writes the plugin's launcher into dir. Write it before tests run
// in parallel (in TestMain): an executable written while another goroutine
// forks can be busy ("text file busy") when it is run.
func WriteDir(dir string) error {
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	script := "#!/bin/sh\nexec '" + exe + "' " + Arg + "\n"
	return os.WriteFile(filepath.Join(dir, pluginhost.ExternalPrefix+Name), []byte(script), 0o755)
}

// Hash is how passwords appear in the world file.
func Hash(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:8])
}

// Lines reads the world file.
func Lines(path string) []string {
	f, err := os.Open(path)
	if err != nil {
		return nil
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		out = append(out, sc.Text())
	}
	return out
}

func appendLine(path, line string) error {
	f, err := os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	// One write of one short line: it lands whole or not at all.
	_, err = f.WriteString(line + "\n")
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

func last(path, prefix string) (string, bool) {
	var v string
	found := false
	for _, l := range Lines(path) {
		if rest, ok := strings.CutPrefix(l, prefix); ok {
			v, found = rest, true
		}
	}
	return v, found
}

func count(path, line string) int {
	n := 0
	for _, l := range Lines(path) {
		if l == line {
			n++
		}
	}
	return n
}

func sleepMS(ctx context.Context, ms int64) error {
	if ms <= 0 {
		return nil
	}
	select {
	case <-time.After(time.Duration(ms) * time.Millisecond):
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func fail(format string, a ...any) *sdk.ApplyResponse {
	return &sdk.ApplyResponse{Diagnostics: sdk.Errorf(format, a...)}
}

var world = sdk.Attribute{Name: "world", Type: cty.String, Required: true, Description: "The world file."}

// New returns the test plugin.
func New() *sdk.Plugin {
	return &sdk.Plugin{
		Name: Name, Version: "0.0.1", Description: "switchover's test plugin.",
		Actions: []*sdk.Action{account(), flaky(), liar(), sleepy(), echo()},
	}
}

func account() *sdk.Action {
	return &sdk.Action{
		Name:        "account",
		Description: "Sets an account's password in the world file.",
		Attributes: []sdk.Attribute{world,
			{Name: "account", Type: cty.String, Required: true},
			{Name: "password", Type: cty.String, Required: true, Sensitive: true},
			{Name: "delay_ms", Type: cty.Number},
		},
		Outputs: []sdk.Output{{Name: "account", Type: cty.String}},
		PlanFunc: func(ctx context.Context, req *sdk.PlanRequest) *sdk.PlanResponse {
			a := req.Attributes
			if !a.IsKnown("password") {
				return sdk.Changef("set the password of %s (a new secret)", a.String("account"))
			}
			cur, _ := last(a.String("world"), "set "+a.String("account")+" ")
			if cur == Hash(a.String("password")) {
				r := sdk.NoChangef("%s has the password", a.String("account"))
				r.Outputs = map[string]cty.Value{"account": cty.StringVal(a.String("account"))}
				return r
			}
			return sdk.Changef("set the password of %s", a.String("account"))
		},
		ApplyFunc: func(ctx context.Context, req *sdk.ApplyRequest, ev sdk.Events) *sdk.ApplyResponse {
			a := req.Attributes
			w, acct, h := a.String("world"), a.String("account"), Hash(a.String("password"))
			if err := appendLine(w, "recv "+acct+" "+h); err != nil {
				return fail("%v", err)
			}
			if err := ev.Checkpoint(ctx, []byte("begin "+acct)); err != nil {
				return fail("checkpoint: %v", err)
			}
			if err := sleepMS(ctx, a.Int("delay_ms")); err != nil {
				return fail("%v", err)
			}
			if err := appendLine(w, "set "+acct+" "+h); err != nil {
				return fail("%v", err)
			}
			if err := ev.Checkpoint(ctx, []byte("set "+acct)); err != nil {
				return fail("checkpoint: %v", err)
			}
			return &sdk.ApplyResponse{Summary: "set the password of " + acct, Outputs: map[string]cty.Value{"account": cty.StringVal(acct)}}
		},
	}
}

func flaky() *sdk.Action {
	return &sdk.Action{
		Name:        "flaky",
		Description: "Fails fail_times times, then succeeds; with plan_fails its plan fails.",
		Attributes:  []sdk.Attribute{world, {Name: "name", Type: cty.String, Required: true}, {Name: "fail_times", Type: cty.Number}, {Name: "plan_fails", Type: cty.Bool}},
		PlanFunc: func(ctx context.Context, req *sdk.PlanRequest) *sdk.PlanResponse {
			if req.Attributes.Bool("plan_fails") {
				return sdk.PlanError(fmt.Errorf("cannot plan %s", req.Attributes.String("name")))
			}
			if count(req.Attributes.String("world"), "ok "+req.Attributes.String("name")) > 0 {
				return sdk.NoChangef("ok")
			}
			return sdk.Changef("try %s", req.Attributes.String("name"))
		},
		ApplyFunc: func(ctx context.Context, req *sdk.ApplyRequest, ev sdk.Events) *sdk.ApplyResponse {
			w, name := req.Attributes.String("world"), req.Attributes.String("name")
			tries := count(w, "try "+name)
			appendLine(w, "try "+name)
			if int64(tries) < req.Attributes.Int("fail_times") {
				return fail("%s failed on try %d", name, tries+1)
			}
			appendLine(w, "ok "+name)
			return &sdk.ApplyResponse{Summary: "ok"}
		},
	}
}

func liar() *sdk.Action {
	return &sdk.Action{
		Name:        "liar",
		Description: "Says it succeeded and does nothing.",
		Attributes:  []sdk.Attribute{world},
		PlanFunc: func(ctx context.Context, req *sdk.PlanRequest) *sdk.PlanResponse {
			return sdk.Changef("disable the old provider's account")
		},
		ApplyFunc: func(ctx context.Context, req *sdk.ApplyRequest, ev sdk.Events) *sdk.ApplyResponse {
			return &sdk.ApplyResponse{Summary: "disabled (not really)"}
		},
	}
}

func sleepy() *sdk.Action {
	return &sdk.Action{
		Name:        "sleepy",
		Description: "Sleeps sleep_ms in Apply, then records that it ran.",
		Attributes:  []sdk.Attribute{world, {Name: "name", Type: cty.String, Required: true}, {Name: "sleep_ms", Type: cty.Number, Required: true}},
		PlanFunc: func(ctx context.Context, req *sdk.PlanRequest) *sdk.PlanResponse {
			if count(req.Attributes.String("world"), "slept "+req.Attributes.String("name")) > 0 {
				return sdk.NoChangef("slept")
			}
			return sdk.Changef("sleep %dms", req.Attributes.Int("sleep_ms"))
		},
		ApplyFunc: func(ctx context.Context, req *sdk.ApplyRequest, ev sdk.Events) *sdk.ApplyResponse {
			if err := sleepMS(ctx, req.Attributes.Int("sleep_ms")); err != nil {
				return fail("interrupted: %v", err)
			}
			appendLine(req.Attributes.String("world"), "slept "+req.Attributes.String("name"))
			return &sdk.ApplyResponse{Summary: "slept"}
		},
	}
}

// echo sends its sensitive input back everywhere a careless plugin might:
// summary, details, logs, checkpoint, diagnostics and an output it does not
// declare sensitive.
func echo() *sdk.Action {
	return &sdk.Action{
		Name:        "echo",
		Description: "Leaks its secret into every text it sends back (redaction tests).",
		Attributes:  []sdk.Attribute{world, {Name: "secret", Type: cty.String, Required: true, Sensitive: true}},
		Outputs:     []sdk.Output{{Name: "said", Type: cty.String}},
		PlanFunc: func(ctx context.Context, req *sdk.PlanRequest) *sdk.PlanResponse {
			s := req.Attributes.String("secret")
			if count(req.Attributes.String("world"), "echoed "+Hash(s)) > 0 {
				r := sdk.NoChangef("already said %s", s)
				r.Outputs = map[string]cty.Value{"said": cty.StringVal("I said " + s)}
				return r
			}
			r := sdk.Changef("will say %s", s)
			r.Details = []string{"detail " + s}
			return r
		},
		ApplyFunc: func(ctx context.Context, req *sdk.ApplyRequest, ev sdk.Events) *sdk.ApplyResponse {
			s := req.Attributes.String("secret")
			ev.Log("log line with " + s)
			if err := ev.Checkpoint(ctx, []byte("checkpoint with "+s)); err != nil {
				return fail("%v", err)
			}
			appendLine(req.Attributes.String("world"), "echoed "+Hash(s))
			return &sdk.ApplyResponse{Summary: fmt.Sprintf("said %s", s), Outputs: map[string]cty.Value{"said": cty.StringVal("I said " + s)}}
		},
	}
}
