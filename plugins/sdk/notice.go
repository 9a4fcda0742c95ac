package sdk

import (
	"fmt"
	"os"
	"strings"
)

// NoticePrefix marks a line a plugin writes to its standard error for the
// person running switchover, such as the code to type to sign in:
// switchover shows it at once, as "PLUGIN: message". Other lines a plugin
// writes there are not shown.
const NoticePrefix = "switchover-notice: "

// Notify shows msg (made one line) to the person running switchover, on
// the terminal only: not in plans, state or the audit trail. Never a secret.
func Notify(msg string) {
	fmt.Fprintln(os.Stderr, NoticePrefix+strings.Join(strings.Fields(msg), " "))
}
