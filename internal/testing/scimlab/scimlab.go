// Package scimlab starts a SCIM 2.0 server that others wrote (SCIMMY and
// its Express routers, npm, in plugins/scim/testdata/scimserver) for tests,
// behind a TLS front with its own CA, as a SaaS tool would be reached.
package scimlab

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchover/switchover/internal/testing/testca"
)

// Token is the bearer token every lab server accepts.
const Token = "scimlab-token-7f3a"

// Options of a server.
type Options struct {
	NoFilter bool // no filter support (advertised and enforced)
	NoPatch  bool // no PATCH support (advertised and enforced): PUT only
	ETags    bool // meta.version and If-Match
	Throttle int  // every Nth request is answered 429 (Retry-After: 1)
	// MaxResults is the largest page the server serves (default 50).
	MaxResults int
	// CPUs places the server on these CPUs (taskset's list, "0"); the
	// benchmark gives it a core of its own, as a SaaS runs elsewhere.
	CPUs string

	// Quirks of real SaaS endpoints, served by the TLS front:
	//
	// EqOnly: filters are advertised, but only one `attr eq "value"`
	// comparison is taken; anything else is 400 invalidFilter.
	EqOnly bool
	// RateLimit: requests per second (a bucket of one second's requests);
	// over it, 429 with Retry-After: 1.
	RateLimit float64
	// RequireIfMatch: PUT, PATCH and DELETE without If-Match are refused
	// with 428 (with ETags).
	RequireIfMatch bool
	// Patch204: a PATCH is answered 204 without a body.
	Patch204 bool
	// Before runs before each request (a test's concurrent edit); a URL
	// it returns is the answer, as a redirect.
	Before func(r *http.Request) string
}

// Server is one running SCIM server.
type Server struct {
	URL    string // https base URL (…/scim/v2) through the TLS front
	Direct string // http base URL of the node server itself, for a test's setup
	CAFile string
	cmd    *exec.Cmd
	stdin  io.WriteCloser

	mu        sync.Mutex
	requests  map[string]int // through the front, by method
	throttled int
	tokens    float64
	filled    time.Time
}

// Requests is how many requests came through the front, by method (and
// "" for all of them), and how many of them were answered 429.
func (s *Server) Requests() (map[string]int, int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := map[string]int{}
	for k, v := range s.requests {
		m[k] = v
		m[""] += v
	}
	return m, s.throttled
}

// ResetCounts sets the counts of Requests to zero.
func (s *Server) ResetCounts() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.requests, s.throttled = map[string]int{}, 0
}

var eqOnly = regexp.MustCompile(`^\s*[A-Za-z][\w.:]*\s+eq\s+("([^"\\]|\\.)*"|true|false|null|[\d.]+)\s*$`)

// front serves the quirks, then hands the request to the server.
func (s *Server) front(o Options, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.requests[r.Method]++
		limited := false
		if o.RateLimit > 0 {
			now := time.Now()
			s.tokens = min(s.tokens+now.Sub(s.filled).Seconds()*o.RateLimit, max(o.RateLimit, 1))
			s.filled = now
			if s.tokens < 1 {
				limited = true
				s.throttled++
			} else {
				s.tokens--
			}
		}
		s.mu.Unlock()
		refuse := func(status int, scimType, detail string) {
			w.Header().Set("Content-Type", "application/scim+json")
			w.WriteHeader(status)
			json.NewEncoder(w).Encode(map[string]any{"schemas": []string{"urn:ietf:params:scim:api:messages:2.0:Error"}, "status": strconv.Itoa(status), "scimType": scimType, "detail": detail})
		}
		switch {
		case limited:
			w.Header().Set("Retry-After", "1")
			refuse(http.StatusTooManyRequests, "", "Rate limit exceeded")
			return
		}
		if o.Before != nil {
			if to := o.Before(r); to != "" {
				http.Redirect(w, r, to, http.StatusTemporaryRedirect)
				return
			}
		}
		switch {
		case o.EqOnly && r.URL.Query().Has("filter") && !eqOnly.MatchString(r.URL.Query().Get("filter")):
			refuse(http.StatusBadRequest, "invalidFilter", "Only the eq operator is supported")
			return
		case o.RequireIfMatch && (r.Method == "PUT" || r.Method == "PATCH" || r.Method == "DELETE") && r.Header.Get("If-Match") == "":
			refuse(http.StatusPreconditionRequired, "", "If-Match is required")
			return
		case o.Patch204 && r.Method == "PATCH":
			rec := httptest.NewRecorder()
			next.ServeHTTP(rec, r)
			if rec.Code == http.StatusOK {
				w.WriteHeader(http.StatusNoContent)
				return
			}
			for k, v := range rec.Header() {
				w.Header()[k] = v
			}
			w.WriteHeader(rec.Code)
			w.Write(rec.Body.Bytes())
			return
		}
		next.ServeHTTP(w, r)
	})
}

// Dir is the server's directory (with its package-lock.json).
func Dir() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", "..", "plugins", "scim", "testdata", "scimserver")
}

var installOnce sync.Once
var installErr error

// install runs npm ci once when node_modules is missing (.ci/run does it
// too); it fails, never skips.
func install() error {
	installOnce.Do(func() {
		if _, err := os.Stat(filepath.Join(Dir(), "node_modules", "scimmy")); err == nil {
			return
		}
		out, err := exec.Command("npm", "ci", "--no-audit", "--no-fund", "--prefix", Dir()).CombinedOutput()
		if err != nil {
			installErr = fmt.Errorf("npm ci in %s: %v: %s", Dir(), err, out)
		}
	})
	return installErr
}

// Start starts a server for a test, or fails it.
func Start(t testing.TB, o Options) *Server {
	t.Helper()
	s, err := New(t.TempDir(), o)
	if err != nil {
		t.Fatalf("cannot start the SCIM server: %v", err)
	}
	t.Cleanup(s.Stop)
	return s
}

// New starts a server; Stop ends it.
func New(dir string, o Options) (*Server, error) {
	if _, err := exec.LookPath("node"); err != nil {
		return nil, fmt.Errorf("node is missing (apt-get install nodejs npm)")
	}
	if err := install(); err != nil {
		return nil, err
	}
	s := &Server{requests: map[string]int{}, tokens: max(o.RateLimit, 1), filled: time.Now()}
	s.cmd = exec.Command("node", filepath.Join(Dir(), "server.js"))
	if o.CPUs != "" {
		s.cmd = exec.Command("taskset", "-c", o.CPUs, "node", filepath.Join(Dir(), "server.js"))
	}
	s.cmd.Env = append(os.Environ(), "SCIM_TOKEN="+Token, "PORT=0")
	if o.NoFilter {
		s.cmd.Env = append(s.cmd.Env, "SCIM_NO_FILTER=1")
	}
	if o.NoPatch {
		s.cmd.Env = append(s.cmd.Env, "SCIM_NO_PATCH=1")
	}
	if o.ETags {
		s.cmd.Env = append(s.cmd.Env, "SCIM_ETAG=1")
	}
	if o.MaxResults > 0 {
		s.cmd.Env = append(s.cmd.Env, fmt.Sprintf("SCIM_MAX_RESULTS=%d", o.MaxResults))
	}
	if o.Throttle > 0 {
		s.cmd.Env = append(s.cmd.Env, fmt.Sprintf("SCIM_THROTTLE=%d", o.Throttle))
	}
	var err error
	if s.stdin, err = s.cmd.StdinPipe(); err != nil {
		return nil, err
	}
	stdout, err := s.cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	s.cmd.Stderr = os.Stderr
	if err := s.cmd.Start(); err != nil {
		return nil, err
	}
	line := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		if sc.Scan() {
			line <- sc.Text()
		}
		close(line)
		io.Copy(io.Discard, stdout)
	}()
	var port string
	select {
	case l := <-line:
		port = strings.TrimPrefix(l, "listening ")
	case <-time.After(15 * time.Second):
		s.Stop()
		return nil, fmt.Errorf("the SCIM server did not start within 15s")
	}
	if port == "" {
		s.Stop()
		return nil, fmt.Errorf("the SCIM server exited at start")
	}
	target, _ := url.Parse("http://127.0.0.1:" + port)
	s.Direct = target.String() + "/scim/v2"
	// Each server its own CA (httptest's built-in certificate is the same
	// for every server, which would make a "wrong CA" test pass anything).
	caPEM, cert, err := serverCert()
	if err != nil {
		s.Stop()
		return nil, err
	}
	front := httptest.NewUnstartedServer(s.front(o, httputil.NewSingleHostReverseProxy(target)))
	front.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
	front.StartTLS()
	go func() { s.cmd.Wait(); front.Close() }()
	s.URL = front.URL + "/scim/v2"
	s.CAFile = filepath.Join(dir, "scim-ca.pem")
	return s, os.WriteFile(s.CAFile, caPEM, 0o600)
}

// serverCert makes a CA and a certificate for 127.0.0.1 signed by it.
func serverCert() ([]byte, tls.Certificate, error) {
	ca, err := testca.New("scimlab CA")
	if err != nil {
		return nil, tls.Certificate{}, err
	}
	srv, err := ca.Issue([]string{"localhost"}, "127.0.0.1")
	if err != nil {
		return nil, tls.Certificate{}, err
	}
	return ca.PEM, srv.TLS, nil
}

// CPUTime is the CPU time the server process (node) has used so far, read
// from /proc (0 where that cannot be read): the benchmark reports it.
func (s *Server) CPUTime() time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", s.cmd.Process.Pid))
	if err != nil {
		return 0
	}
	// Fields after the command name (in parentheses): utime and stime are
	// the 12th and 13th, in clock ticks (100 per second on Linux).
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
	if len(f) < 13 {
		return 0
	}
	u, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(u+st) * 10 * time.Millisecond
}

// Stop ends the server (node exits when its stdin closes).
func (s *Server) Stop() {
	if s.stdin != nil {
		s.stdin.Close()
	}
}

// Call sends a request straight to the server (a test's setup and checks;
// a 429 of a throttling server is waited out).
func (s *Server) Call(method, path string, body any) (int, map[string]any, error) {
	var b []byte
	if body != nil {
		b, _ = json.Marshal(body)
	}
	for try := 0; ; try++ {
		req, _ := http.NewRequest(method, s.Direct+path, bytes.NewReader(b))
		req.Header.Set("Authorization", "Bearer "+Token)
		req.Header.Set("Content-Type", "application/scim+json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return 0, nil, err
		}
		var out map[string]any
		json.NewDecoder(resp.Body).Decode(&out)
		resp.Body.Close()
		if resp.StatusCode == http.StatusTooManyRequests && try < 20 {
			time.Sleep(100 * time.Millisecond)
			continue
		}
		return resp.StatusCode, out, nil
	}
}

// AddUser creates an active user and returns its id.
func (s *Server) AddUser(userName string) (string, error) {
	code, out, err := s.Call("POST", "/Users", map[string]any{"schemas": []string{"urn:ietf:params:scim:schemas:core:2.0:User"},
		"userName": userName, "active": true, "emails": []map[string]string{{"value": userName}}})
	if err != nil || code != 201 {
		return "", fmt.Errorf("adding %s: %d %v %v", userName, code, out, err)
	}
	return out["id"].(string), nil
}

// User reads a user (nil when it does not exist).
func (s *Server) User(id string) (map[string]any, error) {
	code, out, err := s.Call("GET", "/Users/"+id, nil)
	if err != nil {
		return nil, err
	}
	if code == 404 {
		return nil, nil
	}
	if code != 200 {
		return nil, fmt.Errorf("GET user %s: %d %v", id, code, out)
	}
	return out, nil
}
