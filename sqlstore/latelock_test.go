package sqlstore_test

import (
	"context"
	"database/sql"
	"errors"
	"testing"
	"time"

	"github.com/casevault/casevault/archive"
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

// oneBatch writes cs as one batch of r's store (one slot): a contact on
// plugCase holds the slot in the audit hook while cs queue, then lets
// go, and the next batch takes them all. A contact alone in its batch
// locks its case first; only a batch of several locks late. plugCase
// must be made before any row is held (a case creation waits on its
// customer's row).
func (r *batchRig) oneBatch(t *testing.T, plugCase string, cs ...*cases.Contact) []<-chan error {
	t.Helper()
	held, release := r.holdNext()
	defer release()
	plug := writeAsync(r.store, newContact(plugCase, "holds the batch slot"))
	select {
	case <-held:
	case err := <-plug:
		t.Fatalf("the plug contact ended early: %v", err)
	}
	var done []<-chan error
	for _, c := range cs {
		done = append(done, writeAsync(r.store, c))
	}
	r.waitQueued(t, len(cs))
	release()
	if err := result(t, plug); err != nil {
		t.Fatal(err)
	}
	return done
}

// newCase adds a case of customer to r's store.
func (r *batchRig) newCase(t *testing.T, customer string) string {
	t.Helper()
	cs, err := r.svc.CreateCase(context.Background(), cases.NewCase{CustomerID: &customer, Subject: ptr("s"), Channel: ptr(cases.ChannelWeb)}, cases.Actor{})
	if err != nil {
		t.Fatal(err)
	}
	return cs.ID
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
// case has already written its contacts, outbox and audit rows, and waits
// only for the touch before its commit. On the order before (cases locked
// by the first statement) it waited with nothing written, holding its
// case rows through every statement.
func TestBatchLocksItsCasesLast(t *testing.T) {
	db := sqldbtest.Open(t, sqldb.Postgres)
	r := newBatchRig(t, db, 1)
	cust, cs := seed(t, r.svc)
	other, plug := r.newCase(t, cust.ID), r.newCase(t, cust.ID)
	h := holdRows(t, db, `SELECT id FROM cases WHERE id = $1 FOR NO KEY UPDATE`, cs.ID)

	c, c2 := newContact(cs.ID, "written before the case is locked"), newContact(other, "its neighbour")
	done := r.oneBatch(t, plug, c, c2)
	pid := h.waiter(t, db, done[0])

	for _, table := range []string{"contacts", "outbox", "audit_pending"} {
		if !wrote(t, db, pid, table) {
			t.Errorf("the batch waits for the case row before writing %s", table)
		}
	}
	if err := h.tx.Commit(); err != nil {
		t.Fatal(err)
	}
	for i, d := range done {
		if err := result(t, d); err != nil {
			t.Fatalf("contact %d: %v", i, err)
		}
	}
	var updated int64
	if err := db.Read.QueryRow(`SELECT updated_at FROM cases WHERE id = $1`, cs.ID).Scan(&updated); err != nil {
		t.Fatal(err)
	}
	if want := sqldb.Micros(c.CreatedAt); updated != want {
		t.Errorf("case updated_at %d, want the contact's creation %d", updated, want)
	}
	r.verify(t, 3) // the plug and the batch's two
}

// TestLateBatchRedoneWhenItsCaseClosed: a case closed after the batch read
// it and before the batch locked it must not leave the contact with the
// retention of an open case: the touch reads closed_at again, finds it
// moved, and the batch is written again, each contact with its case
// locked first.
func TestLateBatchRedoneWhenItsCaseClosed(t *testing.T) {
	db := sqldbtest.Open(t, sqldb.Postgres)
	r := newBatchRig(t, db, 1)
	cust, cs := seed(t, r.svc)
	other, plug := r.newCase(t, cust.ID), r.newCase(t, cust.ID)
	closed := time.Now().Add(-time.Hour).Truncate(time.Microsecond).UTC()
	h := holdRows(t, db, `UPDATE cases SET closed_at = $1, status = 'closed' WHERE id = $2`, sqldb.Micros(closed), cs.ID)

	c, c2 := newContact(cs.ID, "arrives while the case closes"), newContact(other, "its neighbour, open")
	occurred := c.OccurredAt
	done := r.oneBatch(t, plug, c, c2)
	h.waiter(t, db, done[0])
	if err := h.tx.Commit(); err != nil {
		t.Fatal(err)
	}
	for i, d := range done {
		if err := result(t, d); err != nil {
			t.Fatalf("contact %d: %v", i, err)
		}
	}

	sc := retention.DefaultSchedule()
	want, _ := sc.RetainUntil(c.Purposes, occurred, &closed)
	open, _ := sc.RetainUntil(c.Purposes, occurred, nil)
	if want == nil || open != nil && open.Equal(*want) {
		t.Fatalf("the schedule does not tell a closed case from an open one (%v, %v): the test proves nothing", want, open)
	}
	for _, tc := range []struct {
		id   string
		want *time.Time
	}{{c.ID, want}, {c2.ID, open}} {
		var got sql.NullInt64
		if err := db.Read.QueryRow(`SELECT retain_until FROM contacts WHERE id = $1`, tc.id).Scan(&got); err != nil {
			t.Fatal(err)
		}
		if tc.want == nil && got.Valid || tc.want != nil && (!got.Valid || got.Int64 != sqldb.Micros(*tc.want)) {
			t.Errorf("contact %s: retain_until %v, want %v", tc.id, got, tc.want)
		}
	}
	r.verify(t, 3) // the late attempt's audit events went with its rollback
}

// TestErasureUnderLateBatch: an erasure holding the customer's rows while
// a batch writes a contact of theirs commits, and the contact fails as
// "not found", as it did when the batch locked its cases first (the late
// attempt fails on the deleted case's foreign key; the redo decides); its
// neighbour of another customer is written.
func TestErasureUnderLateBatch(t *testing.T) {
	db := sqldbtest.Open(t, sqldb.Postgres)
	keys, fields := sealing(t, db)
	r := newBatchRigWith(t, db, 1, fields)
	cust, cs := seed(t, r.svc)
	other, _ := seed(t, r.svc)
	otherCase, plug := r.newCase(t, other.ID), r.newCase(t, other.ID)
	var keyed int
	if err := db.Read.QueryRow(`SELECT COUNT(*) FROM customer_keys WHERE customer_id IN ($1, $2) AND wrapped_key IS NOT NULL`, cust.ID, other.ID).Scan(&keyed); err != nil || keyed != 2 {
		t.Fatalf("%d live keys (%v), want 2: the late path is not taken", keyed, err)
	}

	h := holdRows(t, db, `SELECT id FROM customers WHERE id = $1 FOR UPDATE`, cust.ID)
	ctx := context.Background()
	if _, err := sqlstore.ReadErasure(ctx, db, h.tx, nil, cust.ID); err != nil {
		t.Fatal(err)
	}
	c, c2 := newContact(cs.ID, "written during the erasure"), newContact(otherCase, "another customer's")
	done := r.oneBatch(t, plug, c, c2)
	pid := h.waiter(t, db, done[0])
	if !wrote(t, db, pid, "contacts") {
		t.Error("the batch did not take the late path (no contact written before it waited)")
	}
	h.erase(t, db, keys, cust.ID)
	erasedOnly(t, done)
	var n int
	if err := db.Read.QueryRow(`SELECT COUNT(*) FROM contacts WHERE customer_id = $1`, cust.ID).Scan(&n); err != nil || n != 0 {
		t.Errorf("%d contacts of the erased customer (%v)", n, err)
	}
}

// TestKeylessCustomerLocksFirst: a customer's first sealed write creates
// their data key. Created before the case is locked, its row would be
// inserted in the reverse of an erasure's order (cases, then the key row,
// which a tombstone INSERT waits on): a deadlock. So a batch with such a
// contact takes its cases first, and waits for an erasure holding the
// cases with no key row written.
func TestKeylessCustomerLocksFirst(t *testing.T) {
	db := sqldbtest.Open(t, sqldb.Postgres)
	plain := cases.NewService(sqlstore.New(db, sqlstore.Options{}), nil)
	cust, cs := seed(t, plain) // no sealing: no data key
	keys, fields := sealing(t, db)
	r := newBatchRigWith(t, db, 1, fields)
	other, _ := seed(t, r.svc) // sealed: keyed
	otherCase, plug := r.newCase(t, other.ID), r.newCase(t, other.ID)

	h := holdRows(t, db, `SELECT id FROM cases WHERE customer_id = $1 ORDER BY id FOR UPDATE`, cust.ID)
	c, c2 := newContact(cs.ID, "the customer's first sealed write"), newContact(otherCase, "a keyed customer's")
	done := r.oneBatch(t, plug, c, c2)
	pid := h.waiter(t, db, done[0])
	if wrote(t, db, pid, "customer_keys") {
		t.Error("the batch created the customer's key before locking the case")
	}
	h.erase(t, db, keys, cust.ID)
	erasedOnly(t, done)
}

// erase finishes, in h's transaction, the erasure of customerID whose
// rows h holds (its key destroyed, its rows deleted) and commits it.
func (h *rowHolder) erase(t *testing.T, db *sqldb.DB, keys *archive.Keyring, customerID string) {
	t.Helper()
	ctx := context.Background()
	if err := keys.DestroyTx(ctx, h.tx, customerID); err != nil {
		t.Fatal(err)
	}
	if err := sqlstore.DeleteCustomer(ctx, db, h.tx, customerID); err != nil {
		t.Fatal(err)
	}
	if err := h.tx.Commit(); err != nil {
		t.Fatalf("the erasure: %v", err)
	}
}

// erasedOnly checks a batch of two whose first contact's customer was
// erased under it: that one is not found, the other one is written.
func erasedOnly(t *testing.T, done []<-chan error) {
	t.Helper()
	if err := result(t, done[0]); !errors.Is(err, cases.ErrNotFound) {
		t.Errorf("contact of an erased customer: %v, want not found", err)
	}
	if err := result(t, done[1]); err != nil {
		t.Errorf("the other customer's contact: %v", err)
	}
}
