package workspace

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/switchover/switchover/internal/audit"
	"github.com/switchover/switchover/internal/secrets"
	"github.com/switchover/switchover/internal/state"
)

func TestSecondLockIsRefusedAndCloseReleases(t *testing.T) {
	dir := t.TempDir()
	a, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Lock("apply"); err != nil {
		t.Fatal(err)
	}
	b, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	var le *state.LockedError
	if err := b.Lock("apply"); !errors.As(err, &le) || le.Holder.Operation != "apply" {
		t.Fatalf("second lock: %v", err)
	}
	if err := a.Audit.Append(audit.EvPlan, "", nil); err != nil {
		t.Fatal(err)
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	if err := b.Lock("apply"); err != nil {
		t.Fatalf("lock after close: %v", err)
	}
	// The head the first session anchored is the trail's: no lines past it.
	seq, _ := b.Audit.Head()
	var anchored int64
	b.State.View(func(s *state.Snapshot) { anchored = s.AuditSeq })
	if seq != 1 || anchored != 1 {
		t.Fatalf("audit head %d, anchored %d; want 1 and 1", seq, anchored)
	}
}

func TestUnanchoredLinesAreRecorded(t *testing.T) {
	dir := t.TempDir()
	ws, _ := Open(dir)
	if err := ws.Lock("apply"); err != nil {
		t.Fatal(err)
	}
	ws.Close()
	// Someone appends a well-chained line after the anchored head.
	l, err := audit.Open(filepath.Join(Path(dir), audit.FileName), "mallory@x")
	if err != nil {
		t.Fatal(err)
	}
	_ = l.Append(audit.EvPlan, "", nil)
	l.Close()
	ws, _ = Open(dir)
	defer ws.Close()
	if err := ws.Lock("apply"); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(filepath.Join(Path(dir), audit.FileName))
	if !bytes.Contains(data, []byte(string(audit.EvUnanchoredLinesFound))) {
		t.Fatalf("trail does not record the unanchored line:\n%s", data)
	}
}

func TestCheckPrivate(t *testing.T) {
	dir := t.TempDir()
	ws, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	ws.Close()
	wsDir := Path(dir)
	if err := CheckPrivate(wsDir); err != nil {
		t.Fatalf("a fresh workspace: %v", err)
	}
	log := filepath.Join(wsDir, "state.log")
	if err := os.Chmod(log, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := CheckPrivate(wsDir); err == nil || !strings.Contains(err.Error(), "mode 0644") {
		t.Fatalf("readable state: %v", err)
	}
	if _, err := Open(dir); err == nil {
		t.Fatal("Open accepted a readable state log")
	}
	os.Chmod(log, 0o600)
	target := filepath.Join(t.TempDir(), "elsewhere")
	os.WriteFile(target, nil, 0o600)
	if err := os.Symlink(target, filepath.Join(wsDir, audit.FileName+".x")); err != nil {
		t.Fatal(err)
	}
	if err := CheckPrivate(wsDir); err == nil || !strings.Contains(err.Error(), "symbolic link") {
		t.Fatalf("planted symlink: %v", err)
	}
}

func TestMissingIdentityIsNotReplacedWhileSecretsNeedIt(t *testing.T) {
	dir := t.TempDir()
	ws, _ := Open(dir)
	if err := ws.Lock("apply"); err != nil {
		t.Fatal(err)
	}
	id, created, err := ws.Identity()
	if err != nil || !created {
		t.Fatalf("first identity: %v, created=%v", err, created)
	}
	again, created, err := ws.Identity()
	if err != nil || created || again.String() != id.String() {
		t.Fatalf("second call made another identity: %v", err)
	}
	if err := ws.State.Append(&state.Record{Kind: state.KindSecret, Name: "root", Address: "step.r", Ciphertext: []byte("sealed")}); err != nil {
		t.Fatal(err)
	}
	ws.Close()
	os.Remove(filepath.Join(Path(dir), secrets.IdentityFile))
	ws, _ = Open(dir)
	defer ws.Close()
	if err := ws.Lock("apply"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := ws.Identity(); err == nil || !strings.Contains(err.Error(), "restore the file") {
		t.Fatalf("missing identity with sealed state: %v", err)
	}
	if _, err := os.Stat(filepath.Join(Path(dir), secrets.IdentityFile)); !os.IsNotExist(err) {
		t.Fatal("a new identity was written over the lost one")
	}
}

func TestPlanKeyIsPerWorkspace(t *testing.T) {
	var keys [][]byte
	for i := 0; i < 2; i++ {
		ws, _ := Open(t.TempDir())
		if err := ws.Lock("plan"); err != nil {
			t.Fatal(err)
		}
		id, _, err := ws.Identity()
		if err != nil {
			t.Fatal(err)
		}
		keys = append(keys, PlanKey(id))
		if !bytes.Equal(PlanKey(id), keys[i]) {
			t.Fatal("the plan key is not stable")
		}
		ws.Close()
	}
	if bytes.Equal(keys[0], keys[1]) || len(keys[0]) != 32 {
		t.Fatal("two workspaces share a plan key")
	}
}
