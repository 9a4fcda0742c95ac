package entra

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/zclconf/go-cty/cty"

	"github.com/switchover/switchover/internal/testing/graphtest"
	"github.com/switchover/switchover/plugins/sdk"
	"github.com/switchover/switchover/plugins/sdk/window"
)

func windowVal(name string, start, end, booked time.Time) cty.Value {
	return window.Value(window.Window{Name: name, Start: start, End: end, BookedAt: booked, BookedBy: "Jana Neu (NewMSP)", ApprovedBy: "Max Kunde (client)"})
}

// A vendor's Entra user in a window: enabled at its start (the plan warns
// that Entra does not end it by itself), disabled with its sessions
// revoked at its end; a vendor user with a directory role is refused
// without admin_reason.
func TestAccessWindowForAnEntraUser(t *testing.T) {
	ctx := context.Background()
	g := graphtest.Start(t)
	id := g.AddUser("support@erp-vendor.test", "Vendor-Pw-1!", false)
	g.SyncDisabled(id) // the vendor is off between windows
	start := time.Now().Add(2 * time.Second).Truncate(time.Second)
	end := start.Add(6 * time.Second)
	attrs := map[string]cty.Value{"user": str(id), "windows": cty.ListVal([]cty.Value{windowVal("erp", start, end, time.Now().Add(-8*24*time.Hour))}),
		"temporary_access_pass": str("vendor/erp-tap")}
	h := harness(t, g)
	var cp []byte
	step := func(summary string) *sdk.PlanResponse {
		t.Helper()
		p, after, next, err := h.Step(ctx, "access_window", attrs, cp)
		if err != nil || p.Kind != sdk.Change || !strings.Contains(p.Summary, summary) {
			t.Fatalf("plan: %v %+v, want a change %q", err, p, summary)
		}
		cp = next
		return after
	}
	step(`book "erp"`)
	time.Sleep(time.Until(start))
	v := step("open Entra user support@erp-vendor.test")
	if v.Kind != sdk.Wait || g.UserProps(id)["accountEnabled"] != true {
		t.Fatalf("in the window: %v, enabled %v", v.Kind, g.UserProps(id)["accountEnabled"])
	}
	if len(v.Diagnostics) == 0 || !strings.Contains(v.Diagnostics[0].Detail, "no account expiry") {
		t.Fatalf("the plan does not warn that Entra does not end the window: %+v", v.Diagnostics)
	}
	// The vendor's Temporary Access Pass: made for the window, kept as a
	// secret (the one the target has), never in a plan or an output.
	code, tap := g.TemporaryAccessPass(id)
	if code == "" || h.Secrets["vendor/erp-tap"] != code || tap["lifetimeInMinutes"] != float64(10) {
		t.Fatalf("TAP: %q %v, kept %q", code, tap, h.Secrets["vendor/erp-tap"])
	}
	if strings.Contains(fmt.Sprint(v), code) {
		t.Fatal("the TAP's code is in a plan")
	}
	time.Sleep(time.Until(end))
	before := g.UserProps(id)["signInSessionsValidFromDateTime"]
	if v := step(`close window "erp"`); v.Kind != sdk.NoChange {
		t.Fatalf("after closing: %v %s", v.Kind, v.Summary)
	}
	if p := g.UserProps(id); p["accountEnabled"] != false || p["signInSessionsValidFromDateTime"] == before {
		t.Fatalf("after the window: %v", p)
	}
	if _, tap := g.TemporaryAccessPass(id); tap != nil {
		t.Fatalf("the TAP outlives the window: %v", tap)
	}
	g.AddRole("Global Administrator", "62e90394-69f5-4237-9190-012177145e10", id)
	later := map[string]cty.Value{"user": str(id), "windows": cty.ListVal([]cty.Value{windowVal("erp2", time.Now().Add(time.Hour), time.Now().Add(2*time.Hour), time.Now().Add(-8*24*time.Hour))})}
	if _, err := h.Plan(ctx, "access_window", later, nil); err == nil || !strings.Contains(err.Error(), "directory role Global Administrator") {
		t.Fatalf("a vendor with a directory role: %v", err)
	}
}
