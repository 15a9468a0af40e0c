package backup_test

import (
	"context"
	"slices"
	"sort"
	"testing"

	"github.com/casevault/casevault/archive/backup"
	"github.com/casevault/casevault/archive/blobtest"
	"github.com/casevault/casevault/archive/s3"
	"github.com/casevault/casevault/sqldb"
	"github.com/casevault/casevault/sqldb/sqldbtest"
)

// notBackedUp are the tables a backup leaves out on purpose.
var notBackedUp = []string{"schema_migrations", "outbox", "feed_state", "feed_consumers", "backup_runs", "backup_lease", "instance", "sqlite_sequence", "hold_recording", "hold_changes",
	// S3 legal-hold flag state: it describes one bucket; a restore sets the flags again.
	"legal_hold_flags", "hold_mirroring",
	// issue 20 §14–16: per-installation state (cmd/casevault, package cluster)
	"key_check", "job_ticks", "replicas",
	// issue 15: where the re-sealing pass is (a restore runs the pass again)
	"reseal_state",
	// issue 18: console sessions (a restore signs everyone out)
	"sessions",
	// issue 15: this instance's queue of key escrow deletions (a restored
	// instance's first backup purges every destroyed key's entry anyway)
	"key_escrow_pending"}

// TestTablesMatchSchema fails when a migration adds a table or column the
// backup does not know: a backup must never silently drop data.
func TestTablesMatchSchema(t *testing.T) {
	sqldbtest.ForEachDialect(t, func(t *testing.T, db *sqldb.DB) {
		d := db.Dialect
		ctx := context.Background()
		q := `SELECT m.name, p.name FROM sqlite_master m JOIN pragma_table_info(m.name) p WHERE m.type = 'table' ORDER BY m.name, p.cid`
		if d == sqldb.Postgres {
			q = `SELECT table_name, column_name FROM information_schema.columns WHERE table_schema = current_schema() ORDER BY table_name, ordinal_position`
		}
		rows, err := db.Read.QueryContext(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		schema := map[string][]string{}
		for rows.Next() {
			var tbl, col string
			if err := rows.Scan(&tbl, &col); err != nil {
				t.Fatal(err)
			}
			schema[tbl] = append(schema[tbl], col)
		}
		known := backup.Tables()
		for tbl, cols := range schema {
			if slices.Contains(notBackedUp, tbl) {
				continue
			}
			want, ok := known[tbl]
			if !ok {
				t.Errorf("table %s is not in the backup's table list (archive/backup/tables.go)", tbl)
				continue
			}
			a, b := slices.Clone(cols), slices.Clone(want)
			sort.Strings(a)
			sort.Strings(b)
			if !slices.Equal(a, b) {
				t.Errorf("table %s: schema columns %v, backup columns %v", tbl, a, b)
			}
		}
		for tbl := range known {
			if _, ok := schema[tbl]; !ok {
				t.Errorf("backup lists table %s, which the schema does not have", tbl)
			}
		}
	})
}

// TestContactColumnOrder: the contacts columns come from sqlstore, but
// their order is the dump format (equal content, equal bytes, equal
// digests across versions), so it is pinned here.
func TestContactColumnOrder(t *testing.T) {
	want := []string{"id", "case_id", "customer_id", "channel", "direction", "author", "body", "occurred_at", "created_at",
		"purposes", "categories", "location", "device", "retain_until", "anonymized_at", "corrects"}
	if got := backup.Tables()["contacts"]; !slices.Equal(got, want) {
		t.Fatalf("contacts columns in dump order %v, want %v", got, want)
	}
}

// TestS3Target: the repository on a real S3 server (versitygw), a different
// endpoint and credentials from the attachments', round-trips a backup.
func TestS3Target(t *testing.T) {
	srv := blobtest.StartVersityGW(t)
	ctx := context.Background()
	st, err := s3.New(ctx, s3.Config{Endpoint: srv.Endpoint, Bucket: srv.Bucket, AccessKey: srv.AccessKey, SecretKey: srv.SecretKey})
	if err != nil {
		t.Fatal(err)
	}
	repo, err := backup.OpenRepo(st, "casevault/prod", backup.RepoOptions{Signer: signer(t, master)})
	if err != nil {
		t.Fatal(err)
	}
	src := newInstance(t, sqldb.SQLite)
	src.seed(3, 2)
	want := src.blobDigests()
	keys := newKeys(t)
	svc := src.service(repo, keys)
	m, err := svc.Backup(ctx, "test", operator, nil)
	if err != nil {
		t.Fatal(err)
	}
	m2, err := svc.Backup(ctx, "test", operator, nil)
	if err != nil || m2.Stats.BlobsNew != 0 || m2.Stats.ChunksReused == 0 {
		t.Fatalf("incremental on S3: %+v %v", m2.Stats, err)
	}
	// Table chunks are objects like the blob copies, shared when unchanged.
	for i, te := range m.Tables {
		if te.Name == "contacts" && !equalStrings(chunkObjects(te), chunkObjects(m2.Tables[i])) {
			t.Fatalf("contacts chunks rewritten on S3 with nothing changed")
		}
	}
	vr, err := repo.Verify(ctx, m.ID, true, keys.Identity, nil)
	if err != nil || !vr.OK {
		t.Fatalf("verify on S3: %+v %v", vr, err)
	}
	dst := newInstance(t, sqldb.SQLite)
	restoreInto(t, repo, m.ID, keys, dst)
	got := dst.blobDigests()
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s differs after an S3 round trip", k)
		}
	}
	fr, err := svc.Forget(ctx, backup.KeepPolicy{Daily: 1}, false, "test", operator)
	if err != nil || len(fr.Removed) != 1 {
		t.Fatalf("forget on S3: %+v %v", fr, err)
	}
}
