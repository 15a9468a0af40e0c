package sqldb

import (
	"context"
	"path/filepath"
	"testing"
)

// TestPreparedRowsNeverParse: once PrepareRows ran, a batch of any size is
// cut into chunks that were all prepared, so no batch parses SQL (the cost
// this exists to remove). It fails if the chunking and the prepared sizes
// ever disagree.
func TestPreparedRowsNeverParse(t *testing.T) {
	ctx := context.Background()
	db := openSQLite(t)
	const q = `INSERT INTO counters (name, value) VALUES (?, ?)`
	if err := db.PrepareRows(ctx, q, 2); err != nil {
		t.Fatal(err)
	}

	for n := 1; n <= 200; n++ {
		args := make([]any, 2*n)
		var chunks []int
		err := db.chunks(q, 2, args, func(r rowsStmt, args []any) error {
			if r.stmt == nil {
				t.Errorf("%d rows: a chunk of %d rows is not prepared", n, len(args)/2)
			}
			chunks = append(chunks, len(args)/2)
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if limit := n/maxChunkRows + 7; len(chunks) > limit {
			t.Errorf("%d rows in %d chunks %v, want at most %d", n, len(chunks), chunks, limit)
		}
	}
}

// TestUnpreparedRowsRunInOne: a statement PrepareRows never saw runs as one
// statement whatever its size: chunks of it would each be parsed.
func TestUnpreparedRowsRunInOne(t *testing.T) {
	ctx := context.Background()
	db := openSQLite(t)
	const q = `INSERT INTO counters (name, value) VALUES (?, ?) ON CONFLICT DO NOTHING`
	if err := db.PrepareWrite(ctx, q); err != nil { // the single row only
		t.Fatal(err)
	}

	for _, n := range []int{1, 37, 64, 130} {
		calls := 0
		err := db.chunks(q, 2, make([]any, 2*n), func(r rowsStmt, args []any) error {
			calls++
			if len(args) != 2*n {
				t.Errorf("%d rows: a chunk of %d", n, len(args)/2)
			}
			return nil
		})
		if err != nil || calls != 1 {
			t.Errorf("%d rows: %d statements (%v), want 1", n, calls, err)
		}
	}
}

func openSQLite(t *testing.T) *DB {
	t.Helper()
	db, err := Open(context.Background(), Config{Path: filepath.Join(t.TempDir(), "rows.db")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}
