package handover

import (
	"encoding/json"
	"fmt"
	"html/template"
	"io"
	"strings"
	"time"
)

// JSON writes the checklist as JSON (format_version 1), with text as it is
// ("->" is not escaped to "-\u003e").
func (c *Checklist) JSON(w io.Writer) error {
	var b strings.Builder
	enc := json.NewEncoder(&b)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	if err := enc.Encode(c); err != nil {
		return err
	}
	// DEL and the C1 controls (a terminal takes U+009B for ESC [) are
	// escaped as JSON escapes them: the file is safe to print.
	var e strings.Builder
	for _, r := range b.String() {
		if r == 0x7f || r >= 0x80 && r < 0xa0 {
			fmt.Fprintf(&e, `\u%04x`, r)
			continue
		}
		e.WriteRune(r)
	}
	_, err := io.WriteString(w, e.String())
	return err
}

func stamp(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format("2006-01-02 15:04 UTC")
}

func (it OpenItem) due() string {
	if it.Due != nil {
		return stamp(*it.Due)
	}
	return it.DueText
}

func (c *Checklist) title() string {
	t := "Onboarding checklist"
	if c.Runbook.Client != "" {
		t += ": " + c.Runbook.Client
	}
	return t
}

func (c *Checklist) headerFacts() [][2]string {
	f := [][2]string{{"Runbook", c.Runbook.Name}}
	if c.Runbook.Description != "" {
		f = append(f, [2]string{"About", c.Runbook.Description})
	}
	for _, kv := range [][2]string{{"Client", c.Runbook.Client}, {"Previous provider", c.Runbook.OldProvider}, {"New provider", c.Runbook.NewProvider}} {
		if kv[1] != "" {
			f = append(f, kv)
		}
	}
	f = append(f, [2]string{"Runbook hash", c.Runbook.Hash})
	if c.Runbook.AppliedHash != "" {
		f = append(f, [2]string{"Hash of the runbook last applied", c.Runbook.AppliedHash})
	}
	for _, r := range c.Runs {
		f = append(f, [2]string{"Run " + stamp(r.Time), fmt.Sprintf("approved by %s (%s)", r.By, r.Approval)})
	}
	head := fmt.Sprintf("%d entries, head seq %d, hash %s", c.Audit.Entries, c.Audit.HeadSeq, c.Audit.HeadHash)
	if !c.Audit.Verified {
		head += " — DOES NOT VERIFY: " + strings.Join(c.Audit.Problems, "; ")
	}
	f = append(f, [2]string{"Audit trail", head})
	for _, r := range c.Receipts {
		f = append(f, [2]string{"Received", fmt.Sprintf("by %s at %s (bundle sha256 %s)", r.By, stamp(r.Time), r.SHA256)})
	}
	f = append(f, [2]string{"Generated", stamp(c.GeneratedAt)})
	return f
}

func (c *Checklist) countLine() string {
	n := c.Counts
	line := fmt.Sprintf("%d done, %d failed, %d waiting for a person, %d due later, %d skipped, %d cut off, %d pending", n.Done, n.Failed, n.Waiting, n.Due, n.Skipped, n.Running, n.Pending)
	if n.Gone > 0 {
		line += fmt.Sprintf(", %d gone (no longer found by the runbook's reads)", n.Gone)
	}
	return line
}

// mdEscaper escapes what lets remote text become a link or an image
// ("[", "]"), HTML or an autolink ("<"), code (a backtick), or break a
// table row ("|"); the backslash first, so that "\[" cannot undo it.
var mdEscaper = strings.NewReplacer(`\`, `\\`, "`", "\\`", "[", `\[`, "]", `\]`, "<", `\<`, "|", `\|`, "\r", "", "\n", " ")

// mdEscape keeps a value from breaking a Markdown table or list, or from
// becoming a link, an image or HTML in a renderer; a ">" or "#" only where
// it would start a quote or a heading ("->" stays as written).
func mdEscape(s string) string {
	s = mdEscaper.Replace(s)
	if strings.HasPrefix(s, ">") || strings.HasPrefix(s, "#") {
		s = `\` + s
	}
	return s
}

// Markdown writes the checklist for a ticket.
func (c *Checklist) Markdown(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "# %s\n\n", mdEscape(c.title()))
	for _, kv := range c.headerFacts() {
		fmt.Fprintf(&b, "- **%s:** %s\n", mdEscape(kv[0]), mdEscape(kv[1]))
	}
	for _, wn := range c.Warnings {
		fmt.Fprintf(&b, "\n> **Warning:** %s\n", mdEscape(wn))
	}
	fmt.Fprintf(&b, "\n## Open items (%d)\n\n", len(c.OpenItems))
	if len(c.OpenItems) == 0 {
		b.WriteString("Nothing is open.\n")
	}
	for _, it := range c.OpenItems {
		fmt.Fprintf(&b, "- [ ] **%s**", mdEscape(it.Title))
		if it.Step != "" && it.Kind != "failed" && it.Kind != "cut_off" && it.Kind != "waiting_for_person" && it.Kind != "due_later" && it.Kind != "skipped" {
			fmt.Fprintf(&b, " — `%s`", strings.ReplaceAll(it.Step, "`", "'"))
		}
		if it.Target != "" {
			fmt.Fprintf(&b, " — on %s", mdEscape(it.Target))
		}
		if it.Owner != "" {
			fmt.Fprintf(&b, " — owner: %s", mdEscape(it.Owner))
		}
		if d := it.due(); d != "" {
			fmt.Fprintf(&b, " — due: %s", mdEscape(d))
		}
		if it.Detail != "" {
			fmt.Fprintf(&b, "\n  %s", mdEscape(it.Detail))
		}
		b.WriteString("\n")
	}
	fmt.Fprintf(&b, "\n## Systems\n\nSteps: %s.\n", c.countLine())
	for _, sys := range c.Systems {
		fmt.Fprintf(&b, "\n### %s\n\n| step | action | status | result |\n|---|---|---|---|\n", mdEscape(sys.Name))
		for _, s := range sys.Steps {
			res := s.Result()
			fmt.Fprintf(&b, "| `%s` | %s | %s | %s |\n", strings.ReplaceAll(s.Address, "`", "'"), mdEscape(s.Action), mdEscape(s.Status), mdEscape(res))
		}
		for _, s := range sys.Steps {
			if len(s.Evidence) == 0 {
				continue
			}
			fmt.Fprintf(&b, "\nEvidence of `%s`:\n", strings.ReplaceAll(s.Address, "`", "'"))
			mdEvidence(&b, s.Evidence)
		}
	}
	if va := c.VendorAccess; va != nil {
		b.WriteString("\n## Vendor access: the standard operating procedure\n\n")
		for _, r := range va.Rules {
			fmt.Fprintf(&b, "- %s\n", mdEscape(r))
		}
		b.WriteString("\n| access | status | where it stands |\n|---|---|---|\n")
		for _, s := range va.Accesses {
			fmt.Fprintf(&b, "| `%s` | %s | %s |\n", strings.ReplaceAll(s.Address, "`", "'"), mdEscape(s.Status), mdEscape(s.Result()))
		}
	}
	fmt.Fprintf(&b, "\n## Secrets delivered (%d; values only in the encrypted bundle)\n\n", len(c.Secrets))
	if len(c.Secrets) > 0 {
		b.WriteString("| name | set by | created | verified |\n|---|---|---|---|\n")
	}
	for _, s := range c.Secrets {
		v := "no"
		if s.Verified {
			v = "yes"
			if s.VerifiedAt != nil {
				v += ", " + stamp(*s.VerifiedAt)
			}
		}
		if s.Pending {
			v += " (a new value is pending)"
		}
		fmt.Fprintf(&b, "| %s | `%s` | %s | %s |\n", mdEscape(s.Name), strings.ReplaceAll(s.SetBy, "`", "'"), stamp(s.Created), v)
	}
	if len(c.Confirmations) > 0 {
		b.WriteString("\n## Confirmed by people\n\n")
		for _, cf := range c.Confirmations {
			fmt.Fprintf(&b, "- `%s`: %s at %s", strings.ReplaceAll(cf.Step, "`", "'"), mdEscape(cf.By), stamp(cf.Time))
			if cf.Note != "" {
				fmt.Fprintf(&b, ": %s", mdEscape(cf.Note))
			}
			b.WriteString("\n")
		}
	}
	if len(c.Outputs) > 0 {
		b.WriteString("\n## Outputs\n\n")
		for _, o := range c.Outputs {
			v := "(sensitive: in the bundle)"
			if !o.Sensitive {
				v = plainJSON(o.Value)
			}
			fmt.Fprintf(&b, "- %s = %s\n", mdEscape(o.Name), mdEscape(v))
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

var page = template.Must(template.New("page").Funcs(template.FuncMap{"stamp": stampAny, "evidence": evidenceItems, "json": plainJSON}).Parse(`<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'">
<title>{{.C.Title}}</title>
<style>
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #1b1f24; max-width: 60rem; margin: 2rem auto; padding: 0 1rem; }
h1 { font-size: 1.6rem; margin-bottom: .2rem; } h2 { margin-top: 2rem; border-bottom: 2px solid #d0d7de; padding-bottom: .2rem; }
h3 { margin-top: 1.4rem; } code { font-family: ui-monospace, Menlo, Consolas, monospace; font-size: .9em; word-break: break-all; }
table { border-collapse: collapse; width: 100%; margin: .5rem 0; } th, td { border: 1px solid #d0d7de; padding: .3rem .5rem; text-align: left; vertical-align: top; }
th { background: #f6f8fa; } dl.facts { display: grid; grid-template-columns: max-content 1fr; gap: .15rem 1rem; } dt { font-weight: 600; } dd { margin: 0; word-break: break-all; }
.open li { margin: .4rem 0; } .kind { display: inline-block; font-size: .75rem; font-weight: 700; text-transform: uppercase; padding: 0 .4rem; border-radius: 3px; background: #eaeef2; }
.failed .kind, .cut_off .kind { background: #ffd8d3; } .waiting_for_person .kind, .due_later .kind { background: #fff1c2; }
.status-done { color: #1a7f37; } .status-failed { color: #cf222e; font-weight: 600; } .warn { background: #fff1c2; padding: .5rem; border-left: 4px solid #d4a72c; }
details { margin: .3rem 0 .6rem; } summary { cursor: pointer; color: #0969da; } ul.ev { margin: .2rem 0; font-size: .9em; }
@media print { body { margin: 0; max-width: none; font-size: 11pt; } details { display: block; } details > summary { display: none; } h2 { break-after: avoid; } tr, li { break-inside: avoid; } a { color: inherit; } }
</style>
</head>
<body>
<h1>{{.C.Title}}</h1>
<dl class="facts">{{range .Facts}}<dt>{{index . 0}}</dt><dd>{{index . 1}}</dd>{{end}}</dl>
{{range .C.Warnings}}<p class="warn">{{.}}</p>{{end}}
<h2 id="open">Open items ({{len .C.OpenItems}})</h2>
{{if not .C.OpenItems}}<p>Nothing is open.</p>{{else}}<ul class="open">{{range .C.OpenItems}}
<li class="{{.Kind}}"><span class="kind">{{.Kind}}</span> <strong>{{.Title}}</strong>{{if or (eq .Kind "warning") (eq .Kind "left_for_person")}} — <code>{{.Step}}</code>{{end}}{{if .Target}} — on {{.Target}}{{end}}{{if .Owner}} — owner: {{.Owner}}{{end}}{{if .Due}} — due: {{stamp .Due}}{{else if .DueText}} — due: {{.DueText}}{{end}}{{if .Detail}}<br>{{.Detail}}{{end}}</li>{{end}}
</ul>{{end}}
<h2 id="systems">Systems</h2>
<p>Steps: {{.Counts}}.</p>
{{range .C.Systems}}<h3>{{.Name}}</h3>
<table><tr><th>step</th><th>action</th><th>status</th><th>result</th></tr>
{{range .Steps}}<tr><td><code>{{.Address}}</code></td><td>{{.Action}}</td><td class="status-{{.Status}}">{{.Status}}</td><td>{{.Result}}{{if .Evidence}}<details><summary>evidence</summary><ul class="ev">{{range evidence .Evidence}}<li><strong>{{.Name}}</strong>:{{if .IsTable}}<table class="ev"><tr>{{range .Cols}}<th>{{.}}</th>{{end}}</tr>{{range .Rows}}<tr>{{range .}}<td>{{.}}</td>{{end}}</tr>{{end}}</table>{{if .More}}<em>and {{.More}} more (all in checklist.json)</em>{{end}}{{else if .HasPairs}}<ul>{{range .Pairs}}<li>{{index . 0}}: {{index . 1}}</li>{{end}}</ul>{{else}} {{.Value}}{{end}}</li>{{end}}</ul></details>{{end}}</td></tr>
{{end}}</table>
{{end}}
{{with .C.VendorAccess}}<h2 id="vendor-access">Vendor access: the standard operating procedure</h2>
<ul>{{range .Rules}}<li>{{.}}</li>{{end}}</ul>
<table><tr><th>access</th><th>status</th><th>where it stands</th></tr>
{{range .Accesses}}<tr><td><code>{{.Address}}</code></td><td>{{.Status}}</td><td>{{.Result}}</td></tr>
{{end}}</table>{{end}}
<h2 id="secrets">Secrets delivered ({{len .C.Secrets}})</h2>
<p>Names only: the values are in the encrypted handover bundle.</p>
{{if .C.Secrets}}<table><tr><th>name</th><th>set by</th><th>created</th><th>verified</th></tr>
{{range .C.Secrets}}<tr><td>{{.Name}}</td><td><code>{{.SetBy}}</code></td><td>{{stamp .Created}}</td><td>{{if .Verified}}yes{{if .VerifiedAt}}, {{stamp .VerifiedAt}}{{end}}{{else}}no{{end}}{{if .Pending}} (a new value is pending){{end}}</td></tr>
{{end}}</table>{{end}}
{{if .C.Confirmations}}<h2>Confirmed by people</h2><ul>{{range .C.Confirmations}}<li><code>{{.Step}}</code>: {{.By}} at {{stamp .Time}}{{if .Note}}: {{.Note}}{{end}}</li>{{end}}</ul>{{end}}
{{if .C.Outputs}}<h2>Outputs</h2><ul>{{range .C.Outputs}}<li>{{.Name}} = {{if .Sensitive}}(sensitive: in the bundle){{else}}<code>{{json .Value}}</code>{{end}}</li>{{end}}</ul>{{end}}
</body>
</html>
`))

// HTML writes the checklist as one self-contained page (no external
// request; a Content-Security-Policy forbids any), readable printed.
func (c *Checklist) HTML(w io.Writer) error {
	return page.Execute(w, map[string]any{"C": htmlView{c}, "Facts": c.headerFacts(), "Counts": c.countLine()})
}

// mdEvidence writes a step's evidence: "name: value" lines, key/value
// lists, small tables.
func mdEvidence(b *strings.Builder, ev map[string]any) {
	b.WriteString("\n")
	for _, it := range evidenceItems(ev) {
		switch {
		case it.IsTable():
			fmt.Fprintf(b, "- %s:\n\n  | %s |\n  |%s\n", mdEscape(it.Name), strings.Join(mdCells(it.Cols), " | "), strings.Repeat("---|", len(it.Cols)))
			for _, r := range it.Rows {
				fmt.Fprintf(b, "  | %s |\n", strings.Join(mdCells(r), " | "))
			}
			if it.More > 0 {
				fmt.Fprintf(b, "\n  and %d more (all in checklist.json)\n", it.More)
			}
			b.WriteString("\n")
		case it.HasPairs():
			fmt.Fprintf(b, "- %s:\n", mdEscape(it.Name))
			for _, p := range it.Pairs {
				fmt.Fprintf(b, "  - %s: %s\n", mdEscape(p[0]), mdEscape(p[1]))
			}
		default:
			fmt.Fprintf(b, "- %s: %s\n", mdEscape(it.Name), mdEscape(it.Value))
		}
	}
}

func mdCells(cells []string) []string {
	out := make([]string, len(cells))
	for i, c := range cells {
		out[i] = mdEscape(c)
		if out[i] == "" {
			out[i] = " "
		}
	}
	return out
}

// stampAny formats a time or a *time.Time for the template.
func stampAny(v any) string {
	switch t := v.(type) {
	case time.Time:
		return stamp(t)
	case *time.Time:
		if t != nil {
			return stamp(*t)
		}
	}
	return ""
}

// htmlView adds the title for the template.
type htmlView struct{ *Checklist }

func (v htmlView) Title() string { return v.title() }
