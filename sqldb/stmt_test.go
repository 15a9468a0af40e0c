package sqldb_test

import (
	"context"
	"database/sql"
	"testing"

	"github.com/casevault/casevault/sqldb"
	"github.com/casevault/casevault/sqldb/sqldbtest"
)

// TestQueryInTransactionOrPool: the write path's reads (schedule version,
// active holds, data key) run through QueryRowIn/QueryTx in a write
// transaction, prepared or not, and on the read pool; each must rebind
// its ? placeholders and see the transaction's own writes.
func TestQueryInTransactionOrPool(t *testing.T) {
	const one = `SELECT value FROM counters WHERE name = ?`
	const many = `SELECT name FROM counters WHERE value >= ? ORDER BY name`
	sqldbtest.ForEachDialect(t, func(t *testing.T, db *sqldb.DB) {
		ctx := context.Background()
		tests := []struct {
			name    string
			prepare bool
		}{{"unprepared", false}, {"prepared", true}}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				if tc.prepare {
					if err := db.PrepareWrite(ctx, one, many); err != nil {
						t.Fatal(err)
					}
				}
				var pooled int64
				if err := db.QueryRowIn(ctx, db.Read, one, "case_number").Scan(&pooled); err != nil {
					t.Fatalf("on the pool: %v", err)
				}
				err := db.InTx(ctx, func(tx *sql.Tx) error {
					if _, err := tx.ExecContext(ctx, db.Rebind(`UPDATE counters SET value = value + 5 WHERE name = ?`), "case_number"); err != nil {
						return err
					}
					var v int64
					if err := db.QueryRowIn(ctx, tx, one, "case_number").Scan(&v); err != nil {
						t.Errorf("in the transaction: %v", err)
					} else if v != pooled+5 {
						t.Errorf("in the transaction: %d, want its own write %d", v, pooled+5)
					}
					rows, err := db.QueryTx(ctx, tx, many, pooled+5)
					if err != nil {
						t.Errorf("QueryTx: %v", err)
						return nil
					}
					defer rows.Close()
					var names []string
					for rows.Next() {
						var n string
						if err := rows.Scan(&n); err != nil {
							return err
						}
						names = append(names, n)
					}
					if err := rows.Err(); err != nil {
						return err
					}
					if len(names) != 1 || names[0] != "case_number" {
						t.Errorf("QueryTx: %v, want [case_number]", names)
					}
					return nil
				})
				if err != nil {
					t.Fatal(err)
				}
			})
		}
	})
}
