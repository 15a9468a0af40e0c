package retention

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/casevault/casevault/sqldb"
)

// The write barrier (issue 19). Two decisions here rely on every write
// transaction committing either wholly before or wholly after a change of
// what governs writes: a schedule change (Schedules.Put: a write stamps
// retain_until from the schedule it read; Recompute after the change must
// see every write stamped with the old one) and a hold's placement
// (Holds.Place: a write its walk cannot see must see the hold in its own
// change hook). SQLite has one writer, so that holds by itself. On
// PostgreSQL it used to come from every write first locking the audit
// chain head; with deferred audit sequencing no write touches a shared row,
// so every write transaction takes this PostgreSQL advisory lock in shared
// mode first (ShareWriteBarrier, wired as the database's prologue), which
// writers never wait on among themselves, and the two changes take it
// exclusively as their first statement (their transactions skip the shared
// one: upgrading it could deadlock two changes). A transaction that waits
// for the barrier holds no other lock yet, and the changes take it before
// retention_state, so it joins no lock cycle.

// writeBarrierKey is the advisory lock class; the second key is the
// schema, as for migrations.
const writeBarrierKey = 7345027

type exclusiveKey struct{}

// ShareWriteBarrier takes the write barrier in shared mode for the rest of
// tx. It is the prologue of every PostgreSQL write transaction (SQLite
// needs none: wire it on PostgreSQL only); the transactions of Put and
// Place skip it.
func ShareWriteBarrier(ctx context.Context, tx *sql.Tx) error {
	if ctx.Value(exclusiveKey{}) != nil {
		return nil
	}
	if _, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock_shared($1, hashtext(current_schema()))`, writeBarrierKey); err != nil {
		return fmt.Errorf("write barrier: %w", err)
	}
	return nil
}

// WritePrologue returns the prologue of every PostgreSQL write transaction
// (wired on PostgreSQL only, as ShareWriteBarrier): it shares the write
// barrier, then queues the two reads every contact write makes of
// retention, the schedule version (Policy.In) and the holds that may be
// in force (Holds.RecordWrites), to go out with the transaction's first
// query (sqldb.Prefetch: the store's pipelined contact batches; elsewhere
// they are read when asked, as before). They are read after the barrier,
// as before, so no schedule change or hold placement commits between them
// and the write. Their two round trips cost a batch about 2.5% of serve's
// CPU under load (issue 19; docs/ARCHITECTURE.md, "A contact batch's
// retention reads are prefetched"). now is the clock the holds' bound is
// taken from (holdsBound; a Holds with another clock reads its holds
// itself).
func WritePrologue(db *sqldb.DB, now func() time.Time) func(ctx context.Context, tx *sql.Tx) error {
	return func(ctx context.Context, tx *sql.Tx) error {
		if err := ShareWriteBarrier(ctx, tx); err != nil {
			return err
		}

		if err := db.Prefetch(ctx, tx, qScheduleVersion); err != nil {
			return err
		}
		return db.Prefetch(ctx, tx, qActiveHolds, holdsBound(now()))
	}
}

// exclusiveTx runs fn in a write transaction that first takes the write
// barrier exclusively (PostgreSQL), so that no write transaction is in
// flight while it runs.
func exclusiveTx(ctx context.Context, db *sqldb.DB, fn func(tx *sql.Tx) error) error {
	if db.Dialect != sqldb.Postgres {
		return db.InTx(ctx, fn)
	}
	return db.InTx(context.WithValue(ctx, exclusiveKey{}, true), func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock($1, hashtext(current_schema()))`, writeBarrierKey); err != nil {
			return sqldb.Fail("write barrier", err)
		}
		return fn(tx)
	})
}
