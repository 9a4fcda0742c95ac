// Package workspace is a runbook's .switchover directory: the state log, the
// lock, the audit trail and the workspace identity that decrypts secrets.
package workspace

import (
	"crypto/hmac"
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"syscall"

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
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	if err := CheckPrivate(dir); err != nil {
		return nil, err
	}
	b, err := state.OpenFile(dir)
	if err != nil {
		return nil, fmt.Errorf("opening the state in %s: %w", dir, err)
	}
	m, err := state.NewManager(b)
	if err != nil {
		_ = b.Close()
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
	_ = w.State.Close() // read only so far; read again below
	b, err := state.OpenFile(w.Dir)
	if err == nil {
		w.backend = b
		w.State, err = state.NewManager(b)
	}
	if err != nil {
		w.lock = nil
		return errors.Join(fmt.Errorf("reading the state: %w", err), state.RemoveLock(w.Dir, li.ID))
	}
	a, err := audit.Open(filepath.Join(w.Dir, audit.FileName), Actor())
	if err != nil {
		w.lock = nil
		return errors.Join(fmt.Errorf("opening the audit trail: %w", err), w.backend.Unlock(li.ID, false))
	}
	w.Audit = a
	// Lines after the anchored head (a run killed before it anchored them,
	// or appended by someone): say so in the trail before this session
	// anchors a new head over them.
	seq, _ := a.Head()
	var anchored int64
	w.State.View(func(s *state.Snapshot) { anchored = s.AuditSeq })
	if seq > anchored {
		if err := a.Append(audit.EvUnanchoredLinesFound, "", map[string]any{"from_seq": anchored + 1, "to_seq": seq}); err != nil {
			return fmt.Errorf("writing the audit trail: %w", err)
		}
	}
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

// Identity loads the workspace identity, creating it on first use. It
// refuses to make a new one while the state holds data the old one
// encrypted: a new identity could never decrypt them.
func (w *Workspace) Identity() (*age.X25519Identity, bool, error) {
	path := filepath.Join(w.Dir, secrets.IdentityFile)
	if _, err := os.Lstat(path); errors.Is(err, os.ErrNotExist) {
		sealed := 0
		w.State.View(func(s *state.Snapshot) {
			sealed = len(s.Secrets)
			for _, in := range s.Instances {
				if in.Sealed || len(in.SealedOutputs) > 0 {
					sealed++
				}
			}
		})
		if sealed > 0 {
			return nil, false, fmt.Errorf("the workspace identity %s is missing, but the state holds %d encrypted secrets or records that only it can decrypt: restore the file from your backup (or from where you copied it); a new identity would lose them", path, sealed)
		}
	}
	return secrets.LoadOrCreateIdentity(w.Dir)
}

// PlanKey is the key that authenticates this workspace's saved plans
// (HMAC-SHA256), derived from the workspace identity: a plan file edited
// after it was written, or made in another workspace, is refused.
func PlanKey(id *age.X25519Identity) []byte {
	m := hmac.New(sha256.New, []byte(id.String()))
	m.Write([]byte("switchover saved plan v1"))
	return m.Sum(nil)
}

// CheckPrivate refuses a workspace directory, or a file in it, that another
// user could have planted or can read: not owned by the current user, open
// to group or others, or a symbolic link (root would follow it and
// overwrite the target).
func CheckPrivate(dir string) error {
	fi, err := os.Lstat(dir)
	if err != nil {
		return err
	}
	uid := os.Geteuid()
	check := func(path string, fi os.FileInfo) error {
		if fi.Mode()&os.ModeSymlink != 0 {
			return fmt.Errorf("refusing the workspace: %s is a symbolic link (move it away; switchover will not follow it)", path)
		}
		st, ok := fi.Sys().(*syscall.Stat_t)
		if ok && int(st.Uid) != uid {
			return fmt.Errorf("refusing the workspace: %s is owned by uid %d, not by you (uid %d); someone else may have made it to read your secrets: check it, then remove it or fix its owner", path, st.Uid, uid)
		}
		if fi.Mode().Perm()&0o077 != 0 {
			return fmt.Errorf("refusing the workspace: %s has mode %04o; group and others must have no access (chmod go= %s after checking who could have changed it)", path, fi.Mode().Perm(), path)
		}
		return nil
	}
	if err := check(dir, fi); err != nil {
		return err
	}
	if !fi.IsDir() {
		return fmt.Errorf("refusing the workspace: %s is not a directory", dir)
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range ents {
		fi, err := e.Info()
		if err != nil {
			return err
		}
		if err := check(filepath.Join(dir, e.Name()), fi); err != nil {
			return err
		}
	}
	return nil
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
