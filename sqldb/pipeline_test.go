package sqldb_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/casevault/casevault/sqldb"
	"github.com/casevault/casevault/sqldb/sqldbtest"
)

// TestPipelinedTransaction: a pipelined transaction holds BEGIN and its
// Execs back until a query or the COMMIT needs a round trip, and still
// behaves as a transaction: what it wrote is seen by its own queries,
// written all or nothing, and a statement's error (at whichever later
// statement it surfaces) leaves nothing written and the connection usable.
func TestPipelinedTransaction(t *testing.T) {
	db, trips := sqldbtest.OpenCounted(t)
	ctx := context.Background()
	if _, err := db.Write.ExecContext(ctx, `CREATE TABLE pt (id int PRIMARY KEY, v text NOT NULL)`); err != nil {
		t.Fatal(err)
	}
	// insert's Execs never fail at once when pipelined: a failing one
	// (id 1 is there) fails at the transaction's next round trip.
	insert := func(t *testing.T, tx *sql.Tx, ids ...int) {
		t.Helper()
		for _, id := range ids {
			if _, err := tx.ExecContext(ctx, `INSERT INTO pt (id, v) VALUES ($1, 'x')`, id); err != nil {
				t.Fatalf("insert %d failed at once: %v", id, err)
			}
		}
	}
	insertAndCommit := func(t *testing.T, tx *sql.Tx) error {
		insert(t, tx, 2, 3, 4)
		return tx.Commit()
	}
	count := func(tx *sql.Tx) (n int, err error) {
		err = tx.QueryRowContext(ctx, `SELECT count(*) FROM pt`).Scan(&n)
		return n, err
	}
	// prefetch queues a read of the rows below limit; below runs it.
	const qBelow = `SELECT count(*) FROM pt WHERE id < ?`
	prefetch := func(t *testing.T, tx *sql.Tx, pipelined bool, limit int) {
		t.Helper()
		pctx := ctx
		if pipelined {
			pctx = sqldb.Pipelined(ctx)
		}
		if err := db.Prefetch(pctx, tx, qBelow, limit); err != nil {
			t.Fatalf("prefetch: %v", err)
		}
	}
	below := func(t *testing.T, tx *sql.Tx, limit, want int) {
		t.Helper()
		var n int
		if err := tx.QueryRowContext(ctx, db.Rebind(qBelow), limit).Scan(&n); err != nil {
			t.Fatalf("rows below %d: %v", limit, err)
		}
		if n != want {
			t.Fatalf("rows below %d: %d, want %d", limit, n, want)
		}
	}
	isDuplicate := func(err error) bool {
		var pe *pgconn.PgError
		return errors.As(err, &pe) && pe.Code == "23505"
	}

	tests := []struct {
		name      string
		pipelined bool
		run       func(t *testing.T, tx *sql.Tx) error // its error goes to want
		want      func(err error) bool
		rows      int // rows of pt afterwards (row 1 is always there)
		// trips: round trips after BeginTx returned; -1 for a failing
		// batch, which pgx follows with a ROLLBACK and, the next time,
		// with re-preparing every statement of the batch that failed.
		trips int64
	}{
		{"execs and commit in one round trip", true, insertAndCommit, nil, 4, 1},
		{"the same without the marker: one round trip per statement", false, insertAndCommit, nil, 4, 4}, // BEGIN went out in BeginTx
		{"a query takes what waits along and sees it", true, func(t *testing.T, tx *sql.Tx) error {
			insert(t, tx, 2)
			if n, err := count(tx); err != nil || n != 2 {
				t.Fatalf("the transaction's own count: %d, %v; want 2", n, err)
			}
			insert(t, tx, 3)
			return tx.Commit()
		}, nil, 3, 2},
		{"a rollback before any round trip sends nothing", true, func(t *testing.T, tx *sql.Tx) error {
			insert(t, tx, 2)
			return tx.Rollback()
		}, nil, 1, 0},
		{"a rollback after a query ends the server's transaction", true, func(t *testing.T, tx *sql.Tx) error {
			insert(t, tx, 2)
			if _, err := count(tx); err != nil {
				t.Fatal(err)
			}
			return tx.Rollback()
		}, nil, 1, 2},
		{"an exec's error surfaces at the commit", true, func(t *testing.T, tx *sql.Tx) error {
			insert(t, tx, 2)
			insert(t, tx, 1)
			return tx.Commit()
		}, isDuplicate, 1, -1},
		{"an exec's error surfaces at the next query", true, func(t *testing.T, tx *sql.Tx) error {
			insert(t, tx, 1)
			_, err := count(tx)
			if rerr := tx.Rollback(); rerr != nil {
				t.Fatalf("rollback: %v", rerr)
			}
			return err
		}, isDuplicate, 1, -1},
		{"a prefetched read goes out with the next query, and its own query needs no round trip", true, func(t *testing.T, tx *sql.Tx) error {
			prefetch(t, tx, true, 9)
			if n, err := count(tx); err != nil || n != 1 {
				t.Fatalf("count: %d, %v; want 1", n, err)
			}
			below(t, tx, 9, 1)
			insert(t, tx, 2)
			return tx.Commit()
		}, nil, 2, 2},
		{"a prefetched read is taken once: the same query again makes its own round trip", true, func(t *testing.T, tx *sql.Tx) error {
			prefetch(t, tx, true, 9)
			below(t, tx, 9, 1)
			insert(t, tx, 2)
			below(t, tx, 9, 2)
			return tx.Commit()
		}, nil, 2, 3},
		{"a query asked for before its prefetched read went out sends it, once", true, func(t *testing.T, tx *sql.Tx) error {
			prefetch(t, tx, true, 9)
			below(t, tx, 9, 1)
			return tx.Commit()
		}, nil, 1, 2},
		{"a prefetched read answers only its own arguments", true, func(t *testing.T, tx *sql.Tx) error {
			insert(t, tx, 2, 3)
			prefetch(t, tx, true, 3)
			if n, err := count(tx); err != nil || n != 3 {
				t.Fatalf("count: %d, %v; want 3", n, err)
			}
			below(t, tx, 9, 3)
			below(t, tx, 3, 2)
			return tx.Commit()
		}, nil, 3, 3},
		{"without the marker a prefetch sends nothing and the query runs", false, func(t *testing.T, tx *sql.Tx) error {
			prefetch(t, tx, false, 9)
			below(t, tx, 9, 1)
			return tx.Commit()
		}, nil, 1, 2},
		{"a prefetched read's error surfaces at the next query", true, func(t *testing.T, tx *sql.Tx) error {
			if err := db.Prefetch(sqldb.Pipelined(ctx), tx, `SELECT 1 / (id - 1) FROM pt`); err != nil {
				t.Fatalf("prefetch failed at once: %v", err)
			}
			_, err := count(tx)
			if rerr := tx.Rollback(); rerr != nil {
				t.Fatalf("rollback: %v", rerr)
			}
			return err
		}, func(err error) bool {
			var pe *pgconn.PgError
			return errors.As(err, &pe) && pe.Code == "22012"
		}, 1, -1},
		{"an exec's row count is unknown", true, func(t *testing.T, tx *sql.Tx) error {
			res, err := tx.ExecContext(ctx, `UPDATE pt SET v = 'y'`)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := res.RowsAffected(); !errors.Is(err, sqldb.ErrDeferred) {
				t.Fatalf("RowsAffected: %v, want ErrDeferred", err)
			}
			return tx.Commit()
		}, nil, 1, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := db.Write.ExecContext(ctx, `TRUNCATE pt; INSERT INTO pt VALUES (1, 'x')`); err != nil {
				t.Fatal(err)
			}
			txCtx := ctx
			if tt.pipelined {
				txCtx = sqldb.Pipelined(ctx)
			}
			// Twice: the first run prepares the statements (a round trip
			// each, once per connection); the second is the one counted.
			for round := range 2 {
				if _, err := db.Write.ExecContext(ctx, `DELETE FROM pt WHERE id > 1`); err != nil {
					t.Fatal(err)
				}
				tx, err := db.Write.BeginTx(txCtx, nil)
				if err != nil {
					t.Fatal(err)
				}
				// A failed check must not leave the pool's one connection
				// in a transaction: the test's cleanup needs it.
				t.Cleanup(func() { _ = tx.Rollback() })
				before := trips.Load()
				err = tt.run(t, tx)
				got := trips.Load() - before
				if tt.want == nil && err != nil {
					t.Fatalf("transaction: %v", err)
				}
				if tt.want != nil && !tt.want(err) {
					t.Fatalf("transaction: %v, want the statement's error", err)
				}
				if round == 1 && tt.trips >= 0 && got != tt.trips {
					t.Errorf("%d round trips, want %d", got, tt.trips)
				}
				var n int
				if err := db.Read.QueryRowContext(ctx, `SELECT count(*) FROM pt`).Scan(&n); err != nil {
					t.Fatalf("the connection after the transaction: %v", err)
				}
				if n != tt.rows {
					t.Fatalf("%d rows, want %d", n, tt.rows)
				}
			}
		})
	}
}

// TestPrefetchOutsideAPipeline: a transaction begun with the marker but
// not pipelined (an isolation level of its own) sends nothing for a
// Prefetch; its query then runs as any other.
func TestPrefetchOutsideAPipeline(t *testing.T) {
	db, trips := sqldbtest.OpenCounted(t)
	ctx := sqldb.Pipelined(context.Background())
	tx, err := db.Write.BeginTx(ctx, &sql.TxOptions{Isolation: sql.LevelRepeatableRead})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tx.Rollback() })

	before := trips.Load()
	if err := db.Prefetch(ctx, tx, `SELECT ? + 1`, 41); err != nil {
		t.Fatalf("prefetch: %v", err)
	}
	if got := trips.Load() - before; got != 0 {
		t.Fatalf("a prefetch outside a pipeline made %d round trips, want 0", got)
	}
	var n int
	if err := tx.QueryRowContext(ctx, db.Rebind(`SELECT ? + 1`), 41).Scan(&n); err != nil || n != 42 {
		t.Fatalf("the query after it: %d, %v; want 42", n, err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
}

// TestPipelinedQueryValues: a query sent with a pipelined batch gives
// database/sql the values pgx's own driver gives, and refuses a column it
// cannot convert rather than guess.
func TestPipelinedQueryValues(t *testing.T) {
	db, _ := sqldbtest.OpenCounted(t)
	ctx := context.Background()
	at := time.Date(2026, 12, 4, 13, 0, 0, 123456000, time.UTC)
	const q = `SELECT 7::int4, 8::int8, 'text'::text, '\x0102'::bytea, true, $1::timestamptz, NULL::text, 1.5::numeric, 2.5::float8`

	for _, pipelined := range []bool{false, true} {
		txCtx := ctx
		if pipelined {
			txCtx = sqldb.Pipelined(ctx)
		}
		tx, err := db.Write.BeginTx(txCtx, nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = tx.Rollback() })
		if _, err := tx.ExecContext(ctx, `SELECT 1`); err != nil { // queued: the query goes with it
			t.Fatal(err)
		}
		var (
			i4, i8 int64
			s      string
			b      []byte
			ok     bool
			ts     time.Time
			null   sql.NullString
			num    string
			f      float64
		)
		if err := tx.QueryRowContext(ctx, q, at).Scan(&i4, &i8, &s, &b, &ok, &ts, &null, &num, &f); err != nil {
			t.Fatalf("pipelined %v: %v", pipelined, err)
		}
		if i4 != 7 || i8 != 8 || s != "text" || string(b) != "\x01\x02" || !ok || !ts.Equal(at) || null.Valid || num != "1.5" || f != 2.5 {
			t.Fatalf("pipelined %v: %d %d %q %x %v %v %v %q %v", pipelined, i4, i8, s, b, ok, ts, null, num, f)
		}
		if pipelined {
			if _, err := tx.ExecContext(ctx, `SELECT 1`); err != nil {
				t.Fatal(err)
			}
			var doc string
			if err := tx.QueryRowContext(ctx, `SELECT '{"a":1}'::jsonb`).Scan(&doc); err == nil {
				t.Fatalf("a jsonb column came through a pipelined query as %q; want an error", doc)
			}
		}
		if err := tx.Rollback(); err != nil {
			t.Fatal(err)
		}
	}
}

// TestPgxConnUnderThePool: the paths that use pgx itself (restore's COPY,
// verify's raw rows) find it under the pool's connections; without it the
// restore would fall back to INSERTs silently.
func TestPgxConnUnderThePool(t *testing.T) {
	db := sqldbtest.Open(t, sqldb.Postgres)
	ctx := context.Background()
	conn, err := db.Write.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	err = conn.Raw(func(dc any) error {
		pc, ok := sqldb.PgxConn(dc)
		if !ok {
			return fmt.Errorf("no pgx connection under %T", dc)
		}
		return pc.Ping(ctx)
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := sqldb.PgxConn(struct{}{}); ok {
		t.Fatal("PgxConn found pgx under a value that is not a connection")
	}
}
