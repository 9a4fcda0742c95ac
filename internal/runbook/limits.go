package runbook

import (
	"fmt"

	"github.com/hashicorp/hcl/v2"
)

// MaxNesting bounds how deeply brackets may nest in a runbook file: HCL's
// parsers recurse once per level, and 100,000 nested parentheses overflow
// the Go stack (a fatal error, not a diagnostic). Real runbooks nest a
// handful of levels.
const MaxNesting = 500

// MaxFileSize bounds one runbook file.
const MaxFileSize = 8 << 20

// CheckLimits reports a file too large or nested too deeply to parse. It
// counts brackets outside nothing: one inside a string counts too, which
// only makes the limit slightly stricter for text no runbook holds.
func CheckLimits(src []byte, filename string) hcl.Diagnostics {
	if len(src) > MaxFileSize {
		return hcl.Diagnostics{{Severity: hcl.DiagError, Summary: "Runbook file too large",
			Detail:  fmt.Sprintf("%s has %d bytes; a runbook file may have at most %d MiB.", filename, len(src), MaxFileSize>>20),
			Subject: &hcl.Range{Filename: filename, Start: hcl.InitialPos, End: hcl.InitialPos}}}
	}
	depth, line, col := 0, 1, 1
	for i, b := range src {
		switch b {
		case '(', '[', '{':
			depth++
			if depth > MaxNesting {
				pos := hcl.Pos{Line: line, Column: col, Byte: i}
				return hcl.Diagnostics{{Severity: hcl.DiagError, Summary: "Expression nested too deeply",
					Detail:  fmt.Sprintf("Brackets nest more than %d levels deep here; simplify the expression.", MaxNesting),
					Subject: &hcl.Range{Filename: filename, Start: pos, End: hcl.Pos{Line: line, Column: col + 1, Byte: i + 1}}}}
			}
		case ')', ']', '}':
			if depth > 0 {
				depth--
			}
		}
		if b == '\n' {
			line, col = line+1, 1
		} else {
			col++
		}
	}
	return nil
}
