package audit_test

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/casevault/casevault/audit"
	"github.com/casevault/casevault/sqldb"
	"github.com/casevault/casevault/sqldb/sqldbtest"
)

// TestSequencedReplicasBuildOneChain is issue 19's audit design with
// several replicas: separate pools on one database, each appending
// unsequenced through Record, AppendTx and Change while every replica runs
// its own sequencer and one prunes. Verify, run meanwhile, must always see
// a chain that verifies; at the end every event is in the chain exactly
// once and nothing is pending.
func TestSequencedReplicasBuildOneChain(t *testing.T) {
	const replicas, perReplica, workers = 3, 150, 3
	for _, d := range sqldbtest.Dialects {
		t.Run(string(d), func(t *testing.T) {
			ctx := context.Background()
			cfg := sqldbtest.Config(t, d)
			var dbs []*sqldb.DB
			var logs []*audit.Log
			for range replicas {
				db, err := sqldb.Open(ctx, cfg)
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { db.Close() })
				l := audit.New(db, audit.WithSequencer(5*time.Millisecond))
				if err := l.Prepare(ctx); err != nil {
					t.Fatal(err)
				}
				dbs, logs = append(dbs, db), append(logs, l)
			}

			var wg sync.WaitGroup
			errs := make(chan error, replicas*workers+1)
			for r := range replicas {
				for w := range workers {
					wg.Add(1)
					go func() {
						defer wg.Done()
						for i := range perReplica / workers {
							ev := sample(i)
							ev.Time = time.Time{} // now: the sequencing delay is measured from it
							ev.ActorID = fmt.Sprintf("replica-%d", r)
							ev.RequestID = fmt.Sprintf("%d-%d-%d", r, w, i)
							var err error
							switch i % 3 {
							case 0:
								err = logs[r].Record(ctx, ev)
							case 1:
								err = dbs[r].InTx(ctx, func(tx *sql.Tx) error {
									got, err := logs[r].AppendTx(ctx, tx, ev)
									if err == nil && (!got.Pending || got.Seq != 0) {
										err = fmt.Errorf("AppendTx returned %+v, want a pending event", got)
									}
									return err
								})
							case 2:
								err = logs[r].Change(ctx, ev, func(*sql.Tx, *audit.Event) error { return nil })
							}
							if err != nil {
								errs <- err
								return
							}
						}
					}()
				}
			}
			wg.Add(1)
			go func() { // a prune meanwhile: it appends to the chain directly
				defer wg.Done()
				if _, err := logs[2].Prune(ctx, time.Now().Add(-time.Hour)); err != nil {
					errs <- err
				}
			}()

			verifyDone, stopVerify := make(chan struct{}), make(chan struct{})
			go func() {
				defer close(verifyDone)
				for {
					select {
					case <-stopVerify:
						return
					default:
					}
					res, err := logs[1].Verify(ctx)
					if err != nil || !res.OK {
						t.Errorf("verify during appends: %+v %v", res, err)
						return
					}
				}
			}()
			wg.Wait()
			close(stopVerify)
			<-verifyDone
			close(errs)
			for err := range errs {
				t.Fatal(err)
			}
			var sequenced int64
			for _, l := range logs { // each makes a last pass
				if err := l.Close(ctx); err != nil {
					t.Fatal(err)
				}
				sequenced += l.SequencerState().Sequenced
			}
			if sequenced != replicas*perReplica {
				t.Errorf("the sequencers moved %d events, want %d", sequenced, replicas*perReplica)
			}

			// The prune found nothing old enough, so appended no event.
			res := verifyOK(t, logOn(t, dbs[0]), replicas*perReplica)
			if res.Pending != 0 {
				t.Fatalf("%d events still pending after every sequencer's last pass", res.Pending)
			}
			var n, distinct int
			if err := dbs[0].Read.QueryRowContext(ctx, `SELECT COUNT(*), COUNT(DISTINCT request_id) FROM audit_events`).Scan(&n, &distinct); err != nil {
				t.Fatal(err)
			}
			if n != replicas*perReplica || distinct != n {
				t.Fatalf("%d events (%d distinct), want %d once each", n, distinct, replicas*perReplica)
			}
		})
	}
}

// TestPendingEventsAreListedAndCounted: before the sequencer runs, Verify
// reports the pending events (outside the verified chain) and List shows
// them first, marked pending; pages cross from pending to sequenced events
// without skipping any.
func TestPendingEventsAreListedAndCounted(t *testing.T) {
	sqldbtest.ForEachDialect(t, func(t *testing.T, db *sqldb.DB) {
		ctx := context.Background()
		clock := base.Add(1000 * time.Hour)
		l := logOn(t, db, audit.WithSequencer(0), audit.WithClock(func() time.Time { return clock }))
		recordN(t, l, 0, 3)
		if n, err := l.Sequence(ctx); err != nil || n != 3 {
			t.Fatalf("Sequence = %d, %v; want 3", n, err)
		}
		recordN(t, l, 3, 2)

		res := verifyOK(t, l, 3)
		// sample(3) is the oldest pending: 997 hours before the clock.
		if res.Pending != 2 || res.OldestPendingSeconds != (997*time.Hour).Seconds() {
			t.Fatalf("verify reports %d pending, oldest %.0fs; want 2, %.0fs", res.Pending, res.OldestPendingSeconds, (997 * time.Hour).Seconds())
		}

		var got []audit.Event
		cursor := ""
		for page := 0; ; page++ {
			evs, next, err := l.List(ctx, audit.Filter{Limit: 2, Cursor: cursor})
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, evs...)
			if next == "" {
				break
			}
			if page > 5 {
				t.Fatal("List never ends")
			}
			cursor = next
		}
		want := []struct {
			req     string
			pending bool
			seq     int64
		}{{"req-4", true, 0}, {"req-3", true, 0}, {"req-2", false, 3}, {"req-1", false, 2}, {"req-0", false, 1}}
		if len(got) != len(want) {
			t.Fatalf("listed %d events, want %d: %+v", len(got), len(want), got)
		}
		for i, w := range want {
			if got[i].RequestID != w.req || got[i].Pending != w.pending || got[i].Seq != w.seq {
				t.Errorf("item %d: %s pending=%v seq=%d, want %s pending=%v seq=%d", i, got[i].RequestID, got[i].Pending, got[i].Seq, w.req, w.pending, w.seq)
			}
		}

		// A filter applies to pending events too.
		evs, _, err := l.List(ctx, audit.Filter{Actor: "tok-1"})
		if err != nil {
			t.Fatal(err)
		}
		if len(evs) != 2 || !evs[0].Pending || evs[0].RequestID != "req-4" || evs[1].RequestID != "req-1" {
			t.Fatalf("actor filter listed %+v, want req-4 (pending) and req-1", evs)
		}

		if _, err := l.Sequence(ctx); err != nil {
			t.Fatal(err)
		}
		if res := verifyOK(t, l, 5); res.Pending != 0 || res.HeadSeq != 5 {
			t.Fatalf("after sequencing: %+v", res)
		}

		var buf bytes.Buffer
		if err := l.Export(ctx, &buf, audit.Filter{}); err != nil {
			t.Fatal(err)
		}
		if vr, err := audit.VerifyExport(&buf); err != nil || !vr.OK || vr.Events != 5 {
			t.Fatalf("export verifies %+v %v, want 5 events ok", vr, err)
		}
	})
}

// TestSequencerFailureAtAnyPointLosesNothing: a sequencing pass that dies
// after inserting into the chain, or just before its commit, leaves every
// event pending and the chain as it was; the next pass sequences each
// exactly once. (The process-level kill -9 is
// TestKill9DuringAuditSequencing in cmd/casevault.) PostgreSQL: a
// cancelled context there rolls the pass back as a killed connection
// does.
func TestSequencerFailureAtAnyPointLosesNothing(t *testing.T) {
	for _, point := range []string{audit.FaultSequenceInserted, audit.FaultSequenceBeforeCommit} {
		t.Run(point, func(t *testing.T) {
			db := sqldbtest.Open(t, sqldb.Postgres)
			ctx, cancel := context.WithCancel(context.Background())
			fault := func(p string) {
				if p == point {
					cancel()
				}
			}
			l := logOn(t, db, audit.WithSequencer(0), audit.WithFaultPoint(fault))
			recordN(t, l, 0, 4)
			if _, err := l.Sequence(context.Background()); err != nil {
				t.Fatal(err)
			}
			recordN(t, l, 4, 3)

			if n, err := l.Sequence(ctx); err == nil || n != 0 {
				t.Fatalf("the failed pass returned %d, %v; want an error", n, err)
			}
			if res := verifyOK(t, l, 4); res.Pending != 3 || res.HeadSeq != 4 {
				t.Fatalf("after the failed pass: head %d, %d pending; want 4, 3", res.HeadSeq, res.Pending)
			}

			if n, err := l.Sequence(context.Background()); err != nil || n != 3 {
				t.Fatalf("the next pass: %d, %v; want 3", n, err)
			}
			verifyOK(t, l, 7)
			var distinct int
			if err := db.Read.QueryRow(`SELECT COUNT(DISTINCT request_id) FROM audit_events`).Scan(&distinct); err != nil {
				t.Fatal(err)
			}
			if distinct != 7 {
				t.Fatalf("%d distinct events in the chain, want 7", distinct)
			}
		})
	}
}

// TestOneSequencerAtATime: while one replica's pass holds the sequencer
// lock, another replica's pass returns at once with nothing done, and the
// events are sequenced once.
func TestOneSequencerAtATime(t *testing.T) {
	ctx := context.Background()
	cfg := sqldbtest.Config(t, sqldb.Postgres)
	open := func() *sqldb.DB {
		db, err := sqldb.Open(ctx, cfg)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		return db
	}
	entered, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	a := logOn(t, open(), audit.WithSequencer(0), audit.WithFaultPoint(func(p string) {
		if p == audit.FaultSequenceBeforeCommit {
			once.Do(func() { close(entered); <-release })
		}
	}))
	b := logOn(t, open(), audit.WithSequencer(0))
	recordN(t, a, 0, 5)

	done := make(chan error, 1)
	go func() {
		_, err := a.Sequence(ctx)
		done <- err
	}()
	<-entered
	if n, err := b.Sequence(ctx); err != nil || n != 0 {
		t.Errorf("the second sequencer moved %d events (%v) while the first held the lock; want 0", n, err)
	}
	close(release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if res := verifyOK(t, b, 5); res.Pending != 0 {
		t.Fatalf("%d pending", res.Pending)
	}
}

// TestBadPendingCursor: a cursor naming neither kind is a 422-class error.
func TestBadPendingCursor(t *testing.T) {
	_, l := newLog(t, sqldb.SQLite, audit.WithSequencer(0))
	for _, c := range []string{"cDEu", "eDEuMQ"} { // "p1." (empty id), "x1.1"
		_, _, err := l.List(context.Background(), audit.Filter{Cursor: c})
		var fe *audit.FilterError
		if !errors.As(err, &fe) || fe.Field != "cursor" {
			t.Errorf("cursor %q: %v, want a cursor FilterError", c, err)
		}
	}
}

// TestSequencerVacuumsPending: the sequencer deletes every row it moves
// from audit_pending, and on PostgreSQL vacuums the table each time
// WithVacuumEvery of them have gathered (PostgreSQL's own count of the
// table's vacuums says so), so dead rows never pile up for autovacuum's
// next look, or forever when it is off. The chain stays whole.
func TestSequencerVacuumsPending(t *testing.T) {
	const perRound, rounds = 300, 5
	sqldbtest.ForEachDialect(t, func(t *testing.T, db *sqldb.DB) {
		ctx := context.Background()
		if db.Dialect == sqldb.Postgres {
			exec(t, db, `ALTER TABLE audit_pending SET (autovacuum_enabled = false)`)
		}
		l := logOn(t, db, audit.WithSequencer(0), audit.WithVacuumEvery(perRound))

		for r := range rounds {
			recordConcurrently(t, l, r*perRound, perRound)
			if n, err := l.Sequence(ctx); err != nil || n != perRound {
				t.Fatalf("round %d: Sequence = %d, %v; want %d", r, n, err, perRound)
			}
		}

		st := l.SequencerState()
		verifyOK(t, l, rounds*perRound)
		if db.Dialect != sqldb.Postgres {
			if st.Vacuums != 0 {
				t.Fatalf("SQLite: %d vacuums, want none", st.Vacuums)
			}
			return
		}
		if st.Vacuums != rounds || st.VacuumError != "" {
			t.Fatalf("sequencer state %+v: want %d vacuums, no error", st, rounds)
		}
		if got := sqldbtest.VacuumCount(t, db, "audit_pending"); got != rounds {
			t.Fatalf("PostgreSQL counts %d vacuums of audit_pending, want %d", got, rounds)
		}
	})
}

// TestSequencerLookReadsTheKey: the sequencer's look for pending events
// reads audit_pending's primary key from its oldest end. It was EXISTS
// over the table, planned as a sequential scan, which reads every dead
// row a vacuum has not yet removed before the first live one (issue 19:
// 2,408 pages, 6 ms a look, at 47,000 dead rows).
func TestSequencerLookReadsTheKey(t *testing.T) {
	db := sqldbtest.Open(t, sqldb.Postgres)
	l := logOn(t, db, audit.WithSequencer(0))
	recordConcurrently(t, l, 0, 2000)
	exec(t, db, `ANALYZE audit_pending`)

	plan := strings.Join(sqldbtest.PostgresPlan(t, db, nil, audit.OldestPendingQuery), "; ")
	if !strings.Contains(plan, "audit_pending_pkey") || strings.Contains(plan, "Seq Scan") {
		t.Fatalf("plan %q: want a scan of audit_pending_pkey, no sequential scan", plan)
	}
}

// recordConcurrently records sample events from..from+n from 16
// goroutines (the Log gathers them into shared commits).
func recordConcurrently(t *testing.T, l *audit.Log, from, n int) {
	t.Helper()
	var wg sync.WaitGroup
	errs := make(chan error, n)
	next := make(chan int)
	for range 16 {
		wg.Go(func() {
			for i := range next {
				if err := l.Record(context.Background(), sample(i)); err != nil {
					errs <- fmt.Errorf("record %d: %w", i, err)
				}
			}
		})
	}
	for i := from; i < from+n; i++ {
		next <- i
	}
	close(next)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

// TestSequencerStatementsAreOnePerShape: on PostgreSQL a pass moves its
// events with one INSERT and one DELETE whatever their number, so passes
// of different sizes reuse one prepared statement each (the connection's
// pgx statement cache keeps the contact writes' statements; multi-row
// VALUES made one statement per size). The chain they build verifies.
func TestSequencerStatementsAreOnePerShape(t *testing.T) {
	ctx := context.Background()
	db, _ := sqldbtest.OpenCounted(t)
	l := logOn(t, db, audit.WithSequencer(0))

	next := 0
	for _, n := range []int{1, 7, 30, 2} {
		stagePending(t, db, next, n)
		next += n
		got, err := l.Sequence(ctx)
		if err != nil || got != n {
			t.Fatalf("sequenced %d of %d: %v", got, n, err)
		}
	}

	res, err := l.Verify(ctx)
	if err != nil || !res.OK || res.Events != int64(next) {
		t.Fatalf("verify: %+v, %v; want %d events intact", res, err, next)
	}
	for _, prefix := range []string{"INSERT INTO audit_events", "DELETE FROM audit_pending"} {
		var stmts int
		err := db.Write.QueryRowContext(ctx, `SELECT COUNT(*) FROM pg_prepared_statements WHERE statement LIKE $1`, prefix+"%").Scan(&stmts)
		if err != nil {
			t.Fatal(err)
		}
		if stmts != 1 {
			t.Errorf("%d prepared statements %q… after passes of 4 sizes, want 1", stmts, prefix)
		}
	}
}
