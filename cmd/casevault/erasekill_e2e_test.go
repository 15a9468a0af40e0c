package main

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/casevault/casevault/retention"
	"github.com/casevault/casevault/sqldb"
	"github.com/casevault/casevault/sqldb/sqldbtest"
)

// erasureState is what an erasure changes, read from the database.
type erasureState struct {
	customers, contacts, attachments, records, events int
	keyLive, keyDestroyed                             bool
}

func readErasureState(t *testing.T, db *sqldb.DB, customer, caseID string) erasureState {
	t.Helper()
	ctx := context.Background()
	var s erasureState
	for _, c := range []struct {
		n    *int
		q    string
		args []any
	}{
		{&s.customers, `SELECT COUNT(*) FROM customers WHERE id = ?`, []any{customer}},
		{&s.contacts, `SELECT COUNT(*) FROM contacts WHERE case_id = ?`, []any{caseID}},
		{&s.attachments, `SELECT COUNT(*) FROM attachments WHERE case_id = ?`, []any{caseID}},
		{&s.records, `SELECT COUNT(*) FROM dispositions WHERE customer_id = ?`, []any{customer}},
		{&s.events, `SELECT (SELECT COUNT(*) FROM audit_events WHERE action = ? AND target_id = ?) + (SELECT COUNT(*) FROM audit_pending WHERE action = ? AND target_id = ?)`,
			[]any{retention.AuditEraseCustomer, customer, retention.AuditEraseCustomer, customer}},
	} {
		if err := db.Read.QueryRowContext(ctx, db.Rebind(c.q), c.args...).Scan(c.n); err != nil {
			t.Fatal(err)
		}
	}
	var wrapped sql.NullString
	var destroyed sql.NullInt64
	err := db.Read.QueryRowContext(ctx, db.Rebind(`SELECT wrapped_key, destroyed_at FROM customer_keys WHERE customer_id = ?`), customer).Scan(&wrapped, &destroyed)
	if err != nil {
		t.Fatalf("customer key: %v", err)
	}
	s.keyLive, s.keyDestroyed = wrapped.Valid && wrapped.String != "" && !destroyed.Valid, !wrapped.Valid && destroyed.Valid
	return s
}

// TestCustomerEraseKill9InsideTheTransaction (issue 15, faults): `customer
// erase` kills itself with SIGKILL inside its transaction (the fault points
// of README "Fault injection": the rows deleted but the key not yet
// destroyed, and just before the commit), on SQLite and PostgreSQL. After
// the kill nothing is done: the profile, every contact and the attachment
// are there and readable, the data key is live, no disposition record or
// erasure event exists, and the audit chain verifies. The erasure run
// again does everything: rows gone, key destroyed, records and the event
// written, chain verifies.
func TestCustomerEraseKill9InsideTheTransaction(t *testing.T) {
	for _, d := range []sqldb.Dialect{sqldb.SQLite, sqldb.Postgres} {
		for _, point := range []string{retention.FaultEraseDeleted, retention.FaultEraseBeforeCommit} {
			t.Run(string(d)+"/"+point, func(t *testing.T) {
				dir := t.TempDir()
				var env []string
				cfg := sqldb.Config{Path: filepath.Join(dir, "casevault.db")}
				if d == sqldb.Postgres {
					cfg = sqldbtest.Config(t, sqldb.Postgres)
					env = []string{"CASEVAULT_DATABASE_URL=" + cfg.URL}
				}
				p, tok := startAdmin(t, dir, env...)
				s := seed(t, p.api(), tok, "Kill9tx", 1<<14)
				const contacts = 2 + 40
				for i := 2; i < contacts; i++ {
					addContact(t, p.api(), tok, s.caseID, "chat", fmt.Sprintf("message %d", i))
				}
				stop(t, p)

				arm := filepath.Join(t.TempDir(), "arm")
				if err := os.WriteFile(arm, nil, 0o600); err != nil {
					t.Fatal(err)
				}
				args := []string{"customer", "erase", s.customer, "--reason", "kill -9 inside", "--force", "--data-dir", dir}
				_, errOut, code := cv(t, append(env, "CASEVAULT_TEST_FAULT="+point, "CASEVAULT_TEST_FAULT_ARM="+arm), args...)
				if code != -1 || !strings.Contains(errOut, "fault injection") {
					t.Fatalf("erase with the fault armed at %s: exit %d (want killed)\n%s", point, code, errOut)
				}

				db, err := sqldb.Open(context.Background(), cfg)
				if err != nil {
					t.Fatal(err)
				}
				defer db.Close()
				if st := readErasureState(t, db, s.customer, s.caseID); st != (erasureState{customers: 1, contacts: contacts, attachments: 1, keyLive: true}) {
					t.Fatalf("after a kill at %s: %+v; want nothing done", point, st)
				}
				cvOK(t, env, "audit", "verify", "--data-dir", dir)
				p, _ = startAdmin(t, dir, env...)
				if code, _ := call(t, "GET", p.api()+"/customers/"+s.customer, tok, nil); code != 200 {
					t.Errorf("customer after the kill: %d", code)
				}
				if code, body := download(t, p.api()+"/attachments/"+s.attachment, tok); code != 200 || string(body) != string(s.content) {
					t.Errorf("attachment after the kill: %d, %d bytes", code, len(body))
				}
				stop(t, p)

				cvOK(t, env, args...)
				st := readErasureState(t, db, s.customer, s.caseID)
				if st.customers+st.contacts+st.attachments != 0 || !st.keyDestroyed || st.records < 2 || st.events != 1 {
					t.Fatalf("after the erasure: %+v; want everything done", st)
				}
				cvOK(t, env, "audit", "verify", "--data-dir", dir)
			})
		}
	}
}
