package cli

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"github.com/switchover/switchover/internal/operation"

	"github.com/switchover/switchover/internal/audit"
	"github.com/switchover/switchover/internal/state"
	"github.com/switchover/switchover/internal/workspace"
)

func runState(ctx context.Context, env *Env, args []string) int {
	if len(args) == 0 || args[0] != "migrate" {
		fmt.Fprintln(env.Stderr, "usage: switchover state migrate -to pg|file [DIR]")
		return ExitError
	}
	var to string
	fs := newFlags(env, "state migrate", "Copies the workspace of DIR, its state and its audit trail line for line, from files in\n.switchover/ to the PostgreSQL backend of the runbook's backend block (-to pg), or back (-to file).\nThe destination must be empty; both are locked while copying; the copy's audit chain is verified.", "[DIR]")
	fs.StringVar(&to, "to", "", "pg or file")
	pos, code, ok := parse(fs, args[1:], 1)
	if !ok {
		return code
	}
	dir := dirArg(pos)
	fail := func(err error) int {
		fmt.Fprintf(env.Stderr, "switchover state migrate: %v\n", err)
		return ExitError
	}
	pgOpen, b, err := operation.StateOpener(dir)
	if err != nil {
		return fail(err)
	}
	if b == nil {
		return fail(errors.New("the runbook has no backend \"pg\" block: say which workspace in which database"))
	}
	fileOpen := state.Opener(state.Open)
	var src, dst state.Opener
	switch to {
	case "pg":
		src, dst = fileOpen, pgOpen
	case "file":
		src, dst = pgOpen, fileOpen
	default:
		return fail(errors.New("-to pg or -to file"))
	}
	n, lines, err := migrateState(workspace.Path(dir), src, dst)
	if err != nil {
		return fail(err)
	}
	fmt.Fprintf(env.Stdout, "Copied %d state records and %d audit lines to the %s backend (workspace %q); the audit chain verifies. Nothing was removed from the source.\n", n, lines, to, b.Workspace)
	return ExitOK
}

// migrateState copies every record and audit line from src to dst (empty),
// both locked, and verifies the copy's chain against its state's anchor.
func migrateState(dir string, srcOpen, dstOpen state.Opener) (int, int, error) {
	src, err := srcOpen(dir)
	if err != nil {
		return 0, 0, err
	}
	defer func() { _ = src.Close() }() // releases its lock
	dst, err := dstOpen(dir)
	if err != nil {
		return 0, 0, err
	}
	defer func() { _ = dst.Close() }()
	for _, b := range []state.Backend{src, dst} {
		if err := b.Lock(state.NewLockInfo("state migrate")); err != nil {
			return 0, 0, err
		}
	}
	recs, trail, _, err := readWorkspace(src)
	if err != nil {
		return 0, 0, err
	}
	have, dtrail, dj, err := readWorkspace(dst)
	if err != nil {
		return 0, 0, err
	}
	if len(have) > 0 || len(dtrail) > 0 {
		return 0, 0, fmt.Errorf("the destination already holds %d state records and %d bytes of audit trail: nothing was copied", len(have), len(dtrail))
	}
	for i := 0; i < len(recs); i += 1000 {
		if err := dst.Append(recs[i:min(i+1000, len(recs))]); err != nil {
			return 0, 0, err
		}
	}
	lines := 0
	for _, line := range bytes.SplitAfter(trail, []byte("\n")) {
		if len(line) == 0 {
			continue
		}
		if err := dj.Append(line); err != nil {
			return 0, 0, err
		}
		lines++
	}
	if err := dj.Sync(); err != nil {
		return 0, 0, err
	}
	return len(recs), lines, verifyCopy(dst, len(recs), trail)
}

// readWorkspace is a backend's records, its audit trail and its journal.
func readWorkspace(b state.Backend) ([]*state.Record, []byte, audit.Journal, error) {
	recs, err := b.Records()
	if err != nil {
		return nil, nil, nil, err
	}
	j, err := b.Journal()
	if err != nil {
		return nil, nil, nil, err
	}
	trail, err := j.ReadAll()
	return recs, trail, j, err
}

// verifyCopy reads back what the destination holds: the same records,
// the same trail, and a chain that verifies up to the state's anchor.
func verifyCopy(dst state.Backend, n int, trail []byte) error {
	got, data, _, err := readWorkspace(dst)
	if err != nil {
		return err
	}
	if len(got) != n || !bytes.Equal(data, trail) {
		return fmt.Errorf("the copy differs from the source (%d of %d records, %d of %d audit bytes)", len(got), n, len(data), len(trail))
	}
	snap := state.NewSnapshot()
	for _, r := range got {
		snap.Apply(r)
	}
	_, problems := audit.Verify(data, snap.AuditSeq, snap.AuditHash)
	for _, p := range problems {
		if !p.PastHead {
			return fmt.Errorf("the copied audit trail does not verify: line %d: %s", p.Line, p.Message)
		}
	}
	return nil
}
