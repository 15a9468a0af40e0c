package sqlstore

import (
	"context"
	"database/sql"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/casevault/casevault/cases"
	"github.com/casevault/casevault/sqldb"
)

// Contact batches (issue 19). A contact written alone is one transaction
// of ten statements (BEGIN, barrier, case touch, schedule version, data
// key, contact, outbox, holds, audit, COMMIT); on PostgreSQL each is a
// round trip and the commit a WAL flush, and pgbench running that very SQL
// reaches only a fifth of a one-row INSERT. So concurrent CreateContact
// calls are gathered into batches, each ONE transaction whose statements
// serve all its contacts: the cases touched and locked in one statement
// (on PostgreSQL under load, touched ahead and share-locked: see
// createContacts), the schedule, active holds and each customer's data
// key read once, the contacts, outbox rows and audit events inserted by
// multi-row INSERTs.
// Batches form by themselves: a call that finds every batch slot busy
// queues, and the next batch to start takes the whole queue (up to
// maxContactBatch), so a quiet server writes single contacts without
// waiting and a busy one writes in large batches. It leaves behind the
// contacts whose case is in another running batch: when batches held
// their cases' rows until commit, a second batch taking such a contact
// waited on the row lock in the database while holding its own cases'
// rows, and batches behind those (issue 19: with 32 clients on 200 cases,
// 21-41% of PostgreSQL's active backends were waiting on a case row). The
// contact waits in the queue instead, and the batch holding its case takes
// it when it is done; a replica's batches still write one case's contacts
// one batch after the other.
//
// What stays per contact: its result (each caller gets its own error), its
// audit event (one per contact, chained in order), its outbox row. A batch
// that fails for any reason is rolled back and its contacts written again
// one by one, so a bad contact (unknown case, another customer's case, a
// constraint) fails alone and never takes its neighbours with it. A
// caller's context is checked before its contact joins a batch; once in,
// the batch runs to its verdict whatever happens to that context, and the
// caller waits for it (acknowledged = committed, never "failed" when it
// committed).

// maxContactBatch bounds a batch: 15 bound parameters per contact row
// stays far below both engines' limits, and a failing batch redone one by
// one costs at most this many single writes.
const maxContactBatch = 128

type contactReq struct {
	ctx  context.Context
	c    *cases.Contact
	ch   cases.Change
	done chan error
}

// contactBatcher gathers concurrent contact writes. Its drain goroutines
// exist only while there is work: no goroutine outlives the queue.
//
// One batch is in flight at a time; a further one (up to slots) starts
// only beside batches that have all run for stall or longer, and a
// drain that finishes its batch while another, younger one is in flight
// leaves the queue to that one. So a busy replica writes in the largest
// batches its load makes, and a batch stuck on a row lock still leaves
// the other cases' contacts a way through (see DefaultContactBatchStall).
type contactBatcher struct {
	s *Store
	// slots is how many batches may be in flight at once: 1 on SQLite
	// (the batch joins sqldb's group commit), several on PostgreSQL (see
	// DefaultPostgresContactBatches).
	slots int
	// stall is how long every batch in flight must have run before
	// another may start beside them.
	stall time.Duration

	mu      sync.Mutex
	queue   []*contactReq
	running int
	// flights are the running drains; each is in flight while it writes a
	// batch.
	flights []*flight
	// busy counts, per case, the contacts of running batches.
	busy  map[string]int
	stats ContactBatchStats
}

// flight is one drain's batch in flight: when it started, and the timer
// that looks again at the queue if it is still running after the stall.
type flight struct {
	active bool
	start  time.Time
	timer  *time.Timer
}

// ContactBatchStats counts a store's contact batches since it started.
// Busy over wall time and the slots says how close the writes are to
// their ceiling: on SQLite one slot busy nearly all the time means the
// one writer is what limits ingest (issue 19: 96% under wrk, 14.6
// contacts a batch).
type ContactBatchStats struct {
	Slots    int
	Batches  uint64
	Contacts uint64
	// Busy is the batches' time from taking their contacts to the last
	// verdict, summed over the slots.
	Busy time.Duration
	// Overflows counts the batches started beside stalled ones.
	Overflows uint64
}

// ContactBatchStats returns the contact batches' counts so far.
func (s *Store) ContactBatchStats() ContactBatchStats {
	b := s.contacts
	b.mu.Lock()
	defer b.mu.Unlock()
	st := b.stats
	st.Slots = b.slots
	return st
}

func (b *contactBatcher) submit(ctx context.Context, c *cases.Contact, ch cases.Change) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	r := &contactReq{ctx: ctx, c: c, ch: ch, done: make(chan error, 1)}
	b.mu.Lock()
	b.queue = append(b.queue, r)
	b.startIfStalled(time.Now())
	b.mu.Unlock()
	// Once queued the contact may be in a running batch: wait for the
	// verdict even if ctx ends, so a commit is never reported as a failure.
	return <-r.done
}

// startIfStalled starts a drain when the queue has contacts and a slot is
// free, and every batch in flight has run for the stall or longer (none
// in flight: at once). b.mu held.
func (b *contactBatcher) startIfStalled(now time.Time) {
	if len(b.queue) == 0 || b.running >= b.slots {
		return
	}
	for _, f := range b.flights {
		if f.active && now.Sub(f.start) < b.stall {
			return
		}
	}
	f := &flight{}
	b.flights = append(b.flights, f)
	b.running++
	go b.drain(f)
}

// youngerInFlight reports whether a batch other than f's is in flight and
// has run for less than the stall: that one takes the queue when it is
// done. b.mu held.
func (b *contactBatcher) youngerInFlight(f *flight, now time.Time) bool {
	for _, o := range b.flights {
		if o != f && o.active && now.Sub(o.start) < b.stall {
			return true
		}
	}
	return false
}

// drain runs batches until no queued contact can join one, or until a
// younger batch in flight can take them.
func (b *contactBatcher) drain(f *flight) {
	var batch []*contactReq
	var took time.Duration
	for {
		b.mu.Lock()
		f.active = false
		if f.timer != nil {
			f.timer.Stop()
		}
		b.release(batch)
		if len(batch) > 0 {
			b.stats.Batches++
			b.stats.Contacts += uint64(len(batch))
			b.stats.Busy += took
		}
		now := time.Now()
		if !b.youngerInFlight(f, now) {
			batch, b.queue = takeBatch(b.queue, b.busy, maxContactBatch)
		} else {
			batch = nil
		}
		if len(batch) == 0 {
			b.running--
			b.flights = slices.DeleteFunc(b.flights, func(o *flight) bool { return o == f })
			b.mu.Unlock()
			return
		}
		if b.busy == nil {
			b.busy = map[string]int{}
		}
		for _, r := range batch {
			b.busy[r.c.CaseID]++
		}
		crowded := b.running > 1
		for _, o := range b.flights {
			// any other batch in flight has stalled, or this drain would
			// have left the queue to it
			if o != f && o.active {
				b.stats.Overflows++
				break
			}
		}
		f.active, f.start = true, now
		if b.slots > 1 {
			// Contacts queued behind this batch look again once it has
			// run for the stall, if it is still running then.
			f.timer = time.AfterFunc(b.stall, func() {
				b.mu.Lock()
				b.startIfStalled(time.Now())
				b.mu.Unlock()
			})
		}
		b.mu.Unlock()
		start := time.Now()
		b.run(batch, crowded)
		took = time.Since(start)
	}
}

// release marks the cases of a finished batch free (b.mu held).
func (b *contactBatcher) release(batch []*contactReq) {
	for _, r := range batch {
		if b.busy[r.c.CaseID]--; b.busy[r.c.CaseID] == 0 {
			delete(b.busy, r.c.CaseID)
		}
	}
}

// takeBatch takes from queue, in order, up to limit contacts whose case
// is not busy in a running batch, and returns them and what stays queued
// (in its order). The queue's backing array is reused for what stays.
func takeBatch(queue []*contactReq, busy map[string]int, limit int) (batch, rest []*contactReq) {
	rest = queue[:0]
	for _, r := range queue {
		if len(batch) < limit && busy[r.c.CaseID] == 0 {
			batch = append(batch, r)
			continue
		}
		rest = append(rest, r)
	}
	clear(queue[len(rest):])
	return batch, rest
}

// run writes batch; crowded says other batches of this replica were in
// flight when it was taken.
func (b *contactBatcher) run(batch []*contactReq, crowded bool) {
	live := batch[:0:0]
	for _, r := range batch {
		if err := r.ctx.Err(); err != nil {
			r.done <- err
			continue
		}
		live = append(live, r)
	}
	if len(live) == 0 {
		return
	}
	// The batch serves many callers: no one caller's cancellation ends it.
	ctx := context.Background()
	// A contact alone in its batch, with no other batch in flight (a
	// quiet server), locks and touches its case in its transaction:
	// touching ahead would be one more statement and commit for nothing to
	// wait for (one client, PostgreSQL: p50 1.7-1.9 ms locking first,
	// 2.4-2.9 ms with one more round trip). Under load many batches hold a single contact (a free
	// slot takes one at once), and those touch ahead too: locking first
	// they held their case through the batch (two replicas: 12% of
	// backends in lock waits).
	ahead := b.s.db.Dialect == sqldb.Postgres && (len(live) > 1 || crowded)
	if len(live) > 1 || ahead {
		saved := make([]cases.Contact, len(live))
		for i, r := range live {
			saved[i] = *r.c
		}
		var err error
		if ahead {
			err = b.s.touchAhead(ctx, live)
		}
		if err == nil {
			// Pipelined (PostgreSQL): its statements go out in 4 round
			// trips instead of 9; any error, wherever it surfaces, sends
			// the contacts to the redo below.
			err = b.s.write(sqldb.Pipelined(ctx), nil, func(tx *sql.Tx) error { return b.s.createContacts(ctx, tx, live, ahead) })
		}
		if err == nil {
			for _, r := range live {
				r.done <- nil
			}
			return
		}
		// Redo one by one, each case locked first: each contact gets its
		// own verdict. The batch may have filled in fields (customer,
		// retention date): start from what the callers gave.
		for i, r := range live {
			*r.c = saved[i]
		}
	}
	for _, r := range live {
		r.done <- b.s.write(ctx, nil, func(tx *sql.Tx) error { return b.s.createContacts(ctx, tx, []*contactReq{r}, false) })
	}
}

// touchedCase is what a batch read of a case row it locked (and touched,
// unless it touched ahead).
type touchedCase struct {
	closed     sql.NullInt64
	customerID string
	key        storedKey
}

// createContacts writes rs's contacts, their outbox rows, holds records and
// audit events in tx, failing as a whole on any contact's error.
//
// With ahead set (PostgreSQL under load: touchAhead has moved the cases'
// updated_at in a statement of its own), the first statement reads the
// cases under FOR KEY SHARE, the lock each contact row's foreign key takes
// on its case anyway. Batches of several replicas on one case share that
// lock and never wait for each other; every change that the contacts
// depend on (a close's closed_at, an erasure destroying the key, a case
// restored over the live one) takes the row FOR UPDATE first, which waits
// for the batch, or makes the batch wait and read what it wrote. Before, the batch locked its cases FOR NO KEY UPDATE by its last
// statement, to touch them, and held them through its commit's WAL flush:
// two replicas' batches on a shared case queued there (issue 19: 4.6-8.7%
// of PostgreSQL's active backends in Lock waits under wrk).
func (s *Store) createContacts(ctx context.Context, tx *sql.Tx, rs []*contactReq, ahead bool) error {
	var touched map[string]touchedCase
	var err error
	if ahead {
		touched, err = s.shareCases(ctx, tx, rs)
	} else {
		touched, err = s.touchCases(ctx, tx, rs)
	}
	if err != nil {
		return err
	}

	var rules cases.RetentionRules
	if s.policy != nil {
		if rules, err = s.policy.RulesIn(ctx, tx); err != nil {
			return fmt.Errorf("retention schedule: %w", err)
		}
	}
	sealers := map[string]sealer{}
	args := make([]any, 0, 15*len(rs))
	for _, r := range rs {
		c := r.c
		tc, ok := touched[c.CaseID]
		if !ok {
			return fmt.Errorf("case %s: %w", c.CaseID, cases.ErrNotFound)
		}
		if c.CustomerID == "" {
			c.CustomerID = tc.customerID
		} else if c.CustomerID != tc.customerID {
			return fmt.Errorf("case %s belongs to another customer: %w", c.CaseID, cases.ErrConflict)
		}
		if err := s.checkCorrects(ctx, tx, c); err != nil {
			return err
		}
		if rules != nil {
			c.RetainUntil = rules.RetainUntil(c.Purposes, c.OccurredAt, sqldb.TimePtr(tc.closed))
		}
		sl, ok := sealers[c.CustomerID]
		if !ok {
			// One data key per customer and batch: a key created here (the
			// customer's first sealed write) is created once.
			if sl, err = s.fields.sealerFromRow(ctx, tx, c.CustomerID, tc.key); err != nil {
				return err
			}
			sealers[c.CustomerID] = sl
		}
		args = append(args, c.ID, c.CaseID, c.CustomerID, c.Channel, c.Direction,
			sl.seal("contacts", "author", c.ID, c.Author), sl.seal("contacts", "body", c.ID, c.Body),
			sqldb.Micros(c.OccurredAt), sqldb.Micros(c.CreatedAt), sqldb.JSONText(c.Purposes), sqldb.JSONText(c.Categories),
			sl.sealNull("contacts", "location", c.ID, jsonOrNull(c.Location)), sl.sealNull("contacts", "device", c.ID, jsonOrNull(c.Device)),
			sqldb.NullMicros(c.RetainUntil), sql.NullString{String: c.Corrects, Valid: c.Corrects != ""})
	}
	if err := s.db.ExecRows(ctx, tx, qInsertContact, 15, args); err != nil {
		return fmt.Errorf("insert contact: %w", err)
	}

	now := sqldb.Micros(time.Now())
	args = args[:0]
	for _, r := range rs {
		args = append(args, r.c.CaseID, sql.NullString{String: r.c.ID, Valid: true}, now)
	}
	if err := s.db.ExecRows(ctx, tx, qEnqueue, 3, args); err != nil {
		return fmt.Errorf("outbox: %w", err)
	}

	chs := make([]cases.Change, len(rs))
	for i, r := range rs {
		chs[i] = r.ch
	}
	if err := s.changed(ctx, tx, chs); err != nil {
		return fmt.Errorf("audit: %w", err)
	}

	return nil
}

// changed runs the change hooks for chs: the batch hook when there is one.
func (s *Store) changed(ctx context.Context, tx *sql.Tx, chs []cases.Change) error {
	if s.onChanges != nil {
		return s.onChanges(ctx, tx, chs)
	}
	if s.onChange == nil {
		return nil
	}
	for _, ch := range chs {
		if err := s.onChange(ctx, tx, ch); err != nil {
			return err
		}
	}
	return nil
}

// shareCases reads what rs's contacts need of their cases' rows
// (touchCases' columns) and locks them FOR KEY SHARE until commit, in id
// order (the statement sorts them; see createContacts).
func (s *Store) shareCases(ctx context.Context, tx *sql.Tx, rs []*contactReq) (map[string]touchedCase, error) {
	ids := make([]string, len(rs))
	for i, r := range rs {
		ids[i] = r.c.CaseID
	}
	out := make(map[string]touchedCase, len(ids))
	err := sqldb.ScanRows(tx.QueryContext(ctx, qShareCasesPG, ids))(scanTouched(out))
	if err != nil {
		return nil, fmt.Errorf("read case: %w", err)
	}
	return out, nil
}

// touchAhead moves the updated_at of rs's cases to their newest contact's
// creation in a statement of its own, before the batch's transaction,
// that commits without waiting for its WAL flush: the row locks of the
// touch are held for one statement, not through a commit. Nothing is
// lost by not waiting: PostgreSQL flushes its WAL in order, so the
// batch's own commit, which comes later and does wait, flushes the touch
// with it before any contact is acknowledged. A batch that then fails
// leaves its cases touched, as a write at that time (the contacts are
// written again one by one, each touching its case). The statement runs
// outside the write barrier (one round trip where a transaction of its
// own took four): it moves nothing a barrier's holder reads, and the
// batch behind it waits for the barrier before writing anything.
func (s *Store) touchAhead(ctx context.Context, rs []*contactReq) error {
	ids, times := caseTimes(rs)
	if _, err := s.db.Write.ExecContext(ctx, qTouchAheadPG, ids, times); err != nil {
		return fmt.Errorf("touch cases: %w", err)
	}
	return nil
}

// caseTimes returns the cases of rs's contacts in id order, each with its
// newest contact's creation (unix micros).
func caseTimes(rs []*contactReq) (ids []string, times []int64) {
	at := map[string]int64{}
	for _, r := range rs {
		at[r.c.CaseID] = max(at[r.c.CaseID], sqldb.Micros(r.c.CreatedAt))
	}
	ids = slices.Sorted(maps.Keys(at))
	times = make([]int64, len(ids))
	for i, id := range ids {
		times[i] = at[id]
	}
	return ids, times
}

func scanTouched(out map[string]touchedCase) func(rows *sql.Rows) error {
	return func(rows *sql.Rows) error {
		var id string
		var t touchedCase
		if err := rows.Scan(&id, &t.closed, &t.customerID, &t.key.wrapped, &t.key.destroyed, &t.key.owner); err != nil {
			return err
		}
		out[id] = t
		return nil
	}
}

// touchCases moves updated_at of the cases of rs's contacts to their
// newest contact's creation and, in the same statement, locks those rows
// until commit and reads what the contacts need of them (closed_at,
// customer, data key: see qTouchCase). The row lock orders a contact with
// a close of its case: the close's recompute sees the contact, or the
// contact sees the close's closed_at. On PostgreSQL the rows are locked in
// id order, so two batches sharing cases never deadlock.
func (s *Store) touchCases(ctx context.Context, tx *sql.Tx, rs []*contactReq) (map[string]touchedCase, error) {
	ids, times := caseTimes(rs)
	out := make(map[string]touchedCase, len(ids))
	scan := scanTouched(out)

	var err error
	switch {
	case len(ids) == 1:
		err = sqldb.ScanRows(s.db.QueryTx(ctx, tx, qTouchCase, times[0], ids[0]))(scan)
	case s.db.Dialect == sqldb.Postgres:
		err = sqldb.ScanRows(tx.QueryContext(ctx, qTouchCasesPG, ids, times))(scan)
	default:
		args := make([]any, 0, 2*len(ids))
		for i, id := range ids {
			args = append(args, id, times[i])
		}
		err = s.db.QueryRows(ctx, tx, qTouchCasesSQLite, 2, args, scan)
	}
	if err != nil {
		return nil, fmt.Errorf("lock case: %w", err)
	}
	return out, nil
}

const (
	touchReturning = `cases.closed_at, cases.customer_id,
		(SELECT ck.wrapped_key FROM customer_keys ck WHERE ck.customer_id = cases.customer_id),
		(SELECT ck.destroyed_at FROM customer_keys ck WHERE ck.customer_id = cases.customer_id),
		(SELECT ck.customer_id FROM customer_keys ck WHERE ck.customer_id = cases.customer_id)`
	// qTouchCasesPG locks the rows in id order first (the sorted sub-select),
	// then touches them: one round trip for all the cases. FOR NO KEY
	// UPDATE, as an UPDATE of these columns takes, lets other transactions'
	// foreign-key checks on the rows (a contact inserted into the case)
	// through. Both scans of cases name the ids as = ANY($1): joined to the
	// unnest instead, the planner read the whole table twice per batch at
	// around a thousand cases (TestTouchCasesPlan), the hottest table of
	// every write.
	qTouchCasesPG = `WITH l AS (SELECT c.id FROM cases c WHERE c.id = ANY($1::text[]) ORDER BY c.id FOR NO KEY UPDATE)
		UPDATE cases SET updated_at = v.at FROM l, unnest($1::text[], $2::bigint[]) AS v(id, at)
		WHERE cases.id = ANY($1::text[]) AND cases.id = l.id AND v.id = l.id RETURNING cases.id, ` + touchReturning
	// qTouchAheadPG is touchAhead's statement: qTouchCasesPG's locking
	// order, updated_at only ever moved forward (touches of several
	// replicas commit in any order), and synchronous_commit off for its
	// own transaction only (set_config's third argument: the pooled
	// connection's next transaction waits for its flush again).
	qTouchAheadPG = `WITH a AS (SELECT set_config('synchronous_commit', 'off', true)),
		l AS (SELECT c.id FROM cases c WHERE c.id = ANY($1::text[]) ORDER BY c.id FOR NO KEY UPDATE)
		UPDATE cases SET updated_at = GREATEST(cases.updated_at, v.at) FROM a, l, unnest($1::text[], $2::bigint[]) AS v(id, at)
		WHERE cases.id = ANY($1::text[]) AND cases.id = l.id AND v.id = l.id`
	// qShareCasesPG reads the same columns as qTouchCasesPG under the lock
	// a contact's foreign key takes (see createContacts).
	qShareCasesPG = `SELECT cases.id, ` + touchReturning + ` FROM cases WHERE cases.id = ANY($1::text[]) ORDER BY cases.id FOR KEY SHARE OF cases`
	// qTouchCasesSQLite is the same on SQLite, whose one writer needs no
	// lock order; a row of (case id, updated_at) per case (sqldb.QueryRows).
	qTouchCasesSQLite = `UPDATE cases SET updated_at = v.column2 FROM (VALUES (?, ?)) AS v
		WHERE cases.id = v.column1 RETURNING cases.id, ` + touchReturning
)
