package audit

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// linesJournal is a LinesJournal in memory, slow as a database's round
// trip, that can be told to fail from one batch on.
type linesJournal struct {
	mu      sync.Mutex
	data    []byte
	lines   int
	batches int
	failAt  int // the batch (1-based) from which AppendLines fails; 0: never
}

var errDown = errors.New("database went away")

func (j *linesJournal) ReadAll() ([]byte, error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	return append([]byte(nil), j.data...), nil
}
func (j *linesJournal) Append(line []byte) error { return j.AppendLines([][]byte{line}) }
func (j *linesJournal) AppendLines(lines [][]byte) error {
	time.Sleep(time.Millisecond)
	j.mu.Lock()
	defer j.mu.Unlock()
	j.batches++
	if j.failAt > 0 && j.batches >= j.failAt {
		return errDown
	}
	for _, l := range lines {
		j.data = append(j.data, l...)
	}
	j.lines += len(lines)
	return nil
}
func (j *linesJournal) Sync() error  { return nil }
func (j *linesJournal) Close() error { return nil }

func (j *linesJournal) written() int {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.lines
}

// Concurrent Appends share statements, in their order, and each returns
// only once its line is written: the trail verifies against its head.
func TestConcurrentAppendsShareBatchesInOrder(t *testing.T) {
	j := &linesJournal{}
	l, err := New(j, "tester@host")
	if err != nil {
		t.Fatal(err)
	}
	const workers, each = 20, 25
	var returned atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, workers*each)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < each; i++ {
				if err := l.Append("step_done", fmt.Sprintf("step.s[%d]", w), map[string]any{"i": i}); err != nil {
					errs <- err
					return
				}
				// Every Append that returned has its line written.
				if n := returned.Add(1); int64(j.written()) < n {
					errs <- fmt.Errorf("%d Appends returned, %d lines written", n, j.written())
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if err := l.Sync(); err != nil {
		t.Fatal(err)
	}
	seq, head := l.Head()
	entries, problems := Verify(j.data, seq, head)
	if len(problems) != 0 || len(entries) != workers*each || seq != workers*each {
		t.Fatalf("%d entries (head %d), problems %v", len(entries), seq, problems)
	}
	if j.batches >= workers*each/2 {
		t.Fatalf("%d lines took %d statements: the lines of concurrent Appends were not written together", workers*each, j.batches)
	}
	t.Logf("%d lines in %d statements", workers*each, j.batches)
}

// A batch that cannot be written stops the trail: its Appends and every
// later one fail, and the head stays on the last line written.
func TestFailedBatchStopsTheTrail(t *testing.T) {
	j := &linesJournal{failAt: 3}
	l, err := New(j, "tester@host")
	if err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 2; i++ {
		if err := l.Append("step_done", "step.s", map[string]any{"i": i}); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.Append("step_done", "step.s", map[string]any{"i": 3}); !errors.Is(err, errDown) {
		t.Fatalf("the failed write: %v", err)
	}
	j.failAt = 0 // the database is back: the trail stays stopped (it would have a hole)
	if err := l.Append("step_done", "step.s", map[string]any{"i": 4}); !errors.Is(err, errDown) {
		t.Fatalf("an Append after the failure: %v", err)
	}
	if err := l.Sync(); !errors.Is(err, errDown) {
		t.Fatalf("Sync after the failure: %v", err)
	}
	seq, head := l.Head()
	if entries, problems := Verify(j.data, seq, head); seq != 2 || len(entries) != 2 || len(problems) != 0 {
		t.Fatalf("head %d, %d entries, problems %v", seq, len(entries), problems)
	}
}
