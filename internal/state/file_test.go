package state

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func TestFileBackendConformance(t *testing.T) {
	// Each subtest gets one directory, opened again on every call (a re-open
	// after a crash, or a second process).
	dirs := map[string]string{}
	Conformance(t, func(t *testing.T) Backend {
		dir, ok := dirs[t.Name()]
		if !ok {
			dir = t.TempDir()
			dirs[t.Name()] = dir
		}
		b, err := OpenFile(dir)
		if err != nil {
			t.Fatal(err)
		}
		return b
	})
}

// TestTornTail cuts the log at every byte of its last record, and also
// flips a byte in it: the records before it are read back intact, the torn
// one is dropped, and the next append lands on a clean boundary.
func TestTornTail(t *testing.T) {
	dir := t.TempDir()
	b, err := OpenFile(dir)
	if err != nil {
		t.Fatal(err)
	}
	b.Append([]*Record{{Kind: KindStatus, Address: "step.a", Status: Done}, {Kind: KindStatus, Address: "step.b", Status: Running}})
	b.Append([]*Record{{Kind: KindStatus, Address: "step.c", Status: Done, Summary: "the last one"}})
	b.Close()
	path := filepath.Join(dir, logName)
	full, _ := os.ReadFile(path)
	lastStart := len(full) - 1
	for full[lastStart-1] != '\n' {
		lastStart--
	}
	check := func(t *testing.T, content []byte, want int) {
		t.Helper()
		os.WriteFile(path, content, 0o600)
		b, err := OpenFile(dir)
		if err != nil {
			t.Fatal(err)
		}
		recs, _ := b.Records()
		if len(recs) != want {
			t.Fatalf("%d records, want %d", len(recs), want)
		}
		if err := b.Append([]*Record{{Kind: KindStatus, Address: "step.d", Status: Done}}); err != nil {
			t.Fatal(err)
		}
		b.Close()
		b, _ = OpenFile(dir)
		recs, _ = b.Records()
		b.Close()
		if len(recs) != want+1 || recs[want].Address != "step.d" {
			t.Fatalf("after append: %d records, last %+v", len(recs), recs[len(recs)-1])
		}
	}
	for cut := lastStart; cut < len(full); cut++ {
		check(t, full[:cut], 2)
	}
	for i := lastStart; i < len(full)-1; i++ {
		flipped := append([]byte(nil), full...)
		flipped[i] ^= 0x20
		check(t, flipped, 2)
	}
	check(t, full, 3)
}

// TestDamageInTheMiddleIsAHardError flips a byte in every record but the
// last: the log is refused with the damaged line named, and nothing is cut
// (before, every later record was dropped and the next apply re-ran done
// steps and generated new secrets). A torn tail that is cut is kept aside.
func TestDamageInTheMiddleIsAHardError(t *testing.T) {
	dir := t.TempDir()
	b, err := OpenFile(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range []string{"step.a", "step.b", "step.c"} {
		b.Append([]*Record{{Kind: KindStatus, Address: a, Status: Done}})
	}
	b.Close()
	path := filepath.Join(dir, logName)
	full, _ := os.ReadFile(path)
	firstEnd := bytes.IndexByte(full, '\n')
	for i := 0; i < firstEnd; i++ {
		damaged := append([]byte(nil), full...)
		damaged[i] ^= 0x01
		os.WriteFile(path, damaged, 0o600)
		_, err := OpenFile(dir)
		var ce *CorruptError
		if !errors.As(err, &ce) || ce.Line != 1 || ce.Later != 2 {
			t.Fatalf("byte %d: err = %v", i, err)
		}
		if now, _ := os.ReadFile(path); !bytes.Equal(now, damaged) {
			t.Fatalf("byte %d: the damaged log was changed", i)
		}
	}
	// A torn tail is cut at the next append, and kept beside the log.
	os.WriteFile(path, append(append([]byte(nil), full...), []byte("0000 torn")...), 0o600)
	b, err = OpenFile(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Append([]*Record{{Kind: KindStatus, Address: "step.d", Status: Done}}); err != nil {
		t.Fatal(err)
	}
	b.Close()
	kept, _ := filepath.Glob(filepath.Join(dir, logName+".torn-*"))
	if len(kept) != 1 {
		t.Fatalf("torn copies: %v", kept)
	}
	if b, _ := os.ReadFile(kept[0]); string(b) != "0000 torn" {
		t.Fatalf("kept %q", b)
	}
}
