package sqlstore_test

import (
	"context"
	"database/sql"
	"errors"
	"testing"
	"time"

	"github.com/casevault/casevault/cases"
	"github.com/casevault/casevault/sqldb"
	"github.com/casevault/casevault/sqldb/sqldbtest"
	"github.com/casevault/casevault/sqlstore"
)

// The destroying writes others make through sqlstore change what they say
// and count what they changed; an unknown redaction is refused.
func TestContactWrites(t *testing.T) {
	sqldbtest.ForEachDialect(t, func(t *testing.T, db *sqldb.DB) {
		ctx := context.Background()
		st := sqlstore.New(db, sqlstore.Options{})
		svc := cases.NewService(st, time.Now)
		cust, cs := seed(t, svc)
		anon := addContact(t, svc, cs.ID, "my card is in the drawer")
		gone := addContact(t, svc, cs.ID, "delete me")
		at := time.Date(2026, 11, 30, 8, 0, 0, 0, time.UTC)

		in := func(fn func(tx *sql.Tx) (int64, error), want int64) {
			t.Helper()
			var n int64
			if err := db.InTx(ctx, func(tx *sql.Tx) (err error) { n, err = fn(tx); return err }); err != nil || n != want {
				t.Fatalf("changed %d rows (%v), want %d", n, err, want)
			}
		}
		in(func(tx *sql.Tx) (int64, error) {
			return sqlstore.AnonymizeContacts(ctx, db, tx, at, []string{anon.ID, "nope"})
		}, 1)
		in(func(tx *sql.Tx) (int64, error) { return sqlstore.AnonymizeContacts(ctx, db, tx, at, nil) }, 0)
		in(func(tx *sql.Tx) (int64, error) {
			return sqlstore.RedactContacts(ctx, db, tx, "location", []string{anon.ID})
		}, 0)
		in(func(tx *sql.Tx) (int64, error) { return sqlstore.DeleteContacts(ctx, db, tx, []string{gone.ID}) }, 1)

		rows, err := sqlstore.ReadStoredContacts(ctx, db, db.Read, []string{anon.ID, gone.ID})
		if err != nil || len(rows) != 1 {
			t.Fatalf("stored contacts %+v (%v), want the anonymized one", rows, err)
		}
		// Anonymized: nothing personal, the customer replaced by the run's
		// pseudonym, the time coarsened to the month.
		month := time.Date(anon.OccurredAt.Year(), anon.OccurredAt.Month(), 1, 0, 0, 0, 0, time.UTC)
		if c := rows[0]; !c.Anonymized || c.Author != "" || c.Body != "" || c.RetainUntil != nil || !c.OccurredAt.Equal(month) {
			t.Fatalf("anonymized contact %+v", c)
		}

		// It left the person's case for the run's statistics case of its
		// channel, owned by the pseudonym.
		stats := sqlstore.AnonymousCase(at, string(anon.Channel))
		caseID, customerID, err := sqlstore.ContactOwner(ctx, db, anon.ID)
		if err != nil || caseID != stats || customerID != sqlstore.AnonymousCustomer(at) || customerID == cust.ID {
			t.Fatalf("owner %q %q (%v), want %q %q", caseID, customerID, err, stats, sqlstore.AnonymousCustomer(at))
		}
		sc, err := st.GetCase(ctx, stats)
		if err != nil || sc.CustomerID != customerID || sc.Subject != "" || sc.Channel != anon.Channel || sc.Status != cases.StatusClosed {
			t.Fatalf("statistics case %+v (%v)", sc, err)
		}

		// Anonymizing again at the same instant (a restore replaying the
		// disposition) finds the same case rather than making another.
		casesBefore := count(t, db, "cases")
		in(func(tx *sql.Tx) (int64, error) { return sqlstore.AnonymizeContacts(ctx, db, tx, at, []string{anon.ID}) }, 1)
		if n := count(t, db, "cases"); n != casesBefore {
			t.Fatalf("%d cases after replaying the anonymization, want %d", n, casesBefore)
		}
		if caseID, _, _ := sqlstore.ContactOwner(ctx, db, anon.ID); caseID != stats {
			t.Fatalf("replayed anonymization moved the contact to %s, want %s", caseID, stats)
		}
		if _, _, err := sqlstore.ContactOwner(ctx, db, gone.ID); !errors.Is(err, cases.ErrNotFound) {
			t.Fatalf("owner of a deleted contact: %v, want ErrNotFound", err)
		}

		err = db.InTx(ctx, func(tx *sql.Tx) error {
			_, err := sqlstore.RedactContacts(ctx, db, tx, "body; DROP TABLE contacts", []string{anon.ID})
			return err
		})
		if !errors.Is(err, sqlstore.ErrNotRedactable) {
			t.Fatalf("unknown redaction: %v, want ErrNotRedactable", err)
		}

		subject := "renamed before deletion"
		if _, err := svc.UpdateCase(ctx, cs.ID, cases.CasePatch{Subject: &subject}, cases.Actor{Name: "a", Role: "agent"}); err != nil {
			t.Fatal(err)
		}
		if n := count(t, db, "case_history"); n != 1 {
			t.Fatalf("%d history rows after an edit, want 1", n)
		}
		in(func(tx *sql.Tx) (int64, error) { return sqlstore.DeleteCase(ctx, db, tx, cs.ID) }, 1)
		if n := count(t, db, "case_history"); n != 0 {
			t.Fatalf("%d case_history rows left after deleting their case", n)
		}
		// Only the anonymized contact is left, in its statistics case.
		if n := count(t, db, "contacts"); n != 1 {
			t.Fatalf("%d contacts left after deleting their case, want the anonymized one", n)
		}
	})
}
