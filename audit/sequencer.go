package audit

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/casevault/casevault/sqldb"
)

// Deferred sequencing (issue 19), the design of Certificate Transparency
// logs such as Trillian: with WithSequencer, a write transaction appends its
// event to audit_pending, unnumbered and unchained, touching no row another
// writer touches, so writers on every replica commit in parallel. The
// sequencer (one at a time across replicas) moves committed pending events
// into the chain in batches: it numbers them above the head, chains their
// hashes, inserts them into audit_events, deletes them from audit_pending
// and moves the head, all in one transaction. A kill at any point leaves
// each event in exactly one table: pending (the next pass sequences it) or
// chained (committed with the head that covers it).
//
// Why one at a time: on PostgreSQL a pass first takes a transaction-level
// advisory try-lock (a replica that does not get it skips the pass; the
// lock dies with the transaction or the session, so a killed sequencer
// holds nothing back), then the audit_head row lock, which Prune and the
// direct appends take too; each statement after that reads a fresh READ
// COMMITTED snapshot, so it sees every deletion the previous pass
// committed and never numbers an event twice. An event whose transaction
// commits late (after a pass that did not see it) is simply numbered by a
// later pass: the chain's order is the order of sequencing, not of
// appending, and nothing ever reads "everything below a number" from
// audit_pending, so a late commit cannot be skipped. On SQLite a pass is a
// write transaction, which excludes every other writer anyway.

// DefaultSequenceBatch bounds how many pending events one sequencing
// transaction moves into the chain.
const DefaultSequenceBatch = 2000

// DefaultSequenceInterval is how often the sequencer looks for pending
// events: the sequencing delay is about this plus one pass.
const DefaultSequenceInterval = 100 * time.Millisecond

// sequencerLockKey is the PostgreSQL advisory lock class of the sequencer;
// the second key is the schema, as for migrations.
const sequencerLockKey = 7345019

// Fault-injection points of a sequencing pass (WithFaultPoint): after the
// batch's events were inserted into the chain, and just before the commit.
const (
	FaultSequenceInserted     = "audit.sequence.inserted"
	FaultSequenceBeforeCommit = "audit.sequence.before_commit"
)

const insertPending = `INSERT INTO audit_pending (id, at, actor_id, actor_name, role, action, target_type, target_id,
 request_id, client_ip, outcome, detail) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`

const selectPending = `SELECT id, at, actor_id, actor_name, role, action, target_type, target_id,
 request_id, client_ip, outcome, detail FROM audit_pending`

// WithSequencer turns deferred sequencing on: appends go to audit_pending
// and a sequencer numbers and chains them (see above). every > 0 starts the
// Log's own sequencer, looking for pending events at that interval; 0 leaves
// sequencing to explicit Sequence calls.
func WithSequencer(every time.Duration) Option {
	return func(l *Log) {
		l.deferred = true
		l.seqEvery = every
	}
}

// WithFaultPoint calls fn at each fault-injection point of a sequencing
// pass (FaultSequence...), so that a test binary can kill itself there.
func WithFaultPoint(fn func(point string)) Option {
	return func(l *Log) { l.fault = fn }
}

// WithSequencedObserver calls fn, after each sequencing commit, with each
// event's delay from its time to that commit (a metric's histogram).
func WithSequencedObserver(fn func(delay time.Duration)) Option {
	return func(l *Log) { l.observe = fn }
}

// SequencerState is what this process's sequencer last did.
type SequencerState struct {
	// Sequenced counts the events this process moved into the chain.
	Sequenced int64 `json:"sequenced"`
	// LastPass is when its last pass ended; zero before the first.
	LastPass time.Time `json:"last_pass"`
	// LastError is the last pass's error, "" when it succeeded.
	LastError string `json:"last_error,omitempty"`
	// Vacuums counts this process's vacuums of audit_pending (sqldb.Churn);
	// VacuumError is the last one's error, "" when it succeeded. A failed
	// vacuum leaves sequencing correct, only slower: it is reported, and
	// does not make the replica unready.
	Vacuums     int64  `json:"vacuums"`
	VacuumError string `json:"vacuum_error,omitempty"`
}

// PendingStatus counts the events not yet sequenced.
type PendingStatus struct {
	Pending int64 `json:"pending"`
	// OldestSeconds is the age of the oldest pending event (0 when none).
	OldestSeconds float64 `json:"oldest_pending_seconds"`
}

// Deferred reports whether appends are sequenced later (WithSequencer).
func (l *Log) Deferred() bool { return l.deferred }

// SequencerState reports what this process's sequencer last did.
func (l *Log) SequencerState() SequencerState {
	l.seqMu.Lock()
	st := l.seqState
	l.seqMu.Unlock()
	vs := l.pendingChurn.Stats()
	st.Vacuums, st.VacuumError = vs.Vacuums, vs.LastError
	return st
}

// PendingChurn is the vacuuming of audit_pending (its figures for metrics).
func (l *Log) PendingChurn() *sqldb.Churn { return l.pendingChurn }

// Pending counts the pending events and the age of the oldest.
func (l *Log) Pending(ctx context.Context) (PendingStatus, error) {
	var st PendingStatus
	var oldest sql.NullInt64
	if err := l.db.Read.QueryRowContext(ctx, `SELECT COUNT(*), MIN(at) FROM audit_pending`).Scan(&st.Pending, &oldest); err != nil {
		return PendingStatus{}, sqldb.Fail("audit: pending", err)
	}
	if oldest.Valid {
		st.OldestSeconds = max(l.now().Sub(time.UnixMicro(oldest.Int64)).Seconds(), 0)
	}
	return st, nil
}

// appendPending inserts normalized events unsequenced, marking them
// Pending. Several events go in multi-row INSERTs (a contact batch or a
// sweep appends many in one transaction: one statement, not one each).
func appendPending(ctx context.Context, tx *sql.Tx, r runner, evs []Event) error {
	args := make([]any, 0, 12*min(len(evs), maxRowsPerInsert))
	for start := 0; start < len(evs); start += maxRowsPerInsert {
		chunk := evs[start:min(len(evs), start+maxRowsPerInsert)]
		args = args[:0]
		for i := range chunk {
			ev := &chunk[i]
			id, err := uuid.NewV7()
			if err != nil {
				return fmt.Errorf("audit: pending id: %w", err)
			}
			ev.Pending = true
			args = append(args, id.String(), ev.Time.UnixMicro(), ev.ActorID, ev.ActorName, ev.Role, ev.Action,
				ev.TargetType, ev.TargetID, ev.RequestID, ev.ClientIP, ev.Outcome, string(ev.Detail))
		}
		if err := r.execRows(ctx, tx, insertPending, 12, args); err != nil {
			return fmt.Errorf("audit: append pending event: %w", err)
		}
	}
	return nil
}

func (l *Log) sequencerLoop() {
	defer close(l.seqStopped)
	t := time.NewTicker(l.seqEvery)
	defer t.Stop()
	for {
		select {
		case <-l.seqStop:
			l.runSequencer(l.runCtx)
			return
		case <-t.C:
		}
		l.runSequencer(l.runCtx)
	}
}

func (l *Log) runSequencer(ctx context.Context) {
	n, err := l.Sequence(ctx)
	l.seqMu.Lock()
	defer l.seqMu.Unlock()
	l.seqState.Sequenced += int64(n)
	l.seqState.LastPass = time.Now()
	l.seqState.LastError = ""
	if err != nil {
		l.seqState.LastError = err.Error()
	}
}

// Sequence moves every pending event committed so far into the chain, in
// batches of at most DefaultSequenceBatch, and returns how many it moved.
// When another replica's sequencer holds the lock it returns 0 at once:
// that one is doing the work. Safe to call concurrently with appends, with
// Prune and with other sequencers.
//
// It then vacuums audit_pending when enough rows were deleted from it
// (sqldb.Churn): after the pass, so the events it moved are not held up.
// A failed vacuum is in SequencerState; the pass itself succeeded.
func (l *Log) Sequence(ctx context.Context) (int, error) {
	n, err := l.sequence(ctx)
	_, _ = l.pendingChurn.Vacuum(ctx)
	return n, err
}

// qOldestPending is the sequencer's look for work (see sequence).
const qOldestPending = `SELECT id FROM audit_pending ORDER BY id LIMIT 1`

func (l *Log) sequence(ctx context.Context) (int, error) {
	total := 0
	for {
		// A cheap look first, so an idle sequencer never takes a write
		// lock (SQLite's database lock, PostgreSQL's head row). It reads
		// the primary key's oldest end, as the batch does: EXISTS over the
		// table was planned as a sequential scan, which on PostgreSQL read
		// every dead row left since the last vacuum before the first live
		// one (2,408 pages, 6 ms, at 47,000 dead rows; issue 19).
		var oldest string
		switch err := l.db.Read.QueryRowContext(ctx, qOldestPending).Scan(&oldest); {
		case errors.Is(err, sql.ErrNoRows):
			return total, nil
		case err != nil:
			return total, sqldb.Fail("audit: sequence", err)
		}

		n, err := l.sequenceBatch(ctx)
		total += n
		if err != nil || n < l.seqBatch {
			return total, err
		}
	}
}

// sequenceBatch moves one batch of pending events into the chain.
func (l *Log) sequenceBatch(ctx context.Context) (int, error) {
	var evs []Event
	err := l.db.InTx(ctx, func(tx *sql.Tx) error {
		evs = evs[:0]
		if l.db.Dialect == sqldb.Postgres {
			var got bool
			if err := tx.QueryRowContext(ctx, `SELECT pg_try_advisory_xact_lock($1, hashtext(current_schema()))`, sequencerLockKey).Scan(&got); err != nil {
				return fmt.Errorf("audit: sequencer lock: %w", err)
			}
			if !got {
				return nil
			}
		}

		h, err := lockHead(ctx, tx, l.runner())
		if err != nil {
			return err
		}

		ids, err := readPending(ctx, tx, l.db, l.seqBatch, &evs)
		if err != nil || len(evs) == 0 {
			return err
		}

		seq, prev := h.seq, h.hash
		for i := range evs {
			ev := &evs[i]
			seq++
			ev.Seq, ev.PrevHash, ev.Pending = seq, prev, false
			ev.Hash = ev.ComputeHash()
			prev = ev.Hash
		}
		if err := insertChained(ctx, tx, l.db, evs); err != nil {
			return err
		}
		l.faultAt(FaultSequenceInserted)

		if err := deletePending(ctx, tx, l.db, ids); err != nil {
			return err
		}
		if err := l.runner().exec(ctx, tx, updateHead, seq, prev); err != nil {
			return fmt.Errorf("audit: update head: %w", err)
		}
		l.faultAt(FaultSequenceBeforeCommit)
		return nil
	})
	if err != nil {
		return 0, sqldb.Fail("audit: sequence", err)
	}

	l.pendingChurn.Add(int64(len(evs)))

	if l.observe != nil {
		now := l.now()
		for _, ev := range evs {
			l.observe(max(now.Sub(ev.Time), 0))
		}
	}

	return len(evs), nil
}

func (l *Log) faultAt(point string) {
	if l.fault != nil {
		l.fault(point)
	}
}

// readPending reads up to limit pending events, oldest id first, into evs
// and returns their ids.
func readPending(ctx context.Context, tx *sql.Tx, db *sqldb.DB, limit int, evs *[]Event) ([]string, error) {
	rows, err := tx.QueryContext(ctx, db.Rebind(selectPending+` ORDER BY id LIMIT ?`), limit)
	if err != nil {
		return nil, fmt.Errorf("audit: read pending: %w", err)
	}
	defer rows.Close()
	var ids []string
	for rows.Next() {
		id, ev, err := scanPending(rows)
		if err != nil {
			return nil, fmt.Errorf("audit: read pending: %w", err)
		}
		ids = append(ids, id)
		*evs = append(*evs, ev)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("audit: read pending: %w", err)
	}
	return ids, nil
}

func scanPending(rows *sql.Rows) (string, Event, error) {
	var id, detail string
	var at int64
	var ev Event
	err := rows.Scan(&id, &at, &ev.ActorID, &ev.ActorName, &ev.Role, &ev.Action, &ev.TargetType, &ev.TargetID,
		&ev.RequestID, &ev.ClientIP, &ev.Outcome, &detail)
	ev.Time, ev.Detail, ev.Pending = time.UnixMicro(at).UTC(), []byte(detail), true
	return id, ev, err
}

// chainChunk bounds the rows of one multi-row statement (14 parameters a
// row stays under both engines' parameter limits).
const chainChunk = 500

// insertChained inserts sequenced events into audit_events, many rows a
// statement.
func insertChained(ctx context.Context, tx *sql.Tx, db *sqldb.DB, evs []Event) error {
	if db.Dialect == sqldb.Postgres {
		return insertChainedPG(ctx, tx, evs)
	}

	const row = `(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`
	for len(evs) > 0 {
		n := min(len(evs), chainChunk)
		args := make([]any, 0, 14*n)
		for _, ev := range evs[:n] {
			args = append(args, ev.Seq, ev.Time.UnixMicro(), ev.ActorID, ev.ActorName, ev.Role, ev.Action,
				ev.TargetType, ev.TargetID, ev.RequestID, ev.ClientIP, ev.Outcome, string(ev.Detail), ev.PrevHash, ev.Hash)
		}
		q := strings.TrimSuffix(insertEvent[:strings.Index(insertEvent, "VALUES")+len("VALUES ")]+strings.Repeat(row+",", n), ",")
		if _, err := tx.ExecContext(ctx, db.Rebind(q), args...); err != nil {
			return fmt.Errorf("audit: insert events %d to %d: %w", evs[0].Seq, evs[n-1].Seq, err)
		}
		evs = evs[n:]
	}
	return nil
}

// qInsertChainedPG takes a pass's rows as one array per column: one
// statement text whatever the pass's size (deletePending's ids likewise,
// through sqldb.AnyOf). As multi-row
// VALUES, every size was a statement of its own, which pgx parsed and
// described on first use on each pooled connection and kept in that
// connection's statement cache (512 entries), so a pass's size, new
// almost every time, cost a parse of up to 7,000 parameters and pushed
// the contact batches' statements out of the cache.
const qInsertChainedPG = `INSERT INTO audit_events (seq, at, actor_id, actor_name, role, action, target_type, target_id,
 request_id, client_ip, outcome, detail, prev_hash, hash)
 SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[],
 $9::text[], $10::text[], $11::text[], $12::text[], $13::text[], $14::text[])`

func insertChainedPG(ctx context.Context, tx *sql.Tx, evs []Event) error {
	n := len(evs)
	seqs, ats := make([]int64, n), make([]int64, n)
	cols := make([][]string, 12)
	for i := range cols {
		cols[i] = make([]string, n)
	}
	for i, ev := range evs {
		seqs[i], ats[i] = ev.Seq, ev.Time.UnixMicro()
		for j, v := range [...]string{ev.ActorID, ev.ActorName, ev.Role, ev.Action, ev.TargetType, ev.TargetID,
			ev.RequestID, ev.ClientIP, ev.Outcome, string(ev.Detail), ev.PrevHash, ev.Hash} {
			cols[j][i] = v
		}
	}

	args := []any{seqs, ats}
	for _, c := range cols {
		args = append(args, c)
	}
	if _, err := tx.ExecContext(ctx, qInsertChainedPG, args...); err != nil {
		return fmt.Errorf("audit: insert events %d to %d: %w", evs[0].Seq, evs[n-1].Seq, err)
	}
	return nil
}

// deletePending deletes the sequenced events from audit_pending; each must
// still be there (only the sequencer deletes pending rows, under its lock).
// On PostgreSQL the ids go as one array (sqldb.AnyOf), all in one
// statement; on SQLite in IN lists of chainChunk.
func deletePending(ctx context.Context, tx *sql.Tx, db *sqldb.DB, ids []string) error {
	size := chainChunk
	if db.Dialect == sqldb.Postgres {
		size = max(len(ids), 1)
	}
	for part := range slices.Chunk(ids, size) {
		cond, args := sqldb.AnyOf(db.Dialect, "id", part)
		res, err := tx.ExecContext(ctx, db.Rebind(`DELETE FROM audit_pending WHERE `+cond), args...)
		if err != nil {
			return fmt.Errorf("audit: delete pending: %w", err)
		}
		if got, err := res.RowsAffected(); err != nil {
			return fmt.Errorf("audit: delete pending: %w", err)
		} else if got != int64(len(part)) {
			return fmt.Errorf("audit: delete pending: %d of %d rows were gone (another sequencer?)", int64(len(part))-got, len(part))
		}
	}
	return nil
}
