package backup_test

import (
	"context"
	"testing"
	"time"

	"github.com/casevault/casevault/archive/backup"
	"github.com/casevault/casevault/testkit"
)

// TestRecoverRuns: a run row a killed process left "running" is
// "interrupted" after the next start-up (RecoverRuns) or the next run,
// on both engines. A run whose lease is still live is looked at again when
// the lease expires: marked then if nobody renewed it, left alone if its
// holder is alive.
func TestRecoverRuns(t *testing.T) {
	forEachDialect(t, func(t *testing.T, in *instance) {
		ctx := context.Background()
		repo, _ := newRepo(t)

		// Waiting for a lease moves the clock instead of sleeping; renew
		// stands for a live holder elsewhere renewing meanwhile.
		clock := testkit.NewClock(time.Now())
		var waited time.Duration
		var renew func()
		after := func(d time.Duration) <-chan time.Time {
			waited += d
			for step := 100 * time.Millisecond; d > 0; d -= step {
				clock.Advance(min(step, d))
				if renew != nil {
					renew()
				}
			}
			ch := make(chan time.Time, 1)
			ch <- clock.Now()
			return ch
		}
		svc := backup.New(in.db, repo, backup.Options{Blobs: in.blobs, Keys: newKeys(t), LeaseTTL: 900 * time.Millisecond, Now: clock.Now, After: after})

		exec := func(q string, args ...any) {
			t.Helper()
			if _, err := in.db.Write.ExecContext(ctx, in.db.Rebind(q), args...); err != nil {
				t.Fatal(err)
			}
		}
		// What kill -9 leaves: a run row "running", and its lease.
		died := func(id string, leaseFor time.Duration) {
			exec(`INSERT INTO backup_runs (id, kind, status, origin, started_at) VALUES (?, 'backup', 'running', 'api', ?)`, id, clock.Now().UnixMicro())
			if leaseFor > 0 {
				exec(`UPDATE backup_lease SET holder = ?, expires_at = ? WHERE id = 1`, id, clock.Now().Add(leaseFor).UnixMicro())
			}
		}
		status := func(id string) string {
			t.Helper()
			r, err := svc.GetRun(ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			return r.Status
		}

		// Lease already expired (or never there): marked at once.
		died("20250301T090000Z-000001", 0)
		died("20250301T090000Z-000002", -time.Minute)
		n, err := svc.RecoverRuns(ctx)
		if err != nil || n != 2 {
			t.Fatalf("recover: %d %v, want 2", n, err)
		}
		for _, id := range []string{"20250301T090000Z-000001", "20250301T090000Z-000002"} {
			if r, _ := svc.GetRun(ctx, id); r.Status != backup.StatusInterrupted || r.FinishedAt == nil || r.Error == "" {
				t.Fatalf("run %s after recovery: %+v", id, r)
			}
		}

		// Killed a moment ago: its lease is still live, so recovery
		// waits for it to expire, then marks the run.
		died("20250301T090000Z-000003", 500*time.Millisecond)
		if n, err := svc.RecoverRuns(ctx); err != nil || n != 1 {
			t.Fatalf("recover behind a dead lease: %d %v", n, err)
		}
		if st := status("20250301T090000Z-000003"); st != backup.StatusInterrupted || waited < 500*time.Millisecond {
			t.Fatalf("run behind a dead lease: %s after waiting %s", st, waited)
		}

		// A live run elsewhere (its holder renews the lease while
		// recovery waits) stays running.
		died("20250301T090000Z-000004", 500*time.Millisecond)
		renew = func() {
			exec(`UPDATE backup_lease SET expires_at = ? WHERE id = 1`, clock.Now().Add(500*time.Millisecond).UnixMicro())
		}
		waited = 0
		n, err = svc.RecoverRuns(ctx)
		renew = nil
		if err != nil || n != 0 || status("20250301T090000Z-000004") != backup.StatusRunning || waited == 0 {
			t.Fatalf("live run: recover marked %d (%v) after waiting %s, status %s", n, err, waited, status("20250301T090000Z-000004"))
		}

		// Its process dies after all: the next run takes the expired
		// lease and marks it.
		exec(`UPDATE backup_lease SET expires_at = 1 WHERE id = 1`)
		if _, err := svc.Backup(ctx, "test", operator, nil); err != nil {
			t.Fatal(err)
		}
		if st := status("20250301T090000Z-000004"); st != backup.StatusInterrupted {
			t.Fatalf("dead run after the next backup: %s", st)
		}
	})
}
