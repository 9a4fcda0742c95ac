// Package audit is the append-only, hash-chained journal of everything a run
// did: plans, approvals, step starts, finishes and failures, confirmations,
// secrets created (by name only).
//
// Each line is one JSON object whose "prev" is the SHA-256 of the previous
// line's exact bytes, and whose "seq" counts from 1. Verify finds a changed,
// deleted, inserted or reordered line and says which. The head (last seq and
// the hash of the last line) is anchored elsewhere (the state), so that a
// deleted or changed last line is found too.
package audit

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"syscall"
	"time"
)

// FileName of the journal in the state directory.
const FileName = "audit.jsonl"

// Entry is one line.
type Entry struct {
	Seq     int64          `json:"seq"`
	Time    time.Time      `json:"time"`
	Event   string         `json:"event"`
	Actor   string         `json:"actor,omitempty"`
	Address string         `json:"address,omitempty"`
	Fields  map[string]any `json:"fields,omitempty"`
	Prev    string         `json:"prev"`
}

// Journal stores the trail's lines. The state backend provides it (a file
// next to the state log; a table in a database), so that the trail lives
// and is locked with the state it is anchored in.
type Journal interface {
	// ReadAll returns every complete line (a torn last line, from a write
	// cut off by a crash, is not returned; it is removed before the next
	// Append).
	ReadAll() ([]byte, error)
	// Append stores one line (ending in a newline) at once: a killed
	// process loses nothing that Append returned.
	Append(line []byte) error
	// Sync makes what was appended survive a power loss.
	Sync() error
	Close() error
}

// Log appends to a journal.
type Log struct {
	mu    sync.Mutex
	j     Journal
	seq   int64
	last  string // hash of the last line
	actor string

	written     int64  // the last line written (seq)
	writtenHash string // and its hash
	// A LinesJournal's lines wait in queue for the flush goroutine.
	queue    []queuedLine
	flushing bool
	idle     sync.Cond // flushing ended
	err      error     // a batch failed: the trail is stopped
}

var genesis = hex.EncodeToString(make([]byte, 32))

// New continues the trail in j, as actor.
func New(j Journal, actor string) (*Log, error) {
	data, err := j.ReadAll()
	if err != nil {
		return nil, err
	}
	l := &Log{j: j, last: genesis, actor: actor}
	l.idle.L = &l.mu
	for len(data) > 0 {
		i := bytes.IndexByte(data, '\n')
		if i < 0 {
			break
		}
		line := data[:i+1]
		var e Entry
		if json.Unmarshal(line, &e) == nil {
			l.seq = e.Seq
		}
		l.last = hashLine(line)
		data = data[i+1:]
	}
	l.written, l.writtenHash = l.seq, l.last
	return l, nil
}

// Open continues the trail in the file at path (see OpenFile).
func Open(path, actor string) (*Log, error) {
	j, err := OpenFile(path)
	if err != nil {
		return nil, err
	}
	l, err := New(j, actor)
	if err != nil {
		_ = j.Close()
		return nil, err
	}
	return l, nil
}

// FileJournal is a Journal in one file, opened without following a
// symbolic link. A torn last line is cut away before the first Append, not
// when it is opened: a reader must not cut a write in flight.
type FileJournal struct {
	mu       sync.Mutex
	f        *os.File
	valid    int64 // length of the complete lines, when read
	read     bool
	repaired bool
}

// OpenFile opens (creating) the journal file at path.
func OpenFile(path string) (*FileJournal, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_APPEND|os.O_CREATE|syscall.O_NOFOLLOW, 0o600)
	if err != nil {
		return nil, err
	}
	return &FileJournal{f: f}, nil
}

// ReadAll implements Journal.
func (j *FileJournal) ReadAll() ([]byte, error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.readAll()
}

func (j *FileJournal) readAll() ([]byte, error) {
	if j.f == nil {
		return nil, errors.New("the audit journal is closed")
	}
	st, err := j.f.Stat()
	if err != nil {
		return nil, err
	}
	data := make([]byte, st.Size())
	n, err := j.f.ReadAt(data, 0)
	if err != nil && err != io.EOF {
		return nil, err
	}
	data = data[:n]
	data = data[:bytes.LastIndexByte(data, '\n')+1]
	if !j.repaired {
		j.valid, j.read = int64(len(data)), true
	}
	return data, nil
}

// Append implements Journal.
func (j *FileJournal) Append(line []byte) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.f == nil {
		return errors.New("the audit journal is closed")
	}
	if !j.repaired {
		// The length of the complete lines is known from the reading that
		// came before (audit.New reads the trail once); read only if none did.
		if !j.read {
			if _, err := j.readAll(); err != nil {
				return err
			}
		}
		// Opened O_APPEND: after the cut, writes land at the end.
		if err := j.f.Truncate(j.valid); err != nil {
			return err
		}
		j.repaired = true
	}
	_, err := j.f.Write(line)
	return err
}

// Sync implements Journal.
func (j *FileJournal) Sync() error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.f == nil {
		return nil
	}
	return j.f.Sync()
}

// Close implements Journal.
func (j *FileJournal) Close() error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.f == nil {
		return nil
	}
	err := errors.Join(j.f.Sync(), j.f.Close())
	j.f = nil
	return err
}

func hashLine(line []byte) string {
	h := sha256.Sum256(line)
	return hex.EncodeToString(h[:])
}

// Append writes one entry. It is written to the file at once (a killed
// process loses nothing); Sync makes it survive a power loss.
//
// A journal that takes several lines at once (LinesJournal: one INSERT
// for a database) gets the lines of concurrent Appends together, in their
// order, as a group commit does; each Append still returns only once its
// line is written. A batch that cannot be written stops the trail: every
// later Append fails with its error (the chain would have a hole).
func (l *Log) Append(event Event, address string, fields map[string]any) error {
	l.mu.Lock()
	if l.err != nil {
		l.mu.Unlock()
		return l.err
	}
	e := Entry{Seq: l.seq + 1, Time: time.Now().UTC(), Event: string(event), Actor: l.actor, Address: address, Fields: fields, Prev: l.last}
	b, err := json.Marshal(e)
	if err != nil {
		l.mu.Unlock()
		return err
	}
	b = append(b, '\n')
	lj, batched := l.j.(LinesJournal)
	if !batched {
		defer l.mu.Unlock()
		if err := l.j.Append(b); err != nil {
			return fmt.Errorf("writing the audit trail: %w", err)
		}
		l.seq, l.last = e.Seq, hashLine(b)
		l.written, l.writtenHash = l.seq, l.last
		return nil
	}
	done := make(chan error, 1)
	l.seq, l.last = e.Seq, hashLine(b)
	l.queue = append(l.queue, queuedLine{line: b, seq: e.Seq, hash: l.last, done: done})
	if !l.flushing {
		l.flushing = true
		go l.flush(lj)
	}
	l.mu.Unlock()
	return <-done
}

// LinesJournal is a Journal that appends several lines at once, in order,
// all or none.
type LinesJournal interface {
	AppendLines(lines [][]byte) error
}

type queuedLine struct {
	line []byte
	seq  int64
	hash string
	done chan error
}

// flush writes what is queued, a batch at a time, until nothing is.
func (l *Log) flush(lj LinesJournal) {
	for {
		l.mu.Lock()
		batch, err := l.queue, l.err
		l.queue = nil
		if len(batch) == 0 {
			l.flushing = false
			l.idle.Broadcast()
			l.mu.Unlock()
			return
		}
		l.mu.Unlock()
		if err == nil {
			lines := make([][]byte, len(batch))
			for i, q := range batch {
				lines[i] = q.line
			}
			if err = lj.AppendLines(lines); err != nil {
				err = fmt.Errorf("writing the audit trail: %w", err)
			}
		}
		l.mu.Lock()
		if err != nil && l.err == nil {
			l.err = err
		}
		if err == nil {
			last := batch[len(batch)-1]
			l.written, l.writtenHash = last.seq, last.hash
		}
		l.mu.Unlock()
		for _, q := range batch {
			q.done <- err
		}
	}
}

// Head returns the seq and line hash of the last line written.
func (l *Log) Head() (int64, string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.written, l.writtenHash
}

// Sync flushes the journal to disk, once no line is waiting to be written.
func (l *Log) Sync() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	for l.flushing {
		l.idle.Wait()
	}
	if l.err != nil {
		return l.err
	}
	return l.j.Sync()
}

// Close syncs and closes.
func (l *Log) Close() error {
	l.mu.Lock()
	for l.flushing {
		l.idle.Wait()
	}
	l.mu.Unlock()
	return l.j.Close()
}

// Problem is one finding of Verify.
type Problem struct {
	Line    int // 1-based line number in the file (0: the file as a whole)
	Message string
	// PastHead: an intact line after the head the state recorded (a run
	// cut off before it anchored its lines, or one still going), not a
	// break of the chain.
	PastHead bool
}

// OnlyPastHead: every problem is a line past the recorded head; the chain
// itself holds.
func OnlyPastHead(ps []Problem) bool {
	for _, p := range ps {
		if !p.PastHead {
			return false
		}
	}
	return len(ps) > 0
}

func (p Problem) String() string {
	if p.Line == 0 {
		return p.Message
	}
	return fmt.Sprintf("line %d: %s", p.Line, p.Message)
}

// Verify checks the journal's chain and, when anchorSeq > 0, that it ends at
// the anchored head. It returns the entries read and the problems found.
func Verify(data []byte, anchorSeq int64, anchorHash string) ([]Entry, []Problem) {
	var entries []Entry
	var problems []Problem
	lines := bytes.SplitAfter(data, []byte("\n"))
	if n := len(lines); n > 0 && len(lines[n-1]) == 0 {
		lines = lines[:n-1]
	}
	prevHash := genesis
	var prevSeq int64
	for i, line := range lines {
		no := i + 1
		var e Entry
		if err := json.Unmarshal(line, &e); err != nil || line[len(line)-1] != '\n' {
			problems = append(problems, Problem{Line: no, Message: "not a valid journal entry (changed or cut off)"})
			prevHash, prevSeq = hashLine(line), prevSeq+1
			continue
		}
		entries = append(entries, e)
		switch {
		case e.Seq == prevSeq+1:
			if e.Prev != prevHash {
				if no == 1 {
					problems = append(problems, Problem{Line: no, Message: "does not start the chain: an earlier line was deleted, or this one inserted"})
				} else {
					problems = append(problems, Problem{Line: no - 1, Message: fmt.Sprintf("changed: its hash no longer matches the chain (line %d's prev)", no)})
				}
			}
		case e.Seq > prevSeq+1:
			if e.Prev == prevHash {
				problems = append(problems, Problem{Line: no, Message: fmt.Sprintf("seq %d follows seq %d: the seq was changed", e.Seq, prevSeq)})
			} else {
				problems = append(problems, Problem{Line: no, Message: fmt.Sprintf("seq %d follows seq %d: %d line(s) deleted before this line", e.Seq, prevSeq, e.Seq-prevSeq-1)})
			}
		default:
			problems = append(problems, Problem{Line: no, Message: fmt.Sprintf("seq %d follows seq %d: a line inserted here, or lines reordered", e.Seq, prevSeq)})
		}
		prevHash, prevSeq = hashLine(line), e.Seq
	}
	if anchorSeq == 0 {
		problems = append(problems, PastHead(entries, 0)...)
	} else {
		switch {
		case prevSeq < anchorSeq:
			problems = append(problems, Problem{Line: 0, Message: fmt.Sprintf("the journal ends at seq %d but the state recorded seq %d: the last %d line(s) were deleted", prevSeq, anchorSeq, anchorSeq-prevSeq)})
		case prevSeq >= anchorSeq:
			// The anchored line must still hash to the anchor, and every line
			// after it is outside what the state vouches for.
			for i, e := range entries {
				if e.Seq == anchorSeq && i < len(lines) {
					if h := hashLine(lines[i]); h != anchorHash && len(problems) == 0 {
						problems = append(problems, Problem{Line: i + 1, Message: "changed: it no longer matches the head recorded in the state"})
					}
				}
			}
			problems = append(problems, PastHead(entries, anchorSeq)...)
		}
	}
	return entries, problems
}

// PastHead reports the entries after the head the state recorded: written
// by a run that was killed before it anchored them (or that still runs),
// or appended by someone else. Either way the state does not vouch for them.
func PastHead(entries []Entry, anchorSeq int64) []Problem {
	var out []Problem
	for i, e := range entries {
		if e.Seq > anchorSeq {
			out = append(out, Problem{Line: i + 1, Message: fmt.Sprintf("seq %d (%s) is after the head recorded in the state (seq %d): not anchored; a run killed before it finished, a run still going, or a line appended by someone else", e.Seq, e.Event, anchorSeq), PastHead: true})
		}
	}
	return out
}

// LineHash returns the hash of the last line of data: the head to compare
// with one written down elsewhere.
func LineHash(data []byte) string {
	lines := bytes.SplitAfter(data, []byte("\n"))
	for i := len(lines) - 1; i >= 0; i-- {
		if len(lines[i]) > 0 {
			return hashLine(lines[i])
		}
	}
	return genesis
}
