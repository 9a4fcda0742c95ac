package ad

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/zclconf/go-cty/cty"

	"github.com/switchover/switchover/internal/testing/adlab"
	"github.com/switchover/switchover/internal/testing/smtplab"
	"github.com/switchover/switchover/plugins/sdk"
	"github.com/switchover/switchover/plugins/sdk/window"
)

func windowVal(name string, start, end, booked time.Time, reason string) cty.Value {
	return window.Value(window.Window{Name: name, Start: start, End: end, BookedAt: booked, BookedBy: "Jana Neu (NewMSP)", ApprovedBy: "Max Kunde (client)", Reason: reason})
}

// A vendor window of a few seconds on a real DC: booked (a notice), opened
// at its start with the end in accountExpires (a notice; the vendor's bind
// works), then, with switchover not running, the DC itself refuses the
// vendor after the end; the next apply disables it and sends the closing
// notice. The notices arrive over STARTTLS with the window's times.
func TestAccessWindowOpensAndClosesByItself(t *testing.T) {
	ctx := context.Background()
	c := dc.Admin(t)
	pw := "Vendor-Erp-Pw-1!"
	dn := mustUser(t, c, "vendor-erp", pw, map[string][]string{"userAccountControl": {"514"}})
	mail, err := smtplab.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer mail.Close()
	start := time.Now().Add(3 * time.Second).Truncate(time.Second)
	end := start.Add(8 * time.Second) // the test looks inside it: time for a loaded machine
	attrs := map[string]cty.Value{
		"account":     str("vendor-erp"),
		"windows":     cty.ListVal([]cty.Value{windowVal("erp-update", start, end, time.Now().Add(-8*24*time.Hour), "")}),
		"smtp_server": str(mail.Addr), "smtp_username": str(smtplab.User), "smtp_password": str(smtplab.Password),
		"smtp_ca_file": str(mail.CAFile), "mail_from": str(smtplab.User), "mail_to": cty.ListVal([]cty.Value{str("it@kunde.test"), str("support@erp-vendor.test")}),
	}
	h := harness(t)
	var cp []byte
	step := func(want sdk.PlanKind, summary string) *sdk.PlanResponse {
		t.Helper()
		p, after, next, err := h.Step(ctx, "access_window", attrs, cp)
		if err != nil || p.Kind != want || !strings.Contains(p.Summary, summary) {
			t.Fatalf("plan: %v %v %q, want %v %q", err, p.Kind, p.Summary, want, summary)
		}
		cp = next
		return after
	}
	v := step(sdk.Change, `book "erp-update"`)
	if v.Kind != sdk.Wait || !v.NotBefore.Equal(start) {
		t.Fatalf("after booking: %v %s, want due at the start %s", v.Kind, v.NotBefore, start)
	}
	if bindCode(t, dn, pw) != "533" {
		t.Fatal("the vendor can bind before the window")
	}
	time.Sleep(time.Until(start))
	v = step(sdk.Change, "open AD account vendor-erp until")
	if v.Kind != sdk.Wait || !v.NotBefore.Equal(end) {
		t.Fatalf("after opening: %v %s, want due at the end %s", v.Kind, v.NotBefore, end)
	}
	if got := bindCode(t, dn, pw); got != "ok" {
		t.Fatalf("the vendor's bind in the window: %s", got)
	}
	if exp := fileTime(attr(t, c, dn, "accountExpires")); !exp.Equal(end) {
		t.Fatalf("accountExpires %s, want the window's end %s", exp, end)
	}
	// switchover does not run: the DC ends the window itself.
	time.Sleep(time.Until(end) + 1500*time.Millisecond)
	if got := bindCode(t, dn, pw); got != "701" {
		t.Fatalf("the vendor's bind after the window, switchover not running: %s, want 701 (account expired)", got)
	}
	v = step(sdk.Change, `close window "erp-update"`)
	if v.Kind != sdk.NoChange {
		t.Fatalf("after closing: %v %s", v.Kind, v.Summary)
	}
	if uac := attr(t, c, dn, "userAccountControl"); uac != "514" {
		t.Fatalf("userAccountControl after the window: %s, want 514 (disabled)", uac)
	}
	msgs := mail.Messages()
	if len(msgs) != 3 {
		t.Fatalf("%d notices, want 3 (booked, opened, closed): %+v", len(msgs), msgs)
	}
	for i, want := range []string{"Access window booked", "Access window open now", "Access window closed"} {
		m := msgs[i]
		if !strings.HasPrefix(m.Subject, want+": AD account vendor-erp, erp-update") || len(m.To) != 2 ||
			!strings.Contains(m.Body, "From:        "+window.Stamp(start)) || !strings.Contains(m.Body, "Until:       "+window.Stamp(end)) || !strings.Contains(m.Body, "Approved by: Max Kunde (client)") {
			t.Fatalf("notice %d: %+v", i, m)
		}
	}
}

// Bad windows are refused with the attribute named, before anything
// changes; an account with admin rights needs a reason.
func TestAccessWindowRefusals(t *testing.T) {
	ctx := context.Background()
	c := dc.Admin(t)
	dn := mustUser(t, c, "vendor-bad", "Vendor-Bad-Pw-1!", map[string][]string{"userAccountControl": {"514"}})
	now := time.Now()
	week := 8 * 24 * time.Hour
	h := harness(t)
	for _, tc := range []struct {
		name    string
		windows []cty.Value
		want    string
	}{
		{"past", []cty.Value{windowVal("w", now.Add(-3*time.Hour), now.Add(-time.Hour), now.Add(-week), "")}, "An access window in the past"},
		{"too long", []cty.Value{windowVal("w", now.Add(time.Hour), now.Add(20*time.Hour), now.Add(-week), "")}, "longer than max_length 12h"},
		{"short notice", []cty.Value{windowVal("w", now.Add(time.Hour), now.Add(2*time.Hour), now.Add(-time.Hour), "")}, "booked at short notice"},
		{"overlap", []cty.Value{windowVal("a", now.Add(time.Hour), now.Add(3*time.Hour), now.Add(-week), ""), windowVal("b", now.Add(2*time.Hour), now.Add(4*time.Hour), now.Add(-week), "")}, `"b"`},
	} {
		_, err := h.Plan(ctx, "access_window", map[string]cty.Value{"account": str("vendor-bad"), "windows": cty.ListVal(tc.windows)}, nil)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", tc.name, err, tc.want)
		}
	}
	// Short notice with a reason is accepted, and the reason is shown.
	ok := map[string]cty.Value{"account": str("vendor-bad"), "windows": cty.ListVal([]cty.Value{windowVal("w", now.Add(time.Hour), now.Add(2*time.Hour), now.Add(-time.Hour), "the ERP stopped booking invoices")})}
	if p, err := h.Plan(ctx, "access_window", ok, nil); err != nil || !strings.Contains(strings.Join(p.Details, "\n"), "short notice because: the ERP stopped booking invoices") {
		t.Fatalf("short notice with a reason: %v %+v", err, p)
	}
	if err := adlab.AddMember(c, "CN=Domain Admins,"+adlab.UsersDN, dn); err != nil {
		t.Fatal(err)
	}
	if _, err := h.Plan(ctx, "access_window", ok, nil); err == nil || !strings.Contains(err.Error(), "admin rights (member of Domain Admins") {
		t.Fatalf("an admin vendor account: %v", err)
	}
	ok["admin_reason"] = str("the ERP's installer needs Domain Admins (vendor ticket 4711)")
	if _, err := h.Plan(ctx, "access_window", ok, nil); err != nil {
		t.Fatalf("with admin_reason: %v", err)
	}
}
