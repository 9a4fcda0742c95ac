package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"golang.org/x/term"
)

// printDiags writes diagnostics as text: severity and summary, the place as
// file:line:col, the source line with the range underlined, and the detail.
func printDiags(w io.Writer, files map[string]*hcl.File, diags hcl.Diagnostics) {
	color := false
	if f, ok := w.(*os.File); ok && term.IsTerminal(int(f.Fd())) && os.Getenv("NO_COLOR") == "" {
		color = true
	}
	var b strings.Builder
	for _, d := range diags {
		writeDiag(&b, files, d, color)
	}
	io.WriteString(w, b.String())
}

func writeDiag(b *strings.Builder, files map[string]*hcl.File, d *hcl.Diagnostic, color bool) {
	sev, on, off := "Error", "\x1b[1;31m", "\x1b[0m"
	if d.Severity == hcl.DiagWarning {
		sev, on = "Warning", "\x1b[1;33m"
	}
	if !color {
		on, off = "", ""
	}
	fmt.Fprintf(b, "%s%s:%s %s\n", on, sev, off, termSafe(d.Summary))
	if r := d.Subject; r != nil && r.Filename != "" {
		fmt.Fprintf(b, "\n  on %s:%d:%d\n", displayPath(r.Filename), r.Start.Line, r.Start.Column)
		if f := files[r.Filename]; f != nil {
			lines := strings.Split(string(f.Bytes), "\n")
			if r.Start.Line >= 1 && r.Start.Line <= len(lines) {
				line := strings.TrimRight(lines[r.Start.Line-1], "\r")
				prefix := fmt.Sprintf("  %4d | ", r.Start.Line)
				fmt.Fprintf(b, "%s%s\n", prefix, strings.ReplaceAll(line, "\t", " "))
				startCol := r.Start.Column
				endCol := r.End.Column
				if r.End.Line != r.Start.Line || endCol <= startCol {
					endCol = len(line) + 1
				}
				if startCol >= 1 && startCol <= len(line)+1 {
					width := max(1, endCol-startCol)
					fmt.Fprintf(b, "%s%s%s\n", strings.Repeat(" ", len(prefix)+startCol-1), strings.Repeat("^", width), "")
				}
			}
		}
	}
	if d.Detail != "" {
		fmt.Fprintf(b, "\n  %s\n", termSafe(d.Detail))
	}
	b.WriteString("\n")
}

// displayPath shows a file relative to the working directory when it is
// below it.
func displayPath(p string) string {
	if !filepath.IsAbs(p) {
		return p
	}
	if wd, err := os.Getwd(); err == nil {
		if rel, err := filepath.Rel(wd, p); err == nil && !strings.HasPrefix(rel, "..") {
			return rel
		}
	}
	return p
}

// jsonDiag is the JSON form of a diagnostic.
type jsonDiag struct {
	Severity string     `json:"severity"`
	Summary  string     `json:"summary"`
	Detail   string     `json:"detail,omitempty"`
	Range    *jsonRange `json:"range,omitempty"`
	Snippet  *snippet   `json:"snippet,omitempty"`
}

type jsonPos struct {
	Line   int `json:"line"`
	Column int `json:"column"`
	Byte   int `json:"byte"`
}

type jsonRange struct {
	Filename string  `json:"filename"`
	Start    jsonPos `json:"start"`
	End      jsonPos `json:"end"`
}

type snippet struct {
	StartLine int    `json:"start_line"`
	Code      string `json:"code"`
}

func toJSONDiags(files map[string]*hcl.File, diags hcl.Diagnostics) []jsonDiag {
	out := make([]jsonDiag, 0, len(diags))
	for _, d := range diags {
		jd := jsonDiag{Severity: "error", Summary: d.Summary, Detail: d.Detail}
		if d.Severity == hcl.DiagWarning {
			jd.Severity = "warning"
		}
		if r := d.Subject; r != nil {
			jd.Range = &jsonRange{Filename: r.Filename,
				Start: jsonPos{r.Start.Line, r.Start.Column, r.Start.Byte},
				End:   jsonPos{r.End.Line, r.End.Column, r.End.Byte}}
			if f := files[r.Filename]; f != nil {
				lines := strings.Split(string(f.Bytes), "\n")
				if r.Start.Line >= 1 && r.Start.Line <= len(lines) {
					end := r.End.Line
					if end < r.Start.Line || end > len(lines) {
						end = r.Start.Line
					}
					jd.Snippet = &snippet{StartLine: r.Start.Line, Code: strings.Join(lines[r.Start.Line-1:end], "\n")}
				}
			}
		}
		out = append(out, jd)
	}
	return out
}

func writeJSON(w io.Writer, v any) {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

func counts(diags hcl.Diagnostics) (errs, warns int) {
	for _, d := range diags {
		if d.Severity == hcl.DiagError {
			errs++
		} else {
			warns++
		}
	}
	return
}
