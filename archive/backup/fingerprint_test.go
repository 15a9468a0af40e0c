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
