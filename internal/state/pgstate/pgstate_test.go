package pgstate

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/switchover/switchover/internal/audit"
	"github.com/switchover/switchover/internal/state"
	"github.com/switchover/switchover/internal/testing/pglab"
)

// One real PostgreSQL for the package; each test its own database.
var lab *pglab.Server

func TestMain(m *testing.M) {
	var err error
	if lab, err = pglab.Start(); err != nil {
		// Never a silent skip: CI installs postgresql.
		fmt.Fprintf(os.Stderr, "cannot start PostgreSQL: %v\n", err)
		os.Exit(1)
	}
	code := m.Run()
	lab.Stop()
	os.Exit(code)
}

var dbs atomic.Int64

// database makes a database for one test and returns its URL.
func database(t *testing.T) string {
	t.Helper()
	name := fmt.Sprintf("t%d", dbs.Add(1))
	if err := lab.CreateDatabase(name); err != nil {
		t.Fatal(err)
	}
	return lab.URL(name)
}

func TestConformance(t *testing.T) {
	urls := map[string]string{}
	state.Conformance(t, func(t *testing.T) state.Backend {
		u, ok := urls[t.Name()]
		if !ok {
			u = database(t)
			urls[t.Name()] = u
		}
		b, err := Open(context.Background(), u, "acme")
		if err != nil {
			t.Fatal(err)
		}
		return b
	})
}

// Two workspaces in one database: one's lock does not hold the other's,
// and neither sees the other's records.
func TestWorkspacesAreApart(t *testing.T) {
	u := database(t)
	a, err := Open(context.Background(), u, "acme")
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := Open(context.Background(), u, "bakery")
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if err := a.Lock(state.NewLockInfo("apply")); err != nil {
		t.Fatal(err)
	}
	if err := b.Lock(state.NewLockInfo("apply")); err != nil {
		t.Fatalf("another workspace's lock: %v", err)
	}
	a.Append([]*state.Record{{Kind: state.KindStatus, Address: "step.a", Status: state.Done}})
	if recs, _ := b.Records(); len(recs) != 0 {
		t.Fatalf("the other workspace sees %d records", len(recs))
	}
}

// A crashed holder (its session ends without a word): the lock is free,
// and status does not name it.
func TestCrashedHolderReleasesTheLock(t *testing.T) {
	u := database(t)
	a, err := Open(context.Background(), u, "acme")
	if err != nil {
		t.Fatal(err)
	}
	li := state.NewLockInfo("apply")
	li.Host = "another-machine"
	if err := a.Lock(li); err != nil {
		t.Fatal(err)
	}
	// The session dies (no unlock, no row removed).
	a.lockConn.PgConn().Conn().Close()
	b, err := Open(context.Background(), u, "acme")
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if h, locked, err := b.LockHolder(); err != nil || locked {
		t.Fatalf("after the holder's session died: %+v %v %v", h, locked, err)
	}
	if err := b.Lock(state.NewLockInfo("apply")); err != nil {
		t.Fatalf("lock after the holder's session died: %v", err)
	}
}

// History is kept: the tables refuse UPDATE and DELETE.
func TestStateIsAppendOnly(t *testing.T) {
	u := database(t)
	a, err := Open(context.Background(), u, "acme")
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	a.Append([]*state.Record{{Kind: state.KindStatus, Address: "step.a", Status: state.Done}})
	_, err = a.conn.Exec(context.Background(), `DELETE FROM switchover_state`)
	if err == nil || !strings.Contains(err.Error(), "append-only") {
		t.Fatalf("delete: %v", err)
	}
}

// Bad input: a wrong password, nobody listening, a schema from a newer
// switchover: one clear line each, nothing written.
func TestBadInput(t *testing.T) {
	ctx := context.Background()
	u := database(t)
	wrong := strings.Replace(u, lab.Password, "wrong-password", 1)
	if _, err := Open(ctx, wrong, "acme"); err == nil || !strings.Contains(err.Error(), "password authentication failed") || strings.Contains(err.Error(), "wrong-password") || strings.Contains(err.Error(), "\n") {
		t.Errorf("a wrong password: %v", err)
	}
	if _, err := Open(ctx, "postgres://switchover:x@127.0.0.1:1/db?sslmode=disable&connect_timeout=3", "acme"); err == nil || !strings.Contains(err.Error(), "cannot connect to PostgreSQL at 127.0.0.1:1") || strings.Contains(err.Error(), "\n") {
		t.Errorf("nobody listening: %v", err)
	}
	a, err := Open(ctx, u, "acme")
	if err != nil {
		t.Fatal(err)
	}
	a.conn.Exec(ctx, `UPDATE switchover_meta SET value = '99' WHERE key = 'schema_version'`)
	a.Close()
	if _, err := Open(ctx, u, "acme"); err == nil || !strings.Contains(err.Error(), "schema version 99, newer than this switchover's") {
		t.Errorf("a newer schema: %v", err)
	}
}

// unlock (force) from another machine: the holder's session is ended, the
// lock row removed, and the workspace can be locked again.
func TestForceUnlockEndsTheHoldersSession(t *testing.T) {
	u := database(t)
	a, err := Open(context.Background(), u, "acme")
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	held := state.NewLockInfo("apply")
	held.Host = "laptop-of-a-colleague"
	if err := a.Lock(held); err != nil {
		t.Fatal(err)
	}
	b, err := Open(context.Background(), u, "acme")
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if h, locked, err := b.LockHolder(); err != nil || !locked || h.Host != "laptop-of-a-colleague" {
		t.Fatalf("holder: %+v %v %v", h, locked, err)
	}
	if err := b.Unlock("", true); err != nil {
		t.Fatal(err)
	}
	if _, locked, _ := b.LockHolder(); locked {
		t.Fatal("still locked after unlock")
	}
	if err := b.Lock(state.NewLockInfo("apply")); err != nil {
		t.Fatalf("lock after unlock: %v", err)
	}
	// The old holder is fenced: nothing it writes lands.
	if err := a.Append([]*state.Record{{Kind: state.KindStatus, Address: "step.x", Status: state.Done}}); err == nil || !strings.Contains(err.Error(), "taken away") {
		t.Fatalf("the old holder's append: %v", err)
	}
	j, _ := a.Journal()
	if err := j.Append([]byte("{}\n")); err == nil {
		t.Fatal("the old holder's audit line was written")
	}
	if recs, _ := b.Records(); len(recs) != 0 {
		t.Fatalf("%d records landed", len(recs))
	}
}

// The audit lines of parallel steps go to the database together, in the
// order of the chain: 200 lines from 20 goroutines verify as one trail
// from another connection, in fewer statements than lines.
func TestParallelAuditLinesShareStatements(t *testing.T) {
	u := database(t)
	a, err := Open(context.Background(), u, "acme")
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	if err := a.Lock(state.NewLockInfo("apply")); err != nil {
		t.Fatal(err)
	}
	j, err := a.Journal()
	if err != nil {
		t.Fatal(err)
	}
	counted := &countingJournal{Journal: j, lines: j.(audit.LinesJournal)}
	l, err := audit.New(counted, "tester@host")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for w := 0; w < 20; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 10; i++ {
				if err := l.Append("step_done", fmt.Sprintf("step.s[%d]", w), map[string]any{"i": i}); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if err := l.Sync(); err != nil {
		t.Fatal(err)
	}
	seq, head := l.Head()
	b, err := Open(context.Background(), u, "acme")
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	jb, _ := b.Journal()
	data, err := jb.ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if entries, problems := audit.Verify(data, seq, head); len(entries) != 200 || len(problems) != 0 {
		t.Fatalf("%d entries, problems %v", len(entries), problems)
	}
	if n := counted.statements.Load(); n >= 200 {
		t.Fatalf("200 lines took %d statements", n)
	} else {
		t.Logf("200 lines in %d statements", n)
	}
}

type countingJournal struct {
	audit.Journal
	lines      audit.LinesJournal
	statements atomic.Int64
}

func (c *countingJournal) AppendLines(lines [][]byte) error {
	c.statements.Add(1)
	return c.lines.AppendLines(lines)
}
