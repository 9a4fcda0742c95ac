package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"
)

type event struct {
	Type    string  `json:"type"`
	Elapsed float64 `json:"elapsed_seconds"`
	Done    int     `json:"done"`
	Already int     `json:"already_done"`
}

// applyRun runs `switchover apply -json` and reads its events. killAt > 0
// kills it with SIGKILL once that many instances are done. It returns the
// wall time, the apply phase (from the final event), the time from the
// start until the first event of a step that runs now, and the final event.
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
	for sc.Scan() {
		var ev event
		if json.Unmarshal(sc.Bytes(), &ev) != nil {
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
		os.RemoveAll(filepath.Join(dir, ".switchover"))
		wall, phase, _, last := applyRun(bin, dir, varFile, 0)
		if last.Done != n {
			fail(fmt.Errorf("apply did %d of %d", last.Done, n))
		}
		if bestWall == 0 || wall < bestWall {
			bestWall, bestPhase = wall, phase
		}
	}
	row("apply, whole command (best of runs)", bestWall, n)
	row("  of which the apply phase", bestPhase, n)

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
}
