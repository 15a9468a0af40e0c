package sqlstore_test

import (
	"context"
	"database/sql"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/casevault/casevault/archive"
	"github.com/casevault/casevault/cases"
	"github.com/casevault/casevault/retention"
	"github.com/casevault/casevault/sqldb"
	"github.com/casevault/casevault/sqldb/sqldbtest"
	"github.com/casevault/casevault/sqlstore"
)

// Touching ahead (issue 19 §2): on PostgreSQL under load a contact batch
// moves its cases' updated_at in a transaction of its own, committed
// without waiting for its flush, then reads its cases FOR KEY SHARE and
// writes its rows. These tests hold case rows in another transaction
// (another replica's batch at its commit, a close, an erasure) and look at
// the batch's backend while it waits: pg_blocking_pids says who waits on
// whom, pg_locks what the waiting transaction has already written.

// query returns the statement backend pid runs.
func query(t *testing.T, db *sqldb.DB, pid int) string {
	t.Helper()
	var q string
	if err := db.Read.QueryRow(`SELECT query FROM pg_stat_activity WHERE pid = $1`, pid).Scan(&q); err != nil {
		t.Fatal(err)
	}
	return q
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

// TestBatchesOfTwoReplicasShareACase: while one replica's batch with a
// contact of a case is at its commit, holding every lock it takes, another
// replica's batch with a contact of that case commits without waiting for
// it. When batches touched their cases FOR NO KEY UPDATE by their last
// statement, the second one waited there until the first one's commit had
// flushed (issue 19: 4.6-8.7% of PostgreSQL's active backends in such
// Lock waits with two replicas under wrk). The first batch is held at its
// commit by a deferred trigger waiting on an advisory lock the test holds.
func TestBatchesOfTwoReplicasShareACase(t *testing.T) {
	db := sqldbtest.Open(t, sqldb.Postgres)
	ra, rb := newBatchRig(t, db, 1), newBatchRig(t, db, 1)
	cust, cs := seed(t, ra.svc)
	plugA, otherA := ra.newCase(t, cust.ID), ra.newCase(t, cust.ID)
	plugB, otherB := rb.newCase(t, cust.ID), rb.newCase(t, cust.ID)
	ctx := context.Background()

	a, a2 := newContact(cs.ID, "replica A's, held at its commit"), newContact(otherA, "its neighbour")
	const key = 7345028
	for _, q := range []string{
		`CREATE FUNCTION hold_commit() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN PERFORM pg_advisory_xact_lock_shared(` + strconv.Itoa(key) + `); RETURN NULL; END $$`,
		`CREATE CONSTRAINT TRIGGER hold_commit AFTER INSERT ON contacts DEFERRABLE INITIALLY DEFERRED FOR EACH ROW WHEN (NEW.id = '` + a.ID + `') EXECUTE FUNCTION hold_commit()`,
	} {
		if _, err := db.Write.ExecContext(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	gate := sqldbtest.Hold(t, db, `SELECT pg_advisory_xact_lock($1)`, key)
	doneA := ra.oneBatch(t, plugA, a, a2)
	sqldbtest.BlockedBy(t, db, gate.PID, doneA[0]) // A at its commit

	b, b2 := newContact(cs.ID, "replica B's, same case"), newContact(otherB, "its neighbour")
	for i, d := range rb.oneBatch(t, plugB, b, b2) {
		select {
		case err := <-d:
			if err != nil {
				t.Fatalf("replica B's contact %d: %v", i, err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("replica B's batch waited for replica A's, at its commit, to end")
		}
	}

	if err := gate.Tx.Rollback(); err != nil {
		t.Fatal(err)
	}
	for i, d := range doneA {
		if err := result(t, d); err != nil {
			t.Fatalf("replica A's contact %d: %v", i, err)
		}
	}
	var updated int64
	if err := db.Read.QueryRow(`SELECT updated_at FROM cases WHERE id = $1`, cs.ID).Scan(&updated); err != nil {
		t.Fatal(err)
	}
	if want := sqldb.Micros(b.CreatedAt); updated != want {
		t.Errorf("case updated_at %d, want the newer contact's creation %d", updated, want)
	}
	rb.verify(t, 6) // both replicas' plugs and batches, in one chain
}

// TestBatchUnderACloseGetsItsRetention: a batch with a contact of a case
// that is being closed must not leave the contact with the retention of
// an open case. The close locks the row FOR UPDATE before it changes it
// (Store.updateCase); the batch waits for it, and reads closed_at after.
func TestBatchUnderACloseGetsItsRetention(t *testing.T) {
	db := sqldbtest.Open(t, sqldb.Postgres)
	r := newBatchRig(t, db, 1)
	cust, cs := seed(t, r.svc)
	other, plug := r.newCase(t, cust.ID), r.newCase(t, cust.ID)
	closed := time.Now().Add(-time.Hour).Truncate(time.Microsecond).UTC()
	h := sqldbtest.Hold(t, db, `WITH l AS (SELECT id FROM cases WHERE id = $2 FOR UPDATE)
		UPDATE cases SET closed_at = $1, status = 'closed' FROM l WHERE cases.id = l.id`, sqldb.Micros(closed), cs.ID)

	c, c2 := newContact(cs.ID, "arrives while the case closes"), newContact(other, "its neighbour, open")
	occurred := c.OccurredAt
	done := r.oneBatch(t, plug, c, c2)
	sqldbtest.BlockedBy(t, db, h.PID, done[0])
	if err := h.Tx.Commit(); err != nil {
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
	r.verify(t, 3)
}

// TestCloseWaitsForABatchInFlight: a close arriving while a batch holds
// its case FOR KEY SHARE (between its first statement and its commit)
// waits for the batch, and its retention recompute covers the batch's
// contact: the contact ends with a closed case's retention.
func TestCloseWaitsForABatchInFlight(t *testing.T) {
	db := sqldbtest.Open(t, sqldb.Postgres)
	r := newBatchRig(t, db, 1)
	cust, cs := seed(t, r.svc)
	other, plug := r.newCase(t, cust.ID), r.newCase(t, cust.ID)
	ctx := context.Background()

	held, release := r.holdNext()
	defer release()
	plugged := writeAsync(r.store, newContact(plug, "holds the batch slot"))
	<-held
	c, c2 := newContact(cs.ID, "in flight while the case closes"), newContact(other, "its neighbour")
	done := []<-chan error{writeAsync(r.store, c), writeAsync(r.store, c2)}
	r.waitQueued(t, 2)
	inFlight, let := r.holdNext()
	defer let()
	release()
	if err := result(t, plugged); err != nil {
		t.Fatal(err)
	}
	<-inFlight

	closedStatus := cases.StatusClosed
	closing := make(chan error, 1)
	go func() {
		_, err := r.svc.UpdateCase(ctx, cs.ID, cases.CasePatch{Status: &closedStatus}, cases.Actor{})
		closing <- err
	}()
	// the close's FOR UPDATE, waiting on a backend that holds a lock in
	// this test's schema (the batch)
	sqldbtest.AwaitBackend(t, db, closing, `SELECT a.pid FROM pg_stat_activity a WHERE a.query LIKE '%FOR UPDATE%' AND EXISTS (
		SELECT 1 FROM pg_locks l JOIN pg_class c ON c.oid = l.relation
		WHERE l.pid = ANY(pg_blocking_pids(a.pid)) AND c.relnamespace = current_schema()::regnamespace) LIMIT 1`)
	let()
	for i, d := range done {
		if err := result(t, d); err != nil {
			t.Fatalf("contact %d: %v", i, err)
		}
	}
	if err := result(t, closing); err != nil {
		t.Fatalf("the close: %v", err)
	}

	var closed sql.NullInt64
	var until sql.NullInt64
	if err := db.Read.QueryRow(`SELECT closed_at FROM cases WHERE id = $1`, cs.ID).Scan(&closed); err != nil || !closed.Valid {
		t.Fatalf("closed_at %v (%v)", closed, err)
	}
	if err := db.Read.QueryRow(`SELECT retain_until FROM contacts WHERE id = $1`, c.ID).Scan(&until); err != nil {
		t.Fatal(err)
	}
	at := sqldb.FromMicros(closed.Int64)
	sc := retention.DefaultSchedule()
	want, _ := sc.RetainUntil(c.Purposes, c.OccurredAt, &at)
	open, _ := sc.RetainUntil(c.Purposes, c.OccurredAt, nil)
	if want == nil || open != nil && open.Equal(*want) {
		t.Fatalf("the schedule does not tell a closed case from an open one (%v, %v): the test proves nothing", want, open)
	}
	if !until.Valid || until.Int64 != sqldb.Micros(*want) {
		t.Errorf("contact retain_until %v, want the closed case's %v", until, want)
	}
}

// TestErasureUnderBatch: an erasure holding the customer's rows while a
// batch writes a contact of theirs commits, and the contact fails as "not
// found"; its neighbour of another customer is written. The batch waits
// in its touch, with nothing written.
func TestErasureUnderBatch(t *testing.T) {
	db := sqldbtest.Open(t, sqldb.Postgres)
	keys, fields := sealing(t, db)
	r := newBatchRigWith(t, db, 1, fields, retention.WritePrologue(db, time.Now))
	cust, cs := seed(t, r.svc)
	other, _ := seed(t, r.svc)
	otherCase, plug := r.newCase(t, other.ID), r.newCase(t, other.ID)
	var keyed int
	if err := db.Read.QueryRow(`SELECT COUNT(*) FROM customer_keys WHERE customer_id IN ($1, $2) AND wrapped_key IS NOT NULL`, cust.ID, other.ID).Scan(&keyed); err != nil || keyed != 2 {
		t.Fatalf("%d live keys (%v), want 2: the late path is not taken", keyed, err)
	}

	h := sqldbtest.Hold(t, db, `SELECT id FROM customers WHERE id = $1 FOR UPDATE`, cust.ID)
	ctx := context.Background()
	if _, err := sqlstore.ReadErasure(ctx, db, h.Tx, nil, cust.ID); err != nil {
		t.Fatal(err)
	}
	c, c2 := newContact(cs.ID, "written during the erasure"), newContact(otherCase, "another customer's")
	done := r.oneBatch(t, plug, c, c2)
	pid := sqldbtest.BlockedBy(t, db, h.PID, done[0])
	if q := query(t, db, pid); !strings.Contains(q, "synchronous_commit") {
		t.Errorf("the batch waits in %q, not in its touch ahead", q)
	}
	if wrote(t, db, pid, "contacts") {
		t.Error("the batch wrote contacts before its cases were locked")
	}
	erase(t, db, h, keys, cust.ID)
	erasedOnly(t, done)
	var n int
	if err := db.Read.QueryRow(`SELECT COUNT(*) FROM contacts WHERE customer_id = $1`, cust.ID).Scan(&n); err != nil || n != 0 {
		t.Errorf("%d contacts of the erased customer (%v)", n, err)
	}
}

// TestKeylessCustomerKeyAfterItsCase: a customer's first sealed write
// creates their data key. Created before the case is locked, its row
// would be inserted in the reverse of an erasure's order (cases, then the
// key row, which a tombstone INSERT waits on): a deadlock. A batch with
// such a contact waits for an erasure holding the cases with no key row
// written (in its touch ahead; in its transaction the share read of the
// cases is the first statement), and then fails as "not found".
func TestKeylessCustomerKeyAfterItsCase(t *testing.T) {
	db := sqldbtest.Open(t, sqldb.Postgres)
	plain := cases.NewService(sqlstore.New(db, sqlstore.Options{}), nil)
	cust, cs := seed(t, plain) // no sealing: no data key
	keys, fields := sealing(t, db)
	r := newBatchRigWith(t, db, 1, fields, retention.WritePrologue(db, time.Now))
	other, _ := seed(t, r.svc) // sealed: keyed
	otherCase, plug := r.newCase(t, other.ID), r.newCase(t, other.ID)

	h := sqldbtest.Hold(t, db, `SELECT id FROM cases WHERE customer_id = $1 ORDER BY id FOR UPDATE`, cust.ID)
	c, c2 := newContact(cs.ID, "the customer's first sealed write"), newContact(otherCase, "a keyed customer's")
	done := r.oneBatch(t, plug, c, c2)
	pid := sqldbtest.BlockedBy(t, db, h.PID, done[0])
	if wrote(t, db, pid, "customer_keys") {
		t.Error("the batch created the customer's key before locking the case")
	}
	erase(t, db, h, keys, cust.ID)
	erasedOnly(t, done)
}

// erase finishes, in h's transaction, the erasure of customerID whose
// rows h holds (its key destroyed, its rows deleted) and commits it.
func erase(t *testing.T, db *sqldb.DB, h *sqldbtest.Holder, keys *archive.Keyring, customerID string) {
	t.Helper()
	ctx := context.Background()
	if err := keys.DestroyTx(ctx, h.Tx, customerID); err != nil {
		t.Fatal(err)
	}
	if err := sqlstore.DeleteCustomer(ctx, db, h.Tx, customerID); err != nil {
		t.Fatal(err)
	}
	if err := h.Tx.Commit(); err != nil {
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
