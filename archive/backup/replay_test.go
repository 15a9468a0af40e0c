package backup_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/casevault/casevault/archive"
	"github.com/casevault/casevault/archive/backup"
	"github.com/casevault/casevault/audit"
	"github.com/casevault/casevault/cases"
	"github.com/casevault/casevault/retention"
	"github.com/casevault/casevault/sqldb"
	"github.com/casevault/casevault/sqldb/sqldbtest"
	"github.com/casevault/casevault/testkit"
)

// TestTombstoneReplay: whatever was destroyed after a backup (a case
// deleted, contacts expired by retention, a customer erased) stays
// destroyed after restoring that backup, whether the tombstones come from
// the live instance or from a newer backup.
func TestTombstoneReplay(t *testing.T) {
	for _, source := range []string{"live", "newer backup"} {
		t.Run(source, func(t *testing.T) {
			ctx := context.Background()
			src := newInstance(t, sqldb.SQLite)
			ids := src.seed(3, 2)
			erasedCust := src.customer("Erase me")
			erasedCase := src.newCase(erasedCust, "erasure")
			src.attach(src.contact(erasedCase, "secret"), 500)
			repo, _ := newRepo(t)
			keys := newKeys(t)
			svc := src.service(repo, keys)
			old, err := svc.Backup(ctx, "test", operator, nil)
			if err != nil {
				t.Fatal(err)
			}
			// After the backup: a manual deletion, a retention sweep far in
			// the future (customer_service: 3 years after closure; the
			// location/device redactions apply first), an erasure.
			if err := src.deleter.DeleteCase(ctx, ids[0], operator); err != nil {
				t.Fatal(err)
			}
			closed := base
			for _, id := range ids[1:2] {
				if _, err := src.store.UpdateCase(ctx, id, func(c *cases.Case) error { c.Status, c.ClosedAt = cases.StatusClosed, &closed; return nil }, cases.Change{Action: "case.update", TargetType: "case", TargetID: id}); err != nil {
					t.Fatal(err)
				}
			}
			rep, err := src.sweeper.Run(ctx, retention.RunOptions{Now: base.AddDate(4, 0, 0)})
			if err != nil {
				t.Fatal(err)
			}
			if rep.Deleted != 2 {
				t.Fatalf("sweep deleted %d contacts, want the 2 of the closed case", rep.Deleted)
			}
			// The manually deleted case was its customer's only one: the
			// customer_profile rule (90 days) deleted the profile too.
			if rep.ProfilesDeleted != 1 {
				t.Fatalf("sweep deleted %d customer profiles, want 1", rep.ProfilesDeleted)
			}
			if err := src.keys.Destroy(ctx, erasedCust); err != nil {
				t.Fatal(err)
			}
			opts := backup.RestoreOptions{Identity: keys.Identity, Actor: operator}
			if source == "live" {
				opts.Live = []*sqldb.DB{src.db}
			} else if _, err := svc.Backup(ctx, "test", operator, nil); err != nil {
				t.Fatal(err)
			}
			dst := openInstance(t, sqldbtest.Open(t, sqldb.SQLite), t.TempDir())
			opts.Target, opts.Blobs, opts.OnChange = dst.db, dst.blobs, auditHook(dst.db.Dialect)
			rr, err := repo.Restore(ctx, old.ID, opts)
			if err != nil {
				t.Fatal(err)
			}
			for _, q := range []string{
				`SELECT COUNT(*) FROM cases WHERE id = '` + ids[0] + `'`,
				`SELECT COUNT(*) FROM contacts WHERE case_id = '` + ids[0] + `'`,
				`SELECT COUNT(*) FROM attachments WHERE case_id = '` + ids[0] + `'`,
				`SELECT COUNT(*) FROM contacts WHERE case_id = '` + ids[1] + `'`,
				`SELECT COUNT(*) FROM customer_keys WHERE customer_id = '` + erasedCust + `' AND wrapped_key IS NOT NULL`,
			} {
				if n := dst.count(q); n != 0 {
					t.Errorf("%s = %d after restore: deleted data came back", q, n)
				}
			}
			if n := dst.count(`SELECT COUNT(*) FROM contacts WHERE case_id = ?`, ids[2]); n != 2 {
				t.Errorf("untouched case has %d contacts, want 2", n)
			}
			if n := dst.count(`SELECT COUNT(*) FROM contacts WHERE location IS NOT NULL`); n != 0 {
				t.Errorf("%d contacts kept a location the sweep redacted", n)
			}
			// The erased customer's file cannot be read: its key is gone.
			var attID string
			if err := dst.db.Read.QueryRow(`SELECT id FROM attachments WHERE customer_id = ?`, erasedCust).Scan(&attID); err != nil {
				t.Fatal(err)
			}
			if _, _, err := dst.att.Open(ctx, attID); !errors.Is(err, archive.ErrKeyDestroyed) {
				t.Errorf("erased customer's attachment: %v, want ErrKeyDestroyed", err)
			}
			if rr.Tombstones.Deleted < 4 || rr.Tombstones.CasesDeleted != 2 || rr.Tombstones.KeysDestroyed != 1 || rr.Tombstones.Redacted == 0 {
				t.Errorf("replay report %+v", rr.Tombstones)
			}
			if n, want := dst.count(`SELECT COUNT(*) FROM customers`), src.count(`SELECT COUNT(*) FROM customers`); n != want || rr.Tombstones.ProfilesDeleted != 1 {
				t.Errorf("restored %d customers (source %d), replayed %d profile deletions: a deleted profile came back", n, want, rr.Tombstones.ProfilesDeleted)
			}
			if n := dst.count(`SELECT COUNT(*) FROM dispositions`); n != src.count(`SELECT COUNT(*) FROM dispositions`) {
				t.Errorf("restored %d dispositions, the source has %d", n, src.count(`SELECT COUNT(*) FROM dispositions`))
			}
			if n := dst.count(`SELECT COUNT(*) FROM audit_events WHERE action = 'backup.restore'`); n != 1 {
				t.Errorf("%d backup.restore audit events, want 1", n)
			}
			if res, err := audit.New(dst.db).Verify(ctx); err != nil || !res.OK {
				t.Errorf("audit chain after restore: %+v %v", res, err)
			}
		})
	}
}

// TestBackupWhileWriting: writers keep adding cases and contacts during the
// backup; the restored state is one consistent moment: every contact's case
// is there, the case counter covers every case number, the audit chain
// (written in the same transactions) verifies.
func TestBackupWhileWriting(t *testing.T) {
	sqldbtest.ForEachDialect(t, func(t *testing.T, db *sqldb.DB) {
		d := db.Dialect
		ctx := context.Background()
		src := newInstance(t, d)
		src.seed(5, 2)
		repo, _ := newRepo(t)
		keys := newKeys(t)
		stop := make(chan struct{})
		var wg sync.WaitGroup
		var writes atomic.Int64
		for w := 0; w < 3; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; ; i++ {
					select {
					case <-stop:
						return
					default:
					}
					cs := src.newCase(src.customer(fmt.Sprintf("w%d-%d", w, i)), "concurrent")
					c := src.contact(cs, "written during the backup")
					if i%3 == 0 {
						src.attach(c, 200)
					}
					writes.Add(1)
				}
			}()
		}
		testkit.Eventually(t, 30*time.Second, "five writes before the backup", func() bool { return writes.Load() >= 5 })
		m, err := src.service(repo, keys).Backup(ctx, "test", operator, nil)
		close(stop)
		wg.Wait()
		if err != nil {
			t.Fatal(err)
		}
		dst := openInstance(t, db, t.TempDir())
		rep := restoreInto(t, repo, m.ID, keys, dst)
		checks := map[string]string{
			"contacts without their case":       `SELECT COUNT(*) FROM contacts c LEFT JOIN cases k ON k.id = c.case_id WHERE k.id IS NULL`,
			"attachments without their contact": `SELECT COUNT(*) FROM attachments a LEFT JOIN contacts c ON c.id = a.contact_id WHERE c.id IS NULL`,
		}
		for what, q := range checks {
			if n := dst.count(q); n != 0 {
				t.Errorf("%s: %d", what, n)
			}
		}
		if res, err := audit.New(dst.db).Verify(ctx); err != nil || !res.OK {
			t.Fatalf("restored audit chain: %+v %v", res, err)
		}
		if got, total := dst.count(`SELECT COUNT(*) FROM cases`), src.count(`SELECT COUNT(*) FROM cases`); got <= 5 || got > total {
			t.Fatalf("restored %d cases of %d; want a snapshot between the seed and the end", got, total)
		}
		// The next case number is above every restored one (SQLite: the
		// counters row; PostgreSQL: the case_numbers sequence, moved by its
		// trigger), whichever way the engine counts.
		highest := dst.count(`SELECT MAX(number) FROM cases`)
		next := dst.newCase(dst.customer("after the restore"), "numbered after the restore")
		if n := dst.count(`SELECT number FROM cases WHERE id = ?`, next); n <= highest {
			t.Errorf("the first case after the restore got number %d, not above the restored %d", n, highest)
		}
		// Every attachment row of the snapshot has its blob restored.
		if rep.Blobs+rep.BlobsPresent != int64(dst.count(`SELECT COUNT(*) FROM attachments`)) {
			t.Fatalf("restored %d blobs for %d attachments", rep.Blobs, dst.count(`SELECT COUNT(*) FROM attachments`))
		}
	})
}

// TestTombstonesOnlyFromTheSameInstance: a newer backup of another
// instance in the same repository supplies no tombstones.
func TestTombstonesOnlyFromTheSameInstance(t *testing.T) {
	ctx := context.Background()
	repo, _ := newRepo(t)
	keys := newKeys(t)
	src := newInstance(t, sqldb.SQLite)
	src.seed(2, 1)
	old, err := src.service(repo, keys).Backup(ctx, "test", operator, nil)
	if err != nil {
		t.Fatal(err)
	}
	other := newInstance(t, sqldb.SQLite)
	ids := other.seed(2, 1)
	if err := other.deleter.DeleteCase(ctx, ids[0], operator); err != nil {
		t.Fatal(err)
	}
	newer, err := other.service(repo, keys).Backup(ctx, "test", operator, nil)
	if err != nil {
		t.Fatal(err)
	}
	if old.Source.Instance == "" || old.Source.Instance == newer.Source.Instance {
		t.Fatalf("instance ids %q and %q: want two different ones", old.Source.Instance, newer.Source.Instance)
	}
	dst := newInstance(t, sqldb.SQLite)
	rep, err := repo.Restore(ctx, old.ID, backup.RestoreOptions{Target: dst.db, Blobs: dst.blobs, Identity: keys.Identity})
	if err != nil {
		t.Fatal(err)
	}
	if n := dst.count(`SELECT COUNT(*) FROM dispositions`); n != 0 || rep.Tombstones.Dispositions != 0 || len(rep.Tombstones.Sources) != 0 {
		t.Fatalf("another instance's tombstones were replayed: %d dispositions, report %+v", n, rep.Tombstones)
	}
}
