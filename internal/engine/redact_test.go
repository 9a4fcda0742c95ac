package engine

import (
	"strings"
	"testing"
)

func TestRedactorFindsQuotedEscapedAndShortValues(t *testing.T) {
	r := NewRedactor()
	r.Add(`Sup3r"Secret\Pw`)
	r.Add("123")
	for _, text := range []string{
		`cannot convert "Sup3r\"Secret\\Pw" to number`, // Go/HCL quoting
		`{"pw":"Sup3r\"Secret\\Pw"}`,                   // JSON
		`raw Sup3r"Secret\Pw here`,
		`cannot convert "123" to bool`,
	} {
		got := r.String(text)
		if strings.Contains(got, "Secret") || strings.Contains(got, `"123"`) {
			t.Errorf("%q -> %q", text, got)
		}
	}
	// A short value is only taken out where it is quoted.
	if got := r.String("line 123 of 1234"); got != "line 123 of 1234" {
		t.Errorf("bare short value replaced: %q", got)
	}
}
