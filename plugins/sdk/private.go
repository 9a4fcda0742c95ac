package sdk

import (
	"encoding/json"
	"fmt"
	"sync"
)

// SetPrivate keeps v (encoded as JSON) in the plan for its apply: what
// the plan read (an object's ID, its version, a descriptor), so that the
// apply changes the object the plan saw and nothing else.
func SetPrivate(r *PlanResponse, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("sdk.SetPrivate: %v", err)) // a plugin's own type that JSON cannot hold
	}
	r.Private = b
}

// PrivateOf is what the plan kept for this apply (SetPrivate); ok is
// false when it kept nothing or another shape (a plan saved by another
// version): the apply then looks again instead of trusting it.
func PrivateOf[T any](req *ApplyRequest) (v T, ok bool) {
	if len(req.Private) == 0 || json.Unmarshal(req.Private, &v) != nil {
		var zero T
		return zero, false
	}
	return v, true
}

// Configured holds what a plugin's Configure made (a client, a
// connection) for its actions. Get is the guard at the top of every
// action: "the NAME plugin is not configured" until Set.
type Configured[T any] struct {
	// Plugin names the plugin in the error.
	Plugin string

	mu  sync.RWMutex
	v   T
	set bool
}

// Set keeps what Configure made.
func (c *Configured[T]) Set(v T) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.v, c.set = v, true
}

// Get returns what Configure made, or the error of a plugin not
// configured (an action called before Configure, or after it failed).
func (c *Configured[T]) Get() (T, error) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	if !c.set {
		var zero T
		return zero, fmt.Errorf("the %s plugin is not configured", c.Plugin)
	}
	return c.v, nil
}
