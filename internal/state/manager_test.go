package state

import (
	"errors"
	"fmt"
	"sync"
	"testing"
)

// countingBackend is a file backend that counts its writes and can be made
// to fail them.
type countingBackend struct {
	Backend
	mu     sync.Mutex
	writes [][]*Record
	failAt int // the write (from 1) that fails; 0: none
}

func (b *countingBackend) Append(recs []*Record) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.failAt == len(b.writes)+1 {
		b.writes = append(b.writes, nil)
		return errors.New("no space left on device")
	}
	b.writes = append(b.writes, recs)
	return b.Backend.Append(recs)
}

func openCounting(t *testing.T, dir string) *countingBackend {
	t.Helper()
	fb, err := OpenFile(dir)
	if err != nil {
		t.Fatal(err)
	}
	return &countingBackend{Backend: fb}
}

func reread(t *testing.T, dir string) []*Record {
	t.Helper()
	b, err := OpenFile(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	recs, err := b.Records()
	if err != nil {
		t.Fatal(err)
	}
	return recs
}

// TestAppendLaterIsSeenAtOnceAndWrittenInOrder: a record queued with
// AppendLater is in the snapshot at once, reaches the disk with the next
// Append (one write for both, in queue order), and Close writes what is
// still queued.
func TestAppendLaterIsSeenAtOnceAndWrittenInOrder(t *testing.T) {
	dir := t.TempDir()
	b := openCounting(t, dir)
	m, err := NewManager(b)
	if err != nil {
		t.Fatal(err)
	}
	m.AppendLater(&Record{Kind: KindStatus, Address: "step.a", Status: Done, Summary: "a"})
	if in := m.Instance("step.a"); in == nil || in.Status != Done {
		t.Fatalf("step.a in the snapshot = %+v, want done at once", in)
	}
	if err := m.Append(&Record{Kind: KindStatus, Address: "step.b", Status: Running, Attempt: 1}); err != nil {
		t.Fatal(err)
	}
	recs := reread(t, dir)
	if len(recs) != 2 || recs[0].Address != "step.a" || recs[1].Address != "step.b" {
		t.Fatalf("on disk after the Append: %v, want step.a then step.b", addrs(recs))
	}
	m.AppendLater(&Record{Kind: KindStatus, Address: "step.b", Status: Done})
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	recs = reread(t, dir)
	if len(recs) != 3 || recs[2].Address != "step.b" || recs[2].Status != Done {
		t.Fatalf("on disk after Close: %v, want step.b done last", addrs(recs))
	}
}

// TestWriteErrorStopsLaterWrites: after a write fails, nothing queued later
// is written (the disk never holds a record whose predecessor was lost), and
// every later Append, Flush and Close says why.
func TestWriteErrorStopsLaterWrites(t *testing.T) {
	dir := t.TempDir()
	b := openCounting(t, dir)
	m, err := NewManager(b)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Append(&Record{Kind: KindStatus, Address: "step.a", Status: Running}); err != nil {
		t.Fatal(err)
	}
	b.failAt = 2
	m.AppendLater(&Record{Kind: KindStatus, Address: "step.a", Status: Done})
	if err := m.Flush(); err == nil {
		t.Fatal("Flush after a failed write returned nil")
	}
	if err := m.Append(&Record{Kind: KindStatus, Address: "step.b", Status: Running}); err == nil {
		t.Fatal("Append after a failed write returned nil")
	}
	m.AppendLater(&Record{Kind: KindStatus, Address: "step.c", Status: Done})
	if err := m.Close(); err == nil {
		t.Fatal("Close after a failed write returned nil")
	}
	recs := reread(t, dir)
	if len(recs) != 1 || recs[0].Address != "step.a" || recs[0].Status != Running {
		t.Fatalf("on disk: %v, want only step.a running", addrs(recs))
	}
	if len(b.writes) != 2 {
		t.Fatalf("%d writes, want 2 (none after the failed one)", len(b.writes))
	}
}

// TestAppendWaitsForEverythingBefore: many writers mixing AppendLater and
// Append: whenever an Append returns, every record queued before it is on
// the disk.
func TestAppendWaitsForEverythingBefore(t *testing.T) {
	dir := t.TempDir()
	b := openCounting(t, dir)
	m, err := NewManager(b)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for w := 0; w < 10; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			prev := ""
			for i := 0; i < 50; i++ {
				addr := fmt.Sprintf("step.s[\"%d-%d\"]", w, i)
				if err := m.Append(&Record{Kind: KindStatus, Address: addr, Status: Running, Attempt: 1}); err != nil {
					t.Error(err)
					return
				}
				if prev != "" && !writtenDone(b, prev) {
					t.Errorf("%s was queued before %s's start, which is durable, but is not written", prev, addr)
					return
				}
				m.AppendLater(&Record{Kind: KindStatus, Address: addr, Status: Done})
				prev = addr
			}
		}(w)
	}
	wg.Wait()
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	done := 0
	for _, r := range reread(t, dir) {
		if r.Status == Done {
			done++
		}
	}
	if done != 500 {
		t.Fatalf("%d done records on disk, want 500", done)
	}
	if len(b.writes) >= 1000 {
		t.Fatalf("%d writes for 1000 records from 10 writers: no record went with another", len(b.writes))
	}
}

func writtenDone(b *countingBackend, addr string) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, w := range b.writes {
		for _, r := range w {
			if r.Address == addr && r.Status == Done {
				return true
			}
		}
	}
	return false
}

func addrs(recs []*Record) []string {
	var out []string
	for _, r := range recs {
		out = append(out, r.Address+":"+string(r.Status))
	}
	return out
}
