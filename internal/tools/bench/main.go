// Command bench measures switchover on a generated runbook with N step
// instances (for_each over N keys, core.noop) and prints a table.
//
//	-what plan:  validate and plan: wall time and peak memory, of switchover
//	             alone and with its plugin processes (sampled from /proc).
//	-what apply: apply with durable checkpoints, total and per step; then the
//	             same run killed (SIGKILL) at 50% and resumed: the time to get
//	             past the done half, and the resume's total.
//	-what ad-sweep: the AD persistence sweep (a plan) against the same reads
//	             over one LDAPS connection.
//	-what ssh:   one job (set a password, remove a key) over real sshd hosts:
//	             switchover, Ansible, and a bare Go floor (as root).
//	-what saas:  deactivate users on the SCIM server, against a Go loop
//	             sending the same requests; with the server on a core of its
//	             own (saas-one, run by saas under taskset), then sharing.
package main

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

func main() {
	bin := flag.String("bin", "bin/switchover", "switchover binary")
	n := flag.Int("n", 10000, "step instances")
	runs := flag.Int("runs", 3, "runs of each command (the best is shown, and the worst)")
	what := flag.String("what", "plan", "plan, apply, ssh, ad, ad-sweep, backup, saas or entra")
	hosts := flag.Int("hosts", 20, "sshd hosts (-what ssh)")
	accounts := flag.Int("accounts", 1000, "AD accounts (-what ad, ad-sweep)")
	ous := flag.Int("ous", 200, "AD OUs (-what ad-sweep)")
	parallelism := flag.Int("parallelism", 40, "switchover's -parallelism (-what entra)")
	serverCPUs := flag.String("server-cpus", "", "the SCIM server's CPUs, taskset's list (-what saas-one)")
	sizeMB := flag.Int("mb", 1024, "repository size in MB (-what backup)")
	flag.Parse()
	dir, err := os.MkdirTemp("", "bench-")
	if err != nil {
		fail(err)
	}
	defer os.RemoveAll(dir)
	var b strings.Builder
	b.WriteString("runbook \"bench\" {}\nvariable \"keys\" {\n  type = set(string)\n}\n")
	b.WriteString("step \"core.noop\" \"many\" {\n  for_each = var.keys\n  message  = \"instance ${each.key}\"\n}\n")
	os.WriteFile(filepath.Join(dir, "main.sw.hcl"), []byte(b.String()), 0o644)
	var keys strings.Builder
	keys.WriteString("{\"keys\": [")
	for i := 0; i < *n; i++ {
		if i > 0 {
			keys.WriteString(",")
		}
		fmt.Fprintf(&keys, "\"k%05d\"", i)
	}
	keys.WriteString("]}")
	varFile := filepath.Join(dir, "keys.json")
	os.WriteFile(varFile, []byte(keys.String()), 0o644)

	abs, _ := filepath.Abs(*bin)
	if *what == "ssh" {
		benchSSH(abs, *hosts, *runs)
		return
	}
	if *what == "saas" {
		benchSaaS(abs, *accounts, *runs)
		return
	}
	if *what == "saas-limited" {
		took, reqs, throttled := measureSaaSLimited(abs, *accounts)
		fmt.Printf("%d requests, %d 429 (%.2f%%), %.1f s\n", reqs, throttled, 100*float64(throttled)/float64(reqs), took.Seconds())
		return
	}
	if *what == "saas-one" {
		benchSaaSOne(abs, *accounts, *runs, *serverCPUs)
		return
	}
	if *what == "entra" {
		benchEntra(abs, *accounts, *runs, *parallelism)
		return
	}
	if *what == "ssh-sweep" {
		benchSSHSweep(abs, *hosts, *runs)
		return
	}
	if *what == "entra-rules" {
		benchInboxRules(abs, 2000, *runs)
		return
	}
	if *what == "backup" {
		benchBackup(abs, *sizeMB, *runs)
		return
	}
	if *what == "ad-sweep" {
		benchADSweep(abs, *accounts, *ous, *runs)
		return
	}
	if *what == "ad" {
		benchAD(abs, *accounts, *runs)
		return
	}
	if *what == "apply" {
		benchApply(abs, dir, varFile, *n, *runs)
		return
	}
	fmt.Printf("switchover validate + plan of a runbook with %d core.noop instances (for_each), %d runs each, %d CPUs\n\n", *n, *runs, numCPU())
	fmt.Printf("%-36s %10s %10s %16s %18s\n", "command", "best", "worst", "switchover RSS", "with plugins RSS")
	for _, c := range [][]string{
		{"validate", "-var-file", varFile, dir},
		{"plan", "-var-file", varFile, dir},
		{"plan", "-parallelism", "10", "-out", filepath.Join(dir, "p.plan"), "-var-file", varFile, dir},
	} {
		var best, worst time.Duration
		var rss, tree int64
		for r := 0; r < *runs; r++ {
			d, m, t := run(abs, c)
			if best == 0 || d < best {
				best = d
			}
			worst = max(worst, d)
			rss, tree = max(rss, m), max(tree, t)
		}
		label := strings.Join(c, " ")
		label = strings.ReplaceAll(label, dir, "DIR")
		label = strings.ReplaceAll(label, varFile, "keys.json")
		if len(label) > 36 {
			label = label[:33] + "..."
		}
		fmt.Printf("%-36s %9.2fs %9.2fs %13.1f MB %15.1f MB\n", label, best.Seconds(), worst.Seconds(), float64(rss)/1024, float64(tree)/1024)
	}
}

func numCPU() int {
	b, _ := os.ReadFile("/proc/cpuinfo")
	return strings.Count(string(b), "processor\t:")
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "benchplan:", err)
	os.Exit(1)
}

// run returns the wall time, switchover's peak RSS (KB, exact) and the
// sampled peak of the summed RSS of switchover and its children (KB).
func run(bin string, args []string) (time.Duration, int64, int64) {
	cmd := exec.Command(bin, args...)
	cmd.Stdout = nil
	var stderr strings.Builder
	cmd.Stderr = &stderr
	start := time.Now()
	if err := cmd.Start(); err != nil {
		fail(err)
	}
	done := make(chan struct{})
	peak := make(chan int64)
	go func() {
		var p int64
		t := time.NewTicker(5 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-done:
				peak <- p
				return
			case <-t.C:
				p = max(p, treeRSS(cmd.Process.Pid))
			}
		}
	}()
	err := cmd.Wait()
	d := time.Since(start)
	close(done)
	tree := <-peak
	if err != nil {
		fail(fmt.Errorf("%s %v: %v\n%s", bin, args, err, stderr.String()))
	}
	ru := cmd.ProcessState.SysUsage().(*syscall.Rusage)
	return d, ru.Maxrss, max(tree, ru.Maxrss)
}

// treeRSS sums VmRSS (KB) of pid and its descendants.
func treeRSS(root int) int64 {
	ents, _ := os.ReadDir("/proc")
	parent := map[int]int{}
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		s := string(b)
		i := strings.LastIndexByte(s, ')')
		f := strings.Fields(s[i+1:])
		if len(f) > 2 {
			pp, _ := strconv.Atoi(f[1])
			parent[pid] = pp
		}
	}
	in := func(pid int) bool {
		for pid != 0 {
			if pid == root {
				return true
			}
			pid = parent[pid]
		}
		return false
	}
	var sum int64
	for pid := range parent {
		if !in(pid) {
			continue
		}
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
		if err != nil {
			continue
		}
		for _, l := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(l, "VmRSS:") {
				f := strings.Fields(l)
				if len(f) >= 2 {
					v, _ := strconv.ParseInt(f[1], 10, 64)
					sum += v
				}
			}
		}
	}
	return sum
}
