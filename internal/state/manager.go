package state

import (
	"errors"
	"fmt"
	"sync"
	"time"
)

// Manager folds a backend's records into a snapshot and writes them in
// batches: records queued while a write is in flight are written together by
// the next one (group commit), so N parallel steps cost about one fsync, not
// N.
//
// The snapshot follows the queue, not the disk: a record is folded in when
// it is queued, and the disk holds a prefix of the queue, in the same order.
// Append returns once its records (and so every record queued before them)
// are durable; AppendLater returns at once, and its records become durable
// with the next write. A write error is kept: every later Append, Flush and
// Close returns it and nothing more is written, so the disk never holds a
// record whose predecessors were lost.
type Manager struct {
	backend Backend

	mu   sync.Mutex // the snapshot, and the order records are queued in
	snap *Snapshot

	queue   chan *pending
	stopped chan struct{}
	closeMu sync.Once

	errMu sync.Mutex
	err   error // the first write error
}

type pending struct {
	recs []*Record
	done chan error // nil: nobody waits (AppendLater)
}

// NewManager loads the backend's records.
func NewManager(b Backend) (*Manager, error) {
	snap, err := fold(b)
	if err != nil {
		return nil, err
	}
	m := &Manager{backend: b, snap: snap, queue: make(chan *pending, 1024), stopped: make(chan struct{})}
	go m.writer()
	return m, nil
}

func fold(b Backend) (*Snapshot, error) {
	recs, err := b.Records()
	if err != nil {
		return nil, err
	}
	snap := NewSnapshot()
	for _, r := range recs {
		snap.Apply(r)
	}
	return snap, nil
}

// Lock takes the backend's lock and folds the records again: what was read
// before may be stale.
func (m *Manager) Lock(info LockInfo) error {
	if err := m.Flush(); err != nil {
		return err
	}
	if err := m.backend.Lock(info); err != nil {
		return err
	}
	snap, err := fold(m.backend)
	if err != nil {
		return errors.Join(fmt.Errorf("reading the state: %w", err), m.backend.Unlock(info.ID, false))
	}
	m.mu.Lock()
	m.snap = snap
	m.mu.Unlock()
	return nil
}

func (m *Manager) writer() {
	defer close(m.stopped)
	for p := range m.queue {
		batch := []*pending{p}
	drain:
		for {
			select {
			case q, ok := <-m.queue:
				if !ok {
					break drain
				}
				batch = append(batch, q)
			default:
				break drain
			}
		}
		var recs []*Record
		for _, b := range batch {
			recs = append(recs, b.recs...)
		}
		err := m.writeErr()
		if err == nil && len(recs) > 0 {
			if err = m.backend.Append(recs); err != nil {
				m.errMu.Lock()
				m.err = err
				m.errMu.Unlock()
			}
		}
		for _, b := range batch {
			if b.done != nil {
				b.done <- err
			}
		}
	}
}

func (m *Manager) writeErr() error {
	m.errMu.Lock()
	defer m.errMu.Unlock()
	return m.err
}

// enqueue folds the records into the snapshot and queues them, in one order.
func (m *Manager) enqueue(recs []*Record, done chan error) {
	now := time.Now().UTC()
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, r := range recs {
		if r.Time.IsZero() {
			r.Time = now
		}
		m.snap.Apply(r)
	}
	m.queue <- &pending{recs: recs, done: done}
}

// Append queues the records (in order, together) and returns once they, and
// every record queued before them, are durable.
func (m *Manager) Append(recs ...*Record) error {
	if err := m.writeErr(); err != nil {
		return err
	}
	done := make(chan error, 1)
	m.enqueue(recs, done)
	return <-done
}

// AppendLater queues the records and returns at once: for a record whose
// loss in a crash costs only a second look (a step's "done", which the next
// apply plans again and finds done). The next Append, Flush or Close makes
// it durable, or returns the error that kept it from the disk.
func (m *Manager) AppendLater(recs ...*Record) {
	m.enqueue(recs, nil)
}

// Flush returns once every record queued so far is durable.
func (m *Manager) Flush() error {
	return m.Append()
}

// View calls f with the snapshot under the lock; f must not keep it.
func (m *Manager) View(f func(s *Snapshot)) {
	m.mu.Lock()
	defer m.mu.Unlock()
	f(m.snap)
}

// Instance returns a copy of an instance's state, or nil.
func (m *Manager) Instance(addr string) *Instance {
	m.mu.Lock()
	defer m.mu.Unlock()
	in := m.snap.Instances[addr]
	if in == nil {
		return nil
	}
	c := *in
	return &c
}

// Serial changes whenever the run's state does.
func (m *Manager) Serial() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.snap.Serial
}

// Backend returns the backend.
func (m *Manager) Backend() Backend { return m.backend }

// Close writes what is queued, stops the writer and closes the backend.
func (m *Manager) Close() error {
	m.closeMu.Do(func() { close(m.queue) })
	<-m.stopped
	return errors.Join(m.writeErr(), m.backend.Close())
}
