package pluginhost

import (
	"strings"
	"sync"
	"testing"

	"github.com/switchover/switchover/plugins/sdk"
)

// Only a plugin's notices reach the terminal, whole lines, named; its
// other output to stderr does not.
func TestNotices(t *testing.T) {
	var out strings.Builder
	n := &notices{name: "entra", w: &out, mu: &sync.Mutex{}}
	for _, chunk := range []string{"some debug output\n" + sdk.NoticePrefix + "To sign in, enter the", " code ABC to authenticate.\nmore", " output\n"} {
		if _, err := n.Write([]byte(chunk)); err != nil {
			t.Fatal(err)
		}
	}
	if got, want := out.String(), "entra: To sign in, enter the code ABC to authenticate.\n"; got != want {
		t.Fatalf("notices wrote %q, want %q", got, want)
	}
	// Escape sequences in a notice are shown, not obeyed.
	out.Reset()
	n.Write([]byte(sdk.NoticePrefix + "open \x1b]8;;https://evil.example\x07https://microsoft.com/devicelogin\x1b]8;;\x07 \x1b[2J\n"))
	if got := out.String(); strings.Contains(got, "\x1b") || !strings.Contains(got, `\x1b]8;;https://evil.example\x07`) {
		t.Fatalf("a notice with escape sequences: %q", got)
	}
}
