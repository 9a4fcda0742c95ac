// Package sdkhttp has what plugins that talk HTTP share: a verified TLS
// configuration with an optional CA file, Retry-After, the https-only URL
// rule, and network and TLS errors said in one line.
package sdkhttp

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"
)

// TLSConfig verifies certificates against the system's CAs, or against
// caFile's (added to the system's when addToSystem).
func TLSConfig(caFile string, addToSystem bool) (*tls.Config, error) {
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	if caFile == "" {
		return tc, nil
	}
	b, err := os.ReadFile(caFile)
	if err != nil {
		return nil, fmt.Errorf("ca_file: %v", err)
	}
	pool := x509.NewCertPool()
	if addToSystem {
		if sys, err := x509.SystemCertPool(); err == nil && sys != nil {
			pool = sys
		}
	}
	if !pool.AppendCertsFromPEM(b) {
		return nil, fmt.Errorf("ca_file %s holds no PEM certificate", caFile)
	}
	tc.RootCAs = pool
	return tc, nil
}

// Transport is an HTTP transport with tc and pooled connections.
func Transport(tc *tls.Config) *http.Transport {
	return &http.Transport{TLSClientConfig: tc, ForceAttemptHTTP2: true, MaxIdleConnsPerHost: 32,
		DialContext: (&net.Dialer{Timeout: 10 * time.Second}).DialContext, TLSHandshakeTimeout: 10 * time.Second}
}

// CheckURL allows https, and plain http only to this machine's loopback.
func CheckURL(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return nil, fmt.Errorf("%q is not a URL", raw)
	}
	switch u.Scheme {
	case "https":
		return u, nil
	case "http":
		if h := u.Hostname(); h == "127.0.0.1" || h == "localhost" || h == "::1" {
			return u, nil
		}
	}
	return nil, fmt.Errorf("%s: only https (plain http only to this machine's loopback)", u.Redacted())
}

// RetryAfter is how long to wait before retry number attempt (from 0):
// Retry-After (seconds or an HTTP date) when given, else base doubled each
// time; never more than limit.
func RetryAfter(header string, attempt int, base, limit time.Duration) time.Duration {
	if s, err := strconv.Atoi(strings.TrimSpace(header)); err == nil && s >= 0 {
		return min(time.Duration(s)*time.Second, limit)
	}
	if t, err := http.ParseTime(header); err == nil {
		return min(max(time.Until(t), 0), limit)
	}
	return min(base<<attempt, limit)
}

// ErrorText says a transport error in one line: an untrusted or misnamed
// certificate, a host that does not answer.
func ErrorText(err error) string {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	var ua x509.UnknownAuthorityError
	if errors.As(err, &ua) || strings.Contains(err.Error(), "certificate signed by unknown authority") {
		return "the server's certificate is not signed by a trusted CA (set ca_file): refused"
	}
	var hn x509.HostnameError
	if errors.As(err, &hn) {
		return "the server's certificate does not name it: refused"
	}
	var oe *net.OpError
	if errors.As(err, &oe) && oe.Err != nil {
		return "cannot reach the server: " + oe.Err.Error()
	}
	return err.Error()
}

// SameOrigin: a and b name the same scheme, host and port, after the
// spellings that mean the same are made one (scheme and host case, the
// default port, "localhost", "127.0.0.1" and "::1").
func SameOrigin(a, b *url.URL) bool {
	return strings.EqualFold(a.Scheme, b.Scheme) && hostKey(a) == hostKey(b)
}

func hostKey(u *url.URL) string {
	h := strings.ToLower(strings.TrimSuffix(u.Hostname(), "."))
	if ip := net.ParseIP(h); h == "localhost" || ip != nil && ip.IsLoopback() {
		h = "loopback"
	}
	port := u.Port()
	if port == "" {
		switch strings.ToLower(u.Scheme) {
		case "https":
			port = "443"
		case "http":
			port = "80"
		}
	}
	return h + ":" + port
}

// CheckRedirect follows a redirect only within the origin of the request
// that was sent first (the one that carries the token): never to another
// scheme (no downgrade to http), host or port, whose answer would be
// taken as the server's and which would receive the credentials.
func CheckRedirect(req *http.Request, via []*http.Request) error {
	if len(via) >= 5 {
		return fmt.Errorf("stopped after %d redirects", len(via))
	}
	if !SameOrigin(req.URL, via[0].URL) {
		return fmt.Errorf("%s redirected to %s://%s: refused (a redirect to another origin would carry the credentials)", via[0].URL.Redacted(), req.URL.Scheme, req.URL.Host)
	}
	return nil
}

// Client is an HTTP client with tc and pooled connections that never
// follows a redirect to another origin (CheckRedirect).
func Client(tc *tls.Config, timeout time.Duration) *http.Client {
	return &http.Client{Timeout: timeout, Transport: Transport(tc), CheckRedirect: CheckRedirect}
}
