package retention_test

import (
	"slices"
	"testing"
	"time"

	"github.com/casevault/casevault/cases"
	"github.com/casevault/casevault/retention"
)

// TestHoldSurvivesEditOfHeldCase is issue 14's escape repro: a case held by
// a query on its tag stays held after an agent removes the tag, and the
// next sweep keeps it.
func TestHoldSurvivesEditOfHeldCase(t *testing.T) {
	forEachDialect(t, func(t *testing.T, e *env) {
		cust := e.customer()
		caseID := e.newCase(cust)
		e.tag(caseID, "litigation")
		c := e.contact(caseID, base, purposes(cases.PurposeNotification), contactOpt{body: "the parcel was opened"})

		h, err := e.holds.Place(e.ctx, retention.HoldInput{Matter: "M-14", Reason: "dispute",
			Scope: retention.HoldScope{Query: "tag:litigation"}}, cases.Actor{Name: "legal", Role: "legal"}, nil)
		if err != nil {
			t.Fatal(err)
		}
		want := retention.HoldCounts{Cases: 1, Contacts: 1}
		if got, err := e.holds.Counts(e.ctx, h.ID); err != nil || got != want {
			t.Fatalf("after placement: counts %+v, %v; want %+v", got, err, want)
		}

		e.tag(caseID) // the agent's PATCH {"tags":[]}

		if got, err := e.holds.Counts(e.ctx, h.ID); err != nil || got != want {
			t.Errorf("after the agent removed the tag: counts %+v, %v; want %+v", got, err, want)
		}
		rep := e.sweep(base.Add(400*day), false)
		if !e.exists(c.ID) || rep.SkippedHeld != 1 {
			t.Fatalf("sweep after the edit: contact kept %v, report %+v; want it held", e.exists(c.ID), rep)
		}
		if err := e.deleter.DeleteCase(e.ctx, caseID, cases.Actor{Name: "agent"}); err == nil {
			t.Fatal("manual deletion of the once-held case succeeded")
		}

		// Release ends the coverage after its grace: the next sweep then
		// deletes the contact.
		if _, err := e.holds.Release(e.ctx, h.ID, "settled", cases.Actor{Name: "legal"}, nil); err != nil {
			t.Fatal(err)
		}
		e.sweep(base.Add(400*day), false)
		if !e.exists(c.ID) {
			t.Fatal("contact deleted during the release grace")
		}
		e.pastGrace()
		e.sweep(base.Add(400*day), false)
		if e.exists(c.ID) {
			t.Fatal("contact kept after the hold was released")
		}
	})
}

// tag sets the case's tags, as an agent's PATCH does.
func (e *env) tag(caseID string, tags ...string) {
	e.t.Helper()
	_, err := e.store.UpdateCase(e.ctx, caseID, func(c *cases.Case) error {
		c.Tags = tags
		return nil
	}, cases.Change{Actor: cases.Actor{Name: "agent", Role: "agent"}, Action: "case.update", TargetType: "case", TargetID: caseID})
	if err != nil {
		e.t.Fatal(err)
	}
}

// TestHoldRecordsLaterMatches: a case that starts matching a query hold
// after placement stays held once it stopped matching, whether an edit (the
// store's BeforeCaseUpdate) or a sweep saw it match first; a hold that
// never covered a case does not start covering it by being recorded.
func TestHoldRecordsLaterMatches(t *testing.T) {
	forEachDialect(t, func(t *testing.T, e *env) {
		cust := e.customer()
		byEdit, bySweep, never := e.newCase(cust), e.newCase(cust), e.newCase(cust)
		old := purposes(cases.PurposeNotification)
		cEdit := e.contact(byEdit, base, old, contactOpt{})
		cSweep := e.contact(bySweep, base, old, contactOpt{})
		cNever := e.contact(never, base, old, contactOpt{})

		h, err := e.holds.Place(e.ctx, retention.HoldInput{Matter: "M", Reason: "r",
			Scope: retention.HoldScope{Query: "tag:litigation"}}, cases.Actor{Name: "legal"}, nil)
		if err != nil {
			t.Fatal(err)
		}
		if n := e.count(`SELECT COUNT(*) FROM hold_items WHERE hold_id = ?`, h.ID); n != 0 {
			t.Fatalf("placement recorded %d items; nothing matched", n)
		}

		// Tagged after placement, untagged before any sweep: the untagging
		// edit records the case as it still was.
		e.tag(byEdit, "litigation")
		e.tag(byEdit)
		if n := e.count(`SELECT COUNT(*) FROM hold_items WHERE hold_id = ? AND case_id = ? AND contact_id = '' AND why = 'query'`, h.ID, byEdit); n != 1 {
			t.Fatalf("edit recorded %d case items, want 1", n)
		}

		// Tagged after placement and seen by a sweep (held, not yet due
		// otherwise): the sweep records it; untagging later changes nothing.
		e.tag(bySweep, "litigation")
		if _, err := e.db.Write.ExecContext(e.ctx, e.db.Rebind(`DELETE FROM hold_items WHERE case_id = ?`), bySweep); err != nil {
			t.Fatal(err) // as if the tag came through an edit path without the hook
		}
		rep := e.sweep(base.Add(400*day), false)
		if rep.SkippedHeld != 2 || !e.exists(cSweep.ID) || !e.exists(cEdit.ID) || e.exists(cNever.ID) {
			t.Fatalf("first sweep: %+v", rep)
		}
		if n := e.count(`SELECT COUNT(*) FROM hold_items WHERE hold_id = ? AND case_id = ?`, h.ID, bySweep); n != 1 {
			t.Fatalf("sweep recorded %d items, want 1", n)
		}
		if _, err := e.db.Write.ExecContext(e.ctx, e.db.Rebind(`UPDATE cases SET tags = '[]' WHERE id = ?`), bySweep); err != nil {
			t.Fatal(err)
		}
		rep = e.sweep(base.Add(401*day), false)
		if rep.SkippedHeld != 2 || !e.exists(cSweep.ID) || !e.exists(cEdit.ID) {
			t.Fatalf("second sweep: %+v; want both once-matching cases held", rep)
		}
		if got, err := e.holds.Counts(e.ctx, h.ID); err != nil || got.Cases != 2 || got.Contacts != 2 {
			t.Fatalf("counts %+v, %v; want 2 cases, 2 contacts", got, err)
		}
	})
}

// TestHoldItemsPerContactForDateRange: a hold bounded by dates records the
// contacts of its period, not their whole case (minimisation); other scopes
// record whole cases.
func TestHoldItemsPerContactForDateRange(t *testing.T) {
	forEachDialect(t, func(t *testing.T, e *env) {
		cust := e.customer()
		cs := e.newCase(cust)
		in := e.contact(cs, base, nil, contactOpt{})
		e.contact(cs, base.AddDate(0, 2, 0), nil, contactOpt{})
		empty := e.newCase(cust)

		place := e.place
		tests := []struct {
			name  string
			scope retention.HoldScope
			want  string // case_id/contact_id/why rows
		}{
			{"date range", retention.HoldScope{CustomerIDs: []string{cust}, To: tp(base.AddDate(0, 1, 0))}, cs + "/" + in.ID + "/customer_ids+date_range"},
			{"customer", retention.HoldScope{CustomerIDs: []string{cust}}, cs + "//customer_ids"},
			{"case without contacts", retention.HoldScope{CaseIDs: []string{empty}}, empty + "//case_ids"},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				id := place(tt.scope)
				var got []string
				rows, err := e.db.Read.QueryContext(e.ctx, e.db.Rebind(`SELECT case_id, contact_id, why FROM hold_items WHERE hold_id = ? ORDER BY case_id, contact_id`), id)
				if err != nil {
					t.Fatal(err)
				}
				defer rows.Close()
				for rows.Next() {
					var a, b, c string
					if err := rows.Scan(&a, &b, &c); err != nil {
						t.Fatal(err)
					}
					got = append(got, a+"/"+b+"/"+c)
				}
				if len(got) != 1 || got[0] != tt.want {
					t.Fatalf("items %v, want [%s]", got, tt.want)
				}
			})
		}
	})
}

// TestHoldQueryRelativeDatesAnchorAtPlacement: "after:7d" in a hold's query
// means the seven days before the hold was placed, not a window that moves
// with every sweep (in which the held cases would age out of the hold).
func TestHoldQueryRelativeDatesAnchorAtPlacement(t *testing.T) {
	forEachDialect(t, func(t *testing.T, e *env) {
		// The holds' clock runs a month behind the wall clock, as it would
		// for a hold placed a month ago: a window anchored at the wall clock
		// misses what the hold meant.
		e.clock.Advance(-30 * day)
		placed := e.clock.Now()

		cust := e.customer()
		recent, older := e.newCase(cust), e.newCase(cust)
		e.contact(recent, placed.Add(-2*day), purposes(cases.PurposeNotification), contactOpt{body: "parcel damaged"})
		e.contact(older, placed.Add(-20*day), purposes(cases.PurposeNotification), contactOpt{body: "parcel late"})

		id := e.place(retention.HoldScope{Query: "parcel after:7d"})

		for _, tt := range []struct {
			caseID string
			want   bool
		}{{recent, true}, {older, false}} {
			held, err := e.holds.CoveringCase(e.ctx, tt.caseID, cust)
			if err != nil {
				t.Fatal(err)
			}
			if got := slices.Contains(held, id); got != tt.want {
				t.Errorf("hold %q placed %s covers the case with a contact %s: %v; want %v",
					"parcel after:7d", placed.Format(time.DateOnly), map[bool]string{true: "2 days before", false: "20 days before"}[tt.want], got, tt.want)
			}
		}
	})
}
