package sdk

import (
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
