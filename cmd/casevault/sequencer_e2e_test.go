package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/casevault/casevault/audit"
	"github.com/casevault/casevault/sqldb"
	"github.com/casevault/casevault/sqldb/sqldbtest"
	"github.com/casevault/casevault/testkit"
)

// TestKill9DuringAuditSequencing (issue 19): the server on PostgreSQL
// kills itself (SIGKILL, the fault-injection point of README "Fault
// injection") inside a sequencing pass, after the batch's events went into
// the chain or just before its commit, while clients write. After a
// restart every acknowledged contact has exactly one contact.create event
// in the chain, nothing stays pending, and the chain verifies.
func TestKill9DuringAuditSequencing(t *testing.T) {
	for _, point := range []string{audit.FaultSequenceInserted, audit.FaultSequenceBeforeCommit} {
		t.Run(point, func(t *testing.T) {
			cfg := sqldbtest.Config(t, sqldb.Postgres)
			dir := t.TempDir()
			arm := filepath.Join(t.TempDir(), "arm")
			env := []string{"CASEVAULT_DATABASE_URL=" + cfg.URL}
			p, tok := startAdmin(t, dir, append(env, "CASEVAULT_TEST_FAULT="+point, "CASEVAULT_TEST_FAULT_ARM="+arm)...)
			_, caseID := newCase(t, p.api(), tok, "sequencing", "chat")

			var mu sync.Mutex
			var acked []string
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			var wg sync.WaitGroup
			for w := range 8 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := 0; ctx.Err() == nil; i++ {
						code, ct := call(t, "POST", p.api()+"/cases/"+caseID+"/contacts", tok,
							map[string]any{"channel": "chat", "direction": "inbound", "author": "w", "body": fmt.Sprintf("worker %d message %d", w, i)})
						if code == 201 {
							mu.Lock()
							acked = append(acked, ct["id"].(string))
							mu.Unlock()
						}
					}
				}()
			}
			testkit.Eventually(t, 60*time.Second, "100 acknowledged writes", func() bool {
				mu.Lock()
				defer mu.Unlock()
				return len(acked) >= 100
			})
			if err := os.WriteFile(arm, nil, 0o600); err != nil {
				t.Fatal(err)
			}
			select {
			case <-p.exited:
			case <-time.After(60 * time.Second):
				t.Fatalf("the server did not reach %s", point)
			}
			if !strings.Contains(p.stderr.String(), "fault injection") {
				t.Fatalf("the server exited, but not at the fault point:\n%s", p.stderr)
			}
			cancel()
			wg.Wait()

			db, err := sqldb.Open(context.Background(), cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			var pending int
			if err := db.Read.QueryRow(`SELECT COUNT(*) FROM audit_pending`).Scan(&pending); err != nil {
				t.Fatal(err)
			}
			if pending == 0 {
				t.Fatal("nothing pending after a kill inside a sequencing pass: the pass was not cut short")
			}

			p2 := start(t, dir, env...)
			testkit.Eventually(t, 30*time.Second, "every pending event sequenced", func() bool {
				code, ver := call(t, "GET", p2.api()+"/audit/verify", tok, nil)
				return code == 200 && ver["ok"] == true && ver["pending"] == float64(0)
			})

			events := map[string]int{}
			rows, err := db.Read.Query(`SELECT target_id, COUNT(*) FROM audit_events WHERE action = 'contact.create' GROUP BY target_id`)
			if err != nil {
				t.Fatal(err)
			}
			defer rows.Close()
			for rows.Next() {
				var id string
				var n int
				if err := rows.Scan(&id, &n); err != nil {
					t.Fatal(err)
				}
				events[id] = n
			}
			if err := rows.Err(); err != nil {
				t.Fatal(err)
			}
			for _, id := range acked {
				if events[id] != 1 {
					t.Errorf("acknowledged contact %s has %d contact.create events in the chain, want 1", id, events[id])
				}
			}
			t.Logf("%d acknowledged contacts, %d pending at the kill, each audited once after restart", len(acked), pending)
		})
	}
}
