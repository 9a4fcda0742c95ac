package sdk

import (
	"errors"
	"fmt"
	"strings"
)

// Severity of a diagnostic.
type Severity int

const (
	Error Severity = iota + 1
	Warning
)

// Diagnostic is a problem a plugin reports. Attribute names the attribute it
// is about, so that switchover can point at its line in the runbook.
type Diagnostic struct {
	Severity  Severity
	Summary   string
	Detail    string
	Attribute string
	// Code is a machine-readable kind of error (see CodeConflict), or "".
	Code string
}

// CodeConflict marks an error of Apply that found the object changed since
// Plan read it (a compare-and-swap that failed). The host then plans the
// instance again and applies the new plan (a bounded number of times)
// instead of failing the step: an earlier step of the same run may have
// changed the object. Use it only where planning again and applying that
// plan is safe (Plan and Apply are idempotent from the world's view).
const CodeConflict = "conflict"

// Conflictf returns an error diagnostic with CodeConflict.
func Conflictf(format string, a ...any) Diagnostics {
	return Diagnostics{{Severity: Error, Summary: fmt.Sprintf(format, a...), Code: CodeConflict}}
}

// HasCode reports whether an error diagnostic has the code.
func (d Diagnostics) HasCode(code string) bool {
	for _, x := range d {
		if x.Severity == Error && x.Code == code {
			return true
		}
	}
	return false
}

// Diagnostics is a list of diagnostics.
type Diagnostics []Diagnostic

// HasErrors reports whether any diagnostic is an error.
func (d Diagnostics) HasErrors() bool {
	for _, x := range d {
		if x.Severity == Error {
			return true
		}
	}
	return false
}

// Err returns the errors as one Go error, or nil.
func (d Diagnostics) Err() error {
	var parts []string
	for _, x := range d {
		if x.Severity != Error {
			continue
		}
		s := x.Summary
		if x.Detail != "" {
			s += ": " + x.Detail
		}
		parts = append(parts, s)
	}
	if len(parts) == 0 {
		return nil
	}
	return fmt.Errorf("%s", strings.Join(parts, "; "))
}

// Errorf returns a single error diagnostic.
func Errorf(format string, a ...any) Diagnostics {
	return Diagnostics{{Severity: Error, Summary: fmt.Sprintf(format, a...)}}
}

// AttributeErrorf returns a single error diagnostic about one attribute.
func AttributeErrorf(attr, summary, format string, a ...any) Diagnostics {
	return Diagnostics{{Severity: Error, Summary: summary, Detail: fmt.Sprintf(format, a...), Attribute: attr}}
}

// ConflictError is an Apply error meaning the object changed since Plan
// read it (a compare-and-swap failed): nothing was overwritten, and
// switchover plans the instance again instead of failing it.
type ConflictError struct{ Msg string }

func (e *ConflictError) Error() string { return e.Msg }

// Conflict is a ConflictError with a formatted message.
func Conflict(format string, a ...any) error {
	return &ConflictError{Msg: fmt.Sprintf(format, a...)}
}

// PlanError is a plan that failed with err.
func PlanError(err error) *PlanResponse {
	return &PlanResponse{Diagnostics: Errorf("%v", err)}
}

// ApplyError is an apply that failed with err; a ConflictError anywhere in
// its chain makes it a conflict (switchover plans again).
func ApplyError(err error) *ApplyResponse {
	var ce *ConflictError
	if errors.As(err, &ce) {
		return &ApplyResponse{Diagnostics: Conflictf("%v", err)}
	}
	return &ApplyResponse{Diagnostics: Errorf("%v", err)}
}
