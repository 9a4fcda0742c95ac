package state

import (
	"errors"
	"fmt"
	"sync"
	"time"
)

// Manager folds a backend's records into a snapshot and makes appends
// durable in batches: concurrent Append calls issued while a write is in
// flight are written together by the next one (group commit), so N parallel
// steps cost about one fsync, not N.
type Manager struct {
	backend Backend

	mu   sync.Mutex
	snap *Snapshot

	queue   chan *pending
	stopped chan struct{}
	closeMu sync.Once
}

type pending struct {
	recs []*Record
	done chan error
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
		err := m.backend.Append(recs)
		if err == nil {
			m.mu.Lock()
			for _, r := range recs {
				m.snap.Apply(r)
			}
			m.mu.Unlock()
		}
		for _, b := range batch {
			b.done <- err
		}
	}
}

// Append makes the records durable (in order, together) and folds them into
// the snapshot. It returns once they are durable.
func (m *Manager) Append(recs ...*Record) error {
	now := time.Now().UTC()
	for _, r := range recs {
		if r.Time.IsZero() {
			r.Time = now
		}
	}
	p := &pending{recs: recs, done: make(chan error, 1)}
	m.queue <- p
	return <-p.done
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

// Close stops the writer and closes the backend.
func (m *Manager) Close() error {
	m.closeMu.Do(func() { close(m.queue) })
	<-m.stopped
	return m.backend.Close()
}
