package retention

import (
	"context"
	"database/sql"
	"errors"
	"slices"
	"time"

	"github.com/casevault/casevault/sqldb"
	"github.com/casevault/casevault/sqlstore"
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

// errScheduleMoved restarts a recompute: a newer schedule was stored while
// it walked.
var errScheduleMoved = errors.New("the schedule changed during the recompute")

// Recompute brings every contact's retain_until in line with the schedule
// in force (read from the store) and its case's closed_at, after a schedule
// change. It walks the contacts by id in bounded batches, one short
// transaction each, so writes continue meanwhile; it stops between batches
// when ctx ends (the result's LastID is the resume point). Anonymized
// contacts keep no date.
//
// Each batch locks the cases it touches before reading closed_at and the
// schedule, so a concurrent close or reopen (which recomputes its own
// contacts under the same lock) is never overwritten with a date from the
// old closed_at. When a newer schedule is stored meanwhile (by any
// process), the walk starts again under it. recomputed_version only ever
// moves forward, and only to the version that is still current when the
// walk ends: a process holding an older schedule can never mark the dates
// of a newer one stale, nor an older one done.
func Recompute(ctx context.Context, db *sqldb.DB, policy *Policy, opts RecomputeOptions) (RecomputeResult, error) {
	n := opts.BatchSize
	if n <= 0 {
		n = 500
	}
	res := RecomputeResult{LastID: opts.After}
	for {
		sc, err := policy.In(ctx, db.Read)
		if err != nil {
			return res, err
		}
		err = recomputeWalk(ctx, db, policy, sc, n, &res)
		if errors.Is(err, errScheduleMoved) {
			res.LastID = ""
			continue
		}
		return res, err
	}
}

// recomputeWalk recomputes every date after res.LastID under sc and then
// records sc as recomputed; errScheduleMoved when sc stops being current.
func recomputeWalk(ctx context.Context, db *sqldb.DB, policy *Policy, sc Schedule, n int, res *RecomputeResult) error {
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		var got int
		err := db.InTx(ctx, func(tx *sql.Tx) error {
			ids, changed, err := recomputeBatch(ctx, db, tx, policy, sc.Version, res.LastID, n)
			if err != nil || len(ids) == 0 {
				return err
			}
			got = len(ids)
			res.Examined += len(ids)
			res.Changed += changed
			res.LastID = ids[len(ids)-1]
			return nil
		})
		if err != nil {
			return err
		}

		if got < n {
			break
		}
	}

	// Every date now follows sc: the sweeper may trust them again.
	return db.InTx(ctx, func(tx *sql.Tx) error {
		if _, err := lockState(ctx, db, tx); err != nil {
			return err
		}
		cur, err := policy.In(ctx, tx)
		if err != nil {
			return err
		}
		if cur.Version != sc.Version {
			return errScheduleMoved
		}
		if _, err := tx.ExecContext(ctx, db.Rebind(`UPDATE retention_state SET recomputed_version = ? WHERE id = 1 AND recomputed_version < ?`), sc.Version, sc.Version); err != nil {
			return sqldb.Fail("recompute", err)
		}
		return nil
	})
}

// recomputePending reports whether stored dates may not follow the schedule
// in force yet (a schedule change whose recompute has not finished).
func recomputePending(ctx context.Context, db *sqldb.DB, policy *Policy) (bool, error) {
	var v int64
	if err := db.Read.QueryRowContext(ctx, `SELECT recomputed_version FROM retention_state WHERE id = 1`).Scan(&v); err != nil {
		return false, sqldb.Fail("retention state", err)
	}
	sc, err := policy.In(ctx, db.Read)
	if err != nil {
		return false, err
	}
	return v < int64(sc.Version), nil
}

// recomputeBatch brings the dates of the n contacts after the id after up
// to the schedule version want, in tx; it returns the ids it examined and
// how many dates changed, or errScheduleMoved when want is no longer the
// schedule in force.
func recomputeBatch(ctx context.Context, db *sqldb.DB, tx *sql.Tx, policy *Policy, want int, after string, n int) ([]string, int, error) {
	rows, err := sqlstore.ContactsAfter(ctx, db, tx, after, n)
	if err != nil || len(rows) == 0 {
		return nil, 0, sqldb.Fail("recompute", err)
	}

	ids := make([]string, len(rows))
	var caseIDs []string
	for i, r := range rows {
		ids[i] = r.ID
		if !slices.Contains(caseIDs, r.CaseID) {
			caseIDs = append(caseIDs, r.CaseID)
		}
	}
	slices.Sort(caseIDs)
	if err := lockCases(ctx, db, tx, caseIDs); err != nil {
		return nil, 0, err
	}

	sc, err := policy.In(ctx, tx)
	if err != nil {
		return nil, 0, err
	}
	if sc.Version != want {
		return nil, 0, errScheduleMoved
	}

	live, err := readContacts(ctx, db, tx, ids, nil)
	if err != nil {
		return nil, 0, err
	}
	changed := 0
	for _, id := range ids { // in id order, as before
		c, ok := live[id]
		if !ok || c.Anonymized {
			continue
		}
		want, _ := sc.RetainUntil(c.Purposes, c.OccurredAt, c.CaseClosedAt)
		if equalTime(want, c.RetainUntil) {
			continue
		}
		if err := sqlstore.SetRetainUntil(ctx, db, tx, id, want); err != nil {
			return nil, 0, sqldb.Fail("recompute", err)
		}
		changed++
	}
	return ids, changed, nil
}

// lockCases locks case rows in id order (PostgreSQL), the order every
// multi-case writer here uses, so two of them cannot deadlock.
func lockCases(ctx context.Context, db *sqldb.DB, tx *sql.Tx, caseIDs []string) error {
	if db.Dialect != sqldb.Postgres || len(caseIDs) == 0 {
		return nil
	}
	inCond, inArgs := sqldb.AnyOf(db.Dialect, "id", caseIDs)
	rows, err := tx.QueryContext(ctx, db.Rebind(`SELECT id FROM cases WHERE `+inCond+` ORDER BY id FOR UPDATE`), inArgs...)
	if err != nil {
		return sqldb.Fail("lock cases", err)
	}
	return rows.Close()
}

func equalTime(a, b *time.Time) bool {
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	return a.Equal(*b)
}
