package cli

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"
	"golang.org/x/term"

	"github.com/switchover/switchover/internal/engine"
	"github.com/switchover/switchover/internal/operation"
	"github.com/switchover/switchover/internal/plans"
	"github.com/switchover/switchover/internal/workspace"
)

type applyOptions struct {
	Target      string // a runbook directory or a saved plan file
	Vars        []engine.VarInput
	PluginDir   string
	AutoApprove bool
	Parallelism int
	JSON        bool
	Targets     []string
	Refresh     bool
}

func runApply(ctx context.Context, env *Env, args []string) int {
	var o applyOptions
	var targets listFlag
	fs := newFlags(env, "apply", "Applies the runbook in DIR, or exactly the saved plan PLANFILE. Without a plan file it plans,\nshows the plan and asks for confirmation. Steps run in dependency order, up to -parallelism at\nonce, with durable checkpoints: killed at any moment, `switchover apply` again resumes the run.\nCtrl-C once: finish the running steps and stop; twice: cancel them.", "[DIR | PLANFILE]")
	addVarFlags(fs, &o.Vars)
	addPluginDirFlag(fs, &o.PluginDir)
	fs.BoolVar(&o.AutoApprove, "auto-approve", false, "Apply without asking for confirmation")
	fs.IntVar(&o.Parallelism, "parallelism", 10, "How many step instances run at once")
	fs.BoolVar(&o.JSON, "json", false, "Print progress as JSON events, one per line")
	fs.Var(&targets, "target", "Apply only step.NAME and the steps it depends on (repeatable)")
	fs.BoolVar(&o.Refresh, "refresh", true, "Observe steps the state records as done too (false: trust the state for them)")
	pos, code, ok := parse(fs, args, 1)
	if !ok {
		return code
	}
	o.Target, o.Targets = dirArg(pos), targets
	if o.Parallelism < 1 {
		fmt.Fprintln(env.Stderr, "switchover apply: -parallelism must be at least 1")
		return ExitError
	}
	return apply(ctx, env, o)
}

func apply(ctx context.Context, env *Env, o applyOptions) int {
	op := &applyView{env: env, o: o, progress: newProgress(env, o.JSON)}
	dir := o.Target
	ao := operation.ApplyOptions{AutoApprove: o.AutoApprove, Parallelism: o.Parallelism, Refresh: o.Refresh}
	if st, err := os.Stat(o.Target); err == nil && !st.IsDir() {
		pf, err := plans.Read(o.Target)
		if err != nil {
			fmt.Fprintf(env.Stderr, "switchover apply: %v\n", err)
			return ExitError
		}
		if len(o.Targets) > 0 {
			fmt.Fprintln(env.Stderr, "switchover apply: -target cannot be used with a saved plan (the plan already has its targets)")
			return ExitError
		}
		ao.Saved, ao.SavedPath, dir, o.Targets = pf, o.Target, pf.Plan.Runbook.Dir, pf.Plan.Targets
	}
	if !operation.HasRunbookFiles(dir) {
		return op.failf("No runbook files", "The directory %s holds no *.sw.hcl or *.sw.json file.", dir)
	}
	sess, diags, err := operation.Open(ctx, operation.SessionOptions{Dir: dir, Vars: o.Vars, PluginDir: o.PluginDir, Targets: o.Targets, ForApply: true, Refresh: o.Refresh, Notices: env.Stderr, Quiet: o.JSON})
	defer closeSession(env, sess)
	op.files = sess.Files()
	if err != nil {
		return op.failf("Cannot start the apply", "%v.", err)
	}
	if diags.HasErrors() {
		return op.fail(diags)
	}
	op.stop = make(chan struct{})
	ao.Stop = op.stop
	defer env.onFirstInterrupt(nil)
	res, err := operation.Apply(sess, ao, op)
	var failure *operation.Failure
	switch {
	case errors.As(err, &failure):
		return op.fail(append(diags, failure.Diags...))
	case errors.Is(err, operation.ErrDeclined):
		fmt.Fprintln(env.Stdout, "Apply cancelled; nothing was changed.")
		if err != operation.ErrDeclined {
			fmt.Fprintf(env.Stderr, "switchover apply: %v\n", err)
		}
		return ExitError
	case err != nil:
		return op.failf("Cannot apply", "%v.", err)
	}
	return op.report(res, dir)
}

// closeSession closes a session, saying when that failed (the next audit
// verify shows the unanchored lines).
func closeSession(env *Env, s *operation.Session) {
	if err := s.Close(); err != nil {
		fmt.Fprintf(env.Stderr, "switchover: %v\n", err)
	}
}

// applyView renders one apply (operation.ApplyView): the plan and its
// approval, progress, the summary and the outputs.
type applyView struct {
	*progress
	env   *Env
	o     applyOptions
	files map[string]*hcl.File
	stop  chan struct{} // closed by the first Ctrl-C once the run started
}

func (op *applyView) fail(diags hcl.Diagnostics) int {
	if op.o.JSON {
		op.json(map[string]any{"type": "diagnostics", "diagnostics": toJSONDiags(op.files, diags)})
	} else {
		printDiags(op.env.Stderr, op.files, diags)
	}
	return ExitError
}

func (op *applyView) failf(summary, format string, a ...any) int {
	return op.fail(hcl.Diagnostics{{Severity: hcl.DiagError, Summary: summary, Detail: fmt.Sprintf(format, a...)}})
}

// Plan shows a new plan before its approval.
func (op *applyView) Plan(g *engine.Graph, p *operation.Planned, blocking bool) {
	if op.o.JSON {
		return
	}
	renderPlan(op.env.Stdout, g, p.Instances, p.Counts)
	if blocking {
		return
	}
	if p.Diags.HasErrors() {
		fmt.Fprintln(op.env.Stderr, "What failed to plan fails alone (on_failure = continue, or other instances of its step were planned): applying the rest; on_failure decides what follows.")
	}
	printDiags(op.env.Stderr, op.files, p.Diags)
}

// Approve asks on the terminal; only "yes" approves.
func (op *applyView) Approve() (bool, error) {
	if op.o.JSON {
		return false, errors.New("with -json, apply needs -auto-approve or a saved plan file")
	}
	fmt.Fprint(op.env.Stdout, "\nApply this plan? Only 'yes' is accepted: ")
	answer, _ := bufio.NewReader(op.env.Stdin).ReadString('\n')
	return strings.TrimSpace(answer) == "yes", nil
}

// Start shows the run starting; from now on the first Ctrl-C asks it to
// stop gracefully (before, while planning, it cancels).
func (op *applyView) Start(total int) {
	var once sync.Once
	op.env.onFirstInterrupt(func() {
		once.Do(func() {
			close(op.stop)
			op.note("Interrupted: finishing the running steps, then stopping. Ctrl-C again cancels them.")
		})
	})
	op.progress.Start(total)
}

// report shows how the apply ended and its outputs; it returns the exit code.
func (op *applyView) report(res *operation.Applied, dir string) int {
	env := op.env
	code := op.summary(res.ApplyResult, dir)
	op.outputs(res)
	if res.LockLost {
		fmt.Fprintf(env.Stderr, "switchover apply: %v. Run `switchover status %s` to see where it stopped.\n", workspace.ErrLockLost, dir)
		return ExitError
	}
	if res.WriteError != nil {
		fmt.Fprintf(env.Stderr, "switchover apply: a record could not be written: %v. The state or the audit trail is incomplete: check the disk, then run `switchover audit verify` and apply again.\n", res.WriteError)
		return ExitError
	}
	return code
}

// progress renders apply events: JSON lines, plain lines, or on a terminal
// lines plus a status line.
type progress struct {
	env     *Env
	asJSON  bool
	tty     bool
	mu      sync.Mutex
	began   time.Time
	total   int
	counts  map[string]int
	running int
	// lastBar is when the terminal status line was last drawn: it is
	// redrawn at most every 100 ms (lines are written as they happen).
	lastBar time.Time
}

func newProgress(env *Env, asJSON bool) *progress {
	p := &progress{env: env, asJSON: asJSON, counts: map[string]int{}}
	if f, ok := env.Stdout.(*os.File); ok && term.IsTerminal(int(f.Fd())) && !asJSON {
		p.tty = true
	}
	return p
}

// w is where progress goes: every line at once, unbuffered, so that a
// killed apply leaves its log complete up to the kill.
func (p *progress) w() io.Writer { return p.env.Stdout }

func (p *progress) json(v any) {
	b, _ := json.Marshal(v)
	p.w().Write(append(b, '\n'))
}

func (p *progress) Start(total int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.began, p.total = time.Now(), total
	if p.asJSON {
		p.json(map[string]any{"type": "apply_started", "time": p.began, "instances": total})
	} else {
		fmt.Fprintf(p.w(), "\nApplying %d step instances.\n", total)
	}
}

func (p *progress) note(msg string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.asJSON {
		p.json(map[string]any{"type": "note", "time": time.Now(), "message": msg})
		return
	}
	p.clearBar()
	fmt.Fprintln(p.env.Stderr, msg)
}

func (p *progress) clearBar() {
	if p.tty {
		io.WriteString(p.env.Stdout, "\r\x1b[K")
	}
}

func (p *progress) Event(ev engine.Event) {
	p.mu.Lock()
	defer p.mu.Unlock()
	switch ev.Type {
	case "started":
		p.running++
	case "done", "failed":
		p.running--
	}
	if ev.Type != "started" && ev.Type != "log" && ev.Type != "retry" {
		p.counts[ev.Type]++
	}
	if p.asJSON {
		p.json(ev)
		return
	}
	line := ""
	switch ev.Type {
	case "started":
		if !p.tty {
			line = fmt.Sprintf("%s: started (attempt %d)", ev.Address, ev.Attempt)
		}
	case "done":
		line = fmt.Sprintf("%s: done: %s", ev.Address, ev.Summary)
	case "failed":
		line = fmt.Sprintf("%s: FAILED: %s", ev.Address, ev.Error)
	case "retry":
		line = fmt.Sprintf("%s: attempt %d failed (%s); %s", ev.Address, ev.Attempt, ev.Error, ev.Summary)
	case "waiting":
		line = fmt.Sprintf("%s: waiting for a person: %s", ev.Address, ev.Summary)
		if ev.Until != nil {
			line = fmt.Sprintf("%s: due later (%s): %s", ev.Address, ev.Until.Local().Format("2006-01-02 15:04 MST"), ev.Summary)
		}
	case "gone":
		line = fmt.Sprintf("%s: %s", ev.Address, ev.Summary)
	case "skipped", "not_started":
		line = fmt.Sprintf("%s: %s", ev.Address, strings.TrimPrefix(ev.Summary, "skipped: "))
		if ev.Type == "skipped" {
			line = fmt.Sprintf("%s: skipped: %s", ev.Address, strings.TrimPrefix(ev.Summary, "skipped: "))
		}
	case "log":
		line = fmt.Sprintf("%s: %s", ev.Address, ev.Summary)
	}
	redraw := p.tty && time.Since(p.lastBar) >= 100*time.Millisecond
	if line != "" || redraw {
		p.clearBar()
	}
	if line != "" {
		fmt.Fprintln(p.w(), termLine(line))
	}
	if p.tty && (line != "" || redraw) {
		p.drawBar()
	}
}

func (p *progress) drawBar() {
	p.lastBar = time.Now()
	fmt.Fprintf(p.env.Stdout, "[%d/%d done, %d running, %d failed, %s]", p.counts["done"], p.total, p.running, p.counts["failed"], time.Since(p.began).Round(100*time.Millisecond))
}

func (p *progress) Finish() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.clearBar()
}

// outputs shows the runbook's outputs (evaluated and recorded by the
// operation).
func (op *applyView) outputs(res *operation.Applied) {
	p := op.progress
	if len(res.Outputs) == 0 && len(res.OutputDiags) == 0 {
		return
	}
	outs := res.Outputs
	if p.asJSON {
		m := map[string]any{}
		for _, o := range outs {
			if o.Sensitive {
				m[o.Name] = map[string]any{"sensitive": true}
				continue
			}
			b, _ := ctyJSON(o.Value)
			m[o.Name] = map[string]any{"value": json.RawMessage(b)}
		}
		p.json(map[string]any{"type": "outputs", "outputs": m})
		return
	}
	printDiags(p.env.Stderr, op.files, res.OutputDiags)
	fmt.Fprintln(p.env.Stdout, "\nOutputs:")
	for _, o := range outs {
		fmt.Fprintf(p.env.Stdout, "  %s = %s\n", o.Name, termSafe(showValue(o)))
	}
}

// showValue is an output as a person reads it.
func showValue(o engine.OutputValue) string {
	if o.Sensitive {
		return engine.Redacted
	}
	if o.Value.IsNull() {
		return "(not known: a step it needs has not finished)"
	}
	if o.Value.Type() == cty.String {
		return fmt.Sprintf("%q", o.Value.AsString())
	}
	b, err := ctyJSON(o.Value)
	if err != nil {
		return "(cannot show)"
	}
	return string(b)
}

func (p *progress) summary(res engine.ApplyResult, dir string) int {
	elapsed := time.Since(p.began).Round(time.Millisecond)
	code := ExitOK
	switch {
	case res.Failed > 0:
		code = ExitError
	case res.Stopped:
		code = ExitStopped
	case res.Waiting > 0 || res.Later > 0 || res.NotStarted > 0:
		code = ExitWaiting
	}
	if p.asJSON {
		p.json(map[string]any{"type": "apply_finished", "time": time.Now(), "elapsed_seconds": elapsed.Seconds(), "done": res.Done, "already_done": res.AlreadyDone, "failed": res.Failed,
			"skipped": res.Skipped, "waiting": res.Waiting, "later": res.Later, "gone": res.Gone, "not_started": res.NotStarted, "stopped": res.Stopped, "halted": res.Halted, "exit_code": code})
		return code
	}
	w := p.env.Stdout
	fmt.Fprintf(w, "\nApply finished in %s: %d done, %d failed, %d skipped, %d waiting for a person, %d not started", elapsed, res.Done, res.Failed, res.Skipped, res.Waiting, res.NotStarted)
	if res.Later > 0 {
		fmt.Fprintf(w, ", %d due again later", res.Later)
	}
	if res.Gone > 0 {
		fmt.Fprintf(w, ", %d gone", res.Gone)
	}
	if res.AlreadyDone > 0 {
		fmt.Fprintf(w, " (and %d done before)", res.AlreadyDone)
	}
	fmt.Fprintln(w, ".")
	switch {
	case res.Halted:
		fmt.Fprintln(w, "The run halted because a step with on_failure = halt failed; fix the cause and run apply again to continue.")
	case res.Stopped:
		fmt.Fprintln(w, "The run was interrupted; run `switchover apply` again to resume it.")
	}
	if res.Later > 0 {
		fmt.Fprintf(w, "Steps started and go on later: `switchover status %s` shows when; run apply again after that.\n", dir)
	}
	if res.Waiting > 0 {
		fmt.Fprintf(w, "Steps wait for a person: see `switchover status %s`, then record each with `switchover confirm STEP --by NAME` and apply again.\n", dir)
	}
	return code
}
