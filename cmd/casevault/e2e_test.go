package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// binary builds the casevault binary once per test run.
func binary(t *testing.T) string {
	t.Helper()
	binOnce.Do(func() {
		dir, err := os.MkdirTemp("", "casevault-bin")
		if err != nil {
			binErr = err
			return
		}
		binPath = filepath.Join(dir, "casevault")
		out, err := exec.Command("go", "build", "-o", binPath, ".").CombinedOutput()
		if err != nil {
			binErr = fmt.Errorf("%v: %s", err, out)
		}
	})
	if binErr != nil {
		t.Fatalf("build: %v", binErr)
	}
	return binPath
}

// Test-binary build cache; tests in this package share one build.
var (
	binOnce sync.Once
	binPath string
	binErr  error
)

// freeAddr is an address nothing listens on, for tests of what happens
// when nothing answers. A server under test never gets one: it listens on
// :0 and logs its port (proc.awaitUp), since a port chosen here and closed
// can be taken by another package's test server before the child binds it.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// syncBuffer is a bytes.Buffer the child process writes to while the test
// reads it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

type proc struct {
	cmd *exec.Cmd
	// addr is where the server listens, known once awaitUp has returned.
	addr   string
	stdout *syncBuffer
	stderr *syncBuffer
	// exited is closed when the process has exited, err then holds what
	// Wait returned: any number of waiters see it (a channel carrying the
	// error once had each reader put it back for the next, and one that
	// forgot hung the test's cleanup until the test timeout).
	exited chan struct{}
	err    error
}

// newProc prepares `serve` on dataDir; launch starts it.
func newProc(t *testing.T, dataDir string, env []string) *proc {
	t.Helper()
	p := &proc{stdout: &syncBuffer{}, stderr: &syncBuffer{}, exited: make(chan struct{})}
	p.cmd = exec.Command(binary(t), "serve", "--data-dir", dataDir, "--listen", "127.0.0.1:0")
	p.cmd.Env = append(os.Environ(), env...)
	p.cmd.Stdout, p.cmd.Stderr = p.stdout, p.stderr
	return p
}

// launch starts p; the test's cleanup kills it and waits for its exit.
func (p *proc) launch(t *testing.T) {
	t.Helper()
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		p.err = p.cmd.Wait()
		close(p.exited)
	}()
	t.Cleanup(func() {
		_ = p.cmd.Process.Kill()
		<-p.exited
	})
}

// wait blocks until p has exited and returns what Wait returned.
func (p *proc) wait() error {
	<-p.exited
	return p.err
}

func start(t *testing.T, dataDir string, extraEnv ...string) *proc {
	t.Helper()
	p := newProc(t, dataDir, extraEnv)
	p.launch(t)
	p.awaitUp(t, 30*time.Second)
	return p
}

// awaitUp waits until p has logged the address it serves on and answers
// its own /healthz there, and sets p.addr. It fails the test when p exits
// first or takes longer than within.
func (p *proc) awaitUp(t *testing.T, within time.Duration) {
	t.Helper()
	client := &http.Client{Timeout: 5 * time.Second}
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		if addr := p.logged("casevault listening", "addr"); addr != "" {
			if res, err := client.Get("http://" + addr + "/healthz"); err == nil {
				var h struct{ Status string }
				_ = json.NewDecoder(res.Body).Decode(&h)
				res.Body.Close()
				if res.StatusCode != http.StatusOK || h.Status != "ok" {
					t.Fatalf("%s/healthz answered %d %q, not casevault's ok", addr, res.StatusCode, h.Status)
				}
				p.addr = addr
				return
			}
		}
		select {
		case <-p.exited:
			t.Fatalf("server exited early: %v\n%s", p.err, p.stderr)
		case <-time.After(100 * time.Millisecond):
		}
	}
	t.Fatalf("server did not come up within %v:\n%s", within, p.stderr)
}

// logged returns the value of key in the first JSON line p logged with
// message msg, or "" while there is none.
func (p *proc) logged(msg, key string) string { return loggedValue(p.stderr.String(), msg, key) }

// loggedValue returns the value of key in the first line of a JSON log
// whose message is msg, or "" when there is none.
func loggedValue(log, msg, key string) string {
	for _, line := range strings.Split(log, "\n") {
		var rec map[string]any
		if json.Unmarshal([]byte(line), &rec) != nil || rec["msg"] != msg {
			continue
		}
		v, _ := rec[key].(string)
		return v
	}
	return ""
}

// startAdmin starts the server on dataDir and returns it with the admin
// token it bootstrapped there.
func startAdmin(t *testing.T, dataDir string, extraEnv ...string) (*proc, string) {
	t.Helper()
	p := start(t, dataDir, extraEnv...)
	return p, adminToken(t, dataDir)
}

// adminToken reads the admin token a first start wrote to dir.
func adminToken(t *testing.T, dir string) string {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(dir, "admin.token"))
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(raw))
}

// api is the base URL of the server's API.
func (p *proc) api() string { return "http://" + p.addr + "/api/v1" }

func call(t *testing.T, method, url, token string, body any) (int, map[string]any) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, url, rd)
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	res, err := (&http.Client{Timeout: 30 * time.Second}).Do(req)
	if err != nil {
		return 0, nil
	}
	defer res.Body.Close()
	var m map[string]any
	_ = json.NewDecoder(res.Body).Decode(&m)
	return res.StatusCode, m
}

func TestServeBootstrapsAdminTokenOnce(t *testing.T) {
	dir := t.TempDir()
	p := start(t, dir)
	fi, err := os.Stat(filepath.Join(dir, "admin.token"))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("admin.token mode %v, want 0600", fi.Mode().Perm())
	}
	token := adminToken(t, dir)
	if !strings.Contains(p.stdout.String(), token) {
		t.Fatalf("token not printed on first start: %q", p.stdout.String())
	}
	if code, _ := call(t, "GET", p.api()+"/tokens", token, nil); code != 200 {
		t.Fatalf("admin token rejected: %d", code)
	}
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := p.wait(); err != nil {
		t.Fatalf("SIGTERM exit: %v\n%s", err, p.stderr)
	}
	if !strings.Contains(p.stderr.String(), "stopped cleanly") {
		t.Fatalf("no clean stop in logs:\n%s", p.stderr)
	}
	p2 := start(t, dir)
	if strings.Contains(p2.stdout.String(), "cvt_") {
		t.Fatalf("a second start printed a new token: %s", p2.stdout)
	}
}

func TestTokenCreateCLI(t *testing.T) {
	dir := t.TempDir()
	out, err := exec.Command(binary(t), "token", "create", "--data-dir", dir, "--name", "ops", "--role", "backup").Output()
	if err != nil {
		t.Fatalf("token create: %v", err)
	}
	token := strings.TrimSpace(string(out))
	if !strings.HasPrefix(token, "cvt_") || strings.Count(token, "\n") != 0 {
		t.Fatalf("stdout should be exactly the token, got %q", out)
	}
	cmd := exec.Command(binary(t), "token", "create", "--data-dir", dir, "--name", "x", "--role", "root")
	if err := cmd.Run(); cmd.ProcessState.ExitCode() != exitUsage {
		t.Fatalf("unknown role: exit %d (%v), want %d", cmd.ProcessState.ExitCode(), err, exitUsage)
	}
	// The CLI-made token works against a server on the same data dir, with
	// exactly its role's rights.
	p := start(t, dir)
	if code, _ := call(t, "GET", p.api()+"/cases", token, nil); code != 403 {
		t.Fatalf("backup token reading cases = %d, want 403", code)
	}
	if code, _ := call(t, "GET", p.api()+"/tokens", token, nil); code != 403 {
		t.Fatalf("backup token listing tokens = %d, want 403", code)
	}
	out, err = exec.Command(binary(t), "migrate", "--data-dir", dir).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "schema at version") {
		t.Fatalf("migrate: %v %s", err, out)
	}
	// CLI actions are on the audit trail.
	out, err = exec.Command(binary(t), "audit", "export", "--data-dir", dir).Output()
	if err != nil || !strings.Contains(string(out), `"schema.migrate"`) || !strings.Contains(string(out), `"token.create"`) {
		t.Fatalf("CLI actions missing from the audit export: %v\n%s", err, out)
	}
}

// TestKill9KeepsEveryAcknowledgedWrite kills the server with SIGKILL in the
// middle of a write load and checks that every contact that was answered
// 201 is there after a restart.
func TestKill9KeepsEveryAcknowledgedWrite(t *testing.T) {
	dir := t.TempDir()
	p, token := startAdmin(t, dir)
	base := p.api()
	code, cust := call(t, "POST", base+"/customers", token, map[string]any{"name": "Durable"})
	if code != 201 {
		t.Fatalf("customer: %d", code)
	}
	code, cs := call(t, "POST", base+"/cases", token, map[string]any{"customer_id": cust["id"], "subject": "load", "channel": "chat"})
	if code != 201 {
		t.Fatalf("case: %d", code)
	}
	var mu sync.Mutex
	var acked []string
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; ctx.Err() == nil; i++ {
				code, ct := call(t, "POST", base+"/cases/"+cs["id"].(string)+"/contacts", token,
					map[string]any{"channel": "chat", "direction": "inbound", "author": "w", "body": fmt.Sprintf("worker %d message %d", w, i)})
				if code == 201 {
					mu.Lock()
					acked = append(acked, ct["id"].(string))
					mu.Unlock()
				}
			}
		}(w)
	}
	// Let the load run until a few hundred writes are acknowledged.
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		mu.Lock()
		n := len(acked)
		mu.Unlock()
		if n >= 300 {
			break
		}
	}
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = p.wait()
	cancel()
	wg.Wait()
	if len(acked) < 50 {
		t.Fatalf("only %d writes acknowledged before the kill; load too small to prove anything", len(acked))
	}
	p2 := start(t, dir)
	base2 := p2.api()
	code, full := call(t, "GET", base2+"/cases/"+cs["id"].(string), token, nil)
	if code != 200 {
		t.Fatalf("case after restart: %d", code)
	}
	have := map[string]bool{}
	for _, c := range full["contacts"].([]any) {
		have[c.(map[string]any)["id"].(string)] = true
	}
	lost := 0
	for _, id := range acked {
		if !have[id] {
			lost++
		}
	}
	if lost > 0 {
		t.Fatalf("%d of %d acknowledged contacts lost after kill -9", lost, len(acked))
	}
	t.Logf("%d acknowledged contacts all present after kill -9 (%d stored)", len(acked), len(have))
}

func toJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

func runCLI(t *testing.T, args ...string) (string, error) {
	t.Helper()
	out, err := exec.Command(binary(t), args...).Output()
	return string(out), err
}
