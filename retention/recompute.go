package retention

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"time"

	"github.com/casevault/casevault/cases"
	"github.com/casevault/casevault/sqldb"
)

// RecomputeOptions tunes Recompute.
type RecomputeOptions struct {
	// BatchSize is how many contacts one transaction updates (default 500).
	BatchSize int
	// After resumes after this contact id ("" = from the start).
	After string
}

// RecomputeResult says how far Recompute got.
type RecomputeResult struct {
	Examined int    `json:"examined"`
	Changed  int    `json:"changed"`
	LastID   string `json:"last_id"` // resume point when ctx ended early
}

// Recompute brings every contact's retain_until in line with the policy's
// schedule and its case's closed_at, after a schedule change. It walks the
// contacts by id in bounded batches, one short transaction each, so writes
// continue meanwhile; it stops between batches when ctx ends (the result's
// LastID is the resume point). Anonymized contacts keep no date.
//
// Each batch locks the cases it touches before reading closed_at, so a
// concurrent close or reopen (which recomputes its own contacts under the
// same lock) is never overwritten with a date from the old closed_at.
func Recompute(ctx context.Context, db *sqldb.DB, policy *Policy, opts RecomputeOptions) (RecomputeResult, error) {
	n := opts.BatchSize
	if n <= 0 {
		n = 500
	}
	res := RecomputeResult{LastID: opts.After}
	sc := policy.Schedule()
	for {
		if err := ctx.Err(); err != nil {
			return res, err
		}
		var got int
		err := db.InTx(ctx, func(tx *sql.Tx) error {
			got = 0
			ids, caseIDs, err := nextContactBatch(ctx, db, tx, res.LastID, n)
			if err != nil || len(ids) == 0 {
				return err
			}
			if err := lockCases(ctx, db, tx, caseIDs); err != nil {
				return err
			}
			args := make([]any, len(ids))
			for i, id := range ids {
				args[i] = id
			}
			rows, err := tx.QueryContext(ctx, db.Rebind(`SELECT c.id, c.purposes, c.occurred_at, c.retain_until, k.closed_at
				FROM contacts c JOIN cases k ON k.id = c.case_id
				WHERE c.anonymized_at IS NULL AND c.id IN (`+sqldb.Placeholders(len(ids))+`)`), args...)
			if err != nil {
				return fmt.Errorf("recompute: %w", err)
			}
			type upd struct {
				id    string
				until any
			}
			var ups []upd
			for rows.Next() {
				var id, ps string
				var occurred int64
				var until, closed sql.NullInt64
				if err := rows.Scan(&id, &ps, &occurred, &until, &closed); err != nil {
					rows.Close()
					return fmt.Errorf("recompute: %w", err)
				}
				var purposes []cases.Purpose
				if err := json.Unmarshal([]byte(ps), &purposes); err != nil {
					rows.Close()
					return fmt.Errorf("contact %s purposes: %w", id, err)
				}
				want, _ := sc.RetainUntil(purposes, sqldb.FromMicros(occurred), sqldb.TimePtr(closed))
				if !equalTime(want, sqldb.TimePtr(until)) {
					ups = append(ups, upd{id, sqldb.NullMicros(want)})
				}
			}
			if err := rows.Close(); err != nil {
				return fmt.Errorf("recompute: %w", err)
			}
			for _, u := range ups {
				if _, err := db.Exec(ctx, tx, `UPDATE contacts SET retain_until = ? WHERE id = ?`, u.until, u.id); err != nil {
					return fmt.Errorf("recompute: %w", err)
				}
			}
			got = len(ids)
			res.Examined += len(ids)
			res.Changed += len(ups)
			res.LastID = ids[len(ids)-1]
			return nil
		})
		if err != nil {
			return res, err
		}
		if got < n {
			break
		}
	}
	// Every date now follows sc: the sweeper may trust them again.
	err := db.InTx(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, db.Rebind(`UPDATE retention_state SET recomputed_version = ? WHERE id = 1`), sc.Version)
		return err
	})
	if err != nil {
		return res, fmt.Errorf("recompute: %w", err)
	}
	return res, nil
}

// recomputePending reports whether stored dates may not follow the policy's
// schedule yet (a schedule change whose recompute has not finished).
func recomputePending(ctx context.Context, db *sqldb.DB, policy *Policy) (bool, error) {
	var v int64
	if err := db.Read.QueryRowContext(ctx, `SELECT recomputed_version FROM retention_state WHERE id = 1`).Scan(&v); err != nil {
		return false, fmt.Errorf("retention state: %w", err)
	}
	return v != int64(policy.Schedule().Version), nil
}

func nextContactBatch(ctx context.Context, db *sqldb.DB, tx *sql.Tx, after string, n int) (ids, caseIDs []string, err error) {
	rows, err := tx.QueryContext(ctx, db.Rebind(`SELECT id, case_id FROM contacts WHERE id > ? ORDER BY id LIMIT ?`), after, n)
	if err != nil {
		return nil, nil, fmt.Errorf("recompute: %w", err)
	}
	defer rows.Close()
	seen := map[string]bool{}
	for rows.Next() {
		var id, caseID string
		if err := rows.Scan(&id, &caseID); err != nil {
			return nil, nil, fmt.Errorf("recompute: %w", err)
		}
		ids = append(ids, id)
		if !seen[caseID] {
			seen[caseID] = true
			caseIDs = append(caseIDs, caseID)
		}
	}
	return ids, caseIDs, rows.Err()
}

// lockCases locks case rows in id order (PostgreSQL), the order every
// multi-case writer here uses, so two of them cannot deadlock.
func lockCases(ctx context.Context, db *sqldb.DB, tx *sql.Tx, caseIDs []string) error {
	if db.Dialect != sqldb.Postgres || len(caseIDs) == 0 {
		return nil
	}
	args := make([]any, len(caseIDs))
	for i, id := range caseIDs {
		args[i] = id
	}
	rows, err := tx.QueryContext(ctx, db.Rebind(`SELECT id FROM cases WHERE id IN (`+sqldb.Placeholders(len(caseIDs))+`) ORDER BY id FOR UPDATE`), args...)
	if err != nil {
		return fmt.Errorf("lock cases: %w", err)
	}
	return rows.Close()
}

func equalTime(a, b *time.Time) bool {
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	return a.Equal(*b)
}
