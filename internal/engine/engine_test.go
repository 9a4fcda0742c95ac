package engine

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/hashicorp/hcl/v2"

	"github.com/switchover/switchover/plugins/core"
	"github.com/switchover/switchover/plugins/sdk"
	"github.com/switchover/switchover/plugins/sdk/sdktest"
)

// inProcess is the engine's fake plugin host: plugins run in this process
// (the engine's contract with plugins is sdk.Provider; the wire is
// pluginhost's business and tested there).
type inProcess map[string]func() sdk.Provider

type notFound struct{ name string }

func (e *notFound) Error() string        { return fmt.Sprintf("no plugin named %q", e.name) }
func (e *notFound) PluginNotFound() bool { return true }

func (f inProcess) Start(name, key string) (Provider, error) {
	mk, ok := f[name]
	if !ok {
		return nil, &notFound{name}
	}
	return mk(), nil
}

func newHost(t testing.TB) Factory {
	return inProcess{"core": func() sdk.Provider { return sdktest.InProcess(core.New("test")) }}
}

// writeRunbook writes files (name -> content) into a fresh directory.
func writeRunbook(t testing.TB, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

type expectation struct {
	line, col int
	summary   string
	detail    string
}

var expectRE = regexp.MustCompile(`^# expect: (\d+):(\d+) ([^|]+?)(?: \| (.*))?$`)

// TestInvalidFixtures: every file under testdata/invalid carries the
// diagnostics it must produce in "# expect: LINE:COL Summary | detail part"
// lines; it must produce exactly those errors, each with a source position.
func TestInvalidFixtures(t *testing.T) {
	paths, _ := filepath.Glob("testdata/invalid/*.sw.hcl")
	if len(paths) < 20 {
		t.Fatalf("found only %d fixtures", len(paths))
	}
	host := newHost(t)
	for _, p := range paths {
		t.Run(strings.TrimSuffix(filepath.Base(p), ".sw.hcl"), func(t *testing.T) {
			src, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			var want []expectation
			planWalk := false
			for _, line := range strings.Split(string(src), "\n") {
				if line == "# mode: plan-walk" {
					planWalk = true
				}
				m := expectRE.FindStringSubmatch(line)
				if m == nil {
					continue
				}
				var e expectation
				fmt.Sscan(m[1], &e.line)
				fmt.Sscan(m[2], &e.col)
				e.summary, e.detail = m[3], m[4]
				want = append(want, e)
			}
			if len(want) == 0 {
				t.Fatal("fixture has no # expect: line")
			}
			dir := writeRunbook(t, map[string]string{filepath.Base(p): string(src)})
			g, diags := Build(context.Background(), Options{Dir: dir, Plugins: host, Mode: ModePlan})
			if planWalk && !diags.HasErrors() {
				diags = append(diags, g.Configure(context.Background())...)
				_, d := g.Plan(context.Background(), PlanOptions{Parallelism: 4}, nil)
				diags = append(diags, d...)
			}
			var errs hcl.Diagnostics
			for _, d := range diags {
				if d.Severity == hcl.DiagError {
					errs = append(errs, d)
				}
			}
			for _, e := range want {
				found := false
				for _, d := range errs {
					if d.Subject != nil && d.Subject.Start.Line == e.line && d.Subject.Start.Column == e.col &&
						d.Summary == e.summary && strings.Contains(d.Detail, e.detail) {
						found = true
					}
				}
				if !found {
					t.Errorf("missing diagnostic %d:%d %q | %q; got:\n%s", e.line, e.col, e.summary, e.detail, describe(errs))
				}
			}
			if len(errs) != len(want) {
				t.Errorf("got %d errors, want %d:\n%s", len(errs), len(want), describe(errs))
			}
			for _, d := range errs {
				if d.Subject == nil {
					t.Errorf("diagnostic %q has no source position", d.Summary)
				}
			}
		})
	}
}

func describe(diags hcl.Diagnostics) string {
	var b strings.Builder
	for _, d := range diags {
		if d.Subject != nil {
			fmt.Fprintf(&b, "  %d:%d ", d.Subject.Start.Line, d.Subject.Start.Column)
		} else {
			b.WriteString("  (no position) ")
		}
		fmt.Fprintf(&b, "%s | %s\n", d.Summary, d.Detail)
	}
	return b.String()
}
