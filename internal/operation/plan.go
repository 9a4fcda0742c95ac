package operation

import (
	"fmt"
	"path/filepath"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"
	ctyjson "github.com/zclconf/go-cty/cty/json"

	"github.com/switchover/switchover/internal/audit"
	"github.com/switchover/switchover/internal/engine"
	"github.com/switchover/switchover/internal/lang"
	"github.com/switchover/switchover/internal/plans"
	"github.com/switchover/switchover/internal/version"
	"github.com/switchover/switchover/internal/workspace"
)

// PlanOptions configure Plan.
type PlanOptions struct {
	Parallelism int
	// Refresh: observe done steps too (not -refresh=false).
	Refresh bool
}

// Planned is a plan and what it counts; Diags holds the configuration's
// and the plugins' diagnostics too.
type Planned struct {
	*engine.Planned
	Counts plans.Counts
	Diags  hcl.Diagnostics
	// Unconfigured: a plugin refused its configuration; nothing was planned.
	Unconfigured bool
}

// Plan configures the plugins and asks every instance's plugin to
// observe; it changes nothing and records nothing.
func Plan(s *Session, o PlanOptions) *Planned {
	d := s.Graph.Configure(s.Ctx)
	if d.HasErrors() {
		return &Planned{Planned: &engine.Planned{}, Diags: d, Unconfigured: true}
	}
	p, pd := s.Graph.Plan(s.Ctx, engine.PlanOptions{Parallelism: o.Parallelism, NoRefresh: !o.Refresh}, s.Run)
	return &Planned{Planned: p, Counts: engine.Count(p.Instances), Diags: append(d, pd...)}
}

// RecordPlan writes a standalone plan and the plugins' warnings into the
// audit trail of a runbook that has a workspace (one is made when a
// warning must be kept, such as a host key trusted on first use). It
// needs the lock only for a moment; while an apply holds it, the plan
// stays unrecorded: the notes say so.
func RecordPlan(s *Session, p *Planned) (notes []string, err error) {
	warnings := warningsOf(p.Diags)
	if s.WS == nil && len(warnings) > 0 {
		ws, err := OpenWorkspace(s.Graph.Runbook.Dir)
		if err != nil {
			return []string{fmt.Sprintf("Note: the plugins' warnings are not recorded in an audit trail: %v", err)}, nil
		}
		s.WS = ws
	}
	if s.WS == nil {
		return nil, nil
	}
	if err := s.WS.Lock("plan"); err != nil {
		return []string{fmt.Sprintf("Note: this plan is not recorded in the audit trail: %v", err)}, nil
	}
	c := p.Counts
	return nil, auditPlan(s.WS.Audit, s.Graph, c, warnings, true)
}

func warningsOf(diags hcl.Diagnostics) hcl.Diagnostics {
	var out hcl.Diagnostics
	for _, d := range diags {
		if d.Severity == hcl.DiagWarning {
			out = append(out, d)
		}
	}
	return out
}

// auditPlan records the warnings, then the plan.
func auditPlan(l *audit.Log, g *engine.Graph, c plans.Counts, warnings hcl.Diagnostics, standalone bool) error {
	for _, w := range warnings {
		if err := l.Append(audit.EvPluginWarning, "", map[string]any{"summary": w.Summary, "detail": w.Detail}); err != nil {
			return err
		}
	}
	fields := map[string]any{"change": c.Change, "manual": c.Manual, "no_change": c.NoChange, "skipped": c.Skipped, "runbook_hash": g.Runbook.Hash}
	if standalone {
		fields["standalone"] = true
	}
	return l.Append(audit.EvPlan, "", fields)
}

// SavePlan writes the plan to path for `switchover apply PATH`,
// authenticated with a key derived from the workspace identity (made here
// on a first plan, audited).
func SavePlan(s *Session, p *Planned, path string, targets []string) error {
	sp := savedPlan(s.Graph, p.Instances, targets)
	sp.StateSerial = s.StateSerial()
	id, created, err := s.WS.Identity()
	if err != nil {
		return fmt.Errorf("cannot save the plan: workspace identity: %w", err)
	}
	if created && s.WS.Audit != nil {
		if err := s.WS.Audit.Append(audit.EvIdentityCreated, "", map[string]any{"recipient": id.Recipient().String()}); err != nil {
			return fmt.Errorf("writing the audit trail: %w", err)
		}
	}
	if err := plans.Write(path, sp, workspace.PlanKey(id)); err != nil {
		return fmt.Errorf("cannot save the plan: %w", err)
	}
	return nil
}

func savedPlan(g *engine.Graph, ips []*engine.InstancePlan, targets []string) *plans.Plan {
	p := &plans.Plan{
		FormatVersion:     plans.FormatVersion,
		SwitchoverVersion: version.Version,
		CreatedAt:         time.Now().UTC(),
		Runbook:           plans.RunbookRef{Name: g.Runbook.Meta.Name, Dir: absDir(g.Runbook.Dir), Hash: g.Runbook.Hash},
		Variables:         map[string]plans.Variable{},
		Targets:           targets,
	}
	for name, v := range g.Vars {
		p.Variables[name] = planVariable(v)
	}
	for _, ip := range ips {
		p.Instances = append(p.Instances, ip.Entry())
	}
	return p
}

// planVariable stores a value, or for a sensitive one (marked anywhere
// inside) only its salted hash.
func planVariable(v cty.Value) plans.Variable {
	sensitive := v.HasMark(lang.SensitiveMark) || v.ContainsMarked()
	clear, _ := v.UnmarkDeep()
	b, err := ctyJSON(clear)
	if err != nil {
		b = []byte(`null`)
	}
	if sensitive {
		return plans.Variable{Sensitive: true, Hash: plans.HashSecret(b)}
	}
	return plans.Variable{Value: b}
}

func absDir(d string) string {
	if a, err := filepath.Abs(d); err == nil {
		return a
	}
	return d
}

func ctyJSON(v cty.Value) ([]byte, error) { return ctyjson.Marshal(v, cty.DynamicPseudoType) }

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
