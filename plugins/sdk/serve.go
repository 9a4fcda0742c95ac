package sdk

import (
	"os"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"
)

// Serve runs p as a plugin process. It returns when switchover ends the
// process. A plugin binary's main is a single call to Serve.
func Serve(p Provider) {
	level := hclog.LevelFromString(os.Getenv("SWITCHOVER_LOG"))
	if level == hclog.NoLevel {
		level = hclog.Warn
	}
	plugin.Serve(&plugin.ServeConfig{
		HandshakeConfig: Handshake,
		VersionedPlugins: map[int]plugin.PluginSet{
			ProtocolVersion: {PluginSetName: &GRPCPlugin{Impl: p}},
		},
		GRPCServer: plugin.DefaultGRPCServer,
		Logger:     hclog.New(&hclog.LoggerOptions{Level: level, Output: os.Stderr, JSONFormat: true}),
	})
}
