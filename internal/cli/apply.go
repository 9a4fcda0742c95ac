package cli

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/switchover/switchover/internal/audit"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"
	"golang.org/x/term"

	"github.com/switchover/switchover/internal/engine"
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
	op := &applyOp{env: env, o: o, dir: o.Target, out: newProgress(env, o.JSON)}
	if st, err := os.Stat(o.Target); err == nil && !st.IsDir() {
		pf, err := plans.Read(o.Target)
		if err != nil {
			fmt.Fprintf(env.Stderr, "switchover apply: %v\n", err)
			return ExitError
		}
		op.savedFile, op.dir = pf, pf.Plan.Runbook.Dir
		if len(o.Targets) > 0 {
			fmt.Fprintln(env.Stderr, "switchover apply: -target cannot be used with a saved plan (the plan already has its targets)")
			return ExitError
		}
		op.o.Targets = pf.Plan.Targets
	}
	if !hasRunbookFiles(op.dir) {
		return op.failf("No runbook files", "The directory %s holds no *.sw.hcl or *.sw.json file.", op.dir)
	}
	sess, diags, err := openSession(ctx, env, sessionOptions{Dir: op.dir, Vars: o.Vars, PluginDir: o.PluginDir, Targets: op.o.Targets, ForApply: true, Refresh: o.Refresh}, o.JSON)
	defer sess.close(env)
	op.sess = sess
	if err != nil {
		return op.failf("Cannot start the apply", "%v.", err)
	}
	if diags.HasErrors() {
		return op.fail(sess.files(), diags)
	}
	if d := sess.g.Configure(sess.ctx); d.HasErrors() {
		return op.fail(sess.files(), append(diags, d...))
	}
	var ips []*engine.InstancePlan
	var approval string
	var code int
	if op.savedFile != nil {
		ips, approval, code = op.fromSavedPlan()
	} else {
		ips, approval, code = op.planAndApprove()
	}
	if code != ExitOK {
		return code
	}
	return op.run(ips, approval)
}

// applyOp is one apply: a saved plan or a new one, approved, then run.
type applyOp struct {
	env       *Env
	o         applyOptions
	dir       string
	out       *progress
	sess      *session
	savedFile *plans.File
}

func (op *applyOp) fail(files map[string]*hcl.File, diags hcl.Diagnostics) int {
	if op.o.JSON {
		op.out.json(map[string]any{"type": "diagnostics", "diagnostics": toJSONDiags(files, diags)})
	} else {
		printDiags(op.env.Stderr, files, diags)
	}
	return ExitError
}

func (op *applyOp) failf(summary, format string, a ...any) int {
	return op.fail(nil, hcl.Diagnostics{{Severity: hcl.DiagError, Summary: summary, Detail: fmt.Sprintf(format, a...)}})
}

// fromSavedPlan: the saved plan's instances, once it proves authentic and
// still fits the runbook, the state and what the reads find now.
func (op *applyOp) fromSavedPlan() ([]*engine.InstancePlan, string, int) {
	g, run, ws, saved := op.sess.g, op.sess.run, op.sess.ws, op.savedFile.Plan
	// Authentic first: an edited plan file must not get as far as a
	// plugin (its private data says what a plugin writes, as root).
	if err := op.savedFile.Authenticate(workspace.PlanKey(run.Identity)); err != nil {
		_ = ws.Audit.Append(audit.EvPlanRefused, "", map[string]any{"file": op.o.Target, "reason": "not authentic"}) // refused either way
		return nil, "", op.failf("Saved plan cannot be applied", "%v.", err)
	}
	if msg := checkSavedPlan(saved, g, op.sess.stateSerial()); msg != "" {
		return nil, "", op.failf("Saved plan cannot be applied", "%s Make a new plan with: switchover plan -out FILE %s", msg, op.dir)
	}
	if d := g.ExpandReads(op.sess.ctx, run, !op.o.Refresh); d.HasErrors() {
		return nil, "", op.fail(op.sess.files(), d)
	}
	ips, err := g.PlansFrom(saved.Instances, run)
	if err != nil {
		return nil, "", op.failf("Saved plan cannot be applied", "%v.", err)
	}
	return ips, "saved plan " + op.o.Target, ExitOK
}

// planAndApprove plans, shows and records the plan, and asks for the
// approval (unless -auto-approve).
func (op *applyOp) planAndApprove() ([]*engine.InstancePlan, string, int) {
	env, o, g, ws := op.env, op.o, op.sess.g, op.sess.ws
	ips, d := g.Plan(op.sess.ctx, engine.PlanOptions{Parallelism: o.Parallelism, NoRefresh: !o.Refresh}, op.sess.run)
	c := engine.Count(ips)
	if !o.JSON {
		renderPlan(env.Stdout, g, ips, c)
	}
	if d.HasErrors() {
		if len(engine.BlockingFailures(ips)) > 0 {
			return nil, "", op.fail(op.sess.files(), d)
		}
		// Only instances failed to plan whose steps have on_failure =
		// continue, or some instances of a step whose others planned:
		// they are recorded as failed and the rest goes on.
		if !o.JSON {
			fmt.Fprintln(env.Stderr, "What failed to plan fails alone (on_failure = continue, or other instances of its step were planned): applying the rest; on_failure decides what follows.")
		}
	}
	for _, w := range d {
		if w.Severity == hcl.DiagWarning {
			if err := ws.Audit.Append(audit.EvPluginWarning, "", map[string]any{"summary": w.Summary, "detail": w.Detail}); err != nil {
				return nil, "", op.failf("Cannot write the audit trail", "%v. Nothing was applied.", err)
			}
		}
	}
	if !o.JSON {
		printDiags(env.Stderr, op.sess.files(), d)
	}
	if err := ws.Audit.Append(audit.EvPlan, "", map[string]any{"change": c.Change, "manual": c.Manual, "no_change": c.NoChange, "skipped": c.Skipped, "runbook_hash": g.Runbook.Hash}); err != nil {
		return nil, "", op.failf("Cannot write the audit trail", "%v. Nothing was applied.", err)
	}
	if o.AutoApprove {
		return ips, "auto-approve", ExitOK
	}
	if o.JSON {
		return nil, "", op.failf("Approval needed", "With -json, apply needs -auto-approve or a saved plan file.")
	}
	fmt.Fprint(env.Stdout, "\nApply this plan? Only 'yes' is accepted: ")
	answer, _ := bufio.NewReader(env.Stdin).ReadString('\n')
	if strings.TrimSpace(answer) != "yes" {
		fmt.Fprintln(env.Stdout, "Apply cancelled; nothing was changed.")
		if err := ws.Audit.Append(audit.EvApplyDeclined, "", nil); err != nil {
			fmt.Fprintf(env.Stderr, "switchover apply: cannot write the audit trail: %v\n", err)
		}
		return nil, "", ExitError
	}
	return ips, "interactive", ExitOK
}

// run applies the approved instances and reports.
func (op *applyOp) run(ips []*engine.InstancePlan, approval string) int {
	env, out, g, run, ws, ctx := op.env, op.out, op.sess.g, op.sess.run, op.sess.ws, op.sess.ctx
	// Nothing changes before the approval is in the trail.
	runID, err := ws.BeginRun(approval, g.Runbook.Hash)
	if err != nil {
		return op.failf("Cannot record the run", "%v. Nothing was applied.", err)
	}
	stop := make(chan struct{})
	var stopOnce sync.Once
	env.onFirstInterrupt(func() {
		stopOnce.Do(func() {
			close(stop)
			out.note("Interrupted: finishing the running steps, then stopping. Ctrl-C again cancels them.")
		})
	})
	defer env.onFirstInterrupt(nil)
	out.start(len(ips))
	res := g.Apply(ctx, ips, engine.ApplyOptions{Parallelism: op.o.Parallelism, Stop: stop, Run: run, Audit: ws.Audit, Events: out.event})
	out.finish()
	if err := ws.Audit.Append(audit.EvApplyFinished, "", map[string]any{"run": runID, "done": res.Done, "already_done": res.AlreadyDone, "failed": res.Failed, "skipped": res.Skipped, "waiting": res.Waiting, "not_started": res.NotStarted, "stopped": res.Stopped}); err != nil && res.WriteError == nil {
		res.WriteError = fmt.Errorf("writing the audit trail: %w", err)
	}
	code := out.summary(res, op.dir)
	if err := out.outputs(g, run); err != nil && res.WriteError == nil {
		res.WriteError = err
	}
	if errors.Is(context.Cause(ctx), workspace.ErrLockLost) {
		fmt.Fprintf(env.Stderr, "switchover apply: %v. Run `switchover status %s` to see where it stopped.\n", workspace.ErrLockLost, op.dir)
		return ExitError
	}
	if res.WriteError != nil {
		fmt.Fprintf(env.Stderr, "switchover apply: a record could not be written: %v. The state or the audit trail is incomplete: check the disk, then run `switchover audit verify` and apply again.\n", res.WriteError)
		return ExitError
	}
	return code
}

// checkSavedPlan says why a saved plan no longer fits, or "".
func checkSavedPlan(p *plans.Plan, g *engine.Graph, serial int) string {
	if p.Runbook.Hash != g.Runbook.Hash {
		return "The runbook changed since the plan was made."
	}
	if p.StateSerial != serial {
		return fmt.Sprintf("The state changed since the plan was made (%d records then, %d now): another apply or a confirmation ran.", p.StateSerial, serial)
	}
	for name, v := range g.Vars {
		pv, ok := p.Variables[name]
		now := planVariable(v)
		switch {
		case !ok:
			return fmt.Sprintf("Variable %q is new since the plan was made.", name)
		case pv.Sensitive != now.Sensitive:
			return fmt.Sprintf("Variable %q changed since the plan was made.", name)
		case pv.Sensitive:
			clear, _ := v.UnmarkDeep()
			b, _ := ctyJSON(clear)
			if !plans.SecretMatches(pv.Hash, b) {
				return fmt.Sprintf("Sensitive variable %q has another value than when the plan was made (give it the same value again: saved plans never hold sensitive values).", name)
			}
		case string(pv.Value) != string(now.Value):
			return fmt.Sprintf("Variable %q changed since the plan was made.", name)
		}
	}
	return ""
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

func (p *progress) start(total int) {
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

func (p *progress) event(ev engine.Event) {
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

func (p *progress) finish() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.clearBar()
}

// outputs evaluates the runbook's output blocks from what the steps
// recorded, keeps them in the state (sensitive ones sealed) and shows them.
func (p *progress) outputs(g *engine.Graph, run *engine.Run) error {
	if len(g.Runbook.Outputs) == 0 {
		return nil
	}
	outs, diags := g.EvalOutputs(run)
	if err := run.RecordOutputs(outs); err != nil {
		return fmt.Errorf("recording the outputs: %w", err)
	}
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
		return nil
	}
	printDiags(p.env.Stderr, filesOf(g), diags)
	fmt.Fprintln(p.env.Stdout, "\nOutputs:")
	for _, o := range outs {
		fmt.Fprintf(p.env.Stdout, "  %s = %s\n", o.Name, termSafe(showValue(o)))
	}
	return nil
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
