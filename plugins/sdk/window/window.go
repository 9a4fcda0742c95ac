// Package window is the part of a vendor access window that is the same
// on every target: the new provider's rule "vendor accounts are off,
// except for a booked, supervised window", as an action.
//
// A plugin supplies a Target (an AD account, a key and a sudo rule on a
// host, an Entra user): how to read whether the access is open, how to
// open it with an end the target enforces by itself (so the window closes
// even if switchover never runs again), and how to close it. This package
// declares the windows, checks them (booked in writing by whom, approved
// by whom, the notice period, the longest window, overlaps, windows in
// the past, admin rights), decides what is due now, sends the written
// notices (booked, opened, closed) by SMTP with STARTTLS, and records in
// its checkpoint what it sent.
//
// The action's plan says what is due now; between events it answers
// Wait until the next one (a window's start or end), so `switchover
// apply`, run by a timer or by hand at the window's times, goes on.
package window

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/zclconf/go-cty/cty"

	"github.com/switchover/switchover/plugins/sdk"
)

// Window is one booked access window.
type Window struct {
	Name                 string
	Start, End, BookedAt time.Time
	BookedBy, ApprovedBy string
	Reason               string // why the notice period was shorter
}

// Access is what a target says about the vendor's access now.
type Access struct {
	Open  bool
	Until time.Time // the end the target enforces (zero: none)
}

// Unenforced is a Target that cannot end an access by itself (Entra ID has
// no account expiry): its access is open without an end, the window
// closes when apply runs at its end, and the plan says so.
type Unenforced interface {
	Unenforced() string
}

// Target is the vendor's access on one system.
type Target interface {
	// Describe names it for plans, notices and the checklist.
	Describe() string
	State(ctx context.Context) (Access, error)
	// Open enables the access with w.End enforced by the target itself,
	// in one write where the target allows it: never enabled without an
	// end, whenever the process dies. It is called again, whole, until
	// the opening is recorded (it must be idempotent); a credential the
	// target makes for the window goes to sdk.KeepSecret(ctx, ev, ...).
	Open(ctx context.Context, w Window, ev sdk.Events) error
	// Close removes what Open added and ends sessions it can; what it
	// cannot end (a live session, a ticket) is returned for a person.
	Close(ctx context.Context) (leftForPerson string, err error)
	// AdminRights says which admin rights the access gives ("" none).
	AdminRights(ctx context.Context) (string, error)
}

// NewTarget makes the Target of a step instance from its attributes.
type NewTarget func(ctx context.Context, a sdk.Values) (Target, error)

var windowType = cty.ObjectWithOptionalAttrs(map[string]cty.Type{
	"name": cty.String, "start": cty.String, "end": cty.String, "booked_at": cty.String,
	"booked_by": cty.String, "approved_by": cty.String, "reason": cty.String,
}, []string{"name", "reason"})

// Value is w as an element of the windows attribute (for tests, and for
// code that builds steps).
func Value(w Window) cty.Value {
	reason := cty.NullVal(cty.String)
	if w.Reason != "" {
		reason = cty.StringVal(w.Reason)
	}
	rfc := func(t time.Time) cty.Value { return cty.StringVal(t.UTC().Format(time.RFC3339)) }
	return cty.ObjectVal(map[string]cty.Value{
		"name": cty.StringVal(w.Name), "start": rfc(w.Start), "end": rfc(w.End), "booked_at": rfc(w.BookedAt),
		"booked_by": cty.StringVal(w.BookedBy), "approved_by": cty.StringVal(w.ApprovedBy), "reason": reason,
	})
}

// Attributes are the attributes every window action has.
func Attributes() []sdk.Attribute {
	return []sdk.Attribute{
		{Name: "windows", Type: cty.List(windowType), Required: true, Description: "The booked windows: { name, start, end (RFC 3339), booked_at (when it was confirmed in writing), booked_by, approved_by, reason (why the notice was shorter) }. Every window of this access belongs in this one list: they must not overlap."},
		{Name: "notice", Type: sdk.DurationType, Description: "How long ahead a window must be booked (default 168h, 7 days); a shorter notice needs the window's reason."},
		{Name: "max_length", Type: sdk.DurationType, Description: "The longest window allowed (default 12h)."},
		{Name: "admin_reason", Type: cty.String, Description: "Why this vendor access may carry admin rights: without it, an access with admin rights is refused."},
		{Name: "smtp_server", Type: cty.String, Description: "SMTP server for the written notices, host:port (STARTTLS required; port 587 by default)."},
		{Name: "smtp_username", Type: cty.String, Description: "SMTP user (AUTH PLAIN, after STARTTLS)."},
		{Name: "smtp_password", Type: cty.String, Sensitive: true, Description: "SMTP password."},
		{Name: "smtp_ca_file", Type: cty.String, Description: "PEM file of the CA that signed the SMTP server's certificate (default: the system's)."},
		{Name: "mail_from", Type: cty.String, Description: "The notices' sender."},
		{Name: "mail_to", Type: cty.List(cty.String), Description: "Who gets the notices: the client and the vendor (required with smtp_server)."},
	}
}

// Outputs of every window action.
func Outputs() []sdk.Output {
	return []sdk.Output{
		{Name: "open", Type: cty.Bool, Description: "Whether the access is open now."},
		{Name: "current", Type: cty.String, Description: "The window open now (\"\" if none)."},
		{Name: "next", Type: cty.String, Description: "The next booked window's name and start (\"\" if none)."},
	}
}

// checkpoint is what the action has done, by window name.
type checkpoint struct {
	Booked []string `json:"booked,omitempty"`
	Opened []string `json:"opened,omitempty"`
	Closed []string `json:"closed,omitempty"`
}

func readCheckpoint(b []byte) checkpoint {
	var cp checkpoint
	if len(b) > 0 {
		json.Unmarshal(b, &cp) //nolint:errcheck // an unreadable checkpoint is a fresh start: notices are sent again
	}
	return cp
}

// Action is a window action of a plugin: what (for descriptions) such as
// "an AD account"; attrs are the target's own attributes.
func Action(name, what string, attrs []sdk.Attribute, target NewTarget) *sdk.Action {
	a := &action{target: target}
	return &sdk.Action{
		Name: name,
		Description: "A vendor's access to " + what + " for booked, supervised windows only: opened at a window's start with its end enforced by the target itself, closed at its end (what opening added removed, sessions ended where the target can), with written notices when booked, opened and closed. " +
			"Refused: a window in the past, longer than max_length, overlapping another, booked with less notice than notice without a reason, or an access with admin rights without admin_reason. Between events the step is due later, at the next start or end: run apply then (a timer), or not at all, the target closes the window itself.",
		Attributes: append(attrs, Attributes()...), Outputs: Outputs(),
		PlanFunc: a.plan, ApplyFunc: a.apply,
	}
}

type action struct{ target NewTarget }

// parse reads and checks the windows; cp says which were booked already
// (a window that has passed since is history, not an error).
func parse(a sdk.Values, now time.Time, cp checkpoint) ([]Window, sdk.Diagnostics) {
	notice, diags := a.Duration("notice", 7*24*time.Hour)
	maxLen, d := a.Duration("max_length", 12*time.Hour)
	diags = append(diags, d...)
	var ws []Window
	raw := a.Get("windows")
	if raw.IsNull() || !raw.IsKnown() {
		return nil, append(diags, sdk.AttributeErrorf("windows", "No windows", "windows is required: the booked windows, each with start, end, booked_at, booked_by and approved_by.")...)
	}
	for i, v := range raw.AsValueSlice() {
		w, err := windowFrom(v, i)
		if err != nil {
			diags = append(diags, sdk.AttributeErrorf("windows", "Invalid access window", "windows[%d]: %v", i, err)...)
			continue
		}
		diags = append(diags, check(w, now, notice, maxLen, slices.Contains(cp.Booked, w.Name))...)
		ws = append(ws, w)
	}
	sort.Slice(ws, func(i, j int) bool { return ws[i].Start.Before(ws[j].Start) })
	names := map[string]bool{}
	for _, w := range ws {
		if names[w.Name] {
			diags = append(diags, sdk.AttributeErrorf("windows", "Two windows of one name", "two windows are named %q: name them apart (the notices and the record go by name).", w.Name)...)
		}
		names[w.Name] = true
	}
	for i := 1; i < len(ws); i++ {
		if ws[i].Start.Before(ws[i-1].End) {
			diags = append(diags, sdk.AttributeErrorf("windows", "Overlapping access windows", "%q (%s to %s) overlaps %q (%s to %s): one account, one window at a time.",
				ws[i].Name, Stamp(ws[i].Start), Stamp(ws[i].End), ws[i-1].Name, Stamp(ws[i-1].Start), Stamp(ws[i-1].End))...)
		}
	}
	return ws, diags
}

func windowFrom(v cty.Value, i int) (Window, error) {
	get := func(k string) string {
		x := v.GetAttr(k)
		if x.IsNull() || !x.IsKnown() {
			return ""
		}
		return strings.TrimSpace(x.AsString())
	}
	var w Window
	for _, t := range []struct {
		key string
		to  *time.Time
	}{{"start", &w.Start}, {"end", &w.End}, {"booked_at", &w.BookedAt}} {
		s := get(t.key)
		tm, err := time.Parse(time.RFC3339, s)
		if err != nil {
			return w, fmt.Errorf("%s = %q is not an RFC 3339 time (2026-12-10T08:00:00+01:00)", t.key, s)
		}
		*t.to = tm.UTC()
	}
	w.BookedBy, w.ApprovedBy, w.Reason, w.Name = get("booked_by"), get("approved_by"), get("reason"), get("name")
	if w.Name == "" {
		w.Name = w.Start.Format("2006-01-02T15:04Z")
	}
	if w.BookedBy == "" || w.ApprovedBy == "" {
		return w, fmt.Errorf("booked_by and approved_by name the people who booked and approved the window in writing (verbal agreements do not count)")
	}
	return w, nil
}

func check(w Window, now time.Time, notice, maxLen time.Duration, booked bool) sdk.Diagnostics {
	var diags sdk.Diagnostics
	bad := func(summary, format string, a ...any) {
		diags = append(diags, sdk.AttributeErrorf("windows", summary, "%q: "+format, append([]any{w.Name}, a...)...)...)
	}
	switch {
	case !w.End.After(w.Start):
		bad("An access window that ends before it starts", "end %s is not after start %s.", Stamp(w.End), Stamp(w.Start))
	case w.End.Sub(w.Start) > maxLen:
		bad("An access window longer than allowed", "%s to %s is %s, longer than max_length %s.", Stamp(w.Start), Stamp(w.End), human(w.End.Sub(w.Start)), human(maxLen))
	}
	if !booked && !w.End.After(now) {
		bad("An access window in the past", "it ended at %s, before it was booked here: book a new window.", Stamp(w.End))
	}
	if w.BookedAt.After(now.Add(time.Minute)) {
		bad("A booking in the future", "booked_at %s is later than now: write when the window was confirmed in writing.", Stamp(w.BookedAt))
	}
	if lead := w.Start.Sub(w.BookedAt); lead < notice && w.Reason == "" {
		bad("An access window booked at short notice", "booked %s before its start (%s to %s), less than the notice of %s: give the reason in the window's reason (it is recorded and sent with the notices).",
			human(lead), Stamp(w.BookedAt), Stamp(w.Start), human(notice))
	}
	return diags
}

// human writes a duration as people do: "7 days", "2h", "1h30m".
func human(d time.Duration) string {
	d = d.Round(time.Minute)
	if d >= 24*time.Hour && d%(24*time.Hour) == 0 {
		if d == 24*time.Hour {
			return "1 day"
		}
		return fmt.Sprintf("%d days", d/(24*time.Hour))
	}
	return strings.TrimSuffix(strings.TrimSuffix(d.String(), "0s"), "0m")
}

// Stamp is how plans and notices write a time: UTC, to the minute (to the
// second when it has seconds).
func Stamp(t time.Time) string {
	if t.Second() != 0 {
		return t.UTC().Format("2006-01-02 15:04:05 UTC")
	}
	return t.UTC().Format("2006-01-02 15:04 UTC")
}

// due is what is to do now, in order.
type due struct {
	book     []Window // booking notices to send
	close    *Window  // the access is open outside a window (the last window that was open, or nil)
	open     *Window  // the window open now, to open (or to send its notice)
	notifyOp bool     // open, but the opening is not recorded (a kill came between)
	current  *Window
	next     *Window
	later    []Window // booked after next
}

func (d *due) empty() bool { return len(d.book) == 0 && d.close == nil && d.open == nil }

func decide(ws []Window, cp checkpoint, acc Access, now time.Time, unenforced bool) *due {
	d := &due{}
	for i := range ws {
		w := &ws[i]
		if !slices.Contains(cp.Booked, w.Name) && now.Before(w.End) {
			d.book = append(d.book, *w)
		}
		switch {
		case !now.Before(w.Start) && now.Before(w.End):
			d.current = w
		case now.Before(w.Start) && d.next == nil:
			d.next = w
		case now.Before(w.Start):
			d.later = append(d.later, *w)
		}
	}
	if d.current == nil {
		if acc.Open {
			d.close = &Window{Name: ""}
			for i := range ws {
				if slices.Contains(cp.Opened, ws[i].Name) && !slices.Contains(cp.Closed, ws[i].Name) {
					d.close = &ws[i]
				}
			}
		} else {
			// Closed by the target itself (its end) or by a person: the
			// closing notice is still owed.
			for i := range ws {
				if slices.Contains(cp.Opened, ws[i].Name) && !slices.Contains(cp.Closed, ws[i].Name) && !now.Before(ws[i].End) {
					d.close = &ws[i]
				}
			}
		}
		return d
	}
	c := d.current
	switch {
	case !acc.Open || !unenforced && (acc.Until.IsZero() || !acc.Until.Equal(c.End)):
		d.open = c
	case !slices.Contains(cp.Opened, c.Name):
		// Open again, whole: a kill may have come between the opening
		// and its record (and a credential made then is known to nobody).
		d.open, d.notifyOp = c, true
	}
	return d
}

func (d *due) summary(t Target) string {
	var parts []string
	for _, w := range d.book {
		parts = append(parts, fmt.Sprintf("book %q (%s to %s)", w.Name, Stamp(w.Start), Stamp(w.End)))
	}
	if d.close != nil {
		if d.close.Name == "" {
			parts = append(parts, "close "+t.Describe()+": it is open outside any window")
		} else {
			parts = append(parts, fmt.Sprintf("close window %q of %s", d.close.Name, t.Describe()))
		}
	}
	if d.open != nil {
		if d.notifyOp {
			parts = append(parts, fmt.Sprintf("finish opening window %q (its opening is not recorded yet) and send its notice", d.open.Name))
		} else {
			parts = append(parts, fmt.Sprintf("open %s until %s (window %q, approved by %s)", t.Describe(), Stamp(d.open.End), d.open.Name, d.open.ApprovedBy))
		}
	}
	return strings.Join(parts, "; ")
}

func (d *due) outputs(open bool) map[string]cty.Value {
	cur, next := "", ""
	if d.current != nil {
		cur = d.current.Name
	}
	if d.next != nil {
		next = d.next.Name + " at " + Stamp(d.next.Start)
	}
	return map[string]cty.Value{"open": cty.BoolVal(open), "current": cty.StringVal(cur), "next": cty.StringVal(next)}
}

// observe reads and checks everything a plan or an apply needs.
func (a *action) observe(ctx context.Context, vals sdk.Values, cpData []byte) (Target, []Window, checkpoint, Access, sdk.Diagnostics, error) {
	cp := readCheckpoint(cpData)
	ws, diags := parse(vals, time.Now(), cp)
	if diags.HasErrors() {
		return nil, nil, cp, Access{}, diags, nil
	}
	if vals.String("smtp_server") != "" && len(vals.Strings("mail_to")) == 0 {
		return nil, nil, cp, Access{}, sdk.AttributeErrorf("mail_to", "No recipients", "smtp_server is set, but mail_to names nobody: the client and the vendor get the notices."), nil
	}
	t, err := a.target(ctx, vals)
	if err != nil {
		return nil, nil, cp, Access{}, nil, err
	}
	rights, err := t.AdminRights(ctx)
	if err != nil {
		return nil, nil, cp, Access{}, nil, err
	}
	if rights != "" && vals.String("admin_reason") == "" {
		return nil, nil, cp, Access{}, sdk.AttributeErrorf("admin_reason", "A vendor access with admin rights",
			"%s has admin rights (%s): a vendor account has none unless absolutely needed. Remove them, or say why in admin_reason.", t.Describe(), rights), nil
	}
	acc, err := t.State(ctx)
	return t, ws, cp, acc, nil, err
}

func (a *action) plan(ctx context.Context, req *sdk.PlanRequest) *sdk.PlanResponse {
	if !req.Attributes.AllKnown() {
		return sdk.Changef("decided during apply: some attributes are known only after earlier steps ran")
	}
	t, ws, cp, acc, diags, err := a.observe(ctx, req.Attributes, req.Checkpoint)
	if err != nil {
		return sdk.PlanError(err)
	}
	if diags.HasErrors() {
		return &sdk.PlanResponse{Diagnostics: diags}
	}
	u, unenforced := t.(Unenforced)
	d := decide(ws, cp, acc, time.Now(), unenforced)
	var r *sdk.PlanResponse
	if !d.empty() {
		r = sdk.Changef("%s", d.summary(t))
		r.Details = details(ws, req.Attributes)
	} else {
		r = waitOrDone(t, d, acc)
	}
	if unenforced && (d.open != nil || d.current != nil) {
		r.Diagnostics = append(r.Diagnostics, sdk.Warnf("The target does not end the window by itself", "%s", u.Unenforced()))
	}
	return r
}

func waitOrDone(t Target, d *due, acc Access) *sdk.PlanResponse {
	var r *sdk.PlanResponse
	switch {
	case d.current != nil:
		r = sdk.Waitf(d.current.End, "%s is open until %s (window %q, approved by %s)%s", t.Describe(), Stamp(d.current.End), d.current.Name, d.current.ApprovedBy, d.booked())
	case d.next != nil:
		r = sdk.Waitf(d.next.Start, "%s is closed; window %q opens at %s (booked by %s, approved by %s)%s", t.Describe(), d.next.Name, Stamp(d.next.Start), d.next.BookedBy, d.next.ApprovedBy, d.booked())
	default:
		r = sdk.NoChangef("%s is closed; no window is booked ahead", t.Describe())
	}
	r.Outputs = d.outputs(acc.Open)
	return r
}

// booked lists the windows booked after the next event, for status.
func (d *due) booked() string {
	list := d.later
	if d.current != nil && d.next != nil {
		list = append([]Window{*d.next}, list...)
	}
	if len(list) == 0 {
		return ""
	}
	var parts []string
	for _, w := range list {
		parts = append(parts, fmt.Sprintf("%q %s to %s", w.Name, Stamp(w.Start), Stamp(w.End)))
	}
	return "; also booked: " + strings.Join(parts, ", ")
}

func details(ws []Window, a sdk.Values) []string {
	var out []string
	for _, w := range ws {
		line := fmt.Sprintf("window %q: %s to %s, booked %s by %s, approved by %s", w.Name, Stamp(w.Start), Stamp(w.End), Stamp(w.BookedAt), w.BookedBy, w.ApprovedBy)
		if w.Reason != "" {
			line += ", short notice because: " + w.Reason
		}
		out = append(out, line)
	}
	if to := a.Strings("mail_to"); len(to) > 0 {
		out = append(out, "notices to "+strings.Join(to, ", "))
	} else {
		out = append(out, "no notices by mail (smtp_server is not set): confirm the window to the client and the vendor in writing yourself")
	}
	return out
}

func (a *action) apply(ctx context.Context, req *sdk.ApplyRequest, ev sdk.Events) *sdk.ApplyResponse {
	t, ws, cp, acc, diags, err := a.observe(ctx, req.Attributes, req.Checkpoint)
	if err != nil {
		return sdk.ApplyError(err)
	}
	if diags.HasErrors() {
		return &sdk.ApplyResponse{Diagnostics: diags}
	}
	m := mailerFrom(req.Attributes)
	_, unenforced := t.(Unenforced)
	d := decide(ws, cp, acc, time.Now(), unenforced)
	var done []string
	var out sdk.Diagnostics
	record := func(list *[]string, name string) error {
		*list = append(*list, name)
		b, _ := json.Marshal(cp)
		return ev.Checkpoint(ctx, b)
	}
	for _, w := range d.book {
		if err := m.send(ctx, "booked", t, w); err != nil {
			return sdk.ApplyError(err)
		}
		if err := record(&cp.Booked, w.Name); err != nil {
			return sdk.ApplyError(err)
		}
		done = append(done, fmt.Sprintf("booked %q", w.Name))
	}
	if d.close != nil {
		if acc.Open {
			left, err := t.Close(ctx)
			if err != nil {
				return sdk.ApplyError(fmt.Errorf("closing %s: %w", t.Describe(), err))
			}
			if left != "" {
				out = append(out, sdk.LeftForPerson("End the vendor's sessions by hand", "%s", left))
			}
			done = append(done, "closed "+t.Describe())
		}
		if d.close.Name != "" {
			if err := m.send(ctx, "closed", t, *d.close); err != nil {
				return sdk.ApplyError(err)
			}
			if err := record(&cp.Closed, d.close.Name); err != nil {
				return sdk.ApplyError(err)
			}
			done = append(done, fmt.Sprintf("window %q closed", d.close.Name))
		}
	}
	if d.open != nil {
		if err := t.Open(ctx, *d.open, ev); err != nil {
			return sdk.ApplyError(fmt.Errorf("opening %s: %w", t.Describe(), err))
		}
		if err := m.send(ctx, "opened", t, *d.open); err != nil {
			return sdk.ApplyError(err)
		}
		if err := record(&cp.Opened, d.open.Name); err != nil {
			return sdk.ApplyError(err)
		}
		done = append(done, fmt.Sprintf("opened %s until %s (window %q)", t.Describe(), Stamp(d.open.End), d.open.Name))
	}
	return &sdk.ApplyResponse{Summary: strings.Join(done, "; "), Diagnostics: out}
}
