package main

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/switchover/switchover/internal/testing/graphtest"
)

// benchEntra: disable n users and revoke their sessions in the Graph test
// server (5 ms per call, 100 requests a second, each request of a $batch
// counted as Graph counts them), with switchover (find, plan, write,
// verify) against a floor: a bare Go loop sending only the 2n writes, in
// $batch calls of 20, at the throttle limit (four calls in flight, every
// 429 waited for as Retry-After says).
func benchEntra(bin string, n, runs, par int) {
	dir, err := os.MkdirTemp("", "bench-entra-")
	if err != nil {
		fail(err)
	}
	defer os.RemoveAll(dir)
	rb := filepath.Join(dir, "rb")
	os.MkdirAll(rb, 0o755)
	type result struct {
		wall                        time.Duration
		requests, batches, throttle int
		cpu                         time.Duration
	}
	res := map[string][]result{}
	for r := 0; r < runs; r++ {
		for _, which := range []string{"switchover", "floor"} {
			g := benchGraph(dir)
			ids := make([]string, n)
			for i := range ids {
				ids[i] = g.AddUser(fmt.Sprintf("tech%04d@oldmsp.example", i), "Old-Pw-1!", false)
			}
			g.RateLimit = 100
			start := time.Now()
			var cpu time.Duration
			if which == "switchover" {
				cpu = entraSwitchover(bin, rb, g, par)
			} else if err := entraFloor(g, writesOf(ids)); err != nil {
				fail(err)
			}
			wall := time.Since(start)
			for _, id := range ids {
				p := g.UserProps(id)
				if p["accountEnabled"] != false || p["signInSessionsValidFromDateTime"] == "2026-01-01T00:00:00Z" {
					fail(fmt.Errorf("%s: %s is not disabled with its sessions revoked", which, p["userPrincipalName"]))
				}
			}
			if v := g.Violations(); len(v) > 0 {
				fail(fmt.Errorf("%s broke the Graph schema: %v", which, v))
			}
			req, b := g.Requests()
			res[which] = append(res[which], result{wall, req - g.Throttled(), b, g.Throttled(), cpu})
			g.Close()
		}
	}
	best := func(rs []result) (b result, worst time.Duration) {
		for _, r := range rs {
			if b.wall == 0 || r.wall < b.wall {
				b = r
			}
			worst = max(worst, r.wall)
		}
		return
	}
	sb, sw := best(res["switchover"])
	fb, fw := best(res["floor"])
	fmt.Printf("Disable %d Entra users and revoke their sessions: Graph test server, 5 ms per call, throttled at 100 requests/s\n(each request of a $batch counts); best and worst of %d runs, %d CPUs\n\n", n, runs, numCPU())
	fmt.Printf("%-58s %7s %7s %9s %8s %9s\n", "what", "best s", "worst s", "requests", "$batch", "429s")
	fmt.Printf("%-58s %7.2f %7.2f %9d %8d %9d\n", fmt.Sprintf("switchover apply -parallelism %d (find, plan, write, verify)", par), sb.wall.Seconds(), sw.Seconds(), sb.requests, sb.batches, sb.throttle)
	fmt.Printf("%-58s %7.2f %7.2f %9d %8d %9d\n", "floor: Go loop, the 2 writes per user in $batch calls", fb.wall.Seconds(), fw.Seconds(), fb.requests, fb.batches, fb.throttle)
	fmt.Printf("\nswitchover / floor: %.2fx (the floor's %d requests at 100/s: %.1f s); switchover used %.2f CPU s\n",
		sb.wall.Seconds()/fb.wall.Seconds(), 2*n, float64(2*n-100)/100, sb.cpu.Seconds())
	entraExpiringTokens(bin, rb, dir, n, par, sb.wall)
	benchInboxRules(bin, 2000, runs)
}

// entraExpiringTokens runs switchover once more with every token refused
// 10 s after it was issued (though it says it lives an hour: revocation,
// clock skew): the run must finish, with at most one token request per
// expiry besides the first.
func entraExpiringTokens(bin, rb, dir string, n, par int, ref time.Duration) {
	const lifetime = 10 * time.Second
	g := benchGraph(dir)
	defer g.Close()
	for i := 0; i < n; i++ {
		g.AddUser(fmt.Sprintf("tech%04d@oldmsp.example", i), "Old-Pw-1!", false)
	}
	g.RateLimit = 100
	g.TokenLifetime = lifetime
	start := time.Now()
	entraSwitchover(bin, rb, g, par)
	wall := time.Since(start)
	bound := 1 + int(wall/lifetime)
	verdict := "ok"
	if g.TokenRequests() > bound {
		verdict = "TOO MANY"
	}
	fmt.Printf("tokens refused %s after issue: %.2f s (%.2fx the run above), %d token requests for %d expiries (at most %d: %s), %d requests met an expired token\n",
		lifetime, wall.Seconds(), wall.Seconds()/ref.Seconds(), g.TokenRequests(), int(wall/lifetime), bound, verdict, g.Expired())
}

// benchGraph is a Graph test server answering in 5 ms a call, as a
// tenant does.
func benchGraph(dir string) *graphtest.Server {
	g, err := graphtest.New(dir)
	if err != nil {
		fail(err)
	}
	g.Latency = 5 * time.Millisecond
	return g
}

// entraBlock configures the entra plugin for the test server (the
// variables come from entraVarFile).
const entraBlock = `variable "client_secret" { sensitive = true }
variable "url" {}
variable "ca_file" {}
plugin "entra" {
  tenant_id                  = "` + graphtest.Tenant + `"
  client_id                  = "` + graphtest.ClientID + `"
  client_secret              = var.client_secret
  authority_host             = "${var.url}/"
  graph_endpoint             = var.url
  unverified_authority_host  = true
  ca_file                    = var.ca_file
}
`

// entraVarFile writes the variables of entraBlock for g.
func entraVarFile(rb string, g *graphtest.Server) string {
	vars := filepath.Join(rb, "vars.json")
	b, _ := json.Marshal(map[string]string{"client_secret": graphtest.ClientSecret, "url": g.URL, "ca_file": g.CAFile})
	os.WriteFile(vars, b, 0o600)
	return vars
}

func entraSwitchover(bin, rb string, g *graphtest.Server, par int) time.Duration {
	os.RemoveAll(filepath.Join(rb, ".switchover"))
	os.WriteFile(filepath.Join(rb, "main.sw.hcl"), []byte(`runbook "bench-entra" {}
`+entraBlock+`step "entra.find_users" "old" {
  domains = ["oldmsp.example"]
}
step "entra.disable_user" "off" {
  for_each = step.old.outputs.users
  user     = each.value.id
}
step "entra.revoke_sessions" "sessions" {
  for_each = step.old.outputs.users
  user     = each.value.id
}
`), 0o644)
	vars := entraVarFile(rb, g)
	cmd := exec.Command(bin, "apply", "-auto-approve", "-parallelism", strconv.Itoa(par), "-var-file", vars, rb)
	if out, err := cmd.CombinedOutput(); err != nil {
		fail(fmt.Errorf("switchover: %v\n%s", err, lastLine(out)))
	}
	ru := cmd.ProcessState.SysUsage().(*syscall.Rusage)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// floorReq is one request of a $batch the floor sends.
type floorReq struct {
	ID      string            `json:"id"`
	Method  string            `json:"method"`
	URL     string            `json:"url"`
	Headers map[string]string `json:"headers,omitempty"`
	Body    json.RawMessage   `json:"body,omitempty"`
}

// writesOf are a PATCH accountEnabled=false and a POST
// revokeSignInSessions per user.
func writesOf(ids []string) []floorReq {
	var queue []floorReq
	for _, id := range ids {
		queue = append(queue, floorReq{Method: "PATCH", URL: "/users/" + id, Headers: map[string]string{"Content-Type": "application/json"}, Body: json.RawMessage(`{"accountEnabled":false}`)},
			floorReq{Method: "POST", URL: "/users/" + id + "/revokeSignInSessions"})
	}
	return queue
}

// entraFloor sends the requests, 20 to a $batch, four calls in flight; a
// request answered 429 waits for Retry-After (all calls do) and goes again.
func entraFloor(g *graphtest.Server, queue []floorReq) error {
	pool := x509.NewCertPool()
	ca, _ := os.ReadFile(g.CAFile)
	pool.AppendCertsFromPEM(ca)
	c := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}, MaxIdleConnsPerHost: 8}}
	resp, err := c.PostForm(g.URL+"/"+graphtest.Tenant+"/oauth2/v2.0/token", url.Values{"grant_type": {"client_credentials"},
		"client_id": {graphtest.ClientID}, "client_secret": {graphtest.ClientSecret}, "scope": {g.URL + "/.default"}})
	if err != nil {
		return err
	}
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	json.NewDecoder(resp.Body).Decode(&tok)
	resp.Body.Close()
	var mu sync.Mutex
	var pause time.Time
	inFlight := 0
	var firstErr error
	cond := sync.NewCond(&mu)
	var wg sync.WaitGroup
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				mu.Lock()
				for len(queue) == 0 && inFlight > 0 && firstErr == nil {
					cond.Wait() // a call in flight may give requests back
				}
				if len(queue) == 0 || firstErr != nil {
					mu.Unlock()
					cond.Broadcast()
					return
				}
				wait := time.Until(pause)
				k := min(20, len(queue))
				batch := append([]floorReq(nil), queue[:k]...)
				queue = queue[k:]
				inFlight++
				mu.Unlock()
				if wait > 0 {
					time.Sleep(wait)
				}
				for i := range batch {
					batch[i].ID = strconv.Itoa(i + 1)
				}
				again, retry, err := floorBatch(c, g.URL, tok.AccessToken, batch)
				mu.Lock()
				inFlight--
				if err != nil && firstErr == nil {
					firstErr = err
				}
				for _, i := range again {
					queue = append(queue, batch[i])
				}
				if t := time.Now().Add(retry); len(again) > 0 && t.After(pause) {
					pause = t
				}
				mu.Unlock()
				cond.Broadcast()
			}
		}()
	}
	wg.Wait()
	return firstErr
}

// floorBatch sends one $batch; again are the indexes answered 429.
func floorBatch(c *http.Client, base, token string, batch any) (again []int, retry time.Duration, err error) {
	body, _ := json.Marshal(map[string]any{"requests": batch})
	req, _ := http.NewRequest("POST", base+"/v1.0/$batch", bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.Do(req)
	if err != nil {
		return nil, 0, err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		return nil, 0, fmt.Errorf("$batch: %d %s", resp.StatusCode, b)
	}
	var out struct {
		Responses []struct {
			ID      string            `json:"id"`
			Status  int               `json:"status"`
			Headers map[string]string `json:"headers"`
		} `json:"responses"`
	}
	if err := json.Unmarshal(b, &out); err != nil {
		return nil, 0, err
	}
	for _, r := range out.Responses {
		i, _ := strconv.Atoi(r.ID)
		switch {
		case r.Status == 429:
			again = append(again, i-1)
			s, _ := strconv.Atoi(r.Headers["Retry-After"])
			retry = max(retry, time.Duration(s)*time.Second)
		case r.Status >= 300:
			return nil, 0, fmt.Errorf("$batch request %s: %d", r.ID, r.Status)
		}
	}
	return again, retry, nil
}

// benchInboxRules: the Microsoft 365 persistence sweep of n mailboxes
// (each with an inbox rule, one in a hundred forwarding to the old
// provider) under the test server's throttle (200 requests a second, 5 ms
// per call), as `switchover plan` reads it, against a floor sending only
// the n rule reads in $batch calls at the limit.
func benchInboxRules(bin string, n, runs int) {
	dir, err := os.MkdirTemp("", "bench-rules-")
	if err != nil {
		fail(err)
	}
	defer os.RemoveAll(dir)
	rb := filepath.Join(dir, "rb")
	os.MkdirAll(rb, 0o755)
	const rate = 200
	var sbest, sworst, fbest, fworst time.Duration
	var sreq, freq int
	for r := 0; r < runs; r++ {
		for _, which := range []string{"switchover", "floor"} {
			g := benchGraph(dir)
			ids := make([]string, n)
			for i := range ids {
				ids[i] = g.AddUser(fmt.Sprintf("user%04d@client.example", i), "Pw-1!", false)
				to := "team@client.example"
				if i%100 == 0 {
					to = "archive@oldmsp.example"
				}
				g.AddMessageRule(ids[i], graphtest.ForwardRule("Rule", to, false))
			}
			g.RateLimit = rate
			start := time.Now()
			if which == "switchover" {
				found := inboxSweep(bin, rb, g)
				if found != n/100 {
					fail(fmt.Errorf("the sweep found %d forwarding rules to the old provider, want %d", found, n/100))
				}
			} else {
				var reads []floorReq
				for _, id := range ids {
					reads = append(reads, floorReq{Method: "GET", URL: "/users/" + id + "/mailFolders/inbox/messageRules"})
				}
				if err := entraFloor(g, reads); err != nil {
					fail(err)
				}
			}
			wall := time.Since(start)
			if v := g.Violations(); len(v) > 0 {
				fail(fmt.Errorf("%s broke the Graph schema: %v", which, v))
			}
			req, _ := g.Requests()
			req -= g.Throttled()
			if which == "switchover" {
				if sbest == 0 || wall < sbest {
					sbest, sreq = wall, req
				}
				sworst = max(sworst, wall)
			} else {
				if fbest == 0 || wall < fbest {
					fbest, freq = wall, req
				}
				fworst = max(fworst, wall)
			}
			g.Close()
		}
	}
	fmt.Printf("\nPersistence sweep of %d mailboxes' inbox rules: the same server, throttled at %d requests/s; best and worst of %d runs\n\n", n, rate, runs)
	fmt.Printf("%-58s %7s %7s %9s\n", "what", "best s", "worst s", "requests")
	fmt.Printf("%-58s %7.2f %7.2f %9d\n", "switchover plan (entra.find_persistence, whole command)", sbest.Seconds(), sworst.Seconds(), sreq)
	fmt.Printf("%-58s %7.2f %7.2f %9d\n", "floor: Go loop, the rule reads in $batch calls", fbest.Seconds(), fworst.Seconds(), freq)
	fmt.Printf("\nswitchover / floor: %.2fx (goal: within 1.3x)\n", sbest.Seconds()/fbest.Seconds())
}

// inboxSweep plans a runbook of one entra.find_persistence and returns
// how many findings were the old provider's.
func inboxSweep(bin, rb string, g *graphtest.Server) int {
	os.RemoveAll(filepath.Join(rb, ".switchover"))
	os.WriteFile(filepath.Join(rb, "main.sw.hcl"), []byte(`runbook "bench-rules" {}
`+entraBlock+`step "entra.find_persistence" "sweep" {
  domains = ["oldmsp.example"]
}
step "core.noop" "each" {
  for_each = step.sweep.outputs.removable
  message  = each.key
}
`), 0o644)
	vars := entraVarFile(rb, g)
	out, err := exec.Command(bin, "plan", "-json", "-var-file", vars, rb).CombinedOutput()
	if err != nil {
		fail(fmt.Errorf("switchover plan: %v\n%s", err, lastLine(out)))
	}
	var plan struct {
		Instances []struct {
			Step string `json:"step"`
		} `json:"instances"`
	}
	if err := json.Unmarshal(out, &plan); err != nil {
		fail(fmt.Errorf("switchover plan -json: %v", err))
	}
	found := 0
	for _, in := range plan.Instances {
		if in.Step == "each" {
			found++
		}
	}
	return found
}
