// Package scim is the built-in `scim` plugin: it deprovisions the old
// provider's accounts in SaaS tools through SCIM 2.0 (RFC 7643/7644):
// finds them, deactivates or deletes them, takes them out of groups, with
// ETags where the server gives them so a concurrent change is detected, not
// overwritten.
package scim

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/switchover/switchover/plugins/sdk/sdkhttp"
)

// client talks to one SCIM service provider. Every instance of every step
// of one plugin configuration shares it: its pacer (one rate limit, one
// pause after a 429), what the server refused, and what this run listed.
type client struct {
	base       *url.URL
	auth       string // the Authorization header
	http       *http.Client
	maxRetries int
	pacer      *sdkhttp.Pacer
	pageSize   int

	cfgOnce sync.Once
	cfg     providerConfig
	cfgErr  error

	// filterRefused: the server said it supports filters but refused one
	// (400 invalidFilter, 501): from then on this run lists and filters
	// here, without asking again.
	filterRefused atomic.Bool

	// listed are the users a find_users listing just read (by id), for the
	// plans of the steps that follow it in the same run: each is used once
	// (a verify, a plan after a conflict read the user again) and only
	// within listedFor. A listing is a read of the server as good as a GET
	// of each user; the change goes out with If-Match on what was read.
	listedMu sync.Mutex
	listed   map[string]listedUser
	// names: userName (lower case) -> ids, from every listing of this run;
	// complete when one of them listed every user (then a name missing
	// here is nobody's).
	names    map[string][]string
	complete bool
	// all is the last listing of every user (within listedFor): a server
	// without filters is listed once per run, not once per lookup.
	all   []json.RawMessage
	allAt time.Time
}

type listedUser struct {
	u  *user
	at time.Time
}

// listedFor is how long a listed user stands for a read of it.
const listedFor = time.Minute

// remember keeps the users a listing read (complete: every user).
func (c *client) remember(us []*user, complete bool) {
	c.listedMu.Lock()
	defer c.listedMu.Unlock()
	if c.listed == nil {
		c.listed, c.names = map[string]listedUser{}, map[string][]string{}
	}
	now := time.Now()
	for _, u := range us {
		c.listed[u.ID] = listedUser{u, now}
		k := strings.ToLower(u.UserName)
		if !slices.Contains(c.names[k], u.ID) {
			c.names[k] = append(c.names[k], u.ID)
		}
	}
	c.complete = c.complete || complete
}

// recentlyListed is the user with this id as a listing read it within
// listedFor (nil otherwise); it is used up.
func (c *client) recentlyListed(id string) *user {
	c.listedMu.Lock()
	defer c.listedMu.Unlock()
	e, ok := c.listed[id]
	delete(c.listed, id)
	if !ok || time.Since(e.at) > listedFor {
		return nil
	}
	return e.u
}

// knownNames: the ids of the users with this userName as this run's
// listings saw them, and whether that is certain (a listing saw the name,
// or one listed every user).
func (c *client) knownNames(name string) ([]string, bool) {
	c.listedMu.Lock()
	defer c.listedMu.Unlock()
	ids, ok := c.names[strings.ToLower(name)]
	return slices.Clone(ids), ok || c.complete
}

type providerConfig struct {
	Patch  struct{ Supported bool } `json:"patch"`
	Filter struct {
		Supported  bool `json:"supported"`
		MaxResults int  `json:"maxResults"`
	} `json:"filter"`
	Etag struct{ Supported bool } `json:"etag"`
}

// scimError is a SCIM error response, said plainly.
type scimError struct {
	Status   int
	ScimType string
	Detail   string
	Method   string
	Path     string
}

func (e *scimError) Error() string {
	s := fmt.Sprintf("%s %s: the SCIM server answered %d %s", e.Method, e.Path, e.Status, http.StatusText(e.Status))
	if e.ScimType != "" {
		s += " (" + e.ScimType + ")"
	}
	if e.Detail != "" {
		s += ": " + e.Detail
	}
	switch e.Status {
	case http.StatusUnauthorized, http.StatusForbidden:
		s += " (check the token or credentials)"
	}
	return s
}

func statusOf(err error) int {
	var se *scimError
	if errors.As(err, &se) {
		return se.Status
	}
	return 0
}

func newClient(base, auth, caFile string, timeout time.Duration, rateLimit float64, pageSize int) (*client, error) {
	u, err := sdkhttp.CheckURL(strings.TrimRight(base, "/"))
	if err != nil {
		return nil, fmt.Errorf("base_url %v", err)
	}
	tc, err := sdkhttp.TLSConfig(caFile, false)
	if err != nil {
		return nil, err
	}
	return &client{base: u, auth: auth, http: sdkhttp.Client(tc, timeout), maxRetries: 8, pageSize: pageSize, pacer: sdkhttp.NewPacer(rateLimit)}, nil
}

// do sends one request (JSON body), paced with every other request of this
// configuration, retrying 429 and 503 after Retry-After (bounded; every
// worker waits it out), and decodes a JSON answer into out.
func (c *client) do(ctx context.Context, method, path string, hdr http.Header, body, out any) (http.Header, error) {
	var payload []byte
	if body != nil {
		var err error
		if payload, err = json.Marshal(body); err != nil {
			return nil, err
		}
	}
	for attempt := 0; ; attempt++ {
		if err := c.pacer.Wait(ctx); err != nil {
			return nil, err
		}
		req, err := http.NewRequestWithContext(ctx, method, c.base.String()+path, bytes.NewReader(payload))
		if err != nil {
			return nil, err
		}
		req.Header.Set("Accept", "application/scim+json, application/json")
		if payload != nil {
			req.Header.Set("Content-Type", "application/scim+json")
		}
		if c.auth != "" {
			req.Header.Set("Authorization", c.auth)
		}
		for k, vs := range hdr {
			req.Header[k] = vs
		}
		resp, err := c.http.Do(req)
		if err != nil {
			return nil, fmt.Errorf("%s %s: %v", method, path, sdkhttp.ErrorText(err))
		}
		b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
		resp.Body.Close()
		if err != nil {
			return nil, fmt.Errorf("%s %s: reading the answer: %v", method, path, err)
		}
		if (resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusServiceUnavailable) && attempt < c.maxRetries {
			c.pacer.Throttled(sdkhttp.RetryAfter(resp.Header.Get("Retry-After"), attempt, 500*time.Millisecond, time.Minute))
			continue
		}
		c.pacer.Accepted()
		if resp.StatusCode >= 300 {
			se := &scimError{Status: resp.StatusCode, Method: method, Path: path}
			var eb struct {
				ScimType string `json:"scimType"`
				Detail   string `json:"detail"`
			}
			if json.Unmarshal(b, &eb) == nil {
				se.ScimType, se.Detail = eb.ScimType, eb.Detail
			}
			return resp.Header, se
		}
		if out != nil && len(b) > 0 {
			if err := json.Unmarshal(b, out); err != nil {
				return resp.Header, fmt.Errorf("%s %s: the answer is not SCIM JSON: %v", method, path, err)
			}
		}
		return resp.Header, nil
	}
}

// config reads /ServiceProviderConfig once.
func (c *client) config(ctx context.Context) (providerConfig, error) {
	c.cfgOnce.Do(func() {
		_, c.cfgErr = c.do(ctx, "GET", "/ServiceProviderConfig", nil, nil, &c.cfg)
	})
	return c.cfg, c.cfgErr
}

// user is a SCIM User as the plugin needs it (the rest is kept raw for PUT).
type user struct {
	ID          string  `json:"id"`
	UserName    string  `json:"userName"`
	DisplayName string  `json:"displayName"`
	Active      *bool   `json:"active"`
	Emails      []email `json:"emails"`
	Meta        struct {
		Version string `json:"version"`
	} `json:"meta"`
	raw map[string]any
}

func (u *user) active() bool { return u.Active == nil || *u.Active }

type listResponse struct {
	TotalResults int               `json:"totalResults"`
	StartIndex   int               `json:"startIndex"`
	ItemsPerPage int               `json:"itemsPerPage"`
	Resources    []json.RawMessage `json:"Resources"`
}

// list pages through a resource type (startIndex/count), with filter when
// given (the caller checks the server supports it).
func (c *client) list(ctx context.Context, resource, filter string) ([]json.RawMessage, error) {
	var all []json.RawMessage
	start := 1
	for page := 0; page < 100000; page++ {
		q := url.Values{"startIndex": {strconv.Itoa(start)}, "count": {strconv.Itoa(c.pageSize)}}
		if filter != "" {
			q.Set("filter", filter)
		}
		var lr listResponse
		if _, err := c.do(ctx, "GET", "/"+resource+"?"+q.Encode(), nil, nil, &lr); err != nil {
			return nil, err
		}
		all = append(all, lr.Resources...)
		if len(lr.Resources) == 0 || len(all) >= lr.TotalResults {
			return all, nil
		}
		start += len(lr.Resources)
	}
	return nil, fmt.Errorf("listing %s: more than 100,000 pages", resource)
}

func decodeUser(raw json.RawMessage) (*user, error) {
	var u user
	if err := json.Unmarshal(raw, &u); err != nil {
		return nil, err
	}
	json.Unmarshal(raw, &u.raw)
	return &u, nil
}

// noSuchID: a GET by id answered 404, or 400 (a value no id can be:
// SCIMMY, like other servers, turns the id into a filter, and a value with
// a quote breaks it).
func noSuchID(err error) bool {
	st := statusOf(err)
	return st == http.StatusNotFound || st == http.StatusBadRequest
}

// getUser reads a user by id; nil (no error) when it does not exist.
func (c *client) getUser(ctx context.Context, id string) (*user, error) {
	var raw json.RawMessage
	_, err := c.do(ctx, "GET", "/Users/"+url.PathEscape(id), nil, nil, &raw)
	if noSuchID(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return decodeUser(raw)
}

// refusedFilter: the server refused a filter it says it supports (400
// invalidFilter, or 501): the run lists and filters here from then on.
func (c *client) refusedFilter(err error) bool {
	var se *scimError
	if !errors.As(err, &se) || !(se.Status == http.StatusNotImplemented || se.Status == http.StatusBadRequest && (se.ScimType == "invalidFilter" || strings.Contains(strings.ToLower(se.Detail), "filter"))) {
		return false
	}
	c.filterRefused.Store(true)
	return true
}

// filters: the server takes filters (it says so, and has not refused one
// in this run).
func (c *client) filters(ctx context.Context) (bool, error) {
	cfg, err := c.config(ctx)
	return err == nil && cfg.Filter.Supported && !c.filterRefused.Load(), err
}

// listAll lists every user, once within listedFor; the listing stands for
// a read of each user and names every userName.
func (c *client) listAll(ctx context.Context) ([]json.RawMessage, error) {
	c.listedMu.Lock()
	if c.all != nil && time.Since(c.allAt) < listedFor {
		defer c.listedMu.Unlock()
		return c.all, nil
	}
	c.listedMu.Unlock()
	raws, err := c.list(ctx, "Users", "")
	if err != nil {
		return nil, err
	}
	var us []*user
	for _, r := range raws {
		if u, err := decodeUser(r); err == nil {
			us = append(us, u)
		}
	}
	c.remember(us, true)
	c.listedMu.Lock()
	c.all, c.allAt = raws, time.Now()
	c.listedMu.Unlock()
	return raws, nil
}

// search lists the users filter selects, by the server, or (it has no
// filters, or refuses this one) every user, which the caller filters
// here: filtered says which, refused why the server's filter was not used.
func (c *client) search(ctx context.Context, filter string) (raws []json.RawMessage, filtered bool, refused error, err error) {
	ok, err := c.filters(ctx)
	if err != nil {
		return nil, false, nil, err
	}
	if ok {
		raws, err = c.list(ctx, "Users", filter)
		if err == nil || !c.refusedFilter(err) {
			return raws, true, nil, err
		}
		refused = err
	}
	raws, err = c.listAll(ctx)
	return raws, false, refused, err
}

// idsNamed: the ids of the users whose userName is name (case-insensitive).
func (c *client) idsNamed(ctx context.Context, name string) ([]string, error) {
	m, err := c.idsNamedMany(ctx, []string{name})
	return m[strings.ToLower(name)], err
}

// idsNamedMany: the ids of the users with each of these userNames (by the
// name in lower case), from this run's listings where they settle it, else
// by filters (userName eq, joined with or, 50 names a request), else (the
// server has none, or refuses them) by listing every user once.
func (c *client) idsNamedMany(ctx context.Context, names []string) (map[string][]string, error) {
	out := map[string][]string{}
	var unknown []string
	for _, n := range names {
		if ids, sure := c.knownNames(n); sure {
			out[strings.ToLower(n)] = ids
		} else if !slices.Contains(unknown, n) {
			unknown = append(unknown, n)
		}
	}
	for len(unknown) > 0 {
		chunk := unknown[:min(50, len(unknown))]
		var fs []string
		for _, n := range chunk {
			fs = append(fs, "userName eq "+quote(n))
		}
		raws, filtered, _, err := c.search(ctx, strings.Join(fs, " or "))
		if err != nil {
			return nil, err
		}
		if !filtered {
			break // every user was listed: the names are known now
		}
		var us []*user
		for _, r := range raws {
			if u, err := decodeUser(r); err == nil && slices.ContainsFunc(chunk, func(n string) bool { return strings.EqualFold(n, u.UserName) }) {
				us = append(us, u)
			}
		}
		c.remember(us, false)
		for _, n := range chunk {
			out[strings.ToLower(n)] = nil
		}
		for _, u := range us {
			k := strings.ToLower(u.UserName)
			out[k] = append(out[k], u.ID)
		}
		unknown = unknown[len(chunk):]
	}
	for _, n := range unknown {
		out[strings.ToLower(n)], _ = c.knownNames(n)
	}
	return out, nil
}

// readUser reads a user by id, as this run's listing read it (once) or
// now; nil when there is none.
func (c *client) readUser(ctx context.Context, id string) (*user, string, error) {
	if u := c.recentlyListed(id); u != nil {
		return u, "as listed", nil
	}
	u, err := c.getUser(ctx, id)
	return u, "as read now", err
}

// Lookup keys: what a runbook's value for a user is.
const (
	byID       = "id"
	byUserName = "user_name"
	byEither   = "" // either: a value that is one user's id and another's userName is refused
)

// findUser finds the user a runbook's value names, looked up by the
// attribute by says (or both); nil when there is none. A user is addressed
// by its id only after that lookup: a userName that is also another user's
// id, or a userName two users share, is refused with the candidates named.
func (c *client) findUser(ctx context.Context, value, by string) (*user, string, error) {
	var found *user
	how := ""
	if by != byUserName {
		u, h, err := c.readUser(ctx, value)
		if err != nil {
			return nil, "", err
		}
		found, how = u, h
	}
	if by == byID {
		return found, how, nil
	}
	ids, err := c.idsNamed(ctx, value)
	if err != nil {
		return nil, "", err
	}
	switch {
	case len(ids) > 1:
		return nil, "", fmt.Errorf("%d users have the userName %q (ids %s): ambiguous, nothing done", len(ids), value, strings.Join(ids, ", "))
	case len(ids) == 0:
		return found, how, nil
	case found != nil && found.ID != ids[0]:
		return nil, "", fmt.Errorf("%q is the id of %s and the userName of another user (id %s): ambiguous, nothing done; say which with by = \"id\" or by = \"user_name\"", value, found.UserName, ids[0])
	case found != nil:
		return found, how, nil
	}
	return c.readUser(ctx, ids[0])
}

// quote is a SCIM filter string: JSON, without the HTML escapes (\u003c)
// that some servers' filter parsers do not read.
func quote(s string) string {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	enc.Encode(s)
	return strings.TrimSuffix(b.String(), "\n")
}
