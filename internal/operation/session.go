package operation

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"filippo.io/age"
	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"

	"github.com/switchover/switchover/internal/audit"
	"github.com/switchover/switchover/internal/engine"
	"github.com/switchover/switchover/internal/lang"
	"github.com/switchover/switchover/internal/pluginhost"
	"github.com/switchover/switchover/internal/runbook"
	"github.com/switchover/switchover/internal/secrets"
	"github.com/switchover/switchover/internal/workspace"
	"github.com/switchover/switchover/plugins/sdk"
)

// Session is a runbook with its workspace (when there is one) and plugins.
type Session struct {
	// Ctx is the caller's context, and for an apply also cancelled when
	// the session's lock is lost (workspace.ErrLockLost).
	Ctx   context.Context
	WS    *workspace.Workspace // nil for a plan of a runbook never applied
	Run   *engine.Run
	Graph *engine.Graph
	host  *pluginhost.Host
}

// SessionOptions configure Open.
type SessionOptions struct {
	Dir       string
	Vars      []engine.VarInput
	PluginDir string
	Targets   []string
	// ForApply: create the workspace if needed, lock it, create the identity.
	ForApply bool
	// NeedWorkspace: create the workspace if needed (plan -out).
	NeedWorkspace bool
	// Refresh: read-only steps are read again (not -refresh=false).
	Refresh bool
	// Notices receives what a person should know (plugin notices, an
	// identity made); nil: discarded.
	Notices io.Writer
	// Quiet: no note of an identity made (-json).
	Quiet bool
}

// HasRunbookFiles reports whether dir holds runbook files, so that no
// workspace is created in a directory that is not a runbook.
func HasRunbookFiles(dir string) bool {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return false
	}
	for _, e := range ents {
		if !e.IsDir() && runbook.IsRunbookFile(e.Name()) {
			return true
		}
	}
	return false
}

// PluginDirs are where plugins are looked for: the flag's directory,
// $SWITCHOVER_PLUGIN_DIR, then the default.
func PluginDirs(flagDir string) []string {
	var dirs []string
	if flagDir != "" {
		dirs = append(dirs, flagDir)
	}
	if env := os.Getenv("SWITCHOVER_PLUGIN_DIR"); env != "" {
		dirs = append(dirs, filepath.SplitList(env)...)
	}
	if d := pluginhost.DefaultDir(); d != "" {
		dirs = append(dirs, d)
	}
	return dirs
}

// Open builds the graph against the workspace's state. The caller must
// call Close, also after an error.
func Open(ctx context.Context, o SessionOptions) (*Session, hcl.Diagnostics, error) {
	if o.Notices == nil {
		o.Notices = io.Discard
	}
	s := &Session{Ctx: ctx, host: pluginhost.New(pluginhost.Options{Dirs: PluginDirs(o.PluginDir), WorkDir: o.Dir, Notices: o.Notices})}
	red := engine.NewRedactor()
	s.Run = &engine.Run{Redactor: red}
	if HasRunbookFiles(o.Dir) && (o.ForApply || o.NeedWorkspace || WorkspaceExists(o.Dir)) {
		if err := s.openWorkspace(ctx, o); err != nil {
			return s, nil, err
		}
	}
	g, diags := engine.Build(ctx, engine.Options{
		Dir: o.Dir, Vars: o.Vars, Plugins: pluginhost.Factory{H: s.host}, Environ: os.Environ(), Mode: engine.ModePlan, Targets: o.Targets, Redactor: red, FreshReads: o.Refresh,
		Secrets: func(addr string) lang.SecretResolver { return s.Run.SecretResolver(addr, false) },
		KnownOutputs: func(addr string, schema []sdk.Output) (cty.Value, bool) {
			if s.Run.State == nil {
				return cty.NilVal, false
			}
			return s.Run.Outputs(addr, schema)
		},
	})
	s.Graph = g
	if !diags.HasErrors() && o.ForApply {
		// The identity is made only for a runbook that builds.
		notices := o.Notices
		if o.Quiet {
			notices = io.Discard
		}
		if err := s.keys(notices); err != nil {
			return s, diags, err
		}
	}
	return s, diags, nil
}

// openWorkspace opens the workspace, locked for the session when it is
// for an apply.
func (s *Session) openWorkspace(ctx context.Context, o SessionOptions) error {
	ws, err := OpenWorkspace(o.Dir)
	if err != nil {
		return err
	}
	s.WS = ws
	if o.ForApply {
		// The lock is taken once, for the whole session; Close releases it.
		lctx, _, err := ws.LockSession(ctx, "apply")
		if err != nil {
			return err
		}
		s.Ctx = lctx
	}
	s.Run.State = ws.State
	if id, err := ws.ExistingIdentity(""); err == nil {
		s.Run.Identity = id
	}
	return nil
}

// keys makes the workspace identity when there is none yet (audited), and
// gives the run its recipients: the identity's and the runbook's.
func (s *Session) keys(notices io.Writer) error {
	ws := s.WS
	id, created, err := ws.Identity()
	if err != nil {
		return fmt.Errorf("workspace identity: %w", err)
	}
	if created {
		if err := ws.Audit.Append(audit.EvIdentityCreated, "", map[string]any{"recipient": id.Recipient().String()}); err != nil {
			return fmt.Errorf("writing the audit trail: %w", err)
		}
		fmt.Fprintf(notices, "Created the workspace identity %s/%s (mode 0600); it decrypts this workspace's secrets.\n", ws.Dir, secrets.IdentityFile)
	}
	s.Run.Identity = id
	s.Run.Recipients = []age.Recipient{id.Recipient()}
	s.Run.OnSecret = func(name, addr string) error {
		return ws.Audit.Append(audit.EvSecretCreated, addr, map[string]any{"name": name})
	}
	for _, r := range s.Graph.Runbook.Meta.SecretRecipients {
		rec, _ := secrets.ParseRecipient(r) // checked by Build
		s.Run.Recipients = append(s.Run.Recipients, rec)
	}
	return nil
}

// Close stops the plugins and closes the workspace (anchoring the audit
// trail's head in the state). An error there leaves lines the next audit
// verify shows as unanchored.
func (s *Session) Close() error {
	s.host.Close()
	if s.WS != nil {
		if err := s.WS.Close(); err != nil {
			return fmt.Errorf("closing the workspace: %w", err)
		}
	}
	return nil
}

// Files are the runbook's files, for diagnostics.
func (s *Session) Files() map[string]*hcl.File {
	if s.Graph == nil || s.Graph.Runbook == nil {
		return nil
	}
	return s.Graph.Runbook.Files
}

// StateSerial is the state's serial (0 without a workspace).
func (s *Session) StateSerial() int {
	if s.WS == nil {
		return 0
	}
	return s.WS.State.Serial()
}
