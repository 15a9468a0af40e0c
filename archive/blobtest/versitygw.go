package blobtest

import (
	"errors"
	"fmt"
	"go/build"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/casevault/casevault/sqldb/sqldbtest"
	"github.com/casevault/casevault/testkit"
)

// S3Server is an S3 endpoint for tests.
type S3Server struct {
	Endpoint  string // host:port, plain HTTP
	AccessKey string
	SecretKey string
	Bucket    string
	// Root is the posix directory behind the server ("" when unknown);
	// bucket contents are files under Root/<bucket>.
	Root string

	cmd    *exec.Cmd
	exited chan error
	bin    string
	dir    string
}

// EnvS3 returns the server named by CASEVAULT_TEST_S3_* (started by
// scripts/versitygw.sh), or skips (fails under CI) when it is not set or
// not reachable.
func EnvS3(t testing.TB) *S3Server {
	t.Helper()
	s := &S3Server{
		Endpoint:  os.Getenv("CASEVAULT_TEST_S3_ENDPOINT"),
		AccessKey: os.Getenv("CASEVAULT_TEST_S3_ACCESS_KEY"),
		SecretKey: os.Getenv("CASEVAULT_TEST_S3_SECRET_KEY"),
		Bucket:    os.Getenv("CASEVAULT_TEST_S3_BUCKET"),
		Root:      os.Getenv("CASEVAULT_TEST_S3_ROOT"),
	}
	if s.Bucket == "" {
		s.Bucket = "casevault-test"
	}
	if s.Endpoint == "" {
		sqldbtest.Unavailable(t, "S3 server (CASEVAULT_TEST_S3_ENDPOINT)", errors.New("not set; scripts/versitygw.sh start"))
		return nil
	}
	conn, err := net.DialTimeout("tcp", s.Endpoint, 3*time.Second)
	if err != nil {
		sqldbtest.Unavailable(t, "S3 server at "+s.Endpoint, err)
		return nil
	}
	conn.Close()
	return s
}

// VersityGWBinary finds versitygw on PATH or in GOPATH/bin.
func VersityGWBinary() (string, error) {
	if p, err := exec.LookPath("versitygw"); err == nil {
		return p, nil
	}
	dirs := []string{filepath.Join(build.Default.GOPATH, "bin"), "/root/go/bin"}
	if gp := os.Getenv("GOPATH"); gp != "" {
		dirs = append([]string{filepath.Join(gp, "bin")}, dirs...)
	}
	for _, d := range dirs {
		p := filepath.Join(d, "versitygw")
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() {
			return p, nil
		}
	}
	return "", errors.New("versitygw not found on PATH or in GOPATH/bin (go install github.com/versity/versitygw/cmd/versitygw@v1.8.0)")
}

// StartVersityGW starts a private versitygw on a free port, stopped when
// the test ends; the test may Kill it on purpose and Restart it.
func StartVersityGW(t testing.TB) *S3Server {
	t.Helper()
	bin, err := VersityGWBinary()
	if err != nil {
		sqldbtest.Unavailable(t, "versitygw", err)
		return nil
	}
	dir := t.TempDir()
	s := &S3Server{
		AccessKey: "test-" + randHex(4),
		SecretKey: randHex(16),
		Bucket:    "casevault-" + randHex(4),
		Root:      filepath.Join(dir, "root"),
		bin:       bin,
		dir:       dir,
	}
	for _, d := range []string{s.Root, filepath.Join(dir, "iam"), filepath.Join(dir, "versions")} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	s.start(t)
	return s
}

// Restart starts the killed server again on the same port and data.
func (s *S3Server) Restart(t testing.TB) {
	t.Helper()
	s.Kill()
	if s.exited != nil {
		<-s.exited
		s.exited = nil
	}
	s.start(t)
}

func (s *S3Server) start(t testing.TB) {
	t.Helper()
	logPath := filepath.Join(s.dir, "versitygw.log")
	log, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatal(err)
	}

	// The first start listens on :0 and reads its port back from /proc: a
	// port chosen here and closed could be taken by another package's test
	// server before versitygw binds it, and versitygw then waits without a
	// word while a dial reached that server instead. A restart asks for its
	// old port, and is up only once versitygw itself holds it.
	listen := s.Endpoint
	if listen == "" {
		listen = "127.0.0.1:0"
	}
	cmd := exec.Command(s.bin, "--port", listen, "--quiet", "--iam-dir", filepath.Join(s.dir, "iam"),
		"posix", "--versioning-dir", filepath.Join(s.dir, "versions"), s.Root)
	cmd.Env = append(os.Environ(), "ROOT_ACCESS_KEY="+s.AccessKey, "ROOT_SECRET_KEY="+s.SecretKey)
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		log.Close()
		t.Fatalf("start versitygw: %v", err)
	}

	s.cmd = cmd
	exited := make(chan error, 1)
	s.exited = exited
	go func() { exited <- cmd.Wait(); log.Close() }()
	t.Cleanup(func() {
		if cmd.Process != nil {
			_ = cmd.Process.Kill()
		}
		if s.exited == exited {
			<-exited
			s.exited = nil
		}
	})
	testkit.Eventually(t, 20*time.Second, "versitygw listening on "+listen, func() bool {
		select {
		case werr := <-exited:
			exited <- werr
			b, _ := os.ReadFile(logPath)
			t.Fatalf("versitygw exited at start (%v): %s", werr, b)
		default:
		}
		port, err := listeningPort(cmd.Process.Pid)
		if err != nil {
			return false
		}
		if s.Endpoint == "" {
			s.Endpoint = net.JoinHostPort("127.0.0.1", port)
		}
		return strings.HasSuffix(s.Endpoint, ":"+port)
	})
}

// listeningPort is the TCP port process pid listens on, from its socket
// descriptors and the kernel's socket tables (Linux).
func listeningPort(pid int) (string, error) {
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		return "", err
	}
	inodes := map[string]bool{}
	for _, fd := range fds {
		link, err := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", pid, fd.Name()))
		if inode, ok := strings.CutPrefix(link, "socket:["); err == nil && ok {
			inodes[strings.TrimSuffix(inode, "]")] = true
		}
	}

	for _, table := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		raw, err := os.ReadFile(table)
		if err != nil {
			return "", err
		}
		for _, line := range strings.Split(string(raw), "\n") {
			// sl local_address rem_address st ... inode: st 0A is LISTEN
			f := strings.Fields(line)
			if len(f) < 10 || f[3] != "0A" || !inodes[f[9]] {
				continue
			}
			_, hexPort, _ := strings.Cut(f[1], ":")
			port, err := strconv.ParseUint(hexPort, 16, 16)
			if err != nil {
				return "", fmt.Errorf("%s: local address %q: %w", table, f[1], err)
			}
			return strconv.FormatUint(port, 10), nil
		}
	}
	return "", errors.New("not listening yet")
}

// Kill stops the private server at once (simulating an outage) and waits
// for it to be gone.
func (s *S3Server) Kill() {
	if s.cmd != nil && s.cmd.Process != nil {
		_ = s.cmd.Process.Kill()
		if s.exited != nil {
			err := <-s.exited
			s.exited <- err // keep it readable for Restart and cleanup
		}
	}
}

func (s *S3Server) String() string { return fmt.Sprintf("S3 %s bucket %s", s.Endpoint, s.Bucket) }

// Pause stops the private server with SIGSTOP: it keeps its connections
// and port but answers nothing, like a hung backend. Resume undoes it.
func (s *S3Server) Pause(t testing.TB) {
	t.Helper()
	if s.cmd == nil || s.cmd.Process == nil {
		t.Fatal("Pause: only a private server (StartVersityGW) can be paused")
	}
	if err := s.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatalf("SIGSTOP versitygw: %v", err)
	}
	t.Cleanup(func() { _ = s.cmd.Process.Signal(syscall.SIGCONT) })

	// kill(2) returns before every thread has stopped; a call made at once
	// could still be answered (a Put succeeded once in CI this way).
	testkit.Eventually(t, 10*time.Second, "versitygw to be stopped", func() bool { return s.stopped() })
}

// stopped reports whether the server's process is in the stopped state
// (field 3 of /proc/PID/stat is "T").
func (s *S3Server) stopped() bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", s.cmd.Process.Pid))
	if err != nil {
		return false
	}
	// The command name (field 2) is in parentheses and may hold spaces.
	i := strings.LastIndexByte(string(b), ')')
	return i >= 0 && strings.HasPrefix(strings.TrimSpace(string(b[i+1:])), "T")
}

// Resume continues a paused server.
func (s *S3Server) Resume(t testing.TB) {
	t.Helper()
	if err := s.cmd.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatalf("SIGCONT versitygw: %v", err)
	}
}
