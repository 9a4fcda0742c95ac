package demo

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"

	"filippo.io/age"
)

// Options of a run of the switchover.
type Options struct {
	Bin  string         // the switchover binary
	Dir  string         // where the runbook and the results go
	Vars map[string]any // the runbook's plain values
	Env  []string       // the sensitive ones, SWITCHOVER_VAR_*
	// Log gets every command and its whole output; Progress a line a phase.
	Log      io.Writer
	Progress func(string)
}

// Result says where the results are.
type Result struct {
	Runbook, Checklist, HTML, Bundle, Identity string
	// Signer is the fingerprint of the workspace key that signed the bundle.
	Signer string
	// Due are the steps that wait for a time (the second krbtgt reset).
	Due []string
	// Confirmed are the person's steps confirmed by "Demo".
	Confirmed []string
}

// Run makes the runbook from runbooks/full-switch, plans, applies,
// confirms the person's steps and applies again until only steps due
// later wait, then writes the checklist and the bundle.
func Run(ctx context.Context, o Options) (*Result, error) {
	r := &Result{Runbook: filepath.Join(o.Dir, "acme")}
	env := append(os.Environ(), o.Env...)
	progress := func(format string, a ...any) {
		if o.Progress != nil {
			o.Progress(fmt.Sprintf(format, a...))
		}
	}
	run := func(okCodes []int, args ...string) (string, int, error) {
		fmt.Fprintf(o.Log, "\n$ switchover %s\n", strings.Join(args, " "))
		cmd := exec.CommandContext(ctx, o.Bin, args...)
		cmd.Env = env
		var out bytes.Buffer
		cmd.Stdout = io.MultiWriter(&out, o.Log)
		cmd.Stderr = o.Log
		err := cmd.Run()
		code := cmd.ProcessState.ExitCode()
		for _, c := range okCodes {
			if code == c {
				return out.String(), code, nil
			}
		}
		if err == nil {
			err = fmt.Errorf("exit %d", code)
		}
		return out.String(), code, fmt.Errorf("switchover %s: %v (the whole output is in the log)", args[0], err)
	}
	varFile := filepath.Join(o.Dir, "lab.vars.json")
	b, _ := json.MarshalIndent(o.Vars, "", "  ")
	if err := os.WriteFile(varFile, b, 0o600); err != nil {
		return nil, err
	}
	os.RemoveAll(r.Runbook)
	if _, _, err := run([]int{0}, "init", "-from", "full-switch", r.Runbook); err != nil {
		return nil, err
	}
	progress("init: %s from runbooks/full-switch (modules in %s)", r.Runbook, filepath.Join(r.Runbook, "modules"))
	out, _, err := run([]int{0}, "plan", "-var-file", varFile, r.Runbook)
	if err != nil {
		return nil, err
	}
	progress("plan: %s", lineWith(out, "Plan: "))
	for round := 1; ; round++ {
		out, _, err := run([]int{0, 4}, "apply", "-auto-approve", "-var-file", varFile, r.Runbook)
		if err != nil {
			return nil, err
		}
		progress("apply: %s", strings.TrimPrefix(lineWith(out, "Apply finished"), "Apply finished "))
		people, due, err := waiting(run, r.Runbook)
		if err != nil {
			return nil, err
		}
		r.Due = due
		if len(people) == 0 {
			break
		}
		if round == 4 {
			return nil, fmt.Errorf("steps still wait for a person after %d applies: %s", round, strings.Join(people, ", "))
		}
		for _, addr := range people {
			if _, _, err := run([]int{0}, "confirm", addr, r.Runbook, "--by", "Demo", "--note", "done in the demo"); err != nil {
				return nil, err
			}
		}
		r.Confirmed = append(r.Confirmed, people...)
		progress("confirm: %d steps for a person, by \"Demo\": %s", len(people), strings.Join(people, ", "))
	}
	id, err := age.GenerateX25519Identity()
	if err != nil {
		return nil, err
	}
	r.Identity = filepath.Join(o.Dir, "newmsp-identity.txt")
	if err := os.WriteFile(r.Identity, []byte(id.String()+"\n"), 0o600); err != nil {
		return nil, err
	}
	r.Checklist, r.HTML, r.Bundle = filepath.Join(o.Dir, "checklist.md"), filepath.Join(o.Dir, "checklist.html"), filepath.Join(o.Dir, "handover.age")
	for _, args := range [][]string{
		{"handover", "-format", "md", "-out", r.Checklist, r.Runbook},
		{"handover", "-format", "html", "-out", r.HTML, r.Runbook},
		{"handover", "bundle", "-recipient", id.Recipient().String(), "-out", r.Bundle, r.Runbook},
	} {
		out, _, err := run([]int{0}, args...)
		if err != nil {
			return nil, err
		}
		if m := signedBy.FindStringSubmatch(out); m != nil {
			r.Signer = m[1]
		}
	}
	// The new provider opens it, checking the signer read out to it.
	if _, _, err := run([]int{0}, "handover", "open", r.Bundle, "-identity", r.Identity, "-signer", r.Signer); err != nil {
		return nil, err
	}
	progress("handover: the checklist and the bundle (signed by the workspace %s, encrypted to the new provider's age key) are written, and the bundle opens", r.Signer)
	out, _, err = run([]int{0}, "audit", "verify", r.Runbook)
	if err != nil {
		return nil, err
	}
	progress("audit verify: %s", firstLine(out))
	return r, nil
}

type runFunc func(okCodes []int, args ...string) (string, int, error)

// waiting lists the step instances that wait for a person, and those that
// wait for a time.
func waiting(run runFunc, dir string) (people, due []string, err error) {
	out, _, err := run([]int{0}, "status", "-json", dir)
	if err != nil {
		return nil, nil, err
	}
	var st struct {
		Instances []struct {
			Address string `json:"address"`
			Status  string `json:"status"`
			Until   string `json:"until"`
		} `json:"instances"`
	}
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		return nil, nil, fmt.Errorf("status -json: %v", err)
	}
	for _, in := range st.Instances {
		if in.Status != "waiting" {
			continue
		}
		if in.Until != "" {
			due = append(due, in.Address)
		} else {
			people = append(people, in.Address)
		}
	}
	return people, due, nil
}

// signedBy finds the signer's fingerprint in handover bundle's output.
var signedBy = regexp.MustCompile(`signed by  (SHA256:\S+)`)

var ansi = regexp.MustCompile(`\x1b\[[0-9;]*m`)

// lineWith is the first line of out that contains s.
func lineWith(out, s string) string {
	for _, l := range strings.Split(ansi.ReplaceAllString(out, ""), "\n") {
		if strings.Contains(l, s) {
			return strings.TrimSpace(l)
		}
	}
	return "(no summary line)"
}

func firstLine(out string) string {
	l, _, _ := strings.Cut(strings.TrimSpace(out), "\n")
	return l
}

// Secret is a secret's value from the runbook's workspace (never logged).
func Secret(ctx context.Context, bin, dir, name string) (string, error) {
	out, err := exec.CommandContext(ctx, bin, "secrets", "show", name, dir).Output()
	if err != nil {
		return "", fmt.Errorf("secrets show %s: %v", name, err)
	}
	v := strings.TrimSpace(string(out))
	if v == "" {
		return "", fmt.Errorf("secrets show %s: empty", name)
	}
	return v, nil
}
