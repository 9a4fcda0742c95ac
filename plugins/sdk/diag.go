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

// CodeNotFound marks an error meaning the object a step works on does not
// exist (any more): deleted between plan and apply, or never there. For an
// action that removes or disables objects (Action.GoneIsDone) that is
// success ("already gone"); for others, a one-line failure naming the
// object. Return it with NotFound.
const CodeNotFound = "not_found"

// CodeLeftForPerson marks a warning that names something a person must
// still do (switchover could not, or must not, do it): it becomes an open
// item of the new provider's checklist, with the step and its target. A
// warning without it is listed there too, as a warning.
const CodeLeftForPerson = "left_for_person"

// Warnf is one warning: shown with the plan, recorded with the step, and
// listed as an open item in the checklist.
func Warnf(summary, format string, a ...any) Diagnostic {
	return Diagnostic{Severity: Warning, Summary: summary, Detail: fmt.Sprintf(format, a...)}
}

// LeftForPerson is a warning saying what a person still has to do (such
// as "still privileged through its primary group: change it by hand").
func LeftForPerson(summary, format string, a ...any) Diagnostic {
	return Diagnostic{Severity: Warning, Summary: summary, Detail: fmt.Sprintf(format, a...), Code: CodeLeftForPerson}
}

// LeftForPersonList is one open item that lists things a person reviews,
// each a [what, what to do] pair: the first 20, and how many more.
func LeftForPersonList(summary string, items [][2]string) Diagnostic {
	var b strings.Builder
	for i, it := range items {
		if i == 20 {
			fmt.Fprintf(&b, "... and %d more (in the step's outputs)\n", len(items)-20)
			break
		}
		fmt.Fprintf(&b, "- %s\n  %s\n", it[0], it[1])
	}
	return LeftForPerson(summary, "%s", strings.TrimSuffix(b.String(), "\n"))
}

// Conflict is the ConflictError these diagnostics carry (their wire form:
// an error with CodeConflict), or nil: the one place a conflict that
// crossed the plugin boundary becomes an error again.
func (ds Diagnostics) Conflict() *ConflictError {
	if !ds.HasCode(CodeConflict) {
		return nil
	}
	return &ConflictError{Msg: ds.Err().Error()}
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

// NotFoundError says the object a step works on does not exist: the
// target answered so (Graph 404 Request_ResourceNotFound, SCIM 404, LDAP
// noSuchObject, no such user or file on a host).
type NotFoundError struct {
	// Object names it as a person would look for it ("user tech3@oldmsp.example
	// in tenant T").
	Object string
}

func (e *NotFoundError) Error() string { return e.Object + " does not exist (any more)" }

// NotFound is a NotFoundError naming the object.
func NotFound(format string, a ...any) error {
	return &NotFoundError{Object: fmt.Sprintf(format, a...)}
}

// IsNotFound reports whether err is, or wraps, a NotFoundError.
func IsNotFound(err error) bool {
	var nf *NotFoundError
	return errors.As(err, &nf)
}

// errDiags is the diagnostic for err, with its code.
func errDiags(err error) Diagnostics {
	var ce *ConflictError
	if errors.As(err, &ce) {
		return Diagnostics{{Severity: Error, Summary: err.Error(), Code: CodeConflict}}
	}
	if IsNotFound(err) {
		return Diagnostics{{Severity: Error, Summary: err.Error(), Code: CodeNotFound}}
	}
	return Errorf("%v", err)
}

// PlanError is a plan that failed with err (a NotFoundError keeps its code).
func PlanError(err error) *PlanResponse {
	return &PlanResponse{Diagnostics: errDiags(err)}
}

// ApplyError is an apply that failed with err; a ConflictError anywhere in
// its chain makes it a conflict (switchover plans again), a NotFoundError
// says the object is gone.
func ApplyError(err error) *ApplyResponse {
	return &ApplyResponse{Diagnostics: errDiags(err)}
}

// notFoundSummary is the not-found error's text, or "".
func (d Diagnostics) notFoundSummary() string {
	for _, x := range d {
		if x.Severity == Error && x.Code == CodeNotFound {
			return x.Summary
		}
	}
	return ""
}

// warnings are the diagnostics that are not errors.
func (d Diagnostics) warnings() Diagnostics {
	var out Diagnostics
	for _, x := range d {
		if x.Severity != Error {
			out = append(out, x)
		}
	}
	return out
}
