// Package sqldb opens the relational database behind casevault (SQLite by
// default, PostgreSQL when a postgres:// URL is given), applies the embedded
// schema migrations, and hides the few dialect differences the stores need.
package sqldb

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/stdlib"
	"modernc.org/sqlite" // also registers the "sqlite" driver
	sqlite3 "modernc.org/sqlite/lib"
)

// Dialect names the SQL engine.
type Dialect string

const (
	SQLite   Dialect = "sqlite"
	Postgres Dialect = "postgres"
)

//go:embed migrations
var migrationsFS embed.FS

// ErrUnavailable marks a database that cannot be reached; the API answers 503.
var ErrUnavailable = errors.New("database unavailable")

// DB is an open, migrated database. Writes go through Write: on SQLite that
// pool has a single connection, because SQLite serializes writers anyway and
// queuing in Go is cheaper than spinning on SQLITE_BUSY.
type DB struct {
	Dialect Dialect
	// Read serves queries; on PostgreSQL it is the same pool as Write.
	Read *sql.DB
	// Write serves transactions that change data.
	Write *sql.DB
	url   string
	batch *batcher // SQLite (and PostgreSQL with SetTxPrologue): group commit
	// prologue starts every write transaction that is not group-committed
	// (SetPrologue).
	prologue func(ctx context.Context, tx *sql.Tx) error
	stmts    stmtCache
	ckpt     *checkpointer // SQLite: WAL checkpoints in the background
}

// SQLiteReadConns is the size of a SQLite database's read pool (DB.Read);
// a full restore closes its idle connections for a while (see
// archive/backup) and sets them back to this.
const SQLiteReadConns = 8

// Config says where the database is.
type Config struct {
	// URL is a postgres:// URL; empty means SQLite at Path.
	URL string
	// Path is the SQLite file, used when URL is empty.
	Path string
	// Synchronous is SQLite's synchronous pragma; FULL (the default) makes
	// every acknowledged commit survive power loss, not only a process kill.
	Synchronous string
	// MaxOpenConns bounds the PostgreSQL pool (default 16).
	MaxOpenConns int
	// DialFunc, when set, opens PostgreSQL's connections (tests count the
	// round trips of a transaction through it).
	DialFunc pgconn.DialFunc
}

// Open connects and runs pending migrations.
func Open(ctx context.Context, cfg Config) (*DB, error) {
	db, err := open(ctx, cfg)
	if err != nil {
		return nil, err
	}
	if err := db.Migrate(ctx); err != nil {
		db.Close()
		return nil, err
	}

	// Only now: a read connection the pass opened during the migrations
	// would keep the schema it loaded then for EXPLAIN, which plans from
	// the connection's schema without checking it is current (a query
	// plan test on SQLite saw an index a later migration had replaced).
	if db.Dialect == SQLite {
		db.ckpt = newCheckpointer(db.Read, checkpointEvery)
	}
	return db, nil
}

func open(ctx context.Context, cfg Config) (*DB, error) {
	if strings.HasPrefix(cfg.URL, "postgres://") || strings.HasPrefix(cfg.URL, "postgresql://") {
		pc, err := pgx.ParseConfig(cfg.URL)
		if err != nil {
			return nil, fmt.Errorf("open postgres: %w", err) // pgconn redacts the password
		}
		if cfg.DialFunc != nil {
			pc.DialFunc = cfg.DialFunc
		}
		pool := sql.OpenDB(pipeConnector{inner: stdlib.GetConnector(*pc)})

		n := cfg.MaxOpenConns
		if n <= 0 {
			n = 16
		}
		pool.SetMaxOpenConns(n)
		pool.SetMaxIdleConns(n)
		pool.SetConnMaxIdleTime(5 * time.Minute)

		pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		if err := pool.PingContext(pctx); err != nil {
			pool.Close()
			return nil, fmt.Errorf("%w: postgres: %w", ErrUnavailable, err)
		}
		return &DB{Dialect: Postgres, Read: pool, Write: pool, url: cfg.URL}, nil
	}

	if cfg.URL != "" {
		return nil, fmt.Errorf("database URL %q: only postgres:// URLs are supported (leave it empty for SQLite)", redact(cfg.URL))
	}
	if cfg.Path == "" {
		return nil, errors.New("sqlite: no database path")
	}

	if err := os.MkdirAll(filepath.Dir(cfg.Path), 0o700); err != nil {
		return nil, fmt.Errorf("sqlite: %w", err)
	}
	if err := privateDBFiles(cfg.Path); err != nil {
		return nil, fmt.Errorf("sqlite: %w", err)
	}

	syncMode := cfg.Synchronous
	if syncMode == "" {
		syncMode = "FULL"
	}
	switch strings.ToUpper(syncMode) {
	case "FULL", "NORMAL", "EXTRA":
	default:
		return nil, fmt.Errorf("sqlite: synchronous must be FULL, NORMAL or EXTRA, not %q", syncMode)
	}

	dsn := func(txlock string) string {
		return "file:" + cfg.Path + "?_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)" +
			"&_pragma=synchronous(" + syncMode + ")&_pragma=foreign_keys(ON)&_pragma=temp_store(MEMORY)&_txlock=" + txlock
	}

	// The writer checkpoints only as a backstop: the background pass
	// does the copying (checkpoint.go).
	w, err := sql.Open("sqlite", dsn("immediate")+"&_pragma=wal_autocheckpoint("+strconv.Itoa(writerCheckpointPages)+")")
	if err != nil {
		return nil, fmt.Errorf("open sqlite: %w", err)
	}
	w.SetMaxOpenConns(1)
	w.SetMaxIdleConns(1)
	w.SetConnMaxLifetime(0)
	if err := pingSQLite(ctx, w); err != nil {
		w.Close()
		return nil, fmt.Errorf("%w: sqlite %s: %w", ErrUnavailable, cfg.Path, err)
	}

	r, err := sql.Open("sqlite", dsn("deferred")+"&_pragma=query_only(1)")
	if err != nil {
		w.Close()
		return nil, fmt.Errorf("open sqlite: %w", err)
	}
	r.SetMaxOpenConns(SQLiteReadConns)
	r.SetMaxIdleConns(SQLiteReadConns)
	return &DB{Dialect: SQLite, Read: r, Write: w, url: cfg.Path, batch: newBatcher(w, nil)}, nil
}

// pingSQLite opens the first connection, retrying while SQLite answers
// SQLITE_BUSY: switching a new file to WAL needs an exclusive lock, and
// SQLite returns BUSY for it without calling the busy handler, so replicas
// starting at once on an empty file would otherwise fail at random.
func pingSQLite(ctx context.Context, db *sql.DB) error {
	deadline := time.Now().Add(10 * time.Second)
	wait := 5 * time.Millisecond
	for {
		err := db.PingContext(ctx)
		var se *sqlite.Error
		if err == nil || !errors.As(err, &se) || se.Code()&0xff != sqlite3.SQLITE_BUSY || time.Now().After(deadline) {
			return err
		}

		select {
		case <-ctx.Done():
			return err
		case <-time.After(wait):
		}
		wait = min(2*wait, 200*time.Millisecond)
	}
}

// privateDBFiles creates the database file 0600 before SQLite does (SQLite
// would create it 0644 less the umask) and tightens an existing one and
// its -wal and -shm files: SQLite gives those the database file's mode.
func privateDBFiles(path string) error {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	for _, p := range []string{path, path + "-wal", path + "-shm"} {
		fi, err := os.Stat(p)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return err
		}
		if fi.Mode().Perm()&0o077 != 0 {
			if err := os.Chmod(p, 0o600); err != nil {
				return err
			}
		}
	}
	return nil
}

// Close closes both pools.
func (db *DB) Close() error {
	if db.batch != nil {
		db.batch.close()
	}
	if db.ckpt != nil {
		db.ckpt.close()
	}
	db.closeStmts()
	err := db.Write.Close()
	if db.Read != db.Write {
		err = errors.Join(err, db.Read.Close())
	}
	return err
}

// Ping checks that the database answers.
func (db *DB) Ping(ctx context.Context) error {
	if err := db.Read.PingContext(ctx); err != nil {
		return fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	return nil
}

// Rebind turns the ? placeholders every query is written with into $N for
// PostgreSQL. Queries never contain a literal '?'.
func (db *DB) Rebind(q string) string { return Rebind(db.Dialect, q) }

// Rebind is the dialect-level form of DB.Rebind.
func Rebind(d Dialect, q string) string {
	if d != Postgres || !strings.Contains(q, "?") {
		return q
	}
	var b strings.Builder
	b.Grow(len(q) + 8)
	n := 0
	for i := 0; i < len(q); i++ {
		if q[i] == '?' {
			n++
			b.WriteByte('$')
			b.WriteString(strconv.Itoa(n))
			continue
		}
		b.WriteByte(q[i])
	}
	return b.String()
}

// InTx runs fn in a write transaction and commits it when fn returns nil.
// On SQLite, concurrent calls share one commit (see batch.go); fn then runs
// in a savepoint and must not call InTx itself.
func (db *DB) InTx(ctx context.Context, fn func(tx *sql.Tx) error) error {
	if db.batch != nil {
		return db.batch.submit(ctx, fn)
	}
	return plainTx(ctx, db.Write, db.prologue, fn)
}

// SetTxPrologue makes every write transaction start with fn, and on
// PostgreSQL turns on group commit (see batch.go). Call it once, before the
// database is used concurrently.
func (db *DB) SetTxPrologue(fn func(ctx context.Context, tx *sql.Tx) error) {
	if db.batch != nil {
		db.batch.prologue = fn
		return
	}
	db.batch = newBatcher(db.Write, fn)
}

// SetPrologue makes every write transaction start with fn, keeping
// PostgreSQL's transactions concurrent (one connection each, no group
// commit: the server already shares WAL flushes between concurrent
// commits). On SQLite it is SetTxPrologue. Call it once, before the
// database is used concurrently.
func (db *DB) SetPrologue(fn func(ctx context.Context, tx *sql.Tx) error) {
	if db.batch != nil {
		db.batch.prologue = fn
		return
	}
	db.prologue = fn
}

func classify(err error) error {
	if err == nil || !IsOutage(err) {
		return err
	}
	return fmt.Errorf("%w: %w", ErrUnavailable, err)
}

// Fail wraps a database error with what was being done, marking it
// ErrUnavailable (the API answers 503 with Retry-After) only when it is an
// outage. It is the one place that decides what an outage looks like.
func Fail(what string, err error) error {
	if err == nil {
		return nil
	}
	if IsOutage(err) {
		return fmt.Errorf("%s: %w: %w", what, ErrUnavailable, err)
	}
	return fmt.Errorf("%s: %w", what, err)
}

// ErrBadRow marks a stored value that was read but does not decode (a JSON
// column that does not parse): a data error no retry fixes. Readers that
// decode as they scan wrap it, so that Fail does not call it an outage.
var ErrBadRow = errors.New("stored value does not decode")

// IsOutage reports whether err means the database could not do the work
// now but might later. Not an outage: a cancelled or timed-out request (the
// caller gave up), an error already marked ErrUnavailable, a stored value
// that does not decode (ErrBadRow), and a PostgreSQL data exception
// (SQLSTATE class 22: a NUL, invalid UTF-8, an out-of-range value), which no
// retry can fix.
func IsOutage(err error) bool {
	var pg *pgconn.PgError
	switch {
	case err == nil, errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded), errors.Is(err, ErrUnavailable), errors.Is(err, ErrBadRow):
		return false
	case errors.As(err, &pg) && strings.HasPrefix(pg.Code, "22"):
		return false
	}
	return true
}

// Querier is what Collect reads from: a *sql.DB (db.Read) or a *sql.Tx.
type Querier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

// Collect runs a query (already rebound for the dialect) and scans every
// row with scan, closing the rows whatever happens.
func Collect[T any](ctx context.Context, q Querier, query string, args []any, scan func(*sql.Rows) (T, error)) ([]T, error) {
	rows, err := q.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []T
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	return out, rows.Close()
}

// Page reads one page of a keyset-paginated list: query (already rebound)
// must end in "LIMIT ?", which Page binds to limit+1 after args so as to
// learn whether another page follows without a second query. It returns at
// most limit items, always a non-nil slice, and more when the next page is
// not empty; the caller makes the cursor from the last item.
func Page[T any](ctx context.Context, q Querier, query string, args []any, limit int, scan func(*sql.Rows) (T, error)) (items []T, more bool, err error) {
	items, err = Collect(ctx, q, query, append(args[:len(args):len(args)], limit+1), scan)
	if err != nil {
		return nil, false, err
	}
	if len(items) > limit {
		return items[:limit], true, nil
	}
	if items == nil {
		items = []T{}
	}
	return items, false, nil
}

// migrationLockKey is the PostgreSQL advisory lock class of migrations;
// the second key is the schema, so installations (and test runs) in
// separate schemas of one database do not wait for each other.
const migrationLockKey = 7345001

// Migrate applies every embedded migration not yet recorded, each in its
// own transaction. Migrations are numbered NNNN_name.sql per dialect.
//
// On PostgreSQL the migration lock is taken before anything else, the
// creation of the migrations table included: replicas starting at once on
// an empty database otherwise both create it, and the loser fails on
// PostgreSQL's catalog (duplicate pg_type key) rather than waiting. The
// lock is a session lock on one connection that runs every migration, so
// it is held from the first statement to the last. SQLite needs none: its
// write transactions are immediate and serialize every process.
func (db *DB) Migrate(ctx context.Context) error {
	if db.Dialect != Postgres {
		return db.migrate(ctx, db.Write.ExecContext, db.InTx)
	}

	conn, err := db.Write.Conn(ctx)
	if err != nil {
		return fmt.Errorf("migrate: %w", classify(err))
	}
	defer conn.Close()

	if _, err := conn.ExecContext(ctx, `SELECT pg_advisory_lock($1, hashtext(current_schema()))`, migrationLockKey); err != nil {
		return fmt.Errorf("migrate: lock: %w", classify(err))
	}
	defer func() {
		uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		if _, err := conn.ExecContext(uctx, `SELECT pg_advisory_unlock($1, hashtext(current_schema()))`, migrationLockKey); err != nil {
			// The lock must not outlive the migration: drop the
			// connection, and the server frees it.
			_ = conn.Raw(func(any) error { return driver.ErrBadConn })
		}
	}()

	inTx := func(ctx context.Context, fn func(tx *sql.Tx) error) error {
		return connTx(ctx, conn, fn)
	}
	return db.migrate(ctx, conn.ExecContext, inTx)
}

// connTx runs fn in a transaction on one connection.
func connTx(ctx context.Context, conn *sql.Conn, fn func(tx *sql.Tx) error) error {
	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if err := fn(tx); err != nil {
		_ = tx.Rollback()
		return err
	}
	return tx.Commit()
}

func (db *DB) migrate(ctx context.Context, exec func(ctx context.Context, q string, args ...any) (sql.Result, error),
	inTx func(ctx context.Context, fn func(tx *sql.Tx) error) error) error {
	create := `CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)`
	if _, err := exec(ctx, create); err != nil {
		return fmt.Errorf("migrate: %w", classify(err))
	}

	dir := "migrations/" + string(db.Dialect)
	entries, err := fs.ReadDir(migrationsFS, dir)
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}

	sort.Slice(entries, func(i, j int) bool { return entries[i].Name() < entries[j].Name() })
	for _, e := range entries {
		name := e.Name()
		if !strings.HasSuffix(name, ".sql") {
			continue
		}

		v, err := strconv.Atoi(strings.SplitN(name, "_", 2)[0])
		if err != nil {
			return fmt.Errorf("migrate: bad migration file name %q", name)
		}
		body, err := migrationsFS.ReadFile(dir + "/" + name)
		if err != nil {
			return fmt.Errorf("migrate: %w", err)
		}

		err = inTx(ctx, func(tx *sql.Tx) error {
			var n int
			if err := tx.QueryRowContext(ctx, db.Rebind(`SELECT COUNT(*) FROM schema_migrations WHERE version = ?`), v).Scan(&n); err != nil {
				return err
			}
			if n > 0 {
				return nil
			}
			if _, err := tx.ExecContext(ctx, string(body)); err != nil {
				return fmt.Errorf("%s: %w", name, err)
			}
			_, err := tx.ExecContext(ctx, db.Rebind(`INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)`),
				v, name, time.Now().UTC().Format(time.RFC3339Nano))
			return err
		})
		if err != nil {
			return fmt.Errorf("migrate: %w", err)
		}
	}
	return nil
}

// Version reports the highest applied migration.
func (db *DB) Version(ctx context.Context) (int, error) {
	var v sql.NullInt64
	if err := db.Read.QueryRowContext(ctx, `SELECT MAX(version) FROM schema_migrations`).Scan(&v); err != nil {
		return 0, fmt.Errorf("schema version: %w", err)
	}
	return int(v.Int64), nil
}

// redact hides a password in a URL for error messages and logs.
func redact(u string) string {
	at := strings.LastIndex(u, "@")
	scheme := strings.Index(u, "://")
	if at < 0 || scheme < 0 {
		return u
	}
	cred := u[scheme+3 : at]
	if i := strings.Index(cred, ":"); i >= 0 {
		return u[:scheme+3] + cred[:i] + ":***" + u[at:]
	}
	return u
}

// Redact is exported for logging configuration.
func Redact(u string) string { return redact(u) }
