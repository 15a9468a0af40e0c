package sqldb

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sync"
)

// Group commit. SQLite has one writer and, with synchronous=FULL,
// one fsync per commit; under concurrent load that fsync, not the SQL, is the
// ceiling. The batcher runs the transactions that arrive while a commit is in
// flight together: each caller's function runs inside its own SAVEPOINT of a
// shared transaction (so one caller's failure rolls back only its own work),
// and all of them are acknowledged after the single commit. A caller is never
// told "committed" before its data is durable.

const maxBatch = 256

type txReq struct {
	ctx  context.Context
	fn   func(tx *sql.Tx) error
	done chan error
}

type batcher struct {
	db *sql.DB
	// prologue runs first in every transaction (see DB.SetTxPrologue).
	prologue func(ctx context.Context, tx *sql.Tx) error
	reqs     chan *txReq
	quit     chan struct{}
	wg       sync.WaitGroup
	// closeOnce makes DB.Close safe to call twice (deferred and explicit).
	closeOnce sync.Once
}

// errClosed is returned for transactions submitted after Close.
var errClosed = errors.New("database is closed")

func newBatcher(db *sql.DB, prologue func(ctx context.Context, tx *sql.Tx) error) *batcher {
	b := &batcher{db: db, prologue: prologue, reqs: make(chan *txReq), quit: make(chan struct{})}
	b.wg.Add(1)
	go b.loop()
	return b
}

func (b *batcher) close() {
	b.closeOnce.Do(func() { close(b.quit) })
	b.wg.Wait()
}

func (b *batcher) submit(ctx context.Context, fn func(tx *sql.Tx) error) error {
	r := &txReq{ctx: ctx, fn: fn, done: make(chan error, 1)}
	select {
	case b.reqs <- r:
	case <-ctx.Done():
		return ctx.Err()
	case <-b.quit:
		return errClosed
	}
	// Once accepted the function may be running: wait for the verdict even if
	// ctx ends, so the caller never mistakes a commit for a failure.
	return <-r.done
}

func (b *batcher) loop() {
	defer b.wg.Done()
	for {
		var first *txReq
		select {
		case first = <-b.reqs:
		case <-b.quit:
			return
		}
		batch := []*txReq{first}
	drain:
		for len(batch) < maxBatch {
			select {
			case r := <-b.reqs:
				batch = append(batch, r)
			default:
				break drain
			}
		}
		b.run(batch)
	}
}

func (b *batcher) run(batch []*txReq) {
	if len(batch) == 1 {
		r := batch[0]
		r.done <- plainTx(r.ctx, b.db, b.prologue, r.fn)
		return
	}

	ctx := context.Background()
	tx, err := b.db.BeginTx(ctx, nil)
	if err == nil && b.prologue != nil {
		if err = b.prologue(ctx, tx); err != nil {
			_ = tx.Rollback()
		}
	}
	if err != nil {
		for _, r := range batch {
			r.done <- classify(fmt.Errorf("begin: %w", err))
		}
		return
	}

	results := make([]error, len(batch))
	for i, r := range batch {
		if err := r.ctx.Err(); err != nil {
			results[i] = err
			continue
		}
		if _, err := tx.ExecContext(ctx, `SAVEPOINT batch_item`); err != nil {
			results[i] = classify(fmt.Errorf("savepoint: %w", err))
			continue
		}
		if err := r.fn(tx); err != nil {
			results[i] = err
			if _, rerr := tx.ExecContext(ctx, `ROLLBACK TO batch_item`); rerr != nil {
				// The transaction is in an unknown state: fail the whole batch.
				_ = tx.Rollback()
				for j, r := range batch {
					if j != i {
						r.done <- classify(fmt.Errorf("batch rollback: %w", rerr))
					}
				}
				r.done <- err
				return
			}
		}
		if _, err := tx.ExecContext(ctx, `RELEASE batch_item`); err != nil {
			_ = tx.Rollback()
			for _, r := range batch {
				r.done <- classify(fmt.Errorf("release savepoint: %w", err))
			}
			return
		}
	}

	if err := tx.Commit(); err != nil {
		err = classify(fmt.Errorf("commit: %w", err))
		for i, r := range batch {
			if results[i] == nil {
				results[i] = err
			}
			r.done <- results[i]
		}
		return
	}

	for i, r := range batch {
		r.done <- results[i]
	}
}

func plainTx(ctx context.Context, db *sql.DB, prologue func(context.Context, *sql.Tx) error, fn func(tx *sql.Tx) error) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return classify(fmt.Errorf("begin: %w", err))
	}
	if prologue != nil {
		if err := prologue(ctx, tx); err != nil {
			_ = tx.Rollback()
			return classify(fmt.Errorf("transaction prologue: %w", err))
		}
	}
	if err := fn(tx); err != nil {
		_ = tx.Rollback()
		return err
	}
	if err := tx.Commit(); err != nil {
		return classify(fmt.Errorf("commit: %w", err))
	}
	return nil
}
