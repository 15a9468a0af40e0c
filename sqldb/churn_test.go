package sqldb_test

import (
	"context"
	"strconv"
	"strings"
	"testing"

	"github.com/casevault/casevault/sqldb"
	"github.com/casevault/casevault/sqldb/sqldbtest"
)

// TestChurnVacuumsAtTheThreshold: rows inserted into a queue table and
// deleted in rounds, counted with Add, get the table vacuumed (PostgreSQL's
// own count of vacuums of the table says so, not only the Churn's) once per
// threshold's worth, never before, without truncating it. That a vacuum then lets PostgreSQL reuse
// the space is PostgreSQL's (and only when no older snapshot anywhere in
// the database still sees the rows, which concurrent tests' transactions
// may: the sizes are not asserted). On SQLite, which reuses deleted rows'
// space itself, Vacuum does nothing.
func TestChurnVacuumsAtTheThreshold(t *testing.T) {
	const rows, rounds = 2000, 5
	cases := []struct {
		name  string
		every int64
		// wantVacuums is how many vacuums the rounds must run on PostgreSQL.
		wantVacuums int64
	}{
		{"threshold every round", rows, rounds},
		{"threshold every other round", 2 * rows, rounds / 2},
		{"threshold never reached", 100 * rows, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			sqldbtest.ForEachDialect(t, func(t *testing.T, db *sqldb.DB) {
				ctx := context.Background()
				exec(t, db, `CREATE TABLE queue (id INTEGER PRIMARY KEY, body TEXT NOT NULL)`)
				if db.Dialect == sqldb.Postgres {
					// only the Churn's vacuums may count
					exec(t, db, `ALTER TABLE queue SET (autovacuum_enabled = false)`)
				}
				churn := sqldb.NewChurn(db, "queue", tc.every)

				for r := range rounds {
					exec(t, db, db.Rebind(`INSERT INTO queue (id, body) SELECT g, ? FROM `+series(db, rows)), strings.Repeat("q", 200))
					exec(t, db, `DELETE FROM queue`)
					churn.Add(rows)
					done, err := churn.Vacuum(ctx)
					if err != nil {
						t.Fatalf("round %d: %v", r, err)
					}
					if want := db.Dialect == sqldb.Postgres && int64(r+1)%(tc.every/rows) == 0; done != want {
						t.Fatalf("round %d: vacuumed %v, want %v", r, done, want)
					}
					// the vacuum leaves the emptied pages to the queue: giving
					// them back (truncating) locks the table against inserts
					if done && queuePages(t, db) == 0 {
						t.Fatalf("round %d: the vacuum truncated the queue", r)
					}
				}

				st := churn.Stats()
				if db.Dialect != sqldb.Postgres {
					if st.Vacuums != 0 {
						t.Fatalf("SQLite: %d vacuums, want none", st.Vacuums)
					}
					return
				}
				if st.Vacuums != tc.wantVacuums || st.Failures != 0 || st.Table != "queue" {
					t.Fatalf("stats %+v, want %d vacuums of queue, no failure", st, tc.wantVacuums)
				}
				if got := sqldbtest.VacuumCount(t, db, "queue"); got != tc.wantVacuums {
					t.Fatalf("PostgreSQL counts %d vacuums of queue, want %d", got, tc.wantVacuums)
				}
			})
		})
	}
}

// TestChurnVacuumFailureIsKeptAndRetried: a vacuum that fails (here: the
// table is gone) is counted and reported, and the rows stay due, so the
// next call tries again rather than waiting for a new threshold's worth.
func TestChurnVacuumFailureIsKeptAndRetried(t *testing.T) {
	db := sqldbtest.Open(t, sqldb.Postgres)
	ctx := context.Background()
	churn := sqldb.NewChurn(db, "no_such_queue", 10)

	churn.Add(9)
	if done, err := churn.Vacuum(ctx); done || err != nil {
		t.Fatalf("below the threshold: Vacuum = %v, %v; want nothing done", done, err)
	}
	churn.Add(1)
	for i := range 2 {
		done, err := churn.Vacuum(ctx)
		if done || err == nil {
			t.Fatalf("call %d: Vacuum of a missing table = %v, %v; want an error", i, done, err)
		}
		if st := churn.Stats(); st.Failures != int64(i+1) || st.LastError == "" || st.Vacuums != 0 {
			t.Fatalf("call %d: stats %+v, want %d failures and the error", i, st, i+1)
		}
	}

	exec(t, db, `CREATE TABLE no_such_queue (id INTEGER PRIMARY KEY)`)
	if done, err := churn.Vacuum(ctx); !done || err != nil {
		t.Fatalf("after the table exists: Vacuum = %v, %v; want done", done, err)
	}
	if st := churn.Stats(); st.Vacuums != 1 || st.LastError != "" {
		t.Fatalf("stats %+v, want one vacuum and the error cleared", st)
	}
	if done, _ := churn.Vacuum(ctx); done {
		t.Fatal("vacuumed again with no new dead rows")
	}
}

func exec(t *testing.T, db *sqldb.DB, q string, args ...any) {
	t.Helper()
	if _, err := db.Write.ExecContext(context.Background(), q, args...); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
}

// series is a FROM source of n rows whose column g counts 1..n.
func series(db *sqldb.DB, n int) string {
	if db.Dialect == sqldb.Postgres {
		return `generate_series(1, ` + strconv.Itoa(n) + `) AS s(g)`
	}
	return `(WITH RECURSIVE s(g) AS (SELECT 1 UNION ALL SELECT g + 1 FROM s WHERE g < ` + strconv.Itoa(n) + `) SELECT g FROM s)`
}

// queuePages is the queue table's size in pages (PostgreSQL).
func queuePages(t *testing.T, db *sqldb.DB) int64 {
	t.Helper()
	var n int64
	if err := db.Read.QueryRowContext(context.Background(), `SELECT pg_relation_size('queue') / current_setting('block_size')::int`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}
