package cli

import (
	"encoding/json"
	"fmt"
	"github.com/switchover/switchover/internal/testing/pglab"
	"os"
	"testing"

	"github.com/rogpeppe/go-internal/testscript"

	"github.com/switchover/switchover/internal/plans"
	"github.com/switchover/switchover/internal/pluginhost"
	"github.com/switchover/switchover/internal/testing/testplugin"
	adplugin "github.com/switchover/switchover/plugins/ad"
	backupplugin "github.com/switchover/switchover/plugins/backup"
	"github.com/switchover/switchover/plugins/core"
	entraplugin "github.com/switchover/switchover/plugins/entra"
	httpplugin "github.com/switchover/switchover/plugins/http"
	scimplugin "github.com/switchover/switchover/plugins/scim"
	"github.com/switchover/switchover/plugins/sdk"
	sshplugin "github.com/switchover/switchover/plugins/ssh"
)

// The scripts in testdata/script drive the switchover binary: testscript runs
// this test binary as `switchover` in a subprocess, exactly as main does.
func TestMain(m *testing.M) {
	// The catalogue main registers (cmd/switchover/builtins.go).
	pluginhost.RegisterInProcess("core", func() sdk.Provider { return core.New("test") })
	pluginhost.RegisterBuiltin("ssh", func() sdk.Provider { return sshplugin.New("test") })
	pluginhost.RegisterBuiltin("ad", func() sdk.Provider { return adplugin.New("test") })
	pluginhost.RegisterBuiltin("backup", func() sdk.Provider { return backupplugin.New("test") })
	pluginhost.RegisterBuiltin("scim", func() sdk.Provider { return scimplugin.New("test") })
	pluginhost.RegisterBuiltin("http", func() sdk.Provider { return httpplugin.New("test") })
	pluginhost.RegisterBuiltin("entra", func() sdk.Provider { return entraplugin.New("test") })
	if pluginhost.ServeBuiltinIfRequested(os.Args) || testplugin.ServeIfRequested() {
		return
	}
	// The crash tests run this binary as switchover in a child process.
	if os.Getenv("SWITCHOVER_TEST_AS_MAIN") == "1" {
		os.Exit(Main(os.Args[1:], &Env{Stdout: os.Stdout, Stderr: os.Stderr, Stdin: os.Stdin}))
	}
	// One PostgreSQL for the package's tests of the pg backend, started
	// while the plugins are written.
	pgDone := make(chan error, 1)
	go func() {
		var err error
		pgLab, err = pglab.Start()
		pgDone <- err
	}()
	// One plugin directory for every fixture, written before any test runs.
	dir, err := os.MkdirTemp("", "switchover-cli-plugins-")
	if err == nil {
		err = testplugin.WriteDir(dir)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	sharedPluginDir = dir
	if err := <-pgDone; err != nil {
		// Never a silent skip: CI installs postgresql.
		fmt.Fprintf(os.Stderr, "cannot start PostgreSQL: %v\n", err)
		os.Exit(1)
	}
	testscript.Main(cleanupAfter{m, func() { os.RemoveAll(dir); pgLab.Stop() }}, map[string]func(){
		"switchover": func() {
			os.Exit(Main(os.Args[1:], &Env{Stdout: os.Stdout, Stderr: os.Stderr, Stdin: os.Stdin}))
		},
		// gunzip-plan prints a saved plan's JSON, to check what it holds.
		"gunzip-plan": func() {
			p, err := plans.Read(os.Args[1])
			if err != nil {
				fmt.Fprintln(os.Stderr, err)
				os.Exit(1)
			}
			b, _ := json.MarshalIndent(p.Plan, "", "  ")
			os.Stdout.Write(b)
			os.Exit(0)
		},
	})
}

// cleanupAfter runs the tests, then cleans up (testscript.Main exits).
type cleanupAfter struct {
	m       *testing.M
	cleanup func()
}

func (c cleanupAfter) Run() int {
	defer c.cleanup()
	return c.m.Run()
}

// sharedPluginDir holds the test plugin's launcher (see TestMain).
var sharedPluginDir string

func TestScripts(t *testing.T) {
	testscript.Run(t, testscript.Params{
		Dir: "testdata/script",
		Setup: func(env *testscript.Env) error {
			// No user plugin directory leaks in from the machine.
			env.Setenv("XDG_CONFIG_HOME", env.WorkDir+"/.config")
			env.Setenv("HOME", env.WorkDir)
			return nil
		},
	})
}
