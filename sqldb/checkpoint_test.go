package sqldb_test

import (
	"context"
	"encoding/binary"
	"os"
	"testing"
	"time"

	"github.com/casevault/casevault/sqldb"
	"github.com/casevault/casevault/sqldb/sqldbtest"
	"github.com/casevault/casevault/testkit"
)

// The database file's header says how many pages the file holds as of
// the last checkpoint (offset 28); PRAGMA page_count says how many the
// database has, WAL included. They agree once a checkpoint has copied
// every committed page back.
func checkpointed(t *testing.T, db *sqldb.DB, path string) (filePages, pages uint32) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	hdr := make([]byte, 32)
	if _, err := f.ReadAt(hdr, 0); err != nil {
		t.Fatal(err)
	}
	if err := db.Read.QueryRowContext(context.Background(), `PRAGMA page_count`).Scan(&pages); err != nil {
		t.Fatal(err)
	}
	return binary.BigEndian.Uint32(hdr[28:32]), pages
}

// writePages commits rows of 3,000 random bytes, one page each, n a commit.
func writePages(t *testing.T, db *sqldb.DB, commits, n int) {
	t.Helper()
	ctx := context.Background()
	for range commits {
		if _, err := db.Write.ExecContext(ctx, `WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?) INSERT INTO ckpt (b) SELECT randomblob(3000) FROM n`, n); err != nil {
			t.Fatal(err)
		}
	}
}

// The writer leaves checkpoints to the background pass: its commits do not
// copy the WAL back at SQLite's default 1,000 pages (they did, inside the
// commit every caller of a group commit waits for), and the pass copies
// what was committed, even a WAL far below any threshold.
func TestSQLiteCheckpointsInTheBackground(t *testing.T) {
	cfg := sqldbtest.Config(t, sqldb.SQLite)
	db, err := sqldb.Open(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Write.Exec(`CREATE TABLE ckpt (b BLOB)`); err != nil {
		t.Fatal(err)
	}

	// Held: 1,500 pages in 15 commits, and no commit checkpointed.
	resume := db.HoldCheckpoints()
	before, _ := checkpointed(t, db, cfg.Path)
	writePages(t, db, 15, 100)
	file, all := checkpointed(t, db, cfg.Path)
	if file != before || file >= all {
		t.Fatalf("the writer checkpointed while the background pass was held: file %d pages (%d before), database %d", file, before, all)
	}

	// Released: the pass copies it all, and then a small WAL too.
	resume()
	testkit.Eventually(t, 5*time.Second, "the background checkpoint", func() bool {
		file, all := checkpointed(t, db, cfg.Path)
		return file == all
	})
	writePages(t, db, 1, 50)
	testkit.Eventually(t, 5*time.Second, "the background checkpoint of 50 pages", func() bool {
		file, all := checkpointed(t, db, cfg.Path)
		return file == all
	})

	// The writer's own checkpoint is still the backstop that keeps the WAL
	// bounded while the pass is held.
	resume = db.HoldCheckpoints()
	defer resume()
	writePages(t, db, 100, 100)
	fi, err := os.Stat(cfg.Path + "-wal")
	if err != nil {
		t.Fatal(err)
	}
	if max := int64(2*sqldb.WriterCheckpointPages*4096 + 1<<20); fi.Size() > max {
		t.Fatalf("WAL grew to %d bytes with the pass held, want at most %d", fi.Size(), max)
	}
}
