// Package pglab starts a real PostgreSQL (Debian's postgresql: initdb in a
// temporary directory, a loopback port, password authentication) for
// tests. Run as root, the server runs as nobody: postgres refuses root.
package pglab

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"syscall"
	"time"
)

// User is the database user the lab makes.
const User = "switchover"

// Server is one running PostgreSQL.
type Server struct {
	Port     int
	Password string
	dir      string
	cmd      *exec.Cmd
	exited   chan struct{}
	cred     *syscall.Credential
}

// binDir is the newest Debian PostgreSQL's bin directory.
func binDir() (string, error) {
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool {
		a, _ := strconv.Atoi(filepath.Base(filepath.Dir(dirs[i])))
		b, _ := strconv.Atoi(filepath.Base(filepath.Dir(dirs[j])))
		return a < b
	})
	if len(dirs) == 0 {
		return "", fmt.Errorf("PostgreSQL is not installed (apt-get install postgresql; .ci/deps does)")
	}
	return dirs[len(dirs)-1], nil
}

// Start makes a cluster in a directory of its own (under /tmp, which
// nobody can reach) and starts it; Stop ends it and removes the directory.
func Start() (*Server, error) {
	bin, err := binDir()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("/tmp", "switchover-pglab-")
	if err != nil {
		return nil, err
	}
	pw := make([]byte, 12)
	rand.Read(pw)
	s := &Server{Password: hex.EncodeToString(pw), dir: dir}
	if os.Geteuid() == 0 {
		s.cred = &syscall.Credential{Uid: 65534, Gid: 65534} // nobody
	}
	data := filepath.Join(dir, "data")
	pwFile := filepath.Join(dir, "pw")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	if err := os.WriteFile(pwFile, []byte(s.Password), 0o600); err != nil {
		return nil, err
	}
	if s.cred != nil {
		for _, p := range []string{dir, pwFile} {
			if err := os.Chown(p, 65534, 65534); err != nil {
				return nil, err
			}
		}
	}
	if out, err := s.command(filepath.Join(bin, "initdb"), "-D", data, "-U", User, "--pwfile", pwFile, "--auth", "scram-sha-256", "-E", "UTF8", "--no-sync").CombinedOutput(); err != nil {
		return nil, fmt.Errorf("initdb: %v: %s", err, out)
	}
	for try := 0; try < 5; try++ {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		s.Port = ln.Addr().(*net.TCPAddr).Port
		ln.Close()
		s.cmd = s.command(filepath.Join(bin, "postgres"), "-D", data, "-p", strconv.Itoa(s.Port), "-c", "listen_addresses=127.0.0.1", "-c", "unix_socket_directories="+dir, "-c", "fsync=on")
		var log bytes.Buffer
		s.cmd.Stdout, s.cmd.Stderr = &log, &log
		if err := s.cmd.Start(); err != nil {
			return nil, err
		}
		exited := make(chan struct{})
		s.exited = exited
		go func() { s.cmd.Wait(); close(exited) }()
		for i := 0; i < 300; i++ {
			select {
			case <-exited:
				i = 300
				continue
			default:
			}
			// Accepting connections, not only listening ("starting up").
			if exec.Command(filepath.Join(bin, "pg_isready"), "-q", "-h", "127.0.0.1", "-p", strconv.Itoa(s.Port)).Run() == nil {
				return s, nil
			}
			time.Sleep(50 * time.Millisecond)
		}
		s.cmd.Process.Kill()
		<-exited
		if try == 4 {
			return nil, fmt.Errorf("postgres did not start: %s", log.String())
		}
	}
	return nil, fmt.Errorf("postgres did not start")
}

func (s *Server) command(name string, args ...string) *exec.Cmd {
	cmd := exec.Command(name, args...)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "LC_ALL=C"}
	cmd.Dir = s.dir
	if s.cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: s.cred, Pdeathsig: syscall.SIGKILL}
	} else {
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	}
	return cmd
}

// Addr is host:port.
func (s *Server) Addr() string { return "127.0.0.1:" + strconv.Itoa(s.Port) }

// URL is a connection string for database db (the password in it).
func (s *Server) URL(db string) string {
	return fmt.Sprintf("postgres://%s:%s@%s/%s?sslmode=disable", User, s.Password, s.Addr(), db)
}

// CreateDatabase makes a database (one per test keeps tests apart).
func (s *Server) CreateDatabase(name string) error {
	bin, err := binDir()
	if err != nil {
		return err
	}
	cmd := exec.Command(filepath.Join(bin, "createdb"), "-h", "127.0.0.1", "-p", strconv.Itoa(s.Port), "-U", User, name)
	cmd.Env = append(os.Environ(), "PGPASSWORD="+s.Password)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("createdb %s: %v: %s", name, err, out)
	}
	return nil
}

// Stop ends the server (fast shutdown) and removes its directory.
func (s *Server) Stop() {
	if s.cmd != nil && s.cmd.Process != nil {
		s.cmd.Process.Signal(syscall.SIGINT)
		select {
		case <-s.exited:
		case <-time.After(10 * time.Second):
			s.cmd.Process.Kill()
			<-s.exited
		}
	}
	os.RemoveAll(s.dir)
}
