// Command switchover hands a small business over from one managed IT service
// provider to the next: runbooks declare the offboarding, plan observes the
// real systems, apply does the work.
package main

import (
	"fmt"
	"os"
	"runtime/pprof"

	"github.com/switchover/switchover/internal/cli"
	"github.com/switchover/switchover/internal/pluginhost"
)

func main() {
	registerBuiltins()
	stop := profile()
	// Re-executed as a built-in plugin?
	if pluginhost.ServeBuiltinIfRequested(os.Args) {
		stop()
		return
	}
	code := cli.Main(os.Args[1:], &cli.Env{Stdout: os.Stdout, Stderr: os.Stderr, Stdin: os.Stdin})
	stop()
	os.Exit(code)
}

// profile writes a CPU profile to $SWITCHOVER_CPUPROFILE.PID when that is
// set (switchover and each built-in plugin process its own), for `go tool
// pprof`.
func profile() func() {
	path := os.Getenv("SWITCHOVER_CPUPROFILE")
	if path == "" {
		return func() {}
	}
	f, err := os.Create(fmt.Sprintf("%s.%d", path, os.Getpid()))
	if err != nil {
		return func() {}
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return func() {}
	}
	return func() { pprof.StopCPUProfile(); f.Close() }
}
