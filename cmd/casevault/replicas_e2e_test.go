package main

import (
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/casevault/casevault/sqldb"
	"github.com/casevault/casevault/sqldb/sqldbtest"
)

// Two servers on one PostgreSQL database write concurrently: every write is
// acknowledged, and the audit trail is still one valid chain.
func TestTwoReplicasOnePostgresChain(t *testing.T) {
	cfg := sqldbtest.Config(t, sqldb.Postgres)
	env := "CASEVAULT_DATABASE_URL=" + cfg.URL
	d1, d2 := t.TempDir(), t.TempDir()
	p1, tok := startAdmin(t, d1, env)
	// Every replica uses the instance's master key (issue 20 §14).
	p2 := start(t, d2, env, instanceKey(t, d1)) // same database: no new admin token
	if _, err := os.Stat(filepath.Join(d2, "admin.token")); err == nil {
		t.Fatal("second replica bootstrapped another admin token")
	}
	bases := []string{p1.api(), p2.api()}
	_, cust := call(t, "POST", bases[0]+"/customers", tok, map[string]any{"name": "Replicated"})
	var caseIDs []string
	for i := 0; i < 4; i++ {
		_, cs := call(t, "POST", bases[i%2]+"/cases", tok, map[string]any{"customer_id": cust["id"], "subject": fmt.Sprint("r", i), "channel": "chat"})
		caseIDs = append(caseIDs, cs["id"].(string))
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	failed := 0
	for w := 0; w < 16; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; i < 25; i++ {
				code, _ := call(t, "POST", bases[w%2]+"/cases/"+caseIDs[(w+i)%len(caseIDs)]+"/contacts", tok,
					map[string]any{"channel": "chat", "direction": "inbound", "author": "r", "body": fmt.Sprint("replica write ", w, i)})
				if code != 201 {
					mu.Lock()
					failed++
					mu.Unlock()
				}
			}
		}(w)
	}
	wg.Wait()
	if failed > 0 {
		t.Fatalf("%d of 400 concurrent writes failed across replicas", failed)
	}
	for _, b := range bases {
		code, ver := call(t, "GET", b+"/audit/verify", tok, nil)
		if code != 200 || ver["ok"] != true {
			t.Fatalf("verify on %s: %d %v", b, code, ver)
		}
	}
	code, list := call(t, "GET", bases[1]+"/audit?action=contact.create&limit=500", tok, nil)
	if code != 200 || len(list["items"].([]any)) != 400 {
		t.Fatalf("contact.create events = %d, want 400", len(list["items"].([]any)))
	}
}
