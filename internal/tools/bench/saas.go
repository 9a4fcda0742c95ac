package main

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/switchover/switchover/internal/testing/scimlab"
)

// benchSaaS: take n users out of 5 groups and deactivate them on the SCIM
// server (SCIMMY, ETags, behind the TLS front), with switchover (find,
// plan, PATCH, verify) against a careful client: a bare Go loop that reads
// each group once and sends one PATCH for it, then per user a PATCH and a
// verifying GET, with the same concurrency. Requests and time are compared;
// then one run against a server limited to 20 requests a second counts
// the 429s.
//
// Measured twice. First with the server on a core of its own and switchover
// or the floor (and the TLS front) on the others, as with a SaaS, which runs
// elsewhere: the figure for switchover's own cost. Then with everything
// sharing the cores: there the server (node, about 1.3 cores while the floor
// runs) loses to the client whatever CPU the client uses, which a real SaaS
// does not.
func benchSaaS(bin string, n, runs int) {
	var pinned *saasResult
	if cpus := numCPU(); cpus >= 2 {
		// This program again, on the client's cores; it starts the server
		// on core 0.
		exe, err := os.Executable()
		if err != nil {
			fail(err)
		}
		cmd := exec.Command("taskset", "-c", fmt.Sprintf("1-%d", cpus-1), exe, "-what", "saas-one", "-server-cpus", "0", "-accounts", strconv.Itoa(n), "-runs", strconv.Itoa(runs), "-bin", bin)
		cmd.Stderr = os.Stderr
		out, err := cmd.Output()
		if err != nil {
			fail(fmt.Errorf("the run with the server on its own core: %v", err))
		}
		pinned = &saasResult{}
		if err := json.Unmarshal(out, pinned); err != nil {
			fail(err)
		}
	}
	shared := measureSaaS(bin, n, runs, "")
	fmt.Printf("Take %d users out of %d groups and deactivate them on a SCIM 2.0 server (SCIMMY, ETags,\nTLS on loopback), concurrency %d; best and worst of %d runs, %d CPUs\n\n", n, saasGroups, saasParallelism(), runs, numCPU())
	fmt.Printf("%-58s %8s %8s %8s\n", "", "best s", "worst s", "CPU s")
	for _, x := range []struct {
		title string
		r     *saasResult
	}{{"server on core 0, client on the others (a SaaS is elsewhere)", pinned}, {"server and client sharing all cores", &shared}} {
		if x.r == nil {
			fmt.Printf("%s: needs 2 CPUs\n\n", x.title)
			continue
		}
		r := x.r
		sb, sworst := best(r.Switchover)
		fb, fworst := best(r.Floor)
		fmt.Printf("%s\n", x.title)
		fmt.Printf("  %-56s %8.2f %8.2f %8.2f\n", "switchover apply (find, plan, PATCH, verify)", sb.Seconds(), sworst.Seconds(), minDur(r.CPU).Seconds())
		fmt.Printf("  %-56s %8.2f %8.2f %8.2f\n", "careful client: listing, each group read once + 1 PATCH,", fb.Seconds(), fworst.Seconds(), minDur(r.SelfCPU["floor"]).Seconds())
		fmt.Printf("  %-56s\n", "  PATCH (If-Match) + GET per user (Go loop)")
		fmt.Printf("  %-56s %8s %8s %8.2f / %.2f\n", "SCIM server (node) in the switchover / floor runs", "", "", minDur(r.NodeCPU["switchover"]).Seconds(), minDur(r.NodeCPU["floor"]).Seconds())
		sr, fr := minInt(r.Requests["switchover"]), minInt(r.Requests["floor"])
		fmt.Printf("  requests: switchover %d, careful client %d: %.3fx (goal: within 1.1x)\n", sr, fr, float64(sr)/float64(fr))
		fmt.Printf("  time: switchover / careful client: %.2fx (goal: within 1.5x)\n\n", sb.Seconds()/fb.Seconds())
	}
	fmt.Printf("CPU s: switchover and its plugin; the careful client's row is the Go loop with the TLS front.\n\n")
	took, reqs, throttled := measureSaaSLimited(bin, n)
	least := time.Duration(float64(reqs-throttled) / 20 * float64(time.Second))
	fmt.Printf("A server taking 20 requests/s (429 with Retry-After: 1 over it), one switchover run:\n")
	fmt.Printf("  %d requests, %d answered 429 (%.2f%%; goal: under 1%%)\n", reqs, throttled, 100*float64(throttled)/float64(reqs))
	fmt.Printf("  %.1f s, the limit allows %.1f s at best: %.2fx\n", took.Seconds(), least.Seconds(), took.Seconds()/least.Seconds())
}

// saasResult is one placement's measurements (durations in ns in JSON).
type saasResult struct {
	Switchover, Floor, CPU []time.Duration
	// CPU used while timed: the SCIM server (node), and this process (the
	// TLS front; for the floor also the Go loop), per kind of run.
	NodeCPU, SelfCPU map[string][]time.Duration
	// Requests the server answered, per kind of run.
	Requests map[string][]int
}

// benchSaaSOne measures one placement of the server (serverCPUs: taskset's
// list; "": anywhere) and prints the result as JSON: benchSaaS runs it
// under taskset for the run with the server on a core of its own.
func benchSaaSOne(bin string, n, runs int, serverCPUs string) {
	r := measureSaaS(bin, n, runs, serverCPUs)
	json.NewEncoder(os.Stdout).Encode(r)
}

func best(ds []time.Duration) (b, w time.Duration) {
	for _, d := range ds {
		if b == 0 || d < b {
			b = d
		}
		w = max(w, d)
	}
	return
}

// measureSaaS runs switchover and the floor, runs times each, against a
// fresh server with n users; serverCPUs (taskset's list) places the server.
func measureSaaS(bin string, n, runs int, serverCPUs string) saasResult {
	dir, err := os.MkdirTemp("", "bench-saas-")
	if err != nil {
		fail(err)
	}
	defer os.RemoveAll(dir)
	rb := filepath.Join(dir, "rb")
	os.MkdirAll(rb, 0o755)
	res := saasResult{NodeCPU: map[string][]time.Duration{}, SelfCPU: map[string][]time.Duration{}, Requests: map[string][]int{}}
	for r := 0; r < runs; r++ {
		for _, which := range []string{"switchover", "floor"} {
			// Pages of 500, as a SaaS tool serves (the tests use 50).
			s, err := scimlab.New(dir, scimlab.Options{ETags: true, MaxResults: 500, CPUs: serverCPUs})
			if err != nil {
				fail(err)
			}
			groups := seedSaaS(s, n)
			s.ResetCounts()
			start := time.Now()
			node0, self0 := s.CPUTime(), selfCPUTime()
			if which == "switchover" {
				os.RemoveAll(filepath.Join(rb, ".switchover"))
				writeSaaSRunbook(rb, s)
				cmd := exec.Command(bin, "apply", "-auto-approve", "-parallelism", strconv.Itoa(saasParallelism()), rb)
				if out, err := cmd.CombinedOutput(); err != nil {
					fail(fmt.Errorf("switchover: %v\n%s", err, lastLine(out)))
				}
				res.Switchover = append(res.Switchover, time.Since(start))
				ru := cmd.ProcessState.SysUsage().(*syscall.Rusage)
				res.CPU = append(res.CPU, time.Duration(ru.Utime.Nano()+ru.Stime.Nano()))
			} else {
				if err := saasFloor(s, groups, saasParallelism()); err != nil {
					fail(err)
				}
				res.Floor = append(res.Floor, time.Since(start))
			}
			reqs, _ := s.Requests()
			res.Requests[which] = append(res.Requests[which], reqs[""])
			res.NodeCPU[which] = append(res.NodeCPU[which], s.CPUTime()-node0)
			res.SelfCPU[which] = append(res.SelfCPU[which], selfCPUTime()-self0)
			s.Stop()
		}
	}
	return res
}

// saasParallelism is switchover's -parallelism ($BENCH_SAAS_PARALLELISM,
// default 10, the floor's concurrency).
func saasParallelism() int {
	if n, err := strconv.Atoi(os.Getenv("BENCH_SAAS_PARALLELISM")); err == nil && n > 0 {
		return n
	}
	return 10
}

// selfCPUTime is this process's CPU time so far (user and system).
func selfCPUTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func minInt(ns []int) int {
	m := 0
	for i, n := range ns {
		if i == 0 || n < m {
			m = n
		}
	}
	return m
}

func minDur(ds []time.Duration) time.Duration {
	var m time.Duration
	for _, d := range ds {
		if m == 0 || d < m {
			m = d
		}
	}
	return m
}

// saasGroups is how many groups the benchmark's users are spread over.
const saasGroups = 5

// seedSaaS adds n users of the old provider and 50 of the client, and
// saasGroups groups, each with a fifth of the old provider's users and
// ten of the client's; it returns the groups' ids.
func seedSaaS(s *scimlab.Server, n int) []string {
	ids := make([]string, n+50)
	var wg sync.WaitGroup
	sem := make(chan struct{}, 16)
	for i := range ids {
		wg.Add(1)
		sem <- struct{}{}
		go func(i int) {
			defer wg.Done()
			defer func() { <-sem }()
			name := fmt.Sprintf("tech%04d@oldmsp.example", i)
			if i >= n {
				name = fmt.Sprintf("staff%02d@client.example", i-n)
			}
			id, err := s.AddUser(name)
			if err != nil {
				fail(err)
			}
			ids[i] = id
		}(i)
	}
	wg.Wait()
	var groups []string
	for g := 0; g < saasGroups; g++ {
		var ms []map[string]string
		for i := g; i < n; i += saasGroups {
			ms = append(ms, map[string]string{"value": ids[i]})
		}
		for i := n + g*10; i < n+g*10+10; i++ {
			ms = append(ms, map[string]string{"value": ids[i]})
		}
		code, out, err := s.Call("POST", "/Groups", map[string]any{"schemas": []string{"urn:ietf:params:scim:schemas:core:2.0:Group"}, "displayName": fmt.Sprintf("Group %d", g), "members": ms})
		if err != nil || code != 201 {
			fail(fmt.Errorf("group %d: %d %v", g, code, err))
		}
		groups = append(groups, out["id"].(string))
	}
	return groups
}

// writeSaaSRunbook: find the old provider's users, take them out of every
// group, deactivate them (ids from the listing).
func writeSaaSRunbook(rb string, s *scimlab.Server) {
	var names []string
	for g := 0; g < saasGroups; g++ {
		names = append(names, fmt.Sprintf("%q", fmt.Sprintf("Group %d", g)))
	}
	os.WriteFile(filepath.Join(rb, "main.sw.hcl"), []byte(fmt.Sprintf(`runbook "bench-saas" {}
plugin "scim" {
  base_url  = %q
  token     = %q
  ca_file   = %q
  page_size = 500
}
step "scim.find_users" "oldmsp" {
  user_name_suffix = "@oldmsp.example"
}
step "scim.remove_group_members" "groups" {
  for_each = toset([%s])
  group    = each.value
  members  = [for u in step.oldmsp.outputs.users : u.id]
  by       = "id"
}
step "scim.deactivate_user" "off" {
  for_each = step.oldmsp.outputs.users
  user     = each.value.id
  by       = "id"
}
`, s.URL, scimlab.Token, s.CAFile, strings.Join(names, ", "))), 0o644)
}

// saasFloor is a careful client doing the same work: the listing of the old
// provider's users (filtered by the server, pages of 500); each group read
// once and one PATCH taking them out (If-Match); per user a PATCH
// active=false with If-Match on the listed version and a GET to read it
// again (the verify), k at a time.
func saasFloor(s *scimlab.Server, groups []string, k int) error {
	pool := x509.NewCertPool()
	ca, _ := os.ReadFile(s.CAFile)
	pool.AppendCertsFromPEM(ca)
	c := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}, MaxIdleConnsPerHost: 32}}
	do := func(method, path, ifMatch string, body []byte) (map[string]any, error) {
		req, _ := http.NewRequest(method, s.URL+path, bytes.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+scimlab.Token)
		req.Header.Set("Content-Type", "application/scim+json")
		if ifMatch != "" {
			req.Header.Set("If-Match", ifMatch)
		}
		resp, err := c.Do(req)
		if err != nil {
			return nil, err
		}
		defer resp.Body.Close()
		var out map[string]any
		json.NewDecoder(resp.Body).Decode(&out)
		if resp.StatusCode >= 300 {
			return nil, fmt.Errorf("%s %s: %d", method, path, resp.StatusCode)
		}
		return out, nil
	}
	version := func(r map[string]any) string {
		meta, _ := r["meta"].(map[string]any)
		v, _ := meta["version"].(string)
		return v
	}
	type listed struct{ id, version string }
	var users []listed
	old := map[string]bool{}
	for start := 1; ; {
		q := url.Values{"filter": {`userName ew "@oldmsp.example"`}, "startIndex": {strconv.Itoa(start)}, "count": {"500"}}
		page, err := do("GET", "/Users?"+q.Encode(), "", nil)
		if err != nil {
			return err
		}
		rs, _ := page["Resources"].([]any)
		for _, r := range rs {
			u, _ := r.(map[string]any)
			id, _ := u["id"].(string)
			users = append(users, listed{id, version(u)})
			old[id] = true
		}
		total, _ := page["totalResults"].(float64)
		if len(rs) == 0 || len(users) >= int(total) {
			break
		}
		start += len(rs)
	}
	for _, gid := range groups {
		g, err := do("GET", "/Groups/"+gid, "", nil)
		if err != nil {
			return err
		}
		var ops []map[string]any
		ms, _ := g["members"].([]any)
		for _, m := range ms {
			if id, _ := m.(map[string]any)["value"].(string); old[id] {
				ops = append(ops, map[string]any{"op": "remove", "path": fmt.Sprintf("members[value eq %q]", id)})
			}
		}
		body, _ := json.Marshal(map[string]any{"schemas": []string{"urn:ietf:params:scim:api:messages:2.0:PatchOp"}, "Operations": ops})
		if _, err := do("PATCH", "/Groups/"+gid, version(g), body); err != nil {
			return err
		}
	}
	patch := []byte(`{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"replace","path":"active","value":false}]}`)
	var wg sync.WaitGroup
	errs := make(chan error, len(users))
	ch := make(chan listed)
	for w := 0; w < k; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for u := range ch {
				_, err := do("PATCH", "/Users/"+u.id, u.version, patch)
				if err == nil {
					_, err = do("GET", "/Users/"+u.id, "", nil)
				}
				if err != nil {
					errs <- err
				}
			}
		}()
	}
	for _, u := range users {
		ch <- u
	}
	close(ch)
	wg.Wait()
	close(errs)
	return <-errs
}

// measureSaaSLimited runs switchover once against a server that takes 20
// requests a second (429 with Retry-After: 1 over it): its requests, the
// 429s among them, and its time against the least the limit allows.
func measureSaaSLimited(bin string, n int) (time.Duration, int, int) {
	dir, err := os.MkdirTemp("", "bench-saas-")
	if err != nil {
		fail(err)
	}
	defer os.RemoveAll(dir)
	rb := filepath.Join(dir, "rb")
	os.MkdirAll(rb, 0o755)
	s, err := scimlab.New(dir, scimlab.Options{ETags: true, MaxResults: 500, RateLimit: 20})
	if err != nil {
		fail(err)
	}
	defer s.Stop()
	seedSaaS(s, n)
	writeSaaSRunbook(rb, s)
	s.ResetCounts()
	start := time.Now()
	cmd := exec.Command(bin, "apply", "-auto-approve", "-parallelism", strconv.Itoa(saasParallelism()), rb)
	if out, err := cmd.CombinedOutput(); err != nil {
		fail(fmt.Errorf("switchover: %v\n%s", err, lastLine(out)))
	}
	took := time.Since(start)
	reqs, throttled := s.Requests()
	return took, reqs[""], throttled
}
