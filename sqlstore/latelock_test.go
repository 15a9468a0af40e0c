package sqlstore_test

import (
	"context"
	"database/sql"
	"errors"
	"testing"
	"time"

	"github.com/casevault/casevault/cases"
	"github.com/casevault/casevault/retention"
	"github.com/casevault/casevault/sqldb"
	"github.com/casevault/casevault/sqldb/sqldbtest"
	"github.com/casevault/casevault/sqlstore"
)

// Late locking (issue 19 §2): on PostgreSQL a contact batch reads its
// cases without a lock, writes its rows, and locks and touches the cases
// last. These tests hold a case row in another transaction (another
// replica's batch, a close, an erasure) and look at the batch's backend
// while it waits: pg_blocking_pids says who waits on whom, pg_locks what
// the waiting transaction has already written.

// rowHolder is a transaction on its own connection that holds case rows.
type rowHolder struct {
	tx  *sql.Tx
	pid int
}

func holdRows(t *testing.T, db *sqldb.DB, query string, args ...any) *rowHolder {
	t.Helper()
	ctx := context.Background()
	tx, err := db.Write.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tx.Rollback() })
	h := &rowHolder{tx: tx}
	if err := tx.QueryRowContext(ctx, `SELECT pg_backend_pid()`).Scan(&h.pid); err != nil {
		t.Fatal(err)
	}
	if _, err := tx.ExecContext(ctx, query, args...); err != nil {
		t.Fatal(err)
	}
	return h
}

// waiter returns the backend that waits on h's locks, once there is one.
func (h *rowHolder) waiter(t *testing.T, db *sqldb.DB, write <-chan error) int {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); ; {
		var pid int
		err := db.Read.QueryRow(`SELECT pid FROM pg_stat_activity WHERE $1 = ANY(pg_blocking_pids(pid))`, h.pid).Scan(&pid)
		if err == nil {
			return pid
		}
		if !errors.Is(err, sql.ErrNoRows) {
			t.Fatal(err)
		}
		select {
		case err := <-write:
			t.Fatalf("the write ended without waiting for the held row: %v", err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("no backend waits on the held row after 10 s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// wrote reports whether backend pid's transaction holds the lock an
// INSERT takes on table (it has written rows there).
func wrote(t *testing.T, db *sqldb.DB, pid int, table string) bool {
	t.Helper()
	var n int
	err := db.Read.QueryRow(`SELECT COUNT(*) FROM pg_locks WHERE pid = $1 AND relation = to_regclass($2) AND mode = 'RowExclusiveLock' AND granted`, pid, table).Scan(&n)
	if err != nil {
		t.Fatal(err)
	}
	return n > 0
}

func writeAsync(st *sqlstore.Store, c *cases.Contact) <-chan error {
	done := make(chan error, 1)
	go func() { done <- st.CreateContact(context.Background(), c, contactChange(c)) }()
	return done
}

func result(t *testing.T, done <-chan error) error {
	t.Helper()
	select {
	case err := <-done:
		return err
	case <-time.After(10 * time.Second):
		t.Fatal("the contact write did not end 10 s after the held row was released")
		return nil
	}
}

// TestBatchLocksItsCasesLast: while another transaction holds a case row
// (another replica's batch touching it), a batch with a contact of that
// case has already written its contact, outbox and audit rows, and waits
// only for the touch before its commit. On the order before (cases locked
// by the first statement) it waited with nothing written, holding its
// case rows through every statement.
func TestBatchLocksItsCasesLast(t *testing.T) {
	db := sqldbtest.Open(t, sqldb.Postgres)
	r := newBatchRig(t, db, 0)
	_, cs := seed(t, r.svc)
	h := holdRows(t, db, `SELECT id FROM cases WHERE id = $1 FOR NO KEY UPDATE`, cs.ID)

	c := newContact(cs.ID, "written before the case is locked")
	done := writeAsync(r.store, c)
	pid := h.waiter(t, db, done)

	for _, table := range []string{"contacts", "outbox", "audit_pending"} {
		if !wrote(t, db, pid, table) {
			t.Errorf("the batch waits for the case row before writing %s", table)
		}
	}
	if err := h.tx.Commit(); err != nil {
		t.Fatal(err)
	}
	if err := result(t, done); err != nil {
		t.Fatal(err)
	}
	var updated int64
	if err := db.Read.QueryRow(`SELECT updated_at FROM cases WHERE id = $1`, cs.ID).Scan(&updated); err != nil {
		t.Fatal(err)
	}
	if want := sqldb.Micros(c.CreatedAt); updated != want {
		t.Errorf("case updated_at %d, want the contact's creation %d", updated, want)
	}
	r.verify(t, 1)
}

// TestLateBatchRedoneWhenItsCaseClosed: a case closed after the batch read
// it and before the batch locked it must not leave the contact with the
// retention of an open case: the touch reads closed_at again, finds it
// moved, and the contact is written again with the case locked first.
func TestLateBatchRedoneWhenItsCaseClosed(t *testing.T) {
	db := sqldbtest.Open(t, sqldb.Postgres)
	r := newBatchRig(t, db, 0)
	_, cs := seed(t, r.svc)
	closed := time.Now().Add(-time.Hour).Truncate(time.Microsecond).UTC()
	h := holdRows(t, db, `UPDATE cases SET closed_at = $1, status = 'closed' WHERE id = $2`, sqldb.Micros(closed), cs.ID)

	c := newContact(cs.ID, "arrives while the case closes")
	occurred := c.OccurredAt
	done := writeAsync(r.store, c)
	h.waiter(t, db, done)
	if err := h.tx.Commit(); err != nil {
		t.Fatal(err)
	}
	if err := result(t, done); err != nil {
		t.Fatal(err)
	}

	sc := retention.DefaultSchedule()
	want, _ := sc.RetainUntil(c.Purposes, occurred, &closed)
	open, _ := sc.RetainUntil(c.Purposes, occurred, nil)
	if want == nil || open != nil && open.Equal(*want) {
		t.Fatalf("the schedule does not tell a closed case from an open one (%v, %v): the test proves nothing", want, open)
	}
	var got sql.NullInt64
	if err := db.Read.QueryRow(`SELECT retain_until FROM contacts WHERE id = $1`, c.ID).Scan(&got); err != nil {
		t.Fatal(err)
	}
	if !got.Valid || got.Int64 != sqldb.Micros(*want) {
		t.Errorf("retain_until %v, want %d (the closed case's)", got, sqldb.Micros(*want))
	}
	r.verify(t, 1) // the first attempt's audit event went with its rollback
}

// TestErasureUnderLateBatch: an erasure holding the customer's rows while
// a batch writes a contact of theirs commits, and the contact fails as
// "not found", as it did when the batch locked its cases first (its late
// attempt fails on the deleted case's foreign key; the redo decides).
func TestErasureUnderLateBatch(t *testing.T) {
	db := sqldbtest.Open(t, sqldb.Postgres)
	st, keys, svc := sealedStore(t, db)
	cust, cs := seed(t, svc)
	var keyed int
	if err := db.Read.QueryRow(`SELECT COUNT(*) FROM customer_keys WHERE customer_id = $1 AND wrapped_key IS NOT NULL`, cust.ID).Scan(&keyed); err != nil || keyed != 1 {
		t.Fatalf("the customer has %d live keys (%v), want 1: the late path is not taken", keyed, err)
	}

	h := holdRows(t, db, `SELECT id FROM customers WHERE id = $1 FOR UPDATE`, cust.ID)
	ctx := context.Background()
	if _, err := sqlstore.ReadErasure(ctx, db, h.tx, nil, cust.ID); err != nil {
		t.Fatal(err)
	}
	c := newContact(cs.ID, "written during the erasure")
	done := writeAsync(st, c)
	pid := h.waiter(t, db, done)
	if !wrote(t, db, pid, "contacts") {
		t.Error("the batch did not take the late path (no contact written before it waited)")
	}
	if err := keys.DestroyTx(ctx, h.tx, cust.ID); err != nil {
		t.Fatal(err)
	}
	if err := sqlstore.DeleteCustomer(ctx, db, h.tx, cust.ID); err != nil {
		t.Fatal(err)
	}
	if err := h.tx.Commit(); err != nil {
		t.Fatalf("the erasure: %v", err)
	}

	if err := result(t, done); !errors.Is(err, cases.ErrNotFound) {
		t.Errorf("contact of an erased customer: %v, want not found", err)
	}
	var n int
	if err := db.Read.QueryRow(`SELECT COUNT(*) FROM contacts WHERE customer_id = $1`, cust.ID).Scan(&n); err != nil || n != 0 {
		t.Errorf("%d contacts of the erased customer (%v)", n, err)
	}
}

// TestKeylessCustomerLocksFirst: a customer's first sealed write creates
// their data key. Created before the case is locked, its row would be
// inserted in the reverse of an erasure's order (cases, then the key row,
// which a tombstone INSERT waits on): a deadlock. So such a contact takes
// the case first, and waits for an erasure holding the cases with no key
// row written.
func TestKeylessCustomerLocksFirst(t *testing.T) {
	db := sqldbtest.Open(t, sqldb.Postgres)
	plain := cases.NewService(sqlstore.New(db, sqlstore.Options{}), nil)
	cust, cs := seed(t, plain) // no sealing: no data key
	st, keys, _ := sealedStore(t, db)

	h := holdRows(t, db, `SELECT id FROM cases WHERE customer_id = $1 ORDER BY id FOR UPDATE`, cust.ID)
	c := newContact(cs.ID, "the customer's first sealed write")
	done := writeAsync(st, c)
	pid := h.waiter(t, db, done)
	if wrote(t, db, pid, "customer_keys") {
		t.Error("the batch created the customer's key before locking the case")
	}
	ctx := context.Background()
	if err := keys.DestroyTx(ctx, h.tx, cust.ID); err != nil {
		t.Fatal(err)
	}
	if err := sqlstore.DeleteCustomer(ctx, db, h.tx, cust.ID); err != nil {
		t.Fatal(err)
	}
	if err := h.tx.Commit(); err != nil {
		t.Fatalf("the erasure: %v", err)
	}
	if err := result(t, done); !errors.Is(err, cases.ErrNotFound) {
		t.Errorf("contact of an erased customer: %v, want not found", err)
	}
}
