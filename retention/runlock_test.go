package retention

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/casevault/casevault/sqldb"
	"github.com/casevault/casevault/sqldb/sqldbtest"
)

// TestStartWaitsForAnEndingRun: a run records its end before it lets go of
// the sweep lock. A client that saw it end and starts the next sweep at
// once was refused (409 "already running"); it now waits for the ending
// run's lock. A run recorded as running still refuses at once.
func TestStartWaitsForAnEndingRun(t *testing.T) {
	sqldbtest.ForEachDialect(t, func(t *testing.T, db *sqldb.DB) {
		ctx := context.Background()
		s := NewSweeper(db, SweeperOptions{Policy: NewPolicy(DefaultSchedule())})

		tests := []struct {
			name        string
			runningRow  bool
			wantRefused bool
		}{
			{"the holder has recorded its end", false, false},
			{"a run is recorded running", true, true},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				unlock, err := s.lock(ctx)
				if err != nil {
					t.Fatal(err)
				}
				if tt.runningRow {
					if _, err := db.Write.ExecContext(ctx, db.Rebind(`INSERT INTO retention_runs (id, status, dry_run, started_at, report) VALUES (?, ?, ?, ?, '{}')`),
						"live-run", StatusRunning, true, sqldb.Micros(time.Now())); err != nil {
						t.Fatal(err)
					}
				}
				released := time.AfterFunc(200*time.Millisecond, unlock)
				defer released.Stop()

				_, done, err := s.Start(ctx, RunOptions{DryRun: true})
				if refused := errors.Is(err, ErrSweepRunning); refused != tt.wantRefused {
					t.Fatalf("Start while the lock is held: %v; want refused %v", err, tt.wantRefused)
				}
				if err == nil {
					if rep := <-done; rep.Status != StatusSucceeded {
						t.Fatalf("run after the wait: %+v", rep)
					}
				}
				time.Sleep(250 * time.Millisecond) // the held lock is released by then
			})
		}
	})
}
