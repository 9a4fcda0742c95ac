package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/switchover/switchover/internal/testing/pglab"
)

// benchApplyPG: the same apply with the state, lock and audit trail in a
// real PostgreSQL on loopback (a fresh database per run); the best apply
// phase.
func benchApplyPG(bin, dir, varFile string, n, runs int) time.Duration {
	lab, err := pglab.Start()
	if err != nil {
		fail(err)
	}
	defer lab.Stop()
	src, _ := os.ReadFile(filepath.Join(dir, "main.sw.hcl"))
	var best time.Duration
	for r := 0; r < runs; r++ {
		db := fmt.Sprintf("bench%d", r)
		if err := lab.CreateDatabase(db); err != nil {
			fail(err)
		}
		os.Setenv("SWITCHOVER_PG_URL", lab.URL(db))
		pdir := filepath.Join(dir, fmt.Sprintf("pg%d", r))
		os.MkdirAll(pdir, 0o755)
		os.WriteFile(filepath.Join(pdir, "main.sw.hcl"), append(src, []byte("backend \"pg\" {\n  workspace = \"bench\"\n}\n")...), 0o644)
		_, phase := applyFresh(bin, pdir, varFile, n, "apply with pg")
		least(&best, phase)
	}
	return best
}

// benchApplyIsolated: the same apply with the core plugin in a process of
// its own (as every plugin that works on a system runs), over gRPC; the
// best apply phase.
func benchApplyIsolated(bin, dir, varFile string, n, runs int) time.Duration {
	os.Setenv("SWITCHOVER_PLUGIN_PROCESSES", "all")
	defer os.Unsetenv("SWITCHOVER_PLUGIN_PROCESSES")
	var best time.Duration
	for r := 0; r < runs; r++ {
		_, phase := applyFresh(bin, dir, varFile, n, "apply with the plugin in a process")
		least(&best, phase)
	}
	return best
}

// applyFresh is applyTimed on a new workspace, which must do all n
// instances.
func applyFresh(bin, dir, varFile string, n int, what string) (wall, phase time.Duration) {
	os.RemoveAll(filepath.Join(dir, ".switchover"))
	wall, phase, last := applyTimed(bin, dir, varFile)
	if last.Done != n {
		fail(fmt.Errorf("%s did %d of %d", what, last.Done, n))
	}
	return wall, phase
}

// least keeps the shortest duration in *best (zero: none yet).
func least(best *time.Duration, d time.Duration) {
	if *best == 0 || d < *best {
		*best = d
	}
}

type event struct {
	Type    string  `json:"type"`
	Elapsed float64 `json:"elapsed_seconds"`
	Done    int     `json:"done"`
	Already int     `json:"already_done"`
}

// applyTimed runs `switchover apply -json` with its events going to a
// file, read once it has ended: nothing but switchover runs while it is
// measured (a reader of a pipe would take CPU from it at every line). It
// returns the wall time, the apply phase and the final event.
func applyTimed(bin, dir, varFile string) (wall, phase time.Duration, last event) {
	os.RemoveAll(filepath.Join(dir, ".switchover", "lock.json"))
	out, err := os.CreateTemp("", "switchover-bench-*.jsonl")
	if err != nil {
		fail(err)
	}
	defer os.Remove(out.Name())
	defer out.Close()
	cmd := exec.Command(bin, "apply", "-auto-approve", "-json", "-var-file", varFile, dir)
	cmd.Stdout, cmd.Stderr = out, os.Stderr
	start := time.Now()
	if err := cmd.Run(); err != nil {
		fail(fmt.Errorf("apply: %v", err))
	}
	wall = time.Since(start)
	b, err := os.ReadFile(out.Name())
	if err != nil {
		fail(err)
	}
	b = bytes.TrimRight(b, "\n")
	if err := json.Unmarshal(b[bytes.LastIndexByte(b, '\n')+1:], &last); err != nil || last.Type != "apply_finished" {
		fail(fmt.Errorf("apply: no final event (%v)", err))
	}
	return wall, time.Duration(last.Elapsed * float64(time.Second)), last
}

// applyRun runs `switchover apply -json` and reads its events as they
// come. killAt > 0 kills it with SIGKILL once that many instances are
// done. It returns the wall time, the apply phase (from the final event),
// the time from the start until the first event of a step that runs now,
// and the final event.
func applyRun(bin, dir, varFile string, killAt int) (wall, phase, firstNew time.Duration, last event) {
	os.RemoveAll(filepath.Join(dir, ".switchover", "lock.json"))
	cmd := exec.Command(bin, "apply", "-auto-approve", "-json", "-var-file", varFile, dir)
	stdout, _ := cmd.StdoutPipe()
	cmd.Stderr = os.Stderr
	start := time.Now()
	if err := cmd.Start(); err != nil {
		fail(err)
	}
	sc := bufio.NewScanner(stdout)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	done := 0
	// The type is looked for, not parsed, but in the last event: the
	// measuring process takes next to no CPU from the measured one.
	started, isDone, finished := []byte(`"type":"started"`), []byte(`"type":"done"`), []byte(`"type":"apply_finished"`)
	for sc.Scan() {
		line := sc.Bytes()
		var ev event
		switch {
		case bytes.Contains(line, started):
			ev.Type = "started"
		case bytes.Contains(line, isDone):
			ev.Type = "done"
		case bytes.Contains(line, finished):
			if json.Unmarshal(line, &ev) != nil {
				continue
			}
		default:
			continue
		}
		if (ev.Type == "started" || ev.Type == "done") && firstNew == 0 {
			firstNew = time.Since(start)
		}
		if ev.Type == "done" {
			done++
			if killAt > 0 && done == killAt {
				cmd.Process.Signal(syscall.SIGKILL)
				break
			}
		}
		if ev.Type == "apply_finished" {
			last = ev
			phase = time.Duration(ev.Elapsed * float64(time.Second))
		}
	}
	io.Copy(io.Discard, stdout)
	err := cmd.Wait()
	wall = time.Since(start)
	if killAt == 0 && err != nil {
		fail(fmt.Errorf("apply: %v", err))
	}
	return
}

func benchApply(bin, dir, varFile string, n, runs int) {
	fmt.Printf("switchover apply of %d core.noop instances with durable checkpoints (parallelism 10), %d CPUs\n", n, numCPU())
	fmt.Printf("(each instance: \"running\" recorded durably, plugin Apply with one durable checkpoint, verify, \"done\" with outputs)\n\n")
	fmt.Printf("%-44s %10s %14s\n", "measure", "seconds", "per instance")
	row := func(name string, d time.Duration, per int) {
		ps := ""
		if per > 0 {
			ps = fmt.Sprintf("%.3f ms", d.Seconds()*1000/float64(per))
		}
		fmt.Printf("%-44s %10.2f %14s\n", name, d.Seconds(), ps)
	}
	var bestWall, bestPhase time.Duration
	for r := 0; r < runs; r++ {
		wall, phase := applyFresh(bin, dir, varFile, n, "apply")
		if bestWall == 0 || wall < bestWall {
			bestWall, bestPhase = wall, phase
		}
	}
	row("apply, whole command (best of runs)", bestWall, n)
	row("  of which the apply phase", bestPhase, n)
	pgPhase := benchApplyPG(bin, dir, varFile, n, runs)
	row("  apply phase with the pg backend (PostgreSQL)", pgPhase, n)
	fmt.Printf("%-44s %9.2fx (goal: within 2x)\n", "  pg backend / file backend", pgPhase.Seconds()/bestPhase.Seconds())
	var floor time.Duration
	for r := 0; r < runs; r++ {
		least(&floor, applyFloor(dir, n))
	}
	row("floor: bare Go, the same 3 records, fsync, group commit", floor, n)
	fmt.Printf("%-44s %9.2fx (goal: within 2x)\n", "apply phase / floor", bestPhase.Seconds()/floor.Seconds())
	isolated := benchApplyIsolated(bin, dir, varFile, n, runs)
	row("  apply phase, core in a plugin process (gRPC)", isolated, n)
	fmt.Printf("%-44s %9.2fx (the process boundary: %.0f µs per instance)\n", "  plugin process / floor", isolated.Seconds()/floor.Seconds(), (isolated-bestPhase).Seconds()*1e6/float64(n))

	os.RemoveAll(filepath.Join(dir, ".switchover"))
	killWall, _, _, _ := applyRun(bin, dir, varFile, n/2)
	row(fmt.Sprintf("apply killed after %d done", n/2), killWall, 0)
	wall, phase, firstNew, last := applyRun(bin, dir, varFile, 0)
	if last.Done+last.Already != n {
		fail(fmt.Errorf("resume did %d, had %d done before, of %d", last.Done, last.Already, n))
	}
	row("resume: until the first step of the rest", firstNew, 0)
	row(fmt.Sprintf("resume: whole command (%d left, %d done before)", last.Done, last.Already), wall, last.Done)
	row("  of which the apply phase", phase, last.Done)
	applyScale(bin, dir, runs)
}

// applyScale: the apply phase and the floor from 1,000 to 50,000
// instances (the best of runs each, taken in turns): the cost per
// instance stays flat when the apply is linear.
func applyScale(bin, dir string, runs int) {
	fmt.Printf("\n%-12s %12s %16s %12s %16s %8s\n", "instances", "apply (s)", "per instance", "floor (s)", "per instance", "ratio")
	for _, n := range []int{1000, 10000, 50000} {
		varFile := filepath.Join(dir, fmt.Sprintf("keys-%d.json", n))
		keys := make([]string, n)
		for i := range keys {
			keys[i] = fmt.Sprintf("k%05d", i)
		}
		b, _ := json.Marshal(map[string]any{"keys": keys})
		if err := os.WriteFile(varFile, b, 0o644); err != nil {
			fail(err)
		}
		var phase, floor time.Duration
		for r := 0; r < runs; r++ {
			_, p := applyFresh(bin, dir, varFile, n, "apply")
			least(&phase, p)
			least(&floor, applyFloor(dir, n))
		}
		fmt.Printf("%-12d %12.2f %13.3f ms %12.2f %13.3f ms %7.2fx\n", n, phase.Seconds(), phase.Seconds()*1000/float64(n),
			floor.Seconds(), floor.Seconds()*1000/float64(n), phase.Seconds()/floor.Seconds())
	}
}

// applyFloor is what durability costs at the least: n instances, 10 at a
// time, each appending its "running" record and its checkpoint (each
// waited for until it is on the disk) and its "done" record (not waited
// for), as JSON lines with a checksum to one file; one writer writes what
// is queued at once and syncs once (group commit), as the state does.
func applyFloor(dir string, n int) time.Duration {
	f, err := os.OpenFile(filepath.Join(dir, "floor.log"), os.O_CREATE|os.O_WRONLY|os.O_TRUNC|os.O_APPEND, 0o600)
	if err != nil {
		fail(err)
	}
	defer os.Remove(f.Name())
	defer f.Close()
	type rec struct {
		line []byte
		done chan struct{} // nil: not waited for
	}
	queue := make(chan rec, 1024)
	go func() {
		var batch []rec
		var buf []byte
		for r := range queue {
			batch, buf = append(batch[:0], r), append(buf[:0], r.line...)
		more:
			for {
				select {
				case r, ok := <-queue:
					if !ok {
						break more
					}
					batch, buf = append(batch, r), append(buf, r.line...)
				default:
					break more
				}
			}
			if _, err := f.Write(buf); err != nil {
				fail(err)
			}
			if err := f.Sync(); err != nil {
				fail(err)
			}
			for _, r := range batch {
				if r.done != nil {
					close(r.done)
				}
			}
		}
	}()
	line := func(kind string, i int, wait bool) {
		b, _ := json.Marshal(map[string]any{"k": kind, "t": time.Now(), "a": fmt.Sprintf("step.each[\"%d\"]", i), "s": "done", "n": 1, "out": map[string]string{"message": "noop"}})
		b = append(b, '\n')
		r := rec{line: b}
		if wait {
			r.done = make(chan struct{})
		}
		queue <- r
		if wait {
			<-r.done
		}
	}
	start := time.Now()
	jobs := make(chan int)
	var wg sync.WaitGroup
	for w := 0; w < 10; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range jobs {
				line("status", i, true)
				line("checkpoint", i, true)
				line("status", i, false)
			}
		}()
	}
	for i := 0; i < n; i++ {
		jobs <- i
	}
	close(jobs)
	wg.Wait()
	line("end", n, true) // the last "done" records reach the disk
	close(queue)
	return time.Since(start)
}
