package cli

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclwrite"

	"github.com/switchover/switchover/internal/fsutil"
	"github.com/switchover/switchover/internal/runbook"
)

func runFmt(ctx context.Context, env *Env, args []string) int {
	var check, diff bool
	fs := newFlags(env, "fmt", "Rewrites the *.sw.hcl files of DIR (or one FILE) in the canonical format and lists the\nfiles it changed. JSON files are left as they are.", "[DIR|FILE]")
	fs.BoolVar(&check, "check", false, "Change nothing; list the files that need formatting and exit 3 if there are any")
	fs.BoolVar(&diff, "diff", false, "Also print each changed file's new content")
	pos, code, ok := parse(fs, args, 1)
	if !ok {
		return code
	}
	target := dirArg(pos)
	files, err := hclFiles(target)
	if err != nil {
		fmt.Fprintf(env.Stderr, "switchover fmt: %v\n", err)
		return ExitError
	}
	var diags hcl.Diagnostics
	parsed := map[string]*hcl.File{}
	needs := 0
	for _, f := range files {
		src, err := os.ReadFile(f)
		if err != nil {
			fmt.Fprintf(env.Stderr, "switchover fmt: %v\n", err)
			return ExitError
		}
		if d := runbook.CheckLimits(src, f); d.HasErrors() {
			parsed[f] = &hcl.File{Bytes: src}
			diags = append(diags, d...)
			continue
		}
		wf, d := hclwrite.ParseConfig(src, f, hcl.InitialPos)
		if d.HasErrors() {
			// Re-parse with the native parser for snippets in the report.
			parsed[f] = &hcl.File{Bytes: src}
			diags = append(diags, d...)
			continue
		}
		out := wf.Bytes()
		out = hclwrite.Format(out)
		if bytes.Equal(out, src) {
			continue
		}
		needs++
		fmt.Fprintln(env.Stdout, f)
		if diff {
			fmt.Fprintf(env.Stdout, "%s\n", out)
		}
		if !check {
			st, _ := os.Stat(f)
			if err := fsutil.WriteFileAtomic(f, out, st.Mode().Perm()); err != nil {
				fmt.Fprintf(env.Stderr, "switchover fmt: %v\n", err)
				return ExitError
			}
		}
	}
	if diags.HasErrors() {
		printDiags(env.Stderr, parsed, diags)
		return ExitError
	}
	if check && needs > 0 {
		return ExitFormat
	}
	return ExitOK
}

func hclFiles(target string) ([]string, error) {
	st, err := os.Stat(target)
	if err != nil {
		return nil, err
	}
	if !st.IsDir() {
		return []string{target}, nil
	}
	ents, err := os.ReadDir(target)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range ents {
		if !e.IsDir() && strings.HasSuffix(e.Name(), runbook.SuffixHCL) {
			out = append(out, filepath.Join(target, e.Name()))
		}
	}
	sort.Strings(out)
	return out, nil
}
