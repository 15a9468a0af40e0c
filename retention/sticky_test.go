package retention_test

import (
	"testing"

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

		// Release ends the coverage: the next sweep deletes the contact.
		if _, err := e.holds.Release(e.ctx, h.ID, "settled", cases.Actor{Name: "legal"}, nil); err != nil {
			t.Fatal(err)
		}
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
