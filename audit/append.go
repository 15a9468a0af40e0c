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
// stored (Seq, Time, PrevHash, Hash filled in).
//
// Appends are serialized on the audit_head row: on PostgreSQL it is locked
// FOR UPDATE until the transaction ends (replicas queue there, and the chain
// stays one chain); on SQLite the write transaction (BEGIN IMMEDIATE) already
// holds the database write lock. Call AppendTx as the last statement before
// commit, so the lock is held briefly and always taken last (no lock-order
// deadlocks with other rows). tx must be a READ COMMITTED (default)
// transaction on PostgreSQL.
func AppendTx(ctx context.Context, tx *sql.Tx, d sqldb.Dialect, ev Event) (Event, error) {
	ev, err := normalizeCaller(ev, time.Now)
	if err != nil {
		return Event{}, err
	}
	evs := []Event{ev}
	if err := appendNormalized(ctx, tx, d, evs); err != nil {
		return Event{}, err
	}
	return evs[0], nil
}

type head struct {
	seq, cpSeq, cpAt int64
	hash, cpHash     string
}

func lockHead(ctx context.Context, tx *sql.Tx, d sqldb.Dialect) (head, error) {
	q := `SELECT seq, hash, checkpoint_seq, checkpoint_hash, checkpoint_at FROM audit_head WHERE id = 1`
	if d == sqldb.Postgres {
		q += ` FOR UPDATE`
	}
	var h head
	if err := tx.QueryRowContext(ctx, q).Scan(&h.seq, &h.hash, &h.cpSeq, &h.cpHash, &h.cpAt); err != nil {
		return head{}, fmt.Errorf("audit: read head: %w", err)
	}
	return h, nil
}

// appendNormalized chains and inserts already normalized events, filling in
// their Seq, PrevHash and Hash.
func appendNormalized(ctx context.Context, tx *sql.Tx, d sqldb.Dialect, evs []Event) error {
	h, err := lockHead(ctx, tx, d)
	if err != nil {
		return err
	}
	ins := func(args ...any) error {
		_, err := tx.ExecContext(ctx, sqldb.Rebind(d, insertEvent), args...)
		return err
	}
	if len(evs) > 1 {
		stmt, err := tx.PrepareContext(ctx, sqldb.Rebind(d, insertEvent))
		if err != nil {
			return fmt.Errorf("audit: prepare insert: %w", err)
		}
		defer stmt.Close()
		ins = func(args ...any) error {
			_, err := stmt.ExecContext(ctx, args...)
			return err
		}
	}
	seq, prev := h.seq, h.hash
	for i := range evs {
		ev := &evs[i]
		seq++
		ev.Seq, ev.PrevHash = seq, prev
		ev.Hash = ev.ComputeHash()
		if err := ins(ev.Seq, ev.Time.UnixMicro(), ev.ActorID, ev.ActorName, ev.Role, ev.Action,
			ev.TargetType, ev.TargetID, ev.RequestID, ev.ClientIP, ev.Outcome, string(ev.Detail),
			ev.PrevHash, ev.Hash); err != nil {
			return fmt.Errorf("audit: insert event %d: %w", ev.Seq, err)
		}
		prev = ev.Hash
	}
	if _, err := tx.ExecContext(ctx, sqldb.Rebind(d, `UPDATE audit_head SET seq = ?, hash = ? WHERE id = 1`), seq, prev); err != nil {
		return fmt.Errorf("audit: update head: %w", err)
	}
	return nil
}
