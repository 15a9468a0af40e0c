package sqldb

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"reflect"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/stdlib"
)

// A pipelined transaction (PostgreSQL) sends its statements in as few
// round trips as their results allow: BEGIN and every Exec wait in the
// connection and go out, in one pgx batch, with the next query or with
// the COMMIT. A round trip costs the 2-vCPU VM ~50 µs of CPU across
// client and server (pgbench, 32 clients: 10 round trips per transaction
// 0.50 ms of the machine, the same 10 statements in one pipeline 0.07 ms),
// and a contact batch made 10 of them for 8 contacts (issue 19).
//
// The price is what an Exec can tell its caller: nothing. Its error
// surfaces at the statement that sends it (a later query, or the commit),
// and its Result knows no row count (ErrDeferred). So a transaction is
// pipelined only when its caller asks (Pipelined) and treats any error as
// the whole transaction's: the contact batch, which then writes its
// contacts again one per plain transaction, each with its own verdict.

// ErrDeferred is the row count of an Exec in a pipelined transaction: it
// was not sent yet, so nothing is known of it.
var ErrDeferred = errors.New("sqldb: statement deferred to the transaction's next round trip")

type pipelinedKey struct{}

type prefetchKey struct{}

// Pipelined marks ctx so that a PostgreSQL transaction begun with it is
// pipelined (see above). Other engines ignore it.
func Pipelined(ctx context.Context) context.Context {
	return context.WithValue(ctx, pipelinedKey{}, true)
}

func pipelined(ctx context.Context) bool {
	on, _ := ctx.Value(pipelinedKey{}).(bool)
	return on
}

// Prefetch queues a read in tx, when tx is pipelined (PostgreSQL, begun
// with Pipelined), to go out with the transaction's next round trip, and
// keeps its rows: the transaction's first query of the same text and
// arguments then reads them without a round trip of its own. Anywhere
// else it does nothing, and that query runs when it is made. The rows are
// as of the round trip that carried the read, so Prefetch is for reads the
// transaction's own writes do not change. query is written with ?
// placeholders.
func (db *DB) Prefetch(ctx context.Context, tx *sql.Tx, query string, args ...any) error {
	if db.Dialect != Postgres || !pipelined(ctx) {
		return nil
	}
	if _, err := tx.ExecContext(context.WithValue(ctx, prefetchKey{}, true), db.Rebind(query), args...); err != nil {
		return fmt.Errorf("prefetch: %w", err)
	}
	return nil
}

// PgxConn is the pgx connection under a database/sql driver connection
// (sql.Conn.Raw), for the few paths that use pgx itself (COPY, raw rows).
func PgxConn(dc any) (*pgx.Conn, bool) {
	c, ok := dc.(*pipeConn)
	if !ok {
		return nil, false
	}
	return c.Conn.Conn(), true
}

// pipeConnector opens pgx's database/sql connections, wrapped so that
// they can pipeline.
type pipeConnector struct{ inner driver.Connector }

func (p pipeConnector) Connect(ctx context.Context) (driver.Conn, error) {
	dc, err := p.inner.Connect(ctx)
	if err != nil {
		return nil, err
	}
	sc, ok := dc.(*stdlib.Conn)
	if !ok {
		return dc, nil
	}
	return &pipeConn{Conn: sc}, nil
}

func (p pipeConnector) Driver() driver.Driver { return p.inner.Driver() }

// pipeConn is a pgx connection that holds back a pipelined transaction's
// statements (tx set) until a result is needed.
type pipeConn struct {
	*stdlib.Conn
	tx *pipeTx
}

type queued struct {
	sql      string
	args     []any
	prefetch bool // a read whose rows are kept (Prefetch)
}

// pipeTx is a pipelined transaction: queue holds what was not sent yet
// (BEGIN first, until the first round trip), fetched the rows of
// prefetched reads that no query has taken yet.
type pipeTx struct {
	c       *pipeConn
	ctx     context.Context
	queue   []queued
	fetched []fetched
	sent    bool // BEGIN went out: the server has a transaction to end
}

// asks tells whether q is a statement of query's text and args: the
// match between a query and a prefetched read.
func (q queued) asks(query string, args []any) bool {
	return q.sql == query && reflect.DeepEqual(q.args, args)
}

// fetched is a prefetched read and its rows.
type fetched struct {
	read queued
	rows *bufferedRows
}

func (c *pipeConn) BeginTx(ctx context.Context, opts driver.TxOptions) (driver.Tx, error) {
	if !pipelined(ctx) || opts.Isolation != driver.IsolationLevel(0) || opts.ReadOnly {
		return c.Conn.BeginTx(ctx, opts)
	}
	if c.tx != nil {
		return nil, errors.New("sqldb: a pipelined transaction is already open on this connection")
	}
	c.tx = &pipeTx{c: c, ctx: ctx, queue: []queued{{sql: "begin"}}}
	return c.tx, nil
}

func (c *pipeConn) ExecContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Result, error) {
	prefetch := ctx.Value(prefetchKey{}) != nil
	if c.tx == nil {
		if prefetch {
			return deferredResult{}, nil // not pipelined: the read is made when queried
		}
		return c.Conn.ExecContext(ctx, query, args)
	}
	c.tx.queue = append(c.tx.queue, queued{sql: query, args: values(args), prefetch: prefetch})
	return deferredResult{}, nil
}

func (c *pipeConn) QueryContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Rows, error) {
	if c.tx == nil {
		return c.Conn.QueryContext(ctx, query, args)
	}
	vals := values(args)
	if c.tx.queuedRead(query, vals) {
		br, err := c.tx.send(ctx, nil)
		if err != nil {
			return nil, err
		}
		if err := br.Close(); err != nil {
			return nil, err
		}
	}
	if r, ok := c.tx.take(query, vals); ok {
		return r, nil
	}
	if len(c.tx.queue) == 0 {
		return c.Conn.QueryContext(ctx, query, args)
	}
	return c.tx.flushQuery(ctx, query, vals)
}

func (c *pipeConn) PrepareContext(ctx context.Context, query string) (driver.Stmt, error) {
	st, err := c.Conn.PrepareContext(ctx, query)
	if err != nil {
		return nil, err
	}
	return &pipeStmt{Stmt: st, c: c, sql: query}, nil
}

func (c *pipeConn) Prepare(query string) (driver.Stmt, error) {
	return c.PrepareContext(context.Background(), query)
}

func (c *pipeConn) ResetSession(ctx context.Context) error {
	if c.tx != nil {
		return driver.ErrBadConn // a transaction left open: never reuse it
	}
	return c.Conn.ResetSession(ctx)
}

// pipeStmt runs a prepared statement through its connection, so that a
// pipelined transaction holds it back like any other (pgx finds the
// prepared statement by its text, in a batch as in a plain Exec).
type pipeStmt struct {
	driver.Stmt
	c   *pipeConn
	sql string
}

func (s *pipeStmt) ExecContext(ctx context.Context, args []driver.NamedValue) (driver.Result, error) {
	return s.c.ExecContext(ctx, s.sql, args)
}

func (s *pipeStmt) QueryContext(ctx context.Context, args []driver.NamedValue) (driver.Rows, error) {
	return s.c.QueryContext(ctx, s.sql, args)
}

func values(nv []driver.NamedValue) []any {
	args := make([]any, len(nv))
	for i, v := range nv {
		args[i] = v.Value
	}
	return args
}

type deferredResult struct{}

func (deferredResult) LastInsertId() (int64, error) { return 0, ErrDeferred }
func (deferredResult) RowsAffected() (int64, error) { return 0, ErrDeferred }

// send sends the queue, then last when set, in one batch, and reads the
// queue's results (keeping the prefetched reads' rows); the batch stays
// open for last's.
func (t *pipeTx) send(ctx context.Context, last *queued) (pgx.BatchResults, error) {
	b := &pgx.Batch{}
	for _, q := range t.queue {
		b.Queue(q.sql, q.args...)
	}
	if last != nil {
		b.Queue(last.sql, last.args...)
	}
	sending := t.queue
	t.queue, t.sent = t.queue[:0], true
	br := t.c.Conn.Conn().SendBatch(ctx, b)
	for _, q := range sending {
		var err error
		if q.prefetch {
			err = t.keep(br, q)
		} else {
			_, err = br.Exec()
		}
		if err != nil {
			_ = br.Close()
			return nil, err
		}
	}
	return br, nil
}

// keep reads a prefetched read's rows from br into t.fetched.
func (t *pipeTx) keep(br pgx.BatchResults, q queued) error {
	rows, err := br.Query()
	if err != nil {
		return err
	}
	defer rows.Close()

	r := &bufferedRows{cols: columnNames(rows)}
	for rows.Next() {
		row := make([]driver.Value, len(r.cols))
		if err := scanValues(rows, row); err != nil {
			return err
		}
		r.rows = append(r.rows, row)
	}
	if err := rows.Err(); err != nil {
		return err
	}
	t.fetched = append(t.fetched, fetched{read: q, rows: r})
	return nil
}

// queuedRead tells whether a prefetched read of query and args waits in
// the queue.
func (t *pipeTx) queuedRead(query string, args []any) bool {
	return slices.ContainsFunc(t.queue, func(q queued) bool {
		return q.prefetch && q.asks(query, args)
	})
}

// take returns, once, the rows prefetched for query and args.
func (t *pipeTx) take(query string, args []any) (*bufferedRows, bool) {
	i := slices.IndexFunc(t.fetched, func(f fetched) bool { return f.read.asks(query, args) })
	if i < 0 {
		return nil, false
	}
	r := t.fetched[i].rows
	t.fetched = slices.Delete(t.fetched, i, i+1)
	return r, true
}

// flushQuery sends what waits and query in one round trip and returns
// query's rows.
func (t *pipeTx) flushQuery(ctx context.Context, query string, args []any) (driver.Rows, error) {
	br, err := t.send(ctx, &queued{sql: query, args: args})
	if err != nil {
		return nil, err
	}
	rows, err := br.Query()
	if err != nil {
		_ = br.Close()
		return nil, err
	}
	// Read the first row now, as pgx's own driver does: database/sql asks
	// for the columns before the first Next.
	r := &pipeRows{rows: rows, br: br, preloaded: true, more: rows.Next()}
	if err := rows.Err(); err != nil {
		_ = r.Close()
		return nil, err
	}
	return r, nil
}

func (t *pipeTx) Commit() error {
	t.c.tx = nil
	br, err := t.send(t.ctx, &queued{sql: "commit"})
	if err == nil {
		_, err = br.Exec()
		if cerr := br.Close(); err == nil {
			err = cerr
		}
	}
	if err != nil {
		t.abort()
	}
	return err
}

func (t *pipeTx) Rollback() error {
	t.c.tx = nil
	if !t.sent {
		return nil // nothing reached the server
	}
	return t.abort()
}

// abort ends the server's transaction if one is still open (a statement
// of the batch failed, so the COMMIT behind it never ran).
func (t *pipeTx) abort() error {
	pc := t.c.Conn.Conn()
	if pc.IsClosed() || pc.PgConn().TxStatus() == 'I' {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(t.ctx), 5*time.Second)
	defer cancel()
	// The simple protocol: one round trip, no statement to prepare.
	_, err := pc.PgConn().Exec(ctx, "rollback").ReadAll()
	return err
}

// pipeRows are a pipelined query's rows, as database/sql values.
type pipeRows struct {
	rows      pgx.Rows
	br        pgx.BatchResults
	preloaded bool
	more      bool
	closed    bool
}

func (r *pipeRows) Columns() []string { return columnNames(r.rows) }

// columnNames are the names of rows' columns.
func columnNames(rows pgx.Rows) []string {
	fds := rows.FieldDescriptions()
	names := make([]string, len(fds))
	for i, fd := range fds {
		names[i] = fd.Name
	}
	return names
}

func (r *pipeRows) Close() error {
	if r.closed {
		return nil
	}
	r.closed = true
	r.rows.Close()
	err := r.rows.Err()
	if cerr := r.br.Close(); err == nil {
		err = cerr
	}
	return err
}

func (r *pipeRows) Next(dest []driver.Value) error {
	if r.preloaded {
		r.preloaded = false
	} else {
		r.more = r.rows.Next()
	}
	if !r.more {
		if err := r.rows.Err(); err != nil {
			return err
		}
		return io.EOF
	}
	return scanValues(r.rows, dest)
}

// scanValues puts rows' current row in dest as database/sql values
// (driverValue).
func scanValues(rows pgx.Rows, dest []driver.Value) error {
	vals, err := rows.Values()
	if err != nil {
		return err
	}
	fds := rows.FieldDescriptions()
	for i, v := range vals {
		if dest[i], err = driverValue(v); err != nil {
			return fmt.Errorf("column %s: %w", fds[i].Name, err)
		}
	}
	return nil
}

// bufferedRows are a prefetched read's rows, read off the wire already.
type bufferedRows struct {
	cols []string
	rows [][]driver.Value
}

func (r *bufferedRows) Columns() []string { return r.cols }

func (r *bufferedRows) Close() error { return nil }

func (r *bufferedRows) Next(dest []driver.Value) error {
	if len(r.rows) == 0 {
		return io.EOF
	}
	copy(dest, r.rows[0])
	r.rows = r.rows[1:]
	return nil
}

// driverValue turns a value pgx decoded into one database/sql scans:
// the types of the columns a pipelined transaction reads (integers, text,
// bytes, booleans, times). Anything else is refused rather than guessed.
func driverValue(v any) (driver.Value, error) {
	switch v := v.(type) {
	case nil, int64, float64, bool, []byte, string, time.Time:
		return v, nil
	case int32:
		return int64(v), nil
	case int16:
		return int64(v), nil
	case float32:
		return float64(v), nil
	case pgtype.Numeric:
		return v.Value()
	}
	return nil, fmt.Errorf("sqldb: a pipelined query cannot return %T", v)
}
