package http

import (
	"context"
	"fmt"
	stdhttp "net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
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
	err = (&sdktest.Harness{P: New("test")}).Configure(ctx, map[string]cty.Value{"base_url": str("http://rmm.example.com/api")})
	if err == nil || !strings.Contains(err.Error(), "only https") {
		t.Errorf("plain http: %v", err)
	}
	if !s2.Active("oldmsp") {
		t.Fatal("a refused request changed something")
	}
}

// The plugin's headers (the API token) go only to base_url's origin: not
// to an absolute URL elsewhere, not along a redirect to plain http or
// another port; the redirected answer is not taken for the API's.
func TestHeadersStayWithTheirOrigin(t *testing.T) {
	ctx := context.Background()
	s := rmmlab.Start(t, admin, "oldmsp")
	var leaked atomic.Int32
	canary := httptest.NewServer(stdhttp.HandlerFunc(func(w stdhttp.ResponseWriter, r *stdhttp.Request) {
		if strings.Contains(r.Header.Get("Authorization"), admin) {
			leaked.Add(1)
		}
		fmt.Fprint(w, `{"tokens":[]}`)
	}))
	defer canary.Close()
	h := harness(t, s, nil)
	abs := revoke("oldmsp")
	abs["check"] = cty.ObjectVal(map[string]cty.Value{"url": str(canary.URL + "/api/v1/tokens")})
	abs["condition"] = cty.ObjectVal(map[string]cty.Value{"path": str(`tokens.#(name=="oldmsp")#.active`), "equals": str("false")})
	if p, err := h.Plan(ctx, "request", abs, nil); err != nil || p.Kind != sdk.Change || !strings.Contains(p.Summary, "matches nothing") {
		t.Fatalf("a check elsewhere: %+v %v", p, err)
	}
	// A redirect of the API to the canary (plain http, another port).
	s.RedirectTo = canary.URL
	if _, err := h.Plan(ctx, "request", revoke("oldmsp"), nil); err == nil || !strings.Contains(err.Error(), "refused") || strings.Contains(err.Error(), admin) {
		t.Fatalf("a redirect to another origin: %v", err)
	}
	if leaked.Load() != 0 {
		t.Fatalf("the token reached another origin %d times", leaked.Load())
	}
	if !s.Active("oldmsp") {
		t.Fatal("the token was revoked")
	}
	if err := (&sdktest.Harness{P: New("test")}).Configure(ctx, map[string]cty.Value{"headers": cty.MapVal(map[string]cty.Value{"Authorization": str("Bearer " + admin)})}); err == nil || !strings.Contains(err.Error(), "only to base_url's origin") {
		t.Fatalf("headers without base_url: %v", err)
	}
}

// A condition over every match (#(...)#): a revoked decoy of the same name
// does not make the check hold while the real token is active; a path
// that takes the first match only is warned about.
func TestConditionOverEveryMatch(t *testing.T) {
	body := []byte(`{"tokens":[{"name":"oldmsp","active":false},{"name":"oldmsp","active":true}]}`)
	cond := func(path string) cty.Value {
		return cty.ObjectVal(map[string]cty.Value{"path": str(path), "equals": str("false"), "status": cty.NullVal(cty.Number), "exists": cty.NullVal(cty.Bool)})
	}
	if why := holds(cond(`tokens.#(name=="oldmsp")#.active`), &response{status: 200, body: body}); !strings.Contains(why, "match 2 of 2") {
		t.Fatalf("every match: %q", why)
	}
	if why := holds(cond(`tokens.#(name=="oldmsp").active`), &response{status: 200, body: body}); why != "" {
		t.Fatalf("first match (the decoy): %q", why)
	}
	if !firstMatchOnly(`tokens.#(name=="oldmsp").active`) || firstMatchOnly(`tokens.#(name=="oldmsp")#.active`) {
		t.Fatal("firstMatchOnly")
	}
}
