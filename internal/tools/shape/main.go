// Command shape checks the size rules of the engine's reshaping (make
// lint): no function longer than a package's limit, and no type in the
// engine with more than 25 methods.
//
//	go run ./internal/tools/shape DIR=MAXLINES ...
package main

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// maxMethods bounds the methods of one type (the engine's room rule).
const maxMethods = 25

func main() {
	bad := 0
	for _, arg := range os.Args[1:] {
		dir, limit, ok := strings.Cut(arg, "=")
		n, err := strconv.Atoi(limit)
		if !ok || err != nil {
			fmt.Fprintf(os.Stderr, "shape: %q is not DIR=MAXLINES\n", arg)
			os.Exit(2)
		}
		bad += check(dir, n)
	}
	if bad > 0 {
		os.Exit(1)
	}
}

// check reports the functions of dir longer than limit lines and the
// types with more than maxMethods methods; it returns how many.
func check(dir string, limit int) int {
	fset := token.NewFileSet()
	files, _ := filepath.Glob(filepath.Join(dir, "*.go"))
	methods := map[string]int{}
	bad := 0
	for _, path := range files {
		if strings.HasSuffix(path, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, path, nil, 0)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		for _, d := range f.Decls {
			fd, ok := d.(*ast.FuncDecl)
			if !ok || fd.Body == nil {
				continue
			}
			lines := fset.Position(fd.End()).Line - fset.Position(fd.Pos()).Line + 1
			if lines > limit {
				fmt.Printf("%s: %s is %d lines (at most %d here)\n", fset.Position(fd.Pos()), fd.Name.Name, lines, limit)
				bad++
			}
			if fd.Recv != nil && len(fd.Recv.List) == 1 {
				methods[recvType(fd.Recv.List[0].Type)]++
			}
		}
	}
	names := make([]string, 0, len(methods))
	for t := range methods {
		names = append(names, t)
	}
	sort.Strings(names)
	for _, t := range names {
		if methods[t] > maxMethods {
			fmt.Printf("%s: type %s has %d methods (at most %d)\n", dir, t, methods[t], maxMethods)
			bad++
		}
	}
	return bad
}

func recvType(e ast.Expr) string {
	switch t := e.(type) {
	case *ast.StarExpr:
		return recvType(t.X)
	case *ast.IndexExpr:
		return recvType(t.X)
	case *ast.Ident:
		return t.Name
	}
	return "?"
}
