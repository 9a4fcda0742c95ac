// Package operation is what switchover does for a person, between the cli
// (flags and views) and the engine (the walks): a session (a runbook with
// its workspace and plugins), plan, apply, confirm. The checks of a run
// (a saved plan's authenticity and freshness), its approval and its
// records in the audit trail live here, once, whatever renders them.
package operation

import (
	"context"
	"fmt"
	"os"
	"strings"

	"github.com/switchover/switchover/internal/runbook"
	"github.com/switchover/switchover/internal/state"
	"github.com/switchover/switchover/internal/state/pgstate"
	"github.com/switchover/switchover/internal/workspace"
)

// StateOpener is where the runbook in dir keeps its state: files in
// .switchover/, or the backend its backend block names (PostgreSQL, with
// the connection string from the environment). The workspace directory
// keeps what is this machine's either way (the identity, the signing key).
func StateOpener(dir string) (state.Opener, *runbook.Backend, error) {
	b, diags := runbook.ReadBackend(dir)
	if diags.HasErrors() {
		return nil, nil, fmt.Errorf("the runbook's backend block: %s", strings.TrimSpace(diags.Error()))
	}
	if b == nil {
		return state.Open, nil, nil
	}
	conn := os.Getenv(b.ConnectionEnv)
	if conn == "" {
		return nil, nil, fmt.Errorf("backend \"pg\" (workspace %q): set %s to the PostgreSQL connection string (postgres://USER@HOST/DB; the password in it or in PGPASSWORD)", b.Workspace, b.ConnectionEnv)
	}
	return func(string) (state.Backend, error) {
		return pgstate.Open(context.Background(), conn, b.Workspace)
	}, b, nil
}

// OpenWorkspace opens the workspace of the runbook in dir with its backend.
func OpenWorkspace(dir string) (*workspace.Workspace, error) {
	open, _, err := StateOpener(dir)
	if err != nil {
		return nil, err
	}
	return workspace.OpenWith(dir, open)
}

// WorkspaceExists: the runbook has state to read (in files here, or in a
// shared backend, which another machine may have written).
func WorkspaceExists(dir string) bool {
	if workspace.Exists(dir) {
		return true
	}
	b, diags := runbook.ReadBackend(dir)
	return !diags.HasErrors() && b != nil
}
