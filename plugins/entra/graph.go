// Package entra is the built-in `entra` plugin: it cuts the old
// provider out of the client's Microsoft 365 tenant over Microsoft Graph
// v1.0: a thin client over net/http with tokens from azidentity (not the
// Graph SDK, whose compile cost is very high).
package entra

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/cloud"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"

	"github.com/switchover/switchover/plugins/sdk/sdkhttp"
)

// graph is a Graph v1.0 client.
type graph struct {
	endpoint string // https://graph.microsoft.com
	cred     azcore.TokenCredential
	http     *http.Client
	retries  int
	d        *dispatcher
	// who signs in where, for messages
	tenant, clientID string

	refreshMu sync.Mutex // one fresh token at a time
	tokMu     sync.Mutex
	refused   map[string]bool // tokens Graph refused
	fresh     string          // the token taken after the last refusal
}

type graphSettings struct {
	tenant, clientID, secret, authority, endpoint, caFile string
	certFile, certPassword                                string
	noDiscovery, deviceCode                               bool
	timeout                                               time.Duration
	prompt                                                func(string) // shows the device code's message
}

func newGraph(s graphSettings) (*graph, error) {
	tc, err := sdkhttp.TLSConfig(s.caFile, true)
	if err != nil {
		return nil, err
	}
	hc := sdkhttp.Client(tc, s.timeout) // never a redirect to another origin (with the token)
	co := azcore.ClientOptions{Transport: hc, Cloud: cloud.Configuration{ActiveDirectoryAuthorityHost: s.authority},
		Retry: policy.RetryOptions{MaxRetries: 2, RetryDelay: 300 * time.Millisecond}}
	var cred azcore.TokenCredential
	if s.deviceCode {
		c, err := azidentity.NewDeviceCodeCredential(&azidentity.DeviceCodeCredentialOptions{ClientOptions: co, TenantID: s.tenant, ClientID: s.clientID,
			DisableInstanceDiscovery: s.noDiscovery,
			UserPrompt: func(_ context.Context, m azidentity.DeviceCodeMessage) error {
				s.prompt(m.Message)
				return nil
			}})
		if err != nil {
			return nil, fmt.Errorf("the device code credential: %v", err)
		}
		cred = c
	} else if s.certFile != "" {
		pemData, err := os.ReadFile(s.certFile)
		if err != nil {
			return nil, fmt.Errorf("client_certificate_file: %v", err)
		}
		certs, key, err := azidentity.ParseCertificates(pemData, []byte(s.certPassword))
		if err != nil {
			return nil, fmt.Errorf("client_certificate_file %s: %v", s.certFile, err)
		}
		cred, err = azidentity.NewClientCertificateCredential(s.tenant, s.clientID, certs, key,
			&azidentity.ClientCertificateCredentialOptions{ClientOptions: co, DisableInstanceDiscovery: s.noDiscovery})
		if err != nil {
			return nil, fmt.Errorf("the client certificate credential: %v", err)
		}
	} else {
		c, err := azidentity.NewClientSecretCredential(s.tenant, s.clientID, s.secret,
			&azidentity.ClientSecretCredentialOptions{ClientOptions: co, DisableInstanceDiscovery: s.noDiscovery})
		if err != nil {
			return nil, fmt.Errorf("the client secret credential: %v", err)
		}
		cred = c
	}
	g := &graph{endpoint: strings.TrimRight(s.endpoint, "/"), cred: cred, http: hc, retries: 8, tenant: s.tenant, clientID: s.clientID}
	g.d = newDispatcher(g)
	return g, nil
}

// graphError is Graph's error, with its code, message and request-id.
type graphError struct {
	Status    int
	Code      string
	Message   string
	RequestID string
	What      string
}

func (e *graphError) Error() string {
	s := fmt.Sprintf("%s: Graph answered %d", e.What, e.Status)
	if e.Code != "" {
		s += " " + e.Code
	}
	if e.Message != "" {
		s += ": " + e.Message
	}
	if e.RequestID != "" {
		s += " (request-id " + e.RequestID + ")"
	}
	return s
}

func statusOf(err error) int {
	var ge *graphError
	if errors.As(err, &ge) {
		return ge.Status
	}
	return 0
}

// tokenError says in one line why no token came (never the secret).
func tokenError(err error) error {
	var ae *azidentity.AuthenticationFailedError
	if errors.As(err, &ae) {
		msg := ae.Error()
		for _, code := range []string{"AADSTS7000215", "AADSTS700016", "AADSTS90002", "AADSTS1002012", "AADSTS7000222", "AADSTS70000", "AADSTS70020"} {
			if strings.Contains(msg, code) {
				i := strings.Index(msg, code)
				line, _, _ := strings.Cut(msg[i:], "\n")
				return fmt.Errorf("signing in to the tenant failed: %s", strings.TrimSpace(strings.Trim(line, `",`)))
			}
		}
		if ae.RawResponse != nil && ae.RawResponse.StatusCode == 400 && strings.Contains(msg, "DeviceCodeCredential") {
			// MSAL has read the body already (looking for "pending").
			return fmt.Errorf("signing in to the tenant failed: the sign-in with the device code was declined, or the code expired (the token endpoint answered 400)")
		}
		if ae.RawResponse != nil {
			return fmt.Errorf("signing in to the tenant failed: the token endpoint answered %d", ae.RawResponse.StatusCode)
		}
	}
	s := err.Error()
	var ua x509.UnknownAuthorityError
	if errors.As(err, &ua) || strings.Contains(s, "certificate signed by unknown authority") {
		return fmt.Errorf("signing in to the tenant failed: the login host's certificate is not signed by a trusted CA (set ca_file): refused")
	}
	if i := strings.Index(s, "\n"); i > 0 {
		s = strings.TrimSuffix(strings.TrimSpace(s[:i]), ":")
	}
	return fmt.Errorf("signing in to the tenant failed: %s", s)
}

// do sends one Graph request (JSON) through the dispatcher, which retries
// 429, 503 and 504 after Retry-After with a bounded backoff.
func (g *graph) do(ctx context.Context, method, path string, hdr http.Header, body, out any) error {
	j := &job{ctx: ctx, method: method, path: strings.TrimPrefix(path, g.endpoint+"/v1.0"), hdr: hdr}
	if body != nil {
		var err error
		if j.body, err = json.Marshal(body); err != nil {
			return err
		}
	}
	return g.finish(g.d.submit(j), method+" "+strings.SplitN(j.path, "?", 2)[0], out)
}

// getUserJSON reads one user (by id or UPN), maybe together with others.
func (g *graph) getUserJSON(ctx context.Context, key string, out any) error {
	j := &job{ctx: ctx, method: "GET", userKey: key}
	return g.finish(g.d.submit(j), "GET /users/"+url.PathEscape(key), out)
}

// finish turns Graph's answer into out or an error with Graph's code,
// message and request-id.
func (g *graph) finish(a answer, what string, out any) error {
	if a.err != nil {
		var se signInError
		if errors.As(a.err, &se) {
			return se.error
		}
		if errors.Is(a.err, context.Canceled) || errors.Is(a.err, context.DeadlineExceeded) {
			return a.err
		}
		return fmt.Errorf("%s: %w", what, a.err)
	}
	if a.status >= 300 {
		ge := &graphError{Status: a.status, What: what, RequestID: a.header.Get("request-id")}
		var eb struct {
			Error struct {
				Code       string `json:"code"`
				Message    string `json:"message"`
				InnerError struct {
					RequestID string `json:"request-id"`
				} `json:"innerError"`
			} `json:"error"`
		}
		if json.Unmarshal(a.body, &eb) == nil {
			ge.Code, ge.Message = eb.Error.Code, eb.Error.Message
			if eb.Error.InnerError.RequestID != "" {
				ge.RequestID = eb.Error.InnerError.RequestID
			}
		}
		return ge
	}
	if out != nil && len(a.body) > 0 {
		if err := json.Unmarshal(a.body, out); err != nil {
			return fmt.Errorf("%s: the answer is not JSON: %v", what, err)
		}
	}
	return nil
}

// all pages through a collection by @odata.nextLink.
func (g *graph) all(ctx context.Context, path string, hdr http.Header) ([]json.RawMessage, error) {
	var out []json.RawMessage
	for next := path; next != ""; {
		var page struct {
			Value    []json.RawMessage `json:"value"`
			NextLink string            `json:"@odata.nextLink"`
		}
		if err := g.do(ctx, "GET", next, hdr, nil, &page); err != nil {
			return nil, err
		}
		out = append(out, page.Value...)
		if next = page.NextLink; next != "" {
			var err error
			if next, err = g.relative(next); err != nil {
				return nil, err
			}
		}
	}
	return out, nil
}

// relative is a nextLink as a path on the configured endpoint: the link
// may spell the endpoint's origin otherwise (host case, the default port,
// localhost for 127.0.0.1), but must be under its /v1.0/; the request goes
// to the configured endpoint, never to a host the link names.
func (g *graph) relative(link string) (string, error) {
	u, err := url.Parse(link)
	e, eerr := url.Parse(g.endpoint)
	if err != nil || eerr != nil {
		return "", fmt.Errorf("the nextLink %q Graph gave is not a URL: refused", link)
	}
	root := strings.TrimRight(e.Path, "/") + "/v1.0"
	if !sdkhttp.SameOrigin(u, e) || !strings.HasPrefix(u.EscapedPath(), root+"/") {
		return "", fmt.Errorf("the nextLink %s Graph gave leaves the Graph endpoint %s: refused", u.Redacted(), g.endpoint)
	}
	rel := strings.TrimPrefix(u.EscapedPath(), root)
	if u.RawQuery != "" {
		rel += "?" + u.RawQuery
	}
	return rel, nil
}

// listOf pages through a collection and decodes each item as T (items
// that do not decode are left out).
func listOf[T any](ctx context.Context, g *graph, path string, hdr http.Header) ([]T, error) {
	raws, err := g.all(ctx, path, hdr)
	if err != nil {
		return nil, err
	}
	out := make([]T, 0, len(raws))
	for _, r := range raws {
		var v T
		if json.Unmarshal(r, &v) == nil {
			out = append(out, v)
		}
	}
	return out, nil
}
