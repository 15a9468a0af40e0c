package main

import (
	"database/sql"
	"encoding/json"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	_ "modernc.org/sqlite"
)

// The flood of ../shared/repro/flood.py against the real binary: 8 clients
// sending unauthenticated requests as fast as they can. The trail keeps one
// row per source and action plus a counted aggregate written at shutdown,
// and every denial is accounted for.
func TestUnauthenticatedFloodIsAggregatedAndFlushedAtShutdown(t *testing.T) {
	dir := t.TempDir()
	p := start(t, dir)
	var sent atomic.Int64
	var wg sync.WaitGroup
	end := time.Now().Add(time.Second)
	for c := 0; c < 8; c++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cl := &http.Client{Timeout: 10 * time.Second}
			for time.Now().Before(end) {
				req, _ := http.NewRequest("GET", p.api()+"/cases/"+strings.Repeat("x", 1000), nil)
				req.Header.Set("Authorization", "Bearer cvt_"+strings.Repeat("a", 100))
				res, err := cl.Do(req)
				if err != nil {
					t.Error(err)
					return
				}
				res.Body.Close()
				if res.StatusCode != 401 {
					t.Errorf("status %d", res.StatusCode)
					return
				}
				sent.Add(1)
			}
		}()
	}
	wg.Wait()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-p.exited:
		if err := p.err; err != nil {
			t.Fatalf("exit after SIGTERM: %v\n%s", err, p.stderr)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("no exit after SIGTERM")
	}
	db, err := sql.Open("sqlite", "file:"+filepath.Join(dir, "casevault.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rows, err := db.Query(`SELECT detail FROM audit_events WHERE outcome = 'denied'`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	n, total := 0, int64(0)
	for rows.Next() {
		var detail string
		if err := rows.Scan(&detail); err != nil {
			t.Fatal(err)
		}
		var d struct{ Count int64 }
		_ = json.Unmarshal([]byte(detail), &d)
		n++
		total += max(d.Count, 1)
	}
	if n > 4 || total != sent.Load() {
		t.Fatalf("%d requests left %d denied rows standing for %d denials, want at most 4 rows for all of them", sent.Load(), n, total)
	}
	t.Logf("%d denied requests, %d rows", sent.Load(), n)
}
