package retention_test

import (
	"testing"

	"github.com/casevault/casevault/cases"
)

// A manual deletion and a sweep destroying the same content must leave the
// same digest: a dispute is settled against either record the same way.
// (The manual path once hashed a struct with unexported fields, so its
// digest ignored the attachments.)
func TestDeletionDigestMatchesSweep(t *testing.T) {
	forEachDialect(t, func(t *testing.T, e *env) {
		cust := e.customer()
		manual, swept := e.newCase(cust), e.newCase(cust)
		a := e.contact(manual, base, purposes(cases.PurposeNotification), contactOpt{body: "invoice attached", location: true, device: true})
		e.attachment(a)
		b := e.contact(swept, base, purposes(cases.PurposeNotification), contactOpt{body: "invoice attached", location: true, device: true})
		e.attachment(b)
		plain := e.contact(e.newCase(cust), base, purposes(cases.PurposeNotification), contactOpt{body: "invoice attached", location: true, device: true})

		if err := e.deleter.DeleteCase(e.ctx, manual, cases.Actor{Name: "operator", Role: "admin"}); err != nil {
			t.Fatal(err)
		}
		if r := e.sweep(base.Add(400*day), false); r.Deleted != 2 {
			t.Fatalf("sweep deleted %d contacts, want 2: %+v", r.Deleted, r)
		}

		digest := func(contactID string) string {
			t.Helper()
			var h string
			if err := e.db.Read.QueryRowContext(e.ctx, e.db.Rebind(`SELECT content_sha256 FROM dispositions WHERE contact_id = ?`), contactID).Scan(&h); err != nil {
				t.Fatalf("disposition of %s: %v", contactID, err)
			}
			return h
		}
		if m, s := digest(a.ID), digest(b.ID); m != s {
			t.Fatalf("manual deletion digest %s, sweep digest %s for the same content", m, s)
		}
		if digest(b.ID) == digest(plain.ID) {
			t.Fatal("the digest ignores the attachments")
		}
	})
}
