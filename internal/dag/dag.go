// Package dag is a small directed graph of named nodes: dependency edges, a
// cycle check that names the nodes in each cycle, and a topological order.
package dag

import "sort"

// Graph holds nodes and "depends on" edges.
type Graph struct {
	nodes []string
	index map[string]int
	deps  [][]int // deps[i]: the nodes i depends on
}

// New returns an empty graph.
func New() *Graph { return &Graph{index: map[string]int{}} }

// Add adds a node (idempotent).
func (g *Graph) Add(n string) {
	if _, ok := g.index[n]; ok {
		return
	}
	g.index[n] = len(g.nodes)
	g.nodes = append(g.nodes, n)
	g.deps = append(g.deps, nil)
}

// Connect records that from depends on to. Both are added if missing.
func (g *Graph) Connect(from, to string) {
	g.Add(from)
	g.Add(to)
	i, j := g.index[from], g.index[to]
	for _, d := range g.deps[i] {
		if d == j {
			return
		}
	}
	g.deps[i] = append(g.deps[i], j)
}

// DependsOn returns the direct dependencies of n.
func (g *Graph) DependsOn(n string) []string {
	i, ok := g.index[n]
	if !ok {
		return nil
	}
	out := make([]string, 0, len(g.deps[i]))
	for _, d := range g.deps[i] {
		out = append(out, g.nodes[d])
	}
	return out
}

// Cycles returns every cycle (strongly connected component of more than one
// node, or a node depending on itself), each in edge order starting from its
// first-declared node, so that a[0] -> a[1] -> ... -> a[0].
func (g *Graph) Cycles() [][]string {
	n := len(g.nodes)
	index := make([]int, n)
	low := make([]int, n)
	on := make([]bool, n)
	for i := range index {
		index[i] = -1
	}
	var stack []int
	var sccs [][]int
	next := 0
	var strong func(v int)
	strong = func(v int) {
		index[v], low[v] = next, next
		next++
		stack = append(stack, v)
		on[v] = true
		for _, w := range g.deps[v] {
			if index[w] < 0 {
				strong(w)
				low[v] = min(low[v], low[w])
			} else if on[w] {
				low[v] = min(low[v], index[w])
			}
		}
		if low[v] == index[v] {
			var c []int
			for {
				w := stack[len(stack)-1]
				stack = stack[:len(stack)-1]
				on[w] = false
				c = append(c, w)
				if w == v {
					break
				}
			}
			self := false
			for _, d := range g.deps[v] {
				if d == v {
					self = true
				}
			}
			if len(c) > 1 || self {
				sccs = append(sccs, c)
			}
		}
	}
	for v := 0; v < n; v++ {
		if index[v] < 0 {
			strong(v)
		}
	}
	var out [][]string
	for _, c := range sccs {
		out = append(out, g.orderCycle(c))
	}
	sort.Slice(out, func(i, j int) bool { return g.index[out[i][0]] < g.index[out[j][0]] })
	return out
}

// orderCycle walks the component from its first-declared node along edges
// inside the component, so the names read as a path.
func (g *Graph) orderCycle(c []int) []string {
	in := map[int]bool{}
	start := c[0]
	for _, v := range c {
		in[v] = true
		if v < start {
			start = v
		}
	}
	path := []string{g.nodes[start]}
	seen := map[int]bool{start: true}
	cur := start
	for {
		nxt := -1
		for _, d := range g.deps[cur] {
			if in[d] && !seen[d] {
				nxt = d
				break
			}
		}
		if nxt < 0 {
			break
		}
		seen[nxt] = true
		path = append(path, g.nodes[nxt])
		cur = nxt
	}
	return path
}

// TopoOrder returns the nodes with every node after its dependencies, ties in
// declaration order. It must only be called on a graph without cycles.
func (g *Graph) TopoOrder() []string {
	n := len(g.nodes)
	done := make([]bool, n)
	var out []string
	var visit func(v int)
	visit = func(v int) {
		if done[v] {
			return
		}
		done[v] = true
		for _, d := range g.deps[v] {
			visit(d)
		}
		out = append(out, g.nodes[v])
	}
	for v := 0; v < n; v++ {
		visit(v)
	}
	return out
}

// Closure returns the given nodes and everything they depend on, transitively.
func (g *Graph) Closure(roots []string) map[string]bool {
	out := map[string]bool{}
	var visit func(v int)
	visit = func(v int) {
		if out[g.nodes[v]] {
			return
		}
		out[g.nodes[v]] = true
		for _, d := range g.deps[v] {
			visit(d)
		}
	}
	for _, r := range roots {
		if i, ok := g.index[r]; ok {
			visit(i)
		}
	}
	return out
}
