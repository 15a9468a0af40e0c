package retention_test

import (
	"testing"
	"time"

	"github.com/casevault/casevault/cases"
	"github.com/casevault/casevault/retention"
)

// TestScheduleChangeGovernsOtherReplicas is issue 20 §1 in one process: two
// sets of retention services (a, b) on one store, each with the policy it
// built at start. A schedule stored through a must govern every decision b
// makes: stamping new contacts, the sweep, explain, recompute, and b must
// never move recomputed_version back. Before the fix b kept its start-up
// copy: it deleted what the new schedule keeps, stamped the old date and
// reset recomputed_version 2 → 1.
func TestScheduleChangeGovernsOtherReplicas(t *testing.T) {
	forEachDialect(t, func(t *testing.T, a *env) {
		b := newEnv(t, a.db)
		now := time.Now().UTC().Truncate(time.Second)
		notif := purposes(cases.PurposeNotification)

		// A contact captured 100 days ago: due under 90d, kept under 400d.
		cs := b.newCase(b.customer())
		old := b.contact(cs, now.Add(-100*day), notif, contactOpt{})

		longer := retention.DefaultSchedule()
		longer.Purposes[4].Keep, _ = retention.ParseDuration("400d")
		if longer.Purposes[4].Purpose != cases.PurposeNotification {
			t.Fatalf("purpose 4 is %s", longer.Purposes[4].Purpose)
		}
		if _, err := a.sched.Put(a.ctx, longer, cases.Actor{Name: "alice"}, nil); err != nil {
			t.Fatal(err)
		}

		// b stamps new contacts with the stored schedule.
		fresh := b.contact(cs, now, notif, contactOpt{})
		st, _ := b.state(fresh.ID)
		if want := now.Add(400 * day); !st.retainUntil.Valid || st.retainUntil.Int64 != want.UnixMicro() {
			t.Fatalf("b stamped retain_until %v, want %s (400d)", st.retainUntil, want)
		}

		// b explains with the stored schedule.
		x, err := b.explain.ExplainContact(b.ctx, old.ID, now)
		if err != nil {
			t.Fatal(err)
		}
		if x.ScheduleVersion != 2 || x.RetainUntil == nil || !x.RetainUntil.Equal(old.OccurredAt.Add(400*day)) {
			t.Fatalf("b explains v%d until %v, want v2 until %s", x.ScheduleVersion, x.RetainUntil, old.OccurredAt.Add(400*day))
		}

		// b sweeps with the stored schedule: the old contact is kept.
		rep := b.sweep(now, false)
		if !b.exists(old.ID) || rep.Deleted != 0 {
			t.Fatalf("b's sweep deleted a contact the new schedule keeps: %+v", rep)
		}
		if v := b.count(`SELECT recomputed_version FROM retention_state WHERE id = 1`); v != 2 {
			t.Fatalf("recomputed_version = %d after b's sweep, want 2", v)
		}

		// b's recompute never moves recomputed_version back.
		if _, err := retention.Recompute(b.ctx, b.db, b.policy, retention.RecomputeOptions{}); err != nil {
			t.Fatal(err)
		}
		if v := b.count(`SELECT recomputed_version FROM retention_state WHERE id = 1`); v != 2 {
			t.Fatalf("recomputed_version = %d after b's recompute, want 2", v)
		}
		st, _ = b.state(old.ID)
		if want := old.OccurredAt.Add(400 * day); st.retainUntil.Int64 != want.UnixMicro() {
			t.Fatalf("old contact's date %v after recompute, want %s", st.retainUntil, want)
		}

		// And the other way: a shorter schedule stored through b is obeyed
		// by a's sweep (a has cached v2 by now).
		if _, err := a.explain.ExplainContact(a.ctx, old.ID, now); err != nil {
			t.Fatal(err)
		}
		shorter := retention.DefaultSchedule()
		shorter.Purposes[4].Keep, _ = retention.ParseDuration("30d")
		if _, err := b.sched.Put(b.ctx, shorter, cases.Actor{Name: "bob"}, nil); err != nil {
			t.Fatal(err)
		}
		rep = a.sweep(now, false)
		if a.exists(old.ID) || rep.Deleted != 1 {
			t.Fatalf("a's sweep kept a contact due under v3: %+v", rep)
		}
		if v := a.count(`SELECT recomputed_version FROM retention_state WHERE id = 1`); v != 3 {
			t.Fatalf("recomputed_version = %d, want 3", v)
		}
	})
}

// TestRecomputeFollowsTheNewestVersion: after several changes, recompute
// marks the newest version done, whatever version its process saw last.
func TestRecomputeFollowsTheNewestVersion(t *testing.T) {
	forEachDialect(t, func(t *testing.T, e *env) {
		for _, keep := range []string{"400d", "30d", "200d"} {
			sc := retention.DefaultSchedule()
			sc.Purposes[4].Keep, _ = retention.ParseDuration(keep)
			if _, err := e.sched.Put(e.ctx, sc, cases.Actor{}, nil); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := retention.Recompute(e.ctx, e.db, e.policy, retention.RecomputeOptions{}); err != nil {
			t.Fatal(err)
		}
		if v := e.count(`SELECT recomputed_version FROM retention_state WHERE id = 1`); v != 4 {
			t.Fatalf("recomputed_version = %d, want 4", v)
		}

	})
}
