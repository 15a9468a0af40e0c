package main

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/casevault/casevault/cases"
	"github.com/casevault/casevault/sqldb"
	"github.com/casevault/casevault/sqlstore"
)

// insertLegacy writes, with raw SQL, a customer and a case as they were
// stored before sealing: clear name, e-mail, phone and subject, no lookup
// hashes.
func insertLegacy(t *testing.T, db *sqldb.DB, email string) (customerID string) {
	t.Helper()
	ctx := context.Background()
	id, caseID, now := cases.NewID(), cases.NewID(), time.Now().UnixMicro()
	if _, err := db.Write.ExecContext(ctx, db.Rebind(`INSERT INTO customers (id, name, email, phone, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?)`),
		id, "Legacy Person", email, "+44 20 7946 0000", now, now); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Write.ExecContext(ctx, db.Rebind(`INSERT INTO cases (id, number, customer_id, subject, status, priority, channel, tags, assignee, created_at, updated_at)
		VALUES (?, (SELECT COALESCE(MAX(number), 0) + 1 FROM cases), ?, ?, 'open', 'normal', 'email', '[]', '', ?, ?)`),
		caseID, id, "legacy subject in clear", now, now); err != nil {
		t.Fatal(err)
	}
	return id
}

// clearLeft counts the non-empty personal values of customers and cases
// stored in clear.
func clearLeft(t *testing.T, db *sqldb.DB) int {
	t.Helper()
	n := 0
	for _, q := range []string{`SELECT name FROM customers UNION ALL SELECT email FROM customers UNION ALL SELECT phone FROM customers`, `SELECT subject FROM cases`} {
		rows, err := db.Read.QueryContext(context.Background(), q)
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			var v string
			if err := rows.Scan(&v); err != nil {
				t.Fatal(err)
			}
			if v != "" && !sqlstore.IsSealed(v) {
				n++
			}
		}
		rows.Close()
	}
	return n
}

// TestResealLegacyRowsServeAndCLI (issue 15 §1, legacy rows): on an
// instance upgraded with clear rows (no pass ever ran), serve seals them in
// the background and reports the pass in /readyz, after which the exact
// e-mail lookup finds the legacy customer; `customer reseal` does nothing
// on a finished pass, and --restart seals rows written in clear since.
func TestResealLegacyRowsServeAndCLI(t *testing.T) {
	dir := t.TempDir()
	cvOK(t, nil, "migrate", "--data-dir", dir)
	dbPath := filepath.Join(dir, "casevault.db")
	db := openSQLite(t, dbPath)
	legacy := insertLegacy(t, db, "Legacy.Person@Example.org")
	if clearLeft(t, db) != 4 {
		t.Fatalf("seeded %d clear values, want 4", clearLeft(t, db))
	}

	p, tok := startAdmin(t, dir)
	var state map[string]any
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		_, ready := call(t, "GET", "http://"+p.addr+"/readyz", "", nil)
		chk, _ := ready["checks"].(map[string]any)
		rs, _ := chk["reseal"].(map[string]any)
		state, _ = rs["detail"].(map[string]any)
		if state["phase"] == "done" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the pass did not finish: /readyz %v", ready)
		}
	}
	if state["sealed"] != float64(2) || state["hashed"] != float64(1) {
		t.Errorf("pass state %v, want 2 rows sealed (customer, case), 1 hashed", state)
	}
	if n := clearLeft(t, db); n != 0 {
		t.Fatalf("%d clear values left after serve's pass", n)
	}
	code, found := call(t, "GET", p.api()+"/customers?email=legacy.person@example.org", tok, nil)
	items, _ := found["items"].([]any)
	if code != 200 || len(items) != 1 || items[0].(map[string]any)["id"] != legacy || items[0].(map[string]any)["name"] != "Legacy Person" {
		t.Fatalf("lookup of the legacy customer = %d %v", code, found)
	}
	stop(t, p)

	// Written in clear since (a restore of an old dump, say): a finished
	// pass stays finished; --restart runs a new one.
	insertLegacy(t, db, "later@example.org")
	r := result(t, cvOK(t, nil, "customer", "reseal", "--json", "--data-dir", dir))["result"].(map[string]any)
	if r["phase"] != "done" || r["sealed"] != float64(2) {
		t.Errorf("reseal on a finished pass = %v, want the finished pass unchanged", r)
	}
	if clearLeft(t, db) != 4 {
		t.Fatal("a finished pass sealed without --restart")
	}
	r = result(t, cvOK(t, nil, "customer", "reseal", "--json", "--restart", "--batch-size", "1", "--data-dir", dir))["result"].(map[string]any)
	if r["phase"] != "done" || r["sealed"] != float64(2) || r["hashed"] != float64(1) {
		t.Errorf("restarted pass = %v, want 2 sealed, 1 hashed", r)
	}
	if n := clearLeft(t, db); n != 0 {
		t.Fatalf("%d clear values left after the restarted pass", n)
	}
	cvCode(t, exitUsage, nil, "customer", "reseal", "--batch-size", "0", "--data-dir", dir)
}
