package window

import (
	"strings"
	"testing"
	"time"

	"github.com/zclconf/go-cty/cty"

	"github.com/switchover/switchover/plugins/sdk"
	"github.com/switchover/switchover/plugins/sdk/sdktest"
)

// What is due, at each moment of two booked windows, for an access that
// is open or closed; and the notices owed.
func TestDecide(t *testing.T) {
	t0 := time.Date(2027, 1, 12, 8, 0, 0, 0, time.UTC)
	ws := []Window{
		{Name: "a", Start: t0, End: t0.Add(4 * time.Hour)},
		{Name: "b", Start: t0.Add(24 * time.Hour), End: t0.Add(26 * time.Hour)},
	}
	all := checkpoint{Booked: []string{"a", "b"}}
	for _, tc := range []struct {
		name string
		now  time.Time
		cp   checkpoint
		acc  Access
		want string
	}{
		{"before, nothing booked", t0.Add(-time.Hour), checkpoint{}, Access{}, `book "a" (2027-01-12 08:00 UTC to 2027-01-12 12:00 UTC); book "b"`},
		{"before, booked", t0.Add(-time.Hour), all, Access{}, ""},
		{"before, opened by hand", t0.Add(-time.Hour), all, Access{Open: true}, "close T: it is open outside any window"},
		{"in a", t0.Add(time.Hour), all, Access{}, `open T until 2027-01-12 12:00 UTC (window "a"`},
		{"in a, open without an end", t0.Add(time.Hour), all, Access{Open: true}, `open T until`},
		{"in a, open, notice owed", t0.Add(time.Hour), all, Access{Open: true, Until: t0.Add(4 * time.Hour)}, `finish opening window "a"`},
		{"after a, still open", t0.Add(5 * time.Hour), checkpoint{Booked: []string{"a", "b"}, Opened: []string{"a"}}, Access{Open: true, Until: t0.Add(4 * time.Hour)}, `close window "a" of T`},
		{"after a, closed by the target", t0.Add(5 * time.Hour), checkpoint{Booked: []string{"a", "b"}, Opened: []string{"a"}}, Access{}, `close window "a" of T`},
		{"after a, all done", t0.Add(5 * time.Hour), checkpoint{Booked: []string{"a", "b"}, Opened: []string{"a"}, Closed: []string{"a"}}, Access{}, ""},
	} {
		d := decide(ws, tc.cp, tc.acc, tc.now, false)
		if got := d.summary(fakeTarget{}); !strings.HasPrefix(got, tc.want) || (tc.want == "") != (got == "") {
			t.Errorf("%s: %q, want %q", tc.name, got, tc.want)
		}
	}
	// Between events: due at the next start or end, the rest listed.
	d := decide(ws, all, Access{}, t0.Add(-time.Hour), false)
	if r := waitOrDone(fakeTarget{}, d, Access{}); !r.NotBefore.Equal(t0) || !strings.Contains(r.Summary, `also booked: "b" 2027-01-13 08:00 UTC to 2027-01-13 10:00 UTC`) {
		t.Errorf("between events: %s %q", r.NotBefore, r.Summary)
	}
}

type fakeTarget struct{ Target }

func (fakeTarget) Describe() string { return "T" }

// Two windows of one name are refused even when others lie between them.
func TestParseRefusesTwoWindowsOfOneName(t *testing.T) {
	now := time.Now()
	w := func(name string, h int) Window {
		return Window{Name: name, Start: now.Add(time.Duration(h) * time.Hour), End: now.Add(time.Duration(h)*time.Hour + 30*time.Minute),
			BookedAt: now.Add(-8 * 24 * time.Hour), BookedBy: "a", ApprovedBy: "b"}
	}
	obj, err := sdktest.Object(Attributes(), map[string]cty.Value{"windows": cty.ListVal([]cty.Value{Value(w("x", 1)), Value(w("y", 2)), Value(w("x", 3))})})
	if err != nil {
		t.Fatal(err)
	}
	_, diags := parse(sdk.NewValues(obj), now, checkpoint{})
	if err := diags.Err(); err == nil || !strings.Contains(err.Error(), `two windows are named "x"`) {
		t.Fatalf("%v", err)
	}
}
