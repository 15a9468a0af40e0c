package backup_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/casevault/casevault/archive/backup"
	"github.com/casevault/casevault/retention"
	"github.com/casevault/casevault/sqldb"
	"github.com/casevault/casevault/sqldb/sqldbtest"
)

func TestRestoreCase(t *testing.T) {
	forEachDialect(t, testRestoreCase)
}

// TestRestoreCaseNewInstanceAndErasure: into an instance without the
// customer, the customer, its key, the case and its files all come back;
// for a customer whose key was destroyed since (erasure), contacts come
// back but their files stay gone.
func TestRestoreCaseNewInstanceAndErasure(t *testing.T) {
	forEachDialect(t, func(t *testing.T, in *instance) {
		ctx := context.Background()
		ids := in.seed(2, 2)
		repo, _ := newRepo(t)
		keys := newKeys(t)
		m, err := in.service(repo, keys).Backup(ctx, "test", operator, nil)
		if err != nil {
			t.Fatal(err)
		}

		dst := newInstance(t, in.db.Dialect)
		opts := backup.CaseRestoreOptions{DB: dst.db, Blobs: dst.blobs, Identity: keys.Identity, Actor: operator}
		rep, err := repo.RestoreCase(ctx, m.ID, ids[0], opts)
		if err != nil {
			t.Fatal(err)
		}
		if !rep.CustomerRestored || !rep.KeyRestored || !rep.CaseRestored || rep.Contacts != 2 || rep.Attachments != 1 || rep.Blobs != 1 || rep.AttachmentsGone != 0 {
			t.Fatalf("restore into an empty instance: %+v", rep)
		}

		erased := ids[1]
		for _, q := range []string{`DELETE FROM attachments WHERE case_id = ?`, `DELETE FROM contacts WHERE case_id = ?`,
			`UPDATE customer_keys SET destroyed_at = 1 WHERE customer_id = (SELECT customer_id FROM cases WHERE id = ?)`} {
			if _, err := in.db.Write.ExecContext(ctx, in.db.Rebind(q), erased); err != nil {
				t.Fatal(err)
			}
		}
		opts = backup.CaseRestoreOptions{DB: in.db, Blobs: in.blobs, Identity: keys.Identity, Actor: operator}
		rep, err = repo.RestoreCase(ctx, m.ID, erased, opts)
		if err != nil {
			t.Fatal(err)
		}
		if rep.Contacts != 2 || rep.Attachments != 0 || rep.AttachmentsGone != 1 || rep.Blobs != 0 {
			t.Fatalf("restore for an erased customer: %+v, want contacts back and the file skipped", rep)
		}
		if n := in.count(`SELECT COUNT(*) FROM attachments WHERE case_id = ?`, erased); n != 0 {
			t.Fatalf("%d attachments of an erased customer restored", n)
		}
	})
}

func testRestoreCase(t *testing.T, in *instance) {
	ctx := context.Background()
	d := in.db.Dialect
	ids := in.seed(3, 3)
	repo, _ := newRepo(t)
	keys := newKeys(t)
	m, err := in.service(repo, keys).Backup(ctx, "test", operator, nil)
	if err != nil {
		t.Fatal(err)
	}
	heldBy := func(ctx context.Context, caseID, customerID string) ([]string, error) {
		hs, err := in.holds.Covering(ctx, retention.ContactRef{CaseID: caseID, CustomerID: customerID})
		var out []string
		for _, h := range hs {
			out = append(out, h.ID)
		}
		return out, err
	}
	opts := backup.CaseRestoreOptions{DB: in.db, Blobs: in.blobs, Identity: keys.Identity, HeldBy: heldBy, Actor: operator, OnChange: auditHook(d)}
	digests := in.blobDigests()

	// Lost outside the application: rows and the blob vanish.
	lost := ids[1]
	var blobKey string
	if err := in.db.Read.QueryRowContext(ctx, in.db.Rebind(`SELECT blob_key FROM attachments WHERE case_id = ?`), lost).Scan(&blobKey); err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{`DELETE FROM attachments WHERE case_id = ?`, `DELETE FROM contacts WHERE case_id = ?`} {
		if _, err := in.db.Write.ExecContext(ctx, in.db.Rebind(q), lost); err != nil {
			t.Fatal(err)
		}
	}
	if err := in.blobs.Delete(ctx, blobKey); err != nil {
		t.Fatal(err)
	}
	rep, err := repo.RestoreCase(ctx, m.ID, lost, opts)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Contacts != 3 || rep.Attachments != 1 || rep.Blobs != 1 || rep.CaseRestored {
		t.Fatalf("report %+v: want 3 contacts, 1 attachment and its blob back into the existing case", rep)
	}
	after := in.blobDigests()
	for k, v := range digests {
		if after[k] != v {
			t.Errorf("%s: %s after restore, %s before", k, after[k], v)
		}
	}
	if n := in.count(`SELECT COUNT(*) FROM outbox WHERE case_id = ?`, lost); n == 0 {
		t.Error("no outbox row: the index would not learn about the restored contacts")
	}
	if n := in.count(`SELECT COUNT(*) FROM audit_events WHERE action = 'backup.restore_case' AND target_id = ?`, lost); n != 1 {
		t.Errorf("%d backup.restore_case audit events", n)
	}
	// Restoring again adds nothing.
	if rep, err = repo.RestoreCase(ctx, m.ID, lost, opts); err != nil || rep.Contacts != 0 || rep.ContactsPresent != 3 {
		t.Fatalf("second restore: %+v %v", rep, err)
	}

	// Deleted through the application: a tombstone; never brought back.
	if err := in.deleter.DeleteCase(ctx, ids[0], operator); err != nil {
		t.Fatal(err)
	}
	if _, err := repo.RestoreCase(ctx, m.ID, ids[0], opts); !errors.Is(err, backup.ErrDeleted) {
		t.Fatalf("restore of a deleted case: %v, want ErrDeleted", err)
	}
	if n := in.count(`SELECT COUNT(*) FROM contacts WHERE case_id = ?`, ids[0]); n != 0 {
		t.Fatalf("deleted case came back with %d contacts", n)
	}

	// Held: overwriting the live case is refused; adding nothing is fine.
	held := ids[2]
	if _, err := in.store.UpdateCase(ctx, held, func(c *casesCase) error { c.Subject = "changed since"; return nil }, change(held)); err != nil {
		t.Fatal(err)
	}
	if _, err := in.holds.Place(ctx, retention.HoldInput{Matter: "M-1", Reason: "litigation", Scope: retention.HoldScope{CaseIDs: []string{held}}}, operator, nil); err != nil {
		t.Fatal(err)
	}
	ow := opts
	ow.Overwrite = true
	if _, err := repo.RestoreCase(ctx, m.ID, held, ow); !errors.Is(err, backup.ErrHeld) {
		t.Fatalf("overwrite of a held case: %v, want ErrHeld", err)
	}
	if n := in.count(`SELECT COUNT(*) FROM cases WHERE id = ? AND subject = 'changed since'`, held); n != 1 {
		t.Fatal("held case was overwritten")
	}
	if _, err := repo.RestoreCase(ctx, m.ID, "no-such-case", opts); !errors.Is(err, backup.ErrNotFound) {
		t.Fatalf("unknown case: %v, want ErrNotFound", err)
	}
}

// TestRestoreCaseOverwriteWaitsForAContactInFlight: a contact batch in
// flight holds its case FOR KEY SHARE only (sqlstore's createContacts),
// so a case restored over the live one must lock the row FOR UPDATE
// before overwriting it: the restore waits for the batch, whose contact
// was stamped from the closed_at it read. A plain UPDATE went through.
func TestRestoreCaseOverwriteWaitsForAContactInFlight(t *testing.T) {
	f := newFixtureOn(t, sqldb.Postgres, 1, 1)
	m, in := f.backup(t), f.src
	batch := sqldbtest.Hold(t, in.db, `SELECT id FROM cases WHERE id = $1 FOR KEY SHARE`, f.ids[0])

	opts := backup.CaseRestoreOptions{DB: in.db, Blobs: in.blobs, Identity: f.keys.Identity, Actor: operator, Overwrite: true}
	restored := make(chan error, 1)
	go func() {
		_, err := f.repo.RestoreCase(context.Background(), m.ID, f.ids[0], opts)
		restored <- err
	}()
	sqldbtest.BlockedBy(t, in.db, batch.PID, restored)

	if err := batch.Tx.Commit(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-restored:
		if err != nil {
			t.Fatalf("the restore: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the restore did not end after the batch committed")
	}
}
