package backup_test

import (
	"context"
	"testing"

	"github.com/casevault/casevault/archive/backup"
)

// TestUnchangedTablesAreNotDumped: a table whose storage did not change
// since the last backup is listed from it (same entry, same chunks, no
// read of its rows), and any change to a table's rows, even one that
// keeps its row count and byte length, makes the next backup dump it
// again: the backup's digest of that table is the live table's. The
// backup that only relisted tables restores on its own. Both engines.
func TestUnchangedTablesAreNotDumped(t *testing.T) {
	mutations := []struct {
		name  string
		table string
		sql   string // ? is a contact id (or unused)
	}{
		{"nothing", "", ""},
		{"same-length update of one contact", "contacts", `UPDATE contacts SET author = 'Xi Lei' WHERE id = ?`},
		{"boolean flipped", "customers", `UPDATE customers SET consent_marketing = NOT consent_marketing WHERE id = (SELECT MIN(id) FROM customers)`},
		{"row deleted", "saved_searches", `DELETE FROM saved_searches WHERE id = 'ss1'`},
		{"row inserted", "tokens", `INSERT INTO tokens (id, name, role, hash, created_at) VALUES ('tok-new', 'n', 'agent', 'h-new', 1)`},
	}
	forEachDialect(t, func(t *testing.T, src *instance) {
		ctx := context.Background()
		src.seed(2, 1)
		ids := seedBulk(t, src, 3000)
		if _, err := src.db.Write.ExecContext(ctx, `INSERT INTO saved_searches (id, owner, name, q, filters, created_at) VALUES ('ss1', 'o', 'n', 'q', '{}', 1), ('ss2', 'o', 'm', 'q', '{}', 2)`); err != nil {
			t.Fatal(err)
		}
		repo, _ := newRepo(t)
		keys := newKeys(t)
		svc := src.service(repo, keys)
		prev, err := svc.Backup(ctx, "test", operator, nil)
		if err != nil {
			t.Fatal(err)
		}
		for _, mu := range mutations {
			if mu.sql != "" {
				var args []any
				if mu.table == "contacts" {
					args = append(args, ids[len(ids)/2])
				}
				if _, err := src.db.Write.ExecContext(ctx, src.db.Rebind(mu.sql), args...); err != nil {
					t.Fatalf("%s: %v", mu.name, err)
				}
			}
			m, err := svc.Backup(ctx, "test", operator, nil)
			if err != nil {
				t.Fatal(err)
			}
			live, err := backup.TableDigests(ctx, src.db)
			if err != nil {
				t.Fatal(err)
			}
			for _, te := range m.Tables {
				old := tableEntry(t, prev, te.Name)
				relisted := te.Fingerprint != "" && te.Fingerprint == old.Fingerprint
				switch {
				case te.Name == mu.table && relisted:
					t.Errorf("%s: table %s listed from the previous backup after it changed", mu.name, te.Name)
				case te.Name == mu.table && te.PlainSHA256 != live[te.Name]:
					t.Errorf("%s: table %s backed up with digest %s, the live table's is %s", mu.name, te.Name, te.PlainSHA256, live[te.Name])
				case te.Name == mu.table && te.PlainSHA256 == old.PlainSHA256:
					t.Errorf("%s: table %s has the previous backup's digest after it changed", mu.name, te.Name)
				case te.Name == "contacts" && mu.table != "contacts" && (!relisted || !equalStrings(chunkObjects(te), chunkObjects(old))):
					t.Errorf("%s: unchanged contacts dumped again (fingerprint %q, was %q)", mu.name, te.Fingerprint, old.Fingerprint)
				}
				if te.Fingerprint == "" && te.Name != "customer_keys" {
					t.Errorf("%s: table %s has no fingerprint", mu.name, te.Name)
				}
			}
			if m.Stats.TablesReused == 0 || m.Stats.ChunksReused < int64(len(tableEntry(t, m, "contacts").Chunks)) && mu.table != "contacts" {
				t.Errorf("%s: stats %+v, want unchanged tables listed again", mu.name, m.Stats)
			}
			prev = m
		}

		// The last backup relisted most tables: it restores on its own and
		// every table matches its signed digest (restoreInto checks).
		dst := newInstance(t, src.db.Dialect)
		restoreInto(t, repo, prev.ID, keys, dst)
		if n := dst.count(`SELECT COUNT(*) FROM tokens WHERE id = 'tok-new'`); n != 1 {
			t.Fatalf("restored %d of the token inserted last, want 1", n)
		}
	})
}

// TestFirstBackupFingerprintsItsSnapshot: a backup with no earlier entry
// for a table dumps it at once and takes its fingerprint after all the
// dumps (off the snapshot thread's critical path). That fingerprint must
// still be the snapshot's: rows written after the dumps ended (here, when
// the tables' progress reaches its total, before the fingerprints are
// taken) are not in the dump, so the next backup must find the tables
// changed and dump them, never list the first backup's chunks for rows
// they lack. A fingerprint read outside the snapshot would describe the
// new rows and fail this. Both engines.
func TestFirstBackupFingerprintsItsSnapshot(t *testing.T) {
	forEachDialect(t, func(t *testing.T, src *instance) {
		ctx := context.Background()
		src.seed(2, 1)
		ids := seedBulk(t, src, 3000)
		repo, _ := newRepo(t)
		keys := newKeys(t)
		svc := src.service(repo, keys)

		wrote := false
		write := func(p backup.Progress) {
			if p.Phase != "tables" || p.Total == 0 || p.Done < p.Total || wrote {
				return
			}
			wrote = true
			for _, q := range []string{
				`UPDATE contacts SET author = 'Xi Lei' WHERE id = '` + ids[len(ids)/2] + `'`,
				`INSERT INTO tokens (id, name, role, hash, created_at) VALUES ('tok-late', 'n', 'agent', 'h-late', 1)`,
			} {
				if _, err := src.db.Write.ExecContext(ctx, q); err != nil {
					t.Errorf("write after the dumps: %v", err)
				}
			}
		}
		first, err := svc.Backup(ctx, "test", operator, write)
		if err != nil {
			t.Fatal(err)
		}
		if !wrote {
			t.Fatal("the tables' progress never reached its total: nothing was written after the dumps")
		}

		second, err := svc.Backup(ctx, "test", operator, nil)
		if err != nil {
			t.Fatal(err)
		}
		live, err := backup.TableDigests(ctx, src.db)
		if err != nil {
			t.Fatal(err)
		}
		for _, name := range []string{"contacts", "tokens"} {
			old, te := tableEntry(t, first, name), tableEntry(t, second, name)
			if old.Fingerprint == "" {
				t.Errorf("%s: the first backup recorded no fingerprint", name)
			}
			if te.Fingerprint == old.Fingerprint {
				t.Errorf("%s: listed from the first backup, whose dump lacks the rows written after it", name)
			}
			if te.PlainSHA256 != live[name] {
				t.Errorf("%s: second backup's digest %s, the live table's %s", name, te.PlainSHA256, live[name])
			}
		}
		// The tables nothing wrote to are listed again: their deferred
		// fingerprints are the ones the second backup compares with.
		if c := tableEntry(t, second, "cases"); c.Fingerprint == "" || c.Fingerprint != tableEntry(t, first, "cases").Fingerprint {
			t.Errorf("cases: fingerprint %q, the first backup's %q: an unchanged table was dumped again", c.Fingerprint, tableEntry(t, first, "cases").Fingerprint)
		}
	})
}
