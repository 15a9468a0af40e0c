// Package sqldbtest gives tests a fresh, migrated database on each engine:
// a temporary SQLite file, or a new schema on the PostgreSQL server named by
// CASEVAULT_TEST_DATABASE_URL (default postgres://postgres@127.0.0.1:5432/test).
// When PostgreSQL cannot be reached the test skips with the reason, and fails
// instead when CI is set.
package sqldbtest

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/casevault/casevault/sqldb"
	"github.com/casevault/casevault/testkit"
)

// Dialects lists the engines every store test runs on.
var Dialects = []sqldb.Dialect{sqldb.SQLite, sqldb.Postgres}

// PostgresURL is the server tests use.
func PostgresURL() string {
	if u := os.Getenv("CASEVAULT_TEST_DATABASE_URL"); u != "" {
		return u
	}
	return "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"
}

// Config returns a configuration for a fresh, empty database of the dialect;
// the schema (PostgreSQL) or file (SQLite) is dropped when the test ends.
func Config(t testing.TB, d sqldb.Dialect) sqldb.Config {
	t.Helper()
	switch d {
	case sqldb.SQLite:
		return sqldb.Config{Path: filepath.Join(t.TempDir(), "casevault.db")}
	case sqldb.Postgres:
		base := PostgresURL()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		admin, err := sql.Open("pgx", base)
		if err == nil {
			err = admin.PingContext(ctx)
		}
		if err != nil {
			Unavailable(t, "PostgreSQL at "+sqldb.Redact(base), err)
			return sqldb.Config{}
		}
		schema := "t_" + randHex(8)
		if _, err := admin.ExecContext(ctx, `CREATE SCHEMA `+schema); err != nil {
			admin.Close()
			t.Fatalf("create schema: %v", err)
		}
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			_, _ = admin.ExecContext(ctx, `DROP SCHEMA `+schema+` CASCADE`)
			admin.Close()
		})
		u, err := url.Parse(base)
		if err != nil {
			t.Fatalf("parse %s: %v", base, err)
		}
		q := u.Query()
		q.Set("search_path", schema)
		u.RawQuery = q.Encode()
		return sqldb.Config{URL: u.String(), MaxOpenConns: 8}
	}
	t.Fatalf("unknown dialect %q", d)
	return sqldb.Config{}
}

// Open returns a fresh migrated database, closed when the test ends.
func Open(t testing.TB, d sqldb.Dialect) *sqldb.DB {
	t.Helper()
	cfg := Config(t, d)
	db, err := sqldb.Open(context.Background(), cfg)
	if err != nil {
		t.Fatalf("open %s: %v", d, err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// Unavailable skips the test when a service it needs is missing, or fails
// it when CI is set: CI must never pass by skipping.
func Unavailable(t testing.TB, what string, err error) {
	t.Helper()
	if os.Getenv("CI") != "" {
		t.Fatalf("%s is unreachable and CI is set: %v", what, err)
	}
	t.Skipf("SKIPPING: %s is unreachable (%v); run `make test` to start it", what, err)
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// ForEachDialect runs fn as a subtest on a fresh database of every engine.
func ForEachDialect(t *testing.T, fn func(t *testing.T, db *sqldb.DB)) {
	t.Helper()
	for _, d := range Dialects {
		t.Run(string(d), func(t *testing.T) { fn(t, Open(t, d)) })
	}
}

// QueryPlan returns the plan of q (already rebound) with args, one entry
// per plan row: SQLite's EXPLAIN QUERY PLAN details, or PostgreSQL's
// EXPLAIN lines (PostgresPlan with the planner's defaults). SQLite's
// planner is deterministic enough to assert on; PostgreSQL's chooses by
// statistics, so a test on it analyzes the tables it fills.
func QueryPlan(t testing.TB, db *sqldb.DB, q string, args ...any) []string {
	t.Helper()
	if db.Dialect == sqldb.Postgres {
		return PostgresPlan(t, db, nil, q, args...)
	}

	// EXPLAIN plans from the schema the connection last loaded, without
	// checking it is current (a query does check): read the schema on the
	// same connection first, so a pooled connection idle since before a
	// schema change plans with the change.
	ctx := context.Background()
	conn, err := db.Read.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	var n int
	if err := conn.QueryRowContext(ctx, `SELECT count(*) FROM sqlite_schema`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	rows, err := conn.QueryContext(ctx, `EXPLAIN QUERY PLAN `+q, args...)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()

	var plan []string
	for rows.Next() {
		var id, parent, unused int
		var detail string
		if err := rows.Scan(&id, &parent, &unused, &detail); err != nil {
			t.Fatal(err)
		}
		plan = append(plan, detail)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return plan
}

// PostgresPlan returns PostgreSQL's EXPLAIN of q with args, a trimmed line
// per entry, planned in a read-only transaction after SET LOCAL of each
// setting (e.g. "enable_seqscan = off"). EXPLAIN without ANALYZE runs
// nothing, so a write statement can be explained too.
func PostgresPlan(t testing.TB, db *sqldb.DB, settings []string, q string, args ...any) []string {
	t.Helper()
	ctx := context.Background()
	tx, err := db.Read.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = tx.Rollback() }()

	for _, set := range settings {
		if _, err := tx.ExecContext(ctx, `SET LOCAL `+set); err != nil {
			t.Fatal(err)
		}
	}

	rows, err := tx.QueryContext(ctx, `EXPLAIN `+q, args...)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var plan []string
	for rows.Next() {
		var line string
		if err := rows.Scan(&line); err != nil {
			t.Fatal(err)
		}
		plan = append(plan, strings.TrimSpace(line))
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return plan
}

// VacuumCount is how many manual vacuums PostgreSQL counted of table (its
// statistics, updated by the vacuum itself).
func VacuumCount(t testing.TB, db *sqldb.DB, table string) int64 {
	t.Helper()
	var n int64
	if err := db.Read.QueryRowContext(context.Background(), `SELECT vacuum_count FROM pg_stat_user_tables WHERE relid = $1::regclass`, table).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// Holder is a transaction on a connection of its own that holds the locks
// a test took with Hold (PostgreSQL), and its backend's pid.
type Holder struct {
	Tx  *sql.Tx
	PID int
}

// Hold begins a write transaction, runs query in it (a row locked or
// changed) and leaves it open for the test to commit or roll back; the
// test's end rolls it back.
func Hold(t testing.TB, db *sqldb.DB, query string, args ...any) *Holder {
	t.Helper()
	ctx := context.Background()
	tx, err := db.Write.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tx.Rollback() })
	h := &Holder{Tx: tx}
	if err := tx.QueryRowContext(ctx, `SELECT pg_backend_pid()`).Scan(&h.PID); err != nil {
		t.Fatal(err)
	}
	if _, err := tx.ExecContext(ctx, query, args...); err != nil {
		t.Fatal(err)
	}
	return h
}

// AwaitBackend polls query, which returns the pid of the backend the test
// looks for or no row, until it finds one, and returns that pid. It fails
// the test if ended delivers first (the work under test ended instead of
// waiting) or after 10 s.
func AwaitBackend(t testing.TB, db *sqldb.DB, ended <-chan error, query string, args ...any) int {
	t.Helper()
	var pid int
	testkit.Eventually(t, 10*time.Second, "a backend ("+query+")", func() bool {
		select {
		case err := <-ended:
			t.Fatalf("the work ended before a backend showed (%s): %v", query, err)
		default:
		}
		err := db.Read.QueryRow(query, args...).Scan(&pid)
		if errors.Is(err, sql.ErrNoRows) {
			return false
		}
		if err != nil {
			t.Fatal(err)
		}
		return true
	})
	return pid
}

// BlockedBy is AwaitBackend for a backend waiting on a lock that backend
// holder holds (pg_blocking_pids).
func BlockedBy(t testing.TB, db *sqldb.DB, holder int, ended <-chan error) int {
	t.Helper()
	return AwaitBackend(t, db, ended, `SELECT pid FROM pg_stat_activity WHERE $1 = ANY(pg_blocking_pids(pid)) LIMIT 1`, holder)
}
