package audit

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/casevault/casevault/sqldb"
)

const insertEvent = `INSERT INTO audit_events (seq, at, actor_id, actor_name, role, action, target_type, target_id,
 request_id, client_ip, outcome, detail, prev_hash, hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`

// AppendTx appends ev inside the caller's write transaction, so that a change
// and its audit event commit (or roll back) together. It returns the event as
// stored (Seq, Time, PrevHash, Hash filled in). Log.AppendTx is the same with
// the Log's clock and prepared statements.
//
// Appends are serialized on the audit_head row: on PostgreSQL it is locked
// FOR UPDATE until the transaction ends (replicas queue there, and the chain
// stays one chain); on SQLite the write transaction (BEGIN IMMEDIATE) already
// holds the database write lock. Call AppendTx as the last statement before
// commit, so the lock is held briefly and always taken last (no lock-order
// deadlocks with other rows). tx must be a READ COMMITTED (default)
// transaction on PostgreSQL.
func AppendTx(ctx context.Context, tx *sql.Tx, d sqldb.Dialect, ev Event) (Event, error) {
	return appendOne(ctx, tx, runner{d: d}, ev, time.Now)
}

// AppendTx is the package-level AppendTx using the Log's clock and, after
// Prepare, prepared statements.
//
// With WithSequencer the event is appended unsequenced instead (see
// sequencer.go): no shared row is touched, and it comes back with Pending
// set and no Seq or hashes, which the sequencer assigns after the commit.
func (l *Log) AppendTx(ctx context.Context, tx *sql.Tx, ev Event) (Event, error) {
	ev, err := normalizeCaller(ev, l.now)
	if err != nil {
		return Event{}, err
	}
	evs := []Event{ev}
	if err := l.appendEvents(ctx, tx, evs); err != nil {
		return Event{}, err
	}
	return evs[0], nil
}

// appendEvents appends normalized events the way the Log is set up to:
// into the chain under the head lock, or unsequenced for the sequencer.
func (l *Log) appendEvents(ctx context.Context, tx *sql.Tx, evs []Event) error {
	if l.deferred {
		return appendPending(ctx, tx, l.runner(), evs)
	}
	return appendNormalized(ctx, tx, l.runner(), evs)
}

// Prepare prepares the statements of an append once per pool, which saves
// parsing SQL in every audited write. Call it at start-up, outside any
// transaction; without it appends still work.
func (l *Log) Prepare(ctx context.Context) error {
	qs, rows, cols := []string{lockHeadQuery(l.db.Dialect), updateHead}, insertEvent, 14
	if l.deferred {
		qs, rows, cols = nil, insertPending, 12
	}
	if err := l.db.PrepareWrite(ctx, qs...); err != nil {
		return fmt.Errorf("audit: prepare: %w", err)
	}
	if err := l.db.PrepareRows(ctx, rows, cols); err != nil {
		return fmt.Errorf("audit: prepare: %w", err)
	}
	return nil
}

func appendOne(ctx context.Context, tx *sql.Tx, r runner, ev Event, now func() time.Time) (Event, error) {
	ev, err := normalizeCaller(ev, now)
	if err != nil {
		return Event{}, err
	}
	evs := []Event{ev}
	if err := appendNormalized(ctx, tx, r, evs); err != nil {
		return Event{}, err
	}
	return evs[0], nil
}

// runner runs the append statements, through the prepared-statement cache of
// db when there is one.
type runner struct {
	d  sqldb.Dialect
	db *sqldb.DB
}

func (l *Log) runner() runner { return runner{d: l.db.Dialect, db: l.db} }

func (r runner) exec(ctx context.Context, tx *sql.Tx, q string, args ...any) error {
	var err error
	if r.db != nil {
		_, err = r.db.Exec(ctx, tx, q, args...)
	} else {
		_, err = tx.ExecContext(ctx, sqldb.Rebind(r.d, q), args...)
	}
	return err
}

// execRows runs q over rows of cols arguments (sqldb.ExecRows).
func (r runner) execRows(ctx context.Context, tx *sql.Tx, q string, cols int, args []any) error {
	if r.db != nil {
		return r.db.ExecRows(ctx, tx, q, cols, args)
	}
	_, err := tx.ExecContext(ctx, sqldb.Rebind(r.d, sqldb.MultiRow(q, cols, len(args)/cols)), args...)
	return err
}

func (r runner) queryRow(ctx context.Context, tx *sql.Tx, q string, args ...any) *sql.Row {
	if r.db != nil {
		return r.db.QueryRowTx(ctx, tx, q, args...)
	}
	return tx.QueryRowContext(ctx, sqldb.Rebind(r.d, q), args...)
}

// maxRowsPerInsert bounds a multi-row INSERT (14 columns × 100 rows stays
// far below both engines' limits on bound parameters).
const maxRowsPerInsert = 100

const updateHead = `UPDATE audit_head SET seq = ?, hash = ? WHERE id = 1`

func lockHeadQuery(d sqldb.Dialect) string {
	q := `SELECT seq, hash, checkpoint_seq, checkpoint_hash, checkpoint_at FROM audit_head WHERE id = 1`
	if d == sqldb.Postgres {
		q += ` FOR UPDATE`
	}
	return q
}

type head struct {
	seq, cpSeq, cpAt int64
	hash, cpHash     string
}

func lockHead(ctx context.Context, tx *sql.Tx, r runner) (head, error) {
	var h head
	if err := r.queryRow(ctx, tx, lockHeadQuery(r.d)).Scan(&h.seq, &h.hash, &h.cpSeq, &h.cpHash, &h.cpAt); err != nil {
		return head{}, fmt.Errorf("audit: read head: %w", err)
	}
	return h, nil
}

// appendNormalized chains and inserts already normalized events, filling in
// their Seq, PrevHash and Hash.
func appendNormalized(ctx context.Context, tx *sql.Tx, r runner, evs []Event) error {
	h, err := lockHead(ctx, tx, r)
	if err != nil {
		return err
	}

	seq, prev := h.seq, h.hash
	args := make([]any, 0, 14*min(len(evs), maxRowsPerInsert))
	for start := 0; start < len(evs); start += maxRowsPerInsert {
		chunk := evs[start:min(len(evs), start+maxRowsPerInsert)]
		args = args[:0]
		for i := range chunk {
			ev := &chunk[i]
			seq++
			ev.Seq, ev.PrevHash = seq, prev
			ev.Hash = ev.ComputeHash()
			args = append(args, ev.Seq, ev.Time.UnixMicro(), ev.ActorID, ev.ActorName, ev.Role, ev.Action,
				ev.TargetType, ev.TargetID, ev.RequestID, ev.ClientIP, ev.Outcome, string(ev.Detail),
				ev.PrevHash, ev.Hash)
			prev = ev.Hash
		}
		if err := r.execRows(ctx, tx, insertEvent, 14, args); err != nil {
			return fmt.Errorf("audit: insert events %d-%d: %w", chunk[0].Seq, seq, err)
		}
	}

	if err := r.exec(ctx, tx, updateHead, seq, prev); err != nil {
		return fmt.Errorf("audit: update head: %w", err)
	}

	return nil
}

// AppendManyTx appends several events in the caller's transaction under one
// head lock and one head update (bulk work such as a retention sweep, where
// one event per statement round would be the bottleneck on PostgreSQL);
// with WithSequencer, unsequenced like AppendTx.
func (l *Log) AppendManyTx(ctx context.Context, tx *sql.Tx, evs []Event) ([]Event, error) {
	if len(evs) == 0 {
		return nil, nil
	}
	out := make([]Event, len(evs))
	for i, ev := range evs {
		n, err := normalizeCaller(ev, l.now)
		if err != nil {
			return nil, err
		}
		out[i] = n
	}
	if err := l.appendEvents(ctx, tx, out); err != nil {
		return nil, err
	}
	return out, nil
}
