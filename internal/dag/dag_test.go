package dag

import (
	"reflect"
	"testing"
)

func TestCyclesNamedInOrder(t *testing.T) {
	g := New()
	for _, n := range []string{"a", "b", "c", "d", "e"} {
		g.Add(n)
	}
	g.Connect("a", "b")
	g.Connect("b", "c")
	g.Connect("c", "a")
	g.Connect("d", "d")
	g.Connect("e", "a")
	got := g.Cycles()
	want := [][]string{{"a", "b", "c"}, {"d"}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("cycles = %v, want %v", got, want)
	}
}

func TestTopoOrderAndClosure(t *testing.T) {
	g := New()
	g.Add("deploy")
	g.Connect("deploy", "build")
	g.Connect("build", "fetch")
	g.Add("lint")
	if c := g.Cycles(); len(c) != 0 {
		t.Fatalf("unexpected cycles %v", c)
	}
	if got, want := g.TopoOrder(), []string{"fetch", "build", "deploy", "lint"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("order = %v, want %v", got, want)
	}
	if got := g.Closure([]string{"build"}); !got["fetch"] || !got["build"] || got["deploy"] || got["lint"] {
		t.Fatalf("closure = %v", got)
	}
}
