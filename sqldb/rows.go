package sqldb

import (
	"context"
	"database/sql"
	"fmt"
	"math/bits"
	"strings"
)

// Statements over many rows: a multi-row INSERT, or an UPDATE … FROM
// (VALUES …). Their text depends on the number of rows, so a batch of n
// rows was parsed anew every time (4% of serve's CPU under SQLite ingest,
// issue 19's profile). On SQLite, once PrepareRows prepared a statement in
// every size of 1, 2, 4, … maxChunkRows rows, it runs in chunks of those
// sizes: a batch of n rows costs at most log2(n)+1 executions of prepared
// statements and no parse. Unprepared, and on PostgreSQL (where a chunk is
// a round trip, and pgx already caches the server-side statement by its
// text), the rows go in one statement.

// maxChunkRows is the largest chunk on SQLite: 64 rows of 15 columns are
// 960 bound parameters, far below SQLite's limit of 32,766.
const maxChunkRows = 64

// MultiRow turns q, a statement whose last "VALUES (?, …)" group holds
// cols placeholders, into one over n rows (their arguments in row order):
// the group is repeated and the rest of q kept. n == 1 returns q itself, so
// a single row keeps its prepared statement (PrepareWrite).
func MultiRow(q string, cols, n int) string {
	if n == 1 {
		return q
	}

	start := strings.LastIndex(q, "VALUES")
	end := start + strings.IndexByte(q[start:], ')') + 1
	group := "(" + Placeholders(cols) + ")"
	return q[:start] + "VALUES " + strings.TrimSuffix(strings.Repeat(group+",", n), ",") + q[end:]
}

type rowsKey struct {
	q    string
	rows int
}

// rowsStmt is a statement's text for one chunk size (as written and
// rebound for the dialect), and its prepared form once PrepareRows or
// PrepareWrite made it.
type rowsStmt struct {
	text, bound string
	stmt        *sql.Stmt
}

// chunkRows is the size of the next chunk of n rows on SQLite.
func chunkRows(n int) int {
	return 1 << (bits.Len(uint(min(n, maxChunkRows))) - 1)
}

// PrepareRows prepares q (see MultiRow) for every chunk size ExecRows and
// QueryRows use. Like PrepareWrite it must run outside any transaction.
func (db *DB) PrepareRows(ctx context.Context, q string, cols int) error {
	if db.Dialect != SQLite {
		return db.PrepareWrite(ctx, q)
	}

	for k := 1; k <= maxChunkRows; k *= 2 {
		text := db.rowsText(q, cols, k).text
		s, err := db.stmt(ctx, db.Write, text)
		if err != nil {
			return err
		}
		db.stmts.mu.Lock()
		db.stmts.rows[rowsKey{q, k}] = rowsStmt{text: text, bound: db.Rebind(text), stmt: s}
		db.stmts.mu.Unlock()
	}
	return nil
}

// rowsText returns q over k rows, prepared if PrepareRows saw it.
func (db *DB) rowsText(q string, cols, k int) rowsStmt {
	db.stmts.mu.Lock()
	defer db.stmts.mu.Unlock()
	if db.stmts.rows == nil {
		db.stmts.rows = map[rowsKey]rowsStmt{}
	}
	key := rowsKey{q, k}
	if r, ok := db.stmts.rows[key]; ok {
		return r
	}
	text := MultiRow(q, cols, k)
	r := rowsStmt{text: text, bound: db.Rebind(text), stmt: db.stmts.write[text]}
	if k <= maxChunkRows {
		db.stmts.rows[key] = r
	}
	return r
}

// chunks calls run for each chunk of args (rows of cols arguments): on
// SQLite in chunks of the sizes PrepareRows prepared; unprepared, or on
// PostgreSQL, all in one (a chunk would be one more parse or round trip).
func (db *DB) chunks(q string, cols int, args []any, run func(r rowsStmt, args []any) error) error {
	if cols <= 0 || len(args) == 0 || len(args)%cols != 0 {
		return fmt.Errorf("sqldb: %d arguments are not rows of %d", len(args), cols)
	}

	prepared := db.Dialect == SQLite && db.rowsText(q, cols, 2).stmt != nil // PrepareRows prepares every size at once
	for n := len(args) / cols; n > 0; {
		k := n
		if prepared {
			k = chunkRows(n)
		}
		if err := run(db.rowsText(q, cols, k), args[:k*cols]); err != nil {
			return err
		}
		args, n = args[k*cols:], n-k
	}
	return nil
}

// ExecRows runs q (see MultiRow) in tx over the rows in args, each row
// cols arguments.
func (db *DB) ExecRows(ctx context.Context, tx *sql.Tx, q string, cols int, args []any) error {
	return db.chunks(q, cols, args, func(r rowsStmt, args []any) error {
		var err error
		if r.stmt != nil {
			_, err = tx.StmtContext(ctx, r.stmt).ExecContext(ctx, args...)
		} else {
			_, err = tx.ExecContext(ctx, r.bound, args...)
		}
		return err
	})
}

// QueryRows is ExecRows for a statement that returns rows (RETURNING):
// scan is called for each row returned, chunk after chunk.
func (db *DB) QueryRows(ctx context.Context, tx *sql.Tx, q string, cols int, args []any, scan func(*sql.Rows) error) error {
	return db.chunks(q, cols, args, func(r rowsStmt, args []any) error {
		if r.stmt != nil {
			return ScanRows(tx.StmtContext(ctx, r.stmt).QueryContext(ctx, args...))(scan)
		}
		return ScanRows(tx.QueryContext(ctx, r.bound, args...))(scan)
	})
}

// ScanRows takes a query's result, (rows, err), and returns a function that
// passes each row to scan and closes the rows: ScanRows(q.Query(…))(scan).
func ScanRows(rows *sql.Rows, err error) func(scan func(*sql.Rows) error) error {
	return func(scan func(*sql.Rows) error) error {
		if err != nil {
			return err
		}

		defer rows.Close()
		for rows.Next() {
			if err := scan(rows); err != nil {
				return err
			}
		}
		return rows.Err()
	}
}
