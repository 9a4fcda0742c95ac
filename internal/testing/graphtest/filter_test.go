package graphtest

import (
	"reflect"
	"testing"
)

func TestODataStrings(t *testing.T) {
	for in, want := range map[string][]string{
		`'a'`:                  {"a"},
		`'a', 'b' ,'c'`:        {"a", "b", "c"},
		`'o''brien@x.example'`: {"o'brien@x.example"},
	} {
		got, err := odataStrings(in)
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Errorf("odataStrings(%s) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{``, `a`, `'a`, `'a' 'b'`, `'a',`} {
		if got, err := odataStrings(bad); err == nil {
			t.Errorf("odataStrings(%s) = %q, want an error", bad, got)
		}
	}
}

func TestFilterIn(t *testing.T) {
	sch, err := LoadSchema()
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{schema: sch}
	match, advanced, err := s.compileFilter("user", `id in ('A1','b2')`)
	if err != nil || advanced {
		t.Fatal(err, advanced)
	}
	if !match(map[string]any{"id": "a1"}) || !match(map[string]any{"id": "b2"}) || match(map[string]any{"id": "c3"}) {
		t.Error("id in ('A1','b2') matched the wrong users")
	}
	if _, _, err := s.compileFilter("user", `nosuchProp in ('x')`); err != nil || len(s.violations) != 1 {
		t.Errorf("a property the schema lacks: %v, violations %q", err, s.violations)
	}
}
