package sqlstore

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/casevault/casevault/cases"
	"github.com/casevault/casevault/sqldb"
	"github.com/casevault/casevault/sqldb/sqldbtest"
)

// TestTouchCasesPlan: a PostgreSQL contact batch finds the cases it locks
// and touches by their key, not by reading the table. Written as a join to
// its unnest, the statement was planned as two sequential scans of cases
// at around a thousand analyzed cases (every batch); from a few thousand
// the planner preferred the index anyway. The subtests grow one table, in
// order.
func TestTouchCasesPlan(t *testing.T) {
	db := sqldbtest.Open(t, sqldb.Postgres)
	ctx := context.Background()
	st := New(db, Options{})
	cust := cases.Customer{ID: cases.NewID(), Name: "n", CreatedAt: time.Now(), UpdatedAt: time.Now()}
	if err := st.CreateCustomer(ctx, cust, cases.Change{Action: "customer.create", TargetType: "customer", TargetID: cust.ID}); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name  string
		cases int
	}{
		// (a few hundred fit in a few pages, where a scan is the cheaper
		// plan)
		{"a thousand cases", 1000},
		{"thousands of cases", 5000},
		{"tens of thousands of cases", 30000},
	}
	next := 0
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			add := tc.cases - next
			if _, err := db.Write.ExecContext(ctx, `INSERT INTO cases (id, number, customer_id, subject, status, priority, channel, created_at, updated_at)
				SELECT 'plan-' || g, 1000000 + g, $1, 's', 'open', 'normal', 'chat', 0, 0 FROM generate_series($2::int, $3::int) g`,
				cust.ID, next+1, next+add); err != nil {
				t.Fatal(err)
			}
			next += add
			if _, err := db.Write.ExecContext(ctx, `ANALYZE cases`); err != nil {
				t.Fatal(err)
			}

			ids := []string{"plan-1", "plan-7", "plan-42", "plan-99", "plan-250"}
			times := []int64{1, 2, 3, 4, 5}
			for _, q := range []struct {
				name string
				text string
				args []any
			}{
				{"touch", qTouchCasesPG, []any{ids, times}},
				{"touch ahead", qTouchAheadPG, []any{ids, times}},
				{"share", qShareCasesPG, []any{ids}},
			} {
				plan := strings.Join(sqldbtest.QueryPlan(t, db, q.text, q.args...), "\n")
				if strings.Contains(plan, "Seq Scan on cases") {
					t.Errorf("the batch %s reads the whole cases table:\n%s", q.name, plan)
				}
				if !strings.Contains(plan, "cases_pkey") {
					t.Errorf("the batch %s does not use the cases' key:\n%s", q.name, plan)
				}
			}
		})
	}
}

// TestTouchAhead: a batch's touch ahead moves each case's updated_at to
// its newest contact's creation and never back (two replicas' touches
// commit in any order), and commits without waiting for its flush in its
// own transaction only: the pooled connection's next transaction waits
// again (synchronous_commit is back on).
func TestTouchAhead(t *testing.T) {
	db := sqldbtest.Open(t, sqldb.Postgres)
	db.Write.SetMaxOpenConns(1) // the touch's connection is the one asked after
	ctx := context.Background()
	st := New(db, Options{})
	cust := cases.Customer{ID: cases.NewID(), Name: "n", CreatedAt: time.Now(), UpdatedAt: time.Now()}
	if err := st.CreateCustomer(ctx, cust, cases.Change{Action: "customer.create", TargetType: "customer", TargetID: cust.ID}); err != nil {
		t.Fatal(err)
	}
	base := time.Now().Truncate(time.Microsecond)

	tests := []struct {
		name     string
		updated  time.Time   // the case's updated_at before
		contacts []time.Time // the batch's contacts of the case, by creation
		want     time.Time
	}{
		{"one newer contact", base, []time.Time{base.Add(time.Second)}, base.Add(time.Second)},
		{"several: the newest", base, []time.Time{base.Add(2 * time.Second), base.Add(5 * time.Second), base.Add(time.Second)}, base.Add(5 * time.Second)},
		{"touched later by another replica: kept", base.Add(time.Minute), []time.Time{base.Add(time.Second)}, base.Add(time.Minute)},
	}
	var rs []*contactReq
	for i, tc := range tests {
		id := "ahead-" + strconv.Itoa(i)
		if _, err := db.Write.ExecContext(ctx, `INSERT INTO cases (id, number, customer_id, subject, status, priority, channel, created_at, updated_at)
			VALUES ($1, $2, $3, 's', 'open', 'normal', 'chat', 0, $4)`, id, 2000000+i, cust.ID, sqldb.Micros(tc.updated)); err != nil {
			t.Fatal(err)
		}
		for _, at := range tc.contacts {
			rs = append(rs, &contactReq{c: &cases.Contact{CaseID: id, CreatedAt: at}})
		}
	}

	if err := st.touchAhead(ctx, rs); err != nil {
		t.Fatal(err)
	}

	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var got int64
			if err := db.Read.QueryRowContext(ctx, `SELECT updated_at FROM cases WHERE id = $1`, "ahead-"+strconv.Itoa(i)).Scan(&got); err != nil {
				t.Fatal(err)
			}
			if got != sqldb.Micros(tc.want) {
				t.Errorf("updated_at %v, want %v", sqldb.FromMicros(got), tc.want)
			}
		})
	}
	var sync string
	if err := db.Write.QueryRowContext(ctx, `SHOW synchronous_commit`).Scan(&sync); err != nil {
		t.Fatal(err)
	}
	if sync != "on" {
		t.Errorf("synchronous_commit %q on the touch's connection after it, want on", sync)
	}

	// and inside its transaction it is off (the statement sets it for
	// that transaction, not for the statement alone)
	tx, err := db.Write.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, qTouchAheadPG, []string{"ahead-0"}, []int64{1}); err != nil {
		t.Fatal(err)
	}
	if err := tx.QueryRowContext(ctx, `SHOW synchronous_commit`).Scan(&sync); err != nil {
		t.Fatal(err)
	}
	if sync != "off" {
		t.Errorf("synchronous_commit %q in the touch's transaction, want off", sync)
	}
}

// TestFeedPositionPlans: outbox_pos indexes numbered rows only (each
// contact's row was in it twice before: unnumbered at its INSERT, numbered
// after), and every read of the feed by position still goes through it,
// as a prepared statement's generic plan too: pos > $1 implies the
// index's pos IS NOT NULL. Not using it, each indexer poll would read the
// whole outbox.
func TestFeedPositionPlans(t *testing.T) {
	db := sqldbtest.Open(t, sqldb.Postgres)
	ctx := context.Background()
	st := New(db, Options{})
	// 50,000 numbered rows and 5,000 waiting for their number.
	if _, err := db.Write.ExecContext(ctx, `INSERT INTO outbox (case_id, created_at, pos)
		SELECT 'c', 0, CASE WHEN g <= 50000 THEN g END FROM generate_series(1, 55000) g`); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Write.ExecContext(ctx, `ANALYZE outbox`); err != nil {
		t.Fatal(err)
	}

	var indexed int64
	if err := db.Read.QueryRowContext(ctx, `SELECT reltuples::bigint FROM pg_class WHERE oid = 'outbox_pos'::regclass`).Scan(&indexed); err != nil {
		t.Fatal(err)
	}
	// (ANALYZE's count of an index is an estimate, within a few rows
	// here: the 5,000 unnumbered rows are what is looked for)
	if indexed < 49500 || indexed > 50500 {
		t.Errorf("outbox_pos holds ~%d entries for 50,000 numbered rows and 5,000 unnumbered", indexed)
	}

	for _, q := range []struct {
		name string
		text string
		args []any
	}{
		{"read", st.qFeedRead(), []any{int64(49000), 500}},
		{"oldest", st.qFeedOldest(), []any{int64(49000), int64(50000)}},
		{"prune", st.qFeedPrune(), []any{int64(100), int64(600)}},
	} {
		for _, mode := range []string{"auto", "force_generic_plan"} {
			plan := strings.Join(sqldbtest.PostgresPlan(t, db, []string{"plan_cache_mode = " + mode}, q.text, q.args...), "\n")
			if !strings.Contains(plan, "outbox_pos") || strings.Contains(plan, "Seq Scan on outbox") {
				t.Errorf("the feed %s (%s) does not read by outbox_pos:\n%s", q.name, mode, plan)
			}
		}
	}
}
