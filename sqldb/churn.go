package sqldb

import (
	"context"
	"sync"
)

// DefaultVacuumEvery is how many rows a queue table's writers may leave dead
// before Churn vacuums it. A queue table (audit_pending, outbox) takes every
// write once and gives it up within a second, and PostgreSQL keeps each
// row it gave up until a VACUUM: scans from the queue's old end (the
// sequencer's "anything pending?", its oldest-first batch) then step over
// every dead row first. Autovacuum looks at a table at most once a
// naptime (a minute by default) and may be off: at 4,000 contacts/s a
// minute is 240,000 dead rows in each queue, and with autovacuum off 60 s
// of load left audit_pending at 104 MB and the outbox at 91 MB, growing
// (issue 19; 10 MB and 58 MB vacuumed at this threshold). 20,000 dead rows
// of audit_pending are about 1,000 pages, which a VACUUM reads in a few
// milliseconds.
const DefaultVacuumEvery = 20_000

// Churn counts the rows writers left dead in one queue table and, on
// PostgreSQL, vacuums the table each time enough have gathered. SQLite
// reuses a deleted row's space itself: there Churn does nothing.
type Churn struct {
	db    *DB
	table string
	every int64

	mu    sync.Mutex
	dead  int64
	busy  bool
	stats ChurnStats
}

// ChurnStats is what a Churn did since the process started.
type ChurnStats struct {
	Table    string
	Vacuums  int64
	Failures int64
	// LastError is the last vacuum's error, "" when it succeeded.
	LastError string
}

// NewChurn returns a Churn for table (a name from the code, never from
// input), vacuuming after every dead rows; every <= 0 means
// DefaultVacuumEvery.
func NewChurn(db *DB, table string, every int64) *Churn {
	if every <= 0 {
		every = DefaultVacuumEvery
	}
	return &Churn{db: db, table: table, every: every, stats: ChurnStats{Table: table}}
}

// Add records n more rows left dead in the table (deleted, or updated to
// a new version). It does no I/O: a writer calls it in its transaction's
// wake, and the table's background pass calls Vacuum.
func (c *Churn) Add(n int64) {
	if c == nil || n <= 0 {
		return
	}
	c.mu.Lock()
	c.dead += n
	c.mu.Unlock()
}

// Vacuum vacuums the table, in the caller's goroutine (a background pass:
// a sequencer, an indexer), when the rows Added since the last vacuum
// reach the threshold, and reports whether it did. A vacuum of this Churn
// already running is not waited for; a failed one keeps the count, so the
// next call tries again.
func (c *Churn) Vacuum(ctx context.Context) (bool, error) {
	if c == nil || c.db.Dialect != Postgres {
		return false, nil
	}

	c.mu.Lock()
	due := c.dead >= c.every && !c.busy
	seen := c.dead
	if due {
		c.busy = true
	}
	c.mu.Unlock()
	if !due {
		return false, nil
	}

	// SKIP_LOCKED: a VACUUM of the table already running (autovacuum,
	// another replica's) does the same work; this one is not needed.
	// TRUNCATE false: giving the emptied end of a queue back to the file
	// system takes an exclusive lock on the table, which every write's
	// insert then waits behind (scale_bench: 18-19 of ~490 active-backend
	// samples in VacuumTruncate, a p99 of 182 ms), for space the queue
	// fills again within a second. PARALLEL 0: PostgreSQL started two
	// worker processes to vacuum the outbox's three indexes (VERBOSE says
	// so; the loads showed their IPC BgWorkerShutdown waits), which on a
	// small table cost more than they save: 45 / 40 ms against 38 / 36 ms
	// serial for 20,000 dead rows of a 98,000-row outbox, idle machine.
	_, err := c.db.Write.ExecContext(ctx, `VACUUM (SKIP_LOCKED, TRUNCATE false, PARALLEL 0) `+c.table)

	c.mu.Lock()
	defer c.mu.Unlock()
	c.busy = false
	if err != nil {
		err = Fail("vacuum "+c.table, err)
		c.stats.Failures++
		c.stats.LastError = err.Error()
		return false, err
	}
	c.dead -= seen
	c.stats.Vacuums++
	c.stats.LastError = ""
	return true, nil
}

// Stats returns what the Churn did so far.
func (c *Churn) Stats() ChurnStats {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.stats
}
