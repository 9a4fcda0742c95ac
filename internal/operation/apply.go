package operation

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/hashicorp/hcl/v2"

	"github.com/switchover/switchover/internal/audit"
	"github.com/switchover/switchover/internal/engine"
	"github.com/switchover/switchover/internal/plans"
	"github.com/switchover/switchover/internal/workspace"
)

// ApplyView is what an apply shows a person and asks: cli renders it as
// text or as JSON lines.
type ApplyView interface {
	// Plan shows a new plan (not a saved one) before the approval, with
	// its diagnostics unless blocking (they stop the apply: the error
	// carries them).
	Plan(g *engine.Graph, p *Planned, blocking bool)
	// Approve asks for the approval of the plan just shown: true to go
	// on; an error when it cannot be asked (-json).
	Approve() (bool, error)
	// Start, Event and Finish show the run.
	Start(instances int)
	Event(engine.Event)
	Finish()
}

// ApplyOptions configure Apply.
type ApplyOptions struct {
	// Saved is the saved plan to apply exactly (nil: plan now), read from
	// SavedPath.
	Saved       *plans.File
	SavedPath   string
	AutoApprove bool
	Parallelism int
	Refresh     bool
	// Stop asks for a graceful stop (the first Ctrl-C).
	Stop <-chan struct{}
}

// Applied is a finished apply.
type Applied struct {
	engine.ApplyResult
	Planned *engine.Planned
	// Outputs are the runbook's outputs (recorded in the state), with
	// their diagnostics.
	Outputs     []engine.OutputValue
	OutputDiags hcl.Diagnostics
	// LockLost: the workspace lock was lost during the run.
	LockLost bool
}

// ErrDeclined: the person did not approve the plan (recorded).
var ErrDeclined = errors.New("apply declined")

// Failure is an apply that could not start: diagnostics to show, nothing
// applied.
type Failure struct{ Diags hcl.Diagnostics }

func (f *Failure) Error() string { return f.Diags.Error() }

// capitalized is a sentence made of an error's text.
func capitalized(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

func failf(summary, format string, a ...any) *Failure {
	return &Failure{Diags: hcl.Diagnostics{{Severity: hcl.DiagError, Summary: summary, Detail: fmt.Sprintf(format, a...)}}}
}

// Apply is one apply: a saved plan proven authentic and still fitting, or
// a new plan shown, recorded and approved; then the run, recorded from its
// approval to its end, and the runbook's outputs.
func Apply(s *Session, o ApplyOptions, v ApplyView) (*Applied, error) {
	if d := s.Graph.Configure(s.Ctx); d.HasErrors() {
		return nil, &Failure{Diags: d}
	}
	var p *engine.Planned
	var approval string
	var err error
	if o.Saved != nil {
		p, err = fromSavedPlan(s, o)
		approval = "saved plan " + o.SavedPath
	} else {
		p, approval, err = planAndApprove(s, o, v)
	}
	if err != nil {
		return nil, err
	}
	return run(s, o, v, p, approval)
}

// fromSavedPlan: the saved plan's instances, once it proves authentic and
// still fits the runbook, the state and what the reads find now.
func fromSavedPlan(s *Session, o ApplyOptions) (*engine.Planned, error) {
	g, run, ws, saved := s.Graph, s.Run, s.WS, o.Saved.Plan
	// Authentic first: an edited plan file must not get as far as a
	// plugin (its private data says what a plugin writes, as root).
	if err := o.Saved.Authenticate(workspace.PlanKey(run.Identity)); err != nil {
		_ = ws.Audit.Append(audit.EvPlanRefused, "", map[string]any{"file": o.SavedPath, "reason": "not authentic"}) // refused either way
		return nil, failf("Saved plan cannot be applied", "%v.", err)
	}
	if msg := checkSavedPlan(saved, g, s.StateSerial()); msg != "" {
		return nil, failf("Saved plan cannot be applied", "%s Make a new plan with: switchover plan -out FILE %s", msg, saved.Runbook.Dir)
	}
	p, d, err := g.Saved(s.Ctx, saved.Instances, run, !o.Refresh)
	if d.HasErrors() {
		return nil, &Failure{Diags: d}
	}
	if err != nil {
		return nil, failf("Saved plan cannot be applied", "%v.", err)
	}
	return p, nil
}

// planAndApprove plans, shows and records the plan, and asks for the
// approval (unless AutoApprove).
func planAndApprove(s *Session, o ApplyOptions, v ApplyView) (*engine.Planned, string, error) {
	p := Plan(s, PlanOptions{Parallelism: o.Parallelism, Refresh: o.Refresh})
	// What failed to plan fails alone (on_failure = continue, or other
	// instances of its step were planned): it is recorded as failed and
	// the rest goes on; only a blocking failure stops the apply here.
	blocking := p.Diags.HasErrors() && len(engine.BlockingFailures(p.Instances)) > 0
	v.Plan(s.Graph, p, blocking)
	if blocking {
		return nil, "", &Failure{Diags: p.Diags}
	}
	if err := auditPlan(s.WS.Audit, s.Graph, p.Counts, warningsOf(p.Diags), false); err != nil {
		return nil, "", failf("Cannot write the audit trail", "%v. Nothing was applied.", err)
	}
	if o.AutoApprove {
		return p.Planned, "auto-approve", nil
	}
	ok, err := v.Approve()
	if err != nil {
		return nil, "", failf("Approval needed", "%s.", capitalized(err.Error()))
	}
	if !ok {
		if err := s.WS.Audit.Append(audit.EvApplyDeclined, "", nil); err != nil {
			return nil, "", fmt.Errorf("%w; cannot write the audit trail: %v", ErrDeclined, err)
		}
		return nil, "", ErrDeclined
	}
	return p.Planned, "interactive", nil
}

// run applies the approved instances, records the run's end and the
// runbook's outputs.
func run(s *Session, o ApplyOptions, v ApplyView, p *engine.Planned, approval string) (*Applied, error) {
	g, ws := s.Graph, s.WS
	// Nothing changes before the approval is in the trail.
	runID, err := ws.BeginRun(approval, g.Runbook.Hash)
	if err != nil {
		return nil, failf("Cannot record the run", "%v. Nothing was applied.", err)
	}
	v.Start(len(p.Instances))
	res := g.Apply(s.Ctx, p, engine.ApplyOptions{Parallelism: o.Parallelism, Stop: o.Stop, Run: s.Run, Audit: ws.Audit, Events: v.Event})
	v.Finish()
	out := &Applied{ApplyResult: res, Planned: p}
	if err := ws.Audit.Append(audit.EvApplyFinished, "", map[string]any{"run": runID, "done": res.Done, "already_done": res.AlreadyDone, "failed": res.Failed, "skipped": res.Skipped, "waiting": res.Waiting, "not_started": res.NotStarted, "stopped": res.Stopped}); err != nil && out.WriteError == nil {
		out.WriteError = fmt.Errorf("writing the audit trail: %w", err)
	}
	if len(g.Runbook.Outputs) > 0 {
		out.Outputs, out.OutputDiags = g.EvalOutputs(s.Run, p)
		if err := s.Run.RecordOutputs(out.Outputs); err != nil && out.WriteError == nil {
			out.WriteError = fmt.Errorf("recording the outputs: %w", err)
		}
	}
	out.LockLost = errors.Is(context.Cause(s.Ctx), workspace.ErrLockLost)
	return out, nil
}
