package state

import (
	"errors"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"
)

// Conformance runs the suite every Backend must pass. open returns a backend
// on the same underlying store each time it is called (a re-open after a
// crash); dead returns lock info of a process that is no longer running on
// this host.
func Conformance(t *testing.T, open func(t *testing.T) Backend) {
	t.Run("AppendAndReadBackInOrder", func(t *testing.T) {
		b := open(t)
		var want []string
		for i := 0; i < 50; i++ {
			addr := fmt.Sprintf("step.s[\"k%d\"]", i)
			want = append(want, addr)
			if err := b.Append([]*Record{{Kind: KindStatus, Address: addr, Status: Running, Attempt: 1, Time: time.Now()}}); err != nil {
				t.Fatal(err)
			}
		}
		mustClose(t, b)
		b2 := open(t)
		defer mustClose(t, b2)
		recs, err := b2.Records()
		if err != nil {
			t.Fatal(err)
		}
		if len(recs) != len(want) {
			t.Fatalf("%d records, want %d", len(recs), len(want))
		}
		for i, r := range recs {
			if r.Address != want[i] || r.Status != Running || r.Attempt != 1 {
				t.Fatalf("record %d = %+v", i, r)
			}
		}
	})
	t.Run("BinaryCheckpointsRoundTrip", func(t *testing.T) {
		b := open(t)
		data := []byte{0, 1, 2, '\n', 0xff, '"'}
		if err := b.Append([]*Record{{Kind: KindCheckpoint, Address: "step.a", Data: data}}); err != nil {
			t.Fatal(err)
		}
		mustClose(t, b)
		b2 := open(t)
		defer mustClose(t, b2)
		recs, _ := b2.Records()
		if len(recs) != 1 || string(recs[0].Data) != string(data) {
			t.Fatalf("records = %+v", recs)
		}
	})
	t.Run("ManagerFoldsAndGroupCommits", func(t *testing.T) {
		b := open(t)
		m, err := NewManager(b)
		if err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		for i := 0; i < 200; i++ {
			wg.Add(1)
			go func(i int) {
				defer wg.Done()
				addr := fmt.Sprintf("step.x[\"%d\"]", i)
				if err := m.Append(&Record{Kind: KindStatus, Address: addr, Status: Running, Attempt: 1}); err != nil {
					t.Error(err)
				}
				if err := m.Append(&Record{Kind: KindCheckpoint, Address: addr, Data: []byte("cp")}, &Record{Kind: KindStatus, Address: addr, Status: Done}); err != nil {
					t.Error(err)
				}
			}(i)
		}
		wg.Wait()
		mustClose(t, m)
		m2, err := NewManager(open(t))
		if err != nil {
			t.Fatal(err)
		}
		defer mustClose(t, m2)
		n := 0
		m2.View(func(s *Snapshot) {
			for _, in := range s.Instances {
				if in.Status != Done || string(in.Checkpoint) != "cp" || in.Attempts != 1 {
					t.Errorf("%s = %+v", in.Address, in)
				}
				n++
			}
		})
		if n != 200 {
			t.Fatalf("%d instances, want 200", n)
		}
	})
	t.Run("SecondLockIsRefusedWithTheHolder", func(t *testing.T) {
		b := open(t)
		defer mustClose(t, b)
		first := NewLockInfo("apply")
		if err := b.Lock(first); err != nil {
			t.Fatal(err)
		}
		second := NewLockInfo("apply")
		err := b.Lock(second)
		var le *LockedError
		if !errors.As(err, &le) || le.Holder.ID != first.ID || le.Holder.PID != os.Getpid() {
			t.Fatalf("second lock: %v", err)
		}
		if err := b.Unlock(second.ID, false); err == nil {
			t.Fatal("unlock with another id succeeded")
		}
		if err := b.Unlock(first.ID, false); err != nil {
			t.Fatal(err)
		}
		if err := b.Lock(second); err != nil {
			t.Fatalf("lock after unlock: %v", err)
		}
		if err := b.Unlock("", true); err != nil {
			t.Fatal(err)
		}
		if err := b.Unlock("", true); !errors.Is(err, ErrNotLocked) {
			t.Fatalf("unlock without a lock: %v", err)
		}
	})
	t.Run("LockOfDeadProcessIsTakenOver", func(t *testing.T) {
		b := open(t)
		defer mustClose(t, b)
		dead := NewLockInfo("apply")
		dead.PID = deadPID(t)
		dead.ID = "dead"
		if err := b.Lock(dead); err != nil {
			t.Fatal(err)
		}
		mine := NewLockInfo("apply")
		if err := b.Lock(mine); err != nil {
			t.Fatalf("taking over a dead process's lock: %v", err)
		}
		if err := b.Unlock(mine.ID, false); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("SecondWriterIsRefused", func(t *testing.T) {
		// Two processes (two backends on one store): the second is told
		// who holds the lock, and sees it as the holder.
		a, b := open(t), open(t)
		defer mustClose(t, b)
		first := NewLockInfo("apply")
		if err := a.Lock(first); err != nil {
			t.Fatal(err)
		}
		err := b.Lock(NewLockInfo("apply"))
		var le *LockedError
		if !errors.As(err, &le) || le.Holder.ID != first.ID || le.Holder.Operation != "apply" {
			t.Fatalf("second writer: %v", err)
		}
		h, locked, err := b.LockHolder()
		if err != nil || !locked || h.ID != first.ID {
			t.Fatalf("holder seen by the second = %+v, %v, %v", h, locked, err)
		}
		mustClose(t, a)
	})
	t.Run("LockIsScopedToTheBackend", func(t *testing.T) {
		// Closing the holder (a session that ends) releases the lock.
		a := open(t)
		if err := a.Lock(NewLockInfo("apply")); err != nil {
			t.Fatal(err)
		}
		mustClose(t, a)
		b := open(t)
		defer mustClose(t, b)
		if _, locked, err := b.LockHolder(); err != nil || locked {
			t.Fatalf("after the holder closed: locked=%v, %v", locked, err)
		}
		li := NewLockInfo("apply")
		if err := b.Lock(li); err != nil {
			t.Fatalf("lock after the holder closed: %v", err)
		}
		if err := b.Unlock(li.ID, false); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("LockReadsTheStateAgain", func(t *testing.T) {
		// A reader opened before another process appended sees the
		// appends once it holds the lock.
		reader, writer := open(t), open(t)
		defer mustClose(t, reader)
		wl := NewLockInfo("apply")
		if err := writer.Lock(wl); err != nil {
			t.Fatal(err)
		}
		if err := writer.Append([]*Record{{Kind: KindStatus, Address: "step.late", Status: Done}}); err != nil {
			t.Fatal(err)
		}
		mustClose(t, writer)
		if err := reader.Lock(NewLockInfo("apply")); err != nil {
			t.Fatal(err)
		}
		recs, err := reader.Records()
		if err != nil || len(recs) == 0 || recs[len(recs)-1].Address != "step.late" {
			t.Fatalf("records after the lock = %d, %v; want the other writer's", len(recs), err)
		}
	})
	t.Run("JournalKeepsLinesInOrder", func(t *testing.T) {
		a := open(t)
		li := NewLockInfo("apply")
		if err := a.Lock(li); err != nil {
			t.Fatal(err)
		}
		j, err := a.Journal()
		if err != nil {
			t.Fatal(err)
		}
		var want []byte
		for i := 0; i < 20; i++ {
			line := []byte(fmt.Sprintf(`{"seq":%d}`+"\n", i+1))
			want = append(want, line...)
			if err := j.Append(line); err != nil {
				t.Fatal(err)
			}
		}
		if err := j.Sync(); err != nil {
			t.Fatal(err)
		}
		mustClose(t, a)
		b := open(t)
		defer mustClose(t, b)
		j2, err := b.Journal()
		if err != nil {
			t.Fatal(err)
		}
		got, err := j2.ReadAll()
		if err != nil || string(got) != string(want) {
			t.Fatalf("journal read back %q, %v; want %q", got, err, want)
		}
	})
}

func mustClose(t *testing.T, c interface{ Close() error }) {
	t.Helper()
	if err := c.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
}

// deadPID returns the pid of a process that has exited.
func deadPID(t *testing.T) int {
	p, err := os.StartProcess("/bin/true", []string{"true"}, &os.ProcAttr{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Wait(); err != nil {
		t.Fatal(err)
	}
	return p.Pid
}
