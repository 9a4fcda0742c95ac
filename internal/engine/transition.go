package engine

import (
	"fmt"
	"sync"
	"time"

	"github.com/switchover/switchover/internal/audit"
	"github.com/switchover/switchover/internal/state"
)

// Status is where an instance stands in an apply, or (Retry, Log,
// Replanned, Drift, Warning) something that happened to a running one.
type Status int

const (
	// Running: its plugin is about to be called; durable before it is.
	Running Status = iota
	Done
	Failed
	// Skipped: a step it depends on failed.
	Skipped
	// Disabled: its `when` is false.
	Disabled
	// WaitingForPerson: a person does it, then confirms.
	WaitingForPerson
	// DueLater: it goes on by itself at Until.
	DueLater
	Gone
	// NotStarted: the run stopped or halted, or a person is waited for.
	NotStarted
	Retry
	Log
	Replanned
	Drift
	Warning
)

// Transition is one change of an instance's status (or an event of a
// running one): the only way the apply walk reports anything. Every hook
// (the state, the audit trail, progress) hears every transition, in that
// order; a new status or a new sink is one edit here.
type Transition struct {
	Status  Status
	Time    time.Time
	Address string
	Attempt int
	Summary string
	Error   string
	// Until, with DueLater.
	Until time.Time
	// Action is the step's plugin.action (Running).
	Action string
	Notes  []state.Note
	// With Done: the outputs as the state keeps them, the target, the
	// secrets the step set (verified now), and how many looks the verify
	// took.
	Outputs, SealedOutputs []byte
	Target                 string
	Secrets                []string
	Reads                  int
	// Detail of a Warning.
	Detail string
}

// Hook hears the transitions of an apply. An error from Running stops the
// step before its plugin is called; any other is kept for the result.
type Hook func(t *Transition) error

// transitions is an apply's one transition point.
type transitions struct {
	red   *Redactor
	hooks []Hook

	mu       sync.Mutex
	writeErr error
}

// to redacts a transition and tells every hook; what a hook could not
// write is kept for the result.
func (ts *transitions) to(t *Transition) {
	_ = ts.tell(t) // only Running returns an error (start)
}

// start tells a Running transition: an error when it did not become
// durable, and then the step must not start (and nobody heard of it).
func (ts *transitions) start(t *Transition) error {
	t.Status = Running
	return ts.tell(t)
}

func (ts *transitions) tell(t *Transition) error {
	if t.Time.IsZero() {
		t.Time = time.Now()
	}
	t.Summary, t.Error, t.Detail, t.Target = ts.red.String(t.Summary), ts.red.String(t.Error), ts.red.String(t.Detail), ts.red.String(t.Target)
	for i, h := range ts.hooks {
		err := h(t)
		if err == nil {
			continue
		}
		switch {
		case i == 0 && t.Status == Running:
			return err // nobody hears of a start that is not durable
		case i == 0 && t.Status == Failed:
			t.Error += "; recording the failure also failed: " + err.Error()
		default:
			ts.keep(err)
		}
	}
	return nil
}

// keep keeps the first error of a write the walk cannot stop for (an
// audit entry, a skipped step's record); Apply reports it.
func (ts *transitions) keep(err error) {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	if ts.writeErr == nil {
		ts.writeErr = err
	}
}

func (ts *transitions) err() error {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	return ts.writeErr
}

// stateHook records a transition in the state: a start and a failure
// durably before anything else hears of them, a finish without waiting for
// the disk (the next durable record carries it; a crash before leaves the
// step "running", and the next apply looks again).
func stateHook(m *state.Manager) Hook {
	return func(t *Transition) error {
		rec := &state.Record{Kind: state.KindStatus, Address: t.Address, Attempt: t.Attempt, Summary: t.Summary, Error: t.Error}
		switch t.Status {
		case Running:
			rec.Status = state.Running
		case Failed:
			rec.Status, rec.Summary = state.Failed, ""
		case Skipped, Disabled:
			rec.Status, rec.Attempt = state.Skipped, 0
		case WaitingForPerson:
			rec.Status, rec.Attempt = state.Waiting, 0
		case DueLater:
			rec.Status, rec.Until, rec.Notes, rec.Attempt = state.Waiting, t.Until, t.Notes, 0
		case Gone:
			rec.Status, rec.Attempt = state.Gone, 0
		case Done:
			rec.Status, rec.Outputs, rec.SealedOutputs, rec.Target, rec.Notes = state.Done, t.Outputs, t.SealedOutputs, t.Target, t.Notes
			recs := []*state.Record{rec}
			for _, name := range t.Secrets {
				recs = append(recs, &state.Record{Kind: state.KindSecret, Name: name, Address: t.Address, Verified: true})
			}
			m.AppendLater(recs...)
			return nil
		default:
			return nil
		}
		if err := m.Append(rec); err != nil {
			if t.Status == Running {
				return fmt.Errorf("cannot record the start: %w", err)
			}
			return fmt.Errorf("writing the state: %w", err)
		}
		return nil
	}
}

// auditHook writes a transition to the audit trail.
func auditHook(l *audit.Log) Hook {
	return func(t *Transition) error {
		ev, fields := auditEntry(t)
		if ev == "" {
			return nil
		}
		if err := l.Append(ev, t.Address, fields); err != nil {
			return fmt.Errorf("writing the audit trail (%s %s): %w", ev, t.Address, err)
		}
		if t.Status == Done {
			for _, name := range t.Secrets {
				if err := l.Append(audit.EvSecretVerified, t.Address, map[string]any{"name": name}); err != nil {
					return fmt.Errorf("writing the audit trail (%s %s): %w", audit.EvSecretVerified, t.Address, err)
				}
			}
		}
		return nil
	}
}

// auditEntry is the audit trail's line for a transition ("" for none).
func auditEntry(t *Transition) (audit.Event, map[string]any) {
	switch t.Status {
	case Running:
		return audit.EvStepStarted, map[string]any{"attempt": t.Attempt, "action": t.Action}
	case Done:
		fields := map[string]any{"summary": t.Summary, "attempt": t.Attempt}
		if t.Reads > 1 {
			// The target answered from a stale replica: the verify looked again.
			fields["verify_reads"] = t.Reads
		}
		return audit.EvStepDone, fields
	case Failed:
		return audit.EvStepFailed, map[string]any{"error": t.Error, "attempt": t.Attempt}
	case Skipped:
		return audit.EvStepSkipped, map[string]any{"reason": t.Summary}
	case WaitingForPerson:
		return audit.EvStepWaiting, map[string]any{"summary": t.Summary}
	case DueLater:
		return audit.EvStepWaiting, map[string]any{"summary": t.Summary, "until": t.Until}
	case Gone:
		return audit.EvStepGone, map[string]any{"summary": t.Summary}
	case Replanned:
		return audit.EvStepReplanned, map[string]any{"reason": t.Error, "summary": t.Summary}
	case Drift:
		return audit.EvDriftFound, map[string]any{"summary": t.Summary}
	case Warning:
		return audit.EvPluginWarning, map[string]any{"summary": t.Summary, "detail": t.Detail}
	}
	return "", nil
}

// progressHook tells a view (human or -json) what happened.
func progressHook(events func(Event)) Hook {
	return func(t *Transition) error {
		if ev, ok := progressEvent(t); ok {
			events(ev)
		}
		return nil
	}
}

// progressEvent is the progress event of a transition.
func progressEvent(t *Transition) (Event, bool) {
	ev := Event{Time: t.Time, Address: t.Address, Summary: t.Summary}
	switch t.Status {
	case Running:
		ev.Type, ev.Attempt, ev.Summary = "started", t.Attempt, ""
	case Done:
		ev.Type, ev.Attempt = "done", t.Attempt
	case Failed:
		ev.Type, ev.Attempt, ev.Error, ev.Summary = "failed", t.Attempt, t.Error, ""
	case Skipped, Disabled:
		ev.Type = "skipped"
	case WaitingForPerson:
		ev.Type = "waiting"
	case DueLater:
		until := t.Until
		ev.Type, ev.Until = "waiting", &until
	case Gone:
		ev.Type = "gone"
	case NotStarted:
		ev.Type = "not_started"
	case Retry:
		ev.Type, ev.Attempt, ev.Error = "retry", t.Attempt, t.Error
	case Log:
		ev.Type = "log"
	case Replanned:
		ev.Type, ev.Summary = "log", "planned again: "+t.Error
	case Warning:
		ev.Type, ev.Summary = "log", t.Summary+": "+t.Detail
	default:
		return Event{}, false
	}
	return ev, true
}
