package retention_test

import (
	"context"
	"testing"
	"time"

	"github.com/casevault/casevault/audit"
	"github.com/casevault/casevault/retention"
	"github.com/casevault/casevault/sqldb"
	"github.com/casevault/casevault/sqldb/sqldbtest"
	"github.com/casevault/casevault/testkit"
)

// TestAuditPruneKeepsHeldEvents: audit prune keeps the events about a hold
// in force and about what it covers (issue 21 §12: prune removed the
// events about a hold still active), and prunes them once the hold's
// release grace has ended.
func TestAuditPruneKeepsHeldEvents(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		name       string
		targetType string
		targetID   string
	}{
		{"the hold itself", "hold", "hold-1"},
		{"a covered case", "case", "case-held"},
		{"a covered customer", "customer", "cust-held"},
		{"a contact recorded on its own", "contact", "contact-held"},
	}
	sqldbtest.ForEachDialect(t, func(t *testing.T, db *sqldb.DB) {
		ctx := context.Background()
		exec := func(q string, args ...any) {
			t.Helper()
			if _, err := db.Write.ExecContext(ctx, db.Rebind(q), args...); err != nil {
				t.Fatalf("%s: %v", q, err)
			}
		}
		exec(`INSERT INTO legal_holds (id, matter, reason, scope, placed_by, placed_at) VALUES ('hold-1', 'm', 'r', '{}', 'legal', ?)`, t0.UnixMicro())
		exec(`INSERT INTO hold_items (hold_id, case_id, contact_id, customer_id, since, why) VALUES ('hold-1', 'case-held', '', 'cust-held', ?, 'case')`, t0.UnixMicro())
		exec(`INSERT INTO hold_items (hold_id, case_id, contact_id, customer_id, since, why) VALUES ('hold-1', 'case-other', 'contact-held', 'cust-x', ?, 'time')`, t0.UnixMicro())

		clock := testkit.NewClock(t0)
		l := audit.New(db, audit.WithClock(clock.Now), audit.WithKeep(retention.AuditKeep))
		t.Cleanup(func() { _ = l.Close(context.Background()) })
		record := func(targetType, targetID string) {
			t.Helper()
			clock.Advance(time.Minute)
			if err := l.Record(ctx, audit.Event{ActorID: "tok", ActorName: "agent", Role: "agent", Action: "case.read",
				TargetType: targetType, TargetID: targetID, Outcome: audit.OutcomeOK}); err != nil {
				t.Fatal(err)
			}
		}
		record("case", "case-free")
		for _, tc := range tests {
			record(tc.targetType, tc.targetID)
		}
		record("case", "case-free")
		clock.Advance(time.Hour)

		n, err := l.Prune(ctx, clock.Now())
		if err != nil || n != 1 {
			t.Fatalf("prune while the hold is in force: removed %d, %v; want only the first, unheld event", n, err)
		}
		for _, tc := range tests {
			items, _, err := l.List(ctx, audit.Filter{TargetType: tc.targetType, TargetID: tc.targetID})
			if err != nil || len(items) != 1 {
				t.Errorf("%s: %d events left, %v; want its event kept", tc.name, len(items), err)
			}
		}

		// Released, in its grace: still kept. After the grace: pruned.
		exec(`UPDATE legal_holds SET released_at = ?, released_by = 'legal', grace_until = ? WHERE id = 'hold-1'`,
			clock.Now().UnixMicro(), clock.Now().Add(24*time.Hour).UnixMicro())
		if n, err := l.Prune(ctx, clock.Now()); err != nil || n != 0 {
			t.Fatalf("prune in the release grace: removed %d, %v; want 0", n, err)
		}
		clock.Advance(25 * time.Hour)
		n, err = l.Prune(ctx, clock.Now().Add(-time.Hour))
		// the held events, the last unheld one and the first prune's own event
		if want := int64(len(tests) + 2); err != nil || n != want {
			t.Fatalf("prune after the grace: removed %d, %v; want %d", n, err, want)
		}
		if res, err := l.Verify(ctx); err != nil || !res.OK {
			t.Fatalf("verify: %+v %v", res, err)
		}
	})
}
