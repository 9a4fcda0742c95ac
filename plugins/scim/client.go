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
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/switchover/switchover/plugins/sdk/sdkhttp"
)

// client talks to one SCIM service provider.
type client struct {
	base       *url.URL
	auth       string // the Authorization header
	http       *http.Client
	maxRetries int
	limiter    <-chan time.Time // nil: no rate limit
	pageSize   int

	cfgOnce sync.Once
	cfg     providerConfig
	cfgErr  error

	// listed are the users a find_users listing just read (by id), for the
	// plans of the steps that follow it in the same run: each is used once
	// (a verify, a plan after a conflict read the user again) and only
	// within listedFor. A listing is a read of the server as good as a GET
	// of each user; the change goes out with If-Match on what was read.
	listedMu sync.Mutex
	listed   map[string]listedUser
}

type listedUser struct {
	u  *user
	at time.Time
}

// listedFor is how long a listed user stands for a read of it.
const listedFor = time.Minute

// remember keeps the users a listing read.
func (c *client) remember(us []*user) {
	c.listedMu.Lock()
	defer c.listedMu.Unlock()
	if c.listed == nil {
		c.listed = map[string]listedUser{}
	}
	now := time.Now()
	for _, u := range us {
		c.listed[u.ID] = listedUser{u, now}
	}
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
	c := &client{base: u, auth: auth, http: sdkhttp.Client(tc, timeout), maxRetries: 5, pageSize: pageSize}
	if rateLimit > 0 {
		t := time.NewTicker(time.Duration(float64(time.Second) / rateLimit))
		c.limiter = t.C
	}
	return c, nil
}

// do sends one request (JSON body), retrying 429 and 503 after
// Retry-After (bounded), and decodes a JSON answer into out.
func (c *client) do(ctx context.Context, method, path string, hdr http.Header, body, out any) (http.Header, error) {
	var payload []byte
	if body != nil {
		var err error
		if payload, err = json.Marshal(body); err != nil {
			return nil, err
		}
	}
	for attempt := 0; ; attempt++ {
		if c.limiter != nil {
			select {
			case <-c.limiter:
			case <-ctx.Done():
				return nil, ctx.Err()
			}
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
			wait := sdkhttp.RetryAfter(resp.Header.Get("Retry-After"), attempt, 500*time.Millisecond, time.Minute)
			select {
			case <-time.After(wait):
				continue
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}
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
	ID          string `json:"id"`
	UserName    string `json:"userName"`
	DisplayName string `json:"displayName"`
	Active      *bool  `json:"active"`
	Emails      []struct {
		Value string `json:"value"`
	} `json:"emails"`
	Meta struct {
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

// getUser reads a user by id; nil (no error) when it does not exist.
func (c *client) getUser(ctx context.Context, id string) (*user, error) {
	var raw json.RawMessage
	_, err := c.do(ctx, "GET", "/Users/"+url.PathEscape(id), nil, nil, &raw)
	if statusOf(err) == http.StatusNotFound {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return decodeUser(raw)
}

// findUser finds a user by id or userName; nil when there is none. An id
// is one GET; a userName a filtered search (a full listing on a server
// without filters).
func (c *client) findUser(ctx context.Context, name string) (*user, error) {
	cfg, err := c.config(ctx)
	if err != nil {
		return nil, err
	}
	if !strings.ContainsAny(name, "@ ") {
		if u, err := c.getUser(ctx, name); err != nil || u != nil {
			return u, err
		}
	}
	var raws []json.RawMessage
	if cfg.Filter.Supported {
		raws, err = c.list(ctx, "Users", fmt.Sprintf("userName eq %s", quote(name)))
	} else {
		raws, err = c.list(ctx, "Users", "")
	}
	if err != nil {
		return nil, err
	}
	for _, r := range raws {
		u, err := decodeUser(r)
		if err == nil && (strings.EqualFold(u.UserName, name) || u.ID == name) {
			return u, nil
		}
	}
	if strings.ContainsAny(name, "@ ") {
		// An id with an @ in it, on a server whose filter did not match it.
		return c.getUser(ctx, name)
	}
	return nil, nil
}

func quote(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}
