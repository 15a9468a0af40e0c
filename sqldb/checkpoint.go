package sqldb

import (
	"context"
	"database/sql"
	"sync"
	"sync/atomic"
	"time"
)

// SQLite copies committed WAL frames back into the database file in a
// checkpoint, which by default the committing connection runs itself once
// the WAL holds 1,000 pages: the one writer, and every caller queued for the
// group commit behind it, then waited for the copy and the database file's
// fsync. Under 32 concurrent writers that was the ingest's slowest commits
// (BenchmarkAddContact on SQLite: p99 82–140 ms with it, 32–77 ms without,
// 1.2–2.1× the contacts per second; docs/ARCHITECTURE.md). A background
// checkpointer now runs a PASSIVE checkpoint (it never blocks the writer or
// readers) on a read connection every checkpointEvery; the writer still
// checkpoints itself, as a safety net, if the WAL reaches writerCheckpoint
// pages (the checkpointer stopped, or failing).
const (
	checkpointEvery  = 100 * time.Millisecond
	writerCheckpoint = 16384 // pages: 64 MiB at SQLite's 4 KiB pages
)

// checkpointer runs the background checkpoints of one SQLite database.
type checkpointer struct {
	db     *sql.DB
	quit   chan struct{}
	wg     sync.WaitGroup
	once   sync.Once
	paused atomic.Int32
	runs   atomic.Int64 // checkpoints that completed (tests)
}

func newCheckpointer(db *sql.DB, every time.Duration) *checkpointer {
	c := &checkpointer{db: db, quit: make(chan struct{})}
	c.wg.Add(1)
	go c.loop(every)
	return c
}

func (c *checkpointer) loop(every time.Duration) {
	defer c.wg.Done()
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-c.quit:
			return
		case <-t.C:
		}
		if c.paused.Load() > 0 {
			continue
		}

		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		var busy, frames, done int64
		// an error (the file gone, a full disk) leaves the work to the
		// writer's own checkpoint at writerCheckpoint pages
		if err := c.db.QueryRowContext(ctx, `PRAGMA wal_checkpoint(PASSIVE)`).Scan(&busy, &frames, &done); err == nil {
			c.runs.Add(1)
		}
		cancel()
	}
}

func (c *checkpointer) close() {
	c.once.Do(func() { close(c.quit) })
	c.wg.Wait()
}

// PauseCheckpoints stops the background checkpoints until the returned
// function is called: a caller that needs the database file to itself (a
// restore leaving WAL mode for its load) must not find a checkpoint's read
// connection open. A database without them (PostgreSQL) returns a no-op.
func (db *DB) PauseCheckpoints() (resume func()) {
	if db.ckpt == nil {
		return func() {}
	}
	db.ckpt.paused.Add(1)
	var once sync.Once
	return func() { once.Do(func() { db.ckpt.paused.Add(-1) }) }
}
