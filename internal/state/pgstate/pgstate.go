// Package pgstate is the PostgreSQL state backend: one switchover worked
// on by several engineers and machines. A workspace (a client's runbook)
// is a set of rows: its state records and its audit trail in append-only
// tables (history kept, a trigger refuses UPDATE and DELETE), and a lock
// row that says who holds it. The lock itself is a session advisory lock
// keyed by the workspace, held on a connection of its own: a holder that
// crashes releases it with its connection, and one workspace never waits
// for another. Secrets stay sealed with age on the client side: the
// database sees only ciphertext.
package pgstate

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/switchover/switchover/internal/audit"
	"github.com/switchover/switchover/internal/state"
)

// SchemaVersion is the version of the tables this switchover writes.
const SchemaVersion = 1

// DefaultEnv is the environment variable the connection string is read
// from (a libpq URL or key=value string; PG* variables fill what it
// leaves out).
const DefaultEnv = "SWITCHOVER_PG_URL"

var schema = []string{
	`CREATE TABLE IF NOT EXISTS switchover_meta (key text PRIMARY KEY, value text NOT NULL)`,
	`CREATE TABLE IF NOT EXISTS switchover_state (seq bigserial PRIMARY KEY, workspace text NOT NULL, record bytea NOT NULL, written_at timestamptz NOT NULL DEFAULT now())`,
	`CREATE INDEX IF NOT EXISTS switchover_state_ws ON switchover_state (workspace, seq)`,
	`CREATE TABLE IF NOT EXISTS switchover_audit (seq bigserial PRIMARY KEY, workspace text NOT NULL, line bytea NOT NULL, written_at timestamptz NOT NULL DEFAULT now())`,
	`CREATE INDEX IF NOT EXISTS switchover_audit_ws ON switchover_audit (workspace, seq)`,
	`CREATE TABLE IF NOT EXISTS switchover_locks (workspace text PRIMARY KEY, lock_id text NOT NULL, holder jsonb NOT NULL, backend_pid int NOT NULL, heartbeat timestamptz NOT NULL)`,
	`CREATE OR REPLACE FUNCTION switchover_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN RAISE EXCEPTION 'switchover: % is append-only', TG_TABLE_NAME; END $$`,
	`CREATE OR REPLACE TRIGGER switchover_state_append_only BEFORE UPDATE OR DELETE ON switchover_state FOR EACH ROW EXECUTE FUNCTION switchover_append_only()`,
	`CREATE OR REPLACE TRIGGER switchover_audit_append_only BEFORE UPDATE OR DELETE ON switchover_audit FOR EACH ROW EXECUTE FUNCTION switchover_append_only()`,
}

// Backend is one workspace's state in PostgreSQL.
type Backend struct {
	ws  string
	key int64 // the advisory lock's key

	mu   sync.Mutex
	conn *pgx.Conn // reads and appends

	// auditConn appends the audit trail's lines with synchronous_commit
	// off: each is the database's when Append returns (a killed
	// switchover loses none), and Sync makes them survive a crash of the
	// database's machine, as a file's write and fsync do.
	auditMu   sync.Mutex
	auditConn *pgx.Conn

	lockMu   sync.Mutex
	lockConn *pgx.Conn // the session that holds the advisory lock
	held     string    // the lock id this backend holds
	stopBeat chan struct{}
}

// Open connects to the database of connString (see DefaultEnv) for the
// workspace, making the tables if they are missing; a schema of a newer
// switchover is refused.
func Open(ctx context.Context, connString, workspace string) (*Backend, error) {
	if workspace == "" {
		return nil, errors.New("the pg backend needs a workspace name")
	}
	cfg, err := pgx.ParseConfig(connString)
	if err != nil {
		return nil, fmt.Errorf("the PostgreSQL connection string: %v", plainError(err))
	}
	conn, err := connect(ctx, cfg)
	if err != nil {
		return nil, err
	}
	if err := ensureSchema(ctx, conn); err != nil {
		conn.Close(ctx)
		return nil, err
	}
	h := fnv.New64a()
	h.Write([]byte("switchover workspace " + workspace))
	return &Backend{ws: workspace, key: int64(h.Sum64() >> 1), conn: conn}, nil
}

func connect(ctx context.Context, cfg *pgx.ConnConfig) (*pgx.Conn, error) {
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("cannot connect to PostgreSQL at %s:%d as %s: %v", cfg.Host, cfg.Port, cfg.User, plainError(err))
	}
	return conn, nil
}

// plainError is pgx's error in one line, without what it repeats of the
// connection (never a password: pgx does not print one).
func plainError(err error) string {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Message + " (" + pe.Code + ")"
	}
	s := err.Error()
	if i := strings.LastIndex(s, "): "); i >= 0 && strings.Contains(s, "failed to connect") {
		s = s[i+3:]
	}
	return strings.ReplaceAll(s, "\n", " ")
}

// ensureSchema makes the tables (each statement idempotent; two first
// runs at once retry) and checks the version.
func ensureSchema(ctx context.Context, conn *pgx.Conn) error {
	var v string
	err := conn.QueryRow(ctx, `SELECT value FROM switchover_meta WHERE key = 'schema_version'`).Scan(&v)
	if err == nil {
		n, _ := strconv.Atoi(v)
		if n > SchemaVersion {
			return fmt.Errorf("the database holds switchover's tables of schema version %d, newer than this switchover's (%d): upgrade switchover; nothing was written", n, SchemaVersion)
		}
		if n == SchemaVersion {
			return nil
		}
	}
	// The first switchover on a database makes the tables; two at once
	// take turns (a transaction lock, for this only: workspaces never
	// wait for each other).
	err = pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(7233824390123)`); err != nil {
			return err
		}
		for _, q := range schema {
			if _, err := tx.Exec(ctx, q); err != nil {
				return err
			}
		}
		_, err := tx.Exec(ctx, `INSERT INTO switchover_meta (key, value) VALUES ('schema_version', $1) ON CONFLICT (key) DO NOTHING`, strconv.Itoa(SchemaVersion))
		return err
	})
	if err != nil {
		return fmt.Errorf("making switchover's tables: %v", plainError(err))
	}
	return nil
}

// Append implements state.Backend: one statement, committed (durable)
// when it returns.
func (b *Backend) Append(recs []*state.Record) error {
	if len(recs) == 0 {
		return nil
	}
	rows := make([][]byte, len(recs))
	for i, r := range recs {
		data, err := json.Marshal(r)
		if err != nil {
			return err
		}
		rows[i] = data
	}
	held := b.heldID()
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.conn == nil {
		return errors.New("state backend is closed")
	}
	// A lock holder writes only while the lock row is still its own: a
	// lock taken away (unlock from another machine) fences it at once.
	tag, err := b.conn.Exec(context.Background(), `INSERT INTO switchover_state (workspace, record) SELECT $1, r FROM unnest($2::bytea[]) WITH ORDINALITY AS t(r, n)
		WHERE $3 = '' OR EXISTS (SELECT 1 FROM switchover_locks WHERE workspace = $1 AND lock_id = $3) ORDER BY n`, b.ws, rows, held)
	if err != nil {
		return fmt.Errorf("writing the state to PostgreSQL: %v", plainError(err))
	}
	if tag.RowsAffected() != int64(len(rows)) {
		return errLockTaken
	}
	return nil
}

var errLockTaken = errors.New("the state lock was taken away (switchover unlock on another machine?): nothing was written")

// heldID is the id of the lock this backend holds ("" for none).
func (b *Backend) heldID() string {
	b.lockMu.Lock()
	defer b.lockMu.Unlock()
	return b.held
}

// Records implements state.Backend: what the database holds now.
func (b *Backend) Records() ([]*state.Record, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.conn == nil {
		return nil, errors.New("state backend is closed")
	}
	rows, err := b.conn.Query(context.Background(), `SELECT record FROM switchover_state WHERE workspace = $1 ORDER BY seq`, b.ws)
	if err != nil {
		return nil, fmt.Errorf("reading the state from PostgreSQL: %v", plainError(err))
	}
	var out []*state.Record
	for rows.Next() {
		var data []byte
		if err := rows.Scan(&data); err != nil {
			rows.Close()
			return nil, err
		}
		var r state.Record
		if err := json.Unmarshal(data, &r); err != nil {
			rows.Close()
			return nil, fmt.Errorf("a state record in PostgreSQL is not readable: %v", err)
		}
		out = append(out, &r)
	}
	return out, rows.Err()
}

// holder is the lock row, and whether a live session holds the advisory
// lock (a row without one is a crashed holder's: not a lock).
func (b *Backend) holder(ctx context.Context, conn *pgx.Conn) (state.LockInfo, bool, error) {
	var li state.LockInfo
	var raw []byte
	var live bool
	var beat time.Time
	err := conn.QueryRow(ctx, `SELECT l.holder, l.heartbeat, EXISTS (SELECT 1 FROM pg_locks p WHERE p.locktype = 'advisory' AND p.granted
		AND p.classid = ($2::bigint >> 32)::oid AND p.objid = ($2::bigint & 4294967295)::oid AND p.objsubid = 1)
		FROM switchover_locks l WHERE l.workspace = $1`, b.ws, b.key).Scan(&raw, &beat, &live)
	if errors.Is(err, pgx.ErrNoRows) {
		return li, false, nil
	}
	if err != nil {
		return li, false, fmt.Errorf("reading the lock from PostgreSQL: %v", plainError(err))
	}
	if err := json.Unmarshal(raw, &li); err != nil {
		return li, false, err
	}
	li.Heartbeat = beat
	return li, live, nil
}

// Lock implements state.Backend: the advisory lock on a connection of its
// own, then the lock row that names the holder.
func (b *Backend) Lock(info state.LockInfo) error {
	ctx := context.Background()
	b.lockMu.Lock()
	defer b.lockMu.Unlock()
	if b.held != "" {
		// This session holds it already (the advisory lock is re-entrant
		// in a session): only a dead process's lock is taken over.
		h, _, err := b.holder(ctx, b.lockConn)
		if err != nil {
			return err
		}
		if !deadOnThisHost(h) {
			return &state.LockedError{Holder: h}
		}
		return b.writeRow(ctx, info)
	}
	if b.lockConn == nil {
		conn, err := connect(ctx, b.conn.Config())
		if err != nil {
			return err
		}
		b.lockConn = conn
	}
	var got bool
	if err := b.lockConn.QueryRow(ctx, `SELECT pg_try_advisory_lock($1)`, b.key).Scan(&got); err != nil {
		return fmt.Errorf("taking the lock in PostgreSQL: %v", plainError(err))
	}
	if !got {
		h, _, err := b.holder(ctx, b.lockConn)
		if err != nil {
			return err
		}
		return &state.LockedError{Holder: h}
	}
	if err := b.writeRow(ctx, info); err != nil {
		_, _ = b.lockConn.Exec(ctx, `SELECT pg_advisory_unlock($1)`, b.key)
		return err
	}
	b.stopBeat = make(chan struct{})
	go b.heartbeat(b.stopBeat)
	return nil
}

// writeRow says who holds the lock (a crashed holder's row is replaced).
func (b *Backend) writeRow(ctx context.Context, info state.LockInfo) error {
	raw, _ := json.Marshal(info)
	_, err := b.lockConn.Exec(ctx, `INSERT INTO switchover_locks (workspace, lock_id, holder, backend_pid, heartbeat) VALUES ($1, $2, $3, pg_backend_pid(), now())
		ON CONFLICT (workspace) DO UPDATE SET lock_id = EXCLUDED.lock_id, holder = EXCLUDED.holder, backend_pid = EXCLUDED.backend_pid, heartbeat = now()`, b.ws, info.ID, raw)
	if err != nil {
		return fmt.Errorf("writing the lock to PostgreSQL: %v", plainError(err))
	}
	b.held = info.ID
	return nil
}

// heartbeat: the lock row's heartbeat, every 10 seconds, for status.
func (b *Backend) heartbeat(stop chan struct{}) {
	t := time.NewTicker(10 * time.Second)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
			b.lockMu.Lock()
			if b.lockConn != nil && b.held != "" {
				_, _ = b.lockConn.Exec(context.Background(), `UPDATE switchover_locks SET heartbeat = now() WHERE workspace = $1 AND lock_id = $2`, b.ws, b.held)
			}
			b.lockMu.Unlock()
		}
	}
}

func deadOnThisHost(li state.LockInfo) bool {
	// The same rule as the file backend's, through its exported check.
	return state.HolderGone(li)
}

// Unlock implements state.Backend. force releases a lock another session
// holds by ending that session (pg_terminate_backend; the database must
// allow it), or a crashed holder's row.
func (b *Backend) Unlock(id string, force bool) error {
	ctx := context.Background()
	b.lockMu.Lock()
	defer b.lockMu.Unlock()
	if b.held != "" && (force || id == b.held) {
		return b.release(ctx)
	}
	conn := b.lockConn
	if conn == nil {
		b.mu.Lock()
		defer b.mu.Unlock()
		conn = b.conn
	}
	h, live, err := b.holder(ctx, conn)
	if err != nil {
		return err
	}
	if h.ID == "" {
		return state.ErrNotLocked
	}
	if !force && h.ID != id {
		return &state.LockedError{Holder: h}
	}
	if live {
		if _, err := conn.Exec(ctx, `SELECT pg_terminate_backend(backend_pid) FROM switchover_locks WHERE workspace = $1`, b.ws); err != nil {
			return fmt.Errorf("ending the session that holds the lock: %v", plainError(err))
		}
	}
	if _, err := conn.Exec(ctx, `DELETE FROM switchover_locks WHERE workspace = $1`, b.ws); err != nil {
		return fmt.Errorf("removing the lock in PostgreSQL: %v", plainError(err))
	}
	return nil
}

// release drops this backend's lock: the row, then the advisory lock.
func (b *Backend) release(ctx context.Context) error {
	if b.stopBeat != nil {
		close(b.stopBeat)
		b.stopBeat = nil
	}
	_, err1 := b.lockConn.Exec(ctx, `DELETE FROM switchover_locks WHERE workspace = $1 AND lock_id = $2`, b.ws, b.held)
	_, err2 := b.lockConn.Exec(ctx, `SELECT pg_advisory_unlock_all()`)
	b.held = ""
	if err := errors.Join(err1, err2); err != nil {
		return fmt.Errorf("releasing the lock in PostgreSQL: %v", plainError(err))
	}
	return nil
}

// LockHolder implements state.Backend: a row whose session is gone is no
// lock.
func (b *Backend) LockHolder() (state.LockInfo, bool, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.conn == nil {
		return state.LockInfo{}, false, errors.New("state backend is closed")
	}
	h, live, err := b.holder(context.Background(), b.conn)
	if err != nil || !live {
		return state.LockInfo{}, false, err
	}
	return h, true, nil
}

// Journal implements state.Backend: the audit trail's lines in their table.
func (b *Backend) Journal() (audit.Journal, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.conn == nil {
		return nil, errors.New("state backend is closed")
	}
	return journal{b}, nil
}

type journal struct{ b *Backend }

func (j journal) ReadAll() ([]byte, error) {
	j.b.mu.Lock()
	defer j.b.mu.Unlock()
	if j.b.conn == nil {
		return nil, errors.New("state backend is closed")
	}
	rows, err := j.b.conn.Query(context.Background(), `SELECT line FROM switchover_audit WHERE workspace = $1 ORDER BY seq`, j.b.ws)
	if err != nil {
		return nil, fmt.Errorf("reading the audit trail from PostgreSQL: %v", plainError(err))
	}
	defer rows.Close()
	var out []byte
	for rows.Next() {
		var line []byte
		if err := rows.Scan(&line); err != nil {
			return nil, err
		}
		out = append(out, line...)
	}
	return out, rows.Err()
}

func (j journal) Append(line []byte) error {
	return j.AppendLines([][]byte{line})
}

// AppendLines implements audit.LinesJournal: the lines of concurrent
// Appends in one statement, in their order.
func (j journal) AppendLines(lines [][]byte) error {
	b := j.b
	b.auditMu.Lock()
	defer b.auditMu.Unlock()
	ctx := context.Background()
	if b.auditConn == nil {
		b.mu.Lock()
		if b.conn == nil {
			b.mu.Unlock()
			return errors.New("state backend is closed")
		}
		cfg := b.conn.Config()
		b.mu.Unlock()
		conn, err := connect(ctx, cfg)
		if err != nil {
			return err
		}
		if _, err := conn.Exec(ctx, `SET synchronous_commit = off`); err != nil {
			conn.Close(ctx)
			return fmt.Errorf("writing the audit trail to PostgreSQL: %v", plainError(err))
		}
		b.auditConn = conn
	}
	tag, err := b.auditConn.Exec(ctx, `INSERT INTO switchover_audit (workspace, line) SELECT $1, l FROM unnest($2::bytea[]) WITH ORDINALITY AS t(l, n)
		WHERE $3 = '' OR EXISTS (SELECT 1 FROM switchover_locks WHERE workspace = $1 AND lock_id = $3) ORDER BY n`, b.ws, lines, b.heldID())
	if err != nil {
		return fmt.Errorf("writing the audit trail to PostgreSQL: %v", plainError(err))
	}
	if tag.RowsAffected() != int64(len(lines)) {
		return errLockTaken
	}
	return nil
}

// Sync waits until the database's log is on its disk up to now: a
// synchronous commit (of a transaction id) flushes every commit before it.
func (j journal) Sync() error {
	j.b.mu.Lock()
	defer j.b.mu.Unlock()
	if j.b.conn == nil {
		return errors.New("state backend is closed")
	}
	if _, err := j.b.conn.Exec(context.Background(), `SELECT txid_current()`); err != nil {
		return fmt.Errorf("syncing the audit trail in PostgreSQL: %v", plainError(err))
	}
	return nil
}

func (j journal) Close() error { return nil }

// Close implements state.Backend: the lock goes with its session.
func (b *Backend) Close() error {
	ctx := context.Background()
	var errs []error
	b.lockMu.Lock()
	if b.held != "" {
		errs = append(errs, b.release(ctx))
	}
	if b.lockConn != nil {
		errs = append(errs, b.lockConn.Close(ctx))
		b.lockConn = nil
	}
	b.lockMu.Unlock()
	b.auditMu.Lock()
	if b.auditConn != nil {
		errs = append(errs, b.auditConn.Close(ctx))
		b.auditConn = nil
	}
	b.auditMu.Unlock()
	b.mu.Lock()
	if b.conn != nil {
		errs = append(errs, b.conn.Close(ctx))
		b.conn = nil
	}
	b.mu.Unlock()
	return errors.Join(errs...)
}
