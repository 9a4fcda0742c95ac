package cli

import (
	"context"
	"fmt"
	"github.com/switchover/switchover/internal/audit"
	"os"

	"filippo.io/age"
	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"

	"github.com/switchover/switchover/internal/engine"
	"github.com/switchover/switchover/internal/lang"
	"github.com/switchover/switchover/internal/pluginhost"
	"github.com/switchover/switchover/internal/runbook"
	"github.com/switchover/switchover/internal/secrets"
	"github.com/switchover/switchover/internal/workspace"
	"github.com/switchover/switchover/plugins/sdk"
)

// session is a runbook with its workspace (when there is one) and plugins.
type session struct {
	// ctx is the caller's context, and for an apply also cancelled when
	// the session's lock is lost (workspace.ErrLockLost).
	ctx  context.Context
	ws   *workspace.Workspace // nil for a plan of a runbook never applied
	run  *engine.Run
	host *pluginhost.Host
	g    *engine.Graph
}

type sessionOptions struct {
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
}

// hasRunbookFiles reports whether dir holds runbook files, so that no
// workspace is created in a directory that is not a runbook.
func hasRunbookFiles(dir string) bool {
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

// openSession builds the graph against the workspace's state. On error it
// prints and returns an exit code; the caller must call close.
func openSession(ctx context.Context, env *Env, o sessionOptions, jsonOut bool) (*session, hcl.Diagnostics, error) {
	s := &session{ctx: ctx, host: pluginhost.New(pluginhost.Options{Dirs: pluginDirs(o.PluginDir), WorkDir: o.Dir, Notices: env.Stderr})}
	red := engine.NewRedactor()
	s.run = &engine.Run{Redactor: red}
	if hasRunbookFiles(o.Dir) && (o.ForApply || o.NeedWorkspace || workspaceExists(o.Dir)) {
		ws, err := openWorkspace(o.Dir)
		if err != nil {
			return s, nil, err
		}
		s.ws = ws
		if o.ForApply {
			// The lock is taken once, for the whole session; Close
			// releases it.
			lctx, _, err := ws.LockSession(ctx, "apply")
			if err != nil {
				return s, nil, err
			}
			s.ctx = lctx
		}
		s.run.State = ws.State
		if id, err := ws.ExistingIdentity(""); err == nil {
			s.run.Identity = id
		}
	}
	g, diags := engine.Build(ctx, engine.Options{
		Dir: o.Dir, Vars: o.Vars, Plugins: pluginhost.Factory{H: s.host}, Environ: os.Environ(), Mode: engine.ModePlan, Targets: o.Targets, Redactor: red, FreshReads: o.Refresh,
		Secrets: func(addr string) lang.SecretResolver { return s.run.SecretResolver(addr, false) },
		KnownOutputs: func(addr string, schema []sdk.Output) (cty.Value, bool) {
			if s.run.State == nil {
				return cty.NilVal, false
			}
			return s.run.Outputs(addr, schema)
		},
	})
	s.g = g
	if !diags.HasErrors() && o.ForApply {
		// The identity is made only for a runbook that builds.
		ws := s.ws
		id, created, err := ws.Identity()
		if err != nil {
			return s, diags, fmt.Errorf("workspace identity: %w", err)
		}
		if created {
			if err := ws.Audit.Append(audit.EvIdentityCreated, "", map[string]any{"recipient": id.Recipient().String()}); err != nil {
				return s, diags, fmt.Errorf("writing the audit trail: %w", err)
			}
			if !jsonOut {
				fmt.Fprintf(env.Stderr, "Created the workspace identity %s/%s (mode 0600); it decrypts this workspace's secrets.\n", ws.Dir, secrets.IdentityFile)
			}
		}
		s.run.Identity = id
		s.run.Recipients = []age.Recipient{id.Recipient()}
		s.run.OnSecret = func(name, addr string) error {
			return ws.Audit.Append(audit.EvSecretCreated, addr, map[string]any{"name": name})
		}
		for _, r := range g.Runbook.Meta.SecretRecipients {
			rec, _ := secrets.ParseRecipient(r) // checked by Build
			s.run.Recipients = append(s.run.Recipients, rec)
		}
	}
	return s, diags, nil
}

// close stops the plugins and closes the workspace (anchoring the audit
// trail's head in the state); an error there is printed: the next audit
// verify will show the unanchored lines.
func (s *session) close(env *Env) {
	s.host.Close()
	if s.ws != nil {
		if err := s.ws.Close(); err != nil {
			fmt.Fprintf(env.Stderr, "switchover: closing the workspace: %v\n", err)
		}
	}
}

func (s *session) files() map[string]*hcl.File { return filesOf(s.g) }

func (s *session) stateSerial() int {
	if s.ws == nil {
		return 0
	}
	return s.ws.State.Serial()
}
