package sqldb_test

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
	"testing"

	"github.com/casevault/casevault/sqldb"
	"github.com/casevault/casevault/sqldb/sqldbtest"
)

func TestMultiRow(t *testing.T) {
	tests := []struct {
		q    string
		cols int
		n    int
		want string
	}{
		{"INSERT INTO t (a, b) VALUES (?, ?)", 2, 1, "INSERT INTO t (a, b) VALUES (?, ?)"},
		{"INSERT INTO t (a, b) VALUES (?, ?)", 2, 3, "INSERT INTO t (a, b) VALUES (?,?),(?,?),(?,?)"},
		// the group inside the statement is repeated, the rest kept
		{"INSERT INTO t (a) VALUES (?) ON CONFLICT DO NOTHING", 1, 2, "INSERT INTO t (a) VALUES (?),(?) ON CONFLICT DO NOTHING"},
		{"UPDATE t SET b = v.column2 FROM (VALUES (?, ?)) AS v WHERE t.a = v.column1 RETURNING t.a", 2, 2,
			"UPDATE t SET b = v.column2 FROM (VALUES (?,?),(?,?)) AS v WHERE t.a = v.column1 RETURNING t.a"},
	}
	for _, tc := range tests {
		if got := sqldb.MultiRow(tc.q, tc.cols, tc.n); got != tc.want {
			t.Errorf("MultiRow(%q, %d, %d) = %q, want %q", tc.q, tc.cols, tc.n, got, tc.want)
		}
	}
}

// TestExecAndQueryRows: every row of a batch is written once and in order,
// whatever its size against the chunk sizes (below, at and above the
// largest, one more than a power of two), prepared or not, and a
// statement's RETURNING rows all reach the caller.
func TestExecAndQueryRows(t *testing.T) {
	const insert = `INSERT INTO rows_test (n, label) VALUES (?, ?)`
	const returning = `INSERT INTO rows_ret (n) VALUES (?) RETURNING n`
	sqldbtest.ForEachDialect(t, func(t *testing.T, db *sqldb.DB) {
		ctx := context.Background()
		for _, ddl := range []string{`CREATE TABLE rows_test (n BIGINT PRIMARY KEY, label TEXT NOT NULL)`, `CREATE TABLE rows_ret (n BIGINT PRIMARY KEY)`} {
			if _, err := db.Write.ExecContext(ctx, ddl); err != nil {
				t.Fatal(err)
			}
		}

		tests := []struct {
			name    string
			n       int
			prepare bool
		}{
			{"one row", 1, false},
			{"three rows", 3, false},
			{"65 rows", 65, false},
			{"one row prepared", 1, true},
			{"37 rows prepared", 37, true},
			{"64 rows prepared", 64, true},
			{"130 rows prepared", 130, true},
		}
		base := 0
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				if tc.prepare {
					if err := db.PrepareRows(ctx, insert, 2); err != nil {
						t.Fatal(err)
					}
					if err := db.PrepareRows(ctx, returning, 1); err != nil {
						t.Fatal(err)
					}
				}
				var args, ids []any
				var want []int64
				for i := range tc.n {
					n := int64(base + i)
					args = append(args, n, fmt.Sprint("row ", n))
					ids = append(ids, n)
					want = append(want, n)
				}
				base += tc.n

				var returned []int64
				err := db.InTx(ctx, func(tx *sql.Tx) error {
					if err := db.ExecRows(ctx, tx, insert, 2, args); err != nil {
						return err
					}
					return db.QueryRows(ctx, tx, returning, 1, ids, func(rows *sql.Rows) error {
						var n int64
						err := rows.Scan(&n)
						returned = append(returned, n)
						return err
					})
				})
				if err != nil {
					t.Fatal(err)
				}

				rows, err := db.Read.QueryContext(ctx, db.Rebind(`SELECT n, label FROM rows_test WHERE n >= ? ORDER BY n`), want[0])
				if err != nil {
					t.Fatal(err)
				}
				defer rows.Close()
				var got []int64
				for rows.Next() {
					var n int64
					var label string
					if err := rows.Scan(&n, &label); err != nil {
						t.Fatal(err)
					}
					if want := fmt.Sprint("row ", n); label != want {
						t.Errorf("row %d: label %q, want %q", n, label, want)
					}
					got = append(got, n)
				}
				if !slices.Equal(got, want) {
					t.Errorf("rows written %v, want %v", got, want)
				}
				slices.Sort(returned)
				if !slices.Equal(returned, want) {
					t.Errorf("rows returned %v, want %v", returned, want)
				}
			})
		}

		t.Run("bad arguments", func(t *testing.T) {
			for _, args := range [][]any{nil, {1}, {1, "a", 2}} {
				err := db.InTx(ctx, func(tx *sql.Tx) error { return db.ExecRows(ctx, tx, insert, 2, args) })
				if err == nil {
					t.Errorf("ExecRows with %d arguments of rows of 2: no error", len(args))
				}
			}
		})
	})
}
