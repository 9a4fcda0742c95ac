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

// An API that echoes a value escaped does not get it past redaction: JSON
// with "/" as "\/", HTML escaping, URL escaping.
func TestRedactorFindsEscapedForms(t *testing.T) {
	r := NewRedactor()
	const pw = `Can/ary<&>+ pw"9`
	r.Add(pw)
	for _, text := range []string{
		`{"error":"bad password Can\/ary\u003c\u0026\u003e+ pw\"9"}`,
		`{"error":"bad password Can\/ary<&>+ pw\"9"}`,
		`<p>Can/ary&lt;&amp;&gt;+ pw&#34;9</p>`,
		`https://h/x?pw=Can%2Fary%3C%26%3E%2B+pw%229`,
		`https://h/Can%2Fary%3C&%3E+%20pw%229/`,
	} {
		if got := r.String(text); strings.Contains(got, "ary") {
			t.Errorf("%q -> %q", text, got)
		}
	}
}
