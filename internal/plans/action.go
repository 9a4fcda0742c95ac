package plans

import (
	"fmt"
)

// Action is what a plan says about one step instance: the one value the
// engine, the saved plan file and `plan -json` share.
type Action int

const (
	// Invalid is the zero value; no plan has it.
	Invalid Action = iota
	// Change: the plugin will change the system.
	Change
	// Drift: the state records the instance as done, but the plugin sees a
	// change again (someone undid it); apply does it again.
	Drift
	// Deferred: decided during apply, once earlier steps gave the values
	// it needs (its `when` or attributes are not known yet).
	Deferred
	// Manual: a person does it and confirms.
	Manual
	// NoChange: the system already is as the step wants it.
	NoChange
	// Done: the state records it as done and, looking again, the plugin
	// sees no change (or -refresh=false did not look); not called again.
	Done
	// Skipped: its `when` condition is false.
	Skipped
	// Failed: it could not be planned.
	Failed
	// Wait: started, and goes on at a later time (the plugin said when);
	// apply leaves it waiting until then.
	Wait
	// Gone: the state records the instance, but the read-only step it is
	// expanded from no longer finds its object (deleted, or no longer
	// matching). Nothing to do on any system; apply records it as gone.
	Gone
)

var actionWords = [...]string{
	Invalid:  "invalid",
	Change:   "change",
	Drift:    "drift",
	Deferred: "deferred",
	Manual:   "manual",
	NoChange: "no-change",
	Done:     "done",
	Skipped:  "skipped",
	Failed:   "failed",
	Wait:     "wait",
	Gone:     "gone",
}

// String is the action's word in the plan file and in `-json`.
func (a Action) String() string {
	if a < 0 || int(a) >= len(actionWords) {
		return fmt.Sprintf("Action(%d)", int(a))
	}
	return actionWords[a]
}

// ParseAction is the inverse of String.
func ParseAction(s string) (Action, error) {
	for a, w := range actionWords {
		if w == s && Action(a) != Invalid {
			return Action(a), nil
		}
	}
	return Invalid, fmt.Errorf("unknown plan action %q", s)
}

// MarshalText implements encoding.TextMarshaler.
func (a Action) MarshalText() ([]byte, error) {
	if a <= Invalid || int(a) >= len(actionWords) {
		return nil, fmt.Errorf("cannot save plan action %d", int(a))
	}
	return []byte(a.String()), nil
}

// UnmarshalText implements encoding.TextUnmarshaler.
func (a *Action) UnmarshalText(b []byte) error {
	v, err := ParseAction(string(b))
	if err != nil {
		return err
	}
	*a = v
	return nil
}

// Symbol is the action's mark in the human plan.
func (a Action) Symbol() string {
	switch a {
	case Change, Drift, Deferred:
		return "~"
	case Manual:
		return "!"
	case NoChange, Done:
		return "="
	case Skipped, Gone:
		return "-"
	case Wait:
		return ">"
	}
	return "x"
}

// Changes reports whether apply will call the plugin to change something
// (a deferred instance is decided then, and counts as a change).
func (a Action) Changes() bool { return a == Change || a == Drift || a == Deferred }

// Counts summarises a plan.
type Counts struct {
	Change   int `json:"change"`
	NoChange int `json:"no_change"`
	Manual   int `json:"manual"`
	Wait     int `json:"wait"`
	Skipped  int `json:"skipped"`
	Failed   int `json:"failed"`
	// Gone: objects the reads no longer find (no change to any system).
	Gone int `json:"gone"`
}

// Add counts one instance's action.
func (c *Counts) Add(a Action) {
	switch a {
	case Change, Drift, Deferred:
		c.Change++
	case NoChange, Done:
		c.NoChange++
	case Manual:
		c.Manual++
	case Wait:
		c.Wait++
	case Skipped:
		c.Skipped++
	case Failed:
		c.Failed++
	case Gone:
		c.Gone++
	}
}
