package sdk

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"sort"

	"github.com/zclconf/go-cty/cty"
)

// A persistence sweep (ad.find_persistence, entra.find_persistence) finds
// the ways in the old provider may keep without an account of its own, and
// knows whose each is, because the runbook names the old provider. Its
// outputs are the same shape in every plugin: Findings.Outputs.

// Whose a finding is.
const (
	WhoseOldProvider = "old_provider" // removable where the plugin can
	WhoseUnlisted    = "unlisted"     // neither the old provider's nor trusted: reported, never removed
	WhoseAny         = "any"          // a weakness whoever made it
)

// FindingType is one finding in a sweep's outputs.
var FindingType = cty.Object(map[string]cty.Type{
	"kind": cty.String, "object": cty.String, "value": cty.String, "principal": cty.String,
	"what": cty.String, "whose": cty.String, "removable": cty.Bool, "remedy": cty.String,
})

// FindingOutputs are a sweep's outputs: findings, removable (the
// remove_persistence step's for_each) and count.
var FindingOutputs = []Output{
	{Name: "findings", Type: cty.Map(FindingType), Description: "Everything found, by a stable key: kind, object, value, principal, what, whose, removable, remedy."},
	{Name: "removable", Type: cty.Map(FindingType), Description: "The findings remove_persistence removes: the old provider's (for_each over it)."},
	{Name: "count", Type: cty.Number},
}

// Finding is one way in: of a kind, on an object, with a value the
// removal names exactly.
type Finding struct {
	Kind, Object, Value, Principal, What, Whose, Remedy string
	Removable                                           bool
}

// Key is the finding's key in the outputs: readable (label names the
// object), stable across plans (the same thing found again has the same
// key), unique.
func (f *Finding) Key(label string) string {
	h := sha256.Sum256([]byte(f.Kind + "\x00" + f.Object + "\x00" + f.Value))
	return f.Kind + " " + label + " " + hex.EncodeToString(h[:4])
}

func (f *Finding) value() cty.Value {
	return cty.ObjectVal(map[string]cty.Value{
		"kind": cty.StringVal(f.Kind), "object": cty.StringVal(f.Object), "value": cty.StringVal(f.Value),
		"principal": cty.StringVal(f.Principal), "what": cty.StringVal(f.What), "whose": cty.StringVal(f.Whose),
		"removable": cty.BoolVal(f.Removable), "remedy": cty.StringVal(f.Remedy),
	})
}

// Findings is what a sweep found.
type Findings struct {
	List []*Finding
	// Titles name each kind in an open item ("shadow credential(s)").
	Titles map[string]string
	// Label names a finding's object in its key (default: the object).
	Label func(*Finding) string
}

// Add adds a finding.
func (fs *Findings) Add(f *Finding) { fs.List = append(fs.List, f) }

// Outputs are the sweep's outputs (FindingOutputs), its summary, and one
// open item per kind for what is left to a person: each finding with what
// it is and what a person does (the first 20).
func (fs *Findings) Outputs() (map[string]cty.Value, string, Diagnostics) {
	all, removable := map[string]cty.Value{}, map[string]cty.Value{}
	left := map[string][]*Finding{}
	for _, f := range fs.List {
		label := f.Object
		if fs.Label != nil {
			label = fs.Label(f)
		}
		k := f.Key(label)
		all[k] = f.value()
		if f.Removable {
			removable[k] = f.value()
		} else {
			left[f.Kind] = append(left[f.Kind], f)
		}
	}
	outs := map[string]cty.Value{"findings": cty.MapValEmpty(FindingType), "removable": cty.MapValEmpty(FindingType), "count": cty.NumberIntVal(int64(len(fs.List)))}
	if len(all) > 0 {
		outs["findings"] = cty.MapVal(all)
	}
	if len(removable) > 0 {
		outs["removable"] = cty.MapVal(removable)
	}
	kinds := make([]string, 0, len(left))
	for k := range left {
		kinds = append(kinds, k)
	}
	sort.Strings(kinds)
	var items Diagnostics
	for _, k := range kinds {
		list := left[k]
		sort.Slice(list, func(i, j int) bool { return list[i].Object+list[i].Value < list[j].Object+list[j].Value })
		rows := make([][2]string, len(list))
		for i, f := range list {
			rows[i] = [2]string{f.What, f.Remedy}
		}
		title := fs.Titles[k]
		if title == "" {
			title = k
		}
		items = append(items, LeftForPersonList(fmt.Sprintf("Persistence sweep: %d %s to review", len(list), title), rows))
	}
	summary := fmt.Sprintf("%d findings, %d the old provider's to remove, %d for a person", len(fs.List), len(removable), len(fs.List)-len(removable))
	return outs, summary, items
}
