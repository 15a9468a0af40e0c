package retention_test

import (
	"context"
	"database/sql"
	"testing"
	"time"

	"github.com/casevault/casevault/cases"
	"github.com/casevault/casevault/retention"
	"github.com/casevault/casevault/sqldb"
	"github.com/casevault/casevault/sqldb/sqldbtest"
	"github.com/casevault/casevault/testkit"
)

// TestScheduleChangeWaitsForWritesInFlight (issue 19): with no audit head
// lock left on PostgreSQL, a schedule change must still commit wholly
// before or after every write transaction (a write stamps retain_until with
// the schedule it read). Put waits on the write barrier while a write is in
// flight, and commits once it has.
func TestScheduleChangeWaitsForWritesInFlight(t *testing.T) {
	ctx := context.Background()
	db := sqldbtest.Open(t, sqldb.Postgres)
	db.SetPrologue(retention.ShareWriteBarrier)
	sched := retention.NewSchedules(db, retention.NewPolicy(retention.DefaultSchedule()))

	inTx, release := make(chan struct{}), make(chan struct{})
	writer := make(chan error, 1)
	go func() {
		writer <- db.InTx(ctx, func(*sql.Tx) error {
			close(inTx)
			<-release
			return nil
		})
	}()
	<-inTx

	put := make(chan error, 1)
	go func() {
		sc := retention.DefaultSchedule()
		sc.Purposes[4].Keep, _ = retention.ParseDuration("400d")
		_, err := sched.Put(ctx, sc, cases.Actor{Name: "alice"}, nil)
		put <- err
	}()
	testkit.Eventually(t, 20*time.Second, "Put waiting on the write barrier", func() bool {
		var waiting int
		err := db.Read.QueryRow(`SELECT COUNT(*) FROM pg_locks WHERE locktype = 'advisory' AND classid = 7345027 AND NOT granted`).Scan(&waiting)
		return err == nil && waiting > 0
	})
	select {
	case err := <-put:
		t.Fatalf("Put returned (%v) while a write transaction was in flight", err)
	default:
	}

	close(release)
	if err := <-writer; err != nil {
		t.Fatal(err)
	}
	if err := <-put; err != nil {
		t.Fatal(err)
	}
}
