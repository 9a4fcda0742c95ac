package cli

import (
	"encoding/json"
	"io"
	"os"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"golang.org/x/term"
)

// printDiags writes diagnostics as text with file:line:col and a snippet.
func printDiags(w io.Writer, files map[string]*hcl.File, diags hcl.Diagnostics) {
	if len(diags) == 0 {
		return
	}
	color := false
	width := uint(0)
	if f, ok := w.(*os.File); ok && term.IsTerminal(int(f.Fd())) && os.Getenv("NO_COLOR") == "" {
		color = true
		if cols, _, err := term.GetSize(int(f.Fd())); err == nil && cols > 20 {
			width = uint(cols)
		}
	}
	if files == nil {
		files = map[string]*hcl.File{}
	}
	tw := hcl.NewDiagnosticTextWriter(w, files, width, color)
	_ = tw.WriteDiagnostics(diags)
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
