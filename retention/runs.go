package retention

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/casevault/casevault/cases"
	"github.com/casevault/casevault/sqldb"
)

// ErrSweepRunning is returned by Run while another sweep holds the lock
// (in this process, or on PostgreSQL in any replica).
var ErrSweepRunning = errors.New("a retention sweep is already running")

// sweepLockKey is the PostgreSQL advisory lock class of the sweeper (the
// migration lock is 7345001). Advisory locks are per database, so the
// second key is the schema: installations (and test runs) sharing one
// database in separate schemas do not block each other.
const sweepLockKey = 7345006

// Run statuses.
const (
	StatusRunning     = "running"
	StatusSucceeded   = "succeeded"
	StatusFailed      = "failed"
	StatusInterrupted = "interrupted"
	StatusDeferred    = "deferred: index behind"
)

// Item actions in a report.
const (
	ItemDelete     = "delete"
	ItemAnonymize  = "anonymize"
	ItemRedact     = "redact"
	ItemDeleteCase = "delete_case"
	ItemHeld       = "skip_held"
	ItemReschedule = "reschedule" // the stored date was stale; a new one was set
	ItemError      = "error"
)

// MaxReportItems bounds the items a report keeps; the counters stay exact.
const MaxReportItems = 1000

// errDied is the error recorded for a run whose process died.
const errDied = "interrupted: the process running it stopped before it finished (crash, kill or power loss)"

// Item is one thing a sweep did (or, in a dry run, would do).
type Item struct {
	ContactID string `json:"contact_id,omitempty"`
	CaseID    string `json:"case_id"`
	// CustomerID names the profile of a customer_profile item.
	CustomerID string   `json:"customer_id,omitempty"`
	Action     string   `json:"action"`
	Rule       string   `json:"rule,omitempty"`     // the deciding purpose
	Category   string   `json:"category,omitempty"` // for redactions
	HeldBy     []string `json:"held_by,omitempty"`
	Error      string   `json:"error,omitempty"`
}

// RunReport is the outcome of a sweep.
type RunReport struct {
	ID           string `json:"id"`
	Status       string `json:"status"`
	DryRun       bool   `json:"dry_run"`
	Examined     int    `json:"examined"`
	Deleted      int    `json:"deleted"`
	Anonymized   int    `json:"anonymized"`
	Redacted     int    `json:"redacted"`
	CasesDeleted int    `json:"cases_deleted"`
	// ProfilesDeleted counts the customer profiles the customer_profile
	// rule deleted.
	ProfilesDeleted int `json:"profiles_deleted"`
	Rescheduled     int `json:"rescheduled"`
	Recomputed      int `json:"recomputed"` // dates brought up to the schedule first
	SkippedHeld     int `json:"skipped_held"`
	// FlagsCleared counts the S3 legal-hold flags cleared of holds whose
	// release grace ended.
	FlagsCleared int `json:"legal_hold_flags_cleared,omitempty"`
	// PurgesFinished counts earlier disposals whose blobs this sweep
	// removed and verified gone (the store had been down or refused).
	PurgesFinished int        `json:"purges_finished,omitempty"`
	Errors         int        `json:"errors"`
	Error          string     `json:"error,omitempty"`
	StartedAt      time.Time  `json:"started_at"`
	FinishedAt     *time.Time `json:"finished_at"`
	Items          []Item     `json:"items,omitempty"`
	ItemsTruncated bool       `json:"items_truncated,omitempty"`
}

func (r *RunReport) add(it Item) {
	switch it.Action {
	case ItemDelete:
		r.Deleted++
	case ItemAnonymize:
		r.Anonymized++
	case ItemRedact:
		r.Redacted++
	case ItemDeleteCase:
		r.CasesDeleted++
	case ItemDeleteCustomer:
		r.ProfilesDeleted++
	case ItemHeld:
		r.SkippedHeld++
	case ItemReschedule:
		r.Rescheduled++
	case ItemError:
		r.Errors++
	}

	if len(r.Items) < MaxReportItems {
		r.Items = append(r.Items, it)
	} else {
		r.ItemsTruncated = true
	}
}

// lock takes the sweep lock; the returned function releases it.
func (s *Sweeper) lock(ctx context.Context) (func(), error) {
	if !s.mu.TryLock() {
		return nil, ErrSweepRunning
	}
	if s.db.Dialect != sqldb.Postgres {
		return s.mu.Unlock, nil
	}

	// A session lock on a dedicated connection: it lasts as long as the
	// connection, and dies with it if this process does.
	conn, err := s.db.Write.Conn(ctx)
	if err != nil {
		s.mu.Unlock()
		return nil, sqldb.Fail("sweep lock", err)
	}
	var ok bool
	if err := conn.QueryRowContext(ctx, `SELECT pg_try_advisory_lock($1, hashtext(current_schema()))`, sweepLockKey).Scan(&ok); err != nil {
		conn.Close()
		s.mu.Unlock()
		return nil, sqldb.Fail("sweep lock", err)
	}
	if !ok {
		conn.Close()
		s.mu.Unlock()
		return nil, ErrSweepRunning
	}

	return func() {
		uctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if _, err := conn.ExecContext(uctx, `SELECT pg_advisory_unlock($1, hashtext(current_schema()))`, sweepLockKey); err != nil {
			// Unlock failed: drop the connection so the server frees the lock.
			_ = conn.Raw(func(any) error { return driver.ErrBadConn })
		}
		conn.Close()
		s.mu.Unlock()
	}, nil
}

// finishingWait bounds how long a new sweep waits for the lock of a run
// that has recorded its end but not yet let go of the lock.
const finishingWait = 2 * time.Second

// lockWhenEnded takes the sweep lock. A run records how it ended while it
// still holds the lock (so two sweeps never overlap), which leaves a moment
// when a client that saw the run end is refused its next one; when no run is
// recorded running, the holder is ending and the lock is waited for, briefly.
func (s *Sweeper) lockWhenEnded(ctx context.Context) (func(), error) {
	deadline := time.Now().Add(finishingWait)
	for {
		unlock, err := s.lock(ctx)
		if !errors.Is(err, ErrSweepRunning) || time.Now().After(deadline) {
			return unlock, err
		}

		var running int
		if err := s.db.Read.QueryRowContext(ctx, s.db.Rebind(`SELECT COUNT(*) FROM retention_runs WHERE status = ?`), StatusRunning).Scan(&running); err != nil {
			return nil, sqldb.Fail("sweep runs", err)
		}
		if running > 0 {
			return nil, ErrSweepRunning
		}

		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func (s *Sweeper) startRun(ctx context.Context, rep *RunReport) error {
	return s.db.InTx(ctx, func(tx *sql.Tx) error {
		// We hold the sweep lock: any run still "running" died with its process.
		if _, err := s.markInterrupted(ctx, tx); err != nil {
			return err
		}

		doc, _ := json.Marshal(rep)
		if _, err := tx.ExecContext(ctx, s.db.Rebind(`INSERT INTO retention_runs (id, status, dry_run, started_at, report) VALUES (?, ?, ?, ?, ?)`),
			rep.ID, rep.Status, rep.DryRun, sqldb.Micros(rep.StartedAt), string(doc)); err != nil {
			return sqldb.Fail("sweep runs", err)
		}
		return nil
	})
}

// markInterrupted marks every run still "running" interrupted, in its
// status column and in its stored report (which GetRun returns). The
// caller holds the sweep lock, so none of them is alive.
func (s *Sweeper) markInterrupted(ctx context.Context, tx *sql.Tx) (int, error) {
	type dead struct{ id, report string }
	ds, err := sqldb.Collect(ctx, tx, s.db.Rebind(`SELECT id, report FROM retention_runs WHERE status = ?`), []any{StatusRunning},
		func(rows *sql.Rows) (dead, error) {
			var d dead
			return d, rows.Scan(&d.id, &d.report)
		})
	if err != nil {
		return 0, sqldb.Fail("sweep runs", err)
	}

	for _, d := range ds {
		var rep RunReport
		// A report that does not parse is replaced by a minimal one.
		_ = json.Unmarshal([]byte(d.report), &rep)
		rep.ID, rep.Status, rep.Error = d.id, StatusInterrupted, errDied
		doc, _ := json.Marshal(rep)
		if _, err := tx.ExecContext(ctx, s.db.Rebind(`UPDATE retention_runs SET status = ?, report = ? WHERE id = ? AND status = ?`),
			StatusInterrupted, string(doc), d.id, StatusRunning); err != nil {
			return 0, sqldb.Fail("sweep runs", err)
		}
	}
	return len(ds), nil
}

// RecoverRuns marks the sweeps a crashed process left "running" as
// interrupted; the server calls it at start-up (a sweep marks them too
// when it starts, but the next one may be a day away). When another sweep
// holds the lock it does nothing: that sweep marked them when it began.
// On SQLite the lock is per process, so a sweep running in a separate CLI
// process at that moment would be marked too.
func (s *Sweeper) RecoverRuns(ctx context.Context) (int, error) {
	unlock, err := s.lock(ctx)
	if errors.Is(err, ErrSweepRunning) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	defer unlock()

	var n int
	err = s.db.InTx(ctx, func(tx *sql.Tx) error {
		var err error
		n, err = s.markInterrupted(ctx, tx)
		return err
	})
	return n, err
}

func (s *Sweeper) finishRun(ctx context.Context, rep *RunReport) error {
	doc, err := json.Marshal(rep)
	if err != nil {
		return fmt.Errorf("sweep report: %w", err)
	}

	return s.db.InTx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, s.db.Rebind(`UPDATE retention_runs SET status = ?, finished_at = ?, report = ? WHERE id = ?`),
			rep.Status, sqldb.NullMicros(rep.FinishedAt), string(doc), rep.ID); err != nil {
			return sqldb.Fail("sweep runs", err)
		}
		return nil
	})
}

// GetRun reads a run's report; an unknown id gives cases.ErrNotFound.
func (s *Sweeper) GetRun(ctx context.Context, id string) (RunReport, error) {
	var doc string
	err := s.db.Read.QueryRowContext(ctx, s.db.Rebind(`SELECT report FROM retention_runs WHERE id = ?`), id).Scan(&doc)
	if errors.Is(err, sql.ErrNoRows) {
		return RunReport{}, fmt.Errorf("retention run %s: %w", id, cases.ErrNotFound)
	}
	if err != nil {
		return RunReport{}, sqldb.Fail("retention run", err)
	}

	var rep RunReport
	if err := json.Unmarshal([]byte(doc), &rep); err != nil {
		return RunReport{}, fmt.Errorf("retention run %s: %w", id, err)
	}
	return rep, nil
}
