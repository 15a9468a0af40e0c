package audit

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"

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
	// Pending counts the events appended but not yet sequenced (in the
	// same snapshot), and OldestPendingSeconds is the age of the oldest;
	// they are not part of the chain verified.
	Pending              int64   `json:"pending"`
	OldestPendingSeconds float64 `json:"oldest_pending_seconds"`
	oldestPendingAt      int64
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
	var res VerifyResult
	var err error
	if l.db.Dialect == sqldb.Postgres {
		res, err = l.verifyPgx(ctx)
	} else {
		res, err = l.verifySQL(ctx)
	}
	if err != nil {
		return VerifyResult{}, fmt.Errorf("audit: verify: %w", err)
	}
	if res.Pending > 0 {
		res.OldestPendingSeconds = max(l.now().Sub(time.UnixMicro(res.oldestPendingAt)).Seconds(), 0)
	}
	return res, nil
}

const selectChain = `SELECT seq, at, actor_id, actor_name, role, action, target_type, target_id,
 request_id, client_ip, outcome, detail, prev_hash, hash FROM audit_events ORDER BY seq`

const selectHead = `SELECT seq, hash, checkpoint_seq, checkpoint_hash, checkpoint_at FROM audit_head WHERE id = 1`

const selectLastPrune = `SELECT detail FROM audit_events WHERE action = ? ORDER BY seq DESC LIMIT 1`

// chainRows streams the rows of selectChain. Row's slices are valid until
// the next call to Next.
type chainRows interface {
	Next() bool
	Row() (seq, at int64, f *[nFields][]byte, hash []byte, err error)
	Err() error
}

// scanFunc runs a single-row query; errors.Is(err, sql.ErrNoRows) when the
// row is missing.
type scanFunc func(q string, args []any, dest ...any) error

func (l *Log) verifySQL(ctx context.Context) (VerifyResult, error) {
	tx, err := l.db.Read.BeginTx(ctx, nil)
	if err != nil {
		return VerifyResult{}, err
	}
	defer tx.Rollback() //nolint:errcheck // read-only
	scan := func(q string, args []any, dest ...any) error {
		return tx.QueryRowContext(ctx, l.db.Rebind(q), args...).Scan(dest...)
	}
	return verifyChain(scan, func() (chainRows, func(), error) {
		rows, err := tx.QueryContext(ctx, selectChain)
		if err != nil {
			return nil, nil, err
		}
		r := &sqlRows{rows: rows}
		r.dest = []any{&r.seq, &r.at}
		for i := range r.raw {
			r.dest = append(r.dest, &r.raw[i])
		}
		r.dest = append(r.dest, &r.hash)
		return r, func() { rows.Close() }, nil
	})
}

type sqlRows struct {
	rows    *sql.Rows
	seq, at int64
	raw     [nFields]sql.RawBytes
	f       [nFields][]byte
	hash    sql.RawBytes
	dest    []any
}

func (r *sqlRows) Next() bool { return r.rows.Next() }
func (r *sqlRows) Err() error { return r.rows.Err() }
func (r *sqlRows) Row() (int64, int64, *[nFields][]byte, []byte, error) {
	if err := r.rows.Scan(r.dest...); err != nil {
		return 0, 0, nil, nil, err
	}
	for i, b := range r.raw {
		r.f[i] = b
	}
	return r.seq, r.at, &r.f, r.hash, nil
}

// verifyPgx walks the chain through pgx itself: its raw row values are the
// bytes off the wire, without database/sql's per-column conversions and
// allocations, which dominate a walk of millions of rows.
func (l *Log) verifyPgx(ctx context.Context) (VerifyResult, error) {
	conn, err := l.db.Read.Conn(ctx)
	if err != nil {
		return VerifyResult{}, err
	}
	defer conn.Close()
	var res VerifyResult
	err = conn.Raw(func(dc any) error {
		pc, ok := sqldb.PgxConn(dc)
		if !ok {
			return fmt.Errorf("unexpected PostgreSQL driver connection %T", dc)
		}
		tx, err := pc.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
		if err != nil {
			return err
		}
		defer tx.Rollback(ctx) //nolint:errcheck // read-only
		scan := func(q string, args []any, dest ...any) error {
			err := tx.QueryRow(ctx, sqldb.Rebind(sqldb.Postgres, q), args...).Scan(dest...)
			if errors.Is(err, pgx.ErrNoRows) {
				return sql.ErrNoRows
			}
			return err
		}
		res, err = verifyChain(scan, func() (chainRows, func(), error) {
			rows, err := tx.Query(ctx, selectChain)
			if err != nil {
				return nil, nil, err
			}
			return &pgxRows{rows: rows}, rows.Close, nil
		})
		return err
	})
	return res, err
}

type pgxRows struct {
	rows pgx.Rows
	f    [nFields][]byte
}

func (r *pgxRows) Next() bool { return r.rows.Next() }
func (r *pgxRows) Err() error { return r.rows.Err() }
func (r *pgxRows) Row() (int64, int64, *[nFields][]byte, []byte, error) {
	vals := r.rows.RawValues()
	fds := r.rows.FieldDescriptions()
	if len(vals) != nFields+3 {
		return 0, 0, nil, nil, fmt.Errorf("%d columns, want %d", len(vals), nFields+3)
	}
	seq, err := pgInt(fds[0].Format, vals[0])
	if err != nil {
		return 0, 0, nil, nil, err
	}
	at, err := pgInt(fds[1].Format, vals[1])
	if err != nil {
		return 0, 0, nil, nil, err
	}
	copy(r.f[:], vals[2:2+nFields])
	return seq, at, &r.f, vals[nFields+2], nil
}

func pgInt(format int16, b []byte) (int64, error) {
	if format == pgx.BinaryFormatCode {
		if len(b) != 8 {
			return 0, fmt.Errorf("bigint of %d bytes", len(b))
		}
		return int64(binary.BigEndian.Uint64(b)), nil
	}
	return strconv.ParseInt(string(b), 10, 64)
}

// verifyChain checks the head, the checkpoint and every event, in one
// snapshot that scan and open read from.
func verifyChain(scan scanFunc, open func() (chainRows, func(), error)) (VerifyResult, error) {
	var h head
	err := scan(selectHead, nil, &h.seq, &h.hash, &h.cpSeq, &h.cpHash, &h.cpAt)
	if errors.Is(err, sql.ErrNoRows) {
		res := VerifyResult{}
		res.fail(1, "the audit_head row is missing")
		return res, nil
	}

	if err != nil {
		return VerifyResult{}, err
	}

	res := VerifyResult{OK: true, HeadSeq: h.seq, HeadHash: h.hash, CheckpointSeq: h.cpSeq}
	if err := scan(`SELECT COUNT(*), COALESCE(MIN(at), 0) FROM audit_pending`, nil, &res.Pending, &res.oldestPendingAt); err != nil {
		return VerifyResult{}, err
	}

	// The checkpoint is outside the chain; the prune that wrote it appended
	// an event recording it, which the chain protects.
	cpReason, err := checkCheckpoint(scan, h)
	if err != nil {
		return VerifyResult{}, err
	}

	rows, closeRows, err := open()
	if err != nil {
		return VerifyResult{}, err
	}
	defer closeRows()
	var (
		buf      []byte
		sum      [64]byte
		prev     = []byte(h.cpHash)
		expected = h.cpSeq + 1
	)
	for rows.Next() {
		seq, at, f, stored, err := rows.Row()
		if err != nil {
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
			buf = hashFields(buf, &sum, seq, at, *f)
			if !bytes.Equal(sum[:], stored) {
				res.fail(seq, "event %d was altered (its hash does not match its content)", seq)
			}
		}
		if !res.OK {
			break
		}
		prev = append(prev[:0], stored...)
		expected++
	}

	if err := rows.Err(); err != nil {
		return VerifyResult{}, err
	}

	if res.OK {
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
func checkCheckpoint(scan scanFunc, h head) (string, error) {
	var detail string
	err := scan(selectLastPrune, []any{ActionPrune}, &detail)
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
