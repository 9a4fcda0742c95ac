package handover

import (
	"bytes"
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"strings"
)

// maxRows bounds an evidence table (the JSON form keeps everything).
const maxRows = 200

// evItem is one output of a step as a person reads it: a value, a list of
// key/value pairs, or a small table.
type evItem struct {
	Name  string
	Value string      // a scalar, or a list of scalars, as text
	Pairs [][2]string // a map of scalars
	Cols  []string    // a table: a list or map of objects
	Rows  [][]string
	More  int // rows left out
}

// IsTable and HasPairs help the HTML template.
func (e evItem) IsTable() bool  { return len(e.Cols) > 0 }
func (e evItem) HasPairs() bool { return len(e.Pairs) > 0 }

// evidenceItems lays a step's evidence out for reading, by output name.
func evidenceItems(ev map[string]any) []evItem {
	names := make([]string, 0, len(ev))
	for k := range ev {
		names = append(names, k)
	}
	sort.Strings(names)
	out := make([]evItem, 0, len(names))
	for _, name := range names {
		out = append(out, layout(name, ev[name]))
	}
	return out
}

func layout(name string, v any) evItem {
	it := evItem{Name: name}
	switch x := v.(type) {
	case []any:
		if len(x) == 0 {
			it.Value = "(none)"
			return it
		}
		if allScalars(x) {
			parts := make([]string, 0, len(x))
			for _, e := range x {
				parts = append(parts, scalar(e))
			}
			it.Value = strings.Join(parts, ", ")
			return it
		}
		if objs, ok := objects(x); ok {
			it.Cols, it.Rows, it.More = table(nil, objs)
			return it
		}
	case map[string]any:
		if len(x) == 0 {
			it.Value = "(none)"
			return it
		}
		keys := sortedKeys(x)
		vals := make([]any, len(keys))
		for i, k := range keys {
			vals[i] = x[k]
		}
		if objs, ok := objects(vals); ok {
			it.Cols, it.Rows, it.More = table(keys, objs)
			return it
		}
		for _, k := range keys {
			it.Pairs = append(it.Pairs, [2]string{k, cell(x[k])})
		}
		return it
	}
	it.Value = cell(v)
	return it
}

func allScalars(xs []any) bool {
	for _, e := range xs {
		switch e.(type) {
		case []any, map[string]any:
			return false
		}
	}
	return true
}

func objects(xs []any) ([]map[string]any, bool) {
	out := make([]map[string]any, 0, len(xs))
	for _, e := range xs {
		m, ok := e.(map[string]any)
		if !ok {
			return nil, false
		}
		out = append(out, m)
	}
	return out, true
}

// table makes columns (the union of the objects' keys, after "key" when
// keys are given) and rows.
func table(keys []string, objs []map[string]any) ([]string, [][]string, int) {
	colSet := map[string]bool{}
	for _, o := range objs {
		for k := range o {
			colSet[k] = true
		}
	}
	cols := sortedKeys(colSet)
	head := cols
	if keys != nil {
		head = append([]string{"key"}, cols...)
	}
	var rows [][]string
	for i, o := range objs {
		if i == maxRows {
			return head, rows, len(objs) - maxRows
		}
		var row []string
		if keys != nil {
			row = append(row, keys[i])
		}
		for _, c := range cols {
			row = append(row, cell(o[c]))
		}
		rows = append(rows, row)
	}
	return head, rows, 0
}

// cell is a value in a table cell or after "name:": a scalar as such, a
// list of scalars joined, anything deeper as compact JSON.
func cell(v any) string {
	if xs, ok := v.([]any); ok && allScalars(xs) {
		parts := make([]string, 0, len(xs))
		for _, e := range xs {
			parts = append(parts, scalar(e))
		}
		return strings.Join(parts, ", ")
	}
	return scalar(v)
}

func scalar(v any) string {
	switch x := v.(type) {
	case nil:
		return "-"
	case string:
		return x
	case bool:
		if x {
			return "yes"
		}
		return "no"
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64)
	}
	return plainJSON(v)
}

// plainJSON is JSON without HTML escaping: "->" stays "->".
func plainJSON(v any) string {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return fmt.Sprint(v)
	}
	return strings.TrimSuffix(b.String(), "\n")
}
