package entra

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"

	"github.com/switchover/switchover/plugins/sdk/sdkhttp"
)

// Every Graph request of the plugin goes through one dispatcher, which the
// step instances the engine runs in parallel share. When requests queue up
// (the calls in flight are full, or Graph asked to wait with Retry-After),
// the dispatcher sends them together as one JSON $batch of up to 20, and
// reads of single users become one $filter=id in (...) listing of up to 15:
// a tenant's throttle counts each request of a batch, so what saves its
// budget is asking for many users at once, and what saves time is fewer
// round trips. A request alone is sent as it is.
const (
	batchMax     = 20 // Graph's limit of requests in one $batch
	inMax        = 15 // Graph's limit of values of an `in` filter
	callsInFight = 4  // HTTP calls in flight at once

	congestion = 10 * time.Second      // how long a 429 counts as "throttled"
	linger     = 20 * time.Millisecond // how long requests gather then
)

// job is one Graph request waiting for its answer.
type job struct {
	ctx     context.Context
	method  string
	path    string // under /v1.0: "/users/x?$select=..."
	hdr     http.Header
	body    []byte
	attempt int
	// userKey is set for a read of one user (by id or UPN) that may be
	// asked for together with others.
	userKey string
	done    chan answer
}

// answer is Graph's answer to one request.
type answer struct {
	status int
	header http.Header
	body   []byte
	err    error
}

// subRequest is one request of a call: a job, or several user reads.
type subRequest struct {
	jobs   []*job
	method string
	path   string
	hdr    http.Header
	body   []byte
	byUPN  bool // a coalesced read by userPrincipalName, else by id
}

type dispatcher struct {
	g     *graph
	mu    sync.Mutex
	queue []*job
	pause time.Time // no call before this (Retry-After)
	// throttledAt is the last 429: for a while after it, calls wait
	// linger for requests to gather.
	throttledAt time.Time
	wake        chan struct{}
	slots       chan struct{}
	once        sync.Once
}

func newDispatcher(g *graph) *dispatcher {
	return &dispatcher{g: g, wake: make(chan struct{}, 1), slots: make(chan struct{}, callsInFight)}
}

var guidRe = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)

// submit queues a job and waits for its answer.
func (d *dispatcher) submit(j *job) answer {
	j.done = make(chan answer, 1)
	d.once.Do(func() { go d.loop() })
	d.push(j)
	select {
	case a := <-j.done:
		return a
	case <-j.ctx.Done():
		return answer{err: j.ctx.Err()}
	}
}

func (d *dispatcher) push(jobs ...*job) {
	d.mu.Lock()
	d.queue = append(d.queue, jobs...)
	d.mu.Unlock()
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

// loop sends what is queued: it waits for a free call and for the end of
// a pause first, so that requests gather meanwhile.
func (d *dispatcher) loop() {
	for {
		d.mu.Lock()
		empty := len(d.queue) == 0
		d.mu.Unlock()
		if empty {
			<-d.wake
			continue
		}
		d.slots <- struct{}{}
		for {
			d.mu.Lock()
			wait := time.Until(d.pause)
			d.mu.Unlock()
			if wait <= 0 {
				break
			}
			time.Sleep(wait)
		}
		d.mu.Lock()
		throttled := time.Since(d.throttledAt) < congestion
		d.mu.Unlock()
		if throttled {
			// The tenant's budget, not the round trips, is what limits
			// now: let the requests gather, so that each call carries
			// more of them (and more user reads share one listing).
			time.Sleep(linger)
		}
		subs := d.take()
		if len(subs) == 0 {
			<-d.slots
			continue
		}
		go func() {
			defer func() { <-d.slots }()
			d.send(subs)
		}()
	}
}

// take removes up to batchMax requests from the queue; user reads join
// a listing of up to inMax users of the same kind of key.
func (d *dispatcher) take() []*subRequest {
	d.mu.Lock()
	defer d.mu.Unlock()
	var subs []*subRequest
	open := map[bool]*subRequest{} // the listing being filled, by byUPN
	rest := d.queue[:0]
	for _, j := range d.queue {
		if err := j.ctx.Err(); err != nil {
			j.done <- answer{err: err}
			continue
		}
		if j.userKey != "" {
			byUPN := !guidRe.MatchString(j.userKey)
			if s := open[byUPN]; s != nil && len(s.jobs) < inMax {
				s.jobs = append(s.jobs, j)
				continue
			}
			if len(subs) < batchMax {
				s := &subRequest{jobs: []*job{j}, method: "GET", byUPN: byUPN}
				open[byUPN] = s
				subs = append(subs, s)
				continue
			}
		} else if len(subs) < batchMax {
			subs = append(subs, &subRequest{jobs: []*job{j}, method: j.method, path: j.path, hdr: j.hdr, body: j.body})
			continue
		}
		rest = append(rest, j)
	}
	d.queue = rest
	for _, s := range subs {
		if s.path == "" {
			s.path = userReadPath(s)
		}
	}
	return subs
}

// userReadPath is the request for the user reads of s: the user itself
// when there is one, else a listing by `in`.
func userReadPath(s *subRequest) string {
	if len(s.jobs) == 1 {
		return "/users/" + url.PathEscape(s.jobs[0].userKey) + "?$select=" + userSelect
	}
	var keys []string
	seen := map[string]bool{}
	for _, j := range s.jobs {
		if k := strings.ToLower(j.userKey); !seen[k] {
			seen[k] = true
			keys = append(keys, quoteOData(j.userKey))
		}
	}
	prop := "id"
	if s.byUPN {
		prop = "userPrincipalName"
	}
	q := url.Values{"$filter": {prop + " in (" + strings.Join(keys, ",") + ")"}, "$select": {userSelect}, "$top": {"999"}}
	return "/users?" + q.Encode()
}

// send makes one HTTP call for subs: the request itself, or a $batch.
func (d *dispatcher) send(subs []*subRequest) {
	// A call for one request ends with that request's context; a call for
	// several, with the client's timeout.
	ctx := context.Background()
	if len(subs) == 1 && len(subs[0].jobs) == 1 {
		ctx = subs[0].jobs[0].ctx
	}
	ctx, cancel := context.WithTimeout(ctx, d.g.http.Timeout+time.Minute)
	defer cancel()
	var answers []answer
	if len(subs) == 1 {
		s := subs[0]
		answers = []answer{d.g.roundTrip(ctx, s.method, d.g.endpoint+"/v1.0"+s.path, s.hdr, s.body)}
	} else {
		answers = d.g.batch(ctx, subs)
	}
	var again []*job
	for i, s := range subs {
		a := answers[i]
		if a.err == nil && (a.status == 429 || a.status == 503 || a.status == 504) && s.jobs[0].attempt < d.g.retries {
			wait := sdkhttp.RetryAfter(a.header.Get("Retry-After"), s.jobs[0].attempt, time.Second, 30*time.Second)
			d.mu.Lock()
			d.throttledAt = time.Now()
			if t := time.Now().Add(wait); t.After(d.pause) {
				d.pause = t
			}
			d.mu.Unlock()
			for _, j := range s.jobs {
				j.attempt++
				again = append(again, j)
			}
			continue
		}
		if s.jobs[0].userKey == "" || len(s.jobs) == 1 {
			for _, j := range s.jobs {
				j.done <- a
			}
			continue
		}
		d.answerReads(s, a)
	}
	if len(again) > 0 {
		d.mu.Lock()
		d.queue = append(again, d.queue...)
		d.mu.Unlock()
		d.push()
	}
}

// answerReads gives each user read of a listing its user, or a 404 as
// Graph answers a read of a user it does not have.
func (d *dispatcher) answerReads(s *subRequest, a answer) {
	var page struct {
		Value    []json.RawMessage `json:"value"`
		NextLink string            `json:"@odata.nextLink"`
	}
	if a.err == nil && a.status == 200 {
		if err := json.Unmarshal(a.body, &page); err != nil {
			a = answer{err: fmt.Errorf("GET /users: the listing of %d users is not JSON", len(s.jobs))}
		}
	}
	if a.err != nil || a.status != 200 {
		for _, j := range s.jobs {
			j.done <- a
		}
		return
	}
	if page.NextLink != "" {
		// Graph served fewer than asked: the rest through the dispatcher
		// (not from this call's slot, which it frees).
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), d.g.http.Timeout+time.Minute)
			defer cancel()
			values, err := d.g.rest(ctx, page.NextLink)
			if err != nil {
				for _, j := range s.jobs {
					j.done <- answer{err: err}
				}
				return
			}
			d.deliverReads(s, a, append(page.Value, values...))
		}()
		return
	}
	d.deliverReads(s, a, page.Value)
}

// rest are the items of the pages from a nextLink on.
func (g *graph) rest(ctx context.Context, next string) ([]json.RawMessage, error) {
	rel, err := g.relative(next)
	if err != nil {
		return nil, err
	}
	return g.all(ctx, rel, nil)
}

// deliverReads answers each user read of a listing.
func (d *dispatcher) deliverReads(s *subRequest, a answer, values []json.RawMessage) {
	found := map[string]json.RawMessage{}
	for _, raw := range values {
		var u user
		if json.Unmarshal(raw, &u) == nil {
			found[strings.ToLower(u.ID)] = raw
			found[strings.ToLower(u.UserPrincipalName)] = raw
		}
	}
	for _, j := range s.jobs {
		if raw, ok := found[strings.ToLower(j.userKey)]; ok {
			j.done <- answer{status: 200, header: a.header, body: raw}
		} else {
			j.done <- answer{status: 404, header: a.header,
				body: []byte(`{"error":{"code":"Request_ResourceNotFound","message":"Resource '` + strings.ReplaceAll(j.userKey, `"`, "") + `' does not exist."}}`)}
		}
	}
}

// signInError is a failure to get a token: said as it is, not as the
// failure of the request that needed it.
type signInError struct{ error }

func (e signInError) Unwrap() error { return e.error }

// token is a token for Graph: the credential's (cached until it says it
// expires), or the fresh one taken after Graph refused that one.
func (g *graph) token(ctx context.Context) (string, error) {
	tok, err := g.cred.GetToken(ctx, policy.TokenRequestOptions{Scopes: []string{g.endpoint + "/.default"}})
	if err != nil {
		return "", tokenError(err)
	}
	g.tokMu.Lock()
	defer g.tokMu.Unlock()
	if g.refused[tok.Token] && g.fresh != "" {
		return g.fresh, nil
	}
	return tok.Token, nil
}

// freshToken is a token taken past the credential's cache, after Graph
// refused stale (401 InvalidAuthenticationToken: expired early, revoked,
// clock skew). Requests refused together share one new token: at most one
// token request per refusal.
func (g *graph) freshToken(ctx context.Context, stale string) (string, error) {
	g.refreshMu.Lock()
	defer g.refreshMu.Unlock()
	g.tokMu.Lock()
	if g.fresh != "" && g.fresh != stale && !g.refused[g.fresh] {
		f := g.fresh
		g.tokMu.Unlock()
		return f, nil
	}
	if g.refused == nil {
		g.refused = map[string]bool{}
	}
	g.refused[stale] = true
	g.tokMu.Unlock()
	// Claims make the credential ask the login host instead of its cache:
	// a token issued from now on.
	claims := fmt.Sprintf(`{"access_token":{"nbf":{"essential":true,"value":"%d"}}}`, time.Now().Unix())
	tok, err := g.cred.GetToken(ctx, policy.TokenRequestOptions{Scopes: []string{g.endpoint + "/.default"}, Claims: claims})
	if err != nil {
		return "", tokenError(err)
	}
	g.tokMu.Lock()
	g.fresh = tok.Token
	g.tokMu.Unlock()
	return tok.Token, nil
}

// tokenRefused: Graph answered that the token is not valid (any more).
func tokenRefused(a answer) bool {
	return a.err == nil && a.status == http.StatusUnauthorized && bytes.Contains(a.body, []byte("InvalidAuthenticationToken"))
}

// roundTrip sends one HTTP request to Graph. A token Graph refuses is
// replaced once by a fresh one; refused again, it is an error naming the
// app and the tenant.
func (g *graph) roundTrip(ctx context.Context, method, u string, hdr http.Header, body []byte) answer {
	tok, err := g.token(ctx)
	if err != nil {
		return answer{err: signInError{err}}
	}
	a := g.send(ctx, method, u, hdr, body, tok)
	if !tokenRefused(a) {
		return a
	}
	if tok, err = g.freshToken(ctx, tok); err != nil {
		return answer{err: signInError{err}}
	}
	if a = g.send(ctx, method, u, hdr, body, tok); tokenRefused(a) {
		return answer{err: signInError{fmt.Errorf("the Graph endpoint refuses a fresh token of app %s in tenant %s (401 InvalidAuthenticationToken): check the app's permissions and that it is not disabled", g.clientID, g.tenant)}}
	}
	return a
}

func (g *graph) send(ctx context.Context, method, u string, hdr http.Header, body []byte, tok string) answer {
	req, err := http.NewRequestWithContext(ctx, method, u, bytes.NewReader(body))
	if err != nil {
		return answer{err: err}
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	resp, err := g.http.Do(req)
	if err != nil {
		return answer{err: fmt.Errorf("%s", sdkhttp.ErrorText(err))}
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return answer{err: err}
	}
	return answer{status: resp.StatusCode, header: resp.Header, body: b}
}

// batch sends subs as one JSON $batch; the answers are in their order.
func (g *graph) batch(ctx context.Context, subs []*subRequest) []answer {
	type breq struct {
		ID      string            `json:"id"`
		Method  string            `json:"method"`
		URL     string            `json:"url"`
		Headers map[string]string `json:"headers,omitempty"`
		Body    json.RawMessage   `json:"body,omitempty"`
	}
	var in struct {
		Requests []breq `json:"requests"`
	}
	for i, s := range subs {
		r := breq{ID: strconv.Itoa(i + 1), Method: s.method, URL: s.path, Body: s.body}
		for k, v := range s.hdr {
			if r.Headers == nil {
				r.Headers = map[string]string{}
			}
			r.Headers[k] = strings.Join(v, ", ")
		}
		if s.body != nil {
			if r.Headers == nil {
				r.Headers = map[string]string{}
			}
			r.Headers["Content-Type"] = "application/json"
		}
		in.Requests = append(in.Requests, r)
	}
	payload, _ := json.Marshal(in)
	all := func(a answer) []answer {
		out := make([]answer, len(subs))
		for i := range out {
			out[i] = a
		}
		return out
	}
	a := g.roundTrip(ctx, "POST", g.endpoint+"/v1.0/$batch", nil, payload)
	if a.err != nil || a.status != 200 {
		// Throttled as a whole, or refused: every request gets that answer.
		return all(a)
	}
	var outer struct {
		Responses []struct {
			ID      string            `json:"id"`
			Status  int               `json:"status"`
			Headers map[string]string `json:"headers"`
			Body    json.RawMessage   `json:"body"`
		} `json:"responses"`
	}
	if err := json.Unmarshal(a.body, &outer); err != nil {
		return all(answer{err: fmt.Errorf("POST /$batch: the answer is not JSON: %v", err)})
	}
	out := make([]answer, len(subs))
	got := make([]bool, len(subs))
	for _, r := range outer.Responses {
		i, err := strconv.Atoi(r.ID)
		if err != nil || i < 1 || i > len(subs) || got[i-1] {
			continue
		}
		h := http.Header{}
		for k, v := range r.Headers {
			h.Set(k, v)
		}
		if h.Get("request-id") == "" {
			h.Set("request-id", a.header.Get("request-id"))
		}
		got[i-1] = true
		out[i-1] = answer{status: r.Status, header: h, body: r.Body}
	}
	for i := range out {
		if !got[i] {
			out[i] = answer{err: fmt.Errorf("POST /$batch: Graph gave no answer to request %d of %d", i+1, len(subs))}
		}
	}
	return out
}
