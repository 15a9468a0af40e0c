package sqlstore_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/casevault/casevault/audit"
	"github.com/casevault/casevault/cases"
	"github.com/casevault/casevault/retention"
	"github.com/casevault/casevault/sqldb"
	"github.com/casevault/casevault/sqldb/sqldbtest"
	"github.com/casevault/casevault/sqlstore"
	"github.com/casevault/casevault/testkit"
)

// batchRig is a store wired as serve wires it (PostgreSQL: the write
// prologue and the unsequenced audit; SQLite: the chain appended directly;
// both: the stored schedule and the holds' record of each write), with a
// batch hook that can hold the first transaction open, so that the writes
// submitted meanwhile queue and form one batch.
type batchRig struct {
	db        *sqldb.DB
	log       *audit.Log
	store     *sqlstore.Store
	svc       *cases.Service
	holds     *retention.Holds
	schedules *retention.Schedules

	mu      sync.Mutex
	batches [][]string // the contact ids of each batch hook call
	hold    chan struct{}
	held    chan struct{}
}

func newBatchRig(t *testing.T, db *sqldb.DB, slots int) *batchRig {
	return newBatchRigWith(t, db, slots, nil, retention.WritePrologue(db, time.Now))
}

// newBatchRigWith is newBatchRig sealing personal fields with f (nil:
// clear), with prologue as PostgreSQL's write prologue.
func newBatchRigWith(t *testing.T, db *sqldb.DB, slots int, f *sqlstore.Fields, prologue func(context.Context, *sql.Tx) error) *batchRig {
	r := &batchRig{db: db}
	var opts []audit.Option
	if db.Dialect == sqldb.Postgres {
		db.SetPrologue(prologue)
		opts = append(opts, audit.WithSequencer(0))
	}
	policy := retention.NewPolicy(retention.DefaultSchedule())
	r.schedules = retention.NewSchedules(db, policy) // writes read the stored schedule
	r.holds = retention.NewHoldsWith(db, retention.HoldsOptions{Policy: policy})
	holds := r.holds
	r.log = audit.New(db, opts...)
	t.Cleanup(func() { _ = r.log.Close(context.Background()) })
	r.store = sqlstore.New(db, sqlstore.Options{
		Policy:         policy,
		Fields:         f,
		ContactBatches: slots,
		OnChanges: func(ctx context.Context, tx *sql.Tx, chs []cases.Change) error {
			ids := make([]string, len(chs))
			evs := make([]audit.Event, len(chs))
			for i, ch := range chs {
				ids[i] = ch.TargetID
				evs[i] = audit.FromChange(ch, audit.OutcomeOK)
			}
			r.mu.Lock()
			r.batches = append(r.batches, ids)
			hold, held := r.hold, r.held
			r.hold, r.held = nil, nil
			r.mu.Unlock()
			if hold != nil {
				close(held)
				<-hold
			}
			if err := holds.RecordWrites(ctx, tx, chs); err != nil {
				return err
			}
			_, err := r.log.AppendManyTx(ctx, tx, evs)
			return err
		},
		OnChange: func(ctx context.Context, tx *sql.Tx, ch cases.Change) error {
			if err := holds.RecordWrite(ctx, tx, ch); err != nil {
				return err
			}
			_, err := r.log.AppendTx(ctx, tx, audit.FromChange(ch, audit.OutcomeOK))
			return err
		},
	})
	if err := errors.Join(r.store.Prepare(context.Background()), retention.Prepare(context.Background(), db)); err != nil {
		t.Fatal(err)
	}
	r.svc = cases.NewService(r.store, nil)
	return r
}

// holdNext makes the next batch wait in its hook until release is called;
// the returned channel closes once it waits.
func (r *batchRig) holdNext() (held <-chan struct{}, release func()) {
	r.mu.Lock()
	defer r.mu.Unlock()
	hold := make(chan struct{})
	r.hold, r.held = hold, make(chan struct{})
	return r.held, sync.OnceFunc(func() { close(hold) })
}

// writeHeld writes first alone in a batch held open in its hook, queues
// batch behind it (one batch, once released), runs beforeRelease (if any)
// while both wait, then lets them go and returns their errors.
func (r *batchRig) writeHeld(t *testing.T, first *cases.Contact, batch []*cases.Contact, beforeRelease func()) error {
	t.Helper()
	ctx := context.Background()
	held, release := r.holdNext()
	defer release()
	firstErr := make(chan error, 1)
	go func() { firstErr <- r.store.CreateContact(ctx, first, contactChange(first)) }()
	<-held

	errs := make([]error, len(batch))
	var wg sync.WaitGroup
	for i, c := range batch {
		wg.Go(func() { errs[i] = r.store.CreateContact(ctx, c, contactChange(c)) })
	}
	r.waitQueued(t, len(batch))
	if beforeRelease != nil {
		beforeRelease()
	}
	release()
	wg.Wait()
	return errors.Join(append(errs, <-firstErr)...)
}

// waitQueued waits until n contact writes are queued behind the held batch.
func (r *batchRig) waitQueued(t *testing.T, n int) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); sqlstore.QueuedContacts(r.store) < n; {
		if time.Now().After(deadline) {
			t.Fatalf("%d contacts queued, want %d", sqlstore.QueuedContacts(r.store), n)
		}
		time.Sleep(time.Millisecond)
	}
}

// verify sequences any pending audit events and checks the chain and how
// many contact.create events it holds.
func (r *batchRig) verify(t *testing.T, wantContactEvents int) {
	t.Helper()
	ctx := context.Background()
	if r.db.Dialect == sqldb.Postgres {
		if _, err := r.log.Sequence(ctx); err != nil {
			t.Fatal(err)
		}
	}
	res, err := r.log.Verify(ctx)
	if err != nil || !res.OK || res.Pending != 0 {
		t.Fatalf("audit verify: %+v, %v", res, err)
	}
	var n int
	if err := r.db.Read.QueryRow(`SELECT COUNT(*) FROM audit_events WHERE action = 'contact.create'`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != wantContactEvents {
		t.Fatalf("%d contact.create audit events, want %d", n, wantContactEvents)
	}
}

func newContact(caseID, body string) *cases.Contact {
	now := time.Now().UTC()
	return &cases.Contact{ID: cases.NewID(), CaseID: caseID, Channel: cases.ChannelChat, Direction: cases.DirectionInbound,
		Author: "customer", Body: body, OccurredAt: now, CreatedAt: now,
		Purposes: []cases.Purpose{cases.PurposeCustomerService}, Categories: []cases.Category{}}
}

func contactChange(c *cases.Contact) cases.Change {
	return cases.Change{Action: "contact.create", TargetType: "contact", TargetID: c.ID, Detail: map[string]any{"case_id": c.CaseID}}
}

// TestContactBatchIsolatesABadContact: a batch holding one contact that
// cannot be written (unknown case, another customer's case, a duplicate
// id: a constraint) among good ones fails only that contact; the good ones
// commit, each with its outbox row and its audit event, in a chain that
// verifies.
func TestContactBatchIsolatesABadContact(t *testing.T) {
	sqldbtest.ForEachDialect(t, func(t *testing.T, db *sqldb.DB) {
		r := newBatchRig(t, db, 1)
		ctx := context.Background()
		cust, cs := seed(t, r.svc)
		_, other := seed(t, r.svc)
		existing := addContact(t, r.svc, cs.ID, "already there")

		tests := []struct {
			name string
			bad  func() *cases.Contact
			want error
		}{
			{"unknown case", func() *cases.Contact { return newContact(cases.NewID(), "lost") }, cases.ErrNotFound},
			{"another customer's case", func() *cases.Contact {
				c := newContact(other.ID, "misfiled")
				c.CustomerID = cust.ID
				return c
			}, cases.ErrConflict},
			{"duplicate id", func() *cases.Contact {
				c := newContact(cs.ID, "twice")
				c.ID = existing.ID
				return c
			}, nil}, // a constraint error: any error, but only for it
		}
		events := 1
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				held, release := r.holdNext()
				defer release()
				first := newContact(cs.ID, "first")
				firstErr := make(chan error, 1)
				go func() { firstErr <- r.store.CreateContact(ctx, first, contactChange(first)) }()
				<-held

				const good = 4
				var goods []*cases.Contact
				for i := range good {
					goods = append(goods, newContact(alternate(i, cs.ID, other.ID), fmt.Sprintf("good %d", i)))
				}
				bad := tt.bad()
				all := append(goods[:2:2], bad)
				all = append(all, goods[2:]...)
				errs := make([]error, len(all))
				var wg sync.WaitGroup
				for i, c := range all {
					wg.Go(func() { errs[i] = r.store.CreateContact(ctx, c, contactChange(c)) })
					r.waitQueued(t, i+1) // queued in this order
				}
				release()
				wg.Wait()
				if err := <-firstErr; err != nil {
					t.Fatalf("held contact: %v", err)
				}
				for i, c := range all {
					if c == bad {
						if errs[i] == nil || (tt.want != nil && !errors.Is(errs[i], tt.want)) {
							t.Fatalf("bad contact: %v, want %v", errs[i], tt.want)
						}
						continue
					}
					if errs[i] != nil {
						t.Fatalf("good contact %d failed with its batch: %v", i, errs[i])
					}
					got, err := r.svc.GetContact(ctx, c.ID)
					if err != nil || got.Body != c.Body || got.CustomerID == "" {
						t.Fatalf("good contact %d: %+v, %v", i, got, err)
					}
				}
				events += 1 + good
				r.verify(t, events)
				var outbox int
				if err := db.Read.QueryRow(`SELECT COUNT(*) FROM outbox WHERE contact_id IS NOT NULL`).Scan(&outbox); err != nil {
					t.Fatal(err)
				}
				if outbox != events {
					t.Fatalf("%d outbox rows for %d contacts", outbox, events)
				}
			})
		}
	})
}

// alternate spreads contacts over two cases.
func alternate(i int, a, b string) string {
	if i%2 == 0 {
		return a
	}
	return b
}

// TestContactBatchSharesOneTransaction: writes queued behind a running
// batch are written by the next one, one hook call for all, and each is
// stored as written alone would have been (retention date, sealing-free
// fields, the case's updated_at moved to its newest contact).
func TestContactBatchSharesOneTransaction(t *testing.T) {
	sqldbtest.ForEachDialect(t, func(t *testing.T, db *sqldb.DB) {
		r := newBatchRig(t, db, 1)
		ctx := context.Background()
		_, a := seed(t, r.svc)
		_, b := seed(t, r.svc)

		held, release := r.holdNext()
		defer release()
		first := newContact(a.ID, "first")
		firstErr := make(chan error, 1)
		go func() { firstErr <- r.store.CreateContact(ctx, first, contactChange(first)) }()
		<-held
		heldAt := time.Now()

		var all []*cases.Contact
		for i := range 10 {
			all = append(all, newContact(alternate(i, a.ID, b.ID), fmt.Sprintf("contact %d", i)))
		}
		errs := make([]error, len(all))
		var wg sync.WaitGroup
		for i, c := range all {
			wg.Go(func() { errs[i] = r.store.CreateContact(ctx, c, contactChange(c)) })
		}
		r.waitQueued(t, len(all))
		time.Sleep(20 * time.Millisecond)
		heldFor := time.Since(heldAt)
		release()
		wg.Wait()
		if err := errors.Join(append(errs, <-firstErr)...); err != nil {
			t.Fatal(err)
		}
		r.mu.Lock()
		batches := r.batches
		r.mu.Unlock()
		if len(batches) != 2 || len(batches[1]) != len(all) {
			t.Fatalf("batch hook calls: %d, sizes %v; want the 10 queued contacts in one", len(batches), batches)
		}

		// The metrics' counts: 2 batches of 11 contacts, busy at least
		// while the first was held (the drain records a batch once it has
		// handed out the verdicts).
		testkit.Eventually(t, 5*time.Second, "the second batch counted", func() bool {
			return r.store.ContactBatchStats().Batches == 2
		})
		st := r.store.ContactBatchStats()
		if st.Slots != 1 || st.Contacts != uint64(1+len(all)) || st.Busy < heldFor {
			t.Fatalf("contact batch stats %+v, want 1 slot, %d contacts, busy >= %v", st, 1+len(all), heldFor)
		}
		newest := map[string]time.Time{}
		for _, c := range all {
			if c.CreatedAt.After(newest[c.CaseID]) {
				newest[c.CaseID] = c.CreatedAt
			}
			got, err := r.svc.GetContact(ctx, c.ID)
			if err != nil || got.Body != c.Body || got.CustomerID == "" || !sameTime(got.RetainUntil, c.RetainUntil) {
				t.Fatalf("contact %s: %+v, %v", c.ID, got, err)
			}
		}
		for id, at := range newest {
			got, err := r.svc.GetCase(ctx, id)
			if err != nil || !got.UpdatedAt.Equal(at.Truncate(time.Microsecond)) {
				t.Fatalf("case %s updated_at %v, want %v (%v)", id, got.UpdatedAt, at, err)
			}
		}
		r.verify(t, 1+len(all))
	})
}

// TestContactBatchRoundTrips: on PostgreSQL a batch of contacts reaches
// the server in 3 round trips, whatever its size: the touch ahead, then
// its transaction pipelined (BEGIN, the write barrier, the reads of the
// schedule version and the holds in force that the write prologue
// prefetches, and the case read in one; the contacts, outbox rows, audit
// events and COMMIT in the other). One statement per round trip made it
// 8; without the prefetch the schedule's and the holds' reads take one
// each.
func TestContactBatchRoundTrips(t *testing.T) {
	tests := []struct {
		name     string
		prologue func(db *sqldb.DB) func(context.Context, *sql.Tx) error
		batch    int64
	}{
		{"the write barrier alone", func(*sqldb.DB) func(context.Context, *sql.Tx) error { return retention.ShareWriteBarrier }, 5},
		{"the write prologue", func(db *sqldb.DB) func(context.Context, *sql.Tx) error { return retention.WritePrologue(db, time.Now) }, 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			db, trips := sqldbtest.OpenCounted(t)
			r := newBatchRigWith(t, db, 1, nil, tt.prologue(db))
			_, a := seed(t, r.svc)
			_, b := seed(t, r.svc)

			// Twice: the first round prepares the statements on the connection.
			for round := range 2 {
				batch := make([]*cases.Contact, 8)
				for i := range batch {
					batch[i] = newContact(alternate(i, a.ID, b.ID), fmt.Sprintf("round %d contact %d", round, i))
				}
				var before int64
				err := r.writeHeld(t, newContact(a.ID, "first"), batch, func() { before = trips.Load() })
				got := trips.Load() - before
				if err != nil {
					t.Fatal(err)
				}
				// The held contact, alone in a plain transaction, ends in 3
				// (the holds' read, its audit event, its COMMIT); then the
				// batch.
				if round == 1 && got != 3+tt.batch {
					t.Fatalf("%d round trips for the held contact's end and a batch of %d, want 3 + %d", got, len(batch), tt.batch)
				}
			}
			r.mu.Lock()
			sizes := len(r.batches[len(r.batches)-1])
			r.mu.Unlock()
			if sizes != 8 {
				t.Fatalf("the last batch held %d contacts, want 8", sizes)
			}
			r.verify(t, 18)
		})
	}
}

// TestContactBatchRecordsHolds: the contacts of a batch are recorded for
// the holds that cover them, read in the batch's transaction (on
// PostgreSQL, prefetched by the write prologue with the hour's bound), and
// for no hold whose grace ended before the batch, even within the hour the
// read's bound admits.
func TestContactBatchRecordsHolds(t *testing.T) {
	sqldbtest.ForEachDialect(t, func(t *testing.T, db *sqldb.DB) {
		r := newBatchRig(t, db, 1)
		ctx := context.Background()
		_, a := seed(t, r.svc)
		legal := cases.Actor{Name: "legal", Role: "legal"}

		// A grace of nothing: the released hold stops preserving at once.
		sc := retention.DefaultSchedule()
		none, _ := retention.ParseDuration("0s")
		sc.HoldReleaseGrace = &none
		if _, err := r.schedules.Put(ctx, sc, legal, nil); err != nil {
			t.Fatal(err)
		}
		from := time.Now().Add(-time.Hour)
		scope := retention.HoldScope{CaseIDs: []string{a.ID}, From: &from}
		kept, err := r.holds.Place(ctx, retention.HoldInput{Matter: "kept", Reason: "r", Scope: scope}, legal, nil)
		if err != nil {
			t.Fatal(err)
		}
		ended, err := r.holds.Place(ctx, retention.HoldInput{Matter: "ended", Reason: "r", Scope: scope}, legal, nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := r.holds.Release(ctx, ended.ID, "done", legal, nil); err != nil {
			t.Fatal(err)
		}

		batch := make([]*cases.Contact, 6)
		for i := range batch {
			batch[i] = newContact(a.ID, fmt.Sprintf("contact %d", i))
		}
		if err := r.writeHeld(t, newContact(a.ID, "first"), batch, nil); err != nil {
			t.Fatal(err)
		}

		count := func(holdID string) (n int) {
			t.Helper()
			if err := db.Read.QueryRow(db.Rebind(`SELECT COUNT(*) FROM hold_items WHERE hold_id = ? AND contact_id <> ''`), holdID).Scan(&n); err != nil {
				t.Fatal(err)
			}
			return n
		}
		if n := count(kept.ID); n != 1+len(batch) {
			t.Errorf("%d contacts recorded for the hold in force, want %d", n, 1+len(batch))
		}
		if n := count(ended.ID); n != 0 {
			t.Errorf("%d contacts recorded for the hold whose grace had ended, want 0", n)
		}
	})
}

// TestContactBatchCancellation: a caller whose context ends while its
// contact waits for a batch gets the context's error and nothing is
// written for it; a caller whose context ends once its batch runs does not
// end the batch: its contact and its neighbours commit and it is told so.
func TestContactBatchCancellation(t *testing.T) {
	sqldbtest.ForEachDialect(t, func(t *testing.T, db *sqldb.DB) {
		r := newBatchRig(t, db, 1)
		_, cs := seed(t, r.svc)

		held, release := r.holdNext()
		defer release()
		runningCtx, cancelRunning := context.WithCancel(context.Background())
		running := newContact(cs.ID, "in the running batch")
		runningErr := make(chan error, 1)
		go func() { runningErr <- r.store.CreateContact(runningCtx, running, contactChange(running)) }()
		<-held

		queuedCtx, cancelQueued := context.WithCancel(context.Background())
		queued := newContact(cs.ID, "queued, then abandoned")
		queuedErr := make(chan error, 1)
		go func() { queuedErr <- r.store.CreateContact(queuedCtx, queued, contactChange(queued)) }()
		r.waitQueued(t, 1)
		neighbour := newContact(cs.ID, "queued neighbour")
		neighbourErr := make(chan error, 1)
		go func() {
			neighbourErr <- r.store.CreateContact(context.Background(), neighbour, contactChange(neighbour))
		}()
		r.waitQueued(t, 2)

		cancelRunning()
		cancelQueued()
		release()
		if err := <-runningErr; err != nil {
			t.Fatalf("contact of a running batch whose caller left: %v, want committed", err)
		}
		if err := <-queuedErr; !errors.Is(err, context.Canceled) {
			t.Fatalf("abandoned queued contact: %v, want context.Canceled", err)
		}
		if err := <-neighbourErr; err != nil {
			t.Fatalf("neighbour: %v", err)
		}
		ctx := context.Background()
		for _, c := range []*cases.Contact{running, neighbour} {
			if _, err := r.svc.GetContact(ctx, c.ID); err != nil {
				t.Fatalf("%s: %v", c.Body, err)
			}
		}
		if _, err := r.svc.GetContact(ctx, queued.ID); !errors.Is(err, cases.ErrNotFound) {
			t.Fatalf("abandoned contact was written: %v", err)
		}
		r.verify(t, 2)
	})
}

// TestConcurrentContactWritesOnSharedCases: many writers on a few cases,
// with batches in flight at once (PostgreSQL: their case rows locked in id
// order, so no deadlock), every write acknowledged is stored, once, with
// its audit event in a chain that verifies.
func TestConcurrentContactWritesOnSharedCases(t *testing.T) {
	sqldbtest.ForEachDialect(t, func(t *testing.T, db *sqldb.DB) {
		r := newBatchRig(t, db, 4)
		ctx := context.Background()
		var ids []string
		for range 3 {
			_, cs := seed(t, r.svc)
			ids = append(ids, cs.ID)
		}
		const writers, each = 24, 10
		var wg sync.WaitGroup
		errs := make(chan error, writers*each)
		for w := range writers {
			wg.Go(func() {
				for i := range each {
					// each writer walks the cases in its own order
					caseID := ids[(w+i*(1+w%2))%len(ids)]
					body := fmt.Sprintf("w%d c%d", w, i)
					if _, err := r.svc.AddContact(ctx, caseID, cases.NewContact{Channel: ptr(cases.ChannelChat), Direction: ptr(cases.DirectionInbound), Author: ptr("a"), Body: &body}, cases.Actor{}); err != nil {
						errs <- err
					}
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		total := 0
		for _, id := range ids {
			tl, err := r.store.Timeline(ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			total += len(tl)
		}
		if total != writers*each {
			t.Fatalf("%d contacts stored, want %d", total, writers*each)
		}
		r.verify(t, writers*each)
	})
}

func ptr[T any](v T) *T { return &v }

func sameTime(a, b *time.Time) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.Equal(b.Truncate(time.Microsecond))
}
