package engine

import (
	"sort"
	"strings"
	"sync"

	"github.com/zclconf/go-cty/cty"

	"github.com/switchover/switchover/internal/lang"
)

// Redacted replaces a sensitive value wherever switchover shows or stores text.
const Redacted = "(sensitive value)"

// minSecretLen: shorter sensitive strings are not searched for in text,
// where they would match everywhere; they are still never printed as values.
const minSecretLen = 4

// Redactor removes known sensitive strings from text, including text a plugin
// sends back.
type Redactor struct {
	mu      sync.RWMutex
	secrets map[string]bool
	sorted  []string
	rep     *strings.Replacer
}

// NewRedactor returns an empty Redactor.
func NewRedactor() *Redactor { return &Redactor{secrets: map[string]bool{}} }

// Add registers a sensitive string.
func (r *Redactor) Add(s string) {
	if len(s) < minSecretLen {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.secrets[s] {
		return
	}
	r.secrets[s] = true
	r.sorted = append(r.sorted, s)
	// Longest first, so that a secret containing another is removed whole.
	sort.Slice(r.sorted, func(i, j int) bool { return len(r.sorted[i]) > len(r.sorted[j]) })
	pairs := make([]string, 0, 2*len(r.sorted))
	for _, x := range r.sorted {
		pairs = append(pairs, x, Redacted)
	}
	r.rep = strings.NewReplacer(pairs...)
}

// AddValue registers every string inside v that carries the sensitive mark
// (or sits inside a marked value).
func (r *Redactor) AddValue(v cty.Value) {
	collectSensitive(v, false, r.Add)
}

func collectSensitive(v cty.Value, marked bool, add func(string)) {
	if v.HasMark(lang.SensitiveMark) {
		marked = true
	}
	v, _ = v.Unmark()
	if !v.IsKnown() || v.IsNull() {
		return
	}
	ty := v.Type()
	switch {
	case ty == cty.String:
		if marked {
			add(v.AsString())
		}
	case ty == cty.Number:
		if marked {
			add(v.AsBigFloat().Text('f', -1))
		}
	case ty.IsSetType() && !marked:
		// cty keeps no marks inside a set (they move to the set itself), so
		// an unmarked set holds nothing sensitive: no need to walk it.
		return
	case ty.IsCollectionType() || ty.IsObjectType() || ty.IsTupleType():
		for it := v.ElementIterator(); it.Next(); {
			_, e := it.Element()
			collectSensitive(e, marked, add)
		}
	}
}

// String returns s with every known sensitive string replaced.
func (r *Redactor) String(s string) string {
	r.mu.RLock()
	rep := r.rep
	r.mu.RUnlock()
	if rep == nil {
		return s
	}
	return rep.Replace(s)
}

// Strings redacts each string.
func (r *Redactor) Strings(ss []string) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = r.String(s)
	}
	return out
}
