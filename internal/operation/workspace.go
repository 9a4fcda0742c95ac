package cli

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

// stateOpener is where the runbook in dir keeps its state: files in
// .switchover/, or the backend its backend block names (PostgreSQL, with
// the connection string from the environment). The workspace directory
// keeps what is this machine's either way (the identity, the signing key).
func stateOpener(dir string) (state.Opener, *runbook.Backend, error) {
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

// openWorkspace opens the workspace of the runbook in dir with its backend.
func openWorkspace(dir string) (*workspace.Workspace, error) {
	open, _, err := stateOpener(dir)
	if err != nil {
		return nil, err
	}
	return workspace.OpenWith(dir, open)
}

// workspaceExists: the runbook has state to read (in files here, or in a
// shared backend, which another machine may have written).
func workspaceExists(dir string) bool {
	if workspace.Exists(dir) {
		return true
	}
	b, diags := runbook.ReadBackend(dir)
	return !diags.HasErrors() && b != nil
}
