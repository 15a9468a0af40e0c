package sqldb_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/casevault/casevault/sqldb"
)

// TestBackgroundCheckpoint: committed pages reach the database file without
// the writer checkpointing (its threshold is far above what is written
// here), and not while checkpoints are paused.
func TestBackgroundCheckpoint(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "ck.db")
	db, err := sqldb.Open(ctx, sqldb.Config{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Write.ExecContext(ctx, `CREATE TABLE ck_blobs (b BLOB)`); err != nil {
		t.Fatal(err)
	}
	size := func() int64 {
		t.Helper()
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		return fi.Size()
	}
	write := func() {
		t.Helper()
		for range 8 { // 8 MiB in 8 commits: ~2,000 pages, below the writer's 16,384
			if _, err := db.Write.ExecContext(ctx, `INSERT INTO ck_blobs SELECT randomblob(4000) FROM (SELECT 1 FROM (VALUES (1),(2),(3),(4),(5),(6),(7),(8)) a, (VALUES (1),(2),(3),(4),(5),(6),(7),(8)) b, (VALUES (1),(2),(3),(4)) c)`); err != nil {
				t.Fatal(err)
			}
		}
	}
	waitFor := func(want func(int64) bool) bool {
		for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
			if want(size()) {
				return true
			}
		}
		return false
	}

	resume := db.PauseCheckpoints()
	before := size()
	write()
	time.Sleep(500 * time.Millisecond) // five checkpoint periods
	if got := size(); got > before+1<<20 {
		t.Fatalf("database file grew from %d to %d bytes while checkpoints were paused", before, got)
	}

	resume()
	if !waitFor(func(n int64) bool { return n >= before+8<<20 }) {
		t.Fatalf("database file still %d bytes (was %d) after 8 MiB committed: no background checkpoint", size(), before)
	}
}
