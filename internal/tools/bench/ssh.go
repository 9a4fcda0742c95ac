package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/switchover/switchover/internal/testing/sshlab"
	sshsweep "github.com/switchover/switchover/plugins/ssh"
)

// benchSSH measures one job over real sshd hosts: set alice's password and
// remove the old provider's key from root's authorized_keys.
func benchSSH(bin string, hosts, runs int) {
	lab, stop := startLab(hosts)
	defer stop()
	oldPub, _ := os.ReadFile(lab.OldMSPKeyFile + ".pub")
	reset := func() {
		var wg sync.WaitGroup
		for _, h := range lab.Hosts {
			wg.Add(1)
			go func(h *sshlab.Host) {
				defer wg.Done()
				if _, err := h.Run("grep -q oldmsp@ /root/.ssh/authorized_keys || printf '%s' '" + string(oldPub) + "' >> /root/.ssh/authorized_keys"); err != nil {
					fail(err)
				}
			}(h)
		}
		wg.Wait()
	}
	check := func(name string) {
		for _, h := range lab.Hosts {
			out, _ := h.Run("grep -c oldmsp@ /root/.ssh/authorized_keys || true")
			if strings.TrimSpace(out) != "0" {
				fail(fmt.Errorf("%s left the old key on %s", name, h.Name))
			}
		}
	}
	type row struct {
		name string
		best time.Duration
		cpu  float64 // CPU seconds the whole machine spent in the best run
		note string
	}
	var rows []row
	measure := func(name, note string, f func() error) {
		var best time.Duration
		var bestCPU float64
		for r := 0; r < runs; r++ {
			reset()
			cpu0 := machineCPU()
			start := time.Now()
			if err := f(); err != nil {
				fmt.Fprintf(os.Stderr, "%s: %v\n", name, err)
				rows = append(rows, row{name, 0, 0, "FAILED: " + firstLine(err.Error())})
				return
			}
			d := time.Since(start)
			cpu := machineCPU() - cpu0
			check(name)
			if best == 0 || d < best {
				best, bestCPU = d, cpu
			}
		}
		rows = append(rows, row{name, best, bestCPU, note})
	}

	measure(fmt.Sprintf("switchover apply (-parallelism %d)", 2*hosts), "plan, apply, verify each step (fresh password login)", func() error {
		return switchoverSSH(bin, lab)
	})
	rows[len(rows)-1].note += fmt.Sprintf("; switchover and its plugin used %.2f CPU s of it", ownCPU.Seconds())
	measure("bare Go, one connection per host", "the floor, without the verification login", func() error {
		return floor(lab, false)
	})
	measure("bare Go, + verification login", "the floor doing the same checks as switchover", func() error {
		return floor(lab, true)
	})
	if _, err := exec.LookPath("ansible-playbook"); err == nil {
		measure("ansible-playbook (forks 20)", "ansible.builtin.user + ansible.posix.authorized_key, gather_facts: false", func() error {
			return ansibleSSH(lab, false)
		})
		measure("ansible-playbook (forks 20), with facts", "the same with Ansible's default fact gathering", func() error {
			return ansibleSSH(lab, true)
		})
	} else {
		rows = append(rows, row{"ansible-playbook (forks 20)", 0, 0, "not installed (apt-get install ansible)"})
	}
	fmt.Printf("Rotate alice's password and remove the old provider's key from root's authorized_keys\non %d real sshd hosts (isolated on 127.0.0.1), best of %d runs, %d CPUs\n\n", hosts, runs, numCPU())
	fmt.Printf("%-38s %8s %9s  %s\n", "tool", "seconds", "CPU s", "(CPU: the whole machine, sshds included)")
	for _, r := range rows {
		s, c := "-", "-"
		if r.best > 0 {
			s, c = fmt.Sprintf("%.2f", r.best.Seconds()), fmt.Sprintf("%.2f", r.cpu)
		}
		fmt.Printf("%-38s %8s %9s  %s\n", r.name, s, c, r.note)
	}
}

func firstLine(s string) string {
	f, _, _ := strings.Cut(s, "\n")
	return f
}

// ownCPU is the CPU time of switchover and its plugins in the last run.
var ownCPU time.Duration

// startLab starts hosts sshd hosts in a directory of their own; stop
// stops them and removes it.
func startLab(hosts int) (*sshlab.Lab, func()) {
	dir, err := os.MkdirTemp("", "bench-ssh-")
	if err != nil {
		fail(err)
	}
	lab, err := sshlab.New(dir, sshlab.Options{Hosts: hosts})
	stop := func() {
		if lab != nil {
			lab.Stop()
		}
		os.RemoveAll(dir)
	}
	if err != nil {
		stop()
		fail(err)
	}
	return lab, stop
}

// labBlock is a runbook's head for the lab: the ssh plugin and
// var.hosts, name = port.
func labBlock(lab *sshlab.Lab) string {
	var hosts []string
	for _, h := range lab.Hosts {
		hosts = append(hosts, fmt.Sprintf("%s = %d", h.Name, h.Port))
	}
	sort.Strings(hosts)
	return fmt.Sprintf(`runbook "bench" {}
plugin "ssh" {
  host             = "127.0.0.1"
  private_key_file = %q
  known_hosts      = %q
}
variable "hosts" {
  default = { %s }
}
`, lab.AdminKeyFile, lab.KnownHosts, strings.Join(hosts, ", "))
}

func switchoverSSH(bin string, lab *sshlab.Lab) error {
	rb, err := os.MkdirTemp("", "bench-ssh-rb-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(rb)
	src := labBlock(lab) + `
step "ssh.rotate_password" "alice" {
  for_each = var.hosts
  port     = each.value
  account  = "alice"
  password = secret("alice@${each.key}")
}
step "ssh.authorized_keys" "drop" {
  for_each = var.hosts
  port     = each.value
  user     = "root"
  remove   = { comment_matches = "^oldmsp@" }
}
`
	if err := os.WriteFile(filepath.Join(rb, "main.sw.hcl"), []byte(src), 0o644); err != nil {
		return err
	}
	args := []string{"apply", "-auto-approve", "-parallelism", fmt.Sprint(2 * len(lab.Hosts))}
	if os.Getenv("BENCH_SSH_JSON") != "" {
		args = append(args, "-json")
	}
	start := time.Now()
	cmd := exec.Command(bin, append(args, rb)...)
	out, err := cmd.CombinedOutput()
	if cmd.ProcessState != nil {
		// switchover and the plugin processes it reaped.
		ru := cmd.ProcessState.SysUsage().(*syscall.Rusage)
		ownCPU = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	if os.Getenv("BENCH_SSH_JSON") != "" {
		fmt.Fprintf(os.Stderr, "start %s\n%s\n", start.Format(time.RFC3339Nano), out)
	}
	if err != nil {
		return fmt.Errorf("%v\n%s", err, out)
	}
	return nil
}

// floor does the same job with one SSH connection per host and nothing else.
func floor(lab *sshlab.Lab, verify bool) error {
	return eachHost(lab, func(i int, h *sshlab.Host, signer ssh.Signer) error {
		return floorHost(h, signer, fmt.Sprintf("Floor-Pw-%d-%d", i, time.Now().UnixNano()), verify)
	})
}

// eachHost runs f on every lab host at once, with the admin key; the
// first error.
func eachHost(lab *sshlab.Lab, f func(i int, h *sshlab.Host, signer ssh.Signer) error) error {
	b, err := os.ReadFile(lab.AdminKeyFile)
	if err != nil {
		return err
	}
	signer, err := ssh.ParsePrivateKey(b)
	if err != nil {
		return err
	}
	var wg sync.WaitGroup
	errs := make(chan error, len(lab.Hosts))
	for i, h := range lab.Hosts {
		wg.Add(1)
		go func(i int, h *sshlab.Host) {
			defer wg.Done()
			errs <- f(i, h, signer)
		}(i, h)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

func floorHost(h *sshlab.Host, signer ssh.Signer, pw string, verify bool) error {
	cfg := &ssh.ClientConfig{User: "root", Auth: []ssh.AuthMethod{ssh.PublicKeys(signer)}, HostKeyCallback: ssh.FixedHostKey(h.HostKey), Timeout: 10 * time.Second}
	c, err := ssh.Dial("tcp", h.Addr(), cfg)
	if err != nil {
		return err
	}
	defer c.Close()
	run := func(cmd, stdin string) error {
		s, err := c.NewSession()
		if err != nil {
			return err
		}
		defer s.Close()
		s.Stdin = strings.NewReader(stdin)
		if out, err := s.CombinedOutput(cmd); err != nil {
			return fmt.Errorf("%s: %v %s", h.Name, err, out)
		}
		return nil
	}
	if err := run("chpasswd", "alice:"+pw+"\n"); err != nil {
		return err
	}
	if err := run(`sed -i '/ oldmsp@/d' /root/.ssh/authorized_keys`, ""); err != nil {
		return err
	}
	if !verify {
		return nil
	}
	vc, err := ssh.Dial("tcp", h.Addr(), &ssh.ClientConfig{User: "alice", Auth: []ssh.AuthMethod{ssh.Password(pw)}, HostKeyCallback: ssh.FixedHostKey(h.HostKey), Timeout: 10 * time.Second})
	if err != nil {
		return err
	}
	vc.Close()
	return nil
}

func ansibleSSH(lab *sshlab.Lab, facts bool) error {
	d, err := os.MkdirTemp("", "bench-ansible-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(d)
	var inv strings.Builder
	inv.WriteString("[lab]\n")
	for _, h := range lab.Hosts {
		fmt.Fprintf(&inv, "%s ansible_host=127.0.0.1 ansible_port=%d\n", h.Name, h.Port)
	}
	fmt.Fprintf(&inv, "[lab:vars]\nansible_user=root\nansible_ssh_private_key_file=%s\nansible_ssh_common_args='-o UserKnownHostsFile=%s -o StrictHostKeyChecking=yes'\n", lab.AdminKeyFile, lab.KnownHosts)
	os.WriteFile(filepath.Join(d, "inventory"), []byte(inv.String()), 0o600)
	play := fmt.Sprintf(`- hosts: lab
  gather_facts: %t
  tasks:
    - name: rotate alice's password
      ansible.builtin.user:
        name: alice
        password: "{{ 'Ansible-Pw-' ~ inventory_hostname | password_hash('sha512') }}"
    - name: remove the old provider's key
      ansible.posix.authorized_key:
        user: root
        key: "{{ lookup('file', '%s.pub') }}"
        state: absent
`, facts, lab.OldMSPKeyFile)
	os.WriteFile(filepath.Join(d, "play.yml"), []byte(play), 0o600)
	cmd := exec.Command("ansible-playbook", "-i", filepath.Join(d, "inventory"), "-f", "20", filepath.Join(d, "play.yml"))
	cmd.Env = append(os.Environ(), "ANSIBLE_HOST_KEY_CHECKING=True", "ANSIBLE_LOCAL_TEMP="+d, "ANSIBLE_REMOTE_TEMP=/tmp/.ansible-tmp", "ANSIBLE_NOCOLOR=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("%v\n%s", err, out)
	}
	return nil
}

// machineCPU is the CPU time (user+system, all cores) the machine has spent.
func machineCPU() float64 {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	var ticks float64
	for i, v := range f[1:] {
		if i == 3 || i == 4 { // idle, iowait
			continue
		}
		var x float64
		fmt.Sscan(v, &x)
		ticks += x
	}
	return ticks / 100 // USER_HZ
}

// benchSSHSweep: ssh.find_persistence on every lab host (each with a key,
// a CA, a cron job and a timer of the old provider), as `switchover plan`
// reads it, against a bare Go floor running the sweep's two scripts (the
// plugin's own, sshsweep.SweepScripts) over one connection per host.
func benchSSHSweep(bin string, hosts, runs int) {
	lab, stop := startLab(hosts)
	defer stop()
	for _, h := range lab.Hosts {
		if _, err := h.Run(`echo '*/5 * * * * root curl -s https://rmm.oldmsp.example/agent | sh' > /etc/cron.d/oldmsp-agent
printf '[Timer]\nOnCalendar=hourly\n# oldmsp checkin\n' > /etc/systemd/system/oldmsp-checkin.timer`); err != nil {
			fail(err)
		}
	}
	mentions := []string{"oldmsp"}
	var sbest, sworst, fbest, fworst time.Duration
	for r := 0; r < runs; r++ {
		start := time.Now()
		if err := sweepSwitchover(bin, lab, hosts); err != nil {
			fail(err)
		}
		d := time.Since(start)
		if sbest == 0 || d < sbest {
			sbest = d
		}
		sworst = max(sworst, d)
		start = time.Now()
		if err := hostSweepFloor(lab, mentions); err != nil {
			fail(err)
		}
		d = time.Since(start)
		if fbest == 0 || d < fbest {
			fbest = d
		}
		fworst = max(fworst, d)
	}
	fmt.Printf("\nPersistence sweep of %d real sshd hosts (isolated on 127.0.0.1): best and worst of %d runs, %d CPUs\n\n", hosts, runs, numCPU())
	fmt.Printf("%-58s %7s %7s\n", "what", "best s", "worst s")
	fmt.Printf("%-58s %7.2f %7.2f\n", "switchover plan (ssh.find_persistence per host, whole command)", sbest.Seconds(), sworst.Seconds())
	fmt.Printf("%-58s %7.2f %7.2f\n", "floor: bare Go, the same two scripts, one connection/host", fbest.Seconds(), fworst.Seconds())
	fmt.Printf("\nswitchover / floor: %.2fx (goal: within 1.5x)\n", sbest.Seconds()/fbest.Seconds())
}

func sweepSwitchover(bin string, lab *sshlab.Lab, hosts int) error {
	rb, err := os.MkdirTemp("", "bench-sweep-rb-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(rb)
	src := labBlock(lab) + `
step "ssh.find_persistence" "sweep" {
  for_each = var.hosts
  port     = each.value
  mentions = ["oldmsp"]
}
`
	if err := os.WriteFile(filepath.Join(rb, "main.sw.hcl"), []byte(src), 0o644); err != nil {
		return err
	}
	out, err := exec.Command(bin, "plan", "-json", "-parallelism", fmt.Sprint(hosts), rb).CombinedOutput()
	if err != nil {
		return fmt.Errorf("switchover plan: %v\n%s", err, out)
	}
	var plan struct {
		Instances []struct {
			Summary string `json:"summary"`
		} `json:"instances"`
	}
	if err := json.Unmarshal(out, &plan); err != nil {
		return fmt.Errorf("switchover plan -json: %v", err)
	}
	found := 0
	for _, in := range plan.Instances {
		// "N findings on HOST, K of the old provider's keys and M other
		// items to remove": the cron job and the timer at least.
		if i := strings.Index(in.Summary, " and "); i > 0 {
			var items int
			if _, err := fmt.Sscanf(in.Summary[i:], " and %d other items to remove", &items); err == nil && items >= 2 {
				found++
			}
		}
	}
	if found != hosts {
		first := ""
		if len(plan.Instances) > 0 {
			first = plan.Instances[0].Summary
		}
		return fmt.Errorf("the sweep found the cron job and the timer on %d of %d hosts (%d instances; the first says %q)", found, hosts, len(plan.Instances), first)
	}
	return nil
}

// hostSweepFloor runs the sweep's scripts on every host at once, one
// connection per host, as root.
func hostSweepFloor(lab *sshlab.Lab, mentions []string) error {
	return eachHost(lab, func(_ int, h *sshlab.Host, signer ssh.Signer) error {
		return sweepFloorHost(h, signer, mentions)
	})
}

func sweepFloorHost(h *sshlab.Host, signer ssh.Signer, mentions []string) error {
	cfg := &ssh.ClientConfig{User: "root", Auth: []ssh.AuthMethod{ssh.PublicKeys(signer)}, HostKeyCallback: ssh.FixedHostKey(h.HostKey), Timeout: 10 * time.Second}
	c, err := ssh.Dial("tcp", h.Addr(), cfg)
	if err != nil {
		return err
	}
	defer c.Close()
	run := func(script string) (string, error) {
		s, err := c.NewSession()
		if err != nil {
			return "", err
		}
		defer s.Close()
		out, err := s.Output("sh -c " + shellQuote(script))
		return string(out), err
	}
	first, second := sshsweep.SweepScripts(mentions)
	out, err := run(first)
	if err != nil {
		return fmt.Errorf("%s: %v", h.Name, err)
	}
	if !strings.Contains(out, "oldmsp-checkin.timer") {
		return fmt.Errorf("%s: the floor's sweep does not see the timer", h.Name)
	}
	_, err = run(second(out))
	return err
}

func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }
