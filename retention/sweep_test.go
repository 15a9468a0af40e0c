package retention_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/casevault/casevault/audit"
	"github.com/casevault/casevault/cases"
	"github.com/casevault/casevault/retention"
	"github.com/casevault/casevault/sqldb"
	"github.com/casevault/casevault/sqldb/sqldbtest"
	"github.com/casevault/casevault/testkit"
)

// scenario is a small archive with one contact for each thing a sweep does.
type scenario struct {
	caseOpen, caseGone, caseHeld string
	del, anon, minimize, held    cases.Contact
	gone                         cases.Contact
	blob                         string
	hold                         string
}

func buildScenario(t *testing.T, e *env) scenario {
	var s scenario
	cust := e.customer()
	s.caseOpen, s.caseGone, s.caseHeld = e.newCase(cust), e.newCase(cust), e.newCase(cust)
	s.del = e.contact(s.caseOpen, base, purposes(cases.PurposeNotification), contactOpt{body: "your OTP is 1234"})
	s.blob = e.attachment(s.del)
	s.anon = e.contact(s.caseOpen, base, purposes(cases.PurposeImprovement), contactOpt{body: "I would like dark mode", location: true, device: true})
	s.minimize = e.contact(s.caseOpen, base, purposes(cases.PurposeCustomerService), contactOpt{body: "please call me back", location: true, device: true})
	s.gone = e.contact(s.caseGone, base, purposes(cases.PurposeNotification), contactOpt{body: "shipment left the warehouse"})
	s.held = e.contact(s.caseHeld, base, purposes(cases.PurposeNotification), contactOpt{body: "evidence", location: true})
	h, err := e.holds.Place(e.ctx, retention.HoldInput{Matter: "M-1", Reason: "dispute", Scope: retention.HoldScope{CaseIDs: []string{s.caseHeld}}}, cases.Actor{Name: "legal"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	s.hold = h.ID
	return s
}

type counts struct{ examinedMin, deleted, anonymized, redacted, casesDeleted, held, errors int }

func countsOf(r retention.RunReport) counts {
	return counts{0, r.Deleted, r.Anonymized, r.Redacted, r.CasesDeleted, r.SkippedHeld, r.Errors}
}

func TestSweepDispositions(t *testing.T) {
	forEachDialect(t, func(t *testing.T, e *env) {
		s := buildScenario(t, e)
		at := base.Add(400 * day)
		outboxBefore := e.count(`SELECT COUNT(*) FROM outbox`)
		rep := e.sweep(at, false)
		want := counts{deleted: 2, anonymized: 1, redacted: 2, casesDeleted: 1, held: 2}
		if got := countsOf(rep); got != want || rep.Status != retention.StatusSucceeded || rep.DryRun {
			t.Fatalf("report %+v\ncounts %+v, want %+v", rep, got, want)
		}
		if rep.Examined < 6 {
			t.Fatalf("examined %d", rep.Examined)
		}
		// Deleted: the contact, its attachment row and blob.
		if e.exists(s.del.ID) || e.exists(s.gone.ID) {
			t.Fatal("expired contacts survived")
		}
		if n := e.count(`SELECT COUNT(*) FROM attachments WHERE contact_id = ?`, s.del.ID); n != 0 {
			t.Fatalf("%d attachment rows left", n)
		}
		if !slices.Contains(e.blobs.keys(), s.blob) {
			t.Fatalf("blob %s not deleted (deleted: %v)", s.blob, e.blobs.keys())
		}
		// The case whose last contact went is gone; the others stay.
		if e.count(`SELECT COUNT(*) FROM cases WHERE id = ?`, s.caseGone) != 0 {
			t.Fatal("empty case not deleted")
		}
		if e.count(`SELECT COUNT(*) FROM cases WHERE id IN (?, ?)`, s.caseOpen, s.caseHeld) != 2 {
			t.Fatal("a case with contacts left was deleted")
		}
		// Anonymized: channel, timestamps and purposes kept; the rest stripped.
		st, ok := e.state(s.anon.ID)
		if !ok || st.body != "" || st.author != "" || st.location.Valid || st.device.Valid || st.retainUntil.Valid || !st.anonymized.Valid {
			t.Fatalf("anonymized contact: %+v", st)
		}
		got, err := e.store.GetContact(e.ctx, s.anon.ID)
		if err != nil || got.Channel != s.anon.Channel || !got.OccurredAt.Equal(s.anon.OccurredAt) || !slices.Equal(got.Purposes, s.anon.Purposes) {
			t.Fatalf("anonymized contact lost its skeleton: %+v, %v", got, err)
		}
		// Minimized: location and device gone, the rest intact.
		st, _ = e.state(s.minimize.ID)
		if st.location.Valid || st.device.Valid || st.body != s.minimize.Body || st.retainUntil.Valid {
			t.Fatalf("minimized contact: %+v", st)
		}
		// Held: untouched, expiry and redaction alike.
		st, _ = e.state(s.held.ID)
		if st.body != "evidence" || !st.location.Valid {
			t.Fatalf("held contact changed: %+v", st)
		}
		var heldItems []retention.Item
		for _, it := range rep.Items {
			if it.Action == retention.ItemHeld {
				heldItems = append(heldItems, it)
			}
		}
		if len(heldItems) != 2 || heldItems[0].ContactID != s.held.ID || !slices.Equal(heldItems[0].HeldBy, []string{s.hold}) {
			t.Fatalf("held items %+v", heldItems)
		}
		// Disposition records: one per act, with a digest and no content.
		type disp struct{ contact, action, rule, hash, detail string }
		rows, err := e.db.Read.QueryContext(e.ctx, `SELECT contact_id, action, rule, content_sha256, detail, purposes, customer_id, case_id FROM dispositions ORDER BY action, contact_id`)
		if err != nil {
			t.Fatal(err)
		}
		var ds []disp
		for rows.Next() {
			var d disp
			var ps, cust, cs string
			if err := rows.Scan(&d.contact, &d.action, &d.rule, &d.hash, &d.detail, &ps, &cust, &cs); err != nil {
				t.Fatal(err)
			}
			all := strings.Join([]string{d.contact, d.action, d.rule, d.hash, d.detail, ps, cust, cs}, "|")
			for _, secret := range []string{"OTP", "1234", "dark mode", "call me back", "warehouse", "Li Lei", "Shanghai", "203.0.113.7", "Firefox", "Parcel lost"} {
				if strings.Contains(all, secret) {
					t.Errorf("disposition %q holds content %q", all, secret)
				}
			}
			if len(d.hash) != 64 {
				t.Errorf("content_sha256 %q", d.hash)
			}
			ds = append(ds, d)
		}
		rows.Close()
		actions := map[string]int{}
		for _, d := range ds {
			actions[d.action]++
		}
		if fmt.Sprint(actions) != fmt.Sprint(map[string]int{"anonymize": 1, "delete": 2, "delete_case": 1, "redact": 2}) {
			t.Fatalf("dispositions by action %v", actions)
		}
		// The index is told: one outbox row per touched case at least.
		if n := e.count(`SELECT COUNT(*) FROM outbox`) - outboxBefore; n < 2 {
			t.Fatalf("%d outbox rows appended", n)
		}
		if e.count(`SELECT COUNT(*) FROM outbox WHERE case_id = ?`, s.caseGone) < 2 {
			t.Fatal("no outbox row for the deleted case")
		}
		// Audit: one event per disposition, chain intact.
		if n := e.count(`SELECT COUNT(*) FROM audit_events WHERE action LIKE 'retention.%'`); n != 6 {
			t.Fatalf("%d retention audit events, want 6", n)
		}
		if res, err := audit.New(e.db).Verify(e.ctx); err != nil || !res.OK {
			t.Fatalf("audit verify = %+v, %v", res, err)
		}
		// The report is stored for the runs API.
		stored, err := e.sweeper.GetRun(e.ctx, rep.ID)
		if err != nil || stored.Deleted != 2 || stored.Status != retention.StatusSucceeded || stored.FinishedAt == nil {
			t.Fatalf("GetRun = %+v, %v", stored, err)
		}
		if _, err := e.sweeper.GetRun(e.ctx, "nope"); !errors.Is(err, cases.ErrNotFound) {
			t.Fatalf("GetRun(unknown) = %v", err)
		}
		// Idempotent: the second run finds nothing but the held contact.
		again := e.sweep(at, false)
		if got := countsOf(again); got != (counts{held: 2}) {
			t.Fatalf("second run %+v", again)
		}
		// Released, the held contact goes at the next sweep.
		if _, err := e.holds.Release(e.ctx, s.hold, "settled", cases.Actor{Name: "legal"}, nil); err != nil {
			t.Fatal(err)
		}
		e.pastGrace()
		third := e.sweep(at, false)
		if got := countsOf(third); got != (counts{deleted: 1, casesDeleted: 1}) {
			t.Fatalf("after release %+v", third)
		}
	})
}

func TestSweepDryRunChangesNothing(t *testing.T) {
	forEachDialect(t, func(t *testing.T, e *env) {
		buildScenario(t, e)
		at := base.Add(400 * day)
		before := e.snapshot()
		dry := e.sweep(at, true)
		if after := e.snapshot(); after != before {
			t.Fatalf("dry run changed the database:\nbefore:\n%s\nafter:\n%s", before, after)
		}
		if len(e.blobs.keys()) != 0 {
			t.Fatal("dry run deleted blobs")
		}
		if !dry.DryRun {
			t.Fatal("report not marked dry")
		}
		real := e.sweep(at, false)
		if countsOf(dry) != countsOf(real) || dry.Examined != real.Examined {
			t.Fatalf("dry run %+v\nreal run %+v", countsOf(dry), countsOf(real))
		}
		key := func(it retention.Item) string {
			return it.Action + "/" + it.ContactID + "/" + it.CaseID + "/" + it.Category
		}
		var a, b []string
		for _, it := range dry.Items {
			a = append(a, key(it))
		}
		for _, it := range real.Items {
			b = append(b, key(it))
		}
		slices.Sort(a)
		slices.Sort(b)
		if !slices.Equal(a, b) {
			t.Fatalf("dry items %v\nreal items %v", a, b)
		}
	})
}

func TestSweepEventClock(t *testing.T) {
	forEachDialect(t, func(t *testing.T, e *env) {
		cs := e.newCase(e.customer())
		c := e.contact(cs, base, purposes(cases.PurposeCustomerService), contactOpt{})
		until := func() *time.Time {
			st, _ := e.state(c.ID)
			if !st.retainUntil.Valid {
				return nil
			}
			return tp(time.UnixMicro(st.retainUntil.Int64).UTC())
		}
		threeY := 3 * 365 * day
		if until() != nil {
			t.Fatal("open case: contact has a date")
		}
		closed1 := base.Add(10 * day)
		e.setClosed(cs, &closed1)
		if u := until(); u == nil || !u.Equal(closed1.Add(threeY)) {
			t.Fatalf("closed: %v", u)
		}
		if r := e.sweep(closed1.Add(threeY-day), false); r.Deleted != 0 || !e.exists(c.ID) {
			t.Fatal("deleted before its date")
		}
		e.setClosed(cs, nil) // reopened: the clock stops
		if until() != nil {
			t.Fatal("reopened: contact kept a date")
		}
		if e.sweep(closed1.Add(threeY+day), false); !e.exists(c.ID) {
			t.Fatal("deleted after a reopen")
		}
		closed2 := base.Add(100 * day)
		e.setClosed(cs, &closed2) // closed again: the clock restarts
		if u := until(); u == nil || !u.Equal(closed2.Add(threeY)) {
			t.Fatalf("closed again: %v", u)
		}
		if e.sweep(closed1.Add(threeY+day), false); !e.exists(c.ID) {
			t.Fatal("deleted on the first closing's clock")
		}
		r := e.sweep(closed2.Add(threeY), false)
		if r.Deleted != 1 || e.exists(c.ID) {
			t.Fatalf("not deleted at the restarted date: %+v", r)
		}
	})
}

func TestSweepNeverUsesStaleDate(t *testing.T) {
	forEachDialect(t, func(t *testing.T, e *env) {
		cs := e.newCase(e.customer())
		c := e.contact(cs, base, purposes(cases.PurposeNotification), contactOpt{})
		longer := retention.DefaultSchedule()
		longer.Purposes[4].Keep, _ = retention.ParseDuration("1y")
		if _, err := e.sched.Put(e.ctx, longer, cases.Actor{Name: "admin"}, nil); err != nil {
			t.Fatal(err)
		}
		// No Recompute yet: the stored date (90 days) is stale; the sweep
		// finishes the recompute before it selects anything.
		r := e.sweep(base.Add(100*day), false)
		if r.Deleted != 0 || r.Recomputed != 1 || !e.exists(c.ID) {
			t.Fatalf("stale date: %+v", r)
		}
		if st, _ := e.state(c.ID); st.retainUntil.Int64 != base.Add(365*day).UnixMicro() {
			t.Fatalf("not recomputed: %+v", st)
		}
		// A date gone stale otherwise (e.g. written by a replica still on the
		// old schedule) is corrected, not acted on.
		if _, err := e.db.Write.ExecContext(e.ctx, e.db.Rebind(`UPDATE contacts SET retain_until = ? WHERE id = ?`), base.Add(90*day).UnixMicro(), c.ID); err != nil {
			t.Fatal(err)
		}
		r = e.sweep(base.Add(100*day), false)
		if r.Deleted != 0 || r.Rescheduled != 1 || !e.exists(c.ID) {
			t.Fatalf("stale date: %+v", r)
		}
		if st, _ := e.state(c.ID); st.retainUntil.Int64 != base.Add(365*day).UnixMicro() {
			t.Fatalf("not rescheduled: %+v", st)
		}
	})
}

func TestSweepQueryHoldWaitsForIndex(t *testing.T) {
	forEachDialect(t, func(t *testing.T, e *env) {
		cust := e.customer()
		a, b := e.newCase(cust), e.newCase(cust)
		held := e.contact(a, base, purposes(cases.PurposeNotification), contactOpt{body: "chargeback dispute"})
		free := e.contact(b, base, purposes(cases.PurposeNotification), contactOpt{body: "delivered"})
		if _, err := e.holds.Place(e.ctx, retention.HoldInput{Matter: "M", Reason: "r", Scope: retention.HoldScope{Query: "chargeback"}}, cases.Actor{}, nil); err != nil {
			t.Fatal(err)
		}
		e.setLag(3)
		r := e.sweep(base.Add(200*day), false)
		if r.Status != retention.StatusDeferred || r.Deleted != 0 || !e.exists(free.ID) {
			t.Fatalf("index behind: %+v", r)
		}
		e.setLag(0)
		r = e.sweep(base.Add(200*day), false)
		if r.Status != retention.StatusSucceeded || r.Deleted != 1 || r.SkippedHeld != 1 || e.exists(free.ID) || !e.exists(held.ID) {
			t.Fatalf("index caught up: %+v", r)
		}
	})
}

func TestSweepResumesAfterInterruption(t *testing.T) {
	forEachDialect(t, func(t *testing.T, e *env) {
		cs := e.newCase(e.customer())
		for i := range 10 {
			e.contact(cs, base.Add(time.Duration(i)*time.Hour), purposes(cases.PurposeNotification), contactOpt{})
		}
		ctx, cancel := context.WithCancel(e.ctx)
		defer cancel()
		sw := retention.NewSweeper(e.db, retention.SweeperOptions{Policy: e.policy, Holds: e.holds, Notify: cancel})
		r, err := sw.Run(ctx, retention.RunOptions{Now: base.Add(100 * day), BatchSize: 3})
		if !errors.Is(err, context.Canceled) || r.Status != retention.StatusInterrupted || r.Deleted != 3 {
			t.Fatalf("interrupted run: %+v, %v", r, err)
		}
		if n := e.count(`SELECT COUNT(*) FROM contacts`); n != 7 {
			t.Fatalf("%d contacts after one batch", n)
		}
		r = e.sweep(base.Add(100*day), false)
		if r.Deleted != 7 || r.CasesDeleted != 1 || e.count(`SELECT COUNT(*) FROM contacts`) != 0 {
			t.Fatalf("resumed run: %+v", r)
		}
	})
}

func TestSweepOneAtATime(t *testing.T) {
	for _, d := range sqldbtest.Dialects {
		t.Run(string(d), func(t *testing.T) {
			cfg := sqldbtest.Config(t, d)
			open := func() *sqldb.DB {
				db, err := sqldb.Open(context.Background(), cfg)
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { db.Close() })
				return db
			}
			db1 := open()
			e := newEnv(t, db1)
			cs := e.newCase(e.customer())
			if _, err := e.holds.Place(e.ctx, retention.HoldInput{Matter: "M", Reason: "r", Scope: retention.HoldScope{Query: "dispute"}}, cases.Actor{}, nil); err != nil {
				t.Fatal(err)
			}
			// Matching after placement: the sweep asks the matcher (a
			// recorded case would not need it).
			e.contact(cs, base, purposes(cases.PurposeNotification), contactOpt{body: "dispute"})
			e.matcher.mu.Lock()
			e.matcher.calls = 0
			e.matcher.mu.Unlock()
			block := make(chan struct{})
			e.matcher.mu.Lock()
			e.matcher.block = block
			e.matcher.mu.Unlock()
			first := e.sweeper
			second := e.sweeper // SQLite: one process, one sweeper
			if d == sqldb.Postgres {
				second = e.newSweeper(open()) // another replica on the same database
			}
			done := make(chan error, 1)
			go func() {
				_, err := first.Run(e.ctx, retention.RunOptions{Now: base.Add(200 * day)})
				done <- err
			}()
			// Wait until the first sweep is inside (evaluating the query hold).
			testkit.Eventually(t, 10*time.Second, "the first sweep to evaluate the query hold", func() bool {
				e.matcher.mu.Lock()
				defer e.matcher.mu.Unlock()
				return e.matcher.calls > 0
			})
			if _, err := second.Run(e.ctx, retention.RunOptions{Now: base.Add(200 * day)}); !errors.Is(err, retention.ErrSweepRunning) {
				t.Fatalf("second sweep: %v, want ErrSweepRunning", err)
			}
			close(block)
			if err := <-done; err != nil {
				t.Fatal(err)
			}
			if _, err := second.Run(e.ctx, retention.RunOptions{Now: base.Add(200 * day)}); err != nil {
				t.Fatalf("after the first finished: %v", err)
			}
		})
	}
}

func TestSweepBatchAuditHook(t *testing.T) {
	forEachDialect(t, func(t *testing.T, e *env) {
		cs := e.newCase(e.customer())
		for i := range 7 {
			e.contact(cs, base.Add(time.Duration(i)*time.Hour), purposes(cases.PurposeNotification), contactOpt{})
		}
		var calls, changes int
		sw := retention.NewSweeper(e.db, retention.SweeperOptions{Policy: e.policy, Holds: e.holds,
			OnChange: func(context.Context, txT, cases.Change) error {
				t.Error("OnChange used although OnChanges is set")
				return nil
			},
			OnChanges: func(_ context.Context, _ txT, chs []cases.Change) error {
				calls++
				changes += len(chs)
				return nil
			}})
		r, err := sw.Run(e.ctx, retention.RunOptions{Now: base.Add(100 * day), BatchSize: 3})
		if err != nil || r.Deleted != 7 {
			t.Fatalf("run %+v, %v", r, err)
		}
		if calls != 3 || changes != 8 {
			t.Fatalf("OnChanges: %d calls, %d changes; want 3 batches, 7 contacts + 1 case", calls, changes)
		}
		// A failing audit rolls the batch back: nothing is destroyed unaudited.
		cs2 := e.newCase(e.customer())
		c := e.contact(cs2, base, purposes(cases.PurposeNotification), contactOpt{})
		sw = retention.NewSweeper(e.db, retention.SweeperOptions{Policy: e.policy, Holds: e.holds,
			OnChange: func(context.Context, txT, cases.Change) error { return errors.New("audit down") }})
		r, err = sw.Run(e.ctx, retention.RunOptions{Now: base.Add(100 * day)})
		if err != nil || r.Errors != 1 || r.Deleted != 0 || !e.exists(c.ID) {
			t.Fatalf("audit down: %+v, %v", r, err)
		}
		if n := e.count(`SELECT COUNT(*) FROM dispositions WHERE contact_id = ?`, c.ID); n != 0 {
			t.Fatalf("%d dispositions for an act that was rolled back", n)
		}
	})
}

func TestSweepStartInBackground(t *testing.T) {
	forEachDialect(t, func(t *testing.T, e *env) {
		cs := e.newCase(e.customer())
		e.contact(cs, base, purposes(cases.PurposeNotification), contactOpt{})
		id, done, err := e.sweeper.Start(e.ctx, retention.RunOptions{Now: base.Add(100 * day), DryRun: true})
		if err != nil {
			t.Fatal(err)
		}
		// Registered before Start returned: the runs API can answer at once.
		if r, err := e.sweeper.GetRun(e.ctx, id); err != nil || r.ID != id || !r.DryRun {
			t.Fatalf("GetRun right after Start = %+v, %v", r, err)
		}
		rep := <-done
		if rep.ID != id || rep.Status != retention.StatusSucceeded || rep.Deleted != 1 {
			t.Fatalf("report %+v", rep)
		}
		stored, err := e.sweeper.GetRun(e.ctx, id)
		if err != nil || stored.Status != retention.StatusSucceeded || stored.Deleted != 1 || len(stored.Items) != 2 {
			t.Fatalf("stored %+v, %v", stored, err)
		}
	})
}
