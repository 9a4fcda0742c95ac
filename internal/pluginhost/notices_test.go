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
}
