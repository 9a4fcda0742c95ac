// Package handover makes the new provider's onboarding checklist: what the
// switchover did (with the evidence its steps recorded), what is still
// open (first), and which secrets were delivered (names, never values). It
// reads plain inputs (the runbook's metadata, the state and the audit
// trail) and renders Markdown, self-contained HTML and JSON.
package handover

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/switchover/switchover/internal/audit"
	"github.com/switchover/switchover/internal/runbook"
	"github.com/switchover/switchover/internal/state"
)

// FormatVersion is the JSON format's version: fields are added, never
// renamed or removed, within a version.
const FormatVersion = 1

// Checklist is the document. Its JSON form is documented in README.md.
type Checklist struct {
	FormatVersion int         `json:"format_version"`
	GeneratedAt   time.Time   `json:"generated_at"`
	Runbook       RunbookInfo `json:"runbook"`
	Runs          []Run       `json:"runs"`
	Audit         AuditInfo   `json:"audit"`
	Counts        Counts      `json:"counts"`
	OpenItems     []OpenItem  `json:"open_items"`
	Systems       []System    `json:"systems"`
	Secrets       []Secret    `json:"secrets"`
	Outputs       []Output    `json:"outputs"`
	Confirmations []Confirmed `json:"confirmations"`
	Receipts      []Receipt   `json:"receipts"`
	Warnings      []string    `json:"warnings"`
	// VendorAccess is the standard operating procedure for vendor
	// access, when the runbook keeps vendor access windows.
	VendorAccess *VendorAccess `json:"vendor_access,omitempty"`
	index        map[string]*StepResult
}

// VendorAccess is the rule the new provider runs vendor accounts by, and
// where each vendor access stands.
type VendorAccess struct {
	Rules    []string     `json:"rules"`
	Accesses []StepResult `json:"accesses"`
}

// vendorAccessRules is the new provider's standard operating procedure.
var vendorAccessRules = []string{
	"Vendor accounts (the line-of-business software's support) have no admin rights unless absolutely needed; a vendor access with admin rights says why in its runbook (admin_reason).",
	"Vendor accounts are disabled at all times and enabled only for a supervised support window.",
	"Every access to a server is time-limited: the system itself ends it at the window's end (accountExpires, expiry-time, NOTAFTER); Entra ID cannot, so apply runs at the end.",
	"A window is booked at least 7 days ahead and confirmed to the client and the vendor in writing (the notices by mail); an earlier window records why. Verbal agreements do not count.",
	"Every window, its booking, opening and closing is in the audit trail, with who booked and who approved it.",
}

// vendorAccess lists the access window steps, if there are any.
func (c *Checklist) vendorAccess() {
	var acc []StepResult
	for _, sys := range c.Systems {
		for _, s := range sys.Steps {
			if strings.HasSuffix(s.Action, ".access_window") {
				acc = append(acc, *s)
			}
		}
	}
	if len(acc) > 0 {
		c.VendorAccess = &VendorAccess{Rules: vendorAccessRules, Accesses: acc}
	}
}

// RunbookInfo is the header's who and what.
type RunbookInfo struct {
	Name        string `json:"name"`
	Description string `json:"description,omitempty"`
	Client      string `json:"client,omitempty"`
	OldProvider string `json:"old_provider,omitempty"`
	NewProvider string `json:"new_provider,omitempty"`
	Hash        string `json:"hash"`
	AppliedHash string `json:"applied_hash,omitempty"` // of the last apply, if another
}

// Run is one apply: when and how it was approved, and by whom.
type Run struct {
	ID       string    `json:"id"`
	Time     time.Time `json:"time"`
	By       string    `json:"by"`
	Approval string    `json:"approval"`
}

// AuditInfo is the trail's head: the hash the whole trail chains to.
type AuditInfo struct {
	Entries  int      `json:"entries"`
	HeadSeq  int64    `json:"head_seq"`
	HeadHash string   `json:"head_hash"`
	Verified bool     `json:"verified"`
	Problems []string `json:"problems,omitempty"`
}

// Counts of step instances by status.
type Counts struct {
	Done    int `json:"done"`
	Failed  int `json:"failed"`
	Waiting int `json:"waiting"`
	Due     int `json:"due_later"`
	Skipped int `json:"skipped"`
	Running int `json:"cut_off"`
	Pending int `json:"pending"`
	// Gone: objects the runbook's reads no longer found (deleted, or no
	// longer matching), nothing done for them.
	Gone int `json:"gone"`
}

// OpenItem is something not finished: a failed, skipped or cut-off step,
// a step waiting for a person or for a time, or a task from the runbook's
// handover block.
type OpenItem struct {
	Kind string `json:"kind"` // failed, cut_off, waiting_for_person, left_for_person, due_later, warning, skipped, task
	Step string `json:"step,omitempty"`
	// Target is the system of the step (a host, a domain, a tenant).
	Target  string     `json:"target,omitempty"`
	Title   string     `json:"title"`
	Detail  string     `json:"detail,omitempty"`
	Owner   string     `json:"owner,omitempty"`
	Due     *time.Time `json:"due,omitempty"`
	DueText string     `json:"due_text,omitempty"` // as the runbook gives it
}

// System is one system the steps worked on (a host, a domain, a tenant, a
// repository, as the plugin names it; else the plugin configuration), with
// the steps done there.
type System struct {
	Name   string        `json:"name"`
	Plugin string        `json:"plugin"`
	Steps  []*StepResult `json:"steps"`
}

// StepResult is one step instance with its evidence.
type StepResult struct {
	Address     string     `json:"address"`
	Action      string     `json:"action"`
	Status      string     `json:"status"`
	Summary     string     `json:"summary,omitempty"`
	Error       string     `json:"error,omitempty"`
	Attempts    int        `json:"attempts,omitempty"`
	FinishedAt  *time.Time `json:"finished_at,omitempty"`
	ConfirmedBy string     `json:"confirmed_by,omitempty"`
	// confirmation is who confirmed it, when, and the note, for people.
	confirmation string
	// Evidence is its outputs as plain JSON values (sensitive ones left
	// out).
	Evidence map[string]any `json:"evidence,omitempty"`
}

// Result is the step's result for a person: its error, its confirmation
// (from the record of it, not from text), or its summary.
func (r StepResult) Result() string {
	switch {
	case r.Error != "":
		return "error: " + r.Error
	case r.confirmation != "":
		return r.confirmation
	}
	return r.Summary
}

// Secret is a delivered credential: never its value.
type Secret struct {
	Name       string     `json:"name"`
	SetBy      string     `json:"set_by,omitempty"`
	Created    time.Time  `json:"created"`
	Verified   bool       `json:"verified"`
	VerifiedAt *time.Time `json:"verified_at,omitempty"`
	Pending    bool       `json:"pending,omitempty"` // a new value is being set
}

// Output is a runbook output as the last apply recorded it.
type Output struct {
	Name      string `json:"name"`
	Sensitive bool   `json:"sensitive"`
	Value     any    `json:"value,omitempty"`
}

// Confirmed is a person's confirmation of a manual step.
type Confirmed struct {
	Step string    `json:"step"`
	By   string    `json:"by"`
	Note string    `json:"note,omitempty"`
	Time time.Time `json:"time"`
}

// Receipt: the new provider recorded that it received a bundle.
type Receipt struct {
	By     string    `json:"by"`
	Time   time.Time `json:"time"`
	SHA256 string    `json:"bundle_sha256"`
}

// Input is what the checklist is made from.
type Input struct {
	Runbook *runbook.Runbook
	State   *state.Snapshot
	// Audit is the trail as read; Problems are what its verification found.
	Audit    []audit.Entry
	Problems []audit.Problem
	// AuditHead is the hash of the trail's last line (audit.LineHash).
	AuditHead string
	Now       time.Time
}

// stepInfo is what the runbook says of a step.
type stepInfo struct {
	plugin, action, system string
}

// Build makes the checklist.
func Build(in Input) *Checklist {
	rb, st := in.Runbook, in.State
	c := &Checklist{FormatVersion: FormatVersion, GeneratedAt: in.Now.UTC(), index: map[string]*StepResult{},
		Runs: []Run{}, OpenItems: []OpenItem{}, Systems: []System{}, Secrets: []Secret{}, Outputs: []Output{},
		Confirmations: []Confirmed{}, Receipts: []Receipt{}, Warnings: []string{}}
	if m := rb.Meta; m != nil {
		c.Runbook = RunbookInfo{Name: m.Name, Description: m.Description, Client: m.Client, OldProvider: m.OldProvider, NewProvider: m.NewProvider}
	}
	c.Runbook.Hash = rb.Hash
	if st.RunbookHash != "" && st.RunbookHash != rb.Hash {
		c.Runbook.AppliedHash = st.RunbookHash
		c.Warnings = append(c.Warnings, "The runbook changed since the last apply: this checklist describes the runbook as it is now and the state as that apply left it.")
	}
	steps := map[string]stepInfo{}
	for _, s := range rb.Steps {
		steps[s.Name] = stepInfo{plugin: s.Plugin, action: s.Plugin + "." + s.Action, system: s.PluginRef()}
	}
	c.auditFacts(in)
	c.stepResults(st, steps)
	c.openItems(rb, st, in.Now)
	for _, name := range sortedKeys(st.Secrets) {
		sec := st.Secrets[name]
		s := Secret{Name: name}
		if v := sec.Current; v != nil {
			s.SetBy, s.Created, s.Verified = v.SetBy, v.Created.UTC(), v.Verified
			if !v.VerifiedAt.IsZero() {
				t := v.VerifiedAt.UTC()
				s.VerifiedAt = &t
			}
		}
		if sec.Pending != nil {
			s.Pending = true
			if sec.Current == nil {
				s.SetBy, s.Created = sec.Pending.SetBy, sec.Pending.Created.UTC()
			}
		}
		c.Secrets = append(c.Secrets, s)
	}
	for _, name := range sortedKeys(st.RunOutputs) {
		o := st.RunOutputs[name]
		out := Output{Name: name, Sensitive: o.Sealed != nil}
		if !out.Sensitive {
			var v any
			if json.Unmarshal(o.Value, &v) == nil {
				out.Value = v
			}
		}
		c.Outputs = append(c.Outputs, out)
	}
	return c
}

func (c *Checklist) auditFacts(in Input) {
	c.Audit.Entries = len(in.Audit)
	c.Audit.Verified = len(in.Problems) == 0
	for _, p := range in.Problems {
		c.Audit.Problems = append(c.Audit.Problems, p.String())
	}
	if !c.Audit.Verified {
		c.Warnings = append(c.Warnings, "The audit trail does not verify: see the audit section.")
	}
	for _, e := range in.Audit {
		c.Audit.HeadSeq = e.Seq
		switch audit.Event(e.Event) {
		case audit.EvApplyApproved:
			c.Runs = append(c.Runs, Run{ID: str(e.Fields["run"]), Time: e.Time.UTC(), By: e.Actor, Approval: str(e.Fields["how"])})
		case audit.EvConfirmed:
			c.Confirmations = append(c.Confirmations, Confirmed{Step: e.Address, By: str(e.Fields["by"]), Note: str(e.Fields["note"]), Time: e.Time.UTC()})
		case audit.EvHandoverReceipt:
			c.Receipts = append(c.Receipts, Receipt{By: str(e.Fields["by"]), Time: e.Time.UTC(), SHA256: str(e.Fields["bundle_sha256"])})
		}
	}
	c.Audit.HeadHash = in.AuditHead
}

func (c *Checklist) stepResults(st *state.Snapshot, steps map[string]stepInfo) {
	bySystem := map[string]*System{}
	var order []string
	for _, inst := range st.SortedInstances() {
		name := runbook.StepName(inst.Address)
		info, ok := steps[name]
		if !ok {
			info = stepInfo{plugin: "?", action: "(no longer in the runbook)", system: "(steps no longer in the runbook)"}
		}
		r := &StepResult{Address: inst.Address, Action: info.action, Status: inst.Shown(), Summary: inst.Summary, Error: inst.Error, Attempts: inst.Attempts}
		if !inst.FinishedAt.IsZero() {
			t := inst.FinishedAt.UTC()
			r.FinishedAt = &t
		}
		if cf := inst.Confirm; cf != nil {
			r.ConfirmedBy = cf.By
			if inst.Status == state.Done {
				r.confirmation = "confirmed by " + cf.By + " at " + stamp(cf.Time)
				if cf.Note != "" {
					r.confirmation += ": " + cf.Note
				}
			}
		}
		r.Evidence = evidence(inst.Outputs)
		switch {
		case inst.Status == state.Done:
			c.Counts.Done++
		case inst.Status == state.Failed:
			c.Counts.Failed++
		case inst.DueLater():
			c.Counts.Due++
		case inst.WaitsForPerson():
			c.Counts.Waiting++
		case inst.Status == state.Gone:
			c.Counts.Gone++
		case inst.Status == state.Skipped:
			c.Counts.Skipped++
		case inst.Status == state.Running:
			c.Counts.Running++
		default:
			c.Counts.Pending++
		}
		system := info.system
		if inst.Target != "" {
			system = inst.Target
		}
		sys := bySystem[system]
		if sys == nil {
			sys = &System{Name: system, Plugin: info.plugin}
			bySystem[system] = sys
			order = append(order, system)
		}
		sys.Steps = append(sys.Steps, r)
		c.index[inst.Address] = r
	}
	sort.Strings(order)
	for _, n := range order {
		c.Systems = append(c.Systems, *bySystem[n])
	}
	c.vendorAccess()
}

func (c *Checklist) openItems(rb *runbook.Runbook, st *state.Snapshot, now time.Time) {
	for _, inst := range st.SortedInstances() {
		switch {
		case inst.Status == state.Failed:
			c.OpenItems = append(c.OpenItems, OpenItem{Kind: "failed", Step: inst.Address, Title: "Failed: " + inst.Address, Detail: inst.Error})
		case inst.Status == state.Running:
			c.OpenItems = append(c.OpenItems, OpenItem{Kind: "cut_off", Step: inst.Address, Title: "Cut off while running: " + inst.Address, Detail: "Run switchover apply again: the plugin looks before anything is repeated."})
		case inst.WaitsForPerson():
			c.OpenItems = append(c.OpenItems, OpenItem{Kind: "waiting_for_person", Step: inst.Address, Title: "Waiting for a person: " + inst.Address, Detail: inst.Summary, Owner: confirmBy(rb, inst.Address)})
		case inst.DueLater():
			t := inst.Until.UTC()
			detail := inst.Summary
			if t.After(now) {
				detail += " (apply again after that time)"
			}
			c.OpenItems = append(c.OpenItems, OpenItem{Kind: "due_later", Step: inst.Address, Title: "Due later: " + inst.Address, Detail: detail, Due: &t})
		case inst.Status == state.Skipped:
			c.OpenItems = append(c.OpenItems, OpenItem{Kind: "skipped", Step: inst.Address, Title: "Skipped: " + inst.Address, Detail: inst.Summary})
		}
		if inst.Status == state.Gone {
			continue // nothing is open for an object that is gone
		}
		for _, n := range inst.Notes {
			it := OpenItem{Kind: n.Kind, Step: inst.Address, Target: inst.Target, Title: n.Summary, Detail: n.Detail}
			if it.Kind != state.NoteLeftForPerson {
				it.Kind = "warning"
			}
			c.OpenItems = append(c.OpenItems, it)
		}
	}
	for _, it := range rb.Handover {
		c.OpenItems = append(c.OpenItems, OpenItem{Kind: "task", Title: it.Title, Detail: it.Detail, Owner: it.Owner, DueText: it.Due})
	}
	for _, s := range st.Secrets {
		if s.Pending != nil && s.Current == nil {
			c.OpenItems = append(c.OpenItems, OpenItem{Kind: "failed", Step: s.Pending.SetBy, Title: "Secret not verified: " + s.Name,
				Detail: "A new value was made but its step has not verified it: apply again to finish; both the old and the new value are in the state until then."})
		}
	}
	rank := map[string]int{"failed": 0, "cut_off": 1, "waiting_for_person": 2, "left_for_person": 3, "due_later": 4, "warning": 5, "skipped": 6, "task": 7}
	sort.SliceStable(c.OpenItems, func(i, j int) bool { return rank[c.OpenItems[i].Kind] < rank[c.OpenItems[j].Kind] })
}

// confirmBy is a core.manual step's confirm_by, when it is a plain string.
func confirmBy(rb *runbook.Runbook, addr string) string {
	for _, s := range rb.Steps {
		if s.Name == runbook.StepName(addr) {
			return s.LiteralAttr("confirm_by")
		}
	}
	return ""
}

func str(v any) string {
	if v == nil {
		return ""
	}
	if s, ok := v.(string); ok {
		return s
	}
	return fmt.Sprint(v)
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// evidence is a step's recorded outputs as plain JSON values: the state
// keeps them as cty JSON ({"value": ..., "type": ...}), whose type half
// means nothing to a person.
func evidence(raw json.RawMessage) map[string]any {
	if len(raw) == 0 {
		return nil
	}
	var ev map[string]any
	if json.Unmarshal(raw, &ev) != nil {
		return nil
	}
	if v, ok := ev["value"].(map[string]any); ok && len(ev) == 2 && ev["type"] != nil {
		ev = v
	}
	for k, v := range ev {
		if v == nil {
			delete(ev, k) // an output the step did not give
		}
	}
	if len(ev) == 0 {
		return nil
	}
	return ev
}
