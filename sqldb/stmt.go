package sqldb

import (
	"context"
	"database/sql"
	"fmt"
	"sync"
)

// Prepared statements, cached per query text. SQLite spends a large share of
// a small write parsing SQL (seen in CPU profiles of contact ingest);
// database/sql keeps a prepared statement per connection, so preparing once
// per pool and rebinding into transactions with tx.StmtContext removes the
// parse from the hot path on both engines.
type stmtCache struct {
	mu    sync.Mutex
	read  map[string]*sql.Stmt
	write map[string]*sql.Stmt
	rows  map[rowsKey]rowsStmt // statements over many rows (rows.go)
}

func (db *DB) stmt(ctx context.Context, pool *sql.DB, q string) (*sql.Stmt, error) {
	db.stmts.mu.Lock()
	defer db.stmts.mu.Unlock()
	m := &db.stmts.read
	if pool == db.Write {
		m = &db.stmts.write
	}
	if *m == nil {
		*m = map[string]*sql.Stmt{}
	}
	if s, ok := (*m)[q]; ok {
		return s, nil
	}
	s, err := pool.PrepareContext(ctx, db.Rebind(q))
	if err != nil {
		return nil, classify(fmt.Errorf("prepare: %w", err))
	}
	(*m)[q] = s
	return s, nil
}

// PrepareWrite prepares statements for use inside write transactions. It
// must run outside any transaction: on SQLite the write pool has a single
// connection, which an open transaction holds.
func (db *DB) PrepareWrite(ctx context.Context, queries ...string) error {
	for _, q := range queries {
		if _, err := db.stmt(ctx, db.Write, q); err != nil {
			return err
		}
	}
	return nil
}

func (db *DB) writeStmt(q string) *sql.Stmt {
	db.stmts.mu.Lock()
	defer db.stmts.mu.Unlock()
	return db.stmts.write[q]
}

// Exec runs a statement (written with ? placeholders) in tx, prepared if
// PrepareWrite saw it, else parsed on the spot. It never prepares on the
// pool itself, which would wait for the connection tx holds.
func (db *DB) Exec(ctx context.Context, tx *sql.Tx, q string, args ...any) (sql.Result, error) {
	if s := db.writeStmt(q); s != nil {
		return tx.StmtContext(ctx, s).ExecContext(ctx, args...)
	}
	return tx.ExecContext(ctx, db.Rebind(q), args...)
}

// QueryRowTx is Exec's single-row query counterpart.
func (db *DB) QueryRowTx(ctx context.Context, tx *sql.Tx, q string, args ...any) *sql.Row {
	if s := db.writeStmt(q); s != nil {
		return tx.StmtContext(ctx, s).QueryRowContext(ctx, args...)
	}
	return tx.QueryRowContext(ctx, db.Rebind(q), args...)
}

// RowQuerier is a transaction or a connection pool, as far as a single-row
// query goes.
type RowQuerier interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// QueryRowIn is QueryRowTx for readers that run in a write transaction or
// on a pool: in a transaction the statement PrepareWrite saw is used (the
// write path's reads of the schedule version, the data key and the active
// holds were parsed anew in every contact write: issue 19's SQLite
// profile); on a pool, or unprepared, the query is parsed on the spot.
func (db *DB) QueryRowIn(ctx context.Context, q RowQuerier, query string, args ...any) *sql.Row {
	if tx, ok := q.(*sql.Tx); ok {
		return db.QueryRowTx(ctx, tx, query, args...)
	}
	return q.QueryRowContext(ctx, db.Rebind(query), args...)
}

// QueryTx is QueryRowTx for many rows.
func (db *DB) QueryTx(ctx context.Context, tx *sql.Tx, q string, args ...any) (*sql.Rows, error) {
	if s := db.writeStmt(q); s != nil {
		return tx.StmtContext(ctx, s).QueryContext(ctx, args...)
	}
	return tx.QueryContext(ctx, db.Rebind(q), args...)
}

// QueryRow runs a cached single-row query on the read pool.
func (db *DB) QueryRow(ctx context.Context, q string, args ...any) *sql.Row {
	s, err := db.stmt(ctx, db.Read, q)
	if err != nil {
		return db.Read.QueryRowContext(ctx, db.Rebind(q), args...)
	}
	return s.QueryRowContext(ctx, args...)
}

func (db *DB) closeStmts() {
	db.stmts.mu.Lock()
	defer db.stmts.mu.Unlock()
	for _, m := range []map[string]*sql.Stmt{db.stmts.read, db.stmts.write} {
		for _, s := range m {
			s.Close()
		}
	}
	db.stmts.read, db.stmts.write, db.stmts.rows = nil, nil, nil
}

// CachedRead is the read pool as a Querier whose queries are prepared once
// per query text (as QueryRow): for hot reads of a few fixed shapes, such
// as the exact customer lookup, whose parse would otherwise cost more than
// the indexed read itself on SQLite.
func (db *DB) CachedRead() Querier { return cachedRead{db} }

type cachedRead struct{ db *DB }

func (c cachedRead) QueryContext(ctx context.Context, q string, args ...any) (*sql.Rows, error) {
	s, err := c.db.stmt(ctx, c.db.Read, q)
	if err != nil {
		return c.db.Read.QueryContext(ctx, c.db.Rebind(q), args...)
	}
	return s.QueryContext(ctx, args...)
}
