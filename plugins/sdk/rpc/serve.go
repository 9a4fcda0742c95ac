// Package rpc carries a plugin over go-plugin and gRPC: Serve runs a
// sdk.Provider as a plugin process (a plugin's main is one call to Serve);
// switchover dispenses GRPCClient, a sdk.Provider on the other side. Plugin
// authors write against package sdk and call Serve; the rest is plumbing.
package rpc

import (
	"github.com/switchover/switchover/plugins/sdk"
	"os"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"
)

// Serve runs p as a plugin process. It returns when switchover ends the
// process. A plugin binary's main is a single call to Serve.
func Serve(p sdk.Provider) {
	go exitWithParent()
	level := hclog.LevelFromString(os.Getenv("SWITCHOVER_LOG"))
	if level == hclog.NoLevel {
		level = hclog.Warn
	}
	plugin.Serve(&plugin.ServeConfig{
		HandshakeConfig: Handshake,
		VersionedPlugins: map[int]plugin.PluginSet{
			sdk.ProtocolVersion: {PluginSetName: &GRPCPlugin{Impl: p}},
		},
		GRPCServer: plugin.DefaultGRPCServer,
		Logger:     hclog.New(&hclog.LoggerOptions{Level: level, Output: os.Stderr, JSONFormat: true}),
	})
}

// exitWithParent ends the plugin when the process that started it is gone
// (switchover also asks the kernel to kill it then; this covers the rest).
func exitWithParent() {
	parent := os.Getppid()
	for {
		time.Sleep(100 * time.Millisecond)
		if os.Getppid() != parent {
			os.Exit(3)
		}
	}
}
