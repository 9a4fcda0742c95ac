// Package workspace is a runbook's .switchover directory: the state log, the
// lock, the audit trail and the workspace identity that decrypts secrets.
package workspace

import (
	"context"
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"filippo.io/age"
	"github.com/google/uuid"

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
	backend state.Backend
	lock    *state.LockInfo
	// stopWatch ends LockSession's watch of the lock.
	stopWatch func()
	// lost: the lock was taken away; nothing more is written.
	lost atomic.Bool
}

// guardedBackend refuses appends once its session lost the lock: the state
// is then another session's to write.
type guardedBackend struct {
	state.Backend
	lost *atomic.Bool
}

func (g guardedBackend) Append(recs []*state.Record) error {
	if g.lost.Load() {
		return ErrLockLost
	}
	return g.Backend.Append(recs)
}

type guardedJournal struct {
	audit.Journal
	lost *atomic.Bool
}

func (g guardedJournal) Append(line []byte) error {
	if g.lost.Load() {
		return ErrLockLost
	}
	return g.Journal.Append(line)
}

// guardedLines is a guardedJournal whose journal takes lines together.
type guardedLines struct {
	guardedJournal
	lines audit.LinesJournal
}

func (g guardedLines) AppendLines(lines [][]byte) error {
	if g.lost.Load() {
		return ErrLockLost
	}
	return g.lines.AppendLines(lines)
}

// guard fences j's appends with the session's lock.
func guard(j audit.Journal, lost *atomic.Bool) audit.Journal {
	g := guardedJournal{Journal: j, lost: lost}
	if lj, ok := j.(audit.LinesJournal); ok {
		return guardedLines{g, lj}
	}
	return g
}

// Path returns the workspace directory of a runbook directory.
func Path(runbookDir string) string { return filepath.Join(runbookDir, DirName) }

// Exists reports whether the runbook has a workspace yet.
func Exists(runbookDir string) bool {
	_, err := os.Stat(filepath.Join(Path(runbookDir), "state.log"))
	return err == nil
}

// Open opens (creating) the workspace of a runbook directory for reading,
// with the state in files. Lock it before changing anything: only then are
// State appends and the Audit trail available.
func Open(runbookDir string) (*Workspace, error) { return OpenWith(runbookDir, state.Open) }

// OpenWith is Open with another state backend.
func OpenWith(runbookDir string, open state.Opener) (*Workspace, error) {
	dir := Path(runbookDir)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	if err := CheckPrivate(dir); err != nil {
		return nil, err
	}
	b, err := open(dir)
	if err != nil {
		return nil, fmt.Errorf("opening the state in %s: %w", dir, err)
	}
	w := &Workspace{Dir: dir, backend: b}
	m, err := state.NewManager(guardedBackend{Backend: b, lost: &w.lost})
	if err != nil {
		_ = b.Close()
		return nil, err
	}
	w.State = m
	return w, nil
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

// Lock takes the state's lock for op, reads the state again (what was read
// before the lock may be stale) and opens the audit trail for appending.
func (w *Workspace) Lock(op string) error {
	li := state.NewLockInfo(op)
	if err := w.State.Lock(li); err != nil {
		return err
	}
	w.lock = &li
	j, err := w.backend.Journal()
	var a *audit.Log
	if err == nil {
		a, err = audit.New(guard(j, &w.lost), Actor())
	}
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

// ErrLockLost: while this session ran, its lock was removed or taken by
// another process (switchover unlock).
var ErrLockLost = errors.New("this session's state lock was removed or taken by another process (switchover unlock?): stopping, so that two runs do not change the same systems")

// LockCheckInterval is how often a session made by LockSession checks that
// it still holds the lock.
var LockCheckInterval = 2 * time.Second

// LockSession takes the lock once for a session (as restic's lockRepo
// does): it returns a context that is cancelled, with cause ErrLockLost,
// when the lock is lost, and the unlock, which is Close.
func (w *Workspace) LockSession(ctx context.Context, op string) (context.Context, func() error, error) {
	if err := w.Lock(op); err != nil {
		return ctx, func() error { return nil }, err
	}
	cctx, cancel := context.WithCancelCause(ctx)
	id := w.lock.ID
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(LockCheckInterval)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-cctx.Done():
				return
			case <-t.C:
			}
			h, locked, err := w.backend.LockHolder()
			if err == nil && (!locked || h.ID != id) {
				w.lost.Store(true)
				cancel(ErrLockLost)
				return
			}
		}
	}()
	var once sync.Once
	w.stopWatch = func() {
		once.Do(func() {
			close(stop)
			<-done
			cancel(context.Canceled)
		})
	}
	return cctx, w.Close, nil
}

// BeginRun records an approved run: first in the audit trail (nothing
// changes before the approval is there), then in the state.
func (w *Workspace) BeginRun(how, runbookHash string) (string, error) {
	runID := uuid.NewString()
	if err := w.Audit.Append(audit.EvApplyApproved, "", map[string]any{"how": how, "run": runID, "runbook_hash": runbookHash}); err != nil {
		return "", fmt.Errorf("writing the audit trail: %w", err)
	}
	if err := w.State.Append(&state.Record{Kind: state.KindRun, RunID: runID, RunbookHash: runbookHash}); err != nil {
		return "", fmt.Errorf("writing the state: %w", err)
	}
	return runID, nil
}

// Confirm records that a person did a manual step: in the audit trail
// first, then in the state (which lets apply go past the step).
func (w *Workspace) Confirm(addr, by, note string) error {
	if err := w.Audit.Append(audit.EvConfirmed, addr, map[string]any{"by": by, "note": note}); err != nil {
		return fmt.Errorf("writing the audit trail (nothing was recorded): %w", err)
	}
	if err := w.State.Append(&state.Record{Kind: state.KindConfirm, Address: addr, By: by, Note: note}); err != nil {
		return fmt.Errorf("the audit trail has the confirmation, but the state could not be written (confirm again): %w", err)
	}
	return nil
}

// ForceUnlock removes any lock, then holds it itself (so that the removal
// can be recorded in the audit trail); Close releases it.
func (w *Workspace) ForceUnlock() (state.LockInfo, error) {
	holder, _, _ := w.backend.LockHolder() // an unreadable lock is removed too
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

// SigningKey is the workspace's Ed25519 key that signs its handover
// bundles, derived from the workspace identity (nothing more to keep).
func SigningKey(id *age.X25519Identity) ed25519.PrivateKey {
	m := hmac.New(sha256.New, []byte(id.String()))
	m.Write([]byte("switchover handover bundle signing key v1"))
	return ed25519.NewKeyFromSeed(m.Sum(nil))
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
	if w.stopWatch != nil {
		w.stopWatch()
	}
	var first error
	keep := func(err error) {
		if err != nil && first == nil {
			first = err
		}
	}
	if w.lost.Load() {
		// The state and the trail are another session's now: anchor
		// nothing, release nothing (the session's context said why).
		w.lock = nil
	} else if w.Audit != nil {
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
	}
	if w.lock != nil {
		keep(w.backend.Unlock(w.lock.ID, false))
	}
	keep(w.State.Close())
	return first
}
