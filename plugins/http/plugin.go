// Package http is the built-in `http` plugin: one HTTP API call with
// plan/apply semantics, for every SaaS tool without a plugin of its own. A
// check request and a condition on its response say whether the work is
// done; if not, the apply requests run, and then the check must hold.
package http

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"time"

	"github.com/tidwall/gjson"
	"github.com/zclconf/go-cty/cty"

	"github.com/switchover/switchover/plugins/sdk"
	"github.com/switchover/switchover/plugins/sdk/sdkhttp"
)

type plugin struct {
	client  *http.Client
	base    string
	origin  *url.URL // base_url's: the only one the plugin's headers go to
	headers map[string]string
	retries int
	pacer   *sdkhttp.Pacer // every request of this plugin block: one pause after a 429
}

var requestType = cty.ObjectWithOptionalAttrs(map[string]cty.Type{
	"method":  cty.String,
	"url":     cty.String,
	"headers": cty.Map(cty.String),
	"body":    cty.String,
	"expect":  cty.List(cty.Number),
}, []string{"method", "headers", "body", "expect"})

var conditionType = cty.ObjectWithOptionalAttrs(map[string]cty.Type{
	"status": cty.Number,
	"path":   cty.String,
	"equals": cty.String,
	"exists": cty.Bool,
}, []string{"status", "path", "equals", "exists"})

// New returns the http plugin.
func New(version string) *sdk.Plugin {
	p := &plugin{}
	return &sdk.Plugin{
		Name:        "http",
		Version:     version,
		Description: "One HTTP API call with plan/apply semantics: a check request and a condition say whether the work is done; apply requests do it.",
		Config: []sdk.Attribute{
			{Name: "base_url", Type: cty.String, Description: "Prefix of relative request URLs."},
			{Name: "headers", Type: cty.Map(cty.String), Sensitive: true, Description: "Headers of every request to base_url's origin (such as Authorization), never sent to another scheme, host or port; sensitive."},
			{Name: "ca_file", Type: cty.String, Description: "PEM file of a CA to trust (default: the system's). Certificates are always verified."},
			{Name: "timeout", Type: sdk.DurationType, Description: "Timeout of one request (default 30s)."},
			{Name: "retries", Type: cty.Number, Description: "Retries of a request answered 429 or 5xx, after Retry-After (default 4)."},
		},
		ConfigureFunc: p.configure,
		TargetFunc: func(_ string, a sdk.Values) string {
			if p.client == nil {
				return ""
			}
			u, err := p.fullURL(callOf(a.Get("check")).url)
			if err != nil {
				return ""
			}
			pu, err := url.Parse(u)
			if err != nil {
				return ""
			}
			return "API " + pu.Scheme + "://" + pu.Host
		},
		Actions: []*sdk.Action{p.request()},
	}
}

func (p *plugin) configure(ctx context.Context, cfg sdk.Values) sdk.Diagnostics {
	timeout, diags := cfg.Duration("timeout", 30*time.Second)
	tc, err := sdkhttp.TLSConfig(cfg.String("ca_file"), false)
	if err != nil {
		return append(diags, sdk.AttributeErrorf("ca_file", "Invalid CA file", "%v", err)...)
	}
	p.client = sdkhttp.Client(tc, timeout)
	p.pacer = sdkhttp.NewPacer(0)
	p.base = strings.TrimRight(cfg.String("base_url"), "/")
	p.headers = map[string]string{}
	if cfg.Has("headers") {
		p.headers = cfg.StringMap("headers")
	}
	if p.base != "" {
		if p.origin, err = sdkhttp.CheckURL(p.base); err != nil {
			return append(diags, sdk.AttributeErrorf("base_url", "Invalid base_url", "%v", err)...)
		}
	} else if len(p.headers) > 0 {
		return append(diags, sdk.AttributeErrorf("headers", "Headers without base_url", "The plugin's headers go only to base_url's origin (scheme, host and port): set base_url.")...)
	}
	p.retries = 4
	if cfg.Has("retries") {
		p.retries = int(cfg.Int("retries"))
	}
	return diags
}

// call is one request as the runbook gives it.
type call struct {
	method, url, body string
	headers           map[string]string
	expect            []int
}

func callOf(v cty.Value) call {
	c := call{method: "GET", headers: map[string]string{}}
	if m := v.GetAttr("method"); !m.IsNull() {
		c.method = strings.ToUpper(m.AsString())
	}
	c.url = v.GetAttr("url").AsString()
	if b := v.GetAttr("body"); !b.IsNull() {
		c.body = b.AsString()
	}
	if h := v.GetAttr("headers"); !h.IsNull() {
		for k, hv := range h.AsValueMap() {
			c.headers[k] = hv.AsString()
		}
	}
	if e := v.GetAttr("expect"); !e.IsNull() {
		for _, x := range e.AsValueSlice() {
			n, _ := x.AsBigFloat().Int64()
			c.expect = append(c.expect, int(n))
		}
	}
	return c
}

func (p *plugin) fullURL(u string) (string, error) {
	if !strings.Contains(u, "://") {
		if p.base == "" {
			return "", fmt.Errorf("%q is a relative URL and the plugin has no base_url", u)
		}
		u = p.base + "/" + strings.TrimLeft(u, "/")
	}
	if _, err := sdkhttp.CheckURL(u); err != nil {
		return "", err
	}
	return u, nil
}

type response struct {
	status int
	body   []byte
	// withheld: the plugin's headers were not sent (another origin)
	withheld string
}

// send sends a request, retrying 429 and 5xx after Retry-After.
func (p *plugin) send(ctx context.Context, c call) (*response, error) {
	u, err := p.fullURL(c.url)
	if err != nil {
		return nil, err
	}
	what := c.method + " " + redactURL(u)
	for attempt := 0; ; attempt++ {
		if err := p.pacer.Wait(ctx); err != nil {
			return nil, err
		}
		req, err := http.NewRequestWithContext(ctx, c.method, u, bytes.NewReader([]byte(c.body)))
		if err != nil {
			return nil, fmt.Errorf("%s: %v", what, err)
		}
		withheld := ""
		if p.origin != nil && sdkhttp.SameOrigin(req.URL, p.origin) {
			for k, v := range p.headers {
				req.Header.Set(k, v)
			}
		} else if len(p.headers) > 0 {
			withheld = fmt.Sprintf(" (the plugin's headers go only to %s://%s, not to %s://%s)", p.origin.Scheme, p.origin.Host, req.URL.Scheme, req.URL.Host)
		}
		for k, v := range c.headers {
			req.Header.Set(k, v)
		}
		if c.body != "" && req.Header.Get("Content-Type") == "" {
			req.Header.Set("Content-Type", "application/json")
		}
		resp, err := p.client.Do(req)
		if err != nil {
			return nil, fmt.Errorf("%s: %v", what, sdkhttp.ErrorText(err))
		}
		b, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
		resp.Body.Close()
		if err != nil {
			return nil, fmt.Errorf("%s: reading the answer: %v", what, err)
		}
		if (resp.StatusCode == 429 || resp.StatusCode >= 500) && attempt < p.retries {
			wait := sdkhttp.RetryAfter(resp.Header.Get("Retry-After"), attempt, 250*time.Millisecond, 30*time.Second)
			if resp.StatusCode == 429 {
				p.pacer.Throttled(wait) // every request of this block waits
				continue
			}
			select {
			case <-time.After(wait):
				continue
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}
		p.pacer.Accepted()
		return &response{status: resp.StatusCode, body: b, withheld: withheld}, nil
	}
}

// redactURL keeps a query's values out of messages (tokens travel there).
func redactURL(u string) string {
	pu, err := url.Parse(u)
	if err != nil {
		return u
	}
	if pu.RawQuery != "" {
		pu.RawQuery = "…"
	}
	pu.User = nil
	return pu.String()
}

// holds evaluates the condition on a response: why it does not hold, or "".
func holds(cond cty.Value, r *response) string {
	want := 200
	if s := cond.GetAttr("status"); !s.IsNull() {
		n, _ := s.AsBigFloat().Int64()
		want = int(n)
	}
	if r.status != want {
		return fmt.Sprintf("status %d, not %d%s", r.status, want, r.withheld)
	}
	path := cond.GetAttr("path")
	if path.IsNull() {
		return ""
	}
	res := gjson.GetBytes(r.body, path.AsString())
	if strings.Contains(path.AsString(), ")#") {
		return holdsForEach(cond, path.AsString(), res)
	}
	if e := cond.GetAttr("exists"); !e.IsNull() {
		if res.Exists() != e.True() {
			if e.True() {
				return fmt.Sprintf("%s is absent", path.AsString())
			}
			return fmt.Sprintf("%s is present", path.AsString())
		}
	}
	if eq := cond.GetAttr("equals"); !eq.IsNull() && res.String() != eq.AsString() {
		if !res.Exists() {
			return fmt.Sprintf("%s is absent, not %q", path.AsString(), eq.AsString())
		}
		return fmt.Sprintf("%s is %q, not %q", path.AsString(), truncate(res.String()), eq.AsString())
	}
	return ""
}

// holdsForEach: a path with #(...)# yields every match, and the condition
// holds only for all of them: equals when each equals (and there is one),
// exists when there is one.
func holdsForEach(cond cty.Value, path string, res gjson.Result) string {
	all := res.Array()
	if e := cond.GetAttr("exists"); !e.IsNull() && (len(all) > 0) != e.True() {
		if e.True() {
			return fmt.Sprintf("%s matches nothing", path)
		}
		return fmt.Sprintf("%s matches %d", path, len(all))
	}
	eq := cond.GetAttr("equals")
	if eq.IsNull() {
		return ""
	}
	if len(all) == 0 {
		return fmt.Sprintf("%s matches nothing, not %q", path, eq.AsString())
	}
	for i, v := range all {
		if v.String() != eq.AsString() {
			return fmt.Sprintf("match %d of %d of %s is %q, not %q", i+1, len(all), path, truncate(v.String()), eq.AsString())
		}
	}
	return ""
}

// firstMatchOnly: a #(...) query without its # takes the first match
// only (a revoked decoy of the same name would hide the real one).
func firstMatchOnly(path string) bool {
	return strings.Count(path, "#(") > strings.Count(path, ")#")
}

func truncate(s string) string {
	if len(s) > 80 {
		return s[:80] + "…"
	}
	return s
}

func (p *plugin) request() *sdk.Action {
	check := func(ctx context.Context, a sdk.Values) (*response, string, error) {
		r, err := p.send(ctx, callOf(a.Get("check")))
		if err != nil {
			return nil, "", err
		}
		return r, holds(a.Get("condition"), r), nil
	}
	outputs := func(a sdk.Values, r *response) map[string]cty.Value {
		vals := map[string]cty.Value{}
		if a.Has("outputs") {
			names := a.StringMap("outputs")
			keys := make([]string, 0, len(names))
			for k := range names {
				keys = append(keys, k)
			}
			sort.Strings(keys)
			for _, k := range keys {
				vals[k] = cty.StringVal(gjson.GetBytes(r.body, names[k]).String())
			}
		}
		values := cty.MapValEmpty(cty.String)
		if len(vals) > 0 {
			values = cty.MapVal(vals)
		}
		return map[string]cty.Value{"status": cty.NumberIntVal(int64(r.status)), "values": values}
	}
	plan := func(ctx context.Context, req *sdk.PlanRequest) *sdk.PlanResponse {
		a := req.Attributes
		if !a.AllKnown() {
			return sdk.Changef("decided during apply: some attributes are known only after earlier steps ran")
		}
		r, why, err := check(ctx, a)
		if err != nil {
			return sdk.PlanError(err)
		}
		var warn sdk.Diagnostics
		if path := a.Get("condition").GetAttr("path"); !path.IsNull() && firstMatchOnly(path.AsString()) {
			warn = append(warn, sdk.Diagnostic{Severity: sdk.Warning, Summary: "The condition looks at the first match only",
				Detail: fmt.Sprintf("%s: a #(...) query takes the first match; with #(...)# the condition must hold for every match (two tokens of one name, one revoked, one not).", path.AsString())})
		}
		chk := callOf(a.Get("check"))
		if why == "" {
			res := sdk.NoChangef("the check holds: %s %s answered %d", chk.method, redactURL(chk.url), r.status)
			res.Outputs = outputs(a, r)
			res.Diagnostics = warn
			return res
		}
		var calls []string
		for _, v := range a.Get("apply").AsValueSlice() {
			c := callOf(v)
			calls = append(calls, c.method+" "+redactURL(c.url))
		}
		res := sdk.Changef("the check does not hold (%s): %s", why, strings.Join(calls, ", then "))
		res.Details = calls
		res.Diagnostics = warn
		return res
	}
	apply := func(ctx context.Context, req *sdk.ApplyRequest, ev sdk.Events) *sdk.ApplyResponse {
		a := req.Attributes
		for i, v := range a.Get("apply").AsValueSlice() {
			c := callOf(v)
			r, err := p.send(ctx, c)
			if err != nil {
				return sdk.ApplyError(err)
			}
			ok := r.status >= 200 && r.status < 300
			if len(c.expect) > 0 {
				ok = false
				for _, s := range c.expect {
					ok = ok || r.status == s
				}
			}
			if !ok {
				return sdk.ApplyError(fmt.Errorf("apply request %d (%s %s) answered %d%s: %s", i+1, c.method, redactURL(c.url), r.status, r.withheld, truncate(strings.TrimSpace(string(r.body)))))
			}
		}
		r, why, err := check(ctx, a)
		if err != nil {
			return sdk.ApplyError(err)
		}
		if why != "" {
			return sdk.ApplyError(fmt.Errorf("the apply requests succeeded, but the check still does not hold: %s", why))
		}
		return &sdk.ApplyResponse{Summary: fmt.Sprintf("done; the check holds (%d)", r.status), Outputs: outputs(a, r)}
	}
	return &sdk.Action{Name: "request",
		Description: "A check request and a condition (status, and a JSON value by a gjson path: equals or exists) say whether the work is done; if not, the apply requests run in order (each must answer 2xx, or one of its expect codes), and then the check must hold. Headers and bodies may hold sensitive values; they are redacted everywhere.",
		Attributes: []sdk.Attribute{
			{Name: "check", Type: requestType, Required: true, Description: "{ method (default GET), url, headers, body }: observes whether the work is done."},
			{Name: "condition", Type: conditionType, Required: true, Description: "{ status (default 200), path (gjson, e.g. tokens.#(name==\"oldmsp\")#.active: with #(...)# it must hold for every match), equals | exists }: holds when done."},
			{Name: "apply", Type: cty.List(requestType), Required: true, Description: "The requests that do the work: { method, url, headers, body, expect }."},
			{Name: "outputs", Type: cty.Map(cty.String), Description: "Output name -> gjson path in the check's answer."},
		},
		Outputs:  []sdk.Output{{Name: "status", Type: cty.Number}, {Name: "values", Type: cty.Map(cty.String), Description: "The values named in outputs."}},
		PlanFunc: plan, ApplyFunc: apply}
}
