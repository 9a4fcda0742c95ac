package engine

import (
	"github.com/switchover/switchover/internal/state"
	"github.com/switchover/switchover/plugins/sdk"
)

// SensitiveTarget stands for a target the plugin marked sensitive.
const SensitiveTarget = "(a target the plugin marked sensitive)"

// target is the system a plan names, redacted like a summary: a target
// never carries a secret into the plan, the state, the audit trail or the
// checklist.
func (g *Graph) target(p *sdk.PlanResponse) string {
	if p == nil || p.Target == "" {
		return ""
	}
	if p.TargetSensitive {
		g.Redactor.Add(p.Target)
		return SensitiveTarget
	}
	return g.Redactor.String(p.Target)
}

// notes are a plugin's warnings, redacted, as the state keeps them with the
// instance (the checklist lists them as open items).
func (g *Graph) notes(ds sdk.Diagnostics) []state.Note {
	var out []state.Note
	for _, d := range ds {
		if d.Severity != sdk.Warning {
			continue
		}
		kind := state.NoteWarning
		if d.Code == sdk.CodeLeftForPerson {
			kind = state.NoteLeftForPerson
		}
		out = append(out, state.Note{Kind: kind, Summary: g.Redactor.String(d.Summary), Detail: g.Redactor.String(d.Detail)})
	}
	return out
}

// mergeNotes joins note lists, each note once.
func mergeNotes(lists ...[]state.Note) []state.Note {
	var out []state.Note
	seen := map[state.Note]bool{}
	for _, l := range lists {
		for _, n := range l {
			if !seen[n] {
				seen[n] = true
				out = append(out, n)
			}
		}
	}
	return out
}

// sameNotes: a and b hold the same notes, in order.
func sameNotes(a, b []state.Note) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
