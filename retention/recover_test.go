package retention_test

import (
	"context"
	"testing"
	"time"

	"github.com/casevault/casevault/retention"
)

// TestRecoverRunsAtStartup: a sweep row a killed process left "running" is
// "interrupted" (column and report, which GetRun returns) as soon as the
// next process starts, not only at its next sweep; finished runs are left
// alone. Both engines.
func TestRecoverRunsAtStartup(t *testing.T) {
	forEachDialect(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		done, err := e.sweeper.Run(ctx, retention.RunOptions{Now: base})
		if err != nil {
			t.Fatal(err)
		}
		// What kill -9 during a sweep leaves behind.
		const dead = "01900000-0000-7000-8000-0000000000de"
		report := `{"id":"` + dead + `","status":"running","dry_run":false,"examined":7,"deleted":3,"started_at":"2024-01-01T00:00:00Z","finished_at":null}`
		if _, err := e.db.Write.ExecContext(ctx, e.db.Rebind(`INSERT INTO retention_runs (id, status, dry_run, started_at, report) VALUES (?, ?, ?, ?, ?)`),
			dead, retention.StatusRunning, false, time.Now().UnixMicro(), report); err != nil {
			t.Fatal(err)
		}
		// The next start-up: a new sweeper on the same database.
		n, err := e.newSweeper(e.db).RecoverRuns(ctx)
		if err != nil || n != 1 {
			t.Fatalf("recover: %d %v, want 1", n, err)
		}
		r, err := e.sweeper.GetRun(ctx, dead)
		if err != nil || r.Status != retention.StatusInterrupted || r.Error == "" || r.Deleted != 3 {
			t.Fatalf("dead sweep after start-up: %+v %v", r, err)
		}
		var col string
		if err := e.db.Read.QueryRowContext(ctx, e.db.Rebind(`SELECT status FROM retention_runs WHERE id = ?`), dead).Scan(&col); err != nil || col != retention.StatusInterrupted {
			t.Fatalf("status column: %q %v", col, err)
		}
		if r, err := e.sweeper.GetRun(ctx, done.ID); err != nil || r.Status != done.Status {
			t.Fatalf("a finished sweep was touched: %+v %v", r, err)
		}
		if n, err := e.newSweeper(e.db).RecoverRuns(ctx); err != nil || n != 0 {
			t.Fatalf("second recovery: %d %v", n, err)
		}
	})
}
