package retention_test

import (
	"errors"
	"testing"
	"time"

	"github.com/casevault/casevault/cases"
	"github.com/casevault/casevault/retention"
)

// TestCustomerProfileRule (issue 15 §3): a customer profile with no case
// left is deleted by the sweep 90 days (the default customer_profile rule)
// after its last case went, with a disposition record and an audit event;
// one with a case, or under a hold, stays; explain shows when and why.
func TestCustomerProfileRule(t *testing.T) {
	forEachDialect(t, func(t *testing.T, e *env) {
		gone, neverHad, held, active := e.customer(), e.customer(), e.customer(), e.customer()
		for _, c := range []string{gone, held} {
			if err := e.deleter.DeleteCase(e.ctx, e.newCase(c), cases.SystemActor()); err != nil {
				t.Fatal(err)
			}
		}
		e.newCase(active)
		holdID := e.place(retention.HoldScope{CustomerIDs: []string{held}})
		start := e.clock.Now()

		x, err := e.explain.ExplainCustomer(e.ctx, gone, start)
		if err != nil {
			t.Fatal(err)
		}
		if x.Rule != "customer_profile" || x.Keep != "90d" || x.Cases != 0 || x.LastCaseGoneAt == nil || x.Due == nil || x.Next != "keep" ||
			x.Due.Before(x.LastCaseGoneAt.Add(90*24*time.Hour)) {
			t.Fatalf("explain before the period ended %+v", x)
		}
		if x, err := e.explain.ExplainCustomer(e.ctx, active, start); err != nil || x.Due != nil || x.Cases != 1 {
			t.Fatalf("explain of a customer with a case %+v (%v): want no due date", x, err)
		}
		if _, err := e.explain.ExplainCustomer(e.ctx, cases.NewID(), start); !errors.Is(err, cases.ErrNotFound) {
			t.Fatalf("explain of an unknown customer: %v", err)
		}

		// Within the period only the profile that never had a case (last
		// updated in 2024) is due.
		e.clock.Advance(89 * 24 * time.Hour)
		rep := e.sweep(e.clock.Now(), false)
		if rep.ProfilesDeleted != 1 || e.profileExists(neverHad) || !e.profileExists(gone) {
			t.Fatalf("sweep after 89 days: %+v; want only the caseless 2024 profile deleted", rep)
		}

		e.clock.Advance(2 * 24 * time.Hour)
		if dry := e.sweep(e.clock.Now(), true); dry.ProfilesDeleted != 1 || !e.profileExists(gone) {
			t.Fatalf("dry run after 91 days: %+v; want one reported, nothing deleted", dry)
		}
		if x, _ := e.explain.ExplainCustomer(e.ctx, gone, e.clock.Now()); x.Next != "delete_customer" {
			t.Fatalf("explain after the period %+v", x)
		}
		if x, _ := e.explain.ExplainCustomer(e.ctx, held, e.clock.Now()); x.Next != "held" || len(x.Holds) != 1 || x.Holds[0].ID != holdID {
			t.Fatalf("explain of the held profile %+v", x)
		}

		rep = e.sweep(e.clock.Now(), false)
		if rep.ProfilesDeleted != 1 || rep.SkippedHeld != 1 {
			t.Fatalf("sweep after 91 days: %+v; want one deleted, one held", rep)
		}
		if e.profileExists(gone) || !e.profileExists(held) || !e.profileExists(active) {
			t.Fatalf("after the sweep: gone %v held %v active %v", e.profileExists(gone), e.profileExists(held), e.profileExists(active))
		}
		if n := e.count(`SELECT COUNT(*) FROM dispositions WHERE action = 'delete_customer' AND rule = 'customer_profile' AND customer_id = ? AND content_sha256 <> '' AND contact_id = '' AND case_id = ''`, gone); n != 1 {
			t.Fatalf("%d dispositions of the profile, want 1", n)
		}
		if n := e.count(`SELECT COUNT(*) FROM audit_events WHERE action = 'retention.delete_customer' AND target_type = 'customer' AND target_id = ?`, gone); n != 1 {
			t.Fatalf("%d audit events of the profile, want 1", n)
		}
		// Rows without a case are customer documents' (the search index's
		// customer entry follows the profile): none without a customer,
		// and one for the deleted profile.
		if n := e.count(`SELECT COUNT(*) FROM outbox WHERE case_id = '' AND COALESCE(customer_id, '') = ''`); n != 0 {
			t.Fatalf("%d outbox rows without a case or a customer", n)
		}
		if n := e.count(`SELECT COUNT(*) FROM outbox WHERE case_id = '' AND customer_id = ?`, gone); n == 0 {
			t.Fatal("the deleted profile wrote no outbox row: its search index entry stays")
		}

		if again := e.sweep(e.clock.Now(), false); again.ProfilesDeleted != 0 {
			t.Fatalf("second sweep deleted %d profiles", again.ProfilesDeleted)
		}
	})
}

func (e *env) profileExists(id string) bool {
	e.t.Helper()
	_, err := e.store.GetCustomer(e.ctx, id)
	if err != nil && !errors.Is(err, cases.ErrNotFound) {
		e.t.Fatal(err)
	}
	return err == nil
}
