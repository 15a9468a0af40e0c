package audit

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/casevault/casevault/sqldb"
)

// VerifyResult is the outcome of walking the chain. FirstBad is the lowest
// seq at which the chain cannot be trusted: an altered event, the seq of a
// missing event, an inserted or misplaced event, or the first event after a
// checkpoint that does not match.
type VerifyResult struct {
	OK       bool   `json:"ok"`
	Events   int64  `json:"events"`
	FirstBad *int64 `json:"first_bad,omitempty"`
	Reason   string `json:"reason,omitempty"`
	// HeadSeq and HeadHash identify the verified chain; recording them
	// outside the database (a ticket, a log shipper) also exposes a later
	// truncation or wholesale rewrite, which no in-database check can.
	HeadSeq       int64  `json:"head_seq"`
	HeadHash      string `json:"head_hash"`
	CheckpointSeq int64  `json:"checkpoint_seq"`
}

func (r *VerifyResult) fail(seq int64, reason string, args ...any) {
	r.OK = false
	r.FirstBad = &seq
	r.Reason = fmt.Sprintf(reason, args...)
}

// Verify walks the whole chain in seq order in one read snapshot, streaming
// rows (memory does not grow with the trail), and reports the first event
// that does not verify. It detects an edited event (its hash no longer
// matches its content), a deleted event (a gap in seq, or a head beyond the
// last event), an inserted event (a seq beyond the head, at or before the
// checkpoint, or breaking the prev-hash links), reordered or swapped rows
// (seq is part of the hashed content), and an altered checkpoint (the first
// remaining event does not link to it, or it differs from the one the last
// prune event recorded). An error is returned only when the walk itself
// fails; a broken chain is a result with OK false.
func (l *Log) Verify(ctx context.Context) (VerifyResult, error) {
	var opts *sql.TxOptions
	if l.db.Dialect == sqldb.Postgres {
		opts = &sql.TxOptions{Isolation: sql.LevelRepeatableRead, ReadOnly: true}
	}
	tx, err := l.db.Read.BeginTx(ctx, opts)
	if err != nil {
		return VerifyResult{}, fmt.Errorf("audit: verify: %w", err)
	}
	defer tx.Rollback() //nolint:errcheck // read-only
	res, err := verifyTx(ctx, tx, l.db.Dialect)
	if err != nil {
		return VerifyResult{}, fmt.Errorf("audit: verify: %w", err)
	}
	return res, nil
}

func verifyTx(ctx context.Context, tx *sql.Tx, d sqldb.Dialect) (VerifyResult, error) {
	var h head
	err := tx.QueryRowContext(ctx, `SELECT seq, hash, checkpoint_seq, checkpoint_hash, checkpoint_at FROM audit_head WHERE id = 1`).
		Scan(&h.seq, &h.hash, &h.cpSeq, &h.cpHash, &h.cpAt)
	if errors.Is(err, sql.ErrNoRows) {
		res := VerifyResult{}
		res.fail(1, "the audit_head row is missing")
		return res, nil
	}
	if err != nil {
		return VerifyResult{}, err
	}
	res := VerifyResult{OK: true, HeadSeq: h.seq, HeadHash: h.hash, CheckpointSeq: h.cpSeq}

	// The checkpoint is outside the chain; the prune that wrote it appended
	// an event recording it, which the chain protects.
	cpReason, err := checkCheckpoint(ctx, tx, d, h)
	if err != nil {
		return VerifyResult{}, err
	}

	rows, err := tx.QueryContext(ctx, `SELECT seq, at, actor_id, actor_name, role, action, target_type, target_id,
 request_id, client_ip, outcome, detail, prev_hash, hash FROM audit_events ORDER BY seq`)
	if err != nil {
		return VerifyResult{}, err
	}
	defer rows.Close()
	var (
		seq, at  int64
		f        [nFields]sql.RawBytes
		stored   sql.RawBytes
		buf      []byte
		sum      [64]byte
		prev     = []byte(h.cpHash)
		expected = h.cpSeq + 1
		dest     = []any{&seq, &at, &f[0], &f[1], &f[2], &f[3], &f[4], &f[5], &f[6], &f[7], &f[8], &f[9], &f[10], &stored}
	)
	bad := func() bool { return !res.OK }
	for rows.Next() {
		if err := rows.Scan(dest...); err != nil {
			return VerifyResult{}, err
		}
		res.Events++
		switch {
		case seq <= h.cpSeq:
			res.fail(seq, "event %d is at or before the checkpoint (%d): inserted, or the checkpoint was altered", seq, h.cpSeq)
		case seq > expected:
			res.fail(expected, "event %d is missing (next is %d)", expected, seq)
		case !bytes.Equal(f[10], prev):
			res.fail(seq, "event %d does not link to the event before it (prev_hash differs): inserted, moved, or its predecessor was altered", seq)
		default:
			buf = hashFields(buf, &sum, seq, at, f)
			if !bytes.Equal(sum[:], stored) {
				res.fail(seq, "event %d was altered (its hash does not match its content)", seq)
			}
		}
		if bad() {
			break
		}
		prev = append(prev[:0], stored...)
		expected++
	}
	if err := rows.Err(); err != nil {
		return VerifyResult{}, err
	}
	if !bad() {
		last := expected - 1
		switch {
		case last < h.seq:
			res.fail(last+1, "events %d to %d are missing (the head is at %d)", last+1, h.seq, h.seq)
		case last > h.seq:
			res.fail(h.seq+1, "event %d is beyond the head (%d): inserted", h.seq+1, h.seq)
		case !bytes.Equal(prev, []byte(h.hash)):
			res.fail(h.seq, "the head hash does not match event %d", h.seq)
		}
	}
	if cpReason != "" && (res.OK || *res.FirstBad > h.cpSeq+1) {
		res.fail(h.cpSeq+1, "%s", cpReason)
	}
	return res, nil
}

// checkCheckpoint compares the checkpoint with the one the latest prune
// event recorded; it returns why they differ, or "".
func checkCheckpoint(ctx context.Context, tx *sql.Tx, d sqldb.Dialect, h head) (string, error) {
	var detail string
	err := tx.QueryRowContext(ctx, sqldb.Rebind(d, `SELECT detail FROM audit_events WHERE action = ? ORDER BY seq DESC LIMIT 1`), ActionPrune).Scan(&detail)
	if errors.Is(err, sql.ErrNoRows) {
		if h.cpSeq != 0 || h.cpHash != GenesisHash {
			return fmt.Sprintf("the checkpoint (%d) was not written by a prune", h.cpSeq), nil
		}
		return "", nil
	}
	if err != nil {
		return "", err
	}
	var pd pruneDetail
	if err := json.Unmarshal([]byte(detail), &pd); err != nil {
		return fmt.Sprintf("the last prune event's detail is not readable: %v", err), nil
	}
	if pd.CheckpointSeq != h.cpSeq || pd.CheckpointHash != h.cpHash {
		return fmt.Sprintf("the checkpoint (%d) differs from the one the last prune recorded (%d)", h.cpSeq, pd.CheckpointSeq), nil
	}
	return "", nil
}
