package engine

import (
	"bytes"
	"encoding/json"
	"html"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"

	"github.com/switchover/switchover/internal/lang"
)

// Redacted replaces a sensitive value wherever switchover shows or stores text.
const Redacted = "(sensitive value)"

// minSecretLen: shorter sensitive strings (a 3-digit PIN) are searched for
// in text only in quotes ("123", '123'), where an error message shows a
// value; bare, they would match everywhere.
const minSecretLen = 4

// Redactor removes known sensitive strings from text, including text a plugin
// sends back.
type Redactor struct {
	mu      sync.RWMutex
	secrets map[string]string // form -> its replacement
	sorted  []string
	rep     *strings.Replacer
}

// NewRedactor returns an empty Redactor.
func NewRedactor() *Redactor { return &Redactor{secrets: map[string]string{}} }

// Add registers a sensitive string, and the forms an error message may
// show it in: quoted and escaped as Go, HCL and JSON write strings.
func (r *Redactor) Add(s string) {
	if s == "" {
		return
	}
	var forms []string
	if len(s) < minSecretLen {
		forms = []string{`"` + s + `"`, "'" + s + "'", strconv.Quote(s)}
	} else {
		forms = escapedForms(s)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, f := range forms {
		r.add(f)
	}
}

// escapedForms are the ways a text may carry s: as it is, quoted as Go,
// HCL and JSON write strings (with and without HTML escapes, with "/" as
// "\/" as some APIs echo it), URL-escaped and HTML-escaped.
func escapedForms(s string) []string {
	forms := []string{s}
	add := func(f string) {
		for _, x := range forms {
			if x == f {
				return
			}
		}
		forms = append(forms, f)
	}
	q := strconv.Quote(s)
	add(q[1 : len(q)-1])
	var plain bytes.Buffer
	enc := json.NewEncoder(&plain)
	enc.SetEscapeHTML(false)
	if enc.Encode(s) == nil {
		j := strings.TrimSuffix(plain.String(), "\n")
		add(j[1 : len(j)-1])
		add(strings.ReplaceAll(j[1:len(j)-1], "/", `\/`))
	}
	if j, err := json.Marshal(s); err == nil {
		add(string(j[1 : len(j)-1]))
		add(strings.ReplaceAll(string(j[1:len(j)-1]), "/", `\/`))
	}
	add(url.QueryEscape(s))
	add(url.PathEscape(s))
	add(html.EscapeString(s))
	return forms
}

func (r *Redactor) add(s string) {
	if _, ok := r.secrets[s]; ok {
		return
	}
	rep := Redacted
	if len(s) >= 2 && (s[0] == '"' || s[0] == '\'') && s[len(s)-1] == s[0] {
		rep = s[:1] + Redacted + s[len(s)-1:] // keep the quotes of a short value
	}
	r.secrets[s] = rep
	r.sorted = append(r.sorted, s)
	// Longest first, so that a secret containing another is removed whole.
	sort.Slice(r.sorted, func(i, j int) bool { return len(r.sorted[i]) > len(r.sorted[j]) })
	pairs := make([]string, 0, 2*len(r.sorted))
	for _, x := range r.sorted {
		pairs = append(pairs, x, r.secrets[x])
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

// Diags redacts the summary and detail of every diagnostic (evaluation
// errors quote values: tonumber(var.pw) says `cannot convert "..."`).
func (r *Redactor) Diags(ds hcl.Diagnostics) hcl.Diagnostics {
	for _, d := range ds {
		d.Summary, d.Detail = r.String(d.Summary), r.String(d.Detail)
	}
	return ds
}

// Strings redacts each string.
func (r *Redactor) Strings(ss []string) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = r.String(s)
	}
	return out
}
