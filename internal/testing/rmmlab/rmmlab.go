// Package rmmlab is a small fictional RMM (remote monitoring and
// management) tool's REST API over HTTPS with its own CA, for the http
// plugin's tests and examples: API tokens that a provider holds, listed
// and revoked.
//
//	GET    /api/v1/tokens          {"tokens":[{"name":"oldmsp","active":true}, ...]}
//	DELETE /api/v1/tokens/{name}   revokes it (204)
//
// Every request needs "Authorization: Bearer ADMIN_TOKEN".
package rmmlab

import (
	"crypto/tls"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/switchover/switchover/internal/testing/testca"
)

// Server is a running fictional RMM.
type Server struct {
	URL    string // https://127.0.0.1:PORT
	CAFile string
	Token  string // the admin token it accepts
	// IgnoreRevoke makes DELETE answer 204 and change nothing (a broken API).
	IgnoreRevoke bool
	// Throttle answers every Nth request with 429 and Retry-After: 1.
	Throttle int
	// RedirectTo answers every request with a redirect to this origin
	// (the same path): a moved or hijacked API.
	RedirectTo string
	mu         sync.Mutex
	tokens     map[string]bool
	requests   int
	srv        *httptest.Server
}

// Start starts one for a test, with the given tokens active.
func Start(t testing.TB, adminToken string, tokens ...string) *Server {
	t.Helper()
	s, err := New(t.TempDir(), adminToken, tokens...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

// New starts one with its CA file in dir, with the given tokens active;
// Close stops it.
func New(dir, adminToken string, tokens ...string) (*Server, error) {
	s := &Server{Token: adminToken, tokens: map[string]bool{}}
	for _, n := range tokens {
		s.tokens[n] = true
	}
	ca, cert, err := certs()
	if err != nil {
		return nil, err
	}
	s.CAFile = filepath.Join(dir, "rmm-ca.pem")
	if err := os.WriteFile(s.CAFile, ca, 0o600); err != nil {
		return nil, err
	}
	s.srv = httptest.NewUnstartedServer(http.HandlerFunc(s.serve))
	s.srv.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
	s.srv.StartTLS()
	s.URL = s.srv.URL
	return s, nil
}

// Close stops it.
func (s *Server) Close() { s.srv.Close() }

// Active reports whether a token is active.
func (s *Server) Active(name string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.tokens[name]
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.requests++
	if s.Throttle > 0 && s.requests%s.Throttle == 0 {
		w.Header().Set("Retry-After", "1")
		http.Error(w, `{"error":"rate limited"}`, http.StatusTooManyRequests)
		return
	}
	if s.RedirectTo != "" {
		http.Redirect(w, r, s.RedirectTo+r.URL.RequestURI(), http.StatusTemporaryRedirect)
		return
	}
	if r.Header.Get("Authorization") != "Bearer "+s.Token {
		http.Error(w, `{"error":"unauthorized"}`, http.StatusUnauthorized)
		return
	}
	switch {
	case r.Method == "GET" && r.URL.Path == "/api/v1/tokens":
		type tok struct {
			Name   string `json:"name"`
			Active bool   `json:"active"`
		}
		var list []tok
		for n, a := range s.tokens {
			list = append(list, tok{n, a})
		}
		sort.Slice(list, func(i, j int) bool { return list[i].Name < list[j].Name })
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]any{"tokens": list})
	case r.Method == "DELETE" && strings.HasPrefix(r.URL.Path, "/api/v1/tokens/"):
		n := strings.TrimPrefix(r.URL.Path, "/api/v1/tokens/")
		if _, ok := s.tokens[n]; !ok {
			http.Error(w, `{"error":"no such token"}`, http.StatusNotFound)
			return
		}
		if !s.IgnoreRevoke {
			s.tokens[n] = false
		}
		w.WriteHeader(http.StatusNoContent)
	default:
		http.Error(w, `{"error":"not found"}`, http.StatusNotFound)
	}
}

func certs() ([]byte, tls.Certificate, error) {
	ca, err := testca.New("rmmlab CA")
	if err != nil {
		return nil, tls.Certificate{}, err
	}
	srv, err := ca.Issue([]string{"rmm.lab"}, "127.0.0.1")
	if err != nil {
		return nil, tls.Certificate{}, err
	}
	return ca.PEM, srv.TLS, nil
}
