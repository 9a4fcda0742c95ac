// Command switchover hands a small business over from one managed IT service
// provider to the next: runbooks declare the offboarding, plan observes the
// real systems, apply does the work.
package main

import (
	"os"

	"github.com/switchover/switchover/internal/cli"
	"github.com/switchover/switchover/internal/pluginhost"
)

func main() {
	registerBuiltins()
	// Re-executed as a built-in plugin?
	if pluginhost.ServeBuiltinIfRequested(os.Args) {
		return
	}
	os.Exit(cli.Main(os.Args[1:], &cli.Env{Stdout: os.Stdout, Stderr: os.Stderr, Stdin: os.Stdin}))
}
