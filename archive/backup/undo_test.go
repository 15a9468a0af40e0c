package backup_test

import (
	"context"
	"errors"
	"testing"

	"github.com/casevault/casevault/archive/backup"
	"github.com/casevault/casevault/audit"
	"github.com/casevault/casevault/cases"
	"github.com/casevault/casevault/retention"
	"github.com/casevault/casevault/sqldb"
	"github.com/casevault/casevault/sqldb/sqldbtest"
)

// TestUndoRetentionRun: a retention run deleted three cases by mistake and
// a backup ran after it. From the backup before the run, an undo brings
// back the case it may (with its file), keeps the erased
// customer's case and the case now under a hold gone, audits itself, marks
// the dispositions reversed, and a later full restore does not delete the
// case again.
func TestUndoRetentionRun(t *testing.T) {
	forEachDialect(t, func(t *testing.T, in *instance) {
		ctx := context.Background()
		ids := in.seed(4, 1)
		closed := base
		for _, id := range ids[:3] {
			if _, err := in.store.UpdateCase(ctx, id, func(c *cases.Case) error { c.Status, c.ClosedAt = cases.StatusClosed, &closed; return nil }, change(id)); err != nil {
				t.Fatal(err)
			}
		}
		customerOf := func(caseID string) string {
			var c string
			if err := in.db.Read.QueryRowContext(ctx, in.db.Rebind(`SELECT customer_id FROM cases WHERE id = ?`), caseID).Scan(&c); err != nil {
				t.Fatal(err)
			}
			return c
		}
		undone, erased, held := ids[0], ids[1], ids[2]
		erasedCust, heldCust := customerOf(erased), customerOf(held)

		repo, _ := newRepo(t)
		keys := newKeys(t)
		svc := in.service(repo, keys)
		before, err := svc.Backup(ctx, "test", operator, nil)
		if err != nil {
			t.Fatal(err)
		}

		run, err := in.sweeper.Run(ctx, retention.RunOptions{Now: base.AddDate(4, 0, 0)})
		if err != nil {
			t.Fatal(err)
		}
		if run.CasesDeleted != 3 {
			t.Fatalf("the run deleted %d cases, want 3", run.CasesDeleted)
		}
		if err := in.keys.Destroy(ctx, erasedCust); err != nil {
			t.Fatal(err)
		}
		if _, err := in.holds.Place(ctx, retention.HoldInput{Matter: "M", Reason: "r", Scope: retention.HoldScope{CustomerIDs: []string{heldCust}}}, operator, nil); err != nil {
			t.Fatal(err)
		}
		after, err := svc.Backup(ctx, "test", operator, nil)
		if err != nil {
			t.Fatal(err)
		}

		opts := backup.UndoOptions{DB: in.db, Blobs: in.blobs, Identity: keys.Identity, RunID: run.ID, HeldBy: in.holds.CoveringCase,
			Actor: operator, OnChange: auditHook(in.db.Dialect)}
		caseCount := func(id string) int { return in.count(`SELECT COUNT(*) FROM cases WHERE id = ?`, id) }

		refusals := []struct {
			name   string
			backup string
			mutate func(o *backup.UndoOptions)
			want   error
		}{
			{"unconfirmed", before.ID, func(o *backup.UndoOptions) {}, backup.ErrUnconfirmed},
			{"backup taken after the run", after.ID, func(o *backup.UndoOptions) { o.Confirm = true }, backup.ErrNotBefore},
			{"unknown run", before.ID, func(o *backup.UndoOptions) { o.Confirm, o.RunID = true, "no-such-run" }, backup.ErrNotFound},
		}
		for _, tt := range refusals {
			o := opts
			tt.mutate(&o)
			rep, err := repo.Undo(ctx, tt.backup, o)
			if !errors.Is(err, tt.want) {
				t.Fatalf("%s: %v, want %v", tt.name, err, tt.want)
			}
			if rep.Applied || caseCount(undone) != 0 {
				t.Fatalf("%s: the undo changed the instance", tt.name)
			}
			if tt.name == "unconfirmed" && (len(rep.Reversed) != 2 || len(rep.Kept) == 0) {
				t.Errorf("unconfirmed plan: reversed %+v kept %+v, want the undone case's contact and case", rep.Reversed, rep.Kept)
			}
		}

		opts.Confirm = true
		rep, err := repo.Undo(ctx, before.ID, opts)
		if err != nil {
			t.Fatal(err)
		}
		if !rep.Applied || rep.Cases != 1 || rep.Contacts != 1 || rep.Attachments != 1 || rep.Blobs != 1 {
			t.Fatalf("undo report %+v", rep)
		}
		if caseCount(undone) != 1 || caseCount(erased) != 0 || caseCount(held) != 0 {
			t.Fatalf("after undo: undone %d, erased %d, held %d cases; want 1, 0, 0", caseCount(undone), caseCount(erased), caseCount(held))
		}
		var attID string
		if err := in.db.Read.QueryRowContext(ctx, in.db.Rebind(`SELECT id FROM attachments WHERE case_id = ?`), undone).Scan(&attID); err != nil {
			t.Fatal(err)
		}
		if _, rc, err := in.att.Open(ctx, attID); err != nil {
			t.Fatalf("restored attachment: %v", err)
		} else {
			rc.Close()
		}
		if n := in.count(`SELECT COUNT(*) FROM dispositions WHERE case_id = ? AND action IN ('delete', 'delete_case') AND reversed_at IS NULL`, undone); n != 0 {
			t.Errorf("%d dispositions of the undone case not marked reversed", n)
		}
		if n := in.count(`SELECT COUNT(*) FROM audit_events WHERE action = 'backup.undo_disposal' AND target_id = ?`, run.ID); n != 1 {
			t.Errorf("%d undo audit events, want 1", n)
		}
		if res, err := audit.New(in.db).Verify(ctx); err != nil || !res.OK {
			t.Errorf("audit chain after undo: %+v %v", res, err)
		}

		// What stays final stays final on a second try.
		if _, err := repo.Undo(ctx, before.ID, opts); !errors.Is(err, backup.ErrDeleted) {
			t.Errorf("second undo: %v, want ErrDeleted (erasure and hold are final)", err)
		}

		// A full restore of the backup before the run, with this instance's
		// tombstones, keeps the undone case and the others gone.
		dst := openInstance(t, sqldbtest.Open(t, in.db.Dialect), t.TempDir())
		rr, err := repo.Restore(ctx, before.ID, backup.RestoreOptions{Target: dst.db, Blobs: dst.blobs, Identity: keys.Identity, Actor: operator, Live: []*sqldb.DB{in.db}})
		if err != nil {
			t.Fatal(err)
		}
		got := func(id string) int { return dst.count(`SELECT COUNT(*) FROM cases WHERE id = ?`, id) }
		if got(undone) != 1 || got(erased) != 0 || got(held) != 0 || rr.Tombstones.Reversed != 2 {
			t.Errorf("full restore after undo: undone %d erased %d held %d, %d reversals; want 1 0 0, 2", got(undone), got(erased), got(held), rr.Tombstones.Reversed)
		}
	})
}

// TestUndoCaseDeletion: a case deleted by request comes back with --case
// and confirmation; an erased customer's deleted case never does.
func TestUndoCaseDeletion(t *testing.T) {
	forEachDialect(t, func(t *testing.T, in *instance) {
		ctx := context.Background()
		ids := in.seed(2, 2)
		repo, _ := newRepo(t)
		keys := newKeys(t)
		m, err := in.service(repo, keys).Backup(ctx, "test", operator, nil)
		if err != nil {
			t.Fatal(err)
		}
		for _, id := range ids {
			if err := in.deleter.DeleteCase(ctx, id, operator); err != nil {
				t.Fatal(err)
			}
		}
		var erasedCust string
		if err := in.db.Read.QueryRowContext(ctx, in.db.Rebind(`SELECT customer_id FROM dispositions WHERE case_id = ? LIMIT 1`), ids[1]).Scan(&erasedCust); err != nil {
			t.Fatal(err)
		}
		if err := in.keys.Destroy(ctx, erasedCust); err != nil {
			t.Fatal(err)
		}

		opts := backup.UndoOptions{DB: in.db, Blobs: in.blobs, Identity: keys.Identity, Confirm: true, Actor: operator, OnChange: auditHook(in.db.Dialect)}
		tests := []struct {
			caseID   string
			want     error
			contacts int
		}{
			{ids[0], nil, 2},
			{ids[1], backup.ErrDeleted, 0},
		}
		for _, tt := range tests {
			o := opts
			o.CaseID = tt.caseID
			rep, err := repo.Undo(ctx, m.ID, o)
			if !errors.Is(err, tt.want) {
				t.Fatalf("undo of case %s: %v, want %v", tt.caseID, err, tt.want)
			}
			if n := in.count(`SELECT COUNT(*) FROM contacts WHERE case_id = ?`, tt.caseID); n != tt.contacts || (tt.want == nil && rep.Contacts != 2) {
				t.Errorf("case %s: %d contacts after undo (report %+v), want %d", tt.caseID, n, rep, tt.contacts)
			}
		}
	})
}
