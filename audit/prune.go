package audit

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/casevault/casevault/sqldb"
)

// pruneDetail is the Detail of an ActionPrune event.
type pruneDetail struct {
	CheckpointSeq  int64  `json:"checkpoint_seq"`
	CheckpointHash string `json:"checkpoint_hash"`
	Removed        int64  `json:"removed"`
	Before         string `json:"before"`
}

// PruneExpired removes the events older than the retention period.
func (l *Log) PruneExpired(ctx context.Context) (int64, error) {
	return l.Prune(ctx, l.now().Add(-l.retention))
}

// Prune removes the oldest events, those with a time before before, and
// returns how many it removed. Only a prefix of the chain is removed (it
// stops at the first event that is not old enough, even if later ones are),
// so the remainder stays one chain: the checkpoint keeps the seq and hash of
// the last removed event, the first remaining event links to it, and an
// ActionPrune event recording the checkpoint is appended in the same
// transaction so that Verify can tell a genuine checkpoint from an edited
// one. Events are removed in steps of bounded size, each its own
// transaction, so appenders are not held up for long. Prune refuses
// (ErrTampered) to remove events that do not verify.
func (l *Log) Prune(ctx context.Context, before time.Time) (int64, error) {
	if before.IsZero() {
		return 0, fmt.Errorf("%w: prune needs a cut-off time", ErrInvalid)
	}

	var total int64
	limit := int64(-1) // the head when the prune started: never prune past it
	for {
		var removed int64
		more := false
		err := l.db.InTx(ctx, func(tx *sql.Tx) error {
			removed, more = 0, false
			h, err := lockHead(ctx, tx, l.runner())
			if err != nil {
				return err
			}
			if limit < 0 {
				limit = h.seq
			}
			upto := min(h.cpSeq+l.pruneStep, limit)
			if upto <= h.cpSeq {
				return nil
			}
			var keep sql.NullInt64
			if err := tx.QueryRowContext(ctx, l.db.Rebind(`SELECT MIN(seq) FROM audit_events WHERE seq > ? AND seq <= ? AND at >= ?`),
				h.cpSeq, upto, before.UnixMicro()).Scan(&keep); err != nil {
				return fmt.Errorf("audit: prune: %w", err)
			}
			end := upto
			if keep.Valid {
				end = keep.Int64 - 1
			}
			if end, err = l.keepBefore(ctx, tx, h.cpSeq, end); err != nil {
				return err
			}
			if end <= h.cpSeq {
				return nil
			}
			endHash, err := checkSegment(ctx, tx, l.db.Dialect, h, end)
			if err != nil {
				return err
			}
			if err := checkLink(ctx, tx, l.db.Dialect, h, end, endHash); err != nil {
				return err
			}
			res, err := tx.ExecContext(ctx, l.db.Rebind(`DELETE FROM audit_events WHERE seq > ? AND seq <= ?`), h.cpSeq, end)
			if err != nil {
				return fmt.Errorf("audit: prune: %w", err)
			}
			if removed, err = res.RowsAffected(); err != nil {
				return fmt.Errorf("audit: prune: %w", err)
			}
			now := l.now()
			if _, err := tx.ExecContext(ctx, l.db.Rebind(`UPDATE audit_head SET checkpoint_seq = ?, checkpoint_hash = ?, checkpoint_at = ? WHERE id = 1`),
				end, endHash, now.UnixMicro()); err != nil {
				return fmt.Errorf("audit: prune: %w", err)
			}
			detail, err := json.Marshal(pruneDetail{CheckpointSeq: end, CheckpointHash: endHash, Removed: removed,
				Before: before.UTC().Format(time.RFC3339Nano)})
			if err != nil {
				return err
			}
			ev, err := normalize(Event{Time: now, ActorID: ActorSystem, ActorName: "audit-retention", Action: ActionPrune,
				TargetType: "audit", Outcome: OutcomeOK, Detail: detail}, l.now)
			if err != nil {
				return err
			}
			if err := appendNormalized(ctx, tx, l.runner(), []Event{ev}); err != nil {
				return err
			}
			more = end == upto && upto < limit
			return nil
		})
		if err != nil {
			return total, err
		}
		total += removed
		if !more {
			return total, nil
		}
	}
}

// checkLink checks that what stays links to the last event removed: the
// first kept event's prev_hash (or, when every event goes, the head's hash)
// must be endHash. The segment verifying on its own is not enough: an
// event edited with its hash recomputed still chains to those before it,
// and only its successor's link shows the edit. Pruning it would destroy
// the evidence and leave verify blaming the successor.
func checkLink(ctx context.Context, tx *sql.Tx, d sqldb.Dialect, h head, end int64, endHash string) error {
	link := h.hash
	if end < h.seq {
		err := tx.QueryRowContext(ctx, sqldb.Rebind(d, `SELECT prev_hash FROM audit_events WHERE seq = ?`), end+1).Scan(&link)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("%w at event %d (missing); nothing was pruned (run verify)", ErrTampered, end+1)
		}
		if err != nil {
			return fmt.Errorf("audit: prune: %w", err)
		}
	}
	if link != endHash {
		return fmt.Errorf("%w at event %d (the events after it no longer link to it); nothing was pruned (run verify)", ErrTampered, end)
	}
	return nil
}

// keepBefore lowers end to just before the first event in (from, end] the
// keep condition names (WithKeep).
func (l *Log) keepBefore(ctx context.Context, tx *sql.Tx, from, end int64) (int64, error) {
	if l.keep == nil || end <= from {
		return end, nil
	}
	cond, args := l.keep(l.now())
	if cond == "" {
		return end, nil
	}
	var first sql.NullInt64
	q := `SELECT MIN(seq) FROM audit_events WHERE seq > ? AND seq <= ? AND (` + cond + `)`
	if err := tx.QueryRowContext(ctx, l.db.Rebind(q), append([]any{from, end}, args...)...).Scan(&first); err != nil {
		return 0, fmt.Errorf("audit: prune: preserved events: %w", err)
	}
	if first.Valid {
		return first.Int64 - 1, nil
	}
	return end, nil
}

// checkSegment verifies events (checkpoint, end] before they are removed and
// returns the hash of event end.
func checkSegment(ctx context.Context, tx *sql.Tx, d sqldb.Dialect, h head, end int64) (string, error) {
	rows, err := tx.QueryContext(ctx, sqldb.Rebind(d, `SELECT seq, at, actor_id, actor_name, role, action, target_type, target_id,
 request_id, client_ip, outcome, detail, prev_hash, hash FROM audit_events WHERE seq > ? AND seq <= ? ORDER BY seq`), h.cpSeq, end)
	if err != nil {
		return "", fmt.Errorf("audit: prune: %w", err)
	}
	defer rows.Close()
	var (
		seq, at int64
		f       [nFields]sql.RawBytes
		stored  sql.RawBytes
		buf     []byte
		sum     [64]byte
		prev    = []byte(h.cpHash)
		next    = h.cpSeq + 1
	)
	for rows.Next() {
		if err := rows.Scan(&seq, &at, &f[0], &f[1], &f[2], &f[3], &f[4], &f[5], &f[6], &f[7], &f[8], &f[9], &f[10], &stored); err != nil {
			return "", fmt.Errorf("audit: prune: %w", err)
		}
		buf = hashFields(buf, &sum, seq, at, f)
		if seq != next || !bytes.Equal(f[10], prev) || !bytes.Equal(sum[:], stored) {
			return "", fmt.Errorf("%w at event %d; nothing was pruned (run verify)", ErrTampered, min(seq, next))
		}
		prev = append(prev[:0], stored...)
		next++
	}

	if err := rows.Err(); err != nil {
		return "", fmt.Errorf("audit: prune: %w", err)
	}

	if next != end+1 {
		return "", fmt.Errorf("%w at event %d; nothing was pruned (run verify)", ErrTampered, next)
	}

	return string(prev), nil
}
