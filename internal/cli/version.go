package cli

import (
	"context"
	"fmt"
	"github.com/switchover/switchover/internal/version"
	"runtime"

	"github.com/switchover/switchover/plugins/sdk"
)

func runVersion(ctx context.Context, env *Env, args []string) int {
	var asJSON bool
	fs := newFlags(env, "version", "Prints switchover's version and the plugin protocol version it speaks.", "")
	fs.BoolVar(&asJSON, "json", false, "Print as JSON")
	if _, code, ok := parse(fs, args, 0); !ok {
		return code
	}
	if asJSON {
		writeJSON(env.Stdout, map[string]any{"version": version.Version, "plugin_protocol": sdk.ProtocolVersion, "go": runtime.Version(), "platform": runtime.GOOS + "/" + runtime.GOARCH})
		return ExitOK
	}
	fmt.Fprintf(env.Stdout, "switchover %s (plugin protocol %d, %s %s/%s)\n", version.Version, sdk.ProtocolVersion, runtime.Version(), runtime.GOOS, runtime.GOARCH)
	return ExitOK
}
