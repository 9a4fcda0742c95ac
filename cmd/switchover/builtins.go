package main

import (
	"github.com/switchover/switchover/internal/pluginhost"
	"github.com/switchover/switchover/internal/version"
	adplugin "github.com/switchover/switchover/plugins/ad"
	backupplugin "github.com/switchover/switchover/plugins/backup"
	"github.com/switchover/switchover/plugins/core"
	entraplugin "github.com/switchover/switchover/plugins/entra"
	httpplugin "github.com/switchover/switchover/plugins/http"
	scimplugin "github.com/switchover/switchover/plugins/scim"
	"github.com/switchover/switchover/plugins/sdk"
	sshplugin "github.com/switchover/switchover/plugins/ssh"
)

// The catalogue of built-in plugins: shipped inside the binary and served by
// re-executing it. The engine and the plugin host depend on none of them.
func registerBuiltins() {
	v := version.Version
	pluginhost.RegisterInProcess("core", func() sdk.Provider { return core.New(v) })
	pluginhost.RegisterBuiltin("ssh", func() sdk.Provider { return sshplugin.New(v) })
	pluginhost.RegisterBuiltin("ad", func() sdk.Provider { return adplugin.New(v) })
	pluginhost.RegisterBuiltin("backup", func() sdk.Provider { return backupplugin.New(v) })
	pluginhost.RegisterBuiltin("scim", func() sdk.Provider { return scimplugin.New(v) })
	pluginhost.RegisterBuiltin("http", func() sdk.Provider { return httpplugin.New(v) })
	pluginhost.RegisterBuiltin("entra", func() sdk.Provider { return entraplugin.New(v) })
}
