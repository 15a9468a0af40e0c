package sqldb

import (
	"context"
	"database/sql"
	"sync"
	"time"
)

// WAL checkpoints off the writer's path (SQLite). By default SQLite's
// committing connection copies the WAL back into the database file
// whenever the WAL passes 1,000 pages, inside that commit: under load the
// one writer spent 12-14% of its time there (copies and two fsyncs), with
// every caller of the batch waiting (issue 19, execution trace of the
// group commit under wrk). A PASSIVE checkpoint on another connection
// copies the same pages without blocking the writer, so a background pass
// does the copying and the writer's own checkpoint, at a higher threshold,
// is left only what arrived since the last pass. That writer checkpoint is
// still what lets the WAL restart from its beginning under steady load (a
// restart needs a write to begin with every frame copied, which a pass
// running beside the writer never leaves behind), so the WAL file stays
// bounded at about writerCheckpointPages pages.
const (
	// checkpointEvery is the background pass's period: at ~20,000 WAL
	// frames a second under load, a pass copies a few thousand frames'
	// worth of (far fewer, distinct) pages.
	checkpointEvery = 100 * time.Millisecond
	// writerCheckpointPages is the writer's wal_autocheckpoint: 16 MiB of
	// WAL at 4 KiB pages.
	writerCheckpointPages = 4000
)

// checkpointer runs PASSIVE checkpoints on the read pool (a query_only
// connection may checkpoint: it changes no content).
type checkpointer struct {
	db *sql.DB

	// mu is held through a pass; held counts HoldCheckpoints callers.
	mu   sync.Mutex
	held int

	quit chan struct{}
	done chan struct{}
	// stop makes close safe to call twice, as DB.Close is.
	stop sync.Once
}

func newCheckpointer(db *sql.DB, every time.Duration) *checkpointer {
	c := &checkpointer{db: db, quit: make(chan struct{}), done: make(chan struct{})}
	go c.loop(every)
	return c
}

func (c *checkpointer) loop(every time.Duration) {
	defer close(c.done)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-c.quit:
			return
		case <-t.C:
			c.pass()
		}
	}
}

// pass checkpoints once. Its errors are dropped: a busy checkpoint lock
// means another checkpoint is copying, and anything worse (a full disk,
// an I/O error) fails the writer's next commit, where the caller sees it;
// the writer's own checkpoint still bounds the WAL meanwhile.
func (c *checkpointer) pass() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.held > 0 {
		return
	}

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var busy, frames, copied int
	_ = c.db.QueryRowContext(ctx, `PRAGMA wal_checkpoint(PASSIVE)`).Scan(&busy, &frames, &copied)
}

// hold keeps passes out until the returned func is called, once any pass
// running has ended.
func (c *checkpointer) hold() func() {
	c.mu.Lock()
	c.held++
	c.mu.Unlock()
	return sync.OnceFunc(func() {
		c.mu.Lock()
		c.held--
		c.mu.Unlock()
	})
}

func (c *checkpointer) close() {
	c.stop.Do(func() { close(c.quit) })
	<-c.done
}

// HoldCheckpoints stops the background checkpoints of a SQLite database
// until the returned func is called (a no-op on PostgreSQL). A restore
// that switches the journal mode holds them: a pass would open a read
// connection, which takes the file back to WAL mode and keeps the switch
// from getting the file to itself.
func (db *DB) HoldCheckpoints() func() {
	if db.ckpt == nil {
		return func() {}
	}
	return db.ckpt.hold()
}
