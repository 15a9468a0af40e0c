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

// TestAnyOf checks the rows AnyOf's condition (and CollectIn's and
// ExecIn's) selects on both engines,
// with values an array literal would have to escape, and that on
// PostgreSQL lists of any length are one prepared statement per
// connection (an IN list was one per length).
func TestAnyOf(t *testing.T) {
	odd := []string{`a,b`, `{c}`, `"d"`, `NULL`, `e'f`, `g\h`, ` `, `喂`}
	many := make([]string, 1000)
	for i := range many {
		many[i] = fmt.Sprintf("k%04d", i)
	}
	stored := append(slices.Clone(odd), many...)

	cases := []struct {
		name string
		vals []string
		want []string
	}{
		{"one", []string{"k0007"}, []string{"k0007"}},
		{"one missing", []string{"nope"}, nil},
		{"some missing", []string{"k0001", "nope", "k0002"}, []string{"k0001", "k0002"}},
		{"repeated", []string{"k0003", "k0003"}, []string{"k0003"}},
		{"characters an array literal escapes", odd, odd},
		{"a thousand", many, many},
	}

	for _, d := range sqldbtest.Dialects {
		t.Run(string(d), func(t *testing.T) {
			ctx := context.Background()
			db := sqldbtest.Open(t, d)
			conn, err := db.Write.Conn(ctx)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			if _, err := conn.ExecContext(ctx, `CREATE TABLE anyof_t (k TEXT PRIMARY KEY)`); err != nil {
				t.Fatal(err)
			}
			for _, k := range stored {
				if _, err := conn.ExecContext(ctx, db.Rebind(`INSERT INTO anyof_t (k) VALUES (?)`), k); err != nil {
					t.Fatal(err)
				}
			}

			for _, c := range cases {
				t.Run(c.name, func(t *testing.T) {
					cond, args := sqldb.AnyOf(d, "k", c.vals)
					got, err := sqldb.Collect(ctx, conn, db.Rebind(`SELECT k FROM anyof_t WHERE `+cond+` ORDER BY k`), args, func(rows *sql.Rows) (k string, err error) { return k, rows.Scan(&k) })
					if err != nil {
						t.Fatal(err)
					}
					want := slices.Sorted(slices.Values(c.want))
					if !slices.Equal(got, want) {
						t.Fatalf("got %d rows %.5q, want %d %.5q", len(got), got, len(want), want)
					}
				})
			}

			// CollectIn: the same condition over chunks of 500, with the
			// query going on after it.
			ids := append([]string{"nope"}, many...)
			got, err := sqldb.CollectIn(ctx, db, conn, `SELECT k FROM anyof_t t WHERE %s AND k <> 'k0005' ORDER BY k`, "k", ids,
				func(rows *sql.Rows) (k string, err error) { return k, rows.Scan(&k) })
			if err != nil {
				t.Fatal(err)
			}
			slices.Sort(got)
			if want := slices.DeleteFunc(slices.Clone(many), func(k string) bool { return k == "k0005" }); !slices.Equal(got, want) {
				t.Fatalf("CollectIn: got %d rows, want %d", len(got), len(want))
			}

			// ExecIn: the arguments before the list, rows changed counted,
			// and no statement for no ids (which AnyOf cannot express).
			tx, err := conn.BeginTx(ctx, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer func() { _ = tx.Rollback() }() // a failure below must not leave conn in the transaction
			if n, err := sqldb.ExecIn(ctx, db, tx, `DELETE FROM anyof_t AS t WHERE k <> ? AND `, "k", ids, "k0005"); err != nil || n != int64(len(many)-1) {
				t.Fatalf("ExecIn = %d, %v; want %d rows deleted", n, err, len(many)-1)
			}
			if n, err := sqldb.ExecIn(ctx, db, tx, `DELETE FROM anyof_t AS t WHERE `, "k", nil); err != nil || n != 0 {
				t.Fatalf("ExecIn of no ids = %d, %v; want 0, nil", n, err)
			}
			if err := tx.Rollback(); err != nil {
				t.Fatal(err)
			}

			if d != sqldb.Postgres {
				return
			}
			var n int
			if err := conn.QueryRowContext(ctx, `SELECT COUNT(*) FROM pg_prepared_statements WHERE statement LIKE '%FROM anyof_t WHERE%' AND statement NOT LIKE '%pg_prepared_statements%'`).Scan(&n); err != nil {
				t.Fatal(err)
			}
			if n != 1 {
				t.Fatalf("%d prepared statements for the lists of %d lengths, want 1", n, len(cases))
			}
		})
	}
}
