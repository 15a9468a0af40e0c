package backup_test

import (
	"context"
	"database/sql"
	"strings"
	"testing"
	"time"

	"github.com/casevault/casevault/archive/backup"
	"github.com/casevault/casevault/cases"
	"github.com/casevault/casevault/retention"
	"github.com/casevault/casevault/sqldb"
	"github.com/casevault/casevault/sqldb/sqldbtest"
)

// TestConsentWithdrawalSurvivesRestore (issue 15 §3): a backup taken
// before a customer withdrew location and personalization, restored with
// the live instance's tombstones, comes back with both consents withdrawn,
// no location, no contact carrying the personalization purpose (except the
// one a hold kept, as on the live instance), the sole-purpose contact gone,
// and the retain_until the withdrawal recomputed.
func TestConsentWithdrawalSurvivesRestore(t *testing.T) {
	forEachDialect(t, func(t *testing.T, in *instance) {
		ctx := context.Background()
		cust := cases.Customer{ID: cases.NewID(), Name: "Ada Obi", Consents: cases.Consents{Location: true, Personalization: true}, CreatedAt: base, UpdatedAt: base}
		if err := in.store.CreateCustomer(ctx, cust, cases.Change{Action: "customer.create", TargetType: "customer", TargetID: cust.ID}); err != nil {
			t.Fatal(err)
		}
		free, held := in.newCase(cust.ID, "delivery"), in.newCase(cust.ID, "held matter")
		other := in.contact(in.newCase(in.customer("Li Wei"), "other"), "other customer's")
		// A retain_until no schedule gives: the restored copy keeps it
		// unless the replay sets the date the withdrawal recomputed.
		const sentinel = 1
		add := func(caseID string, ps ...cases.Purpose) string {
			c := in.contact(caseID, "hello")
			if _, err := in.db.Write.ExecContext(ctx, in.db.Rebind(`UPDATE contacts SET purposes = ?, retain_until = ? WHERE id = ?`), sqldb.JSONText(ps), sentinel, c.ID); err != nil {
				t.Fatal(err)
			}
			return c.ID
		}
		both := add(free, cases.PurposeCustomerService, cases.PurposePersonalization)
		only := add(free, cases.PurposePersonalization)
		plain := add(free, cases.PurposeCustomerService)
		kept := add(held, cases.PurposeCustomerService, cases.PurposePersonalization)
		// Closed, so that the schedule gives the contacts a date.
		if _, err := in.db.Write.ExecContext(ctx, in.db.Rebind(`UPDATE cases SET status = 'closed', closed_at = ? WHERE id = ?`), sqldb.Micros(base), free); err != nil {
			t.Fatal(err)
		}
		if _, err := in.holds.Place(ctx, retention.HoldInput{Matter: "M-1", Reason: "litigation", Scope: retention.HoldScope{CaseIDs: []string{held}}}, operator, nil); err != nil {
			t.Fatal(err)
		}

		repo, _ := newRepo(t)
		keys := newKeys(t)
		old, err := in.service(repo, keys).Backup(ctx, "test", operator, nil)
		if err != nil {
			t.Fatal(err)
		}

		if _, err := in.store.UpdateCustomer(ctx, cust.ID, func(c *cases.Customer) error {
			c.Consents.Location, c.Consents.Personalization, c.UpdatedAt = false, false, time.Now().UTC()
			return nil
		}, cases.Change{Action: "customer.update", TargetType: "customer", TargetID: cust.ID}); err != nil {
			t.Fatal(err)
		}
		consents := retention.NewConsents(in.db, retention.ConsentOptions{Holds: in.holds, OnChange: auditHook(in.db.Dialect)})
		rep, err := consents.Apply(ctx, cust.ID, operator)
		if err != nil {
			t.Fatal(err)
		}
		if rep.PurposeDropped["personalization"] != 1 || rep.Deleted["personalization"] != 1 || rep.Redacted["location"] != 3 {
			t.Fatalf("withdrawal report %+v", rep)
		}
		// Applying again writes nothing more (the PATCH is idempotent).
		before := in.count(`SELECT COUNT(*) FROM dispositions`)
		if _, err := consents.Apply(ctx, cust.ID, operator); err != nil {
			t.Fatal(err)
		}
		if n := in.count(`SELECT COUNT(*) FROM dispositions`); n != before {
			t.Errorf("second Apply wrote %d disposition records", n-before)
		}
		// Given again and withdrawn again: a new withdrawal, a new record.
		for _, give := range []bool{true, false} {
			if _, err := in.store.UpdateCustomer(ctx, cust.ID, func(c *cases.Customer) error {
				c.Consents.Personalization, c.UpdatedAt = give, time.Now().UTC()
				return nil
			}, cases.Change{Action: "customer.update", TargetType: "customer", TargetID: cust.ID}); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := consents.Apply(ctx, cust.ID, operator); err != nil {
			t.Fatal(err)
		}
		if n := in.count(`SELECT COUNT(*) FROM dispositions WHERE customer_id = ? AND action = ? AND rule = ?`, cust.ID, retention.ItemConsentWithdraw, "consent:personalization"); n != 2 {
			t.Errorf("%d personalization withdrawal records after withdraw, give, withdraw; want 2", n)
		}

		dst := openInstance(t, sqldbtest.Open(t, in.db.Dialect), t.TempDir())
		rr, err := repo.Restore(ctx, old.ID, backup.RestoreOptions{Target: dst.db, Blobs: dst.blobs, Identity: keys.Identity, Actor: operator,
			Live: []*sqldb.DB{in.db}, OnChange: auditHook(dst.db.Dialect)})
		if err != nil {
			t.Fatal(err)
		}
		if rr.Tombstones.PurposesDropped != 1 || rr.Tombstones.ConsentsWithdrawn != 2 {
			t.Errorf("replay report %+v, want 1 purpose dropped and 2 consents withdrawn", rr.Tombstones)
		}

		got, err := dst.store.GetCustomer(ctx, cust.ID)
		if err != nil {
			t.Fatal(err)
		}
		if got.Consents.Location || got.Consents.Personalization {
			t.Errorf("restored consents %+v: the withdrawal was rolled back", got.Consents)
		}
		purposes := func(in *instance, id string) string {
			var ps string
			if err := in.db.Read.QueryRow(in.db.Rebind(`SELECT purposes FROM contacts WHERE id = ?`), id).Scan(&ps); err != nil {
				if err == sql.ErrNoRows {
					return "gone"
				}
				t.Fatal(err)
			}
			return ps
		}
		retain := func(in *instance, id string) sql.NullInt64 {
			var v sql.NullInt64
			if err := in.db.Read.QueryRow(in.db.Rebind(`SELECT retain_until FROM contacts WHERE id = ?`), id).Scan(&v); err != nil {
				t.Fatal(err)
			}
			return v
		}
		for _, tc := range []struct {
			name, id, want string
		}{
			{"purpose dropped", both, `["customer_service"]`},
			{"sole purpose: deleted", only, "gone"},
			{"untouched", plain, `["customer_service"]`},
			{"held: kept", kept, `["customer_service","personalization"]`},
		} {
			if p := purposes(dst, tc.id); p != tc.want || p != purposes(in, tc.id) {
				t.Errorf("%s: restored purposes %s, want %s (live: %s)", tc.name, p, tc.want, purposes(in, tc.id))
			}
		}
		if r, l := retain(dst, both), retain(in, both); r != l || !l.Valid || l.Int64 == sentinel {
			t.Errorf("restored retain_until %v, live (recomputed by the withdrawal) %v", r, l)
		}
		if n := dst.count(`SELECT COUNT(*) FROM contacts WHERE customer_id = ? AND location IS NOT NULL AND case_id <> ?`, cust.ID, held); n != 0 {
			t.Errorf("%d locations restored after the withdrawal", n)
		}
		if n := dst.count(`SELECT COUNT(*) FROM contacts WHERE id = ? AND location IS NOT NULL`, other.ID); n != 1 {
			t.Errorf("another customer's location was redacted")
		}
		if s := purposes(dst, kept); !strings.Contains(s, "personalization") {
			t.Errorf("the held contact lost its purpose: %s", s)
		}

		// Single-case restore into the live instance of the case's lost
		// contacts (gone without a record, e.g. a bad manual fix): they
		// come back minimised as the withdrawal left them.
		for _, q := range []string{`DELETE FROM attachments WHERE case_id = ?`, `DELETE FROM contacts WHERE case_id = ?`} {
			if _, err := in.db.Write.ExecContext(ctx, in.db.Rebind(q), free); err != nil {
				t.Fatal(err)
			}
		}
		crep, err := repo.RestoreCase(ctx, old.ID, free, backup.CaseRestoreOptions{DB: in.db, Blobs: in.blobs, Identity: keys.Identity, Actor: operator})
		if err != nil {
			t.Fatal(err)
		}
		if crep.Contacts != 2 {
			t.Errorf("case restore brought back %d contacts, want 2 (the sole-purpose one stays deleted)", crep.Contacts)
		}
		if p := purposes(in, both); p != `["customer_service"]` {
			t.Errorf("case restore: purposes %s, the dropped purpose came back", p)
		}
		if p := purposes(in, only); p != "gone" {
			t.Errorf("case restore: the sole-purpose contact came back: %s", p)
		}
		if n := in.count(`SELECT COUNT(*) FROM contacts WHERE case_id = ? AND location IS NOT NULL`, free); n != 0 {
			t.Errorf("case restore: %d locations back", n)
		}
	})
}
