package main

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/casevault/casevault/sqldb/sqldbtest"
)

// fillDisk writes one file until the file system under dir has no space
// left, and returns its path; removing it frees the space.
func fillDisk(t *testing.T, dir string) string {
	t.Helper()
	path := filepath.Join(dir, "filler")
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 64<<10)
	for {
		if _, err := f.Write(buf); err != nil {
			if errors.Is(err, syscall.ENOSPC) {
				return path
			}
			t.Fatalf("fill: %v", err)
		}
	}
}

// diskLoad posts contacts, each with a word of its own, until stopped, and
// remembers which were acknowledged and every status seen.
type diskLoad struct {
	mu     sync.Mutex
	acked  map[string]string // contact id → its unique word
	codes  map[int]int
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

func startDiskLoad(t *testing.T, base, token string, caseIDs []string) *diskLoad {
	ctx, cancel := context.WithCancel(context.Background())
	l := &diskLoad{acked: map[string]string{}, codes: map[int]int{}, cancel: cancel}
	filler := strings.Repeat("lorem ipsum dolor sit amet consectetur ", 40)
	for w, caseID := range caseIDs {
		l.wg.Go(func() {
			for i := 0; ctx.Err() == nil; i++ {
				word := fmt.Sprintf("dfw%dn%d", w, i)
				code, ct := call(t, "POST", base+"/cases/"+caseID+"/contacts", token,
					map[string]any{"channel": "chat", "direction": "inbound", "author": "w", "body": word + " " + filler})
				l.mu.Lock()
				l.codes[code]++
				if code == 201 {
					l.acked[ct["id"].(string)] = word
				}
				l.mu.Unlock()
				if code != 201 {
					time.Sleep(20 * time.Millisecond)
				}
			}
		})
	}
	return l
}

func (l *diskLoad) stop() {
	l.cancel()
	l.wg.Wait()
}

func (l *diskLoad) count(code int) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.codes[code]
}

func readyz(t *testing.T, addr string) (int, map[string]any) {
	t.Helper()
	return call(t, "GET", "http://"+addr+"/readyz", "", nil)
}

func checkStatus(ready map[string]any, name string) (status, reason string) {
	checks, _ := ready["checks"].(map[string]any)
	c, _ := checks[name].(map[string]any)
	status, _ = c["status"].(string)
	reason, _ = c["error"].(string)
	return status, reason
}

func alive(t *testing.T, p *proc) {
	t.Helper()
	select {
	case <-p.exited:
		t.Fatalf("server died: %v\n%s", p.err, tail(p.stderr.String(), 4000))
	default:
	}
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// TestFullDiskDegradesAndRecovers fills a 20 MiB data disk under a write
// load: the server must live, refuse writes cleanly (503/507, never 500),
// report search degraded with its reason, restart without crash-looping
// while the disk is still full, and once space returns index every
// acknowledged contact and be ready again.
func TestFullDiskDegradesAndRecovers(t *testing.T) {
	mnt := sqldbtest.Tmpfs(t, "20m")
	data := filepath.Join(mnt, "data")
	p, token := startAdmin(t, data)
	base := p.api()
	code, cust := call(t, "POST", base+"/customers", token, map[string]any{"name": "Full Disk"})
	if code != 201 {
		t.Fatalf("customer: %d", code)
	}
	var caseIDs []string
	for i := range 4 {
		code, cs := call(t, "POST", base+"/cases", token, map[string]any{"customer_id": cust["id"], "subject": fmt.Sprintf("full disk %d", i), "channel": "chat"})
		if code != 201 {
			t.Fatalf("case: %d", code)
		}
		caseIDs = append(caseIDs, cs["id"].(string))
	}
	load := startDiskLoad(t, base, token, caseIDs)
	defer load.stop()
	for deadline := time.Now().Add(30 * time.Second); load.count(201) < 100 && time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
	}
	filler := fillDisk(t, mnt)
	// Keep writing on the full disk until writes are refused and the index
	// has failed to keep up.
	var degraded string
	deadline := time.Now().Add(90 * time.Second)
	for time.Now().Before(deadline) {
		alive(t, p)
		_, ready := readyz(t, p.addr)
		if st, reason := checkStatus(ready, "index"); st == "degraded" && load.count(503)+load.count(507) > 10 {
			degraded = reason
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	load.stop()
	alive(t, p)
	load.mu.Lock()
	codes := fmt.Sprint(load.codes)
	for c := range load.codes {
		if c != 201 && c != 503 && c != 507 {
			t.Errorf("status %d on a full disk (want 201, 503 or 507): %s", c, codes)
		}
	}
	load.mu.Unlock()
	if degraded == "" {
		_, ready := readyz(t, p.addr)
		t.Fatalf("search never reported degraded on a full disk (statuses %s): %v\n%s", codes, ready, tail(p.stderr.String(), 4000))
	}
	t.Logf("full disk: statuses %s; index degraded: %s", codes, degraded)
	if strings.Contains(p.stderr.String(), "panic") && !strings.Contains(p.stderr.String(), "recovered") {
		t.Errorf("unrecovered panic in the log:\n%s", tail(p.stderr.String(), 4000))
	}

	// Restart while the disk is still full: it must come up and stay up.
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = p.wait()
	p = start(t, data)
	base = p.api()
	for range 20 {
		alive(t, p)
		time.Sleep(100 * time.Millisecond)
	}
	if code, _ := call(t, "GET", base+"/cases/"+caseIDs[0], token, nil); code != 200 && code != 503 {
		t.Errorf("read on a full disk after restart: %d", code)
	}
	alive(t, p)

	// Free the space: the index catches up and the server is ready again.
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	deadline = time.Now().Add(90 * time.Second)
	for {
		alive(t, p)
		code, ready := readyz(t, p.addr)
		st, _ := checkStatus(ready, "index")
		_, status := call(t, "GET", base+"/search/status", token, nil)
		if code == 200 && st == "ok" && status["pending"] == float64(0) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("not ready after space returned: %d %v %v\n%s", code, ready, status, tail(p.stderr.String(), 4000))
		}
		time.Sleep(250 * time.Millisecond)
	}
	missing := 0
	for id, word := range load.acked {
		// a phrase: exact, where a word would also match its near-typos
		code, res := call(t, "GET", base+"/search?q="+url.QueryEscape(`"`+word+`"`), token, nil)
		found := false
		hits, _ := res["hits"].([]any)
		for _, h := range hits {
			found = found || h.(map[string]any)["contact_id"] == id
		}
		if code != 200 || !found {
			missing++
			if missing < 5 {
				t.Errorf("acknowledged contact %s (%s) not found: %d %v", id, word, code, res)
			}
		}
	}
	if missing > 0 {
		t.Fatalf("%d of %d acknowledged contacts missing from the index", missing, len(load.acked))
	}
	t.Logf("%d acknowledged contacts all indexed after space returned", len(load.acked))
}
