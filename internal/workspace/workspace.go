// Package workspace is a runbook's .switchover directory: the state log, the
// lock, the audit trail and the workspace identity that decrypts secrets.
package workspace

import (
	"fmt"
	"os"
	"os/user"
	"path/filepath"

	"filippo.io/age"

	"github.com/switchover/switchover/internal/audit"
	"github.com/switchover/switchover/internal/secrets"
	"github.com/switchover/switchover/internal/state"
)

// DirName is the workspace directory inside a runbook directory.
const DirName = ".switchover"

// Workspace is an open workspace.
type Workspace struct {
	Dir     string
	State   *state.Manager
	Audit   *audit.Log
	backend *state.FileBackend
	lock    *state.LockInfo
}

// Path returns the workspace directory of a runbook directory.
func Path(runbookDir string) string { return filepath.Join(runbookDir, DirName) }

// Exists reports whether the runbook has a workspace yet.
func Exists(runbookDir string) bool {
	_, err := os.Stat(filepath.Join(Path(runbookDir), "state.log"))
	return err == nil
}

// Open opens (creating) the workspace of a runbook directory for reading.
// Lock it before changing anything: only then are State appends and the
// Audit trail available.
func Open(runbookDir string) (*Workspace, error) {
	dir := Path(runbookDir)
	b, err := state.OpenFile(dir)
	if err != nil {
		return nil, fmt.Errorf("opening the state in %s: %w", dir, err)
	}
	m, err := state.NewManager(b)
	if err != nil {
		b.Close()
		return nil, err
	}
	return &Workspace{Dir: dir, State: m, backend: b}, nil
}

// Actor is user@host, who the audit trail says acted.
func Actor() string {
	name := os.Getenv("USER")
	if u, err := user.Current(); err == nil && u.Username != "" {
		name = u.Username
	}
	host, _ := os.Hostname()
	return name + "@" + host
}

// Lock takes the state's lock for op.
func (w *Workspace) Lock(op string) error {
	li := state.NewLockInfo(op)
	if err := w.backend.Lock(li); err != nil {
		return err
	}
	w.lock = &li
	// Read the state again: what was read before the lock may be stale.
	w.State.Close()
	b, err := state.OpenFile(w.Dir)
	if err == nil {
		w.backend = b
		w.State, err = state.NewManager(b)
	}
	if err != nil {
		state.RemoveLock(w.Dir, li.ID)
		w.lock = nil
		return fmt.Errorf("reading the state: %w", err)
	}
	a, err := audit.Open(filepath.Join(w.Dir, audit.FileName), Actor())
	if err != nil {
		w.backend.Unlock(li.ID, false)
		w.lock = nil
		return fmt.Errorf("opening the audit trail: %w", err)
	}
	w.Audit = a
	return nil
}

// ForceUnlock removes any lock, then holds it itself (so that the removal
// can be recorded in the audit trail); Close releases it.
func (w *Workspace) ForceUnlock() (state.LockInfo, error) {
	holder, _ := w.backend.LockHolder()
	if err := w.backend.Unlock("", true); err != nil {
		return holder, err
	}
	return holder, w.Lock("unlock")
}

// Identity loads the workspace identity, creating it on first use.
func (w *Workspace) Identity() (*age.X25519Identity, bool, error) {
	return secrets.LoadOrCreateIdentity(w.Dir)
}

// ExistingIdentity loads the identity at path (default: the workspace's)
// without creating one.
func (w *Workspace) ExistingIdentity(path string) (*age.X25519Identity, error) {
	if path == "" {
		path = filepath.Join(w.Dir, secrets.IdentityFile)
	}
	return secrets.LoadIdentity(path)
}

// Close anchors the audit trail's head in the state, releases the lock and
// closes everything.
func (w *Workspace) Close() error {
	var first error
	keep := func(err error) {
		if err != nil && first == nil {
			first = err
		}
	}
	if w.Audit != nil {
		if err := w.Audit.Sync(); err == nil {
			seq, hash := w.Audit.Head()
			var anchored int64
			w.State.View(func(s *state.Snapshot) { anchored = s.AuditSeq })
			if seq > 0 && anchored != seq {
				keep(w.State.Append(&state.Record{Kind: state.KindAuditHead, Seq: seq, Hash: hash}))
			}
		} else {
			keep(err)
		}
		keep(w.Audit.Close())
	}
	if w.lock != nil {
		keep(w.backend.Unlock(w.lock.ID, false))
	}
	keep(w.State.Close())
	return first
}
