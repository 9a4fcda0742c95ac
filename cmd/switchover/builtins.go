package main

import (
	"github.com/switchover/switchover/internal/pluginhost"
	adplugin "github.com/switchover/switchover/plugins/ad"
	backupplugin "github.com/switchover/switchover/plugins/backup"
	"github.com/switchover/switchover/plugins/core"
	entraplugin "github.com/switchover/switchover/plugins/entra"
	httpplugin "github.com/switchover/switchover/plugins/http"
	scimplugin "github.com/switchover/switchover/plugins/scim"
	"github.com/switchover/switchover/plugins/sdk"
	sshplugin "github.com/switchover/switchover/plugins/ssh"
)

// version is switchover's version (set at build time with
// -ldflags "-X main.version=...").
var version = "0.1.0-dev"

// The catalogue of built-in plugins: shipped inside the binary and served by
// re-executing it. The engine and the plugin host depend on none of them.
func registerBuiltins() {
	pluginhost.Version = version
	pluginhost.RegisterBuiltin("core", func() sdk.Provider { return core.New(version) })
	pluginhost.RegisterBuiltin("ssh", func() sdk.Provider { return sshplugin.New(version) })
	pluginhost.RegisterBuiltin("ad", func() sdk.Provider { return adplugin.New(version) })
	pluginhost.RegisterBuiltin("backup", func() sdk.Provider { return backupplugin.New(version) })
	pluginhost.RegisterBuiltin("scim", func() sdk.Provider { return scimplugin.New(version) })
	pluginhost.RegisterBuiltin("http", func() sdk.Provider { return httpplugin.New(version) })
	pluginhost.RegisterBuiltin("entra", func() sdk.Provider { return entraplugin.New(version) })
}
