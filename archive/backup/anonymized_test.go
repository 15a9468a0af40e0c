package backup_test

import (
	"context"
	"database/sql"
	"testing"

	"github.com/casevault/casevault/archive/backup"
	"github.com/casevault/casevault/cases"
	"github.com/casevault/casevault/sqldb"
	"github.com/casevault/casevault/sqlstore"
)

// An anonymized contact lives in its run's statistics case, not in the
// person's. Restoring the person's case from a backup taken before leaves
// it anonymized where it is, and once its statistics case is deleted, it
// does not come back with its personal data either.
func TestRestoreCaseKeepsAnonymizedContactsAnonymous(t *testing.T) {
	forEachDialect(t, func(t *testing.T, in *instance) {
		ctx := context.Background()
		cs := in.newCase(in.customer("Han Meimei"), "refund")
		anon := in.contact(cs, "my address is 1 Long Road")
		in.contact(cs, "kept")
		repo, _ := newRepo(t)
		keys := newKeys(t)
		m, err := in.service(repo, keys).Backup(ctx, "test", operator, nil)
		if err != nil {
			t.Fatal(err)
		}

		// Anonymize it as a sweep does: the contact and its tombstone.
		at := base.AddDate(1, 0, 0)
		stats := sqlstore.AnonymousCase(at, string(anon.Channel))
		err = in.db.InTx(ctx, func(tx *sql.Tx) error {
			if _, err := sqlstore.AnonymizeContacts(ctx, in.db, tx, at, []string{anon.ID}); err != nil {
				return err
			}
			_, err := tx.ExecContext(ctx, in.db.Rebind(`INSERT INTO dispositions (id, run_id, contact_id, case_id, customer_id, purposes, rule, action, detail, at, content_sha256)
				VALUES (?, 'run', ?, ?, ?, '["customer_service"]', 'customer_service', 'anonymize', '', ?, '')`),
				cases.NewID(), anon.ID, stats, sqlstore.AnonymousCustomer(at), sqldb.Micros(at))
			return err
		})
		if err != nil {
			t.Fatal(err)
		}

		opts := backup.CaseRestoreOptions{DB: in.db, Blobs: in.blobs, Identity: keys.Identity, Actor: operator, OnChange: auditHook(in.db.Dialect)}
		rep, err := repo.RestoreCase(ctx, m.ID, cs, opts)
		if err != nil {
			t.Fatal(err)
		}
		if rep.Contacts != 0 || rep.ContactsPresent != 2 {
			t.Fatalf("restore after anonymizing: %+v, want both contacts present", rep)
		}
		if n := in.count(`SELECT COUNT(*) FROM contacts WHERE id = ? AND case_id = ? AND body = ''`, anon.ID, stats); n != 1 {
			t.Fatal("the restore changed the anonymized contact")
		}

		// Its statistics case is deleted: the person's case restored from
		// the old backup must not bring the contact back.
		if err := in.deleter.DeleteCase(ctx, stats, operator); err != nil {
			t.Fatal(err)
		}
		rep, err = repo.RestoreCase(ctx, m.ID, cs, opts)
		if err != nil {
			t.Fatal(err)
		}
		if n := in.count(`SELECT COUNT(*) FROM contacts WHERE id = ?`, anon.ID); n != 0 || rep.Contacts != 0 {
			t.Fatalf("the anonymized contact came back with its personal data (%d rows): %+v", n, rep)
		}
	})
}
