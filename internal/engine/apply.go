package engine

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"

	"github.com/switchover/switchover/internal/audit"
	"github.com/switchover/switchover/internal/lang"
	"github.com/switchover/switchover/internal/plans"
	"github.com/switchover/switchover/internal/runbook"
	"github.com/switchover/switchover/internal/state"
	"github.com/switchover/switchover/plugins/sdk"
)

// DefaultApplyTimeout bounds one Apply call when the step sets no timeout.
const DefaultApplyTimeout = 30 * time.Minute

// Event reports progress of an apply.
type Event struct {
	Type    string    `json:"type"` // started, done, failed, skipped, waiting, retry, log, not_started, gone
	Time    time.Time `json:"time"`
	Address string    `json:"address"`
	Attempt int       `json:"attempt,omitempty"`
	Summary string    `json:"summary,omitempty"`
	Error   string    `json:"error,omitempty"`
	// Until, with waiting: the step goes on by itself at this time (due
	// later); without it, a person is waited for.
	Until *time.Time `json:"until,omitempty"`
}

// ApplyOptions configure Apply.
type ApplyOptions struct {
	Parallelism int
	// Stop asks for a graceful stop: nothing new is started, running steps
	// finish. Cancelling ctx cancels running steps.
	Stop  <-chan struct{}
	Run   *Run
	Audit *audit.Log
	// Events receives progress; it is called from several goroutines.
	Events func(Event)
	// Hooks hear every transition too, after the state and before the
	// audit trail and progress.
	Hooks []Hook
}

// ApplyResult counts the outcome.
type ApplyResult struct {
	// AlreadyDone were done before this apply and not called again.
	AlreadyDone, Done, Failed, Skipped, Waiting, NotStarted int
	// Later are steps that started and go on at a later time (Until).
	Later int
	// Gone: instances recorded as gone (their objects no longer found).
	Gone    int
	Stopped bool // by Stop or ctx
	Halted  bool // by a failed step with on_failure = halt
	// WriteError is the first audit or state write that failed where the
	// walk could not stop for it (nil: every write landed).
	WriteError error
}

type outcome int

const (
	outDone outcome = iota
	outDisabled
	outFailed
	outSkipped    // because a dependency failed
	outWaiting    // for a person
	outLater      // until a time the plugin gave
	outNotStarted // stopped, halted, or blocked by a step waiting for a person
	outAlreadyDone
	outGone // the object is gone (the read no longer finds it)
)

type nodeRun struct {
	node        *StepNode
	waitingDeps int
	remaining   int
	failed      string // a failed (or failure-skipped) step this node depends on, transitively
	waitsFor    string // a step waiting for a person that this node depends on
	dependents  []*nodeRun
	// haltAfter: an instance of it could not be planned and it halts on
	// failure: the run halts once its other instances are done.
	haltAfter bool
	scopeOnce sync.Once
	scope     *hcl.EvalContext
}

type result struct {
	ip  *InstancePlan
	nr  *nodeRun
	out outcome
}

// Apply walks a plan's instances in dependency order, up to Parallelism at
// once. The graph is not changed: the walk keeps its own state.
func (g *Graph) Apply(ctx context.Context, p *Planned, o ApplyOptions) ApplyResult {
	if o.Parallelism < 1 {
		o.Parallelism = 1
	}
	if o.Events == nil {
		o.Events = func(Event) {}
	}
	a := &applyWalk{g: g, o: o, exp: p.exp, run: o.Run, ts: &transitions{red: g.Redactor}}
	a.ts.hooks = append([]Hook{stateHook(o.Run.State)}, o.Hooks...)
	if o.Audit != nil {
		a.ts.hooks = append(a.ts.hooks, auditHook(o.Audit))
	}
	a.ts.hooks = append(a.ts.hooks, progressHook(o.Events))
	w := a.newWalk(p.Instances)
	// Take the roots first: releasing one can settle it at once (all done
	// before) and release its dependents, which must not be released twice.
	var roots []*nodeRun
	for _, n := range g.Order {
		if nr := w.runs[n.Step.Name]; nr != nil && nr.waitingDeps == 0 {
			roots = append(roots, nr)
		}
	}
	for _, nr := range roots {
		w.release(nr)
	}
	stopping := w.schedule(ctx)
	w.leaveRest()
	w.res.Stopped = stopping || ctx.Err() != nil
	// Every result recorded is durable before the apply reports it.
	if err := o.Run.State.Flush(); err != nil {
		a.ts.keep(fmt.Errorf("writing the state: %w", err))
	}
	w.res.WriteError = a.ts.err()
	return w.res
}

// applyWalk is one apply's state: the graph it walks is shared and not
// changed; the plan's expansion, the run and the transition point are its
// own.
type applyWalk struct {
	g   *Graph
	o   ApplyOptions
	exp *expansion
	run *Run
	ts  *transitions
}

// walk is one apply's scheduling state; only Apply's goroutine touches it.
type walk struct {
	a      *applyWalk
	o      ApplyOptions
	runs   map[string]*nodeRun
	byNode map[*nodeRun][]*InstancePlan
	ready  []result
	res    ApplyResult
}

func (a *applyWalk) newWalk(plans []*InstancePlan) *walk {
	w := &walk{a: a, o: a.o, runs: map[string]*nodeRun{}, byNode: map[*nodeRun][]*InstancePlan{}}
	for _, n := range a.g.Order {
		if n.Targeted {
			w.runs[n.Step.Name] = &nodeRun{node: n}
		}
	}
	for _, ip := range plans {
		nr := w.runs[ip.Instance.Node.Step.Name]
		w.byNode[nr] = append(w.byNode[nr], ip)
		nr.remaining++
	}
	for _, nr := range w.runs {
		for _, d := range nr.node.Deps {
			if dr := w.runs[d]; dr != nil {
				nr.waitingDeps++
				dr.dependents = append(dr.dependents, nr)
			}
		}
	}
	return w
}

// schedule runs ready instances, up to the parallelism, until nothing is
// left, the run halts, or it is stopped; it reports whether it was stopped.
func (w *walk) schedule(ctx context.Context) bool {
	results := make(chan result)
	running := 0
	stop := w.o.Stop
	stopping := false
	for {
		for running < w.o.Parallelism && len(w.ready) > 0 && !stopping && !w.res.Halted && ctx.Err() == nil {
			r := w.ready[0]
			w.ready = w.ready[1:]
			running++
			go func(r result) {
				r.out = w.a.applyInstance(ctx, r.ip, r.nr)
				results <- r
			}(r)
		}
		if running == 0 && (len(w.ready) == 0 || stopping || w.res.Halted || ctx.Err() != nil) {
			return stopping
		}
		select {
		case r := <-results:
			running--
			if r.out == outFailed && r.ip.Instance.Node.Step.OnFailure == runbook.Halt {
				// An instance that could not be planned fails alone: the
				// step's other instances go on, and the halt follows.
				if r.ip.Action == plans.Failed && r.nr.remaining > 1 {
					r.nr.haltAfter = true
				} else {
					w.res.Halted = true
				}
			}
			w.finish(r)
		case <-stop:
			stopping, stop = true, nil
		case <-ctx.Done():
			stopping = true
		}
	}
}

// leaveRest counts what never started: it stays pending for the next apply.
func (w *walk) leaveRest() {
	for len(w.ready) > 0 {
		r := w.ready[0]
		w.ready = w.ready[1:]
		why := "the run was stopped"
		if w.res.Halted {
			why = "the run halted after a step failed"
		}
		w.a.ts.to(&Transition{Status: NotStarted, Address: r.ip.Instance.Address, Summary: why})
		r.out = outNotStarted
		w.finish(r)
	}
	// Nodes whose dependencies never finished (they were not started).
	for _, nr := range w.runs {
		if nr.remaining > 0 && nr.waitingDeps > 0 {
			w.res.NotStarted += nr.remaining
		}
	}
}

// finish counts an instance's outcome; the last of a node settles it.
func (w *walk) finish(r result) {
	switch r.out {
	case outDone, outDisabled:
		w.res.Done++
	case outAlreadyDone:
		w.res.AlreadyDone++
	case outFailed:
		w.res.Failed++
		r.nr.failed = r.ip.Instance.Address
	case outSkipped:
		w.res.Skipped++
	case outWaiting:
		w.res.Waiting++
		if r.nr.waitsFor == "" {
			r.nr.waitsFor = r.ip.Instance.Address
		}
	case outLater:
		w.res.Later++
		if r.nr.waitsFor == "" {
			r.nr.waitsFor = r.ip.Instance.Address
		}
	case outNotStarted:
		w.res.NotStarted++
	case outGone:
		w.res.Gone++
	}
	r.nr.remaining--
	if r.nr.remaining == 0 {
		w.res.Halted = w.res.Halted || r.nr.haltAfter
		w.settle(r.nr)
	}
}

// settle: a node has finished; release or block its dependents.
func (w *walk) settle(nr *nodeRun) {
	for _, dep := range nr.dependents {
		if nr.failed != "" && dep.failed == "" {
			dep.failed = nr.failed
		}
		if nr.waitsFor != "" && dep.waitsFor == "" {
			dep.waitsFor = nr.waitsFor
		}
		dep.waitingDeps--
		if dep.waitingDeps == 0 {
			w.release(dep)
		}
	}
}

// release queues a node's instances, or settles them at once when a
// dependency failed or waits for a person.
func (w *walk) release(nr *nodeRun) {
	a := w.a
	ips := w.byNode[nr]
	if len(ips) == 0 {
		// A for_each over nothing: settle through a zero-instance node.
		nr.remaining = 1
		w.finish(result{nr: nr, out: outDone, ip: &InstancePlan{Instance: &Instance{Node: nr.node}}})
		return
	}
	for _, ip := range ips {
		r := result{ip: ip, nr: nr}
		switch {
		case ip.Action == plans.Gone:
			a.ts.to(&Transition{Status: Gone, Address: ip.Instance.Address, Summary: ip.Summary})
			r.out = outGone
			w.finish(r)
		case ip.Action == plans.Done && a.readChanged(ip):
			// A read-only step read something new: recorded, so that what
			// later steps are evaluated with at apply is this read.
			w.ready = append(w.ready, r)
		case ip.Action == plans.Done:
			r.out = outAlreadyDone
			w.finish(r)
		case nr.failed != "":
			why := "skipped: it depends on " + nr.failed + ", which failed"
			a.ts.to(&Transition{Status: Skipped, Address: ip.Instance.Address, Summary: why})
			r.out = outSkipped
			w.finish(r)
		case nr.waitsFor != "":
			a.ts.to(&Transition{Status: NotStarted, Address: ip.Instance.Address, Summary: "waits for " + nr.waitsFor + " (a person)"})
			r.out = outNotStarted
			w.finish(r)
		default:
			w.ready = append(w.ready, r)
		}
	}
}

// applyInstance takes one instance to done, failed, waiting or skipped.
func (a *applyWalk) applyInstance(ctx context.Context, ip *InstancePlan, nr *nodeRun) outcome {
	in := ip.Instance
	addr := in.Address
	if ip.Action == plans.Failed {
		return a.failStep(addr, 0, "it could not be planned: "+ip.Error)
	}
	attrs := in.Attrs
	disabled := ip.Action == plans.Skipped
	if !attrs.IsWhollyKnown() || ip.Action == plans.Deferred {
		var err error
		if attrs, disabled, err = a.applyAttrs(in, nr); err != nil {
			return a.failStep(addr, 0, err.Error())
		}
	}
	switch {
	case disabled:
		a.ts.to(&Transition{Status: Disabled, Address: addr, Summary: "skipped: its `when` condition is false"})
		return outDisabled
	case ip.Action == plans.Done:
		return a.recordAgain(ip)
	case ip.Action == plans.Manual:
		return a.waitForPerson(ip)
	case ip.Action == plans.Wait:
		// Due by now? The plugin knows; a saved plan may be hours old.
		np, err := a.replan(ctx, ip, attrs)
		if err != nil {
			return a.failStep(addr, 0, "planning again: "+err.Error())
		}
		if np.Action == plans.Wait {
			return a.waitLater(addr, np.Summary, np.NotBefore, np.Notes)
		}
		ip = np
	}
	attempt := 0
	if prev := a.run.Instance(addr); prev != nil {
		attempt = prev.Attempts
	}
	if ip.Action == plans.NoChange {
		return a.markDone(addr, attempt, in.Node, finished{summary: "no change needed: " + ip.Summary, outs: a.noChangeOutputs(ctx, ip, attrs), target: ip.Target, notes: ip.Notes})
	}
	return a.applyWithRetries(ctx, ip, attrs, attempt)
}

// recordAgain records a done instance again: looking at it again found
// something the state does not hold (readChanged).
func (a *applyWalk) recordAgain(ip *InstancePlan) outcome {
	in := ip.Instance
	st := a.run.Instance(in.Address)
	outs := ip.Outputs
	if outs == nil && !in.Node.Schema.ReadOnly {
		if v, ok := a.run.Outputs(in.Address, in.Node.Schema.Outputs); ok {
			outs = v.AsValueMap()
		}
	}
	target := ip.Target
	if target == "" {
		target = st.Target
	}
	summary := st.Summary
	if in.Node.Schema.ReadOnly {
		summary = ip.Summary
	}
	return a.markDone(in.Address, st.Attempts, in.Node, finished{summary: summary, outs: outs, target: target, notes: ip.Notes})
}

// waitForPerson records a step for a person as waiting, or as done once a
// person confirmed it.
func (a *applyWalk) waitForPerson(ip *InstancePlan) outcome {
	addr := ip.Instance.Address
	if st := a.run.Instance(addr); st != nil && st.Confirm != nil {
		sum := "confirmed by " + st.Confirm.By
		if st.Confirm.Note != "" {
			sum += ": " + st.Confirm.Note
		}
		return a.markDone(addr, st.Attempts, ip.Instance.Node, finished{summary: sum})
	}
	a.ts.to(&Transition{Status: WaitingForPerson, Address: addr, Summary: ip.Summary})
	return outWaiting
}

// noChangeOutputs are the outputs of an instance with nothing to do: its
// plan's, or (a saved plan does not keep outputs) a look again.
func (a *applyWalk) noChangeOutputs(ctx context.Context, ip *InstancePlan, attrs cty.Value) map[string]cty.Value {
	in := ip.Instance
	if ip.Outputs != nil || len(in.Node.Schema.Outputs) == 0 {
		return ip.Outputs
	}
	cp, _ := a.run.Checkpoint(in.Address)
	r, err := a.g.planCall(ctx, in, attrs, cp, in.Node.timeout(DefaultPlanTimeout))
	if err != nil || r.Kind != sdk.NoChange {
		return nil
	}
	return typedOutputs(in.Node.Schema, r.Outputs)
}

// readChanged: looking again at a done instance found what the state
// does not hold: a read-only step read other outputs, or the plugin warns
// of something else now (the checklist lists what the state holds).
func (a *applyWalk) readChanged(ip *InstancePlan) bool {
	run := a.run
	st := run.Instance(ip.Instance.Address)
	if st == nil || st.Confirm != nil {
		return false
	}
	if !sameNotes(ip.Notes, st.Notes) {
		return true
	}
	if !ip.Instance.Node.Schema.ReadOnly || ip.Outputs == nil {
		return false
	}
	if len(st.SealedOutputs) > 0 {
		return true
	}
	sensitive := map[string]bool{}
	for _, o := range ip.Instance.Node.Schema.Outputs {
		sensitive[o.Name] = o.Sensitive
	}
	clear, sealed, err := run.encodeOutputs(ip.Outputs, sensitive)
	return err != nil || len(sealed) > 0 || !bytes.Equal(clear, st.Outputs)
}

// laterError: the apply did its part, and the step goes on at until.
type laterError struct {
	summary string
	until   time.Time
	notes   []state.Note
}

func (e *laterError) Error() string { return e.summary }

// waitLater records an instance as waiting until a time the plugin gave:
// its dependents wait with it, and a later apply goes on.
func (a *applyWalk) waitLater(addr, summary string, until time.Time, notes []state.Note) outcome {
	a.ts.to(&Transition{Status: DueLater, Address: addr, Summary: summary, Until: until, Notes: notes})
	return outLater
}

// failStep records an instance as failed, durably and in the trail.
func (a *applyWalk) failStep(addr string, attempt int, err string) outcome {
	a.ts.to(&Transition{Status: Failed, Address: addr, Attempt: attempt, Error: err})
	return outFailed
}

// applyWithRetries applies an instance with its retries, planning it again
// (up to MaxReplans, not counted as retries) when its Apply reports a
// conflict.
func (a *applyWalk) applyWithRetries(ctx context.Context, ip *InstancePlan, attrs cty.Value, attempt int) outcome {
	in := ip.Instance
	addr := in.Address
	step := in.Node.Step
	if ip.Action == plans.Drift {
		a.ts.to(&Transition{Status: Drift, Address: addr, Summary: ip.Summary})
	}
	tries := 1
	var backoff time.Duration
	if step.Retry != nil {
		tries, backoff = step.Retry.Attempts, step.Retry.Backoff
	}
	var lastErr string
	replans := 0
	for try := 1; try <= tries; try++ {
		attempt++
		// Durable before the plugin is called: a crash from here on is seen
		// as "running", and the next apply asks the plugin to look again.
		if err := a.ts.start(&Transition{Address: addr, Attempt: attempt, Action: step.Plugin + "." + step.Action}); err != nil {
			return a.failStep(addr, attempt, err.Error())
		}
		fin, err := a.applyOnce(ctx, ip, attrs)
		if err == nil {
			return a.markDone(addr, attempt, in.Node, fin)
		}
		var later *laterError
		if errors.As(err, &later) {
			return a.waitLater(addr, later.summary, later.until, later.notes)
		}
		lastErr = a.g.Redactor.String(err.Error())
		var conflict *sdk.ConflictError
		if errors.As(err, &conflict) && replans < MaxReplans && ctx.Err() == nil {
			// Not a retry: the object changed under the plan.
			replans++
			try--
			np, out, ok := a.planAgain(ctx, ip, attrs, attempt, lastErr)
			if !ok {
				return out
			}
			ip = np
			continue
		}
		if errors.As(err, &conflict) {
			lastErr += fmt.Sprintf(" (it kept changing: planned again %d times)", replans)
		}
		if try == tries || ctx.Err() != nil {
			break
		}
		wait := backoff << (try - 1)
		a.ts.to(&Transition{Status: Retry, Address: addr, Attempt: attempt, Error: lastErr, Summary: fmt.Sprintf("retrying in %s", wait)})
		select {
		case <-time.After(wait):
		case <-ctx.Done():
		}
	}
	return a.failStep(addr, attempt, lastErr)
}

// planAgain plans an instance again after its Apply found the object
// changed under the plan (an earlier step of this run, or someone else):
// the new plan to apply, or (ok false) the outcome when there is nothing
// left to apply or the plan failed.
func (a *applyWalk) planAgain(ctx context.Context, ip *InstancePlan, attrs cty.Value, attempt int, why string) (*InstancePlan, outcome, bool) {
	addr := ip.Instance.Address
	np, err := a.replan(ctx, ip, attrs)
	if err != nil {
		return nil, a.failStep(addr, attempt, why+"; planning again: "+err.Error()), false
	}
	a.ts.to(&Transition{Status: Replanned, Address: addr, Error: why, Summary: np.Summary})
	if np.Action == plans.NoChange {
		return nil, a.markDone(addr, attempt, ip.Instance.Node, finished{summary: "no change needed after planning again: " + np.Summary, outs: np.Outputs, target: np.Target, notes: np.Notes}), false
	}
	return np, 0, true
}

// MaxReplans bounds how often one instance is planned again after its
// Apply found the object changed (sdk.CodeConflict).
const MaxReplans = 3

// replan asks the plugin for a fresh plan of an instance (after a conflict).
func (a *applyWalk) replan(ctx context.Context, ip *InstancePlan, attrs cty.Value) (*InstancePlan, error) {
	g := a.g
	in := ip.Instance
	n := in.Node
	cp, err := a.run.Checkpoint(in.Address)
	if err != nil {
		return nil, err
	}
	resp, err := g.planCall(ctx, in, attrs, cp, n.timeout(DefaultPlanTimeout))
	if err != nil {
		return nil, err
	}
	if err := resp.Diagnostics.Err(); err != nil {
		return nil, err
	}
	np := *ip
	np.Action, np.Summary, np.Details, np.Private, np.Outputs = actionOf(resp.Kind), g.Redactor.String(resp.Summary), g.Redactor.Strings(resp.Details), resp.Private, typedOutputs(n.Schema, resp.Outputs)
	np.NotBefore, np.Target, np.Notes = resp.NotBefore, g.target(resp), g.notes(resp.Diagnostics)
	if np.Action == plans.Manual {
		return nil, fmt.Errorf("the new plan needs a person")
	}
	return &np, nil
}

// finished is what a step instance finished with.
type finished struct {
	summary string
	outs    map[string]cty.Value
	target  string
	notes   []state.Note
	// reads: how many plans the verify took (more than one: the target
	// answered from a stale replica first).
	reads int
}

// applyOnce calls Apply, then verifies with a fresh Plan that no change
// remains.
func (a *applyWalk) applyOnce(ctx context.Context, ip *InstancePlan, attrs cty.Value) (finished, error) {
	g := a.g
	in := ip.Instance
	n := in.Node
	timeout := n.timeout(DefaultApplyTimeout)
	cp, err := a.run.Checkpoint(in.Address)
	if err != nil {
		return finished{}, err
	}
	cctx, cancel := stepContext(ctx, timeout)
	defer cancel()
	ev := &applyEvents{a: a, addr: in.Address, module: n.Step.Module}
	resp, err := n.Plugin.Instance.Apply(cctx, &sdk.ApplyRequest{
		Action: n.Step.Action, Address: in.Address, Attributes: sdk.NewValues(attrs), Private: ip.Private, Checkpoint: cp,
	}, ev)
	if err == nil {
		a.warnings(in.Address, resp.Diagnostics)
		if c := resp.Diagnostics.Conflict(); c != nil {
			return finished{}, c
		}
		err = resp.Diagnostics.Err()
	}
	if err != nil {
		// Whatever the plugin or the transport answered, say when it was
		// the step's timeout.
		return finished{}, timeoutError(cctx, err, timeout)
	}
	verify, reads, err := a.verifyPlan(ctx, ip, attrs, resp)
	if err != nil {
		return finished{}, err
	}
	a.warnings(in.Address, verify.Diagnostics)
	if err := verify.Diagnostics.Err(); err != nil {
		return finished{}, fmt.Errorf("verifying after apply: %v", err)
	}
	if ip.Target == "" {
		ip.Target = g.target(verify) // planned during apply, or from a saved plan
	}
	notes := mergeNotes(g.notes(resp.Diagnostics), g.notes(verify.Diagnostics))
	if verify.Kind == sdk.Wait {
		return finished{}, &laterError{summary: g.Redactor.String(verify.Summary), until: verify.NotBefore, notes: notes}
	}
	if verify.Kind != sdk.NoChange {
		looked := "looking again"
		if reads > 1 {
			looked = fmt.Sprintf("looking again %d times", reads)
		}
		return finished{}, fmt.Errorf("the plugin reported success, but %s it still sees a change to make (%s): the change did not take effect", looked, verify.Summary)
	}
	fin := finished{summary: resp.Summary, outs: typedOutputs(n.Schema, verify.Outputs), target: ip.Target, notes: notes, reads: reads}
	if len(resp.Outputs) > 0 {
		fin.outs = typedOutputs(n.Schema, resp.Outputs)
	}
	if fin.summary == "" {
		fin.summary = ip.Summary
	}
	return fin, nil
}

// verifyPlan is the look again after an apply: the step is done only
// when the plugin sees no change left. A plugin built on the SDK looked
// already, at the end of its Apply (the same Plan, with the latest
// checkpoint, again for a while when its target reads from lagging
// replicas); else it is asked, with the latest checkpoint (recorded in the
// state before the plugin heard it was).
func (a *applyWalk) verifyPlan(ctx context.Context, ip *InstancePlan, attrs cty.Value, resp *sdk.ApplyResponse) (*sdk.PlanResponse, int, error) {
	if resp.Verify != nil {
		return resp.Verify, resp.VerifyReads, nil
	}
	in := ip.Instance
	latest, err := a.run.Checkpoint(in.Address)
	if err != nil {
		return nil, 0, err
	}
	timeout := in.Node.timeout(DefaultApplyTimeout)
	verify, err := a.g.planCall(ctx, in, attrs, latest, timeout)
	if err != nil {
		return nil, 0, fmt.Errorf("verifying after apply: %w", err)
	}
	return verify, resp.VerifyReads + 1, nil
}

// planCall is every Plan call of an instance (plan, plan again, verify,
// the outputs of one with nothing to do): the request built in one place,
// bounded by timeout, whose expiry the error names.
func (g *Graph) planCall(ctx context.Context, in *Instance, attrs cty.Value, checkpoint []byte, timeout time.Duration) (*sdk.PlanResponse, error) {
	cctx, cancel := stepContext(ctx, timeout)
	defer cancel()
	n := in.Node
	resp, err := n.Plugin.Instance.Plan(cctx, &sdk.PlanRequest{Action: n.Step.Action, Address: in.Address, Attributes: sdk.NewValues(attrs), Checkpoint: checkpoint})
	if err != nil {
		return nil, timeoutError(cctx, err, timeout)
	}
	return resp, nil
}

func (a *applyWalk) markDone(addr string, attempt int, n *StepNode, fin finished) outcome {
	outs := fin.outs
	sensitive := map[string]bool{}
	for _, out := range n.Schema.Outputs {
		sensitive[out.Name] = out.Sensitive
		if outs != nil && out.Sensitive {
			if v, ok := outs[out.Name]; ok {
				a.g.Redactor.AddValue(v.Mark(lang.SensitiveMark))
			}
		}
	}
	clear, sealed, err := a.run.encodeOutputs(outs, sensitive)
	if err != nil {
		return a.failStep(addr, attempt, "cannot record outputs: "+err.Error())
	}
	a.ts.to(&Transition{Status: Done, Address: addr, Attempt: attempt, Summary: fin.summary, Outputs: clear, SealedOutputs: sealed,
		Target: fin.target, Notes: fin.notes, Secrets: a.run.pendingSecretsOf(addr), Reads: fin.reads})
	return outDone
}

// warnings tells what a plugin warns about (such as a host key trusted on
// first use) to the audit trail and the progress view.
func (a *applyWalk) warnings(addr string, ds sdk.Diagnostics) {
	for _, d := range ds {
		if d.Severity == sdk.Warning {
			a.ts.to(&Transition{Status: Warning, Address: addr, Summary: d.Summary, Detail: d.Detail})
		}
	}
}

// applyAttrs evaluates an instance's attributes again for apply: with the
// recorded outputs of the steps it depends on (all finished by now) and with
// secrets resolved (generated and stored when new).
func (a *applyWalk) applyAttrs(in *Instance, nr *nodeRun) (cty.Value, bool, error) {
	g := a.g
	nr.scopeOnce.Do(func() {
		steps := map[string]cty.Value{}
		for _, d := range nr.node.Deps {
			steps[d] = g.recordedStepValue(g.Steps[d], a.run, a.exp)
		}
		scope := *g.scope
		scope.Steps = steps
		nr.scope = scope.EvalContext(nil)
	})
	v, when, d := g.evalStepInstance(in.Node, nr.scope, in.each, a.run.SecretResolver(in.Address, true))
	switch {
	case when == whenFalse:
		// Skipped: its attributes do not matter (and may not evaluate).
		return cty.NilVal, true, nil
	case d.HasErrors():
		return cty.NilVal, false, errors.New(diagText(d))
	case when == whenUnknown:
		return cty.NilVal, false, fmt.Errorf("its when condition is not true or false at apply")
	}
	if !v.IsWhollyKnown() {
		return cty.NilVal, false, fmt.Errorf("some attributes are still unknown at apply (a step it depends on recorded no such output)")
	}
	return v, false, nil
}

func diagText(d hcl.Diagnostics) string {
	var parts []string
	for _, x := range d {
		if x.Severity != hcl.DiagError {
			continue
		}
		s := x.Summary
		if x.Detail != "" {
			s += ": " + x.Detail
		}
		if x.Subject != nil {
			s = fmt.Sprintf("%s:%d:%d: %s", x.Subject.Filename, x.Subject.Start.Line, x.Subject.Start.Column, s)
		}
		parts = append(parts, s)
	}
	return strings.Join(parts, "; ")
}

// applyEvents records a plugin's checkpoints durably before acknowledging them.
type applyEvents struct {
	a      *applyWalk
	addr   string
	module string
}

// KeepSecret stores a secret the target made (sdk.SecretKeeper) as a
// current, verified secret of the step, in its module's namespace.
func (e *applyEvents) KeepSecret(ctx context.Context, name, value string) error {
	if e.module != "" {
		name = e.module + "/" + name
	}
	return e.a.run.keepSecret(name, e.addr, value)
}

func (e *applyEvents) Checkpoint(ctx context.Context, data []byte) error {
	stored, sealed, err := e.a.run.seal(data)
	if err != nil {
		return err
	}
	return e.a.run.State.Append(&state.Record{Kind: state.KindCheckpoint, Address: e.addr, Data: stored, Sealed: sealed})
}

func (e *applyEvents) Log(msg string) {
	e.a.ts.to(&Transition{Status: Log, Address: e.addr, Summary: msg})
}
