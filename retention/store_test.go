package retention_test

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/casevault/casevault/cases"
	"github.com/casevault/casevault/retention"
)

func TestSchedulesPutVersionFallback(t *testing.T) {
	forEachDialect(t, func(t *testing.T, e *env) {
		cur, err := e.sched.Current(e.ctx)
		if err != nil || cur.Version != 1 || len(cur.Purposes) != len(cases.Purposes) {
			t.Fatalf("empty store: Current = v%d, %v; want the default schedule", cur.Version, err)
		}
		hist, err := e.sched.History(e.ctx)
		if err != nil || len(hist) != 1 || hist[0].Actor != "default" {
			t.Fatalf("empty history = %+v, %v", hist, err)
		}
		var hooked []cases.Change
		hook := func(ctx context.Context, tx txT, ch cases.Change) error {
			hooked = append(hooked, ch)
			return auditHook(e.db.Dialect)(ctx, tx, ch)
		}
		admin := cases.Actor{Name: "alice", Role: "admin"}
		shorter := retention.DefaultSchedule()
		shorter.Version = 77 // ignored: the store numbers versions
		shorter.Purposes[4].Keep, _ = retention.ParseDuration("30d")
		got, err := e.sched.Put(e.ctx, shorter, admin, hook)
		if err != nil || got.Version != 2 {
			t.Fatalf("first Put = v%d, %v; want v2", got.Version, err)
		}
		if e.policy.Schedule().Version != 2 || e.policy.Schedule().Purposes[4].Keep.String() != "30d" {
			t.Fatalf("policy not swapped: %+v", e.policy.Schedule().Purposes[4])
		}
		got, err = e.sched.Put(e.ctx, retention.DefaultSchedule(), admin, hook)
		if err != nil || got.Version != 3 {
			t.Fatalf("second Put = v%d, %v; want v3", got.Version, err)
		}
		bad := retention.DefaultSchedule()
		bad.Purposes = bad.Purposes[1:]
		if _, err := e.sched.Put(e.ctx, bad, admin, hook); err == nil {
			t.Fatal("Put accepted a schedule missing a purpose")
		} else if v := (*cases.ValidationError)(nil); !errors.As(err, &v) {
			t.Fatalf("bad schedule: %v (%T), want *cases.ValidationError", err, err)
		}
		failing := func(context.Context, txT, cases.Change) error { return errors.New("audit down") }
		if _, err := e.sched.Put(e.ctx, retention.DefaultSchedule(), admin, failing); err == nil {
			t.Fatal("Put succeeded although the audit hook failed")
		}
		if e.policy.Schedule().Version != 3 {
			t.Fatalf("policy moved to v%d after a failed Put", e.policy.Schedule().Version)
		}
		hist, err = e.sched.History(e.ctx)
		if err != nil || len(hist) != 2 || hist[0].Schedule.Version != 3 || hist[1].Schedule.Version != 2 || hist[0].Actor != "alice" {
			t.Fatalf("history = %+v, %v", hist, err)
		}
		if hist[1].Schedule.Purposes[4].Keep.String() != "30d" {
			t.Fatalf("v2 stored as %+v", hist[1].Schedule.Purposes[4])
		}
		if len(hooked) != 2 || hooked[0].Action != "retention.schedule.update" || hooked[1].TargetID != "3" {
			t.Fatalf("hook calls %+v", hooked)
		}
		if n := e.count(`SELECT COUNT(*) FROM audit_events WHERE action = 'retention.schedule.update'`); n != 2 {
			t.Fatalf("%d schedule audit events, want 2 (the failed Put rolled back)", n)
		}
		// Another replica loading the store sees v3.
		other := retention.NewPolicy(retention.DefaultSchedule())
		if sc, err := retention.NewSchedules(e.db, other).Load(e.ctx); err != nil || sc.Version != 3 || other.Schedule().Version != 3 {
			t.Fatalf("Load = v%d, %v", sc.Version, err)
		}
	})
}

func TestRecomputeAfterScheduleChange(t *testing.T) {
	forEachDialect(t, func(t *testing.T, e *env) {
		cust := e.customer()
		open, closed := e.newCase(cust), e.newCase(cust)
		closedAt := base.Add(10 * day)
		e.setClosed(closed, &closedAt)
		var notif []cases.Contact
		for i := range 5 {
			notif = append(notif, e.contact(open, base.Add(time.Duration(i)*day), purposes(cases.PurposeNotification), contactOpt{}))
		}
		cs := e.contact(open, base, purposes(cases.PurposeCustomerService), contactOpt{})
		csClosed := e.contact(closed, base, purposes(cases.PurposeCustomerService), contactOpt{})

		sc := retention.DefaultSchedule()
		sc.Purposes[0].Keep, _ = retention.ParseDuration("1y")  // customer_service
		sc.Purposes[4].Keep, _ = retention.ParseDuration("30d") // notification
		if _, err := e.sched.Put(e.ctx, sc, cases.Actor{Name: "alice"}, nil); err != nil {
			t.Fatal(err)
		}
		// A cancelled context stops before touching anything.
		cctx, cancel := context.WithCancel(e.ctx)
		cancel()
		if _, err := retention.Recompute(cctx, e.db, e.policy, retention.RecomputeOptions{BatchSize: 2}); !errors.Is(err, context.Canceled) {
			t.Fatalf("cancelled Recompute: %v", err)
		}
		res, err := retention.Recompute(e.ctx, e.db, e.policy, retention.RecomputeOptions{BatchSize: 2})
		if err != nil {
			t.Fatal(err)
		}
		if res.Examined != 7 || res.Changed != 6 {
			t.Fatalf("Recompute = %+v; want 7 examined, 6 changed (the open case's customer_service contact keeps no date)", res)
		}
		for _, c := range notif {
			s, _ := e.state(c.ID)
			if want := c.OccurredAt.Add(30 * day).UnixMicro(); s.retainUntil.Int64 != want {
				t.Errorf("notification contact: retain_until %d, want %d", s.retainUntil.Int64, want)
			}
		}
		if s, _ := e.state(cs.ID); s.retainUntil.Valid {
			t.Errorf("open case contact got a date")
		}
		if s, _ := e.state(csClosed.ID); s.retainUntil.Int64 != closedAt.Add(365*day).UnixMicro() {
			t.Errorf("closed case contact: %d", s.retainUntil.Int64)
		}
		again, err := retention.Recompute(e.ctx, e.db, e.policy, retention.RecomputeOptions{})
		if err != nil || again.Changed != 0 {
			t.Fatalf("second Recompute = %+v, %v; want nothing changed", again, err)
		}
	})
}

func fieldsOf(t *testing.T, err error) []string {
	t.Helper()
	var v *cases.ValidationError
	if !errors.As(err, &v) {
		t.Fatalf("error %v (%T) is not a *cases.ValidationError", err, err)
	}
	var out []string
	for _, f := range v.Fields {
		out = append(out, f.Field)
	}
	slices.Sort(out)
	return out
}

func TestHoldPlacementValidation(t *testing.T) {
	forEachDialect(t, func(t *testing.T, e *env) {
		cust := e.customer()
		cs := e.newCase(cust)
		from, to := base, base.Add(30*day)
		tests := []struct {
			name string
			in   retention.HoldInput
			want []string
		}{
			{"ok case", retention.HoldInput{Matter: "M-1", Reason: "litigation", Scope: retention.HoldScope{CaseIDs: []string{cs}}}, nil},
			{"ok query and range", retention.HoldInput{Matter: "M-1", Reason: "r", Scope: retention.HoldScope{Query: "parcel status:open", From: &from, To: &to}}, nil},
			{"no matter", retention.HoldInput{Reason: "r", Scope: retention.HoldScope{CaseIDs: []string{cs}}}, []string{"matter"}},
			{"blank reason", retention.HoldInput{Matter: "M", Reason: "  ", Scope: retention.HoldScope{CaseIDs: []string{cs}}}, []string{"reason"}},
			{"empty scope", retention.HoldInput{Matter: "M", Reason: "r"}, []string{"scope"}},
			{"unknown case", retention.HoldInput{Matter: "M", Reason: "r", Scope: retention.HoldScope{CaseIDs: []string{cs, "nope"}}}, []string{"scope.case_ids[1]"}},
			{"unknown customer", retention.HoldInput{Matter: "M", Reason: "r", Scope: retention.HoldScope{CustomerIDs: []string{""}}}, []string{"scope.customer_ids[0]"}},
			{"bad query", retention.HoldInput{Matter: "M", Reason: "r", Scope: retention.HoldScope{Query: "status:exploded"}}, []string{"scope.query"}},
			{"termless query", retention.HoldInput{Matter: "M", Reason: "r", Scope: retention.HoldScope{Query: `"" -`}}, []string{"scope.query"}},
			{"from after to", retention.HoldInput{Matter: "M", Reason: "r", Scope: retention.HoldScope{From: &to, To: &from}}, []string{"scope.to"}},
			{"from equals to", retention.HoldInput{Matter: "M", Reason: "r", Scope: retention.HoldScope{From: &from, To: &from}}, []string{"scope.to"}},
			{"everything wrong", retention.HoldInput{Scope: retention.HoldScope{Query: "before:yesterday"}}, []string{"matter", "reason", "scope.query"}},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				before := e.count(`SELECT COUNT(*) FROM legal_holds`)
				h, err := e.holds.Place(e.ctx, tt.in, cases.Actor{Name: "legal"}, auditHook(e.db.Dialect))
				if tt.want == nil {
					if err != nil || h.ID == "" || !h.Active || h.PlacedBy != "legal" {
						t.Fatalf("Place = %+v, %v", h, err)
					}
					return
				}
				if got := fieldsOf(t, err); !slices.Equal(got, tt.want) {
					t.Fatalf("fields %q, want %q (%v)", got, tt.want, err)
				}
				if after := e.count(`SELECT COUNT(*) FROM legal_holds`); after != before {
					t.Fatal("an invalid hold was stored")
				}
			})
		}
	})
}

func TestHoldCoverage(t *testing.T) {
	forEachDialect(t, func(t *testing.T, e *env) {
		custA, custB := e.customer(), e.customer()
		caseA, caseB, caseC := e.newCase(custA), e.newCase(custB), e.newCase(custB)
		ref := func(caseID, cust string, at time.Time) retention.ContactRef {
			return retention.ContactRef{ContactID: "x", CaseID: caseID, CustomerID: cust, OccurredAt: at}
		}
		e.contact(caseC, base, nil, contactOpt{body: "the refund was never paid"})
		jan, feb := base, base.AddDate(0, 1, 0)
		place := func(s retention.HoldScope) string {
			h, err := e.holds.Place(e.ctx, retention.HoldInput{Matter: "M", Reason: "r", Scope: s}, cases.Actor{Name: "legal"}, nil)
			if err != nil {
				t.Fatal(err)
			}
			return h.ID
		}
		hCase := place(retention.HoldScope{CaseIDs: []string{caseA}})
		hCust := place(retention.HoldScope{CustomerIDs: []string{custB}, From: &jan, To: &feb})
		hQuery := place(retention.HoldScope{Query: "refund"})
		hRange := place(retention.HoldScope{From: tp(base.AddDate(1, 0, 0))})
		tests := []struct {
			name string
			c    retention.ContactRef
			want []string
		}{
			{"case hold", ref(caseA, custA, base.AddDate(0, 6, 0)), []string{hCase}},
			{"customer in range", ref(caseB, custB, base.Add(10*day)), []string{hCust}},
			{"customer, range start inclusive", ref(caseB, custB, jan), []string{hCust}},
			{"customer, range end exclusive", ref(caseB, custB, feb), nil},
			{"query matches case", ref(caseC, custB, base.AddDate(0, 3, 0)), []string{hQuery}},
			{"query and customer", ref(caseC, custB, base.Add(day)), []string{hCust, hQuery}},
			{"open-ended range", ref("other", "other", base.AddDate(2, 0, 0)), []string{hRange}},
			{"nothing", ref("other", "other", base.AddDate(0, 6, 0)), nil},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				got, err := e.holds.Covering(e.ctx, tt.c)
				if err != nil {
					t.Fatal(err)
				}
				var ids []string
				for _, h := range got {
					ids = append(ids, h.ID)
				}
				slices.Sort(ids)
				want := slices.Clone(tt.want)
				slices.Sort(want)
				if !slices.Equal(ids, want) {
					t.Fatalf("covering %v, want %v", ids, want)
				}
				err = e.holds.CheckNotHeld(e.ctx, tt.c)
				if len(want) > 0 != errors.Is(err, cases.ErrConflict) {
					t.Fatalf("CheckNotHeld = %v", err)
				}
			})
		}
		// A query hold covers a case that starts matching after placement.
		if got, _ := e.holds.Covering(e.ctx, ref(caseA, custA, base.AddDate(3, 0, 0))); len(got) != 2 {
			t.Fatalf("before: %d holds", len(got))
		}
		e.contact(caseA, base.AddDate(0, 2, 0), nil, contactOpt{body: "where is my REFUND"})
		got, _ := e.holds.Covering(e.ctx, ref(caseA, custA, base.AddDate(0, 2, 0)))
		if len(got) != 2 || !slices.ContainsFunc(got, func(h retention.Hold) bool { return h.ID == hQuery }) {
			t.Fatalf("after the case started matching: %+v", got)
		}
		// A matcher failure holds (fail safe).
		e.matcher.mu.Lock()
		e.matcher.err = errors.New("engine down")
		e.matcher.mu.Unlock()
		got, err := e.holds.Covering(e.ctx, ref("other", "other", base.AddDate(0, 6, 0)))
		if err == nil || len(got) != 1 || got[0].ID != hQuery {
			t.Fatalf("engine down: %+v, %v; want the query hold and an error", got, err)
		}
	})
}

func TestHoldRelease(t *testing.T) {
	forEachDialect(t, func(t *testing.T, e *env) {
		cs := e.newCase(e.customer())
		h, err := e.holds.Place(e.ctx, retention.HoldInput{Matter: "M-7", Reason: "audit", Scope: retention.HoldScope{CaseIDs: []string{cs}}}, cases.Actor{Name: "legal"}, auditHook(e.db.Dialect))
		if err != nil {
			t.Fatal(err)
		}
		c := retention.ContactRef{CaseID: cs, OccurredAt: base}
		if got, _ := e.holds.Covering(e.ctx, c); len(got) != 1 {
			t.Fatal("not covered while active")
		}
		if _, err := e.holds.Release(e.ctx, h.ID, " ", cases.Actor{Name: "legal"}, nil); fieldsOf(t, err)[0] != "reason" {
			t.Fatalf("empty reason: %v", err)
		}
		if _, err := e.holds.Release(e.ctx, "missing", "done", cases.Actor{Name: "legal"}, nil); !errors.Is(err, cases.ErrNotFound) {
			t.Fatalf("unknown hold: %v", err)
		}
		r, err := e.holds.Release(e.ctx, h.ID, "matter settled", cases.Actor{Name: "bob"}, auditHook(e.db.Dialect))
		if err != nil || r.Active || r.ReleasedBy != "bob" || r.ReleaseReason != "matter settled" || r.ReleasedAt == nil {
			t.Fatalf("Release = %+v, %v", r, err)
		}
		_, err = e.holds.Release(e.ctx, h.ID, "again", cases.Actor{Name: "bob"}, nil)
		var re *retention.ReleasedError
		if !errors.As(err, &re) || !errors.Is(err, cases.ErrConflict) || !errors.Is(err, retention.ErrReleased) {
			t.Fatalf("second release: %v, want a 409-style *ReleasedError", err)
		}
		got, err := e.holds.Get(e.ctx, h.ID)
		if err != nil || got.Active || got.Matter != "M-7" || got.ReleaseReason != "matter settled" {
			t.Fatalf("Get = %+v, %v", got, err)
		}
		if got.Preserving != true || got.GraceUntil == nil || !got.GraceUntil.Equal(got.ReleasedAt.Add(retention.DefaultHoldReleaseGrace)) {
			t.Fatalf("released hold: preserving %v until %v, want a %v grace", got.Preserving, got.GraceUntil, retention.DefaultHoldReleaseGrace)
		}
		if got, _ := e.holds.Covering(e.ctx, c); len(got) != 1 {
			t.Fatal("released hold does not cover during its grace")
		}
		e.pastGrace()
		if got, _ := e.holds.Covering(e.ctx, c); len(got) != 0 {
			t.Fatal("released hold still covers after its grace")
		}
		if got, _ := e.holds.Get(e.ctx, h.ID); got.Preserving {
			t.Fatal("hold preserving after its grace")
		}
		all, _, err := e.holds.List(e.ctx, retention.HoldFilter{}, 0, "")
		if err != nil || len(all) != 1 {
			t.Fatalf("List = %d, %v (holds are never deleted)", len(all), err)
		}
		active, _, _ := e.holds.List(e.ctx, retention.HoldFilter{ActiveOnly: true}, 0, "")
		if len(active) != 0 {
			t.Fatalf("%d active", len(active))
		}
		if n := e.count(`SELECT COUNT(*) FROM audit_events WHERE action IN ('hold.place', 'hold.release')`); n != 2 {
			t.Fatalf("%d hold audit events", n)
		}
	})
}

func TestHoldListPaging(t *testing.T) {
	forEachDialect(t, func(t *testing.T, e *env) {
		cs := e.newCase(e.customer())
		for range 5 {
			if _, err := e.holds.Place(e.ctx, retention.HoldInput{Matter: "M", Reason: "r", Scope: retention.HoldScope{CaseIDs: []string{cs}}}, cases.Actor{}, nil); err != nil {
				t.Fatal(err)
			}
		}
		var seen []string
		cursor := ""
		for {
			page, next, err := e.holds.List(e.ctx, retention.HoldFilter{}, 2, cursor)
			if err != nil {
				t.Fatal(err)
			}
			for _, h := range page {
				seen = append(seen, h.ID)
			}
			if next == "" {
				break
			}
			cursor = next
		}
		if len(seen) != 5 || !slices.IsSortedFunc(seen, func(a, b string) int { return -compare(a, b) }) {
			t.Fatalf("paged %v", seen)
		}
	})
}

func compare(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func TestHoldCounts(t *testing.T) {
	forEachDialect(t, func(t *testing.T, e *env) {
		custA, custB := e.customer(), e.customer()
		a1, a2, b1 := e.newCase(custA), e.newCase(custA), e.newCase(custB)
		c := e.contact(a1, base, nil, contactOpt{body: "refund please"})
		e.attachment(c)
		e.attachment(c)
		e.contact(a1, base.Add(40*day), nil, contactOpt{})
		e.contact(a2, base, nil, contactOpt{})
		e.contact(b1, base, nil, contactOpt{body: "refund now"})
		place := e.place
		tests := []struct {
			name  string
			scope retention.HoldScope
			want  retention.HoldCounts
		}{
			{"customer", retention.HoldScope{CustomerIDs: []string{custA}}, retention.HoldCounts{Cases: 2, Contacts: 3, Attachments: 2}},
			{"customer and range", retention.HoldScope{CustomerIDs: []string{custA}, To: tp(base.Add(day))}, retention.HoldCounts{Cases: 2, Contacts: 2, Attachments: 2}},
			{"case", retention.HoldScope{CaseIDs: []string{a2}}, retention.HoldCounts{Cases: 1, Contacts: 1}},
			{"query", retention.HoldScope{Query: "refund"}, retention.HoldCounts{Cases: 2, Contacts: 3, Attachments: 2}},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				got, err := e.holds.Counts(e.ctx, place(tt.scope))
				if err != nil || got != tt.want {
					t.Fatalf("Counts = %+v, %v; want %+v", got, err, tt.want)
				}
			})
		}
		id := place(retention.HoldScope{CaseIDs: []string{a1}})
		if _, err := e.holds.Release(e.ctx, id, "done", cases.Actor{}, nil); err != nil {
			t.Fatal(err)
		}
		if got, err := e.holds.Counts(e.ctx, id); err != nil || got != (retention.HoldCounts{Cases: 1, Contacts: 2, Attachments: 2}) {
			t.Fatalf("released, in grace: %+v, %v", got, err)
		}
		e.pastGrace()
		if got, err := e.holds.Counts(e.ctx, id); err != nil || got != (retention.HoldCounts{}) {
			t.Fatalf("released: %+v, %v", got, err)
		}
		if _, err := e.holds.Counts(e.ctx, "nope"); !errors.Is(err, cases.ErrNotFound) {
			t.Fatalf("unknown: %v", err)
		}
	})
}
