package retention_test

import (
	"errors"
	"testing"
	"time"

	"github.com/casevault/casevault/cases"
	"github.com/casevault/casevault/retention"
)

// TestHoldReinstate: a released hold can be reinstated within its grace
// (audited, active again, the sweep keeps what it holds), not after it and
// not while active (409).
func TestHoldReinstate(t *testing.T) {
	forEachDialect(t, func(t *testing.T, e *env) {
		cs := e.newCase(e.customer())
		c := e.contact(cs, base, purposes(cases.PurposeNotification), contactOpt{})
		legal := cases.Actor{Name: "legal", Role: "legal"}
		h, err := e.holds.Place(e.ctx, retention.HoldInput{Matter: "M", Reason: "r", Scope: retention.HoldScope{CaseIDs: []string{cs}}}, legal, nil)
		if err != nil {
			t.Fatal(err)
		}

		_, err = e.holds.Reinstate(e.ctx, h.ID, "", legal, nil)
		if !errors.Is(err, retention.ErrNotReinstatable) || !errors.Is(err, cases.ErrConflict) {
			t.Fatalf("reinstating an active hold: %v, want 409", err)
		}
		if _, err := e.holds.Reinstate(e.ctx, "missing", "", legal, nil); !errors.Is(err, cases.ErrNotFound) {
			t.Fatalf("unknown hold: %v", err)
		}

		// Released by mistake, reinstated ten days later.
		if _, err := e.holds.Release(e.ctx, h.ID, "wrong matter", legal, auditHook(e.db.Dialect)); err != nil {
			t.Fatal(err)
		}
		e.clock.Advance(10 * day)
		r, err := e.holds.Reinstate(e.ctx, h.ID, "released by mistake", cases.Actor{Name: "counsel"}, auditHook(e.db.Dialect))
		if err != nil || !r.Active || !r.Preserving || r.ReleasedAt != nil || r.GraceUntil != nil || r.ReinstatedBy != "counsel" || r.ReinstatedAt == nil {
			t.Fatalf("Reinstate = %+v, %v", r, err)
		}
		if n := e.count(`SELECT COUNT(*) FROM audit_events WHERE action = 'hold.reinstate' AND target_id = ?`, h.ID); n != 1 {
			t.Fatalf("%d hold.reinstate events, want 1", n)
		}
		e.pastGrace() // the first release's grace would be over by now
		if rep := e.sweep(base.Add(400*day), false); !e.exists(c.ID) || rep.SkippedHeld == 0 {
			t.Fatalf("reinstated hold did not keep its contact: %+v", rep)
		}

		// Released again and the grace let pass: too late.
		if _, err := e.holds.Release(e.ctx, h.ID, "settled", legal, nil); err != nil {
			t.Fatal(err)
		}
		e.pastGrace()
		_, err = e.holds.Reinstate(e.ctx, h.ID, "", legal, nil)
		var re *retention.ReinstateError
		if !errors.As(err, &re) || !errors.Is(err, cases.ErrConflict) {
			t.Fatalf("reinstating after the grace: %v, want a 409-style *ReinstateError", err)
		}
		e.sweep(base.Add(400*day), false)
		if e.exists(c.ID) {
			t.Fatal("contact kept after the release grace")
		}
	})
}

// TestReleaseGraceFromSchedule: the grace is the schedule's at release
// time; "0s" ends preservation at release.
func TestReleaseGraceFromSchedule(t *testing.T) {
	forEachDialect(t, func(t *testing.T, e *env) {
		tests := []struct {
			grace string
			want  time.Duration
		}{{"7d", 7 * day}, {"0s", 0}}
		for _, tt := range tests {
			sc := retention.DefaultSchedule()
			g, _ := retention.ParseDuration(tt.grace)
			sc.HoldReleaseGrace = &g
			// Stored: every decision reads the stored schedule (issue 20 §1).
			if _, err := e.sched.Put(e.ctx, sc, cases.Actor{}, nil); err != nil {
				t.Fatal(err)
			}

			cs := e.newCase(e.customer())
			h, err := e.holds.Place(e.ctx, retention.HoldInput{Matter: "M", Reason: "r", Scope: retention.HoldScope{CaseIDs: []string{cs}}}, cases.Actor{Name: "legal"}, nil)
			if err != nil {
				t.Fatal(err)
			}
			r, err := e.holds.Release(e.ctx, h.ID, "done", cases.Actor{Name: "legal"}, nil)
			if err != nil || r.GraceUntil == nil || r.GraceUntil.Sub(*r.ReleasedAt) != tt.want || r.Preserving != (tt.want > 0) {
				t.Fatalf("grace %s: released %+v, %v", tt.grace, r, err)
			}
			held, err := e.holds.CoveringCase(e.ctx, cs, "")
			if err != nil || (len(held) > 0) != (tt.want > 0) {
				t.Fatalf("grace %s: case held by %v, %v", tt.grace, held, err)
			}
		}
	})
}
