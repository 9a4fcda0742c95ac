package operation

import (
	"fmt"
	"strings"

	"github.com/switchover/switchover/internal/state"
	"github.com/switchover/switchover/internal/workspace"
)

// Confirm records that a person (by, a name) did the step at addr, which
// waits for a person: the next apply continues past it. ws must be locked.
func Confirm(ws *workspace.Workspace, addr, by, note string) error {
	if strings.TrimSpace(by) == "" {
		return fmt.Errorf("--by NAME is required: a confirmation counts only when someone signs it")
	}
	in := ws.State.Instance(addr)
	switch {
	case in != nil && in.DueLater():
		return fmt.Errorf("%s waits until %s, not for a person: apply again after that time", addr, in.Until.Local().Format("2006-01-02 15:04 MST"))
	case in == nil || !in.WaitsForPerson():
		var waiting []string
		ws.State.View(func(s *state.Snapshot) {
			for _, x := range s.SortedInstances() {
				if x.WaitsForPerson() {
					waiting = append(waiting, x.Address)
				}
			}
		})
		what := "is not in the state"
		if in != nil {
			what = "is " + string(in.Status) + ", not waiting for a person"
		}
		list := "nothing waits for a person"
		if len(waiting) > 0 {
			list = "waiting: " + strings.Join(waiting, ", ")
		}
		return fmt.Errorf("%s %s (%s)", addr, what, list)
	case in.Confirm != nil:
		return fmt.Errorf("%s was already confirmed by %s at %s; run apply to continue past it", addr, in.Confirm.By, in.Confirm.Time.Local().Format("2006-01-02 15:04:05"))
	}
	return ws.Confirm(addr, by, note)
}
