// Package cli is the switchover command line: one file per verb, each
// parsing flags into options and calling a testable run function.
package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"github.com/switchover/switchover/internal/runbook"
	"io"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"

	"github.com/switchover/switchover/internal/engine"
	"github.com/switchover/switchover/internal/pluginhost"
)

// Exit codes (documented in README.md).
const (
	ExitOK      = 0
	ExitError   = 1
	ExitChanges = 2 // plan -detailed-exitcode: changes present
	ExitFormat  = 3 // fmt -check: files need formatting
	ExitWaiting = 4 // apply: stopped at steps that wait for a person
	ExitStopped = 5 // apply: interrupted; run apply again to resume
)

// Env is what a command sees of the world.
type Env struct {
	Stdout, Stderr io.Writer
	Stdin          io.Reader
	// interrupts is this invocation's Ctrl-C handling (set by Main; each
	// Main has its own, so that tests can run in parallel).
	interrupts *interruptState
}

type command struct {
	name     string
	synopsis string
	run      func(ctx context.Context, env *Env, args []string) int
}

var commands []command

func init() {
	commands = []command{
		{"init", "Make a new runbook directory from a curated runbook", runInit},
		{"validate", "Check a runbook without touching any remote system", runValidate},
		{"plan", "Observe the real systems and show what apply would change", runPlan},
		{"apply", "Apply a runbook or a saved plan, with durable checkpoints", runApply},
		{"status", "Show the state of the run: each step's status, attempts, errors", runStatus},
		{"confirm", "Record that a person did a step that waits for a person", runConfirm},
		{"unlock", "Remove a state lock left behind", runUnlock},
		{"state", "Move a workspace's state and audit trail between files and PostgreSQL", runState},
		{"secrets", "List the secrets, or show one (decrypted)", runSecrets},
		{"audit", "Verify or show the audit trail", runAudit},
		{"handover", "The new provider's onboarding checklist; the encrypted handover bundle", runHandover},
		{"fmt", "Rewrite runbook files in the canonical format", runFmt},
		{"graph", "Print the step dependency graph in DOT format", runGraph},
		{"plugins", "List plugins, their actions and attributes", runPlugins},
		{"version", "Print the version", runVersion},
	}
}

// interruptState lets a command ask that the first Ctrl-C stop it
// gracefully (the second one cancels).
type interruptState struct {
	mu sync.Mutex
	fn func()
}

func (i *interruptState) graceful() func() {
	i.mu.Lock()
	defer i.mu.Unlock()
	return i.fn
}

// onFirstInterrupt sets (fn nil: clears) what the first Ctrl-C does.
func (env *Env) onFirstInterrupt(fn func()) {
	if env.interrupts == nil {
		return
	}
	env.interrupts.mu.Lock()
	env.interrupts.fn = fn
	env.interrupts.mu.Unlock()
}

// Main runs the command line and returns the exit code.
func Main(args []string, env *Env) int {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	e := *env
	env = &e
	env.interrupts = &interruptState{}
	interrupts := env.interrupts
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(sigs)
	go func() {
		first := true
		for range sigs {
			if h := interrupts.graceful(); first && h != nil {
				h()
			} else {
				cancel()
			}
			first = false
		}
	}()
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" || args[0] == "-help" {
		if len(args) > 1 {
			return Main([]string{args[1], "--help"}, env)
		}
		usage(env.Stdout)
		return ExitOK
	}
	if args[0] == "-version" || args[0] == "--version" {
		args[0] = "version"
	}
	for _, c := range commands {
		if c.name == args[0] {
			return c.run(ctx, env, args[1:])
		}
	}
	var names []string
	for _, c := range commands {
		names = append(names, c.name)
	}
	fmt.Fprintf(env.Stderr, "switchover: unknown command %q.%s Run 'switchover help' for the list.\n", args[0], suggestWord(args[0], names))
	return ExitError
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "Usage: switchover COMMAND [options] [DIR]")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "switchover hands a small business from one managed IT provider to the next:")
	fmt.Fprintln(w, "runbooks declare the offboarding, plan shows what would change, apply does it.")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Commands:")
	for _, c := range commands {
		fmt.Fprintf(w, "  %-10s %s\n", c.name, c.synopsis)
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Run 'switchover COMMAND --help' for a command's options.")
}

func suggestWord(w string, cands []string) string {
	for _, c := range cands {
		if strings.HasPrefix(c, w) || strings.HasPrefix(w, c) {
			return fmt.Sprintf(" Did you mean %q?", c)
		}
	}
	return ""
}

// newFlags makes a flag set whose usage prints the synopsis and options.
func newFlags(env *Env, name, synopsis, argsHelp string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(env.Stderr)
	// Every command that reads a runbook refuses files others can change.
	fs.BoolVar(&runbook.TrustUnsafeFiles, runbook.TrustFlag, false, "Read runbook files and directories that other users can write, or own (dangerous: they run with your rights)")
	fs.Usage = func() {
		fmt.Fprintf(env.Stdout, "Usage: switchover %s [options] %s\n\n%s\n\nOptions:\n", name, argsHelp, synopsis)
		fs.SetOutput(env.Stdout)
		fs.PrintDefaults()
		fs.SetOutput(env.Stderr)
	}
	return fs
}

// parse parses flags that may stand before or after positional arguments.
// It returns the positionals, or an exit code when parsing ended the command.
func parse(fs *flag.FlagSet, args []string, maxPos int) ([]string, int, bool) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, ExitOK, false
			}
			return nil, ExitError, false
		}
		args = fs.Args()
		if len(args) == 0 {
			break
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
	if len(pos) > maxPos {
		fmt.Fprintf(fs.Output(), "switchover %s: too many arguments: %s\n", fs.Name(), strings.Join(pos, " "))
		return nil, ExitError, false
	}
	return pos, 0, true
}

// listFlag collects a repeated string flag.
type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(s string) error { *l = append(*l, s); return nil }

type varFlag struct {
	inputs *[]engine.VarInput
	file   bool
}

func (v varFlag) String() string { return "" }
func (v varFlag) Set(s string) error {
	if v.file {
		*v.inputs = append(*v.inputs, engine.VarInput{File: s})
	} else {
		*v.inputs = append(*v.inputs, engine.VarInput{Flag: s})
	}
	return nil
}

func addVarFlags(fs *flag.FlagSet, inputs *[]engine.VarInput) {
	fs.Var(varFlag{inputs: inputs}, "var", "Set a variable: -var 'NAME=VALUE' (repeatable; later ones win)")
	fs.Var(varFlag{inputs: inputs, file: true}, "var-file", "Read variables from an HCL or JSON file (repeatable)")
}

func addPluginDirFlag(fs *flag.FlagSet, dir *string) {
	fs.StringVar(dir, "plugin-dir", "", "Directory searched first for external plugins (then $SWITCHOVER_PLUGIN_DIR, then "+pluginhost.DefaultDir()+")")
}

func dirArg(pos []string) string {
	if len(pos) == 0 {
		return "."
	}
	return pos[0]
}
