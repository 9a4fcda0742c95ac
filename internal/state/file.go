package state

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/switchover/switchover/internal/audit"
)

// FileBackend is the embedded default: an append-only log in a directory
// (normally the runbook's .switchover/). Each record is one line:
//
//	CRC32C(hex, 8) SPACE JSON NEWLINE
//
// A line whose checksum does not match, or that has no newline, ends the
// valid log: it is the torn tail of a write cut off by a crash, and it is
// cut away when the log is opened. Appends are one write and one fsync.
type FileBackend struct {
	dir  string
	mu   sync.Mutex
	f    *os.File
	recs []*Record
	// valid is the length of the valid log; size the file's length when
	// read. A torn tail is cut away before the first append, which only a
	// lock holder makes: a reader must not cut a write in flight.
	valid, size int64
	repaired    bool
	// held is the id of the lock this backend took (released by Close).
	held    string
	journal *audit.FileJournal
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

const logName = "state.log"
const lockName = "lock.json"

// Open is OpenFile as an Opener.
func Open(dir string) (Backend, error) { return OpenFile(dir) }

// OpenFile opens (creating) the file backend in dir. The log is opened for
// appending: two writers (one whose lock was taken away) can interleave
// records, never overwrite them.
func OpenFile(dir string) (*FileBackend, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	path := filepath.Join(dir, logName)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_APPEND|os.O_CREATE|syscall.O_NOFOLLOW, 0o600)
	if err != nil {
		return nil, err
	}
	recs, valid, err := readLog(f)
	if err != nil {
		f.Close()
		return nil, err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	if err := syncDir(dir); err != nil {
		f.Close()
		return nil, err
	}
	return &FileBackend{dir: dir, f: f, recs: recs, valid: valid, size: st.Size()}, nil
}

// repair drops a torn tail, durably, before anything is appended after it.
func (b *FileBackend) repair() error {
	if b.repaired {
		return nil
	}
	if b.size != b.valid {
		// Keep what is cut away, for whoever wants to look at it.
		torn := make([]byte, b.size-b.valid)
		if _, err := b.f.ReadAt(torn, b.valid); err != nil && err != io.EOF {
			return fmt.Errorf("reading the torn end of the state log: %w", err)
		}
		keep := filepath.Join(b.dir, fmt.Sprintf("%s.torn-%d", logName, time.Now().UnixNano()))
		if err := os.WriteFile(keep, torn, 0o600); err != nil {
			return fmt.Errorf("keeping a copy of the torn end of the state log: %w", err)
		}
		if err := b.f.Truncate(b.valid); err != nil {
			return fmt.Errorf("cutting the torn end of the state log: %w", err)
		}
		if err := b.f.Sync(); err != nil {
			return err
		}
	}
	if _, err := b.f.Seek(b.valid, io.SeekStart); err != nil {
		return err
	}
	b.repaired = true
	return nil
}

// CorruptError: a damaged record is followed by valid ones, so it is not
// the torn tail of a crash but damage in the middle of the log. Nothing is
// cut: every later record (a secret, a done step) would be lost with it.
type CorruptError struct {
	Path  string
	Line  int // 1-based
	Later int // valid records after it
}

func (e *CorruptError) Error() string {
	return fmt.Sprintf("the state log %s is damaged at line %d, and %d valid records follow it: this is not the torn end of a crash, so nothing was changed or cut. "+
		"Restore the file from a backup, or repair line %d by hand (keep a copy first); then run switchover again", e.Path, e.Line, e.Later, e.Line)
}

func readLog(f *os.File) ([]*Record, int64, error) {
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return nil, 0, err
	}
	r := bufio.NewReaderSize(f, 1<<20)
	var recs []*Record
	var valid int64
	bad := 0 // line number of the first damaged line
	later := 0
	for n := 1; ; n++ {
		line, err := r.ReadBytes('\n')
		if err != nil && err != io.EOF {
			return nil, 0, err
		}
		if len(line) == 0 && err == io.EOF {
			break
		}
		rec, ok := parseLine(line)
		switch {
		case bad != 0:
			if ok {
				later++
			}
		case !ok:
			bad = n // a partial last line (no newline) is torn
		default:
			recs = append(recs, rec)
			valid += int64(len(line))
		}
		if err == io.EOF {
			break
		}
	}
	if later > 0 {
		return nil, 0, &CorruptError{Path: f.Name(), Line: bad, Later: later}
	}
	return recs, valid, nil
}

func parseLine(line []byte) (*Record, bool) {
	if len(line) < 10 || line[8] != ' ' || line[len(line)-1] != '\n' {
		return nil, false
	}
	body := line[9 : len(line)-1]
	// Compare the exact encoding, so that no variant spelling of the sum
	// (upper-case hex) passes.
	if fmt.Sprintf("%08x", crc32.Checksum(body, castagnoli)) != string(line[:8]) {
		return nil, false
	}
	var rec Record
	if err := json.Unmarshal(body, &rec); err != nil {
		return nil, false
	}
	return &rec, true
}

func encodeLine(buf *bytes.Buffer, rec *Record) error {
	body, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	fmt.Fprintf(buf, "%08x ", crc32.Checksum(body, castagnoli))
	buf.Write(body)
	buf.WriteByte('\n')
	return nil
}

// Append implements Backend.
func (b *FileBackend) Append(recs []*Record) error {
	var buf bytes.Buffer
	for _, r := range recs {
		if err := encodeLine(&buf, r); err != nil {
			return err
		}
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.f == nil {
		return errors.New("state backend is closed")
	}
	if err := b.repair(); err != nil {
		return err
	}
	if _, err := b.f.Write(buf.Bytes()); err != nil {
		return fmt.Errorf("writing the state log: %w", err)
	}
	if err := b.f.Sync(); err != nil {
		return fmt.Errorf("syncing the state log: %w", err)
	}
	b.recs = append(b.recs, recs...)
	return nil
}

// Records implements Backend.
func (b *FileBackend) Records() ([]*Record, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]*Record(nil), b.recs...), nil
}

// Close implements Backend.
func (b *FileBackend) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.f == nil {
		return nil
	}
	var errs []error
	if b.journal != nil {
		errs = append(errs, b.journal.Close())
		b.journal = nil
	}
	if b.held != "" {
		// Release our lock; one another process took meanwhile stays.
		var le *LockedError
		if err := b.unlock(b.held, false); err != nil && !errors.Is(err, ErrNotLocked) && !errors.As(err, &le) {
			errs = append(errs, err)
		}
		b.held = ""
	}
	errs = append(errs, b.f.Close())
	b.f = nil
	return errors.Join(errs...)
}

// Journal implements Backend: audit.jsonl next to the state log.
func (b *FileBackend) Journal() (audit.Journal, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.f == nil {
		return nil, errors.New("state backend is closed")
	}
	if b.journal == nil {
		j, err := audit.OpenFile(filepath.Join(b.dir, audit.FileName))
		if err != nil {
			return nil, err
		}
		b.journal = j
	}
	return b.journal, nil
}

// reread reads the log again (after taking the lock).
func (b *FileBackend) reread() error {
	if _, err := b.f.Seek(0, io.SeekStart); err != nil {
		return err
	}
	recs, valid, err := readLog(b.f)
	if err != nil {
		return err
	}
	st, err := b.f.Stat()
	if err != nil {
		return err
	}
	b.recs, b.valid, b.size, b.repaired = recs, valid, st.Size(), false
	return nil
}

// Lock implements Backend with a lock file created exclusively.
func (b *FileBackend) Lock(info LockInfo) error {
	path := filepath.Join(b.dir, lockName)
	data, _ := json.Marshal(info)
	for try := 0; try < 3; try++ {
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err == nil {
			_, werr := f.Write(data)
			serr := f.Sync()
			cerr := f.Close()
			if err := errors.Join(werr, serr, cerr); err != nil {
				os.Remove(path)
				return err
			}
			if err := syncDir(b.dir); err != nil {
				return err
			}
			b.mu.Lock()
			defer b.mu.Unlock()
			b.held = info.ID
			if b.f == nil {
				return errors.New("state backend is closed")
			}
			// What was read before the lock may be stale.
			if err := b.reread(); err != nil {
				return errors.Join(fmt.Errorf("reading the state: %w", err), b.unlock(info.ID, false))
			}
			return nil
		}
		if !errors.Is(err, os.ErrExist) {
			return err
		}
		holder, rerr := readLock(path)
		if rerr != nil {
			// A lock file cut off by a crash right after its creation.
			if fi, serr := os.Stat(path); serr == nil && fi.Size() == 0 {
				os.Remove(path)
				continue
			}
			return fmt.Errorf("the state lock %s is unreadable (%v); remove it with `switchover unlock`", path, rerr)
		}
		if !holder.deadOnThisHost() {
			return &LockedError{Holder: holder}
		}
		// Its process is gone: take the lock over (atomically, so that of two
		// processes doing this at once only one wins).
		stale := path + ".stale-" + info.ID
		if err := os.Rename(path, stale); err == nil {
			os.Remove(stale)
		}
	}
	return fmt.Errorf("could not take the state lock %s", path)
}

func readLock(path string) (LockInfo, error) {
	var li LockInfo
	b, err := os.ReadFile(path)
	if err != nil {
		return li, err
	}
	err = json.Unmarshal(b, &li)
	return li, err
}

// HolderGone: the lock's holder was a process on this host that is no
// longer running (its lock may be taken over).
func HolderGone(li LockInfo) bool { return li.deadOnThisHost() }

func (li LockInfo) deadOnThisHost() bool {
	host, _ := os.Hostname()
	if li.Host != host || li.PID <= 0 {
		return false
	}
	return errors.Is(syscall.Kill(li.PID, 0), syscall.ESRCH)
}

// Unlock implements Backend.
func (b *FileBackend) Unlock(id string, force bool) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	err := b.unlock(id, force)
	if err == nil && (force || id == b.held) {
		b.held = ""
	}
	return err
}

func (b *FileBackend) unlock(id string, force bool) error {
	path := filepath.Join(b.dir, lockName)
	holder, err := readLock(path)
	if errors.Is(err, os.ErrNotExist) {
		return ErrNotLocked
	}
	if err == nil && !force && holder.ID != id {
		return &LockedError{Holder: holder}
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return syncDir(b.dir)
}

// LockHolder implements Backend.
func (b *FileBackend) LockHolder() (LockInfo, bool, error) {
	li, err := readLock(filepath.Join(b.dir, lockName))
	if errors.Is(err, os.ErrNotExist) {
		return LockInfo{}, false, nil
	}
	if err != nil {
		return LockInfo{}, false, fmt.Errorf("the state lock is unreadable: %w", err)
	}
	return li, true, nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
