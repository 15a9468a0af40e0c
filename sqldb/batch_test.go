package sqldb_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/casevault/casevault/sqldb"
	"github.com/casevault/casevault/sqldb/sqldbtest"
)

// Concurrent transactions share commits on SQLite; one caller's failure must
// roll back only its own writes, and every success must be durable.
func TestConcurrentTransactionsIsolateFailures(t *testing.T) {
	variants := []struct {
		name     string
		d        sqldb.Dialect
		prologue bool
	}{{"sqlite", sqldb.SQLite, false}, {"postgres", sqldb.Postgres, false}, {"postgres-group-commit", sqldb.Postgres, true}}
	for _, v := range variants {
		d := v.d
		t.Run(v.name, func(t *testing.T) {
			db := sqldbtest.Open(t, d)
			prologues := 0
			if v.prologue {
				// Group commit on PostgreSQL is turned on by a prologue; count
				// that it runs once per transaction, not per caller.
				db.SetTxPrologue(func(ctx context.Context, tx *sql.Tx) error {
					prologues++
					_, err := tx.ExecContext(ctx, `SELECT 1`)
					return err
				})
			}
			ctx := context.Background()
			bad := errors.New("caller failed")
			var wg sync.WaitGroup
			errs := make([]error, 200)
			for i := range errs {
				wg.Add(1)
				go func(i int) {
					defer wg.Done()
					errs[i] = db.InTx(ctx, func(tx *sql.Tx) error {
						if _, err := db.Exec(ctx, tx, `INSERT INTO counters (name, value) VALUES (?, ?)`, fmt.Sprint("k", i), i); err != nil {
							return err
						}
						if i%7 == 0 {
							return bad
						}
						return nil
					})
				}(i)
			}
			wg.Wait()
			want := 0
			for i, err := range errs {
				if i%7 == 0 {
					if !errors.Is(err, bad) {
						t.Fatalf("tx %d: err %v, want the caller's error", i, err)
					}
					continue
				}
				if err != nil {
					t.Fatalf("tx %d failed: %v", i, err)
				}
				want++
			}
			var n int
			if err := db.Read.QueryRow(`SELECT COUNT(*) FROM counters WHERE name LIKE 'k%'`).Scan(&n); err != nil {
				t.Fatal(err)
			}
			if n != want {
				t.Fatalf("%d rows committed, want %d", n, want)
			}
			if v.prologue && (prologues == 0 || prologues > len(errs)) {
				t.Fatalf("prologue ran %d times for %d transactions", prologues, len(errs))
			}
			// A duplicate key fails only its own savepoint.
			err := db.InTx(ctx, func(tx *sql.Tx) error {
				_, err := db.Exec(ctx, tx, `INSERT INTO counters (name, value) VALUES ('k1', 0)`)
				return err
			})
			if err == nil {
				t.Fatal("duplicate key accepted")
			}
		})
	}
}

func TestInTxAfterCloseFails(t *testing.T) {
	cfg := sqldbtest.Config(t, sqldb.SQLite)
	db, err := sqldb.Open(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	db.Close()
	if err := db.InTx(context.Background(), func(*sql.Tx) error { return nil }); err == nil {
		t.Fatal("InTx on a closed database succeeded")
	}
}
