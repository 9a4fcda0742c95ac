// Command demo is `make demo` and `make demo-down`: the whole switchover
// against a local lab.
//
//	demo up   -dir DIR -bin bin/switchover   starts the lab (in the background), runs the switch, checks, prints where the results are
//	demo down -dir DIR                       stops the lab
//	demo serve -dir DIR                      (the background process that holds the lab)
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/switchover/switchover/internal/demo"
)

// ready is what the lab process writes once the lab is up.
type ready struct {
	Vars     map[string]any `json:"vars"`
	Env      []string       `json:"env"`
	CheckURL string         `json:"check_url"`
	Error    string         `json:"error,omitempty"`
}

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: demo up|down|serve -dir DIR [-bin SWITCHOVER]")
		os.Exit(2)
	}
	fs := flag.NewFlagSet(os.Args[1], flag.ExitOnError)
	dir := fs.String("dir", filepath.Join(os.TempDir(), "switchover-demo"), "the demo's directory")
	bin := fs.String("bin", "bin/switchover", "the switchover binary")
	fs.Parse(os.Args[2:])
	abs, err := filepath.Abs(*dir)
	if err == nil {
		*dir = abs
	}
	if b, err := filepath.Abs(*bin); err == nil {
		*bin = b
	}
	switch os.Args[1] {
	case "up":
		err = up(*dir, *bin)
	case "down":
		err = down(*dir, true)
	case "serve":
		err = serve(*dir)
	default:
		err = fmt.Errorf("unknown command %q: up, down or serve", os.Args[1])
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "demo: %v\n", err)
		os.Exit(1)
	}
}

func say(format string, a ...any) {
	fmt.Printf("[%s] %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, a...))
}

func up(dir, bin string) error {
	start := time.Now()
	if err := down(dir, false); err != nil {
		return err
	}
	if err := os.RemoveAll(dir); err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	if _, err := os.Stat(bin); err != nil {
		return fmt.Errorf("%s: %v (make build)", bin, err)
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	logf, err := os.Create(filepath.Join(dir, "lab.log"))
	if err != nil {
		return err
	}
	defer logf.Close()
	// The lab lives in a process of its own, in its own session: it stays
	// up after this command, until `make demo-down`.
	cmd := exec.Command(self, "serve", "-dir", dir)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "lab.pid"), []byte(strconv.Itoa(cmd.Process.Pid)), 0o600); err != nil {
		return err
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	say("lab: starting sshd hosts, a Samba AD DC, the SCIM server, the RMM, the Graph test server and a restic repository on loopback (log: %s)", logf.Name())
	r, err := waitReady(dir, exited)
	if err != nil {
		return err
	}
	say("lab: up in %s, seeded with OldMSP's keys, accounts, admins, guests, apps and tokens", time.Since(start).Round(time.Second))
	logPath := filepath.Join(dir, "switchover.log")
	runLog, err := os.Create(logPath)
	if err != nil {
		return err
	}
	defer runLog.Close()
	res, err := demo.Run(context.Background(), demo.Options{Bin: bin, Dir: dir, Vars: r.Vars, Env: r.Env, Log: runLog,
		Progress: func(s string) { say("%s", s) }})
	if err != nil {
		return fmt.Errorf("%v\n  the commands and their output: %s\n  the lab is still up: make demo-down stops it", err, logPath)
	}
	resp, err := http.Get(r.CheckURL)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	var findings []demo.Finding
	if err := json.NewDecoder(resp.Body).Decode(&findings); err != nil {
		return fmt.Errorf("the check: %v", err)
	}
	var works []string
	for _, f := range findings {
		if f.Works {
			works = append(works, f.What)
		}
	}
	if len(works) > 0 {
		return fmt.Errorf("the old provider's credentials still work: %s", strings.Join(works, "; "))
	}
	say("check: tried the old provider's %d ways in (SSH keys, passwords and its user CA's certificates; its cron jobs and timers; AD passwords, DCSync rights and shadow credentials; Entra, PSA, RMM token, repository password): none works", len(findings))
	fmt.Printf(`
Done in %[1]s. The old provider is out; the new provider's results:
  checklist (Markdown)    %[2]s
  checklist (HTML)        %[3]s
  handover bundle         %[4]s   (bin/switchover handover open -identity %[5]s -signer %[11]s %[4]s)
  runbook                 %[6]s   (runbooks/full-switch, with its modules)
  every command's output  %[7]s
Due later: %[8]s (the second krbtgt reset waits 10 hours after the first).

Try it by hand (the lab's sensitive values are in %[9]s; the repository's password is the
new one since the rotation):
  set -a; . %[9]s; set +a
  export SWITCHOVER_VAR_backup_password="$(bin/switchover secrets show backups/restic/office %[6]s)"
  bin/switchover status %[6]s
  bin/switchover plan -var-file %[10]s %[6]s
make demo-down stops the lab.
`, time.Since(start).Round(time.Second), res.Checklist, res.HTML, res.Bundle, res.Identity, res.Runbook, logPath,
		strings.Join(res.Due, ", "), filepath.Join(dir, "lab.env"), filepath.Join(dir, "lab.vars.json"), res.Signer)
	return nil
}

func waitReady(dir string, exited chan error) (*ready, error) {
	path := filepath.Join(dir, "lab.json")
	seen := 0
	for {
		// The lab process's progress lines, as they come.
		if f, err := os.Open(filepath.Join(dir, "lab.log")); err == nil {
			sc := bufio.NewScanner(f)
			n := 0
			for sc.Scan() {
				n++
				if n > seen && strings.HasPrefix(sc.Text(), "  up: ") {
					say("lab: %s", strings.TrimPrefix(sc.Text(), "  "))
				}
			}
			seen = n
			f.Close()
		}
		if b, err := os.ReadFile(path); err == nil {
			var r ready
			if err := json.Unmarshal(b, &r); err != nil {
				return nil, err
			}
			if r.Error != "" {
				return nil, fmt.Errorf("the lab did not start: %s (log: %s)", r.Error, filepath.Join(dir, "lab.log"))
			}
			return &r, nil
		}
		select {
		case err := <-exited:
			b, _ := os.ReadFile(filepath.Join(dir, "lab.log"))
			return nil, fmt.Errorf("the lab process ended (%v): %s", err, b)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func serve(dir string) error {
	lab, err := demo.Start(filepath.Join(dir, "lab"), func(s string) { fmt.Println(s) })
	write := func(r ready) error {
		b, _ := json.MarshalIndent(r, "", "  ")
		tmp := filepath.Join(dir, "lab.json.tmp")
		if err := os.WriteFile(tmp, b, 0o600); err != nil {
			return err
		}
		return os.Rename(tmp, filepath.Join(dir, "lab.json"))
	}
	if err != nil {
		return errors.Join(err, write(ready{Error: err.Error()}))
	}
	defer lab.Stop()
	vars, env, err := lab.Values()
	if err != nil {
		return errors.Join(err, write(ready{Error: err.Error()}))
	}
	// For trying commands by hand: the lab's sensitive values.
	if err := os.WriteFile(filepath.Join(dir, "lab.env"), []byte(strings.Join(env, "\n")+"\n"), 0o600); err != nil {
		return err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/check", func(w http.ResponseWriter, r *http.Request) {
		findings, err := lab.Check()
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		json.NewEncoder(w).Encode(findings)
	})
	go http.Serve(ln, mux)
	if err := write(ready{Vars: vars, Env: env, CheckURL: "http://" + ln.Addr().String() + "/check"}); err != nil {
		return err
	}
	fmt.Println("lab up; SIGTERM stops it")
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, os.Interrupt, syscall.SIGTERM)
	<-ch
	fmt.Println("stopping the lab")
	return nil
}

// down stops the lab process of dir, if one runs.
func down(dir string, verbose bool) error {
	b, err := os.ReadFile(filepath.Join(dir, "lab.pid"))
	if err != nil {
		if verbose {
			say("no demo lab runs in %s", dir)
		}
		return nil
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	p, err := os.FindProcess(pid)
	if pid <= 0 || err != nil || p.Signal(syscall.Signal(0)) != nil {
		os.Remove(filepath.Join(dir, "lab.pid"))
		return nil
	}
	p.Signal(syscall.SIGTERM)
	for i := 0; i < 150 && p.Signal(syscall.Signal(0)) == nil; i++ {
		time.Sleep(100 * time.Millisecond)
	}
	if p.Signal(syscall.Signal(0)) == nil {
		p.Kill()
	}
	os.Remove(filepath.Join(dir, "lab.pid"))
	if verbose {
		say("stopped the demo lab (pid %d); its results stay in %s", pid, dir)
	}
	return nil
}
