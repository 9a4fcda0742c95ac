package audit

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func journal(t *testing.T, n int) (data []byte, seq int64, head string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), FileName)
	l, err := Open(path, "tester@host")
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < n; i++ {
		if err := l.Append("step_done", "step.s", map[string]any{"i": i}); err != nil {
			t.Fatal(err)
		}
	}
	seq, head = l.Head()
	l.Close()
	data, _ = os.ReadFile(path)
	return data, seq, head
}

func lines(b []byte) [][]byte {
	return bytes.SplitAfter(bytes.TrimSuffix(b, []byte("\n")), []byte("\n"))
}

func join(ls [][]byte) []byte {
	var out []byte
	for _, l := range ls {
		if !bytes.HasSuffix(l, []byte("\n")) {
			l = append(append([]byte(nil), l...), '\n')
		}
		out = append(out, l...)
	}
	return out
}

func TestIntactJournalVerifies(t *testing.T) {
	data, seq, head := journal(t, 6)
	entries, problems := Verify(data, seq, head)
	if len(problems) != 0 || len(entries) != 6 {
		t.Fatalf("%d entries, problems %v", len(entries), problems)
	}
}

func TestTamperingIsFoundAndLocated(t *testing.T) {
	data, seq, head := journal(t, 6)
	ls := lines(data)
	cases := map[string]struct {
		tampered []byte
		want     string
	}{
		"changed": {join(append(append(append([][]byte{}, ls[:2]...), bytes.Replace(ls[2], []byte(`"i":2`), []byte(`"i":9`), 1)), ls[3:]...)),
			"line 3: changed"},
		"changed last": {join(append(append([][]byte{}, ls[:5]...), bytes.Replace(ls[5], []byte(`"i":5`), []byte(`"i":9`), 1))),
			"line 6: changed"},
		"deleted": {join(append(append([][]byte{}, ls[:3]...), ls[4:]...)),
			"line 4: seq 5 follows seq 3: 1 line(s) deleted"},
		"deleted last": {join(ls[:5]),
			"the last 1 line(s) were deleted"},
		"inserted": {join(append(append(append([][]byte{}, ls[:2]...), ls[1]), ls[2:]...)),
			"line 3: seq 2 follows seq 2: a line inserted here, or lines reordered"},
		"reordered": {join(append(append(append([][]byte{}, ls[:2]...), ls[3], ls[2]), ls[4:]...)),
			"line 3: seq 4 follows seq 2"},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			_, problems := Verify(c.tampered, seq, head)
			var got []string
			for _, p := range problems {
				got = append(got, p.String())
			}
			if !strings.Contains(strings.Join(got, "\n"), c.want) {
				t.Fatalf("problems %q lack %q", got, c.want)
			}
		})
	}
}

// A torn last line is not read, left alone by a reader (it may be a write
// in flight), and cut away before the next append.
func TestTornLastLineIsDroppedBeforeTheNextAppend(t *testing.T) {
	path := filepath.Join(t.TempDir(), FileName)
	l, _ := Open(path, "a")
	l.Append("x", "", nil)
	l.Append("y", "", nil)
	l.Close()
	data, _ := os.ReadFile(path)
	torn := data[:len(data)-7] // cut inside the second line
	os.WriteFile(path, torn, 0o600)
	j, err := OpenFile(path)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := j.ReadAll()
	j.Close()
	if n := bytes.Count(got, []byte("\n")); n != 1 || !bytes.HasSuffix(got, []byte("\n")) {
		t.Fatalf("read %q: want the one complete line", got)
	}
	if now, _ := os.ReadFile(path); !bytes.Equal(now, torn) {
		t.Fatal("a reader changed the journal")
	}
	l, err = Open(path, "a")
	if err != nil {
		t.Fatal(err)
	}
	l.Append("z", "", nil)
	seq, head := l.Head()
	l.Close()
	data, _ = os.ReadFile(path)
	entries, problems := Verify(data, seq, head)
	if len(problems) != 0 || len(entries) != 2 || entries[1].Event != "z" || entries[1].Seq != 2 {
		t.Fatalf("entries %+v problems %v", entries, problems)
	}
}

// Correctly chained lines appended after the head the state recorded are
// reported, not accepted as part of the trail.
func TestLinesPastTheHeadAreReported(t *testing.T) {
	data, _, _ := journal(t, 6)
	ls := lines(data)
	// The state anchored seq 4; seq 5 and 6 came after it.
	anchor := hashLine(ls[3])
	_, problems := Verify(data, 4, anchor)
	if len(problems) != 2 || !strings.Contains(problems[0].String(), "seq 5") || !strings.Contains(problems[1].String(), "after the head") {
		t.Fatalf("problems %v", problems)
	}
}
