package http

import (
	"context"
	"strings"
	"testing"

	"github.com/zclconf/go-cty/cty"

	"github.com/switchover/switchover/internal/testing/rmmlab"
	"github.com/switchover/switchover/plugins/sdk"
	"github.com/switchover/switchover/plugins/sdk/sdktest"
)

const admin = "rmm-admin-token-CANARY-5150"

func str(s string) cty.Value { return cty.StringVal(s) }

func harness(t *testing.T, s *rmmlab.Server, set map[string]cty.Value) *sdktest.Harness {
	t.Helper()
	cfg := map[string]cty.Value{"base_url": str(s.URL + "/api/v1"), "ca_file": str(s.CAFile),
		"headers": cty.MapVal(map[string]cty.Value{"Authorization": str("Bearer " + admin)})}
	for k, v := range set {
		cfg[k] = v
	}
	h := &sdktest.Harness{P: New("test")}
	if err := h.Configure(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
	return h
}

// Revoke the old provider's API token: the check sees it active, apply
// revokes it, the check holds; a second plan is a no-op.
func revoke(name string) map[string]cty.Value {
	return map[string]cty.Value{
		"check": cty.ObjectVal(map[string]cty.Value{"url": str("tokens")}),
		"condition": cty.ObjectVal(map[string]cty.Value{"status": cty.NumberIntVal(200),
			"path": str(`tokens.#(name=="` + name + `").active`), "equals": str("false")}),
		"apply":   cty.ListVal([]cty.Value{cty.ObjectVal(map[string]cty.Value{"method": str("DELETE"), "url": str("tokens/" + name)})}),
		"outputs": cty.MapVal(map[string]cty.Value{"left": str(`tokens.#(active==true)#.name`)}),
	}
}

func TestRequestCheckApplyVerify(t *testing.T) {
	ctx := context.Background()
	s := rmmlab.Start(t, admin, "oldmsp", "newmsp")
	h := harness(t, s, nil)
	p, err := h.Plan(ctx, "request", revoke("oldmsp"), nil)
	if err != nil || p.Kind != sdk.Change || !strings.Contains(p.Summary, `is "true", not "false"`) || !strings.Contains(p.Summary, "DELETE tokens/oldmsp") {
		t.Fatalf("plan: %+v %v", p, err)
	}
	r, err := h.Run(ctx, "request", revoke("oldmsp"))
	if err != nil {
		t.Fatal(err)
	}
	if s.Active("oldmsp") || !s.Active("newmsp") {
		t.Fatal("the old provider's token is still active, or the new one was revoked")
	}
	if got := r.Outputs["values"].Index(str("left")).AsString(); got != `["newmsp"]` {
		t.Fatalf("outputs: %s", got)
	}
	if p, err := h.Plan(ctx, "request", revoke("oldmsp"), nil); err != nil || p.Kind != sdk.NoChange {
		t.Fatalf("second plan: %+v %v", p, err)
	}
}

// An API that answers 204 and changes nothing: the step fails, saying so.
func TestConditionThatNeverHolds(t *testing.T) {
	s := rmmlab.Start(t, admin, "oldmsp")
	s.IgnoreRevoke = true
	_, err := harness(t, s, nil).Run(context.Background(), "request", revoke("oldmsp"))
	if err == nil || !strings.Contains(err.Error(), "the check still does not hold") {
		t.Fatalf("a revoke that does not take: %v", err)
	}
}

// 429 with Retry-After is waited for; a wrong token, a wrong CA and plain
// http to another host are clear errors that never show the token.
func TestRetriesAndRefusals(t *testing.T) {
	ctx := context.Background()
	s := rmmlab.Start(t, admin, "oldmsp")
	s.Throttle = 2
	if _, err := harness(t, s, nil).Run(ctx, "request", revoke("oldmsp")); err != nil || s.Active("oldmsp") {
		t.Fatalf("throttled: %v", err)
	}
	s2 := rmmlab.Start(t, admin, "oldmsp")
	h := harness(t, s2, map[string]cty.Value{"headers": cty.MapVal(map[string]cty.Value{"Authorization": str("Bearer wrong")})})
	if _, err := h.Run(ctx, "request", revoke("oldmsp")); err == nil || !strings.Contains(err.Error(), "answered 401") {
		t.Errorf("a wrong token: %v", err)
	}
	other := rmmlab.Start(t, admin)
	_, err := harness(t, s2, map[string]cty.Value{"ca_file": str(other.CAFile)}).Plan(ctx, "request", revoke("oldmsp"), nil)
	if err == nil || !strings.Contains(err.Error(), "not signed by a trusted CA") || strings.Contains(err.Error(), admin) {
		t.Errorf("a wrong CA: %v", err)
	}
	_, err = harness(t, s2, map[string]cty.Value{"base_url": str("http://rmm.example.com/api")}).Plan(ctx, "request", revoke("oldmsp"), nil)
	if err == nil || !strings.Contains(err.Error(), "only https") {
		t.Errorf("plain http: %v", err)
	}
	if !s2.Active("oldmsp") {
		t.Fatal("a refused request changed something")
	}
}
